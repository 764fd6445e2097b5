"""Element formats (accelgen.formats), their golden tables and their hardware twins
(accelgen.hdl.common.floats), against the reference packages: ml_dtypes for the floats,
universal-dtypes (Stillwater Universal) for the posits, numpy float32 for IEEE addition."""

import ml_dtypes
import numpy as np
import pytest
import universal_dtypes
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.sim import Simulator

from accelgen.formats import (ELEMENT_FORMATS, FLOAT_FORMATS, FP32, MX_FORMATS, POSIT_FORMATS,
                              element_format, round_to_float)
from accelgen.hdl.common.floats import add_fp32, decode_element, round_fp32
from accelgen.numerics import ConfigError
from accelgen.sim.golden.elements import (FP32_NAN, add_fp32 as golden_add, code_values,
                                          decode_table, round_fp32 as golden_round, to_codes)

SMALL = {n: f for n, f in ELEMENT_FORMATS.items() if f.width <= 16}


def _reference_values(fmt):
    """float64 value of every code of ``fmt`` from the reference package (MX element types:
    their element format's; MXINT8: the int8 value times 2**-6, as OCP MX v1.0 defines it)."""
    codes = np.arange(1 << fmt.width)
    if fmt.name == "mxi8":
        return codes.astype(np.uint8).view(np.int8) / 64.0
    if fmt.name in MX_FORMATS:
        return _reference_values(fmt.element)
    if fmt.name in POSIT_FORMATS:
        # posit(4,1) is the prefix of posit(8,1): code c of p4 is code c << 4 of p8e1
        dtype, shift = {"p4": (universal_dtypes.posit8e1, 4), "p8": (universal_dtypes.posit8e0, 0),
                        "p16": (universal_dtypes.posit16e1, 0)}[fmt.name]
        store = np.uint16 if fmt.width > 8 else np.uint8
        return (codes << shift).astype(store).view(dtype).astype(np.float64)
    dtype = np.dtype(getattr(ml_dtypes, fmt.ml_dtype, None) or fmt.ml_dtype)
    store = np.uint16 if fmt.width > 8 else np.uint8
    with np.errstate(invalid="ignore"):      # NaN codes
        return codes.astype(store).view(dtype).astype(np.float64)


def _same(x, y):
    """Equal values, equal signs of zero, NaN where NaN (NaN signs and payloads aside)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    both_nan = np.isnan(x) & np.isnan(y)
    return both_nan | ((x == y) & (np.signbit(x) == np.signbit(y)))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_decode_every_code_matches_reference(name):
    fmt = SMALL[name]
    ref = _reference_values(fmt)
    mine = code_values(fmt, np.arange(1 << fmt.width))
    bad = np.flatnonzero(~_same(mine, ref))
    assert not bad.size, f"{name}: codes {bad[:5]} decode to {mine[bad[:5]]}, want {ref[bad[:5]]}"
    # the declared figures agree with the reference too
    finite = ref[np.isfinite(ref)]
    assert code_values(fmt, [fmt.max_code])[0] == finite.max()
    assert (fmt.nan_code is None) == (not np.isnan(ref).any())
    assert (fmt.inf_code is None) == (not np.isinf(ref).any())


def test_published_format_figures():
    """numerics.md: E4M3 max 448, min subnormal 2^-9; E5M2 max 57344, min subnormal 2^-16;
    E3M2 max 28; E2M3 max 7.5; E2M1 max 6; posit(8,0) maxpos 64, posit(16,1) maxpos 2^28."""
    top = {n: code_values(f, [f.max_code])[0] for n, f in SMALL.items()}
    assert (top["e4m3"], top["e5m2"], top["e3m2"], top["e2m3"], top["e2m1"]) == \
        (448, 57344, 28, 7.5, 6)
    assert (top["p8"], top["p16"], top["p4"]) == (64, 2.0 ** 28, 16)
    assert code_values(FLOAT_FORMATS["e4m3"], [1])[0] == 2.0 ** -9
    assert code_values(FLOAT_FORMATS["e5m2"], [1])[0] == 2.0 ** -16
    assert sorted(set(np.abs(code_values(FLOAT_FORMATS["e2m1"], range(16))))) == \
        [0, 0.5, 1, 1.5, 2, 3, 4, 6]


def _roundings(fmt, rng):
    """Values that exercise rounding into ``fmt``: random magnitudes over its whole range and
    beyond, every value, every midpoint, and the midpoints nudged by one ulp. float32 for the
    formats narrower than FP32: ml_dtypes casts float64 to them through float32 (a double
    rounding: float64 -431.99999999999994 becomes E4M3 -448, not -416), and from float32 its
    cast rounds once."""
    if fmt.width <= 16:
        dtype, values = np.float32, code_values(fmt, np.arange(1 << fmt.width))
        random = rng.standard_normal(4000) * 2.0 ** rng.integers(-150, 125, 4000)
        extremes = [0.0, -0.0, 3e38, -3e38, 1e-45, -1e-45]
    else:
        dtype = np.float64
        values = rng.integers(0, 1 << 32, 4000).astype(np.uint32).view(np.float32)
        values = values[np.isfinite(values)]
        random = rng.standard_normal(4000) * 2.0 ** rng.integers(-160, 140, 4000)
        extremes = [0.0, -0.0, 1e300, -1e300, 5e-324, -5e-324]
    finite = np.unique(np.asarray(values, np.float64)[np.isfinite(values)])
    mids = ((finite[:-1] + finite[1:]) / 2).astype(dtype)
    picks = [finite, mids, np.nextafter(mids, dtype(np.inf)), np.nextafter(mids, dtype(-np.inf)),
             random, extremes]
    return np.concatenate([np.asarray(p, dtype) for p in picks])


def _round_with(fmt, values, saturate=False):
    out = []
    for v in np.asarray(values, np.float64):
        mant, exp = np.frexp(abs(v))
        out.append(round_to_float(int(np.signbit(v)), int(mant * 2 ** 53), int(exp) - 53, fmt,
                                  saturate=saturate))
    return np.array(out, np.int64)


@pytest.mark.parametrize("name", sorted(FLOAT_FORMATS))
def test_round_to_float_matches_ml_dtypes_casts(name):
    """Round to nearest even, overflow to inf (E5M2, BF16, FP16, FP32), NaN (E4M3) or the
    largest value (FP6/FP4, which have neither), as ml_dtypes/numpy casts do."""
    fmt = FLOAT_FORMATS[name]
    rng = np.random.default_rng(3)
    values = _roundings(fmt, rng)
    dtype = np.dtype(getattr(ml_dtypes, fmt.ml_dtype, None) or fmt.ml_dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        want = values.astype(dtype).astype(np.float64)
    got = _round_with(fmt, values)
    got_values = (got.astype(np.uint32).view(np.float32).astype(np.float64) if fmt is FP32
                  else code_values(fmt, got))
    bad = np.flatnonzero(~_same(got_values, want))
    assert not bad.size, f"{name}: {values[bad[:4]]} -> {got_values[bad[:4]]}, want {want[bad[:4]]}"


@pytest.mark.parametrize("name", ["e4m3", "e5m2", "bf16"])
def test_round_to_float_saturating(name):
    """Saturating conversion = clip to +-max, then the cast (numerics.md: E4M3 |x| <= 464
    rounds to 448, anything above saturates instead of becoming NaN)."""
    fmt = FLOAT_FORMATS[name]
    values = _roundings(fmt, np.random.default_rng(4))
    values = values[np.isfinite(values)]
    top = code_values(fmt, [fmt.max_code])[0]
    dtype = np.dtype(getattr(ml_dtypes, fmt.ml_dtype))
    want = np.clip(values, -top, top).astype(dtype).astype(np.float64)
    got = code_values(fmt, _round_with(fmt, values, saturate=True))
    assert _same(got, want).all()
    e4m3 = FLOAT_FORMATS["e4m3"]
    assert [code_values(e4m3, _round_with(e4m3, [x]))[0] for x in (464.0, 464.01)][0] == 448
    assert np.isnan(code_values(e4m3, _round_with(e4m3, [464.01]))[0])


def test_to_codes_takes_exact_values_only():
    e4m3, e2m1 = FLOAT_FORMATS["e4m3"], FLOAT_FORMATS["e2m1"]
    assert to_codes(e4m3, [1.0, -0.0, 448.0, np.nan], param="a").tolist() == \
        [0x38, 0x80, 0x7E, 0x7F]
    with pytest.raises(ValueError, match=r"^a: 0.3 is not a value of format e4m3"):
        to_codes(e4m3, [0.3], param="a")
    with pytest.raises(ValueError, match=r"^b: NaN is not allowed in format e2m1 \(it has none\)"):
        to_codes(e2m1, [np.nan], param="b")
    with pytest.raises(ValueError, match=r"^b: inf is not allowed in format e4m3"):
        to_codes(e4m3, [np.inf], param="b")


def test_element_format_names():
    assert element_format("e4m3") is FLOAT_FORMATS["e4m3"]
    assert element_format("s8").width == 8
    with pytest.raises(ConfigError, match=r"^format: 'e9m9' is not an element format; allowed"):
        element_format("e9m9")


# -- hardware twins ------------------------------------------------------------------------


def _run_comb(m, drive, probes, vectors):
    """Values of ``probes`` for each input vector (``drive`` maps signals to values)."""
    results = []

    async def bench(ctx):
        for vector in vectors:
            for sig, value in zip(drive, vector):
                ctx.set(sig, value)
            results.append(tuple(ctx.get(p) for p in probes))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.parametrize("name", sorted(SMALL))
def test_hdl_decoder_every_code(name):
    """Every code of every <= 16-bit format decodes in hardware as in the golden table (the
    exponent of zeros and specials, and the sign of a zero, are free)."""
    fmt = SMALL[name]
    m = Module()
    x = Signal(fmt.width)
    d = decode_element(m, x, fmt, name="d")
    probes = [Signal(v.shape(), name=k) for k, v in vars(d).items()]
    m.d.comb += [p.eq(v) for p, v in zip(probes, vars(d).values())]
    got = _run_comb(m, [x], probes, [(c,) for c in range(1 << fmt.width)])
    sign, sig, exp, nan, inf = decode_table(fmt)
    for code, (g_sign, g_sig, g_exp, g_nan, g_inf) in enumerate(got):
        want = (int(sign[code]), int(sig[code]), int(exp[code]), bool(nan[code]), bool(inf[code]))
        free = want[1] == 0
        have = (g_sign, g_sig, g_exp, bool(g_nan), bool(g_inf))
        if free:
            have, want = (have[0] * want[4], *have[1:2], 0, *have[3:]), \
                (want[0] * want[4], *want[1:2], 0, *want[3:])
        assert have == want, f"{name} code {code:#x}"


def _directed_fp32():
    """Codes where addition is delicate: zeros, subnormals, the normal boundary, max, inf,
    NaN, and neighbours."""
    base = [0, 1, 2, 0x007FFFFF, 0x00800000, 0x00800001, 0x3F800000, 0x3F800001, 0x3FFFFFFF,
            0x4B800000, 0x7F7FFFFF, 0x7F7FFFFE, 0x7F800000, 0x7FC00000, 0x7FA00001, 0x33800000,
            0x34000000, 0x0C000000]
    return base + [c | 0x80000000 for c in base]


def test_hdl_fp32_addition_against_numpy():
    """IEEE binary32 addition, round to nearest even, subnormals kept, as numpy adds float32:
    every directed pair, and random pairs with close exponents (cancellation, ties)."""
    rng = np.random.default_rng(5)
    m = Module()
    x, y = Signal(32), Signal(32)
    out = add_fp32(m, x, y, name="sum")
    directed = _directed_fp32()
    pairs = [(a, b) for a in directed for b in directed]
    xs = rng.integers(0, 1 << 32, 1500, dtype=np.uint64)
    near = (xs ^ (rng.integers(0, 2, 1500, dtype=np.uint64) << 31)) + \
        rng.integers(-40, 40, 1500).astype(np.uint64)
    pairs += [(int(a), int(b) & 0xFFFFFFFF) for a, b in zip(xs, near)]
    pairs += [(int(a), int(b)) for a, b in rng.integers(0, 1 << 32, (1500, 2), dtype=np.uint64)]
    # the sticky boundary: the smaller operand's trailing zeros against the exponent gap
    for tz in range(24):
        for gap in range(max(0, tz - 1), tz + 6):
            frac = (int(rng.integers(0, 1 << 23)) | (1 << 23)) >> tz << tz
            for sub in (0, 1):
                big = (150 << 23) | int(rng.integers(0, 1 << 23))
                small = ((150 - gap) << 23) | (frac & 0x7FFFFF) | (sub << 31)
                pairs += [(big, small), (small, big)]
    got = _run_comb(m, [x, y], [out], pairs)
    for (a, b), (g,) in zip(pairs, got):
        with np.errstate(all="ignore"):
            total = np.uint32(a).view(np.float32) + np.uint32(b).view(np.float32)
        want = FP32_NAN if np.isnan(total) else int(np.float32(total).view(np.uint32))
        assert g == want, f"{a:#010x} + {b:#010x}: {g:#010x}, want {want:#010x}"
        assert g == golden_add(a, b)


@pytest.mark.parametrize("exp_lsb", [-200, -170, -149, -40, 0, 90])
def test_hdl_fp32_rounding_of_fixed_point(exp_lsb):
    """A 40-bit two's complement value at LSB weight 2**exp_lsb rounded to FP32 as the golden
    model rounds it: random values, values at every bit length, ties, overflow, underflow."""
    rng = np.random.default_rng(exp_lsb & 0xFFFF)
    m = Module()
    v = Signal(signed(40))
    neg = v < 0
    out = round_fp32(m, Mux(neg, -v, v)[:40], exp_lsb, neg, name="r")
    values = [int(x) for x in rng.integers(-(1 << 39), 1 << 39, 600)]
    values += [s * ((1 << n) + t) for n in range(0, 39) for t in (0, 1, (1 << max(n - 24, 0)))
               for s in (1, -1) if (1 << n) + t < 1 << 39]
    values += [s * (((1 << 24) + 1) << k) + (s * (1 << (k - 1)) if k else 0)
               for k in range(0, 14) for s in (1, -1)]                      # exact ties
    got = _run_comb(m, [v], [out], [(x,) for x in values])
    for x, (g,) in zip(values, got):
        assert g == golden_round(x, exp_lsb), f"{x} * 2**{exp_lsb}"
