"""Bit-exact numpy model of block ``cast`` (see :mod:`accelgen.generators.cast` for the
semantics). Inputs are element values of the source format (``accelgen sim --inputs``: float
arrays whose values are exact in the source format, NaN and inf allowed) or, at the payload
level, source codes; outputs are target codes (``y``), as the hardware sends them.
"""

from functools import lru_cache

import numpy as np

from ...formats import FloatFormat, round_to_float, round_to_posit
from ..payload import pack, unpack
from .elements import code_values, fp32_codes, to_codes

__all__ = ["cast", "cast_codes", "target_code", "convert", "check_arrays", "float_arrays",
           "pack_inputs", "pack_codes", "unpack_inputs", "pack_outputs", "unpack_outputs", "words",
           "random_inputs", "ARGUMENTS", "REQUIRED"]

#: names of :func:`cast`'s array arguments (``--inputs FILE.npz`` uses these names)
ARGUMENTS = ("x", "last")
#: the arrays an inputs file must hold
REQUIRED = ("x",)


def target_code(config, code):
    """Target code of one source ``code`` (the definition, element by element)."""
    return convert(config.source_format.decode(int(code)), config.target_format,
                   saturate=config.saturate)


def convert(d, dst, *, saturate):
    """Code of format ``dst`` for the decoded value ``d`` (:class:`accelgen.formats.Decoded`,
    any exponent): the conversion rules of the module docstring of
    :mod:`accelgen.generators.cast`, shared by every block that converts (``systolic``'s
    float output stage)."""
    if isinstance(dst, FloatFormat):
        if d.nan:
            return dst.nan_code if dst.has_nan else 0
        if d.inf:
            if saturate or not dst.has_nan:
                return dst.max_code | (d.sign << (dst.width - 1))
            return (dst.inf_code | (d.sign << (dst.width - 1))) if dst.has_inf else dst.nan_code
        return round_to_float(d.sign, d.sig, d.exp, dst, saturate=saturate)
    if d.nan or d.inf:
        return dst.nan_code
    return round_to_posit(d.sign, d.sig, d.exp, dst)


@lru_cache(maxsize=16)
def _table(config):
    """Every target code by source code (16-bit sources)."""
    table = np.array([target_code(config, c) for c in range(1 << config.source_format.width)],
                     np.int64)
    table.flags.writeable = False
    return table


def cast_codes(config, codes):
    """Target codes of source ``codes`` (any shape)."""
    codes = np.asarray(codes, np.int64)
    if config.source_format.width <= 16:
        return _table(config)[codes]
    flat = [target_code(config, c) for c in codes.ravel()]
    return np.array(flat, np.int64).reshape(codes.shape)


def _source_codes(config, x, *, param="x"):
    """Source codes of element values ``x`` (exact values of the source format)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iubf":
        raise ValueError(f"{param}: dtype {arr.dtype} is not allowed; expected numbers")
    src = config.source_format
    values = arr.astype(np.float64)
    if src.width == 32:
        return fp32_codes(values, param=param)
    return to_codes(src, values, param=param)


def _as_beats(config, x):
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.size == 0 or (x.ndim == 2 and x.shape[1] != config.lanes) \
            or (x.ndim == 1 and x.size % config.lanes):
        raise ValueError(f"x: shape {x.shape} is not allowed; expected (beats, lanes="
                         f"{config.lanes}) or (elements,) with a multiple of {config.lanes} "
                         f"elements, at least one")
    return x.reshape(-1, config.lanes)


def cast(config, x, last=None):
    """Convert element values ``x`` (``(beats, lanes)`` or flat) of the source format;
    returns ``{"y": (beats, lanes) target codes, "last": (beats,) bool}``."""
    codes = _source_codes(config, _as_beats(config, x))
    beats = len(codes)
    last = np.zeros(beats, bool) if last is None else np.asarray(last, bool).reshape(-1)
    if last.shape != (beats,):
        raise ValueError(f"last: shape {last.shape} is not allowed; expected ({beats},)")
    return {"y": cast_codes(config, codes), "last": last}


def check_arrays(config, *, strict=True, x=None, last=None):
    """``ValueError`` unless ``x`` (and ``last``) are valid :func:`cast` arguments."""
    if x is None:
        raise ValueError("x: missing; expected an array of source values")
    cast(config, x, last)


def float_arrays(config):
    """``x`` holds source element values (floats)."""
    return ("x",)


def _join(codes, width):
    return [sum(int(v) << (width * lane) for lane, v in enumerate(row)) for row in codes]


def _split(config, values, width):
    mask = (1 << width) - 1
    return np.array([[(int(v) >> (width * lane)) & mask for lane in range(config.lanes)]
                     for v in values], np.int64).reshape(-1, config.lanes)


def pack_inputs(config, x, last=None):
    """Element values (``(beats, lanes)`` or flat) → ``i`` payload words."""
    return pack_codes(config, _source_codes(config, _as_beats(config, x)), last)


def pack_codes(config, codes, last=None):
    """Source ``codes`` (flat, padded with +0 codes to whole beats, or ``(beats, lanes)``) →
    ``i`` payload words; ``last`` per beat (default all 0)."""
    codes = np.asarray(codes, np.int64).reshape(-1)
    codes = np.concatenate([codes, np.zeros((-len(codes)) % config.lanes, np.int64)])
    codes = codes.reshape(-1, config.lanes)
    last = np.zeros(len(codes), bool) if last is None else np.asarray(last, bool)
    return pack(config.input_fields, {"x": _join(codes, config.source_format.width),
                                      "last": last})


def unpack_inputs(config, words):
    """``i`` words → ``{"x": source values, "last"}``."""
    f = unpack(config.input_fields, words)
    codes = _split(config, f["x"], config.source_format.width)
    return {"x": code_values_any(config.source_format, codes), "last": f["last"].astype(bool)}


def code_values_any(fmt, codes):
    """float64 values of codes of ``fmt`` (FP32 through numpy, narrower through tables)."""
    codes = np.asarray(codes, np.int64)
    if fmt.width == 32:
        with np.errstate(invalid="ignore"):          # NaN codes stay NaN
            return codes.astype(np.uint32).view(np.float32).astype(np.float64)
    return code_values(fmt, codes)


def pack_outputs(config, y, last):
    return pack(config.output_fields, {"y": _join(np.asarray(y).reshape(-1, config.lanes),
                                                  config.target_format.width),
                                       "last": np.asarray(last, bool)})


def unpack_outputs(config, words):
    f = unpack(config.output_fields, words)
    return {"y": _split(config, f["y"], config.target_format.width),
            "last": f["last"].astype(bool)}


def words(config, in_words):
    """Payload-level model: ``i`` words (any bits) → ``o`` words."""
    f = unpack(config.input_fields, in_words)
    codes = _split(config, f["x"], config.source_format.width)
    return pack_outputs(config, cast_codes(config, codes), f["last"])


def random_inputs(config, rng, beats):
    """Values of uniformly random source codes (NaN, inf, subnormals at their frequencies),
    ``(beats, lanes)``."""
    codes = rng.integers(0, 1 << config.source_format.width, size=(beats, config.lanes))
    return {"x": code_values_any(config.source_format, codes)}


#: registry-facing names (see :class:`accelgen.generators.registry.GeneratorSpec`)
run = cast
