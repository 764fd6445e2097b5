"""Network operations on block ``activation``: an
:class:`~accelgen.sim.golden.ops.ElementwiseOp` (GELU, sigmoid, tanh, ... of a quantized
tensor) as a stream of beats (the block's registry entry names this module as its
``model_ops``).

The block's function and number formats come from the operation: ``function``, the input and
output formats, scales and zero points are the op's (so the approximation is fitted to the
network's own scales); everything else (``backend``, ``segments``, ``pwl_frac``, ``lanes``,
...) is the config's. Elements go in row-major order, ``lanes`` per beat, the last beat padded
with the lowest input code (its outputs are dropped).
"""

from dataclasses import replace

import numpy as np

from ...numerics import ConfigError
from .activation import activation, as_beats, pack_inputs, unpack_outputs, words
from .ops import Plan

__all__ = ["KINDS", "configure", "plan"]

KINDS = ("elementwise",)


def configure(config, op):
    """``config`` with the op's function, formats, scales and zero points;
    :class:`ConfigError` (the config's own message) when the back-end cannot take them."""
    try:
        return replace(config, function=op.function, in_format=op.in_format,
                       in_scale=float(op.in_scale), in_zero_point=int(op.in_zero_point),
                       out_format=op.out_format, out_scale=float(op.out_scale),
                       out_zero_point=int(op.out_zero_point))
    except ConfigError as error:
        raise ConfigError(f"hw: activation {config.backend} cannot run {op.function} at these "
                          f"scales: {error}") from None


def plan(config, op):
    """The :class:`~accelgen.sim.golden.ops.Plan` of ``op`` on ``config`` (from
    :func:`configure`)."""
    x = np.asarray(op.x, np.int64)
    beats, count = as_beats(config, x.reshape(-1))
    in_words = pack_inputs(config, beats)
    result = activation(config, x)

    def decode(out):
        got = out.get("o", ())
        if len(got) != len(in_words):
            raise ValueError(f"the RTL sent {len(got)} o words; expected {len(in_words)}")
        y = unpack_outputs(config, got)["y"].reshape(-1)[:count]
        return y.reshape(x.shape), {}

    # the payload-level model must agree with the element-level one (both are golden)
    assert np.array_equal(decode({"o": words(config, in_words)})[0], result)
    return Plan(words={"i": in_words}, expect={"o": len(in_words)}, result=result,
                decode=decode, out_scale=config.out_scale,
                out_zero_point=config.out_zero_point, commands=len(in_words),
                model_cycles=len(in_words) + config.latency,
                notes=[f"{config.backend} {config.function}, {config.lanes} lanes, "
                       f"{len(in_words)} beats"])
