"""Constants of the nonlinear approximators, computed once from the configs' scales: lookup
tables, piecewise-linear (PWL) segments, I-BERT polynomial constants, dyadic multipliers and
exact division-by-constant multipliers. Both the golden models (:mod:`accelgen.sim.golden`) and
the hardware (:mod:`accelgen.hdl`) import this module, so a table is never written twice.

Pure Python (``math`` only: no numpy, no Amaranth) and deterministic: the same arguments give
the same integers on every machine (``math.exp``/``math.erf`` of glibc are correctly rounded
for the arguments used here; each constant is rounded once with Python's ``round``, ties to
even).

Fixed-point conventions
    A PWL approximation over integer inputs ``x`` in ``[lo, hi]`` is a list of segments
    ``(base, slope, intercept)`` with ``base`` strictly increasing, ``base[0] == lo``.
    Segment ``j`` covers ``base[j] <= x < base[j+1]``. Its value is

        ``y = (intercept + slope * (x - base)) + 2**(frac-1)) >> frac``     (round half up)

    with ``slope`` and ``intercept`` signed integers carrying ``frac`` fraction bits
    (:func:`pwl_eval`). ``frac == 0`` means no rounding term.
"""

import math
from dataclasses import dataclass

__all__ = ["FUNCTIONS", "reference", "ideal", "PWL", "pwl_fit", "pwl_eval", "pwl_index",
           "uniform_bases", "curvature_bases", "dyadic", "floor_div_magic", "half_up_bias",
           "signed_bits", "IBERT_EXP", "IBERT_GELU", "ibert_exp_constants",
           "ibert_gelu_constants"]


def _gelu(x):
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


def _silu(x):
    return x / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _exp_nonpositive(x):
    return math.exp(min(x, 0.0))


def _reciprocal(x):
    return 1.0 / x if x > 0 else math.inf


def _rsqrt(x):
    return 1.0 / math.sqrt(x) if x > 0 else math.inf


#: name → float function. ``exp`` is defined for x <= 0 and saturates at exp(0) = 1 above
#: (the softmax use: arguments are x - max); ``reciprocal`` and ``rsqrt`` are +inf at x <= 0,
#: which the output format then saturates to its maximum.
FUNCTIONS = {
    "gelu": _gelu,
    "silu": _silu,
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "exp": _exp_nonpositive,
    "reciprocal": _reciprocal,
    "rsqrt": _rsqrt,
}


def reference(function, x, in_scale, in_zero_point, out_scale, out_zero_point):
    """The exact output of ``function`` for input code ``x``, in output LSB (a real number,
    not rounded, not clamped): ``f(in_scale * (x - in_zero_point)) / out_scale +
    out_zero_point``."""
    return FUNCTIONS[function](in_scale * (x - in_zero_point)) / out_scale + out_zero_point


def ideal(function, x, in_scale, in_zero_point, out_scale, out_zero_point, out_min, out_max):
    """The correctly rounded output code: :func:`reference` clamped to ``[out_min, out_max]``
    and rounded to nearest, ties to even. This is the full lookup table's entry."""
    r = reference(function, x, in_scale, in_zero_point, out_scale, out_zero_point)
    return int(round(min(max(r, out_min), out_max)))


# -- piecewise linear --------------------------------------------------------------------------

@dataclass(frozen=True)
class PWL:
    """A fitted piecewise-linear approximation (see the module docstring for its value).

    Members
    -------
    bases, slopes, intercepts : tuple of int
        Per segment; ``slopes``/``intercepts`` carry ``frac`` fraction bits.
    frac : int
    lo, hi : int
        Input range covered.
    uniform_shift : int or None
        For uniform segments of ``2**uniform_shift`` codes each: the segment index is
        ``(x - lo) >> uniform_shift`` (no comparators). ``None`` for non-uniform bases.
    """
    bases: tuple
    slopes: tuple
    intercepts: tuple
    frac: int
    lo: int
    hi: int
    uniform_shift: object = None

    @property
    def segments(self):
        return len(self.bases)

    @property
    def slope_bits(self):
        """Signed width that holds every slope."""
        return max(signed_bits(s) for s in self.slopes)

    @property
    def intercept_bits(self):
        return max(signed_bits(c) for c in self.intercepts)

    @property
    def offset_bits(self):
        """Unsigned width of ``x - base`` over every segment."""
        ends = list(self.bases[1:]) + [self.hi + 1]
        return max(1, max((e - b - 1).bit_length() for b, e in zip(self.bases, ends)))


def signed_bits(value):
    """Bits of the narrowest two's complement number holding ``value``."""
    return (value.bit_length() if value >= 0 else (~value).bit_length()) + 1


def uniform_bases(lo, hi, segments):
    """``(bases, shift)`` of ``segments`` (a power of two) equal segments over ``[lo, hi]``,
    where ``hi - lo + 1`` is a power of two no smaller than ``segments``."""
    span = hi - lo + 1
    shift = (span // segments).bit_length() - 1
    return tuple(lo + (j << shift) for j in range(segments)), shift


def curvature_bases(targets, lo, segments):
    """Non-uniform bases for ``segments`` segments over the codes ``lo .. lo+len(targets)-1``:
    breakpoints equidistribute ``sqrt(|second difference|)`` (plus a small floor so flat
    stretches still get segments), the asymptotically optimal density for chord
    interpolation. Returns strictly increasing bases starting at ``lo``."""
    n = len(targets)
    if segments >= n:
        return tuple(range(lo, lo + n))
    weights = [0.0] * n
    for i in range(1, n - 1):
        weights[i] = math.sqrt(abs(targets[i + 1] - 2 * targets[i] + targets[i - 1]))
    total = sum(weights)
    floor = total / (4 * n) if total > 0 else 1.0
    weights = [w + floor for w in weights]
    total = sum(weights)
    bases, acc, j = [0], 0.0, 1
    for i, w in enumerate(weights):
        acc += w
        while j < segments and acc >= total * j / segments:
            cut = max(i + 1, bases[-1] + 1)
            if cut <= n - (segments - j):
                bases.append(cut)
            j += 1
    while len(bases) < segments:        # degenerate weights: fill the widest gaps
        ends = bases[1:] + [n]
        k = max(range(len(bases)), key=lambda s: ends[s] - bases[s])
        bases.insert(k + 1, (bases[k] + ends[k]) // 2)
    return tuple(lo + b for b in bases)


def pwl_fit(targets, lo, bases, frac, *, out_min=None, out_max=None):
    """Fit one line per segment to real ``targets`` (``targets[i]`` is the wanted value at code
    ``lo + i``). Each line is the chord through the segment's end points, shifted by the mean
    of its largest and smallest deviation (the minimax line for convex or concave segments);
    slope and intercept are then rounded to ``frac`` fraction bits. Targets are clamped to
    ``[out_min, out_max]`` first (when given), so saturated stretches fit flat lines."""
    def clamp(t):
        if out_min is not None:
            t = max(t, out_min)
        if out_max is not None:
            t = min(t, out_max)
        return t
    targets = [clamp(t) for t in targets]
    hi = lo + len(targets) - 1
    ends = list(bases[1:]) + [hi + 1]
    slopes, intercepts = [], []
    for b, e in zip(bases, ends):
        seg = targets[b - lo:e - lo]
        m = (seg[-1] - seg[0]) / (len(seg) - 1) if len(seg) > 1 else 0.0
        dev = [t - (seg[0] + m * i) for i, t in enumerate(seg)]
        c = seg[0] + (max(dev) + min(dev)) / 2
        slopes.append(int(round(m * (1 << frac))))
        intercepts.append(int(round(c * (1 << frac))))
    return tuple(slopes), tuple(intercepts)


def pwl_index(pwl, x):
    """Segment of input code ``x`` (codes below ``lo`` use segment 0)."""
    if pwl.uniform_shift is not None:
        return min(max((x - pwl.lo) >> pwl.uniform_shift, 0), pwl.segments - 1)
    j = 0
    for k, b in enumerate(pwl.bases):
        if x >= b:
            j = k
    return j


def pwl_eval(pwl, x):
    """Integer value of ``pwl`` at integer ``x`` (round half up; see the module docstring)."""
    j = pwl_index(pwl, x)
    acc = pwl.intercepts[j] + pwl.slopes[j] * (x - pwl.bases[j])
    return (acc + (1 << (pwl.frac - 1))) >> pwl.frac if pwl.frac else acc


def make_pwl(targets, lo, segments, spacing, frac, *, out_min=None, out_max=None):
    """A :class:`PWL` of ``segments`` segments (``spacing`` ``"uniform"``: equal power-of-two
    segments indexed by the top bits; ``"nonuniform"``: :func:`curvature_bases`)."""
    hi = lo + len(targets) - 1
    if spacing == "uniform":
        bases, shift = uniform_bases(lo, hi, segments)
    else:
        clamped = [min(max(t, out_min if out_min is not None else t),
                       out_max if out_max is not None else t) for t in targets]
        bases, shift = curvature_bases(clamped, lo, segments), None
    slopes, intercepts = pwl_fit(targets, lo, bases, frac, out_min=out_min, out_max=out_max)
    return PWL(bases, slopes, intercepts, frac, lo, hi, shift)


# -- integer-only building blocks --------------------------------------------------------------

def half_up_bias(shift):
    """The constant that makes ``(x + half_up_bias(shift)) >> shift`` round ``x / 2**shift``
    half up: ``2**(shift-1)``, or 0 for ``shift == 0`` (nothing to round)."""
    return 1 << (shift - 1) if shift else 0


def dyadic(ratio, bits):
    """``(mult, shift)`` with ``mult / 2**shift ~= ratio > 0``, ``mult`` rounded (ties to even)
    into ``bits`` bits (``2**(bits-1) <= mult < 2**bits``, unless ``shift`` would go negative,
    then ``shift == 0``). The dyadic form of a real scale (HAWQ-V3, I-BERT)."""
    if not ratio > 0:
        raise ValueError(f"ratio: {ratio!r} is not allowed; expected a positive number")
    _, exp = math.frexp(ratio)               # ratio = f * 2**exp, 0.5 <= f < 1
    shift = max(0, bits - exp)
    mult = int(round(ratio * (1 << shift)))
    if mult >= 1 << bits and shift > 0:     # rounded up to 2**bits
        shift -= 1
        mult = int(round(ratio * (1 << shift)))
    return mult, shift


def floor_div_magic(divisor, dividend_bits):
    """``(mult, shift)`` with ``(x * mult) >> shift == x // divisor`` for every integer
    ``0 <= x < 2**dividend_bits`` (Granlund-Montgomery: ``shift = dividend_bits +
    ceil(log2 divisor)``, ``mult = ceil(2**shift / divisor)``)."""
    if divisor < 1:
        raise ValueError(f"divisor: {divisor} is not allowed; expected >= 1")
    shift = dividend_bits + (divisor - 1).bit_length()
    return -(-(1 << shift) // divisor), shift


# -- I-BERT (Kim et al., 2021) -----------------------------------------------------------------

#: i-exp: ``exp(p) ~= a p**2 + b p + c`` on ``(-ln2, 0]``, reference-code coefficients,
#: ``x0`` (= -ln2 to four decimals, as in the reference code) and the clamp ``n * x0``.
IBERT_EXP = {"a": 0.35815147, "b": 0.96963238, "c": 1.0, "x0": -0.6931, "n": 30}
#: i-GELU: ``erf(x) ~= sgn(x) [a (min(|x|, -b) + b)**2 + 1]``, GELU = x/2 (1 + erf(x/k)).
IBERT_GELU = {"a": -0.2888, "b": -1.769, "k": 1.4142}


@dataclass(frozen=True)
class IBertExp:
    """Integer constants of i-exp at input scale ``scale`` (folded with floor, as the
    reference does). For an input code ``x <= 0``:

    ``x = max(x, n * x0_int)``; ``q = x // x0_int`` (>= 0); ``r = x - q * x0_int`` (in
    ``(x0_int, 0]``); ``z = r * (r + b_int) + c_int``; ``exp(scale * x) ~= z * z_scale / 2**q``.

    Members: ``x0_int`` (< 0), ``b_int``, ``c_int``, ``z_scale`` (real), ``n``.
    """
    x0_int: int
    b_int: int
    c_int: int
    z_scale: float
    n: int


def ibert_exp_constants(scale):
    c = IBERT_EXP
    x0_int = math.floor(c["x0"] / scale)
    if x0_int > -2:
        raise ValueError(f"in_scale: {scale!r} is too coarse for i-exp; expected less than "
                         f"{-c['x0']:.4g} (ln 2 must be more than one input code)")
    b_int = math.floor(c["b"] / c["a"] / scale)
    c_int = math.floor(c["c"] / c["a"] / scale ** 2)
    return IBertExp(x0_int, b_int, c_int, c["a"] * scale ** 2, c["n"])


@dataclass(frozen=True)
class IBertGelu:
    """Integer constants of i-GELU at input scale ``scale``. For an input code ``x``:

    ``e = (sgn(x) * ((min(|x|, -b_int) + b_int)**2 + c_int)) >> erf_shift`` (floor, the
    reference's overflow guard with a shift derived from the scale, keeping ``ERF_BITS``
    bits); ``y = x * (e + one_int)``; ``GELU(scale * x) ~= y * y_scale``.

    Members: ``b_int``, ``c_int``, ``erf_shift``, ``one_int``, ``y_scale`` (real; its sign is
    the sign of ``a``, folded into the output multiplier).
    """
    b_int: int
    c_int: int
    erf_shift: int
    one_int: int
    y_scale: float


ERF_BITS = 16


def ibert_gelu_constants(scale, x_max_abs):
    c = IBERT_GELU
    s_erf = scale / c["k"]
    b_int = math.floor(c["b"] / s_erf)
    c_int = math.floor(1.0 / c["a"] / s_erf ** 2)
    # the clamp -b must span at least two codes: -b / s_erf >= 2 (b_int <= -2 alone, through
    # the floor, would take scales up to twice the bound the message states)
    if b_int > -2 or scale > -c["b"] * c["k"] / 2:
        raise ValueError(f"in_scale: {scale!r} is too coarse for i-GELU; expected at most "
                         f"{-c['b'] * c['k'] / 2:.6g}")
    # largest |poly| over the input range: at |x| = 0 it is b^2 + c, at the clamp it is c
    peak = max(abs(b_int * b_int + c_int), abs(c_int),
               abs((min(x_max_abs, -b_int) + b_int) ** 2 + c_int))
    erf_shift = max(0, peak.bit_length() - ERF_BITS)
    erf_scale = s_erf ** 2 * c["a"] * (1 << erf_shift)
    one_int = math.floor(1.0 / erf_scale)
    return IBertGelu(b_int, c_int, erf_shift, one_int, scale * erf_scale / 2)
