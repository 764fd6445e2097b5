"""Config and presets of block ``mac``: a mixed-precision SIMD multiply-accumulate unit.

Precision modes
    A mode names the formats of operand ``a`` (activation) and operand ``b`` (weight):
    ``"s8s4"`` is a signed 8-bit ``a`` times a signed 4-bit ``b`` (the "W4A8" of low-bit LLM
    weights); ``"u8s8"`` an unsigned 8-bit ``a`` times a signed 8-bit ``b``. Widths are 2, 4 or
    8 bits. The hardware carries exactly the modes listed in ``modes``; the input beat's
    ``mode`` field holds the index of one of them.

Multiplier strategies
    ``plain``: one multiplier per lane, as wide as the widest mode; every mode runs at one
    product per lane per cycle. Narrow operands are sign- or zero-extended by mode.

    ``fused``: Bit Fusion style sub-word decomposition. A lane has ``(Wa/2) * (Wb/2)`` 2-bit
    "bricks" (``Wa``/``Wb``: widest ``a``/``b`` over the modes); a mode ``wa x wb`` groups
    them into ``P = (Wa/wa) * (Wb/wb)`` independent products per lane per cycle, so a lane
    with 8-bit maxima yields 1 MAC/cycle at 8x8, 2 at 8x4, 4 at 4x4 or 8x2, 8 at 4x2 and
    16 at 2x2.

Reduction
    Every lane adds its ``P`` products of one beat exactly. ``reduction="together"`` also adds
    the lane sums into one accumulator (a dot product); ``"apart"`` keeps one accumulator per
    lane.

Accumulation (the golden model in :mod:`accelgen.sim.golden.mac` is the definition)
    For each accepted input beat, ``s`` = exact sum of the beat's products (per accumulator);
    ``acc = overflow((0 if clear else acc) + s)`` into ``s<acc_width>`` with ``overflow`` =
    wrap or saturate, applied once per beat. A beat with ``last`` set emits the accumulators
    after its own addition. Accumulators are not cleared by ``last``; set ``clear`` on the
    first beat of the next accumulation. A ``mode`` code outside the built modes adds zero
    and sets the sticky ``err`` flag of the running accumulation (cleared by ``clear``).
"""

import re
from dataclasses import dataclass, replace
from functools import cached_property

from ..numerics import ConfigError, IntFormat, Overflow
from .base import ArrayLayout, Config, Field, check_choice, check_int

__all__ = ["MACConfig", "Mode", "PRESETS", "MODE_WIDTHS"]

MODE_WIDTHS = (2, 4, 8)
MULTIPLIERS = ("plain", "fused")
REDUCTIONS = ("together", "apart")
MAX_ACC_WIDTH = 48   # int64 golden model: acc + one beat's sum stays exact
MAX_MODES = 16
#: two canonical IntFormat names (ASCII digits, no leading zeros); used with ``fullmatch``
_MODE_RE = re.compile(r"([su][1-9][0-9]*)([su][1-9][0-9]*)")


@dataclass(frozen=True)
class Mode:
    """Operand formats of one precision mode."""
    a: IntFormat
    b: IntFormat

    @classmethod
    def parse(cls, text, *, param="modes"):
        m = _MODE_RE.fullmatch(text) if isinstance(text, str) else None
        if not m:
            raise ConfigError(f"{param}: {text!r} is not a precision mode; expected the formats "
                              f"of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'")
        for operand in m.groups():
            # compared as text first: a width of thousands of digits is not an int to parse
            if operand[1:] not in {str(w) for w in MODE_WIDTHS}:
                raise ConfigError(f"{param}: {text!r} has a {operand[1:]}-bit operand; operand "
                                  f"widths must be one of 2, 4, 8")
        return cls(*(IntFormat.parse(operand, param=param) for operand in m.groups()))

    @property
    def name(self):
        return f"{self.a.name}{self.b.name}"

    @property
    def product_min(self):
        return min(x * y for x in (self.a.min, self.a.max) for y in (self.b.min, self.b.max))

    @property
    def product_max(self):
        return max(x * y for x in (self.a.min, self.a.max) for y in (self.b.min, self.b.max))


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
        Precision modes built into the hardware, e.g. ``("s8s8", "s8s4")`` (1 to 16, each
        once; a list, or one comma-separated string); index = mode code.
    lanes : int
        SIMD lanes (1 to 64).
    multiplier : ``"plain"`` or ``"fused"``
    reduction : ``"together"`` or ``"apart"``
    acc_width : int
        Signed accumulator width, from the widest product's width to 48.
    overflow : ``"wrap"`` or ``"saturate"``
    pipeline : int
        Register stages before the accumulator (0 to 5), added in this order: product
        registers, operand (input) registers, fold registers (halfway through the fusion
        tree), lane-sum registers, reduction-sum register. Latency is ``1 + pipeline`` for
        every config: a stage with no logic before it (the fold and lane-sum stages of
        ``plain``, the reduction stage of ``apart``) still adds its register, as a retiming
        slack for synthesis.
    """
    modes: tuple = ("s8s8",)
    lanes: int = 1
    multiplier: str = "plain"
    reduction: str = "together"
    acc_width: int = 32
    overflow: str = "wrap"
    pipeline: int = 1

    def __post_init__(self):
        modes = self.modes
        if isinstance(modes, str):
            modes = tuple(m.strip() for m in modes.split(","))
        if not isinstance(modes, (list, tuple)) or not modes:
            raise ConfigError(f"modes: {self.modes!r} is not allowed; expected a non-empty list "
                              f"of precision modes such as ['s8s8', 's8s4']")
        parsed = [Mode.parse(m) for m in modes]
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
        check_int("pipeline", self.pipeline, 0, 5)
        check_int("acc_width", self.acc_width, self.product_width, MAX_ACC_WIDTH)

    # -- derived values ---------------------------------------------------------------------

    @cached_property
    def mode_formats(self):
        """``Mode`` objects in mode-code order."""
        return tuple(Mode.parse(m) for m in self.modes)

    @property
    def a_max_width(self):
        return max(m.a.width for m in self.mode_formats)

    @property
    def b_max_width(self):
        return max(m.b.width for m in self.mode_formats)

    @property
    def product_width(self):
        """Signed bits that hold any single product of any mode."""
        return max(_signed_width(m.product_min, m.product_max) for m in self.mode_formats)

    def products_per_lane(self, mode):
        """Products one lane computes per beat in ``mode`` (name or code)."""
        m = self.mode_formats[self.mode_code(mode)]
        if self.multiplier == "plain":
            return 1
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
        return 1 + self.pipeline

    @property
    def macs_per_cycle(self):
        """Peak MACs per cycle for each mode (one beat per cycle)."""
        return {m: self.lanes * self.products_per_lane(m) for m in self.modes}

    @property
    def input_fields(self):
        """Fields of the ``i`` stream payload, LSB first. ``a``/``b`` hold ``lanes`` lane slots
        of ``a_lane_bits``/``b_lane_bits``; lane ``l``, element ``k`` of a beat in mode ``m``
        sits at bit ``l * a_lane_bits + k * m.a.width`` as an ``m.a.width``-bit two's complement
        (or unsigned) number; slots beyond the mode's products are ignored."""
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
            out.append(ArrayLayout(
                shape=(self.lanes, n), index=("lane", "element"), stride=(lane_bits, fmt.width),
                width=fmt.width, signed=fmt.signed,
                when=(("field", "mode" if self.mode_bits else None), ("equals", code),
                      ("mode", name)),
                note=f"mode {name}: {n} {fmt.name} element{'s' * (n > 1)} per lane{unused}"))
        return tuple(out)

    @property
    def output_fields(self):
        """Fields of the ``o`` stream payload: ``acc<n>`` signed accumulators, then ``err``."""
        what = ("the sum over all lanes (a dot product)" if self.reduction == "together"
                else "the sum of lane {n}'s products")
        return ([Field(f"acc{n}", self.acc_width, True,
                       doc=f"Accumulator {n}: {what.format(n=n)}, accumulated over the beats "
                           f"since the last clear, {self.overflow} to s{self.acc_width} once "
                           f"per beat; sent after a last beat's addition.")
                 for n in range(self.accumulators)]
                + [Field("err", 1, doc="1: a beat since the last clear had a mode code that "
                                       "names no built mode (it added nothing).")])

    def stream_fields(self):
        return {"i": self.input_fields, "o": self.output_fields}

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
        }


_LLM_MODES = ("s8s8", "s8s4", "s8s2")
_ALL_MODES = ("s8s8", "u8s8", "s8s4", "s4s4", "s8s2", "s4s2", "s2s2")

PRESETS = {
    "tiny": MACConfig(modes=("s8s8",), lanes=1, multiplier="plain", acc_width=24),
}
PRESETS["default"] = MACConfig(modes=_ALL_MODES, lanes=4, multiplier="fused", acc_width=32,
                               overflow="saturate", pipeline=5)
PRESETS["int8"] = replace(PRESETS["tiny"], lanes=4, acc_width=32, pipeline=2)
PRESETS["w4a8"] = replace(PRESETS["default"], modes=_LLM_MODES, reduction="apart",
                          overflow="wrap")
PRESETS["plain_mixed"] = replace(PRESETS["default"], multiplier="plain")
