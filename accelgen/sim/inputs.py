"""User data for ``accelgen sim --inputs FILE.npz``: load, validate against the golden model's
argument names, shapes and ranges, and report problems as one-line :class:`ConfigError`."""

from pathlib import Path

import numpy as np

from ..numerics import ConfigError

__all__ = ["load_inputs"]


def load_inputs(spec, config, path):
    """Arrays of ``path`` keyed by the golden model's argument names, checked by running the
    golden model on them once (so the RTL run can only fail on a real mismatch)."""
    golden = spec.golden_model()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--inputs: {str(path)!r} is not a readable file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise ConfigError(f"--inputs: {str(path)!r} is not an .npz file of arrays: {err}") \
            from None
    allowed = ", ".join(golden.ARGUMENTS)
    unknown = sorted(set(arrays) - set(golden.ARGUMENTS))
    if unknown:
        raise ConfigError(f"--inputs: array {unknown[0]!r} is not an argument of the {spec.name} "
                          f"golden model; allowed are {allowed}")
    try:
        golden.run(config, **arrays)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"--inputs: {str(path)!r}: {err}") from None
    return arrays
