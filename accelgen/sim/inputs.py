"""Checks of the user's ``--inputs FILE.npz`` and ``--outputs FILE.npz`` before anything is
built: one :class:`ConfigError` line naming the option, the value and what is allowed.

The ``.npz`` is inspected before it is loaded: it must be a zip archive of ``.npy`` members
whose names are the golden model's ``ARGUMENTS``, whose headers declare integer or boolean
arrays, and whose declared sizes add up to at most :data:`MAX_INPUT_ELEMENTS` elements — so a
small compressed file cannot grow into gigabytes of memory, and nothing is ever unpickled.
"""

import os
import zipfile
from pathlib import Path

from ..numerics import ConfigError
from ..outputs import check_file

__all__ = ["MAX_INPUT_ELEMENTS", "check_inputs", "check_outputs", "read_headers"]

#: the most array elements (over all arrays of one ``--inputs`` file) a simulation takes:
#: 2**24, i.e. 128 MiB as int64 — far more than a cocotb run gets through in an hour
MAX_INPUT_ELEMENTS = 1 << 24

_INT64_MAX = (1 << 63) - 1


def read_headers(path):
    """``{array name: (shape, dtype)}`` of an ``.npz`` file, read from the ``.npy`` headers
    without decompressing the data. :class:`ConfigError` naming ``--inputs`` otherwise."""
    shown = str(path)
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"--inputs: {shown!r} is not allowed; expected an .npz file (a zip "
                          f"archive of .npy arrays, as numpy.savez writes)")
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                name = member.filename.removesuffix(".npy")
                if not member.filename.endswith(".npy") or name in headers:
                    raise ConfigError(f"--inputs: {shown!r} holds {member.filename!r}, which "
                                      f"is not an .npy array; expected an .npz file")
                with archive.open(member) as f:
                    shape, dtype = _npy_header(f)
                headers[name] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ConfigError(f"--inputs: {shown!r} is not a readable .npz file ({err})") from None
    return headers


def _npy_header(f):
    """``(shape, dtype)`` from the header of an open ``.npy`` stream."""
    import numpy as np
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:                      # 3.0 (utf-8 field names) has no public reader
        shape, _, dtype = fmt._read_array_header(f, version)
    return shape, dtype


def _check_headers(golden, config, headers, shown):
    import numpy as np
    floats = set(golden.float_arrays(config)) if hasattr(golden, "float_arrays") else set()
    unknown = sorted(set(headers) - set(golden.ARGUMENTS))
    if unknown:
        raise ConfigError(f"--inputs: arrays {unknown} are not allowed; expected names from "
                          f"{', '.join(golden.ARGUMENTS)}")
    missing = [name for name in golden.REQUIRED if name not in headers]
    if missing:
        optional = [a for a in golden.ARGUMENTS if a not in golden.REQUIRED]
        raise ConfigError(f"--inputs: {shown!r} has no array {missing[0]!r}; it needs "
                          f"{', '.join(golden.REQUIRED)} (optional: "
                          f"{', '.join(optional) or 'none'})")
    total = 0
    for name, (shape, dtype) in headers.items():
        if dtype.kind not in "iub" and not (name in floats and dtype.kind == "f"):
            allowed = ("numbers (integers or floats)" if name in floats
                       else "integers or booleans")
            raise ConfigError(f"--inputs: array {name!r} has dtype {dtype}, which is not "
                              f"allowed; expected {allowed}")
        total += int(np.prod(shape, dtype=object))
    if total > MAX_INPUT_ELEMENTS:
        raise ConfigError(f"--inputs: {shown!r} holds {total} elements, which is not allowed; "
                          f"expected at most {MAX_INPUT_ELEMENTS}")


def check_inputs(spec, config, path, strict):
    """``(resolved path, arrays)`` of a valid inputs file for ``spec``/``config``; with
    ``strict`` (the RTL will be checked against the golden model) also every value inside
    its format. Raises :class:`ConfigError` before anything is built."""
    import numpy as np
    shown = str(path)
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--inputs: {shown!r} is a directory; expected an .npz file")
    if not path.is_file():
        raise ConfigError(f"--inputs: {shown!r} does not exist; expected an .npz file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"--inputs: {shown!r} is not readable; expected a readable .npz file")
    golden = spec.golden_model()
    _check_headers(golden, config, read_headers(path), shown)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"--inputs: {shown!r} is not a readable .npz file ({err})") from None
    for name, arr in arrays.items():
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > _INT64_MAX:
            raise ConfigError(f"--inputs: array {name!r} holds {int(arr.max())}, which is not "
                              f"allowed; expected values below 2**63")
    try:
        golden.check_arrays(config, strict=strict, **arrays)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--inputs: {err}") from None
    return path.resolve(), arrays


def check_outputs(outputs, inputs=None):
    """The resolved ``--outputs`` path: :func:`accelgen.outputs.check_file`, and not the
    inputs file."""
    path = check_file("--outputs", outputs, "an .npz file")
    if inputs is not None and path == Path(inputs).resolve():
        raise ConfigError(f"--outputs: {str(outputs)!r} is not allowed; it is the --inputs "
                          f"file, which would be overwritten")
    return path
