"""Vectorized element arithmetic for the golden models: decode tables, exact encoding of user
values, exact products and sums, and FP32 rounding/addition. The formats themselves (and the
scalar definitions these tables are built from) live in :mod:`accelgen.formats`.

An element array is decoded to five arrays of one shape -- ``sign``, ``sig``, ``exp`` (int64)
and ``nan``, ``inf`` (bool) -- with ``value = (-1)**sign * sig * 2**exp``.
"""

from functools import lru_cache

import numpy as np

from ...formats import FP32, round_to_float
from ...numerics import IntFormat

__all__ = ["decode_table", "decode_codes", "decode_values", "to_codes", "code_values", "quantize",
           "exact_products", "round_fp32", "add_fp32", "fp32_value", "fp32_codes", "FP32_NAN"]

#: the NaN every FP32 result carries (quiet, positive)
FP32_NAN = FP32.nan_code


@lru_cache(maxsize=None)
def decode_table(fmt):
    """``(sign, sig, exp, nan, inf)`` arrays indexed by code, for every code of ``fmt`` (a
    float or posit format of at most 16 bits)."""
    if fmt.width > 16:
        raise ValueError(f"decode_table: {fmt.name} has {fmt.width} bits; tables stop at 16")
    rows = [fmt.decode(code) for code in range(1 << fmt.width)]
    table = (np.array([d.sign for d in rows], np.int64), np.array([d.sig for d in rows], np.int64),
             np.array([d.exp for d in rows], np.int64), np.array([d.nan for d in rows], bool),
             np.array([d.inf for d in rows], bool))
    for arr in table:
        arr.flags.writeable = False
    return table


@lru_cache(maxsize=None)
def _value_index(fmt):
    """Sorted finite values of ``fmt`` with their codes (one code per value: +0 for zero)."""
    sign, sig, exp, nan, inf = decode_table(fmt)
    values = np.where(sign == 1, -1.0, 1.0) * sig * np.exp2(exp.astype(np.float64))
    finite = ~nan & ~inf & ~((sig == 0) & (sign == 1))
    codes = np.flatnonzero(finite)
    order = np.argsort(values[codes], kind="stable")
    return values[codes][order], codes[order]


def code_values(fmt, codes):
    """float64 values of ``codes`` (NaN for NaN/NaR, +-inf, -0.0 for negative zero codes)."""
    sign, sig, exp, nan, inf = (t[np.asarray(codes, np.int64)] for t in decode_table(fmt))
    mag = np.where(inf, np.inf, sig * np.exp2(exp.astype(np.float64)))
    return np.where(nan, np.nan, np.where(sign == 1, -mag, mag))


def to_codes(fmt, values, *, param):
    """Codes of ``fmt`` for float ``values`` that it represents exactly (NaN to its NaN
    code, -0.0 to the negative-zero code where one exists); ``ValueError`` naming ``param``
    for any other value."""
    values = np.asarray(values, np.float64)
    table, codes = _value_index(fmt)
    idx = np.clip(np.searchsorted(table, values), 0, len(table) - 1)
    out = codes[idx].astype(np.int64)
    exact = table[idx] == values
    nan, inf = np.isnan(values), np.isinf(values)
    if nan.any():
        if fmt.nan_code is None:
            raise ValueError(f"{param}: NaN is not allowed in format {fmt.name} (it has none)")
        out[nan] = fmt.nan_code
    if inf.any():
        if fmt.inf_code is None:
            raise ValueError(f"{param}: inf is not allowed in format {fmt.name} (it has none; "
                             f"largest value {table[-1]:g})")
        out[inf] = fmt.inf_code | (np.signbit(values[inf]).astype(np.int64) << (fmt.width - 1))
    if fmt.negative_zero_code is not None:
        out[(values == 0) & np.signbit(values)] = fmt.negative_zero_code
    bad = ~(exact | nan | inf)
    if bad.any():
        x = values[bad][0]
        raise ValueError(f"{param}: {float(x)!r} is not a value of format {fmt.name}; round it "
                         f"first (e.g. ml_dtypes), the block takes exact element values")
    return out


def quantize(fmt, values):
    """Codes of ``fmt`` (a float/posit/MX element format of at most 16 bits) nearest to the
    finite float64 ``values``, ties to the even code, saturating at the largest magnitude:
    how test data and error workloads are made (not a hardware semantics; see
    :func:`accelgen.formats.round_to_float` for the converters')."""
    table, codes = _value_index(fmt)
    values = np.clip(np.asarray(values, np.float64), table[0], table[-1])
    hi = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
    lo = hi - 1
    d_lo, d_hi = values - table[lo], table[hi] - values
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (codes[hi] % 2 == 0))
    return np.where(pick_hi, codes[hi], codes[lo]).astype(np.int64)


def decode_codes(fmt, codes):
    """Decoded arrays of ``codes`` (float/posit) or of integer values (``IntFormat``)."""
    codes = np.asarray(codes, np.int64)
    if isinstance(fmt, IntFormat):
        zeros = np.zeros(codes.shape, bool)
        return (codes < 0).astype(np.int64), np.abs(codes), np.zeros_like(codes), zeros, zeros
    return tuple(t[codes] for t in decode_table(fmt))


def decode_values(fmt, values, *, param):
    """Decoded arrays of user ``values`` of ``fmt``: integers in range for an
    ``IntFormat`` (NaN, inf or fractions refused), exact values of a float/posit format."""
    arr = np.asarray(values)
    if isinstance(fmt, IntFormat):
        if arr.dtype.kind == "f":
            fractional = ~np.isfinite(arr) | (arr != np.round(arr))
            if fractional.any():
                raise ValueError(f"{param}: {float(arr[fractional][0])!r} is not allowed in "
                                 f"integer format {fmt.name}; expected integers")
        ints = arr.astype(np.int64)
        if ints.size and (ints.min() < fmt.min or ints.max() > fmt.max):
            raise ValueError(f"{param}: values outside {fmt.name} [{fmt.min}, {fmt.max}]")
        return decode_codes(fmt, ints)
    return decode_codes(fmt, to_codes(fmt, arr, param=param))


def exact_products(da, db, exp_lsb):
    """Exact products of two decoded arrays as Python integers (object array) in units of
    ``2**exp_lsb``, plus the product flags ``(nan, pos_inf, neg_inf)``: NaN when an operand is
    NaN or inf times zero; inf times a nonzero finite or inf is an infinity of the product's
    sign. Products that are NaN or inf count as 0 in the integer array."""
    sa, ma, ea, na, ia = da
    sb, mb, eb, nb, ib = db
    sign = sa ^ sb
    zero_a, zero_b = (ma == 0) & ~ia & ~na, (mb == 0) & ~ib & ~nb
    nan = na | nb | (ia & zero_b) | (ib & zero_a)
    inf = (ia | ib) & ~nan
    special = nan | inf
    shift = np.where(special, 0, ea + eb - exp_lsb)
    if (shift < 0).any():
        raise AssertionError("exact_products: a product lies below exp_lsb")
    mag = (ma * mb).astype(object) * (np.ones(shift.shape, object) << shift.astype(object))
    value = np.where(special, 0, np.where(sign == 1, -mag, mag))
    return value, nan, inf & (sign == 0), inf & (sign == 1)


def round_fp32(total, exp_lsb, nan=False, pos_inf=False, neg_inf=False):
    """FP32 code of the exact value ``total * 2**exp_lsb`` (``total`` a Python int) with
    round-to-nearest-even, or of the special the flags name: NaN when ``nan`` or both
    infinities, else the infinity. Overflow rounds to inf, underflow to a signed zero."""
    if nan or (pos_inf and neg_inf):
        return FP32_NAN
    if pos_inf or neg_inf:
        return FP32.inf_code | (int(neg_inf) << 31)
    return round_to_float(int(total < 0), abs(int(total)), exp_lsb, FP32)


def add_fp32(x, y):
    """IEEE binary32 ``x + y`` (codes) with round-to-nearest-even, subnormals kept; a NaN
    result is :data:`FP32_NAN`."""
    with np.errstate(all="ignore"):
        total = np.uint32(x).view(np.float32) + np.uint32(y).view(np.float32)
    return FP32_NAN if np.isnan(total) else int(np.float32(total).view(np.uint32))


def fp32_value(codes):
    """float64 values of FP32 ``codes`` (an int array)."""
    return np.asarray(codes, np.int64).astype(np.uint32).view(np.float32).astype(np.float64)


def fp32_codes(values, *, param):
    """FP32 codes of float ``values`` that FP32 represents exactly (NaN, inf and -0.0
    included; a NaN keeps its float32 payload); ``ValueError`` naming ``param`` for any other
    value."""
    values = np.asarray(values, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        single = values.astype(np.float32)
    inexact = ~((single.astype(np.float64) == values) | np.isnan(values))
    if inexact.any():
        raise ValueError(f"{param}: {float(values[inexact][0])!r} is not a value of format "
                         f"fp32; round it first (numpy float32)")
    return single.view(np.uint32).astype(np.int64)
