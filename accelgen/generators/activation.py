"""Config and presets of block ``activation``: an elementwise nonlinear unit (GELU, SiLU,
sigmoid, tanh, exp, reciprocal, rsqrt) on integer codes with explicit scales.

Number formats
    An input code ``x`` (``in_format``, e.g. ``s8``) stands for the real value
    ``in_scale * (x - in_zero_point)``; an output code ``y`` (``out_format``) for
    ``out_scale * (y - out_zero_point)``. The float64 truth of an input code, in output LSB, is
    ``r(x) = f(in_scale * (x - in_zero_point)) / out_scale + out_zero_point``
    (:func:`accelgen.approx.reference`). ``exp`` is ``exp(min(v, 0))`` (defined for v <= 0,
    1 above); ``reciprocal`` and ``rsqrt`` are +inf for v <= 0, so those codes give the
    output maximum. Every output is clamped to ``out_format`` (saturation, never wrap).

Back-ends (the golden model :mod:`accelgen.sim.golden.activation` is the definition)
    ``table``
        ``y = round_half_even(clamp(r(x)))``: one ROM entry per input code (inputs of up to
        10 bits). Exact up to output rounding; the area baseline.
    ``pwl``
        ``segments`` lines over the input codes; segment ``j`` covers ``base_j <= x <
        base_{j+1}`` and gives ``y = clamp((C_j + M_j * (x - base_j) + 2**(F-1)) >> F)`` with
        ``F = pwl_frac`` (no rounding term when ``F == 0``), slope ``M_j`` and intercept
        ``C_j`` signed integers with ``F`` fraction bits (widths in ``derived``).
        ``spacing="uniform"``: equal power-of-two segments, indexed by the top bits of
        ``x - in_min``; ``"nonuniform"``: bases equidistribute the curvature
        (:func:`accelgen.approx.curvature_bases`), indexed by comparators. Each line is the
        chord shifted to the minimax position (:func:`accelgen.approx.pwl_fit`), fitted to
        ``clamp(r(x))``.
    ``ibert``
        I-BERT's integer polynomials (``gelu``, ``exp`` only; symmetric inputs,
        ``in_zero_point == 0``). Constants are folded from ``in_scale`` with floor as in the
        reference code (:mod:`accelgen.approx`); the result is brought to the output scale by
        a dyadic multiplier of ``mult_bits`` bits derived from the two scales and rounded
        half up: ``exp``: ``y = clamp(zp + ((z * mult) >> (shift + q)))`` (round half up)
        with ``z``, ``q`` of i-exp; ``gelu``: ``y = clamp(zp + round_half_up(s * y_int *
        mult / 2**shift))`` with ``y_int`` of i-GELU and ``s`` the sign of its scale.

Streams and timing
    ``i``: payload ``x`` (``lanes`` codes, lane ``l`` at bit ``l * in_width``) and ``last`` (a
    tag carried to the output unchanged). ``o``: ``y`` (lane ``l`` at ``l * out_width``) and
    ``last``. One beat per cycle after the pipeline fills, ``latency`` cycles from an
    accepted ``i`` beat to its ``o`` beat (when ``o.ready`` is high); full backpressure. Every
    input bit pattern is legal.
"""

import re
from dataclasses import dataclass, replace
from functools import cached_property

from .. import approx
from ..numerics import ConfigError, IntFormat
from .base import (ArrayLayout, Beats, Config, Field, ProofContract, check_bool, check_choice,
                   check_int, check_real)

__all__ = ["ActivationConfig", "PRESETS", "ERROR_BOUNDS", "FUNCTIONS", "BACKENDS"]

FUNCTIONS = tuple(approx.FUNCTIONS)
BACKENDS = ("table", "pwl", "ibert")
SPACINGS = ("uniform", "nonuniform")
IBERT_FUNCTIONS = ("gelu", "exp")
TABLE_MAX_BITS = 10
MAX_IN_BITS = 16
MAX_NONUNIFORM = 64
MAX_SEGMENTS = 256
MAX_IBERT_SHIFT = 62   # output shift of the ibert back-end
#: Range of every real scale (the real value of one LSB): the normal float32 numbers (the type
#: of ONNX and PyTorch quantization scales) up to 2**126, so every realistic scale passes, and
#: narrow enough that no float64 derived from one or two scales overflows or underflows
#: (``scale**2`` of I-BERT, ``in_scale / out_scale``, ``f(x) / out_scale``).
SCALE_MIN, SCALE_MAX = 2.0 ** -126, 2.0 ** 126


def check_scale(name, value):
    """A real scale from :data:`SCALE_MIN` to :data:`SCALE_MAX` (an int is taken as a
    float; never a bool, NaN or infinity)."""
    return check_real(name, value, SCALE_MIN, SCALE_MAX,
                      expected="a real number from 2**-126 to 2**126 (the real value of one "
                               "LSB), e.g. 0.03125")


def check_format(name, value, lo, hi):
    """An :class:`~accelgen.numerics.IntFormat` name of ``lo`` to ``hi`` bits."""
    fmt = None
    try:
        fmt = IntFormat.parse(value, param=name)
    except ConfigError:
        # a well-spelt name of a width no IntFormat has ("s0", "s99"): say this field's range
        if not (isinstance(value, str) and re.fullmatch(r"[su](0|[1-9][0-9]*)", value)):
            raise
    if fmt is None or not lo <= fmt.width <= hi:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected a format of {lo} to "
                          f"{hi} bits, e.g. 's8' or 'u{hi}'")
    return fmt


@dataclass(frozen=True, kw_only=True)
class ActivationConfig(Config):
    """Parameters of an ``activation`` block. See the module docstring for the semantics.

    Members
    -------
    function : str
        One of ``gelu``, ``silu``, ``sigmoid``, ``tanh``, ``exp``, ``reciprocal``, ``rsqrt``.
    backend : ``"table"``, ``"pwl"`` or ``"ibert"``
    in_format, out_format : str
        Integer formats such as ``"s8"``, ``"u8"``, ``"s16"`` (2 to 16 bits, spelt without
        leading zeros or blanks; ``table`` takes inputs of at most 10 bits).
    in_scale, out_scale : float
        Real value of one LSB: a finite real number from ``2**-126`` to ``2**126`` (an int is
        taken as a float; a bool is refused), with every back-end. ``ibert`` narrows it:
        ``in_scale`` below 0.6931 (i-exp: ln 2 must span two codes) or at most 1.25086
        (i-GELU: its clamp must span two codes), for i-GELU also at least about
        ``2**-29.6`` (its polynomial below ``2**62``); and the two scales must give an
        output multiplier of at most ``mult_bits`` bits, an output shift of at most 62 bits
        and a scaled polynomial below ``2**62``.
    in_zero_point, out_zero_point : int
        Code of real 0 (inside the format).
    lanes : int
        Elements per beat (1 to 16).
    segments : int
        PWL segments, 2 to 256 with every back-end; ``pwl`` narrows this to a power of two
        (``uniform``) or at most 64 (``nonuniform``), and at most the number of input codes.
    spacing : ``"uniform"`` or ``"nonuniform"``
    pwl_frac : int
        Fraction bits of the PWL slopes and intercepts (0 to 24).
    mult_bits : int
        Bits of the I-BERT output multiplier (8 to 24).
    dsp : bool
        Products of the ``pwl`` and ``ibert`` back-ends on DSP blocks (``True``: elaborated for
        an FPGA family, its DSP primitives with their registers in use, see
        :func:`accelgen.hdl.common.dsp.dsp_product`; plain ``*`` without one), or built from
        LUTs and carry chains
        (:func:`accelgen.hdl.common.arith.lut_product`) for a design whose DSPs are taken or
        too few (iCE40 UP5K: 8). Numerics are the same; the ``table`` back-end has no products.
        Only ``True`` or ``False`` (not ``1`` or ``0``).
    """
    function: str = "gelu"
    backend: str = "table"
    in_format: str = "s8"
    in_scale: float = 1 / 32
    in_zero_point: int = 0
    out_format: str = "s8"
    out_scale: float = 1 / 32
    out_zero_point: int = 0
    lanes: int = 1
    segments: int = 16
    spacing: str = "nonuniform"
    pwl_frac: int = 8
    mult_bits: int = 16
    dsp: bool = True

    def __post_init__(self):
        check_choice("function", self.function, FUNCTIONS)
        check_choice("backend", self.backend, BACKENDS)
        fin = check_format("in_format", self.in_format, 2, MAX_IN_BITS)
        fout = check_format("out_format", self.out_format, 2, 16)
        object.__setattr__(self, "in_scale", check_scale("in_scale", self.in_scale))
        object.__setattr__(self, "out_scale", check_scale("out_scale", self.out_scale))
        check_int("in_zero_point", self.in_zero_point, fin.min, fin.max)
        check_int("out_zero_point", self.out_zero_point, fout.min, fout.max)
        check_int("lanes", self.lanes, 1, 16)
        check_choice("spacing", self.spacing, SPACINGS)
        check_int("pwl_frac", self.pwl_frac, 0, 24)
        check_int("mult_bits", self.mult_bits, 8, 24)
        check_bool("dsp", self.dsp)
        # unused by the table and ibert back-ends, but checked with every back-end, so that a
        # config never carries a value that no back-end could build
        check_int("segments", self.segments, 2, MAX_SEGMENTS)
        if self.backend == "table" and fin.width > TABLE_MAX_BITS:
            raise ConfigError(f"in_format: {self.in_format!r} is not allowed with backend "
                              f"'table'; a full table takes inputs of at most "
                              f"{TABLE_MAX_BITS} bits (use backend 'pwl' or 'ibert')")
        if self.backend == "pwl":
            self._check_segments(fin)
        if self.backend == "ibert":
            self._check_ibert(fin)

    def _check_segments(self, fin):
        cap = MAX_SEGMENTS if self.spacing == "uniform" else MAX_NONUNIFORM
        top = min(cap, 1 << fin.width)
        codes = (f" (in_format {self.in_format!r} has {top} codes)" if top < cap else "")
        if self.spacing == "uniform":
            if self.segments > top or self.segments & (self.segments - 1):
                raise ConfigError(f"segments: {self.segments!r} is not allowed; uniform "
                                  f"spacing needs a power of two from 2 to {top}{codes}")
        elif self.segments > top:
            raise ConfigError(f"segments: {self.segments!r} is not allowed; nonuniform "
                              f"spacing needs from 2 to {top} segments{codes}")

    def _check_ibert(self, fin):
        if self.function not in IBERT_FUNCTIONS:
            raise ConfigError(f"backend: 'ibert' is not allowed for function "
                              f"{self.function!r}; I-BERT defines integer polynomials for "
                              f"{', '.join(IBERT_FUNCTIONS)}")
        if not fin.signed or self.in_zero_point != 0:
            raise ConfigError(f"in_format: {self.in_format!r} with in_zero_point "
                              f"{self.in_zero_point} is not allowed with backend 'ibert'; "
                              f"I-BERT takes symmetric signed inputs (zero point 0)")
        try:
            ib = self.ibert
        except ValueError as err:
            raise ConfigError(str(err)) from None
        poly = ib["poly"]
        if self.function == "gelu" and max(poly.b_int ** 2, abs(poly.c_int),
                                           abs(poly.b_int ** 2 + poly.c_int)) >= 1 << 62:
            # (min(|x|, -b) + b)**2 + c before the erf shift; finer scales grow it as 1/s**2
            raise ConfigError(f"in_scale: {self.in_scale!r} is too fine for backend 'ibert' "
                              f"with function 'gelu'; the i-GELU polynomial would exceed 62 "
                              f"bits (use an in_scale of at least 2**-29)")
        if ib["mult"] >= 1 << self.mult_bits:
            raise ConfigError(f"out_scale: {self.out_scale!r} is not allowed with backend "
                              f"'ibert' and in_scale {self.in_scale!r}; the output multiplier "
                              f"would need {ib['mult'].bit_length()} bits, mult_bits is "
                              f"{self.mult_bits} (use a larger out_scale)")
        if ib["mult"] * self._ibert_peak(ib["poly"]) >= 1 << 62:
            raise ConfigError(f"in_scale: {self.in_scale!r} is too fine for backend 'ibert' "
                              f"with mult_bits {self.mult_bits}; the scaled polynomial would "
                              f"exceed 62 bits (use a coarser in_scale or fewer mult_bits)")
        if ib["shift"] > MAX_IBERT_SHIFT:
            # the scaled polynomial is below 2**62: at such shifts every output would round to
            # out_zero_point (and the int64 golden model's rounding term would overflow)
            raise ConfigError(f"out_scale: {self.out_scale!r} is not allowed with backend "
                              f"'ibert' and in_scale {self.in_scale!r}; the output shift would "
                              f"be {ib['shift']} bits, at most {MAX_IBERT_SHIFT} are allowed "
                              f"(use a smaller out_scale)")

    def _ibert_peak(self, poly):
        """Largest magnitude of the integer the output multiplier scales (i-exp: ``z``;
        i-GELU: ``x * (e + one_int)``), over the input format."""
        if self.function == "exp":
            r = range(poly.x0_int + 1, 1)
            return max(abs(v * (v + poly.b_int) + poly.c_int) for v in (r[0], r[-1]))
        x_abs = max(-self.in_fmt.min, self.in_fmt.max)
        e_abs = (max(abs(poly.b_int * poly.b_int + poly.c_int), abs(poly.c_int))
                 >> poly.erf_shift) + 1
        return x_abs * (e_abs + abs(poly.one_int))

    # -- derived values ---------------------------------------------------------------------

    @property
    def in_fmt(self):
        return IntFormat.parse(self.in_format)

    @property
    def out_fmt(self):
        return IntFormat.parse(self.out_format)

    @property
    def codes(self):
        """Every input code, ascending."""
        return range(self.in_fmt.min, self.in_fmt.max + 1)

    def reference(self, x):
        """Float64 truth of code ``x`` in output LSB (unclamped, unrounded)."""
        return approx.reference(self.function, x, self.in_scale, self.in_zero_point,
                                self.out_scale, self.out_zero_point)

    @cached_property
    def table(self):
        """ROM contents of the ``table`` back-end (and the correctly rounded output of every
        back-end): entry ``x - in_min`` for each code ``x``."""
        f = self.out_fmt
        return tuple(approx.ideal(self.function, x, self.in_scale, self.in_zero_point,
                                  self.out_scale, self.out_zero_point, f.min, f.max)
                     for x in self.codes)

    @cached_property
    def pwl(self):
        """The :class:`accelgen.approx.PWL` of the ``pwl`` back-end."""
        f = self.out_fmt
        targets = [self.reference(x) for x in self.codes]
        return approx.make_pwl(targets, self.in_fmt.min, self.segments, self.spacing,
                               self.pwl_frac, out_min=f.min - 0.5, out_max=f.max + 0.5)

    @cached_property
    def ibert(self):
        """I-BERT constants: ``{"poly": IBertExp or IBertGelu, "mult": int, "shift": int,
        "sign": +1 or -1}`` (output multiplier folded from the scales)."""
        if self.function == "exp":
            poly = approx.ibert_exp_constants(self.in_scale)
            ratio = poly.z_scale / self.out_scale
        else:
            poly = approx.ibert_gelu_constants(self.in_scale,
                                               max(-self.in_fmt.min, self.in_fmt.max))
            ratio = poly.y_scale / self.out_scale
        mult, shift = approx.dyadic(abs(ratio), self.mult_bits)
        return {"poly": poly, "mult": mult, "shift": shift, "sign": 1 if ratio > 0 else -1}

    @property
    def latency(self):
        """Cycles from an accepted ``i`` beat to its ``o`` beat, without stalls: ``table`` 2
        (ROM read, output register), ``pwl`` 4 (segment search, constants, product, sum;
        ``uniform`` spacing needs no search: 3), ``ibert`` 7 (the output multiplier's partial
        products and their sum take a stage each; :mod:`accelgen.hdl.activation` draws the
        stages)."""
        if self.backend == "pwl":
            return 3 if self.spacing == "uniform" else 4
        return {"table": 2, "ibert": 7}[self.backend]

    def _lanes(self, fmt, note):
        return ArrayLayout(shape=(self.lanes,), index=("lane",), stride=(fmt.width,),
                           width=fmt.width, signed=fmt.signed, note=note)

    @property
    def input_fields(self):
        f = self.in_fmt
        return [Field("x", self.lanes * f.width,
                      doc=f"{self.lanes} input code{'s' * (self.lanes > 1)} ({f.name}), one "
                          f"per lane; code x stands for in_scale * (x - in_zero_point). Lanes "
                          f"are independent: lane l of y is {self.function} of lane l of x.",
                      array=self._lanes(f, "every bit pattern is a legal code")),
                Field("last", 1, doc="A tag the hardware carries unchanged to this beat's o "
                                     "beat (no effect on the values).")]

    @property
    def output_fields(self):
        f = self.out_fmt
        return [Field("y", self.lanes * f.width,
                      doc=f"{self.lanes} output code{'s' * (self.lanes > 1)} ({f.name}), lane "
                          f"l computed from lane l of the i beat; code y stands for out_scale * "
                          f"(y - out_zero_point).",
                      array=self._lanes(f, f"saturated to {f.name}")),
                Field("last", 1, doc="The i beat's last, unchanged.")]

    def stream_fields(self):
        return {"i": self.input_fields, "o": self.output_fields}

    def derived(self):
        """Derived values for the manifest."""
        out = {"latency": self.latency, "throughput_beats_per_cycle": 1,
               "elements_per_cycle": self.lanes,
               "input_range": [self.in_scale * (self.in_fmt.min - self.in_zero_point),
                               self.in_scale * (self.in_fmt.max - self.in_zero_point)]}
        if self.backend == "table":
            out["table_entries"] = len(self.table)
        elif self.backend == "pwl":
            p = self.pwl
            out.update(segments=p.segments, bases=list(p.bases), slope_bits=p.slope_bits,
                       intercept_bits=p.intercept_bits, offset_bits=p.offset_bits)
        else:
            ib = self.ibert
            out.update(ibert={k: v for k, v in vars(ib["poly"]).items()},
                       mult=ib["mult"], shift=ib["shift"], sign=ib["sign"])
        return out


PRESETS = {
    "tiny": ActivationConfig(function="gelu", backend="table"),
}
# Uniform 16 segments with 5 fraction bits: <= 1 LSB on int8 GELU/SiLU (the same error as 8
# fraction bits; 4 would give 0.89 LSB) at about half the full table's LUT area with one DSP per
# lane, 1.2x the table in LUTs alone (dsp=False; benchmarks/nonlinear.py). Non-uniform segments
# are more accurate but pay comparators.
PRESETS["default"] = ActivationConfig(function="gelu", backend="pwl", segments=16,
                                      spacing="uniform", pwl_frac=5, lanes=2)
PRESETS["silu_pwl"] = replace(PRESETS["default"], function="silu", in_scale=1 / 16,
                              out_scale=1 / 16)
PRESETS["silu_table"] = replace(PRESETS["silu_pwl"], backend="table")
PRESETS["gelu_ibert"] = replace(PRESETS["tiny"], backend="ibert")
PRESETS["exp_ibert"] = ActivationConfig(function="exp", backend="ibert", in_format="s16",
                                        in_scale=2 ** -10, out_format="u8",
                                        out_scale=1 / 256, lanes=4)
PRESETS["sigmoid_pwl"] = ActivationConfig(function="sigmoid", backend="pwl", in_scale=1 / 16,
                                          out_format="u8", out_scale=1 / 256, segments=32,
                                          spacing="uniform")
PRESETS["tanh_pwl"] = ActivationConfig(function="tanh", backend="pwl", in_scale=1 / 32,
                                       out_scale=1 / 128, segments=16)
PRESETS["recip_pwl"] = ActivationConfig(function="reciprocal", backend="pwl", in_format="u8",
                                        in_scale=1 / 16, out_format="u8", out_scale=1 / 16,
                                        segments=32)
PRESETS["rsqrt_table"] = ActivationConfig(function="rsqrt", backend="table", in_format="u10",
                                          in_scale=1 / 64, out_format="u8", out_scale=1 / 32)

#: Declared accuracy of each preset against float64 over every input code, in output LSB:
#: ``max_abs`` bounds ``|golden - clamp(r(x))|`` (the float64 truth clamped to the output
#: range); ``code_max`` bounds the distance to the correctly rounded code (0: every output is
#: the full table's). ``accelgen show activation --errors`` prints them; the tests assert them.
ERROR_BOUNDS = {
    "tiny": {"max_abs": 0.5, "code_max": 0},
    "default": {"max_abs": 1.0, "code_max": 1},
    "silu_pwl": {"max_abs": 1.0, "code_max": 1},
    "silu_table": {"max_abs": 0.5, "code_max": 0},
    "gelu_ibert": {"max_abs": 1.5, "code_max": 1},
    "exp_ibert": {"max_abs": 1.0, "code_max": 1},
    "sigmoid_pwl": {"max_abs": 1.0, "code_max": 1},
    "tanh_pwl": {"max_abs": 1.0, "code_max": 1},
    "recip_pwl": {"max_abs": 1.0, "code_max": 1},
    "rsqrt_table": {"max_abs": 0.5, "code_max": 0},
}

#: ``accelgen prove``: one output beat per input beat; a stalled ``o`` freezes the pipeline,
#: which holds one beat per stage
PROOF = ProofContract(depth=12, beats=(Beats("i", "o", lambda cfg: cfg.latency),))
