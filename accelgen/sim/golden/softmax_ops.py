"""Network operations on block ``softmax``: a :class:`~accelgen.sim.golden.ops.SoftmaxOp`
(softmax over the last axis of a quantized tensor) as rows of beats (the block's registry entry
names this module as its ``model_ops``).

The block's ``in_scale`` and ``in_format`` come from the operation; the rest (exponent and
reciprocal approximations, ``n_max``, ``output``) is the config's. Softmax does not change
when every logit of a row moves by the same amount, so the logits go in as ``x -
in_zero_point``, read in a signed format one bit wider than the op's when the zero point is
not 0. Output codes are the block's: ``u8`` (zero point 0) or ``s8`` (zero point -128) at
scale ``1/out_levels``; when the network asks for one of these (scale 1/256 or 1/255, zero
point 0 or -128), ``output`` and ``out_levels`` follow it, so the codes are the network's own.
``log2`` outputs are not linear codes and are refused.
"""

from dataclasses import replace

import numpy as np

from ...numerics import ConfigError, IntFormat
from .ops import Plan
from .softmax import pack_inputs, softmax, unpack_outputs, words

__all__ = ["KINDS", "configure", "plan"]

KINDS = ("row_softmax",)
OUT_ZERO_POINT = {"u8": 0, "s8": -128}


def _logits(op):
    """``(codes, format name)``: the op's logits relative to its zero point."""
    fmt = IntFormat.parse(op.in_format)
    x = np.asarray(op.x, np.int64) - int(op.in_zero_point)
    width = fmt.width + (1 if op.in_zero_point or not fmt.signed else 0)
    return x, f"s{max(4, width)}"


def _requested_output(op):
    """``{output, out_levels}`` of the output quantization ``op`` asks for, when the block
    has it (float32 scales: 1/255 is stored as 0.003921569)."""
    if op.out_scale is None or op.out_zero_point not in OUT_ZERO_POINT.values():
        return {}
    for levels in (256, 255):
        if abs(float(op.out_scale) * levels - 1) < 1e-6:
            output = {v: k for k, v in OUT_ZERO_POINT.items()}[int(op.out_zero_point)]
            return {"output": output, "out_levels": levels}
    return {}


def configure(config, op):
    """``config`` with the op's logit format and scale; :class:`ConfigError` when a row is
    longer than ``n_max`` or the output is ``log2``."""
    if config.output not in OUT_ZERO_POINT:
        raise ConfigError(f"hw: softmax output {config.output!r} is not a linear code; expected "
                          f"'u8' or 's8'")
    n = int(np.shape(op.x)[-1])
    if n > config.n_max:
        raise ConfigError(f"hw: softmax rows of {n} elements need n_max >= {n}; the config has "
                          f"n_max {config.n_max}")
    _, fmt = _logits(op)
    out = _requested_output(op)
    try:
        return replace(config, in_format=fmt, in_scale=float(op.in_scale), **out)
    except ConfigError as error:
        raise ConfigError(f"hw: softmax cannot take these logits: {error}") from None


def plan(config, op):
    """The :class:`~accelgen.sim.golden.ops.Plan` of ``op`` on ``config`` (from
    :func:`configure`): one row per softmax, ``last`` on its final element."""
    x, _ = _logits(op)
    rows = x.reshape(-1, x.shape[-1])
    in_words = pack_inputs(config, rows)
    result = softmax(config, rows).reshape(x.shape)

    def decode(out):
        got = out.get("o", ())
        if len(got) != len(in_words):
            raise ValueError(f"the RTL sent {len(got)} o words; expected {len(in_words)}")
        fields = unpack_outputs(config, got)
        ends = np.flatnonzero(fields["last"]) + 1
        want = np.arange(1, rows.shape[0] + 1) * rows.shape[1]
        if not np.array_equal(ends, want):
            raise ValueError("the RTL's o.last marks are not at the ends of the rows")
        return fields["y"].reshape(x.shape), {}

    assert np.array_equal(decode({"o": words(config, in_words)})[0], result)
    return Plan(words={"i": in_words}, expect={"o": len(in_words)}, result=result,
                decode=decode, out_scale=1 / config.out_levels,
                out_zero_point=OUT_ZERO_POINT[config.output],
                commands=rows.shape[0], model_cycles=len(in_words) + config.latency,
                notes=[f"exp {config.exp}, recip {config.recip}, rows of {rows.shape[1]}, "
                       f"output {config.output} at 1/{config.out_levels}"])
