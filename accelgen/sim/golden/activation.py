"""Bit-exact numpy model of block ``activation`` (semantics: :mod:`accelgen.generators.activation`)
and its float64 error report.

* :func:`activation` maps input codes to output codes (any array shape);
* :func:`words` works on raw ``i``/``o`` payload integers (cocotb, FPGA harness);
* :func:`errors` measures the model against float64 over every input code, in output LSB.

The table and PWL constants come from :mod:`accelgen.approx` through the config, the same
objects the hardware is built from; the arithmetic here is written from the spec.
"""

import numpy as np

from ...numerics import saturate, wrap
from ..payload import pack, unpack
from ..reference import error_stats

__all__ = ["activation", "words", "pack_inputs", "unpack_outputs", "check_arrays", "errors",
           "random_inputs", "error_points", "ARGUMENTS", "REQUIRED"]

#: array names ``accelgen sim activation --inputs FILE.npz`` accepts
ARGUMENTS = ("x",)
#: the arrays an inputs file must hold (the rest of :data:`ARGUMENTS` is optional)
REQUIRED = ("x",)


def _codes(config, x, *, strict=True):
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"x: dtype {arr.dtype} is not allowed; expected integer codes")
    arr = arr.astype(np.int64)
    f = config.in_fmt
    if strict and arr.size and (arr.min() < f.min or arr.max() > f.max):
        raise ValueError(f"x: values outside {f.name} [{f.min}, {f.max}]")
    return arr


def _round_half_up_shift(v, shift):
    """``v / 2**shift`` rounded half up (``shift >= 0``)."""
    return (v + (np.int64(1) << (shift - 1))) >> shift if shift > 0 else v


def _table(config, x):
    return np.asarray(config.table, np.int64)[x - config.in_fmt.min]


def _pwl(config, x):
    p = config.pwl
    bases = np.asarray(p.bases, np.int64)
    if p.uniform_shift is not None:
        seg = np.clip((x - p.lo) >> p.uniform_shift, 0, p.segments - 1)
    else:
        seg = np.searchsorted(bases, x, side="right") - 1
    acc = (np.asarray(p.intercepts, np.int64)[seg]
           + np.asarray(p.slopes, np.int64)[seg] * (x - bases[seg]))
    return saturate(_round_half_up_shift(acc, p.frac), config.out_fmt)


def _ibert_exp(poly, x):
    """``(z, q)`` of i-exp for codes ``x`` (positive codes first clamped to 0)."""
    x = np.minimum(x, 0)
    x = np.maximum(x, poly.n * poly.x0_int)
    q = x // poly.x0_int                      # x0_int < 0, x <= 0: q >= 0
    r = x - q * poly.x0_int                   # (x0_int, 0]
    return r * (r + poly.b_int) + poly.c_int, q


def _ibert_gelu(poly, x):
    """``y_int`` of i-GELU for codes ``x``."""
    clipped = np.minimum(np.abs(x), -poly.b_int)
    e = np.sign(x) * ((clipped + poly.b_int) ** 2 + poly.c_int)
    e = e >> poly.erf_shift
    return x * (e + poly.one_int)


def _ibert(config, x):
    ib = config.ibert
    zp = config.out_zero_point
    if config.function == "exp":
        z, q = _ibert_exp(ib["poly"], x)
        # z >= 0 here (exp(p) > 0.5 on the polynomial's interval); (1 << total) >> 1 is the
        # half-up rounding term, 0 when total == 0. z * mult < 2**62, so a shift of 63 or
        # more rounds to 0 exactly (and int64 cannot hold its rounding term 2**62 << 1).
        total = ib["shift"] + q
        t = np.minimum(total, 62)
        y = np.where(total <= 62, (z * ib["mult"] + ((np.int64(1) << t) >> 1)) >> t, 0)
    else:
        y = _round_half_up_shift(ib["sign"] * _ibert_gelu(ib["poly"], x) * ib["mult"],
                                 ib["shift"])
    return saturate(y + zp, config.out_fmt)


_BACKENDS = {"table": _table, "pwl": _pwl, "ibert": _ibert}


def activation(config, x):
    """Output codes for input codes ``x`` (any shape; values inside ``in_format``)."""
    x = _codes(config, x)
    return _BACKENDS[config.backend](config, x)


def check_arrays(config, *, strict=True, x=None):
    """``ValueError`` unless ``x`` is an integer array of ``(elements,)`` or ``(beats, lanes)``
    codes (``strict``: also inside ``in_format``)."""
    if x is None:
        raise ValueError("x: missing; expected an integer array of input codes")
    arr = _codes(config, x, strict=strict)
    if arr.ndim not in (1, 2) or arr.size == 0 or (arr.ndim == 2
                                                   and arr.shape[1] != config.lanes):
        raise ValueError(f"x: shape {arr.shape} is not allowed; expected (elements,) or "
                         f"(beats, lanes={config.lanes}) with at least one element")


def as_beats(config, x):
    """Codes ``x`` as ``(beats, lanes)``; a flat array is padded with ``in_min`` codes to a
    whole number of beats. Returns ``(beats array, element count)``."""
    x = _codes(config, x, strict=False)
    if x.ndim == 2:
        return x, x.size
    n = x.size
    beats = -(-n // config.lanes)
    pad = np.full(beats * config.lanes - n, config.in_fmt.min, np.int64)
    return np.concatenate([x, pad]).reshape(beats, config.lanes), n


def pack_inputs(config, x, last=None):
    """``(beats, lanes)`` codes (and optional ``last`` bits per beat) → ``i`` payload words."""
    x = _codes(config, x, strict=False).reshape(-1, config.lanes)
    w = config.in_fmt.width
    xs = [sum((int(v) & ((1 << w) - 1)) << (w * lane) for lane, v in enumerate(row))
          for row in x]
    last = np.zeros(len(xs), bool) if last is None else np.asarray(last, bool)
    return pack(config.input_fields, {"x": xs, "last": last})


def _split(config, values, fmt):
    mask = (1 << fmt.width) - 1
    lanes = np.array([[(int(v) >> (fmt.width * lane)) & mask for lane in range(config.lanes)]
                      for v in values], np.int64).reshape(-1, config.lanes)
    return wrap(lanes, fmt)


def unpack_inputs(config, words):
    f = unpack(config.input_fields, words)
    return {"x": _split(config, f["x"], config.in_fmt), "last": f["last"].astype(bool)}


def unpack_outputs(config, words):
    """``o`` payload words → ``{"y": (beats, lanes) int64, "last": (beats,) bool}``."""
    f = unpack(config.output_fields, words)
    return {"y": _split(config, f["y"], config.out_fmt), "last": f["last"].astype(bool)}


def pack_outputs(config, y, last):
    w = config.out_fmt.width
    ys = [sum((int(v) & ((1 << w) - 1)) << (w * lane) for lane, v in enumerate(row))
          for row in np.asarray(y).reshape(-1, config.lanes)]
    return pack(config.output_fields, {"y": ys, "last": np.asarray(last, bool)})


def words(config, in_words):
    """Payload-level model: ``i`` payload integers in, ``o`` payload integers out (one per
    beat, ``last`` carried through)."""
    args = unpack_inputs(config, in_words)
    return pack_outputs(config, activation(config, args["x"]), args["last"])


def random_inputs(config, rng, beats):
    """Random in-range codes ``(beats, lanes)``."""
    f = config.in_fmt
    return {"x": rng.integers(f.min, f.max + 1, size=(beats, config.lanes))}


def float_reference(config, x):
    """Float64 truth of codes ``x`` in output LSB, clamped to the output range (a format
    cannot go beyond it, so saturation is not counted as approximation error)."""
    x = np.asarray(x, np.int64)
    flat = np.array([config.reference(int(v)) for v in x.ravel()], np.float64)
    f = config.out_fmt
    return np.clip(flat, f.min, f.max).reshape(x.shape)


def error_points(config):
    """``(real input values, errors in output LSB, x-axis label)`` over every input code, for
    plots."""
    x = np.asarray(list(config.codes), np.int64)
    err = activation(config, x) - float_reference(config, x)
    return (config.in_scale * (x - config.in_zero_point), err,
            f"input ({config.function} argument)")


def errors(config, x=None):
    """Golden model against float64 over ``x`` (default: every input code), in output LSB:
    :func:`accelgen.sim.reference.error_stats` of ``y - clamp(r(x))``, plus the integer
    distance to the correctly rounded code (``code_max``: 0 means every output is the table's
    entry), and ``population`` (what the statistics cover). Returns a dict (see
    :func:`error_stats`)."""
    every = x is None
    x = np.asarray(list(config.codes) if every else x, np.int64)
    y = activation(config, x)
    stats = error_stats(y, float_reference(config, x))
    ideal = np.asarray(config.table, np.int64)[x - config.in_fmt.min]
    stats["code_max"] = int(np.max(np.abs(y - ideal)))
    stats["code_mismatches"] = int(np.count_nonzero(y != ideal))
    stats["inputs"] = int(x.size)
    stats["input_range"] = [config.in_scale * (int(x.min()) - config.in_zero_point),
                            config.in_scale * (int(x.max()) - config.in_zero_point)]
    lo, hi = stats["input_range"]
    stats["population"] = (f"over {'all ' if every else ''}{x.size} input codes, inputs "
                           f"{lo:g} to {hi:g}")
    return stats


#: registry-facing name (see :class:`accelgen.generators.registry.GeneratorSpec`)
run = activation
