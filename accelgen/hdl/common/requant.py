"""Requantizer: the hardware twin of :func:`accelgen.numerics.requantize` with a run-time shift.

::

      acc[0..L-1]   mult   shift   zero_point, relu, out_signed
          │           │      │       │
          [slice and mult registers]                 stage 0' (wide products only): the DSPs'
      acc_i * mult, per 17-bit slice of acc          input registers; stage 0: partial
          [pp registers]                             products, one DSP each (its output
                                                     registers)
          │                  │       │
      p = acc * mult         │       │              stage 1: product (DSP) or the sum of
          [p registers]  [parameter registers]      the partial products, per lane
          │                  │       │
      (2 p) >> shift, high bits      │              stage 2a (``shift_stage``): the log
          [x, sticky, over, sign]  [parameter registers]   shifter's steps 32, 16, 8
      (2 p) >> shift: log shifter    │              stage 2: rounding shift, per lane:
      floor (low 10 bits), half,     │              round-up bit by the rounding mode,
      sticky, over (floor too wide)  │              out-of-range flag
          [floor, up, over, sign]  [parameter registers]
          │                          │
      q = over ? +-512 : floor + up  │              stage 3, per lane: round, relu
      r = relu ? max(q, 0) : q       │
          [r registers]          [parameter registers]
          │                          │
      y = sat8(r + zero_point)                      stage 4, per lane: zero point,
          [y registers]                             saturate to s8 or u8

Numeric semantics are defined by :func:`accelgen.numerics.requantize`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ...numerics import (REQUANT_CHUNK, ConfigError, IntFormat, Rounding, requantizer_latency,
                         requantizer_splits)
from .dsp import registered_product
from .numerics import round_up, saturate

__all__ = ["Requantizer"]

_S8, _U8 = IntFormat(8, True), IntFormat(8, False)

# Bits of ``floor = p >> shift`` that stage 2 keeps. Outside [-2**(_KEEP-1), 2**(_KEEP-1)) the
# rounded value is replaced by +-2**(_KEEP-1): with a zero point in [-256, 255] both saturate the
# 8-bit result the same way (512 - 256 > 255, -512 + 255 < -128) and relu maps both to 0.
_KEEP = 10


def _int_in(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected an integer from {lo} "
                          f"to {hi}")


def _check_parameters(lanes, acc_width, mult_bits, rounding, shift_bits):
    """Raise :class:`ConfigError` naming the first bad parameter; return ``Rounding``."""
    _int_in("lanes", lanes, 1, 1024)
    _int_in("acc_width", acc_width, 1, 62)
    _int_in("mult_bits", mult_bits, 1, 62)
    if acc_width + mult_bits > 62:
        raise ConfigError(f"mult_bits: {mult_bits} is not allowed with acc_width {acc_width}; "
                          f"expected acc_width + mult_bits <= 62")
    _int_in("shift_bits", shift_bits, 1, 6)
    try:
        return Rounding(rounding)
    except ValueError:
        raise ConfigError(f"rounding: {rounding!r} is not allowed; expected one of "
                          + ", ".join(repr(r.value) for r in Rounding)) from None


class Requantizer(wiring.Component):
    """Per-lane dyadic requantization of accumulators to 8 bits.

    ``y = sat8(max?(round_shift(acc * mult, shift, rounding), 0) + zero_point)``, exactly as
    :func:`accelgen.numerics.requantize`, with ``rounding`` fixed at elaboration time and every
    other parameter a run-time input. The rounding shift is exact for every ``shift`` the port
    can carry, also past the product width (``floor`` is then the sign fill, as numpy's ``>>``).

    Parameters
    ----------
    lanes : int
        Accumulators converted per cycle (1 to 1024).
    acc_width : int
        Width of each signed accumulator (1 to 62).
    mult_bits : int
        Width of the unsigned multiplier (1 to 62; ``acc_width + mult_bits <= 62``).
    rounding : Rounding or str
        Rounding mode of the shift.
    shift_bits : int
        Width of the ``shift`` port (1 to 6, so shifts 0 to ``2**shift_bits - 1`` <= 63).
    round_stage : bool
        Register the rounded value (after relu) before the zero point is added: one cycle
        more, and no cycle with two carry chains in a row (default; ``False`` keeps rounding,
        relu, zero point and saturation in one stage, for pipelines whose timing is fixed).
    shift_stage : bool or None
        Split the rounding shift into two stages, the shifter's steps by the high half of the
        ``shift`` bits (32, 16, 8) and then the rest with the rounding: one cycle more, and
        half the multiplexer levels per cycle (ECP5 8x8 GEMM array: the stage was 10 LUT
        levels). None (default): as ``round_stage``.

    Members
    -------
    acc : In(data.ArrayLayout(signed(acc_width), lanes))
        The accumulators.
    mult : In(unsigned(mult_bits))
    shift : In(unsigned(shift_bits))
    zero_point : In(signed(9))
        Any value from -256 to 255.
    relu : In(1)
        Clamp the rounded value at 0 before adding the zero point.
    out_signed : In(1)
        Saturate to ``s8`` (high) or ``u8`` (low).
    y : Out(data.ArrayLayout(signed(9), lanes))
        The ``s8`` or ``u8`` results, sign-extended to 9 bits.

    Timing
    ------
    A free-running pipeline in the ``sync`` domain with no enable and no valid bit:
    ``latency`` cycles (:func:`accelgen.numerics.requantizer_latency`: 5, or 7 for a product
    wider than one 18x18 multiply; one less each without ``round_stage``, without
    ``shift_stage``), and ``y`` during cycle
    ``t + latency`` is the requantization of ``acc`` *and the parameter inputs* during cycle
    ``t`` (the parameters travel down the pipeline with the data, so they may change on any
    cycle). Stage 1
    registers the product ``acc * mult`` (one multiplier per lane, left for yosys to map to
    DSP blocks); when it is wide, a stage 0' registers 17-bit slices of ``acc`` and ``mult``,
    a stage 0 their partial products and stage 1 their sum, so no multiply shares a cycle
    with the carry chain that joins its partial products, nor with the routing into and out
    of the DSP column (elaborated for ECP5, each partial product is a ``MULT18X18D`` with
    its input and output registers in use, see
    :func:`~accelgen.hdl.common.dsp.registered_product`). With ``shift_stage`` a stage
    2a registers the product shifted by the high bits of ``shift``. Stage 2 registers the
    rounded shift (the low 10 bits of ``floor``, the round-up bit and an out-of-range flag),
    stage 3 the rounded value after relu (and the saturation bounds less the zero point),
    stage 4 ``y`` (without ``round_stage``, stage 3 ``y``;
    with ``shift_stage``, each of these one stage later).
    """

    def __init__(self, *, lanes, acc_width, mult_bits, rounding, shift_bits=6,
                 round_stage=True, shift_stage=None):
        try:
            self.rounding = _check_parameters(lanes, acc_width, mult_bits, rounding, shift_bits)
        except ConfigError:
            self._MustUse__used = True   # rejected, not forgotten: no UnusedElaboratable warning
            raise
        self.lanes, self.acc_width, self.mult_bits = lanes, acc_width, mult_bits
        self.shift_bits = shift_bits
        self.round_stage = bool(round_stage)
        self.shift_stage = self.round_stage if shift_stage is None else bool(shift_stage)
        super().__init__({
            "acc": In(data.ArrayLayout(signed(acc_width), lanes)),
            "mult": In(unsigned(mult_bits)),
            "shift": In(unsigned(shift_bits)),
            "zero_point": In(signed(9)),
            "relu": In(1),
            "out_signed": In(1),
            "y": Out(data.ArrayLayout(signed(9), lanes)),
        })

    @property
    def latency(self):
        return requantizer_latency(self.acc_width, self.mult_bits, self.round_stage,
                                   self.shift_stage)

    @property
    def product_width(self):
        """Width of the exact signed product ``acc * mult``, as
        ``|acc * mult| <= 2**(acc_width-1) * (2**mult_bits - 1) < 2**(acc_width+mult_bits-1)``."""
        return self.acc_width + self.mult_bits

    def elaborate(self, platform):
        m = Module()

        # -- stages 0 and 1: products; the parameters travel along -----------------------------
        params = [self.shift, self.zero_point, self.relu, self.out_signed]
        split = requantizer_splits(self.acc_width, self.mult_bits)
        for _ in range(1 + 2 * split):
            regs = [Signal.like(x) for x in params]
            m.d.sync += [r.eq(x) for r, x in zip(regs, params)]
            params = regs
        shift1, zp1, relu1, os1 = params
        prods = []
        for lane in range(self.lanes):
            p = Signal(signed(self.product_width), name=f"p{lane}")
            if split:
                m.d.sync += p.eq(self._partial_sum(m, lane, platform))
            else:
                m.d.sync += p.eq(self.acc[lane] * self.mult)
            prods.append(p)

        # -- stage 2: rounding shift (with ``shift_stage``, stage 2a shifts by the high bits of
        # ``shift`` and 2b by the low ones) -------------------------------------------------
        signs, start, steps = [p[-1] for p in prods], None, None
        if self.shift_stage:
            half = len(shift1) // 2
            start, signs = self._shift_high(m, prods, shift1, half)
            regs = [Signal.like(x) for x in (shift1, zp1, relu1, os1)]
            m.d.sync += [r.eq(x) for r, x in zip(regs, (shift1, zp1, relu1, os1))]
            shift1, zp1, relu1, os1 = regs
            steps = set(range(half))
        zp2, relu2, os2 = Signal.like(zp1), Signal(), Signal()
        m.d.sync += [zp2.eq(zp1), relu2.eq(relu1), os2.eq(os1)]
        stage2 = []
        shifted = _shift_right(prods if start is None else signs, shift1, steps=steps,
                               start=start)
        for lane, (neg, (floor, half, sticky, over)) in enumerate(zip(signs, shifted)):
            up = round_up(self.rounding, half=half, sticky=sticky, negative=neg, odd=floor[0])
            f2 = Signal(signed(_KEEP), name=f"floor{lane}")
            up2, over2, neg2 = (Signal(name=f"{n}{lane}") for n in ("up", "over", "neg"))
            m.d.sync += [f2.eq(floor), up2.eq(up), over2.eq(over), neg2.eq(neg)]
            stage2.append((f2, up2, over2, neg2))

        # -- stage 3: round and relu; stage 4: zero point and saturation ---------------------
        # (two stages by default, so that no cycle holds two carry chains in a row: at 150 MHz
        # on ECP5 the round-up add, the zero-point add and the saturation did not fit one)
        if self.round_stage:
            zp3, os3 = Signal.like(zp2), Signal()
            m.d.sync += [zp3.eq(zp2), os3.eq(os2)]
            # the saturation bounds less the zero point, so stage 4 compares the rounded value
            # with them beside the zero-point add instead of testing the sum's bits after it:
            # one carry chain and one LUT per bit (8x8 GEMM array: add, then three LUT levels
            # of saturation, 7.9 ns)
            hi3, lo3 = Signal(signed(_KEEP + 1), name="sat_hi"), Signal(signed(_KEEP + 1),
                                                                       name="sat_lo")
            m.d.sync += [hi3.eq(Mux(os2, _S8.max, _U8.max) - zp2),
                         lo3.eq(Mux(os2, _S8.min, _U8.min) - zp2)]
        else:
            zp3, os3 = zp2, os2
        big = 1 << (_KEEP - 1)
        hi, lo = Mux(os3, _S8.max, _U8.max), Mux(os3, _S8.min, _U8.min)    # the bounds
        for lane, (f2, up2, over2, neg2) in enumerate(stage2):
            q = Signal(signed(_KEEP + 1), name=f"q{lane}")          # [-512, 512]
            m.d.comb += q.eq(Mux(over2, Mux(neg2, -big, big), f2 + up2))
            r3 = Signal(signed(_KEEP + 1), name=f"r{lane}")         # relu applied
            rounded = Mux(relu2 & q[-1], 0, q)
            if self.round_stage:
                m.d.sync += r3.eq(rounded)
            else:
                m.d.comb += r3.eq(rounded)
            v = Signal(signed(_KEEP + 1), name=f"v{lane}")          # [-768, 767]
            m.d.comb += v.eq(r3 + zp3)
            if self.round_stage:    # v > hi, v < lo as r3 > hi - zp, r3 < lo - zp
                m.d.sync += self.y[lane].eq(Mux(r3 > hi3, hi, Mux(r3 < lo3, lo, v)))
            else:
                m.d.sync += self.y[lane].eq(Mux(os3, saturate(v, _S8), saturate(v, _U8)))
        return m

    def _shift_high(self, m, prods, shift, half):
        """Stage 2a: the shifter's steps by bits ``half`` and up of ``shift``, registered (the
        partial value per lane, and its sticky and over flags for every value those bits of
        ``shift`` can take: stage 2b picks one, so the pick is not behind the flags' OR trees),
        and each product's sign registered beside them. Returns ``(start, signs)`` for
        :func:`_shift_right`'s second part."""
        start, signs = [], []
        parts = _shift_right(prods, shift, steps=set(range(half, len(shift))), partial=True)
        high = Signal(len(shift) - half, name="shift_high")     # picks the flags after them
        m.d.sync += high.eq(shift[half:])
        for lane, (p, (x, _, _)) in enumerate(zip(prods, parts)):
            stickies, overs = _high_shift_flags(p, shift, half)
            x2, sign2 = Signal(signed(len(x)), name=f"sx{lane}"), Signal(name=f"sign{lane}")
            sticky2 = Signal(len(stickies), name=f"sticky{lane}")
            over2 = Signal(len(overs), name=f"over_hi{lane}")
            m.d.sync += [x2.eq(x), sign2.eq(p[-1]), sticky2.eq(Cat(*stickies)),
                         over2.eq(Cat(*overs))]
            start.append((x2, sticky2.bit_select(high, 1), over2.bit_select(high, 1)))
            signs.append(sign2)
        return start, signs

    def _partial_sum(self, m, lane, platform):
        """Stages 0' and 0 of a wide product: ``acc[lane] * mult`` as partial products of the
        unsigned 17-bit slices of ``acc`` (the top slice signed), each within one 18x18 DSP
        whose operands (the slice, ``mult``) and product are registered; returns their
        shifted sum (for stage 1's register)."""
        acc, total = self.acc[lane], 0
        for n, low in enumerate(range(0, self.acc_width, REQUANT_CHUNK)):
            top = low + REQUANT_CHUNK >= self.acc_width
            piece = acc[low:] if top else acc[low:low + REQUANT_CHUNK].as_unsigned()
            piece_q = Signal(signed(len(piece) + (not top)), name=f"ra{lane}_{n}")
            mult_q = Signal(signed(self.mult_bits + 1), name=f"rm{lane}_{n}")
            m.d.sync += [piece_q.eq(piece), mult_q.eq(self.mult)]
            pp = registered_product(m, piece, self.mult, piece_q, mult_q, output_register=True,
                                    platform=platform, name=f"pp{lane}_{n}")
            total = total + (pp << low)
        return total


def _shift_right(values, shift, *, steps=None, start=None, partial=False):
    """``value >> shift`` (arithmetic; ``shift`` a run-time value) of every value, for
    rounding: a list of ``(floor, half, sticky, over)``, where ``floor`` is the low ``_KEEP``
    bits of ``value >> shift`` (signed), ``half`` the remainder bit just below it (bit
    ``shift - 1`` of ``value``; 0 when ``shift == 0``), ``sticky`` the OR of the remainder bits
    below ``half``, and ``over`` says ``value >> shift`` does not fit in ``_KEEP`` signed bits.

    A logarithmic shifter of ``2 value``, largest step first, so that ``half`` comes out as
    bit 0. After the step of ``2**k`` only ``_KEEP + 2**k`` bits can still reach the result;
    the bits above are dropped (they must all equal the sign, else ``over``), and the bits a
    step shifts out at the bottom make up ``sticky``. Plain expressions, no signal per step:
    the Python simulator re-runs a module's combinational process once per link of such a
    chain, which made simulation about three times slower.

    In two parts, with a pipeline register between them: ``steps`` (a set of ``k``) limits a
    call to those steps, ``partial`` returns the state after them per value, ``(x, sticky,
    over)``, and ``start`` continues from such a state (``values`` still gives the signs).
    """
    ks = [k for k in reversed(range(len(shift))) if steps is None or k in steps]
    if start is None:
        start = [(Cat(Const(0, 1), v).as_signed(), Const(0, 1), Const(0, 1)) for v in values]
    xs = [x for x, _, _ in start]
    sticky, over = [[s] for _, s, _ in start], [[o] for _, _, o in start]
    for k in ks:
        step, keep = 1 << k, _KEEP + (1 << k)
        for lane, (v, x) in enumerate(zip(values, xs)):
            # x[:step] is all of x when step >= len(x): its sign bit is in, the rest copies.
            sticky[lane].append(shift[k] & x[:step].any())
            x = x >> Cat(Const(0, k), shift[k])
            if len(x) > keep:
                over[lane].append((x[keep:] ^ v[-1].replicate(len(x) - keep)).any())
                x = x[:keep].as_signed()
            xs[lane] = x
    if partial:
        return [(x, Cat(*s).any(), Cat(*o).any()) for x, s, o in zip(xs, sticky, over)]
    out = []
    for v, x, s, o in zip(values, xs, sticky, over):
        x = _extend(x, _KEEP + 1)
        o.append(x[_KEEP] ^ v[-1])      # the floor's own sign bit
        out.append((x[1:_KEEP + 1].as_signed(), x[0], Cat(*s).any(), Cat(*o).any()))
    return out


def _high_shift_flags(value, shift, half):
    """``(sticky, over)`` of :func:`_shift_right`'s steps by bits ``half`` and up of ``shift``
    (``partial``), taken from ``value`` itself rather than from the shifter's stages. With
    ``s`` those bits' shift (a multiple of ``2**half``), the steps shift out the low ``s``
    bits of ``2 value`` (sticky: any is set) and drop, step by step, bits of ``2 value`` at
    ``s + _KEEP + 2**half`` and up (over: any differs from the sign), since each step's
    dropped bits lie at or above where the last step drops. One OR per possible ``s``, as two
    lists indexed by those bits of ``shift``: two LUT levels less than the shifter's own
    chain, and the pick is left to the caller."""
    x = Cat(Const(0, 1), value)
    sign = value[-1]
    keep = _KEEP + (1 << half)
    stickies, overs = [], []
    for high in range(1 << (len(shift) - half)):
        s = high << half
        stickies.append(x[:min(s, len(x))].any() if s else Const(0, 1))
        top = s + keep
        overs.append((x[top:] ^ sign.replicate(len(x) - top)).any() if top < len(x)
                     else Const(0, 1))
    return stickies, overs


def _extend(x, width):
    return Cat(x, x[-1].replicate(width - len(x))).as_signed() if len(x) < width else x
