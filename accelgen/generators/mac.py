"""Config and presets of block ``mac``: a mixed-precision SIMD multiply-accumulate unit.

Precision modes
    A mode names the formats of operand ``a`` (activation) and operand ``b`` (weight).
    Integer modes run two formats together: ``"s8s4"`` is a signed 8-bit ``a`` times a signed
    4-bit ``b`` (the "W4A8" of low-bit LLM weights); ``"u8s8"`` an unsigned 8-bit ``a`` times
    a signed 8-bit ``b``; widths are 2, 4 or 8 bits. Float and posit modes name one element
    format for both operands -- ``"e4m3"``, ``"e5m2"`` (OCP FP8), ``"e3m2"``, ``"e2m3"`` (FP6),
    ``"e2m1"`` (FP4), ``"bf16"``, ``"fp16"``, ``"p4"``, ``"p8"``, ``"p16"`` (posit(4,1),
    (8,0), (16,1)) -- or two (``"e4m3e5m2"``: E4M3 activations times E5M2 weights). See
    :mod:`accelgen.formats` for every format's encoding. The hardware carries exactly the
    modes listed in ``modes``; the input beat's ``mode`` field holds the index of one of them.

Accumulation (``accumulate``; the golden model in :mod:`accelgen.sim.golden.mac` is the
definition)
    ``"int"`` (integer modes only, the default for them): for each accepted beat, ``s`` = the
    exact sum of the beat's products (per accumulator); ``acc = overflow((0 if clear else acc)
    + s)`` into ``s<acc_width>`` with ``overflow`` = wrap or saturate, once per beat.

    ``"exact"`` (exact sum, one rounding): every product is exact and lands in a fixed-point
    ("Kulisch") accumulator of ``acc_width`` bits whose LSB weighs ``2**product_exp`` (the
    smallest product of any mode), updated like ``int`` (wrap or saturate per beat). The o
    beat carries the accumulator rounded once to FP32 (round to nearest, ties to even;
    overflow to inf). Sums are exact, so the order of the products never matters.

    ``"fp32"`` (FP32 accumulate per beat, the default when a mode is not an integer): the
    beat's exact product sum is rounded to FP32 (RNE), then ``acc = s if clear else
    fp32(acc + s)`` with IEEE binary32 addition (RNE, subnormals kept).

    Specials (float modes): a NaN operand, or inf times zero, makes the product NaN; inf
    times a nonzero value is an infinity. ``exact`` keeps sticky NaN/+inf/-inf flags beside
    the fixed-point sum and emits NaN if NaN or both infinities were seen, else the
    infinity; ``fp32`` applies the same rule to each beat, then IEEE addition. Every NaN
    result is ``0x7FC00000``. A zero sum is +0 (an exact sum has no signed zero).

    MX modes (``"mxe4m3"``, ``"mxe5m2"``, ``"mxe3m2"``, ``"mxe2m3"``, ``"mxe2m1"``, ``"mxi8"``:
    OCP MX v1.0 element types; a pair such as ``"mxe4m3mxe5m2"`` mixes two) need
    ``accumulate="fp32"`` and ``reduction="together"``: the beats of a mode form blocks of
    ``block`` elements (``block / (lanes * P)`` beats) that share one E8M0 scale per operand
    (``scale_a``/``scale_b`` input fields, ``2**(code - 127)``, 255 = NaN, read on the block's
    last beat). Each block's products are summed exactly, scaled by ``2**(scale_a + scale_b -
    254)``, rounded once to FP32 and added to the FP32 accumulator. A block also ends at a
    ``last`` beat and at any beat of a mode that is not MX (such a beat is a block of its
    own, unscaled), and ``clear`` starts a new block (an unfinished one is dropped). MXINT8
    elements are int8 times 2**-6 (code 0x80 is -2.0). Users hand ``mac`` MX elements as
    their unscaled values.

    A beat with ``last`` set emits the accumulators after its own addition. Accumulators are
    not cleared by ``last``; set ``clear`` on the first beat of the next accumulation. A
    ``mode`` code outside the built modes adds zero and sets the sticky ``err`` flag of the
    running accumulation (cleared by ``clear``).

Residue check (``acc_check="residue"``, ``accumulate="int"`` only)
    A soft-error detector of the integer datapath. Beside each accumulator the unit keeps a
    residue ``r`` (2 bits) predicted from the operands alone: for each beat, ``s3`` =
    ``sum(res(a_k) * res(b_k)) mod 3`` over the beat's products (``res(x) = x mod 3`` of the
    element's value, read from the input beat before the operand registers and carried in
    registers of its own), and ``r = ((0 if clear else r) + s3 - res(e - acc)) mod 3``, where
    ``e`` is the exact ``(0 if clear else acc) + sum`` and ``acc`` its wrapped or saturated
    value (the correction the overflow rule applied). So ``acc = r (mod 3)`` holds in every
    fault-free cycle, whatever the overflow. A beat with ``last`` sends ``fault`` = 1 when an
    accumulator it sends is not congruent to its residue. A single bit flip in an
    accumulator, a product or a partial or full sum changes its value by ``2**i``, never a
    multiple of 3, so it is caught by the next ``last`` beat unless a ``clear`` overwrites
    it first; a flip in an operand register is caught unless the other operand is a
    multiple of 3. The check keeps its own copies of ``valid`` and ``clear``, so an upset of
    either is caught unless the beat's sum happens to be a multiple of 3. The flag is not
    sticky: each beat with ``last`` checks what it sends.

Multiplier strategies
    ``plain``: one multiplier per lane, as wide as the widest mode; every mode runs at one
    product per lane per cycle. Narrow operands are sign- or zero-extended by mode.

    ``fused``, integer lanes (``accumulate="int"``): Bit Fusion style sub-word decomposition.
    A lane has ``(Wa/2) * (Wb/2)`` 2-bit "bricks" (``Wa``/``Wb``: widest ``a``/``b`` over the
    modes); a mode ``wa x wb`` groups them into ``P = (Wa/wa) * (Wb/wb)`` independent products
    per lane per cycle, so a lane with 8-bit maxima yields 1 MAC/cycle at 8x8, 2 at 8x4, 4 at
    4x4 or 8x2, 8 at 4x2 and 16 at 2x2.

    ``fused``, element lanes (``exact``/``fp32``), the XR-NPE scaling: a lane is as wide as
    the widest element of any mode (``W`` bits) and a mode whose wider operand has ``w`` bits
    computes ``P = W // w`` products per lane per cycle -- a 16-bit lane does 1 BF16/P16, 2
    FP8/P8/INT8 or 4 FP4/P4 products. Each product slot decodes its operands to ``(sign,
    significand, exponent)``, multiplies the significands exactly and shifts the product to
    its place in the fixed-point sum.

Reduction
    Every lane adds its ``P`` products of one beat exactly. ``reduction="together"`` also adds
    the lane sums into one accumulator (a dot product); ``"apart"`` keeps one accumulator per
    lane.
"""

import re
from dataclasses import dataclass, replace
from functools import cached_property

from ..formats import ELEMENT_FORMATS, MX_FORMATS, MXElement, product_range
from ..numerics import ConfigError, IntFormat, Overflow
from .base import ArrayLayout, Beats, Config, Field, ProofContract, check_choice, check_int

__all__ = ["MACConfig", "Mode", "PRESETS", "ERROR_BOUNDS", "MODE_WIDTHS", "ACCUMULATE",
           "MODE_FORMATS", "ACC_CHECKS"]

MODE_WIDTHS = (2, 4, 8)
MULTIPLIERS = ("plain", "fused")
REDUCTIONS = ("together", "apart")
MAX_ACC_WIDTH = 48   # int64 golden model: acc + one beat's sum stays exact
#: accumulation semantics (see the module docstring)
ACCUMULATE = ("int", "exact", "fp32")
#: element formats a float/posit mode may name (multiplier operands; fp32 is for results)
MODE_FORMATS = tuple(name for name in ELEMENT_FORMATS if name != "fp32")
#: default of ``accumulate`` and ``acc_width``: derived from the modes (the config stores the
#: derived value, so ``to_dict`` never holds it)
AUTO = "auto"
#: Kulisch accumulator: at most this many bits above the widest product (carry room)
MAX_EXACT_CARRY = 64
#: largest MX block size (elements)
MAX_BLOCK = 4096
MAX_MODES = 16
#: ``acc_check`` choices (see "Residue check" in the module docstring)
ACC_CHECKS = ("none", "residue")
#: two canonical IntFormat names (ASCII digits, no leading zeros); used with ``fullmatch``
_MODE_RE = re.compile(r"([su][1-9][0-9]*)([su][1-9][0-9]*)")


@dataclass(frozen=True)
class Mode:
    """Operand formats of one precision mode (:class:`~accelgen.numerics.IntFormat`,
    :class:`~accelgen.formats.FloatFormat` or :class:`~accelgen.formats.PositFormat`)."""
    a: object
    b: object

    @classmethod
    def parse(cls, text, *, param="modes", integer_only=True):
        """The mode spelled ``text``; float/posit names are refused when ``integer_only``."""
        m = _MODE_RE.fullmatch(text) if isinstance(text, str) else None
        if not m:
            pair = None if integer_only else _element_pair(text)
            if pair:
                if (pair[0] in MX_FORMATS) != (pair[1] in MX_FORMATS):
                    raise ConfigError(f"{param}: {text!r} mixes an MX element type with a "
                                      f"plain format; expected both operands MX (e.g. "
                                      f"'mxe4m3mxe5m2') or neither")
                return cls(*(ELEMENT_FORMATS[name] for name in pair))
            floats = (f"; or one or two of {', '.join(MODE_FORMATS)} (e.g. 'e4m3', "
                      f"'e4m3e5m2')" if not integer_only else "")
            raise ConfigError(f"{param}: {text!r} is not a precision mode; expected the formats "
                              f"of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', "
                              f"'s2s2'{floats}")
        for operand in m.groups():
            # compared as text first: a width of thousands of digits is not an int to parse
            if operand[1:] not in {str(w) for w in MODE_WIDTHS}:
                raise ConfigError(f"{param}: {text!r} has a {operand[1:]}-bit operand; operand "
                                  f"widths must be one of 2, 4, 8")
        return cls(*(IntFormat.parse(operand, param=param) for operand in m.groups()))

    @property
    def is_int(self):
        return isinstance(self.a, IntFormat) and isinstance(self.b, IntFormat)

    @property
    def is_mx(self):
        """An OCP MX mode: elements of blocks with shared E8M0 scales."""
        return isinstance(self.a, MXElement)

    @property
    def name(self):
        if not self.is_int and self.a == self.b:
            return self.a.name
        return f"{self.a.name}{self.b.name}"

    @property
    def width(self):
        """Bits of the wider operand element."""
        return max(self.a.width, self.b.width)

    @property
    def product_min(self):
        return min(x * y for x in (self.a.min, self.a.max) for y in (self.b.min, self.b.max))

    @property
    def product_max(self):
        return max(x * y for x in (self.a.min, self.a.max) for y in (self.b.min, self.b.max))

    @property
    def product_range(self):
        """``(exp_min, magnitude_bits)`` of this mode's exact products (see
        :func:`accelgen.formats.product_range`)."""
        return product_range(self.a, self.b)


def _element_pair(text):
    """``(a, b)`` format names of a float/posit mode spelled ``text``, or None."""
    if not isinstance(text, str):
        return None
    if text in MODE_FORMATS:
        return text, text
    for cut in range(1, len(text)):
        if text[:cut] in MODE_FORMATS and text[cut:] in MODE_FORMATS:
            return text[:cut], text[cut:]
    return None


def _signed_width(lo, hi):
    """Bits of the narrowest two's complement number holding [lo, hi]."""
    width = 1
    while not -(1 << (width - 1)) <= lo <= hi <= (1 << (width - 1)) - 1:
        width += 1
    return width


@dataclass(frozen=True, kw_only=True)
class MACConfig(Config):
    """Parameters of a ``mac`` block. See the module docstring for the semantics.

    Members
    -------
    modes : tuple of str
        Precision modes built into the hardware, e.g. ``("s8s8", "s8s4")`` or ``("s8s8",
        "e4m3", "bf16")`` (1 to 16, each once; a list, or one comma-separated string); index =
        mode code.
    lanes : int
        SIMD lanes (1 to 64).
    multiplier : ``"plain"`` or ``"fused"``
    reduction : ``"together"`` or ``"apart"``
    accumulate : ``"int"``, ``"exact"`` or ``"fp32"``
        Accumulation semantics; default (``"auto"``) ``"int"`` when every mode is an integer
        mode, else ``"fp32"``. ``"int"`` needs integer modes only.
    acc_width : int
        Default (``"auto"``) as stated per accumulation below.
        ``int``: signed accumulator width, from the widest product's width to 48 (default 32).
        ``exact``: width of the fixed-point accumulator, from ``product_width`` (one product)
        to ``product_width + 64`` (default ``product_width + 16``: at least 2**15 products of
        the largest magnitude before an overflow). ``fp32``: 32 (the FP32 accumulator).
    overflow : ``"wrap"`` or ``"saturate"``
        Of the ``int``/``exact`` accumulator; not used by ``fp32``, which overflows to inf as
        IEEE addition does (``accelgen show`` states the accumulation in ``derived``).
    pipeline : int
        Register stages before the accumulator (0 to 7), added in this order: product
        registers, operand (input) registers, fold registers (halfway through the fusion
        tree; in element lanes after the products are shifted into place), lane-sum
        registers, reduction-sum register, then (fused lanes) a register halfway through the
        first half of the fusion tree and one halfway through its second half, so each stage
        has one adder level at the default's 8-bit operands (elsewhere 6 and 7 add a register
        with no logic before it). Latency is ``1 + pipeline`` for ``int``,
        ``2 + pipeline`` for ``fp32`` (one more register: the FP32 rounding of the beat's
        sum) and ``3 + pipeline`` for ``exact`` (the result's magnitude and leading-zero
        count, then its FP32 rounding) for every config, plus 1 for configs with MX modes
        (the running block's register): a stage with no logic before it still adds its
        register, as a retiming slack for synthesis.
    block : int
        Elements per MX block (a power of two up to 4096; OCP MX: 32), a multiple of every MX
        mode's elements per beat. Used by MX modes only.
    acc_check : ``"none"`` or ``"residue"``
        Soft-error check of the datapath and accumulators (``accumulate="int"`` only; see
        "Residue check" in the module docstring). ``"residue"`` adds the ``fault`` output
        field and no latency.
    """
    #: settings derived from the others when "auto" (``resolve_config`` re-derives them when
    #: ``--set`` changes the others and the preset held the derived value)
    AUTO_FIELDS = ("accumulate", "acc_width")

    modes: tuple = ("s8s8",)
    lanes: int = 1
    multiplier: str = "plain"
    reduction: str = "together"
    accumulate: str = AUTO
    acc_width: int = AUTO
    overflow: str = "wrap"
    pipeline: int = 1
    block: int = 32
    acc_check: str = "none"

    def __post_init__(self):
        modes = self.modes
        if isinstance(modes, str):
            modes = tuple(m.strip() for m in modes.split(","))
        if not isinstance(modes, (list, tuple)) or not modes:
            raise ConfigError(f"modes: {self.modes!r} is not allowed; expected a non-empty list "
                              f"of precision modes such as ['s8s8', 's8s4'] or ['e4m3', 'bf16']")
        parsed = [Mode.parse(m, integer_only=False) for m in modes]
        names = [m.name for m in parsed]
        if len(set(names)) != len(names):
            raise ConfigError(f"modes: {list(modes)!r} lists a mode twice; each mode once")
        if len(names) > MAX_MODES:
            raise ConfigError(f"modes: {list(names)!r} lists {len(names)} modes; at most "
                              f"{MAX_MODES} are allowed")
        object.__setattr__(self, "modes", tuple(names))
        check_int("lanes", self.lanes, 1, 64)
        check_choice("multiplier", self.multiplier, MULTIPLIERS)
        check_choice("reduction", self.reduction, REDUCTIONS)
        check_choice("overflow", self.overflow, [o.value for o in Overflow])
        check_int("pipeline", self.pipeline, 0, 7)
        self._check_accumulate(parsed)
        self._check_block(parsed)
        check_choice("acc_check", self.acc_check, ACC_CHECKS)
        if self.acc_check == "residue" and self.accumulate != "int":
            raise ConfigError(f"acc_check: 'residue' is not allowed with accumulate "
                              f"{self.accumulate!r}; expected accumulate 'int' (integer modes) "
                              f"or acc_check 'none'")

    def _check_block(self, parsed):
        """MX modes: FP32 accumulation of block results, one dot product, and a block size
        that is a whole number of beats in every MX mode."""
        check_int("block", self.block, 1, MAX_BLOCK)
        if self.block & (self.block - 1):
            raise ConfigError(f"block: {self.block} is not allowed; expected a power of two "
                              f"(OCP MX blocks hold 32 elements)")
        mx = [m.name for m in parsed if m.is_mx]
        if not mx:
            return
        if self.accumulate != "fp32":
            raise ConfigError(f"accumulate: {self.accumulate!r} cannot carry MX mode {mx[0]!r}; "
                              f"expected 'fp32' (block results are accumulated in FP32)")
        if self.reduction != "together":
            raise ConfigError(f"reduction: {self.reduction!r} cannot carry MX mode {mx[0]!r}; "
                              f"expected 'together' (an MX block is one dot product)")
        for name in mx:
            per_beat = self.lanes * self.products_per_lane(name)
            if self.block % per_beat:
                raise ConfigError(f"block: {self.block} is not allowed with mode {name!r}, "
                                  f"which takes {per_beat} elements per beat; expected a "
                                  f"multiple of {per_beat}")

    def _check_accumulate(self, parsed):
        """Resolve the ``accumulate`` and ``acc_width`` defaults and check both."""
        if self.accumulate == AUTO:
            all_int = all(m.is_int for m in parsed)
            object.__setattr__(self, "accumulate", "int" if all_int else "fp32")
        check_choice("accumulate", self.accumulate, ACCUMULATE)
        if self.accumulate == "int":
            floats = [m.name for m in parsed if not m.is_int]
            if floats:
                raise ConfigError(f"accumulate: 'int' cannot carry mode {floats[0]!r}; expected "
                                  f"'exact' or 'fp32' when a mode is not an integer mode")
        default, low, high = {
            "int": (32, self.product_width, MAX_ACC_WIDTH),
            "exact": (self.product_width + 16, self.product_width,
                      self.product_width + MAX_EXACT_CARRY),
            "fp32": (32, 32, 32)}[self.accumulate]
        if self.acc_width == AUTO:
            object.__setattr__(self, "acc_width", default)
        check_int("acc_width", self.acc_width, low, high)

    # -- derived values ---------------------------------------------------------------------

    @cached_property
    def mode_formats(self):
        """``Mode`` objects in mode-code order."""
        return tuple(Mode.parse(m, integer_only=False) for m in self.modes)

    @property
    def element_lane(self):
        """Whether lanes decode elements to (sign, significand, exponent) and sum them in a
        fixed-point window (``exact``/``fp32``) rather than as integers (``int``)."""
        return self.accumulate != "int"

    @property
    def has_mx(self):
        return any(m.is_mx for m in self.mode_formats)

    def beats_per_block(self, mode):
        """Beats of one MX block in ``mode`` (1 for modes that are not MX: every beat is a
        block of its own)."""
        code = self.mode_code(mode)
        if not self.mode_formats[code].is_mx:
            return 1
        return self.block // (self.lanes * self.products_per_lane(code))

    @property
    def lane_width(self):
        """Element lanes: bits of the widest element of any mode (one lane slot)."""
        return max(m.width for m in self.mode_formats)

    @cached_property
    def product_exp(self):
        """Exponent of the LSB of the fixed-point product sum: ``2**product_exp`` divides
        every product of every mode (0 for integer modes)."""
        return min(m.product_range[0] for m in self.mode_formats)

    @property
    def a_max_width(self):
        return max(m.a.width for m in self.mode_formats)

    @property
    def b_max_width(self):
        return max(m.b.width for m in self.mode_formats)

    @property
    def product_width(self):
        """Signed bits that hold any single product of any mode (element lanes: in units of
        ``2**product_exp``)."""
        if not self.element_lane:
            return max(_signed_width(m.product_min, m.product_max) for m in self.mode_formats)
        return 1 + max(e + bits for e, bits in (m.product_range for m in self.mode_formats)) \
            - self.product_exp

    def products_per_lane(self, mode):
        """Products one lane computes per beat in ``mode`` (name or code)."""
        m = self.mode_formats[self.mode_code(mode)]
        if self.multiplier == "plain":
            return 1
        if self.element_lane:
            return self.lane_width // m.width
        return (self.a_max_width // m.a.width) * (self.b_max_width // m.b.width)

    def mode_code(self, mode):
        if isinstance(mode, int) and 0 <= mode < len(self.modes):
            return mode
        check_choice("mode", mode, self.modes)
        return self.modes.index(mode)

    @property
    def elements_per_lane(self):
        """Element slots per lane in the ``a`` and ``b`` payload fields."""
        return max(self.products_per_lane(m) for m in self.modes)

    @property
    def a_lane_bits(self):
        return max(self.products_per_lane(m) * f.a.width
                   for m, f in zip(self.modes, self.mode_formats))

    @property
    def b_lane_bits(self):
        return max(self.products_per_lane(m) * f.b.width
                   for m, f in zip(self.modes, self.mode_formats))

    @property
    def mode_bits(self):
        return (len(self.modes) - 1).bit_length()

    @property
    def accumulators(self):
        return 1 if self.reduction == "together" else self.lanes

    @property
    def latency(self):
        """Cycles from accepting a ``last`` beat to ``o.valid``, without stalls."""
        return (1 + self.pipeline + (1 if self.element_lane else 0)
                + (1 if self.accumulate == "exact" else 0) + (1 if self.has_mx else 0))

    @property
    def macs_per_cycle(self):
        """Peak MACs per cycle for each mode (one beat per cycle)."""
        return {m: self.lanes * self.products_per_lane(m) for m in self.modes}

    @property
    def peak_macs_per_cycle(self):
        """The most MACs per cycle of any built mode (see :attr:`macs_per_cycle`)."""
        return max(self.macs_per_cycle.values())

    @property
    def input_fields(self):
        """Fields of the ``i`` stream payload, LSB first. ``a``/``b`` hold ``lanes`` lane slots
        of ``a_lane_bits``/``b_lane_bits``; lane ``l``, element ``k`` of a beat in mode ``m``
        sits at bit ``l * a_lane_bits + k * m.a.width`` as an ``m.a.width``-bit two's complement
        (or unsigned) number, or the code of a float/posit element; slots beyond the mode's
        products are ignored."""
        sums = ("all lanes' products add into acc0" if self.reduction == "together"
                else "lane l's products add into acc<l>")
        fields = [
            Field("a", self.lanes * self.a_lane_bits,
                  doc=f"Operand a (activations): {self.lanes} lanes of {self.a_lane_bits} "
                      f"bits, each packing the beat's elements in the format of its mode "
                      f"(one array layout per mode). Element k of lane l multiplies element "
                      f"k of lane l of b; {sums}.",
                  array=self._operand_arrays("a")),
            Field("b", self.lanes * self.b_lane_bits,
                  doc=f"Operand b (weights): {self.lanes} lanes of {self.b_lane_bits} bits, "
                      f"laid out like a with the mode's b format; element k of lane l "
                      f"multiplies element k of lane l of a.",
                  array=self._operand_arrays("b"))]
        if self.mode_bits:
            fields.append(Field(
                "mode", self.mode_bits,
                doc=f"Precision mode of this beat: the index of one of {list(self.modes)} "
                    f"(derived.mode_codes). A code past {len(self.modes) - 1} adds nothing "
                    f"and sets err until the next clear."))
        if self.has_mx:
            fields += [Field(f"scale_{x}", 8, doc=f"E8M0 shared scale of the MX block this "
                                                  f"beat belongs to, for operand {x}: "
                                                  f"2**(scale_{x} - 127), 255 is NaN; read on "
                                                  f"the block's last beat (ignored in modes "
                                                  f"that are not MX)")
                       for x in ("a", "b")]
        return fields + [
            Field("clear", 1, doc="1: this beat's products add to 0 instead of the running "
                                  "accumulators (and err restarts from 0); set it on the "
                                  "first beat of each accumulation."),
            Field("last", 1, doc="1: after this beat's addition, send the accumulators as one "
                                 "o beat (they are not cleared; use clear).")]

    def _operand_arrays(self, operand):
        """:class:`ArrayLayout` of operand ``"a"`` or ``"b"`` in each mode (mode-code order)."""
        lane_bits = self.a_lane_bits if operand == "a" else self.b_lane_bits
        out = []
        for code, (name, mode) in enumerate(zip(self.modes, self.mode_formats)):
            fmt = getattr(mode, operand)
            n = self.products_per_lane(code)
            unused = (f"; bits {n * fmt.width} to {lane_bits - 1} of each lane are ignored"
                      if n * fmt.width < lane_bits else "")
            kind = (f"{fmt.name} element" if isinstance(fmt, IntFormat)
                    else f"{fmt.name} code")
            out.append(ArrayLayout(
                shape=(self.lanes, n), index=("lane", "element"), stride=(lane_bits, fmt.width),
                width=fmt.width, signed=isinstance(fmt, IntFormat) and fmt.signed,
                format="" if isinstance(fmt, IntFormat) else fmt.name,
                when=(("field", "mode" if self.mode_bits else None), ("equals", code),
                      ("mode", name)),
                note=f"mode {name}: {n} {kind}{'s' * (n > 1)} per lane{unused}"))
        return tuple(out)

    @property
    def output_fields(self):
        """Fields of the ``o`` stream payload: ``acc<n>`` accumulators (signed integers, or
        FP32 codes in element lanes), then ``err``."""
        what = ("the sum over all lanes (a dot product)" if self.reduction == "together"
                else "the sum of lane {n}'s products")
        how = {"int": f"{self.overflow} to s{self.acc_width} once per beat",
               "exact": f"exactly in a {self.acc_width}-bit fixed-point sum with LSB "
                        f"2**{self.product_exp} ({self.overflow} once per beat), sent rounded "
                        f"to FP32 (round to nearest even)",
               "fp32": "each beat's exact sum rounded to FP32, then added in FP32 (IEEE "
                       "binary32, round to nearest even)"}[self.accumulate]
        width, signed = (32, False) if self.element_lane else (self.acc_width, True)
        fmt = " The field holds FP32 (binary32) bits." if self.element_lane else ""
        return ([Field(f"acc{n}", width, signed,
                       doc=f"Accumulator {n}: {what.format(n=n)}, accumulated over the beats "
                           f"since the last clear, {how}; sent after a last beat's addition."
                           f"{fmt}")
                 for n in range(self.accumulators)]
                + [Field("err", 1, doc="1: a beat since the last clear had a mode code that "
                                       "names no built mode (it added nothing).")]
                + ([Field("fault", 1, doc="1: the residue check failed: an accumulator of this "
                                          "beat is not congruent mod 3 to the residue "
                                          "predicted from the operands (a soft error struck "
                                          "the datapath or the accumulators). Never set in a "
                                          "fault-free run.")]
                   if self.acc_check == "residue" else []))

    def stream_fields(self):
        return {"i": self.input_fields, "o": self.output_fields}

    def cost_features(self):
        """The unit's size for the resource estimator: products per beat of the widest mode
        and the accumulator bits."""
        return {**super().cost_features(),
                "products": max(self.lanes * self.products_per_lane(m) for m in self.modes),
                "acc_bits": self.accumulators * self.acc_width}

    def derived(self):
        """Derived values for the manifest."""
        return {
            "latency": self.latency,
            "throughput_beats_per_cycle": 1,
            "macs_per_cycle": self.macs_per_cycle,
            "products_per_lane": {m: self.products_per_lane(m) for m in self.modes},
            "accumulators": self.accumulators,
            "a_lane_bits": self.a_lane_bits,
            "b_lane_bits": self.b_lane_bits,
            "elements_per_lane": self.elements_per_lane,
            "product_width": self.product_width,
            "mode_codes": {m: i for i, m in enumerate(self.modes)},
            "mode_formats": {m: {"a": f.a.name, "b": f.b.name}
                             for m, f in zip(self.modes, self.mode_formats)},
            "accumulation": self.accumulation,
            **({"product_exp": self.product_exp} if self.element_lane else {}),
            **({"beats_per_block": {m: self.beats_per_block(m) for m in self.modes}}
               if self.has_mx else {}),
        }

    @property
    def accumulation(self):
        """One line stating the accumulation semantics (``accelgen show``)."""
        return {
            "int": f"integer: exact beat sums, {self.overflow} to s{self.acc_width} per beat",
            "exact": f"exact: every product exact in a {self.acc_width}-bit fixed-point sum "
                     f"(LSB 2**{self.product_exp}, {self.overflow}), one RNE to FP32 per "
                     f"result",
            "fp32": "fp32: each beat's exact sum rounded to FP32 (RNE), then FP32 addition "
                    "(IEEE, RNE)"}[self.accumulate]


_LLM_MODES = ("s8s8", "s8s4", "s8s2")
_ALL_MODES = ("s8s8", "u8s8", "s8s4", "s4s4", "s8s2", "s4s2", "s2s2")

PRESETS = {
    "tiny": MACConfig(modes=("s8s8",), lanes=1, multiplier="plain", acc_width=24),
}
PRESETS["default"] = MACConfig(modes=_ALL_MODES, lanes=4, multiplier="fused", acc_width=32,
                               overflow="saturate", pipeline=7)
PRESETS["int8"] = replace(PRESETS["tiny"], lanes=4, acc_width=32, pipeline=2)
PRESETS["w4a8"] = replace(PRESETS["default"], modes=_LLM_MODES, reduction="apart",
                          overflow="wrap")
PRESETS["plain_mixed"] = replace(PRESETS["default"], multiplier="plain")
#: FP8 dot-4: E4M3 and E5M2, every product exact, one rounding to FP32 per result
PRESETS["fp8"] = MACConfig(modes=("e4m3", "e5m2"), lanes=4, multiplier="fused",
                           accumulate="exact", pipeline=3)
#: FP4/posit4 dot-8 (4 lanes x 2 products), exact
PRESETS["fp4"] = MACConfig(modes=("e2m1", "p4", "e4m3"), lanes=4, multiplier="fused",
                           accumulate="exact", pipeline=2)
#: BF16 dot-2 with FP32 accumulation (the training/inference default of GPUs and TPUs)
PRESETS["bf16"] = MACConfig(modes=("bf16",), lanes=2, accumulate="fp32", pipeline=3)
#: MX dot-32: one OCP MX block (32 elements, one E8M0 scale per operand) per beat, every
#: 8-bit-or-narrower MX element type but FP4 (which takes 64 elements per beat in 32 lanes)
PRESETS["mxfp8"] = MACConfig(modes=("mxe4m3", "mxe5m2", "mxe3m2", "mxe2m3", "mxi8"), lanes=32,
                             multiplier="fused", block=32, pipeline=3)
#: ``accelgen show mac --errors`` bounds, in FP32 ULPs of the exact value (integer presets: in
#: units of 1) over the report's workload (see :mod:`accelgen.sim.golden.mac_errors`): exact
#: integer sums are exact; an exact sum with one rounding is within half an ULP, and so is an
#: MX workload of one block (one rounding). FP32 accumulation over several beats has no
#: bound relative to the exact value (cancellation), so its presets declare none.
ERROR_BOUNDS = {}

#: XR-NPE-style multi-format lanes: each 16-bit lane does 1 BF16/P16, 2 INT8/FP8/P8 or 4 FP4
#: products per cycle; FP32 accumulation
PRESETS["xrnpe"] = MACConfig(modes=("s8s8", "e4m3", "e5m2", "e2m1", "bf16", "p8", "p16"),
                             lanes=2, multiplier="fused", accumulate="fp32", pipeline=3)
ERROR_BOUNDS.update({name: {"max_abs": 0.0 if cfg.accumulate == "int" else 0.5}
                     for name, cfg in PRESETS.items()
                     if cfg.accumulate != "fp32" or all(m.is_mx for m in cfg.mode_formats)})

#: ``accelgen prove``: one output beat per ``last`` beat; the output buffer's
#: ``latency + 1`` places are reserved as such beats enter
PROOF = ProofContract(depth=12, beats=(Beats("i", "o", lambda cfg: cfg.latency + 1,
                                             counted="last"),))
