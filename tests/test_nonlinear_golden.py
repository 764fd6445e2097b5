"""Golden models of blocks ``activation`` and ``softmax`` against a second, independent
implementation written only from their specification text (the module docstrings of
:mod:`accelgen.generators.activation` / :mod:`accelgen.generators.softmax` and of
:mod:`accelgen.approx`), in plain Python integers.

The reference shares with the golden models only the constants the configs expose by design
(PWL segments, I-BERT constants, the dyadic / division multipliers, ``base2``); the lookup tables
(``config.table``, ``pow2_table``, ``recip_table``) are recomputed here from their definitions,
and the shared constants are checked against the properties the spec states for them.

Sections: reference; constant checks; activation (exhaustive over every input code);
softmax (step 1 exhaustive, rows random and directed, payload words); sensitivity (planted
bugs that the comparison must catch); disagreements with the spec (strict xfail).
"""

import math
import random
from dataclasses import replace
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelgen import approx
from accelgen.generators.activation import PRESETS as ACT_PRESETS
from accelgen.generators.activation import ActivationConfig
from accelgen.generators.softmax import PRESETS as SM_PRESETS
from accelgen.generators.softmax import RECIP_Q, SQRT2_Q15, SoftmaxConfig
from accelgen.sim.golden import activation as gact
from accelgen.sim.golden import softmax as gsm

HYP = settings(derandomize=True, database=None, deadline=None,
               suppress_health_check=[HealthCheck.too_slow])

# -- reference: the spec in Python ints ---------------------------------------------------------


def _fmt(name):
    """``(min, max, width, signed)`` of a format spelled ``s8``/``u10``."""
    width = int(name[1:])
    if name[0] == "s":
        return -(1 << (width - 1)), (1 << (width - 1)) - 1, width, True
    return 0, (1 << width) - 1, width, False


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _shr_half_up(v, s):
    """``v / 2**s`` rounded half up (``s >= 0``; no rounding term at ``s == 0``)."""
    return (v + (1 << (s - 1))) >> s if s > 0 else v


def _unpack(word, offset, width, signed):
    v = (word >> offset) & ((1 << width) - 1)
    return v - (1 << width) if signed and v >> (width - 1) else v


# activation


def _float_f(function, v):
    """The float64 functions named in the activation docstring."""
    if function == "gelu":
        return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    if function == "silu":
        try:
            return v / (1.0 + math.exp(-v))
        except OverflowError:
            return 0.0
    if function == "sigmoid":
        try:
            return 1.0 / (1.0 + math.exp(-v))
        except OverflowError:
            return 0.0
    if function == "tanh":
        return math.tanh(v)
    if function == "exp":                      # exp(min(v, 0)): 1 above 0
        return math.exp(min(v, 0.0))
    if function == "reciprocal":               # +inf at v <= 0
        return 1.0 / v if v > 0 else math.inf
    if function == "rsqrt":
        return 1.0 / math.sqrt(v) if v > 0 else math.inf
    raise AssertionError(function)


def ref_truth(cfg, x):
    """``r(x) = f(in_scale * (x - in_zero_point)) / out_scale + out_zero_point``."""
    return (_float_f(cfg.function, cfg.in_scale * (x - cfg.in_zero_point)) / cfg.out_scale
            + cfg.out_zero_point)


def ref_table_entry(cfg, x):
    """``round_half_even(clamp(r(x)))`` (Python's ``round`` ties to even)."""
    lo, hi, _, _ = _fmt(cfg.out_format)
    return round(min(max(ref_truth(cfg, x), lo), hi))


def _pwl_segment(pwl, x):
    """Segment ``j`` with ``base_j <= x < base_{j+1}``; uniform: ``(x - lo) >> shift``."""
    if pwl.uniform_shift is not None:
        return (x - pwl.lo) >> pwl.uniform_shift
    j = 0
    while j + 1 < len(pwl.bases) and pwl.bases[j + 1] <= x:
        j += 1
    return j


def _pwl_value(pwl, x):
    """``(C_j + M_j * (x - base_j) + 2**(F-1)) >> F`` (no rounding term at ``F == 0``)."""
    j = _pwl_segment(pwl, x)
    return _shr_half_up(pwl.intercepts[j] + pwl.slopes[j] * (x - pwl.bases[j]), pwl.frac)


def _ibert_exp_zq(poly, x):
    """``(z, q)`` of i-exp; a positive code is taken as 0 (``exp(min(v, 0))``)."""
    x = max(min(x, 0), poly.n * poly.x0_int)
    q = x // poly.x0_int
    r = x - q * poly.x0_int
    return r * (r + poly.b_int) + poly.c_int, q


def _ibert_gelu_y(poly, x):
    """``y_int`` of i-GELU: ``x * (e + one_int)``, ``e = sgn(x) * poly >> erf_shift``."""
    sgn = (x > 0) - (x < 0)
    e = (sgn * ((min(abs(x), -poly.b_int) + poly.b_int) ** 2 + poly.c_int)) >> poly.erf_shift
    return x * (e + poly.one_int)


def ref_activation(cfg, x):
    """Output code of input code ``x``."""
    lo, hi, _, _ = _fmt(cfg.out_format)
    if cfg.backend == "table":
        return ref_table_entry(cfg, x)
    if cfg.backend == "pwl":
        return _clamp(_pwl_value(cfg.pwl, x), lo, hi)
    ib = cfg.ibert
    if cfg.function == "exp":
        z, q = _ibert_exp_zq(ib["poly"], x)
        y = _shr_half_up(z * ib["mult"], ib["shift"] + q)
    else:
        y = _shr_half_up(ib["sign"] * _ibert_gelu_y(ib["poly"], x) * ib["mult"], ib["shift"])
    return _clamp(cfg.out_zero_point + y, lo, hi)


def ref_activation_words(cfg, in_words):
    """``o`` words of ``i`` words: lane ``l`` at ``l * width``, then ``last``."""
    _, _, iw, isg = _fmt(cfg.in_format)
    _, _, ow, _ = _fmt(cfg.out_format)
    out = []
    for w in in_words:
        word = 0
        for lane in range(cfg.lanes):
            y = ref_activation(cfg, _unpack(w, lane * iw, iw, isg))
            word |= (y & ((1 << ow) - 1)) << (lane * ow)
        out.append(word | (_unpack(w, cfg.lanes * iw, 1, False) << (cfg.lanes * ow)))
    return out


# softmax

RQ = 16                                        # the spec's "16" of steps 3-4
SQRT2 = math.isqrt(2 << 30)                    # floor(sqrt(2) * 2**15)


@lru_cache(maxsize=None)
def ref_pow2_table(a, f):
    """``round(2**(f / 2**F) * 2**A)`` for each ``f``."""
    return tuple(round(2 ** (i / (1 << f)) * (1 << a)) for i in range(1 << f))


@lru_cache(maxsize=None)
def ref_recip_table(j):
    """``T[i] = round(2**16 * (1/a + 1/b) / 2)``, ``a = 1 + i/2**J``, ``b = 1 + (i+1)/2**J``,
    in exact rationals (ties to even)."""
    n = 1 << j
    return tuple(round(Fraction(1 << RQ) * (Fraction(n, n + i) + Fraction(n, n + i + 1)) / 2)
                 for i in range(n))


def ref_exp_domain(cfg, x):
    """``(k, v)`` of step 1."""
    if cfg.exp == "ibert":
        ib = cfg.ibert_exp
        poly = ib["poly"]
        q = -math.floor(-0.6931 / cfg.in_scale)
        k = x // q
        p = x - k * q - q
        z = p * (p + poly.b_int) + poly.c_int
        return k, _shr_half_up(z * ib["mult"], ib["shift"])
    c, g = cfg.base2
    t = (x * c) >> g
    k, f = t >> cfg.exp_frac, t & ((1 << cfg.exp_frac) - 1)
    if cfg.exp == "table":
        return k, ref_pow2_table(cfg.A, cfg.exp_frac)[f]
    return k, _pwl_value(cfg.pow2_pwl, f)


def ref_reciprocal(cfg, s):
    """``(e, r)`` of step 3."""
    e = s.bit_length() - 1
    m = s << (RQ - e) if e <= RQ else s >> (e - RQ)
    j = cfg.recip_bits
    if cfg.recip == "table":
        r = ref_recip_table(j)[(m >> (RQ - j)) & ((1 << j) - 1)]
    else:
        r = _pwl_value(cfg.recip_pwl, m - (1 << RQ))
    if cfg.newton:
        r = (r * ((1 << (RQ + 1)) - ((m * r) >> RQ))) >> RQ
    return e, r


def ref_masked(cfg):
    return {"u8": 0, "s8": -128, "log2": 15}[cfg.output]


def ref_softmax_row(cfg, xs, masks=None):
    """Output codes of one row of logits ``xs`` (``masks[i]`` true: excluded)."""
    masks = [False] * len(xs) if masks is None else [bool(m) for m in masks]
    kv = [ref_exp_domain(cfg, x) for x in xs]
    big_k = s = None
    for (k, v), m in zip(kv, masks):
        if m:
            continue
        if big_k is None:
            big_k, s = k, v
        elif k > big_k:
            s = (s >> (k - big_k)) + v
            big_k = k
        else:
            s = s + (v >> (big_k - k))
    if big_k is None:
        return [ref_masked(cfg)] * len(xs)
    e, r = ref_reciprocal(cfg, s)
    out = []
    for (k, v), m in zip(kv, masks):
        if m:
            out.append(ref_masked(cfg))
            continue
        big_p, sh = v * r, big_k - k + e + RQ
        if cfg.output == "log2":
            n = big_p.bit_length() - 1
            top = big_p >> (n - 15) if n >= 15 else big_p << (15 - n)
            out.append(_clamp(sh - n - (1 if top > SQRT2 else 0), 0, 15))
        else:
            # probability * out_levels (256 or 255), rounded half up
            y = min(255, (big_p * cfg.out_levels + (1 << (sh - 1))) >> sh)
            out.append(y - 128 if cfg.output == "s8" else y)
    return out


def ref_softmax_words(cfg, in_words):
    """``o`` words of raw ``i`` words (LSB first: ``x``, ``mask`` when built, ``last``). A row
    ends at ``last`` or at its ``n_max``-th beat (whose output carries ``last``); an
    unfinished final row gives nothing."""
    _, _, xw, _ = _fmt(cfg.in_format)
    ow = 4 if cfg.output == "log2" else 8
    out, xs, ms = [], [], []
    for w in in_words:
        xs.append(_unpack(w, 0, xw, True))
        ms.append(_unpack(w, xw, 1, False) if cfg.mask else 0)
        if _unpack(w, xw + cfg.mask, 1, False) or len(xs) == cfg.n_max:
            ys = ref_softmax_row(cfg, xs, ms)
            out += [(y & ((1 << ow) - 1)) | (int(i == len(ys) - 1) << ow)
                    for i, y in enumerate(ys)]
            xs, ms = [], []
    return out


# -- configurations -----------------------------------------------------------------------------

A = ActivationConfig
EXTRA_ACT = {
    "gelu_table_u8zp": A(function="gelu", in_format="u8", in_zero_point=128, in_scale=1 / 32,
                         out_format="s8", out_zero_point=-20, out_scale=1 / 64),
    "silu_pwl_u_f0": A(function="silu", backend="pwl", in_scale=1 / 16, out_scale=1 / 16,
                       segments=8, spacing="uniform", pwl_frac=0),
    "sigmoid_table_sat": A(function="sigmoid", in_format="s6", in_scale=0.25, out_format="u4",
                           out_scale=1 / 16),
    "tanh_table_s4": A(function="tanh", in_format="s10", in_scale=1 / 128, out_format="s4",
                       out_scale=1 / 8),
    "exp_table_zp": A(function="exp", in_zero_point=-100, in_scale=1 / 16, out_format="u8",
                      out_scale=1 / 256),
    "exp_pwl_nu_f12": A(function="exp", backend="pwl", in_format="s10", in_scale=1 / 64,
                        out_format="u16", out_scale=2 ** -16, segments=64, pwl_frac=12),
    "recip_table_zp": A(function="reciprocal", in_format="u8", in_zero_point=10,
                        in_scale=1 / 16, out_format="u8", out_scale=1 / 16),
    "rsqrt_pwl_u_f12": A(function="rsqrt", backend="pwl", in_format="u12", in_scale=1 / 256,
                         out_format="u8", out_scale=1 / 32, segments=256, spacing="uniform",
                         pwl_frac=12),
    "gelu_pwl_2seg": A(function="gelu", backend="pwl", in_format="s4", in_scale=0.5,
                       out_format="s4", out_scale=0.5, out_zero_point=3, segments=2,
                       spacing="uniform", pwl_frac=0),
    "gelu_pwl_every_code": A(function="gelu", backend="pwl", in_format="s4", in_scale=0.5,
                             out_format="s8", out_scale=1 / 16, segments=16, pwl_frac=0),
    "tanh_pwl_nu_f24": A(function="tanh", backend="pwl", in_format="s12", in_zero_point=100,
                         in_scale=1 / 512, out_format="s8", out_scale=1 / 100, segments=40,
                         pwl_frac=24),
    "sigmoid_pwl_nu_f0": A(function="sigmoid", backend="pwl", in_format="u8",
                           in_zero_point=128, in_scale=1 / 16, out_format="u8",
                           out_scale=1 / 255, segments=12, pwl_frac=0),
    "recip_pwl_signed": A(function="reciprocal", backend="pwl", in_scale=1 / 8,
                          out_format="u4", out_scale=1 / 4, segments=8, spacing="uniform"),
    "silu_table_s2": A(function="silu", in_format="s2", in_scale=1.0, out_format="s2",
                       out_scale=1.0),
    "rsqrt_table_s8": A(function="rsqrt", in_zero_point=-128, in_scale=1 / 64,
                        out_format="u8", out_scale=1 / 16, lanes=3),
    "gelu_ibert_s16": A(function="gelu", backend="ibert", in_format="s16", in_scale=2 ** -12,
                        out_format="s16", out_scale=2 ** -12, mult_bits=24),
    "gelu_ibert_u8zp": A(function="gelu", backend="ibert", in_scale=0.1, out_format="u8",
                         out_zero_point=20, out_scale=1 / 64, mult_bits=8),
    "exp_ibert_u4": A(function="exp", backend="ibert", in_scale=0.25, out_format="u4",
                      out_scale=1 / 16, mult_bits=8),
    "exp_ibert_s8zp": A(function="exp", backend="ibert", in_format="s12", in_scale=1 / 256,
                        out_format="s8", out_zero_point=-128, out_scale=1 / 256, lanes=2),
    "exp_ibert_clamp_visible": A(function="exp", backend="ibert", in_format="s12",
                                 in_scale=2 ** -6, out_format="u16", out_scale=1e-10,
                                 mult_bits=24),
}
ACT_CONFIGS = {**{f"preset-{k}": v for k, v in ACT_PRESETS.items()}, **EXTRA_ACT}

S = SoftmaxConfig
EXTRA_SM = {   # exp x recip x newton, each exp with every output, mask on and off
    "table-table-nr": S(in_format="s8", in_scale=2 ** -4, n_max=8, exp="table", exp_frac=4,
                        recip="table", recip_bits=2, newton=True, output="u8", mask=True),
    "table-table": S(in_format="s16", in_scale=2 ** -8, n_max=128, exp="table", exp_frac=12,
                     recip="table", recip_bits=10, newton=False, output="s8", mask=False),
    "table-pwl-nr": S(in_format="s4", in_scale=0.5, n_max=1, exp="table", exp_frac=6,
                      recip="pwl", recip_bits=4, pwl_frac=0, newton=True, output="log2",
                      mask=True),
    "table-pwl": S(in_format="s12", in_scale=2 ** -6, n_max=16, exp="table", exp_frac=8,
                   recip="pwl", recip_bits=6, pwl_frac=16, newton=False, output="u8",
                   mask=False, acc_frac=24),
    "pwl-table-nr": S(in_format="s16", in_scale=2 ** -10, n_max=64, exp="pwl", exp_frac=16,
                      exp_segments=256, pwl_frac=16, recip="table", newton=True,
                      output="log2", mask=True),
    "pwl-table": S(in_format="s8", in_scale=0.1, n_max=7, exp="pwl", exp_frac=4,
                   exp_segments=2, pwl_frac=0, recip="table", recip_bits=3, newton=False,
                   output="s8", mask=True),
    "pwl-pwl-nr": S(in_format="s10", in_scale=1 / 32, n_max=32, exp="pwl", exp_frac=10,
                    exp_segments=16, recip="pwl", newton=True, output="u8", mask=False,
                    acc_frac=4),
    "pwl-pwl": S(in_format="s8", in_scale=1 / 16, n_max=2, exp="pwl", exp_frac=12,
                 exp_segments=64, pwl_frac=12, recip="pwl", recip_bits=10, newton=False,
                 output="log2", mask=True),
    "ibert-table-nr": S(in_format="s8", in_scale=0.25, n_max=16, exp="ibert", recip="table",
                        newton=True, output="u8", mask=True),
    "ibert-table": S(in_format="s16", in_scale=2 ** -12, n_max=300, exp="ibert",
                     recip="table", newton=False, output="s8", mask=True),
    "ibert-pwl-nr": S(in_format="s12", in_scale=0.01, n_max=5, exp="ibert", recip="pwl",
                      pwl_frac=4, newton=True, output="log2", mask=False),
    "ibert-pwl": S(in_format="s6", in_scale=0.3, n_max=128, exp="ibert", recip="pwl",
                   recip_bits=2, newton=False, output="u8", mask=True, acc_frac=1),
}
SM_CONFIGS = {**{f"preset-{k}": v for k, v in SM_PRESETS.items()}, **EXTRA_SM}


def _seed(name):
    return sum(ord(c) * 131 ** i for i, c in enumerate(name)) % 2 ** 32


# -- comparison machinery (shared with the sensitivity tests) ------------------------------------


def activation_mismatches(cfg):
    """``[(x, spec, golden)]`` over every input code."""
    lo, hi, _, _ = _fmt(cfg.in_format)
    codes = list(range(lo, hi + 1))
    got = gact.activation(cfg, np.array(codes, np.int64)).tolist()
    return [(x, ref_activation(cfg, x), g) for x, g in zip(codes, got)
            if ref_activation(cfg, x) != g]


def exponent_mismatches(cfg):
    """Step 1 over every logit code: ``[(x, spec (k, v), golden (k, v))]``."""
    lo, hi, _, _ = _fmt(cfg.in_format)
    codes = list(range(lo, hi + 1))
    k, v = gsm.exponents(cfg, np.array(codes, np.int64))
    return [(x, ref_exp_domain(cfg, x), (kk, vv))
            for x, kk, vv in zip(codes, k.tolist(), v.tolist())
            if ref_exp_domain(cfg, x) != (kk, vv)]


def softmax_mismatches(cfg, rows):
    """``rows``: ``[(xs, masks or None)]``, compared in one batched golden call."""
    n = max(len(xs) for xs, _ in rows)
    x = np.zeros((len(rows), n), np.int64)
    mask = np.zeros((len(rows), n), bool)
    for i, (xs, ms) in enumerate(rows):
        x[i, :len(xs)] = xs
        if ms is not None:
            mask[i, :len(xs)] = ms
    lengths = np.array([len(xs) for xs, _ in rows], np.int64)
    got = gsm.softmax(cfg, x, lengths, mask if cfg.mask else None)
    bad = []
    for i, (xs, ms) in enumerate(rows):
        want = ref_softmax_row(cfg, xs, ms if cfg.mask else None)
        have = got[i, :len(xs)].tolist()
        if want != have:
            bad.append((xs, ms, want, have))
    return bad


def random_rows(cfg, rng, count):
    """Rows of random length (1 to ``n_max``), logits uniform over the format or normal around
    a random centre with a spread of 0.25 to 16 real units, masks of density 0 to 1."""
    lo, hi, _, _ = _fmt(cfg.in_format)
    rows = []
    for _ in range(count):
        n = rng.choice([1, cfg.n_max, rng.randint(1, cfg.n_max), rng.randint(1, 8)])
        n = min(n, cfg.n_max)
        if rng.random() < 0.25:
            xs = [rng.randint(lo, hi) for _ in range(n)]
        else:
            centre = rng.randint(lo, hi)
            sigma = rng.choice([0.25, 1.0, 4.0, 16.0]) / cfg.in_scale
            xs = [_clamp(round(rng.gauss(centre, sigma)), lo, hi) for _ in range(n)]
        ms = None
        if cfg.mask:
            density = rng.choice([0.0, 0.25, 0.75, 1.0])
            ms = [rng.random() < density for _ in range(n)]
        rows.append((xs, ms))
    return rows


def directed_rows(cfg):
    lo, hi, _, _ = _fmt(cfg.in_format)
    nm = cfg.n_max
    step = max(1, round(0.6931 / cfg.in_scale))         # one ln 2 in codes: k steps by ~1
    mid = _clamp(round(4 / cfg.in_scale), lo, hi)
    rows = []
    for n in sorted({1, min(3, nm), nm}):
        for v in (0, lo, hi, lo + 1, -1, mid, -mid):
            rows.append([_clamp(v, lo, hi)] * n)          # all equal (incl. most negative)
        for pos in sorted({0, n // 2, n - 1}):
            rows.append([hi if i == pos else lo for i in range(n)])        # one-hot
            rows.append([mid if i == pos else 0 for i in range(n)])
            rows.append([lo if i == pos else hi for i in range(n)])
        rows.append([lo + (hi - lo) * i // max(1, n - 1) for i in range(n)])   # ascending
        rows.append([hi - (hi - lo) * i // max(1, n - 1) for i in range(n)])   # descending
        rows.append([_clamp(lo + i, lo, hi) for i in range(n)])                # max arrives last
        rows.append([_clamp(step * (i - n + 1), lo, hi) for i in range(n)])    # K steps each
        rows.append([_clamp(hi - step * i, lo, hi) for i in range(n)])
    out = [(r, [False] * len(r)) for r in rows]
    if cfg.mask:
        for xs in rows[::3]:
            n = len(xs)
            out.append((xs, [True] * n))                                   # all masked
            top = xs.index(max(xs))
            out.append((xs, [i == top for i in range(n)]))                 # max masked
            out.append((xs, [i != n - 1 for i in range(n)]))               # one survivor
    return out


def softmax_suite_mismatches(cfg, seed=0, count=150):
    rng = random.Random(seed)
    return (softmax_mismatches(cfg, directed_rows(cfg))
            + softmax_mismatches(cfg, random_rows(cfg, rng, count)))


def random_softmax_words(cfg, rng, beats):
    """Raw ``i`` payload integers: random bits, ``last`` rare enough that some rows run into
    ``n_max``."""
    width = _fmt(cfg.in_format)[2] + cfg.mask + 1
    last_bit = 1 << (width - 1)
    p_last = rng.choice([0.0, 1 / (2 * cfg.n_max + 1), 1 / (cfg.n_max // 2 + 1), 0.5])
    words = []
    for _ in range(beats):
        w = rng.getrandbits(width) & ~last_bit
        words.append(w | (last_bit if rng.random() < p_last else 0))
    return words


# -- constants: recomputed from their definitions ------------------------------------------------


@pytest.mark.parametrize("name", list(ACT_CONFIGS))
def test_activation_table_constant(name):
    """``config.table`` (which the golden table back-end reads) is ``round_half_even(clamp(
    r(x)))`` of every code, recomputed with ``math``."""
    cfg = ACT_CONFIGS[name]
    lo, hi, _, _ = _fmt(cfg.in_format)
    if cfg.backend == "table" or hi - lo < 1 << 12:
        assert cfg.table == tuple(ref_table_entry(cfg, x) for x in range(lo, hi + 1))


@pytest.mark.parametrize("name", [k for k, c in ACT_CONFIGS.items() if c.backend != "table"])
def test_activation_shared_constants(name):
    """Properties the spec states for the constants the reference takes from the config."""
    cfg = ACT_CONFIGS[name]
    lo, hi, _, _ = _fmt(cfg.in_format)
    if cfg.backend == "pwl":
        p = cfg.pwl
        assert p.lo == lo and p.hi == hi and p.frac == cfg.pwl_frac
        assert p.bases[0] == lo and all(a < b for a, b in zip(p.bases, p.bases[1:]))
        assert len(p.bases) == len(p.slopes) == len(p.intercepts) == cfg.segments
        if cfg.spacing == "uniform":
            shift = (hi - lo + 1).bit_length() - 1 - (cfg.segments.bit_length() - 1)
            assert p.uniform_shift == shift
            assert p.bases == tuple(lo + (j << shift) for j in range(cfg.segments))
        else:
            assert p.uniform_shift is None
        return
    ib = cfg.ibert
    poly = ib["poly"]
    if cfg.function == "exp":
        assert poly.x0_int == math.floor(-0.6931 / cfg.in_scale) <= -2
        ratio = poly.z_scale / cfg.out_scale
    else:
        ratio = poly.y_scale / cfg.out_scale
    assert ib["sign"] == (1 if ratio > 0 else -1)
    if ib["shift"] > 0:
        assert 1 << (cfg.mult_bits - 1) <= ib["mult"] < 1 << cfg.mult_bits
    assert abs(ib["mult"] - abs(ratio) * 2 ** ib["shift"]) <= 0.5 + 1e-9 * ib["mult"]


@pytest.mark.parametrize("name", list(SM_CONFIGS))
def test_softmax_constants(name):
    cfg = SM_CONFIGS[name]
    assert RECIP_Q == RQ and SQRT2_Q15 == SQRT2 == 46340
    assert cfg.A == (cfg.acc_frac or 8 + math.ceil(math.log2(cfg.n_max)) + 1)
    assert cfg.recip_table == ref_recip_table(cfg.recip_bits)
    # recip PWL: 2**J uniform segments over m - 2**16 in [0, 2**16)
    p = cfg.recip_pwl
    seg = 1 << cfg.recip_bits
    assert p.bases == tuple(j << (RQ - cfg.recip_bits) for j in range(seg))
    assert p.uniform_shift == RQ - cfg.recip_bits and p.frac == cfg.pwl_frac
    if cfg.exp == "ibert":
        ib = cfg.ibert_exp
        q = -math.floor(-0.6931 / cfg.in_scale)
        assert ib["q"] == q == -ib["poly"].x0_int
        ratio = 2 * ib["poly"].z_scale * 2 ** cfg.A
        assert 1 << 17 <= ib["mult"] < 1 << 18                       # 18 bits
        assert abs(ib["mult"] - ratio * 2 ** ib["shift"]) <= 0.5 + 1e-9 * ib["mult"]
        return
    c, g = cfg.base2
    ratio = cfg.in_scale * math.log2(math.e) * 2 ** cfg.exp_frac
    assert 0 < c < 1 << 20 and abs(c - ratio * 2 ** g) <= 0.5 + 1e-9 * c
    assert g == 0 or c >= 1 << 19                                     # C ~= ratio, not coarse
    table = ref_pow2_table(cfg.A, cfg.exp_frac)
    assert cfg.pow2_table == table
    with localcontext() as ctx:                    # and each entry is correctly rounded
        ctx.prec = 50
        for i, e in enumerate(table[:: max(1, len(table) // 512)]):
            i *= max(1, len(table) // 512)
            exact = Decimal(2) ** (Decimal(i) / (1 << cfg.exp_frac)) * (1 << cfg.A)
            assert abs(exact - e) <= Decimal("0.5"), (i, e, exact)
    p = cfg.pow2_pwl
    shift = cfg.exp_frac - (cfg.exp_segments.bit_length() - 1)
    assert p.uniform_shift == shift and p.frac == cfg.pwl_frac
    assert p.bases == tuple(j << shift for j in range(cfg.exp_segments))


def _check_ibert_k(cfg):
    """``k = ((x - k_offset*q) * div_mult >> div_shift) + k_offset == floor(x / q)`` for every
    code (the ``ibert_exp`` docstring's claim)."""
    ib = cfg.ibert_exp
    q, ko, dm, ds = ib["q"], ib["k_offset"], ib["div_mult"], ib["div_shift"]
    lo, hi, _, _ = _fmt(cfg.in_format)
    bad = [x for x in range(lo, hi + 1) if (((x - ko * q) * dm) >> ds) + ko != x // q]
    assert not bad, f"k formula differs from floor(x/q) at {bad[:5]} (q={q})"
    assert (hi - ko * q) * dm < 1 << 63                     # no int64 overflow in the model


@pytest.mark.parametrize("name", [k for k, c in SM_CONFIGS.items() if c.exp == "ibert"])
def test_softmax_ibert_k_exhaustive(name):
    _check_ibert_k(SM_CONFIGS[name])


@settings(HYP, max_examples=60)
@given(width=st.integers(4, 16),
       scale=st.floats(1e-4, 0.34, allow_nan=False, allow_infinity=False))
def test_softmax_ibert_k_any_scale(width, scale):
    _check_ibert_k(SoftmaxConfig(in_format=f"s{width}", in_scale=scale, exp="ibert"))


# -- activation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACT_CONFIGS))
def test_activation_exhaustive(name):
    bad = activation_mismatches(ACT_CONFIGS[name])
    assert not bad, f"{len(bad)} codes differ, first (x, spec, golden): {bad[:5]}"


def test_activation_coverage():
    """The config list covers every legal function x backend pair, both spacings, pwl_frac 0
    and 12+, unsigned/signed formats, zero points and saturation."""
    pairs = {(c.function, c.backend) for c in ACT_CONFIGS.values()}
    legal = {(f, b) for f in approx.FUNCTIONS for b in ("table", "pwl")}
    legal |= {("gelu", "ibert"), ("exp", "ibert")}
    assert pairs == legal
    pwl = [c for c in ACT_CONFIGS.values() if c.backend == "pwl"]
    assert {c.spacing for c in pwl} == {"uniform", "nonuniform"}
    assert {0, 12} <= {c.pwl_frac for c in pwl}
    assert {c.in_format[0] for c in ACT_CONFIGS.values()} == {"s", "u"}
    assert any(c.in_zero_point for c in ACT_CONFIGS.values())
    assert any(c.out_zero_point for c in ACT_CONFIGS.values())
    saturating = 0
    for c in ACT_CONFIGS.values():
        lo, hi, _, _ = _fmt(c.out_format)
        codes = range(_fmt(c.in_format)[0], _fmt(c.in_format)[1] + 1, 7)
        saturating += any(not lo <= ref_truth(c, x) <= hi for x in codes)
    assert saturating >= 8


@pytest.mark.parametrize("name", ["preset-default", "preset-exp_ibert", "rsqrt_table_s8",
                                  "exp_ibert_s8zp", "gelu_ibert_u8zp"])
def test_activation_words(name):
    cfg = ACT_CONFIGS[name]
    rng = random.Random(_seed(name))
    width = cfg.lanes * _fmt(cfg.in_format)[2] + 1
    words = [rng.getrandbits(width) for _ in range(300)] + [0, (1 << width) - 1]
    assert gact.words(cfg, words) == ref_activation_words(cfg, words)


# -- softmax --------------------------------------------------------------------------------------


def test_softmax_coverage():
    combos = {(c.exp, c.recip, c.newton) for c in SM_CONFIGS.values()}
    assert len(combos) == 12
    assert {(c.exp, c.output) for c in SM_CONFIGS.values()} == {
        (e, o) for e in ("table", "pwl", "ibert") for o in ("u8", "s8", "log2")}
    assert {(c.exp, c.mask) for c in SM_CONFIGS.values()} == {
        (e, m) for e in ("table", "pwl", "ibert") for m in (True, False)}


@pytest.mark.parametrize("name", list(SM_CONFIGS))
def test_softmax_exponents_exhaustive(name):
    bad = exponent_mismatches(SM_CONFIGS[name])
    assert not bad, f"{len(bad)} codes differ, first (x, spec, golden): {bad[:5]}"


@pytest.mark.parametrize("name", list(SM_CONFIGS))
def test_softmax_directed(name):
    cfg = SM_CONFIGS[name]
    bad = softmax_mismatches(cfg, directed_rows(cfg))
    assert not bad, f"{len(bad)} rows differ, first (x, mask, spec, golden): {bad[:2]}"


@pytest.mark.parametrize("name", list(SM_CONFIGS))
def test_softmax_random(name):
    cfg = SM_CONFIGS[name]
    count = 40 if cfg.n_max > 200 else 200
    bad = softmax_mismatches(cfg, random_rows(cfg, random.Random(_seed(name)), count))
    assert not bad, f"{len(bad)} rows differ, first (x, mask, spec, golden): {bad[:2]}"


@settings(HYP, max_examples=150)
@given(data=st.data())
def test_softmax_hypothesis(data):
    cfg = data.draw(st.sampled_from([SM_CONFIGS[k] for k in (
        "preset-tiny", "preset-default", "pwl-table", "ibert-table-nr", "pwl-pwl")]))
    lo, hi, _, _ = _fmt(cfg.in_format)
    n = data.draw(st.integers(1, min(cfg.n_max, 24)))
    xs = data.draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    ms = data.draw(st.lists(st.booleans(), min_size=n, max_size=n)) if cfg.mask else None
    assert not softmax_mismatches(cfg, [(xs, ms)])


@pytest.mark.parametrize("name", list(SM_CONFIGS))
def test_softmax_words(name):
    cfg = SM_CONFIGS[name]
    rng = random.Random(_seed(name) + 1)
    for _ in range(4):
        words = random_softmax_words(cfg, rng, rng.randint(1, 3 * cfg.n_max + 20))
        assert gsm.words(cfg, words) == ref_softmax_words(cfg, words)


@pytest.mark.parametrize("name", ["preset-tiny", "table-pwl-nr", "pwl-pwl", "ibert-pwl-nr"])
def test_softmax_words_row_ends(name):
    """Rows split at ``n_max`` (that beat's output carries ``last``); an unfinished final row
    produces nothing."""
    cfg = SM_CONFIGS[name]
    xw = _fmt(cfg.in_format)[2]
    last = 1 << (xw + cfg.mask)
    plain = [(3 * i) & ((1 << xw) - 1) for i in range(2 * cfg.n_max + cfg.n_max // 2)]
    got = gsm.words(cfg, plain)
    assert got == ref_softmax_words(cfg, plain)
    assert len(got) == 2 * cfg.n_max                         # the unfinished tail: nothing
    ow = 4 if cfg.output == "log2" else 8
    assert [w >> ow for w in got] == [int((i + 1) % cfg.n_max == 0) for i in range(len(got))]
    if cfg.n_max > 1:
        assert gsm.words(cfg, plain[:cfg.n_max - 1]) == []
    finished = plain[:1] + [plain[1] | last]
    assert gsm.words(cfg, finished) == ref_softmax_words(cfg, finished)
    assert len(gsm.words(cfg, finished)) == 2


# -- sensitivity: planted bugs must be caught -----------------------------------------------------


def _with(cfg, **cached):
    """A copy of ``cfg`` whose cached constants are replaced (the golden model reads them)."""
    copy = replace(cfg)
    for key, value in cached.items():
        object.__setattr__(copy, key, value)
    return copy


def test_planted_activation_table_entry():
    cfg = ACT_CONFIGS["preset-tiny"]
    table = list(cfg.table)
    table[128 + 40] += 1                                  # x = 40: off by one
    bad = activation_mismatches(_with(cfg, table=tuple(table)))
    assert [b[0] for b in bad] == [40]


def test_planted_activation_floor_instead_of_half_up(monkeypatch):
    monkeypatch.setattr(gact, "_round_half_up_shift", lambda v, shift: v >> shift)
    assert activation_mismatches(ACT_CONFIGS["preset-default"])
    assert activation_mismatches(ACT_CONFIGS["preset-gelu_ibert"])


def test_planted_activation_gelu_sign_after_shift(monkeypatch):
    """The other reading of ``sgn(x) * poly >> erf_shift``: shift first, then the sign."""
    def other(poly, x):
        clipped = np.minimum(np.abs(x), -poly.b_int)
        e = np.sign(x) * (((clipped + poly.b_int) ** 2 + poly.c_int) >> poly.erf_shift)
        return x * (e + poly.one_int)
    cfg = ACT_CONFIGS["gelu_ibert_s16"]
    assert cfg.ibert["poly"].erf_shift > 0
    monkeypatch.setattr(gact, "_ibert_gelu", other)
    assert activation_mismatches(cfg)


def test_planted_activation_exp_no_clamp(monkeypatch):
    """i-exp without its ``n * x0`` clamp (visible with a fine output scale)."""
    def other(poly, x):
        x = np.minimum(x, 0)
        q = x // poly.x0_int
        r = x - q * poly.x0_int
        return r * (r + poly.b_int) + poly.c_int, q
    monkeypatch.setattr(gact, "_ibert_exp", other)
    bad = activation_mismatches(ACT_CONFIGS["exp_ibert_clamp_visible"])
    assert bad and all(x < 30 * ACT_CONFIGS["exp_ibert_clamp_visible"].ibert["poly"].x0_int
                       for x, _, _ in bad)


def _pair_rows(cfg, firsts):
    """Every two-element row ``[a, b]`` with ``a`` in ``firsts``: a one-LSB change of ``v`` or
    ``r`` is ~2**-16 of the output, below its resolution for most rows, so the rows that show
    it are searched for here among many near rounding boundaries."""
    lo, hi, _, _ = _fmt(cfg.in_format)
    return [([a, b], [False, False]) for a in firsts for b in range(lo, hi + 1)]


def test_planted_softmax_pow2_table_entry():
    cfg = SM_CONFIGS["preset-tiny"]
    table = list(cfg.pow2_table)
    table[37] -= 1
    bug = _with(cfg, pow2_table=tuple(table))
    hit = [x for x in range(-128, 128) if ref_exp_domain(cfg, x)[1] == cfg.pow2_table[37]]
    assert hit and [b[0] for b in exponent_mismatches(bug)] == hit
    assert softmax_mismatches(bug, _pair_rows(cfg, hit))


def test_planted_softmax_recip_table_entry():
    cfg = S(in_format="s8", in_scale=2 ** -4, n_max=8, exp="table", exp_frac=6,
            recip_bits=2, newton=False)                   # no Newton step to hide it
    table = list(cfg.recip_table)
    table[2] += 1
    bug = _with(cfg, recip_table=tuple(table))
    assert bug.recip_table != ref_recip_table(cfg.recip_bits)     # the constant check
    assert softmax_mismatches(bug, _pair_rows(cfg, range(-128, 128, 8)))


def test_planted_softmax_ibert_divider():
    cfg = SM_CONFIGS["preset-ibert"]
    ib = dict(cfg.ibert_exp)
    ib["div_mult"] -= 1                                   # floor(x / q) off at some codes
    bug = _with(cfg, ibert_exp=ib)
    assert exponent_mismatches(bug)
    assert softmax_suite_mismatches(bug)


def test_planted_softmax_masked_code(monkeypatch):
    monkeypatch.setattr(gsm, "masked_code", lambda config: 1 if config.output == "u8" else 14)
    assert softmax_suite_mismatches(SM_CONFIGS["preset-default"])
    assert softmax_suite_mismatches(SM_CONFIGS["pwl-table-nr"])


def test_planted_softmax_rescale_rounding(monkeypatch):
    """Step 2 with a rounding rescale instead of a floor."""
    def other(k, v, keep):
        big_k, s = None, 0
        for kk, vv, ok in zip(k.tolist(), v.tolist(), keep.tolist()):
            if not ok:
                continue
            if big_k is None:
                big_k, s = kk, vv
            elif kk > big_k:
                s = _shr_half_up(s, kk - big_k) + vv
                big_k = kk
            else:
                s = s + _shr_half_up(vv, big_k - kk)
        return big_k, s
    monkeypatch.setattr(gsm, "row_sum", other)
    assert softmax_suite_mismatches(SM_CONFIGS["preset-default"])


def test_planted_softmax_words_split(monkeypatch):
    """A row split one beat late is caught at the payload level."""
    cfg = SM_CONFIGS["preset-tiny"]
    monkeypatch.setattr(gsm, "split_rows", lambda config, words: _late_split(config, words))
    words = random_softmax_words(cfg, random.Random(5), 40)
    words = [w & ~(1 << 9) for w in words]               # no last: rows end at n_max only
    assert gsm.words(cfg, words) != ref_softmax_words(cfg, words)


def _late_split(cfg, in_words):
    xw = _fmt(cfg.in_format)[2]
    rows, xs, ms = [], [], []
    for w in in_words:
        xs.append(_unpack(w, 0, xw, True))
        ms.append(bool(_unpack(w, xw, 1, False)) if cfg.mask else False)
        if _unpack(w, xw + cfg.mask, 1, False) or len(xs) == cfg.n_max + 1:
            rows.append((np.array(xs, np.int64), np.array(ms, bool)))
            xs, ms = [], []
    return rows


# -- configs the golden model cannot represent are refused -----------------------------------

@pytest.mark.parametrize("function, out_scale", [("gelu", 1e-18), ("exp", 1e-19),
                                                 ("exp", 1e-30)])
def test_activation_ibert_multiplier_wider_than_mult_bits_is_refused(function, out_scale):
    """An output scale so small that the I-BERT multiplier cannot fit ``mult_bits`` would make
    the int64 products wrap; the config refuses it with a one-line message instead."""
    from accelgen.numerics import ConfigError
    with pytest.raises(ConfigError, match=r"^out_scale: .* mult_bits is 16 \(use a larger "
                                          r"out_scale\)$"):
        A(function=function, backend="ibert", in_scale=0.25, out_format="u8",
          out_scale=out_scale)
