"""Config and presets of block ``softmax``: row-wise streaming softmax of integer logits with
base-2 online normalization (Softermax / ITA style) and a normalized reciprocal.

The golden model :mod:`accelgen.sim.golden.softmax` is the definition; every step below is
integer arithmetic (``>>`` is an arithmetic shift, i.e. floor).

Rows
    Input beats carry one logit ``x`` (``in_format``, real value ``in_scale * x``), a ``mask``
    bit (when built; 1 = excluded, like an attention mask of -inf) and ``last``. A row ends
    with a ``last`` beat or after ``n_max`` beats (the ``n_max``-th beat ends it as if
    ``last`` were set, and its output carries ``last``). A row of one beat is valid.

1. Exponent domain (per element). The real value ``e**(in_scale * x)`` is written as
   ``2**k * v / 2**A`` with an integer exponent ``k`` and ``v`` close to ``[2**A, 2**(A+1))``
   (``A = acc_frac``):

   * ``exp="table"`` / ``"pwl"`` (base 2): ``t = (x * C) >> G`` with ``C / 2**G ~=
     in_scale * log2(e) * 2**F`` (``F = exp_frac``), ``k = t >> F``, ``f = t & (2**F - 1)``,
     ``v = P(f)``: a table ``round(2**(f / 2**F) * 2**A)`` (``2**F`` entries) or a PWL of
     ``exp_segments`` uniform segments over ``f`` (:mod:`accelgen.approx` conventions,
     fraction bits ``pwl_frac``).
   * ``exp="ibert"``: I-BERT's i-exp grid. ``q = -x0_int = -floor(-0.6931 / in_scale)``
     codes stand for ln 2; ``k = floor(x / q)`` (an exact multiply-shift), ``p = x - k*q -
     q`` in ``[-q, 0)``, ``z = p * (p + b_int) + c_int`` (``exp(in_scale * p) ~= z *
     z_scale``), ``v = (z * mult + 2**(shift-1)) >> shift`` with ``mult / 2**shift ~= 2 *
     z_scale * 2**A`` (18 bits).

2. Online normalization (per row, unmasked elements in order): the first sets ``K = k``,
   ``S = v``; each next one does ``S = (S >> (k - K)) + v; K = k`` when ``k > K``, else
   ``S = S + (v >> (K - k))``. ``S`` has ``A`` fraction bits; every shift floors.

3. Reciprocal (per row). ``e = bit_length(S) - 1``; mantissa ``m = floor(S * 2**(16 - e))``
   in ``[2**16, 2**17)``. ``recip="table"``: ``r = T[(m >> (16 - J)) & (2**J - 1)]`` with
   ``T[j] = round(2**16 * (1/a + 1/b) / 2)``, ``a = 1 + j/2**J``, ``b = 1 + (j+1)/2**J``
   (``J = recip_bits``). ``recip="pwl"``: a PWL of ``2**J`` uniform segments over ``m -
   2**16`` fitted to ``2**32 / m``. With ``newton``: ``r = (r * (2**17 - ((m * r) >> 16)))
   >> 16``. So ``r ~= 2**16 / (m / 2**16)`` and ``1 / S ~= r * 2**(-16 - e)``.

4. Output (per element, masked ones included): ``P = v * r``, ``sh = K - k + e + 16``
   (the probability is ``P / 2**sh``).

   * ``output="u8"``: ``y = min(255, (P * L + 2**(sh-1)) >> sh)`` with ``L = out_levels``:
     the probability * ``L``, rounded half up, scale ``1/L`` (``L = 256``: ``(P +
     2**(sh-9)) >> (sh - 8)``, as PyTorch and TFLite quantize softmax outputs; ``L = 255``:
     onnxruntime's quantizer, which maps [0, 1] onto 255 steps).
   * ``output="s8"``: the ``u8`` value minus 128 (zero point -128).
   * ``output="log2"``: 4-bit ``y ~= -log2(p)``: ``n = bit_length(P) - 1``, ``top =
     floor(P * 2**(15 - n))``, ``y = clamp(sh - n - (top > 46340), 0, 15)`` (46340 =
     floor(sqrt(2) * 2**15): the rounding threshold of ``log2``).

   A masked element outputs probability 0: ``0`` (u8), ``-128`` (s8), ``15`` (log2); a row
   with every element masked outputs only those.

Streams and timing
    ``i``: ``x`` (signed), ``mask`` (when ``mask``), ``last``. ``o``: ``y`` (8 bits, signed
    for ``s8``; 4 bits for ``log2``) and ``last``. Element throughput one per cycle; rows
    are double-buffered (``2 * n_max`` elements), so a row streams in while the previous one
    streams out. Every input bit pattern is legal; full backpressure.
"""

import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from .. import approx
from ..numerics import ConfigError, IntFormat
from .activation import check_format, check_scale
from .base import Beats, Config, Field, ProofContract, check_bool, check_choice, check_int

__all__ = ["SoftmaxConfig", "SoftmaxRanges", "PRESETS", "ERROR_BOUNDS"]

EXPS = ("table", "pwl", "ibert")
RECIPS = ("table", "pwl")
OUTPUTS = ("u8", "s8", "log2")
OUT_LEVELS = (256, 255)     # u8/s8 scale 1/256 (PyTorch, TFLite) or 1/255 (onnxruntime)
RECIP_Q = 16        # fraction bits of the reciprocal and of its mantissa input
V_MULT_BITS = 18    # i-exp → v multiplier
SQRT2_Q15 = 46340   # floor(sqrt(2) * 2**15)
C_BITS = 20         # bits of the base-2 conversion constant C


@dataclass(frozen=True, kw_only=True)
class SoftmaxConfig(Config):
    """Parameters of a ``softmax`` block. See the module docstring for the semantics.

    Members
    -------
    in_format : str
        Signed logit format, ``"s4"`` to ``"s16"``.
    in_scale : float
        Real value of one logit LSB: 2**-126 to 2**126 (finite); ``exp = "ibert"`` needs at
        least about 3.4e-7 (its i-exp product must fit 63 bits), and the ``table``/``pwl``
        exponents need ``in_scale * log2(e) * 2**exp_frac`` below 2**C_BITS.
    n_max : int
        Longest row (1 to 4096); longer rows are split.
    exp : ``"table"``, ``"pwl"`` or ``"ibert"``
    exp_frac : int
        ``F``: fraction bits of the base-2 exponent (4 to 12 for ``table``, to 16 for
        ``pwl``).
    exp_segments : int
        PWL segments of ``2**f`` (power of two, 2 to 256).
    pwl_frac : int
        Fraction bits of PWL slopes and intercepts (0 to 16).
    recip : ``"table"`` or ``"pwl"``
    recip_bits : int
        ``J``: index bits of the reciprocal table / log2 of its PWL segments (2 to 10).
    newton : bool
        One Newton-Raphson step after the reciprocal's table or PWL (``true``/``false``
        only).
    output : ``"u8"``, ``"s8"`` or ``"log2"``
    out_levels : int
        ``L``: ``u8``/``s8`` codes are the probability * ``L`` (scale ``1/L``): 256 or 255.
    mask : bool
        Build the ``mask`` input field (``true``/``false`` only).
    acc_frac : int
        ``A``: fraction bits of ``v`` and the running sum; 0 (default) means
        ``8 + ceil(log2(n_max)) + 1`` (numerics.md: output bits + log2 N + 1).
    """
    in_format: str = "s16"
    in_scale: float = 2 ** -8
    n_max: int = 128
    exp: str = "pwl"
    exp_frac: int = 10
    exp_segments: int = 16
    pwl_frac: int = 8
    recip: str = "table"
    recip_bits: int = 8
    newton: bool = True
    output: str = "u8"
    out_levels: int = 256
    mask: bool = True
    acc_frac: int = 0

    def __post_init__(self):
        fmt = check_format("in_format", self.in_format, 4, 16)
        if not fmt.signed:
            raise ConfigError(f"in_format: {self.in_format!r} is not allowed; logits are "
                              f"signed, e.g. 's8' or 's16'")
        object.__setattr__(self, "in_scale", check_scale("in_scale", self.in_scale))
        check_int("n_max", self.n_max, 1, 4096)
        check_choice("exp", self.exp, EXPS)
        check_int("exp_frac", self.exp_frac, 4, 16)
        if self.exp == "table" and self.exp_frac > 12:
            raise ConfigError(f"exp_frac: {self.exp_frac!r} is not allowed with exp 'table'; "
                              f"expected 4 to 12 (a table of 2**exp_frac entries; exp 'pwl' "
                              f"takes up to 16)")
        seg = self.exp_segments
        if not isinstance(seg, int) or isinstance(seg, bool) or not 2 <= seg <= 256 \
                or seg & (seg - 1) or seg > 1 << self.exp_frac:
            raise ConfigError(f"exp_segments: {seg!r} is not allowed; expected a power of two "
                              f"from 2 to {min(256, 1 << self.exp_frac)}")
        check_int("pwl_frac", self.pwl_frac, 0, 16)
        check_choice("recip", self.recip, RECIPS)
        check_int("recip_bits", self.recip_bits, 2, 10)
        check_bool("newton", self.newton)
        check_choice("output", self.output, OUTPUTS)
        if isinstance(self.out_levels, bool) or not isinstance(self.out_levels, int) \
                or self.out_levels not in OUT_LEVELS:
            raise ConfigError(f"out_levels: {self.out_levels!r} is not allowed; expected 256 "
                              f"(scale 1/256) or 255 (scale 1/255)")
        if self.output == "log2" and self.out_levels != 256:
            raise ConfigError(f"out_levels: {self.out_levels!r} is not allowed with output "
                              f"'log2' (its codes are -log2 steps); expected 256")
        check_bool("mask", self.mask)
        check_int("acc_frac", self.acc_frac, 0, 24)
        if self.exp == "ibert":
            try:
                approx.ibert_exp_constants(self.in_scale)
            except ValueError as err:
                raise ConfigError(str(err)) from None
            ib = self.ibert_exp
            # z <= c_int on the polynomial's interval; the golden model and the hardware
            # carry z * mult plus its rounding term in 64-bit signed arithmetic
            if ib["poly"].c_int * ib["mult"] + (1 << ib["shift"]) >= 1 << 63:
                least = self.in_scale * math.sqrt(ib["poly"].c_int * ib["mult"] / 2 ** 62)
                raise ConfigError(f"in_scale: {self.in_scale!r} is too fine for exp 'ibert'; "
                                  f"the i-exp product z * mult would exceed 63 bits (use an "
                                  f"in_scale of at least {least:.3g})")
            if ib["shift"] < 1 or ib["mult"] >= 1 << V_MULT_BITS:
                raise ConfigError(f"acc_frac: {self.acc_frac!r} is not allowed with exp "
                                  f"'ibert' at in_scale {self.in_scale!r}; the i-exp to v "
                                  f"multiplier would not fit {V_MULT_BITS} bits with a "
                                  f"rounding shift (use fewer acc_frac or a finer in_scale)")
        if self.exp != "ibert" and self.in_scale * math.log2(math.e) * 2 ** self.exp_frac \
                >= 2 ** C_BITS:
            raise ConfigError(f"in_scale: {self.in_scale!r} is too large for exp_frac "
                              f"{self.exp_frac}; expected in_scale * log2(e) * 2**exp_frac "
                              f"below 2**{C_BITS}")

    # -- derived values ---------------------------------------------------------------------

    @property
    def in_fmt(self):
        return IntFormat.parse(self.in_format)

    @property
    def A(self):
        """Fraction bits of ``v`` and the running sum."""
        return self.acc_frac or 8 + (self.n_max - 1).bit_length() + 1

    @property
    def sum_width(self):
        """Nominal unsigned bits of the running sum ``S``, for ``v < 2**(A+1)``. Rounding can
        let ``v`` reach ``2**(A+1)`` (a table entry at ``f`` near ``2**F``, a PWL fit, i-exp);
        the hardware then widens ``S`` to hold ``n_max`` times the largest ``v`` it can
        produce (``ranges.sum_width``). Numerics never depend on it: ``S`` is exact."""
        return self.A + 1 + (self.n_max - 1).bit_length()

    @property
    def out_width(self):
        return 4 if self.output == "log2" else 8

    @cached_property
    def base2(self):
        """``(C, G)`` of ``t = (x * C) >> G`` (base-2 variants)."""
        ratio = self.in_scale * math.log2(math.e) * (1 << self.exp_frac)
        _, exp = math.frexp(ratio)
        g = max(0, C_BITS - exp)
        return int(round(ratio * (1 << g))), g

    @cached_property
    def pow2_table(self):
        """``v`` for each ``f`` (``exp="table"``)."""
        a, f = self.A, self.exp_frac
        return tuple(int(round(2 ** (i / (1 << f)) * (1 << a))) for i in range(1 << f))

    @cached_property
    def pow2_pwl(self):
        """The PWL of ``v(f)`` (``exp="pwl"``)."""
        a, f = self.A, self.exp_frac
        targets = [2 ** (i / (1 << f)) * (1 << a) for i in range(1 << f)]
        return approx.make_pwl(targets, 0, self.exp_segments, "uniform", self.pwl_frac)

    @cached_property
    def ibert_exp(self):
        """``{"poly": IBertExp, "q": ln2 codes, "mult", "shift", "div_mult", "div_shift",
        "k_offset"}`` of the ``ibert`` variant: ``k = ((x - k_offset * q) * div_mult >>
        div_shift) + k_offset`` is ``floor(x / q)`` for every code."""
        poly = approx.ibert_exp_constants(self.in_scale)
        q = -poly.x0_int
        mult, shift = approx.dyadic(2 * poly.z_scale * (1 << self.A), V_MULT_BITS)
        k_offset = self.in_fmt.min // q            # floor: k_offset * q <= in_min
        span = self.in_fmt.max - k_offset * q      # dividend range [0, span]
        div_mult, div_shift = approx.floor_div_magic(q, span.bit_length())
        return {"poly": poly, "q": q, "mult": mult, "shift": shift, "div_mult": div_mult,
                "div_shift": div_shift, "k_offset": k_offset}

    @cached_property
    def recip_table(self):
        j = self.recip_bits
        return tuple(int(round((1 << RECIP_Q) * (1 / (1 + i / (1 << j))
                                                  + 1 / (1 + (i + 1) / (1 << j))) / 2))
                     for i in range(1 << j))

    @cached_property
    def recip_pwl(self):
        n = 1 << RECIP_Q
        targets = [(1 << (2 * RECIP_Q)) / (n + u) for u in range(n)]
        return approx.make_pwl(targets, 0, 1 << self.recip_bits, "uniform", self.pwl_frac)

    @property
    def ranges(self):
        """:class:`SoftmaxRanges`: the exact ranges of the datapath's integers over every
        input, from which the hardware's signal widths follow (computed once per config)."""
        return _value_ranges(self)

    @property
    def latency(self):
        """Clock edges from the one that accepts the beat of a one-element row to ``o.valid``
        of its output (that edge included; empty pipelines, ``o.ready`` high): the exponent
        unit (4 stages for ``table``, 6 for ``pwl``, 7 for ``ibert``), the maximum loop's
        register (1), the reciprocal (row registers, leading zeros, mantissa, ROM, registered
        ROM output, PWL product and value, 3 Newton stages when used, the row-info slot: 5
        to 10) and pass 2 (memory read, its output register, product, shift or leading-one
        compares, output register: 5). The hardware (:class:`accelgen.hdl.softmax.Softmax`)
        counts its stages and checks this value."""
        exp = {"table": 4, "pwl": 6, "ibert": 7}[self.exp]
        recip = (5 if self.recip == "table" else 7) + 3 * self.newton
        return exp + 1 + recip + 5

    @property
    def input_fields(self):
        end = (f"1 on the final element of a row; a row also ends after {self.n_max} "
               f"elements (n_max), as if last were set")
        return ([Field("x", self.in_fmt.width, True,
                       doc=f"One logit per beat ({self.in_format}), real value in_scale * x; "
                           f"a row is the beats up to its end (see last).")]
                + ([Field("mask", 1, doc="1: exclude this element (like an attention mask of "
                                         "-inf): it outputs probability 0 and adds nothing to "
                                         "the row's sum.")] if self.mask else [])
                + [Field("last", 1, doc=end + ".")])

    @property
    def output_fields(self):
        y = {"u8": f"the probability * {self.out_levels}, rounded half up, at most 255 "
                   f"(masked: 0)",
             "s8": f"the u8 value (probability * {self.out_levels}) minus 128 (masked: -128)",
             "log2": "4-bit code y ~= -log2(probability), 0 to 15 (masked: 15)"}[self.output]
        return [Field("y", self.out_width, self.output == "s8",
                      doc=f"One output per input element, in input order: {y}."),
                Field("last", 1, doc="1 on the output of each row's final element (a last "
                                     "beat, or the row's n_max-th element).")]

    def stream_fields(self):
        return {"i": self.input_fields, "o": self.output_fields}

    def derived(self):
        out = {"latency": self.latency, "elements_per_cycle": 1, "acc_frac": self.A,
               "sum_width": self.sum_width, "row_buffer_elements": 2 * self.n_max,
               "out_width": self.out_width}
        if self.exp == "ibert":
            ib = self.ibert_exp
            out["ibert"] = {**vars(ib["poly"]), **{k: v for k, v in ib.items() if k != "poly"}}
        else:
            out["C"], out["G"] = self.base2
        return out


# -- value ranges (exact, over every input) ----------------------------------------------------

@dataclass(frozen=True)
class SoftmaxRanges:
    """Exact ranges ``(lo, hi)`` of the datapath's integers over every input code, from which
    the hardware's signal widths follow (:attr:`SoftmaxConfig.ranges`).

    Members
    -------
    k, v : tuple
        Step 1 results.
    sum_width : int
        Bits of ``S``: ``config.sum_width``, or more where ``v`` reaches ``2**(A+1)``.
    r0, r : tuple
        Step 3: table or PWL value, and the final ``r`` (after Newton).
    newton_t : tuple or None
        ``2**17 - (m r0 >> 16)`` of the Newton step.
    p_width : int
        Bits of ``P = v * r``.
    """
    k: tuple
    v: tuple
    sum_width: int
    r0: tuple
    r: tuple
    newton_t: object
    p_width: int


def _pwl_range(pwl, lo, hi):
    """Value range of a PWL over the inputs ``lo .. hi``: each line is monotonic, so the
    extremes of a segment sit at its ends."""
    ends = list(pwl.bases[1:]) + [pwl.hi + 1]
    values = [approx.pwl_eval(pwl, u) for base, end in zip(pwl.bases, ends)
              for u in (max(base, lo), min(end - 1, hi)) if max(base, lo) <= min(end - 1, hi)]
    return min(values), max(values)


def _exp_ranges(cfg):
    """``(k range, v range)`` of step 1 over every code of ``in_format`` (``k`` is monotonic
    in ``x``)."""
    fmt = cfg.in_fmt
    if cfg.exp == "ibert":
        ib = cfg.ibert_exp
        poly, q = ib["poly"], ib["q"]
        k = [(((x - ib["k_offset"] * q) * ib["div_mult"]) >> ib["div_shift"]) + ib["k_offset"]
             for x in (fmt.min, fmt.max)]
        # z(p) = p (p + b) + c over p in [-q, -1]: extremes at the ends or the vertex
        ps = {-q, -1} | {p for p in (-poly.b_int // 2, -(-poly.b_int // 2)) if -q <= p <= -1}
        zs = [p * (p + poly.b_int) + poly.c_int for p in ps]
        v = [(z * ib["mult"] + approx.half_up_bias(ib["shift"])) >> ib["shift"]
             for z in (min(zs), max(zs))]
        return tuple(k), tuple(v)
    c, g = cfg.base2
    t = [(x * c) >> g for x in (fmt.min, fmt.max)]
    k = (t[0] >> cfg.exp_frac, t[1] >> cfg.exp_frac)
    if cfg.exp == "table":
        return k, (min(cfg.pow2_table), max(cfg.pow2_table))
    return k, _pwl_range(cfg.pow2_pwl, 0, (1 << cfg.exp_frac) - 1)


def _recip_ranges(cfg):
    """``(r0 range, r range, Newton t range or None)`` of step 3 over every mantissa ``m`` in
    ``[2**16, 2**17)``."""
    one, j = 1 << RECIP_Q, cfg.recip_bits
    if cfg.recip == "table":
        r0s = [cfg.recip_table[(m >> (RECIP_Q - j)) & ((1 << j) - 1)] for m in range(one, 2 * one)]
    else:
        r0s = [approx.pwl_eval(cfg.recip_pwl, u) for u in range(one)]
    r0 = (min(r0s), max(r0s))
    if not cfg.newton:
        return r0, r0, None
    ts = [(2 * one) - ((m * r) >> RECIP_Q) for m, r in zip(range(one, 2 * one), r0s)]
    rs = [(r * t) >> RECIP_Q for r, t in zip(r0s, ts)]
    return r0, (min(rs), max(rs)), (min(ts), max(ts))


@lru_cache(maxsize=64)
def _value_ranges(cfg):
    """:attr:`SoftmaxConfig.ranges`, cached per config value (a pass over the ``2**16``
    reciprocal mantissas)."""
    k, v = _exp_ranges(cfg)
    r0, r, t = _recip_ranges(cfg)
    if v[0] < 1 or r[0] < 1:
        # S >= 1 makes e >= 0 and P >= 1, which the datapath relies on
        raise ValueError(f"softmax: v in {v} or r in {r} reaches below 1; the hardware needs "
                         f"both positive")
    # S is at most the plain sum of a row's v (every rescale floors towards 0)
    sum_width = max(cfg.sum_width, (cfg.n_max * v[1]).bit_length())
    return SoftmaxRanges(k=k, v=v, sum_width=sum_width, r0=r0, r=r, newton_t=t,
                         p_width=(v[1] * r[1]).bit_length())


PRESETS = {
    "tiny": SoftmaxConfig(in_format="s8", in_scale=2 ** -4, n_max=8, exp="table", exp_frac=6,
                          recip_bits=6),
}
PRESETS["default"] = SoftmaxConfig()
PRESETS["table"] = replace(PRESETS["default"], exp="table", output="s8")
PRESETS["ibert"] = replace(PRESETS["default"], exp="ibert", output="log2", mask=False)
# int8 probabilities at scale 1/255, zero point -128: what onnxruntime's static quantizer gives
# a Softmax output (accelgen run maps such models onto it)
PRESETS["onnx"] = replace(PRESETS["default"], output="s8", out_levels=255)

#: Declared accuracy of each preset against float64 softmax of the dequantized logits, in
#: output LSB (1/256 for u8/s8, one log2 step for log2). The population: rows of length
#: ``n_max`` from :func:`random_rows <accelgen.sim.golden.softmax.random_rows>` (normal logits
#: with a standard deviation drawn uniformly from 0.5 to 8 real units per row, no mask).
#: ``max_abs`` bounds every element; ``mean_abs`` bounds the mean over any sample of at least
#: 24 such rows (``accelgen show --errors`` takes 1000 rows, seed 0); u8/s8 row sums must also
#: lie within ``1 +/- N * 2**-8``. The tests assert them. Measured over 3000 random samples of
#: 24 rows: tiny mean 0.197, 99.9th percentile 0.247, largest 0.254 (rows of 8 elements make
#: its per-row mean noisy, so its bound is 0.3); default/table largest 0.158, ibert 0.192.
ERROR_BOUNDS = {name: {"max_abs": 1.0, "mean_abs": 0.3 if name == "tiny" else 0.25}
                for name in PRESETS}

#: ``accelgen prove``: one output beat per input beat; the row memory's two banks of
#: ``n_max`` elements and the pipeline hold them
PROOF = ProofContract(depth=24, beats=(Beats("i", "o", lambda cfg: 2 * cfg.n_max + cfg.latency),))
