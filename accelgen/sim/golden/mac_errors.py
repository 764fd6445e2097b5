"""Accuracy of block ``mac``'s accumulated results against float64: random dot products per
mode, the golden model's FP32 result against the exact value, in FP32 ULPs of the exact value
(``accelgen show mac --errors``; ``benchmarks/formats.py`` for longer dot products and MX
SQNR).

Workload per mode: ``trials`` accumulations of ``length`` elements per accumulator (default:
the MX block for MX modes, else 64 rounded up to whole beats). Float, posit and MX values are
N(0, 1) samples rounded to the nearest value of the format (saturating); MX blocks take the
OCP scale ``shared_exp = floor(log2(max |v|)) - emax(element)`` first. Integer elements are
uniform over their format. The exact value of each dot product is ``math.fsum`` of the
products (every product of these formats is exact in float64).
"""

import math

import numpy as np

from ...formats import E8M0_BIAS, IntFormat
from ..reference import error_stats
from . import elements

__all__ = ["errors", "error_points", "workload", "fp32_ulp"]


def fp32_ulp(x):
    """Spacing of FP32 numbers at ``|x|`` (2**-149 in the subnormal range)."""
    x = np.abs(np.asarray(x, np.float64))
    exp = np.floor(np.log2(np.where(x > 0, x, 1.0)))
    return np.exp2(np.maximum(exp, -126) - 23)


def _emax(fmt):
    """Exponent of the largest power of two an MX element type reaches (OCP ``emax_elem``)."""
    top = float(elements.code_values(fmt, [fmt.max_code])[0])
    return math.floor(math.log2(top))


def _elements(fmt, rng, shape):
    """Element values of ``fmt`` for a workload (see the module docstring)."""
    if isinstance(fmt, IntFormat):
        return rng.integers(fmt.min, fmt.max + 1, size=shape).astype(np.float64)
    return elements.code_values(fmt, elements.quantize(fmt, rng.standard_normal(shape)))


def _mx_blocks(fmt, rng, beats, lanes, n, bpb):
    """MX element values ``(beats, lanes, n)`` and per-beat scale codes: each block of ``bpb``
    beats shares the OCP scale of its N(0, 1) samples."""
    raw = rng.standard_normal((beats, lanes, n))
    scale = np.zeros(beats, np.int64)
    values = np.zeros_like(raw)
    for start in range(0, beats, bpb):
        block = raw[start:start + bpb]
        shared = math.floor(math.log2(np.abs(block).max())) - _emax(fmt)
        shared = min(127, max(-127, shared))
        values[start:start + bpb] = elements.code_values(
            fmt, elements.quantize(fmt, block / 2.0 ** shared))
        scale[start:start + bpb] = shared + E8M0_BIAS
    return values, scale


def workload(config, code, rng, trials, length=None):
    """``(arguments of golden mac, exact results (trials, accumulators))`` for mode ``code``."""
    fmt = config.mode_formats[code]
    n = config.products_per_lane(code)
    per_beat = config.lanes * n
    if length is None:
        length = config.block if fmt.is_mx else max(64, per_beat)
    beats_each = -(-length // per_beat)
    beats = trials * beats_each
    shape = (beats, config.lanes, config.elements_per_lane)
    a, b = np.zeros(shape), np.zeros(shape)
    args = {}
    if fmt.is_mx:
        bpb = config.beats_per_block(code)
        a[:, :, :n], sa = _mx_blocks(fmt.a, rng, beats, config.lanes, n, bpb)
        b[:, :, :n], sb = _mx_blocks(fmt.b, rng, beats, config.lanes, n, bpb)
        args = {"scale_a": sa, "scale_b": sb}
    else:
        a[:, :, :n] = _elements(fmt.a, rng, (beats, config.lanes, n))
        b[:, :, :n] = _elements(fmt.b, rng, (beats, config.lanes, n))
        sa = sb = np.full(beats, E8M0_BIAS)
    first = np.arange(beats) % beats_each == 0
    args.update(a=a, b=b, mode=np.full(beats, code), clear=first,
                last=np.roll(first, -1))
    scale = np.exp2((sa + sb - 2 * E8M0_BIAS).astype(np.float64))
    products = (a * b)[:, :, :n] * scale[:, None, None]
    products = products.reshape(trials, beats_each, config.lanes, n)
    if config.reduction == "together":
        exact = [[math.fsum(p.ravel())] for p in products]
    else:
        exact = [[math.fsum(p[:, lane].ravel()) for lane in range(config.lanes)]
                 for p in products]
    return args, np.array(exact, np.float64), length


def _results(config, args):
    from .mac import mac
    if not config.element_lane:       # integer lanes take integer arrays
        args = {**args, "a": args["a"].astype(np.int64), "b": args["b"].astype(np.int64)}
    out = mac(config, **args)["acc"]
    return elements.fp32_value(out) if config.element_lane else out.astype(np.float64)


def errors(config, *, trials=200, length=None, seed=0):
    """Per mode and overall: the result's error against the exact dot product, in ULPs of
    FP32 at the exact value (integer accumulation: in units of 1, always 0 within range)."""
    rng = np.random.default_rng(seed)
    per_mode, worst = {}, []
    for code, mode in enumerate(config.modes):
        args, exact, used = workload(config, code, rng, trials, length)
        got = _results(config, args)
        unit = fp32_ulp(exact) if config.element_lane else 1.0
        stats = error_stats(got / unit, exact / unit)
        stats["length"] = used
        relative = np.abs(got - exact) / np.where(exact == 0, 1, np.abs(exact))
        stats["max_rel"] = float(np.max(relative))
        per_mode[mode] = stats
        worst.append(stats)
    unit = "FP32 ULPs of the exact value" if config.element_lane else "units of 1"
    out = {"max_abs": max(s["max_abs"] for s in worst),
           "mean_abs": float(np.mean([s["mean_abs"] for s in worst])),
           "mean": float(np.mean([s["mean"] for s in worst])),
           "per_mode": per_mode, "unit": unit,
           "population": f"over {trials} random dot products per mode (N(0,1) values "
                         f"rounded to each format, MX blocks OCP-scaled)"}
    return out


def error_points(config, *, trials=200, seed=0):
    """``(exact values, errors in FP32 ULPs, label)`` over every mode's workload, for plots."""
    rng = np.random.default_rng(seed)
    xs, errs = [], []
    for code in range(len(config.modes)):
        args, exact, _ = workload(config, code, rng, trials)
        got = _results(config, args)
        unit = fp32_ulp(exact) if config.element_lane else 1.0
        xs.append(exact.ravel())
        errs.append(((got - exact) / unit).ravel())
    return np.concatenate(xs), np.concatenate(errs), "exact dot product"
