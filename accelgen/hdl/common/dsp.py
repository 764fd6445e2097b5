"""Registered products on the FPGA's DSP blocks, with the DSP's own registers in use.

yosys maps ``a * b`` onto ECP5's ``MULT18X18D`` as a purely combinational multiplier and packs
none of the registers around it into the block, so a product between two fabric registers
pays the routing into the DSP column, the multiplier and the routing back out in one cycle
(8x8 systolic on the ULX3S: 3.9 ns of multiplier plus 9 ns of routing). On iCE40 a
combinational ``SB_MAC16`` is not timed at all (nextpnr-ice40 clocks it from a constant net).
:func:`registered_product` instantiates the family's primitive with its input registers (and
output register) enabled instead, when the design is elaborated for that family; elsewhere
(simulation without a family) it is the same registers and ``*`` in Amaranth.
:func:`dsp_product` does the same for operands of any width (constants too): a product wider
than one DSP multiply becomes partial products of operand slices, one DSP each, with the same
registers, summed after them.

Clock enable. Both take an ``enable``: the DSP's registers (input and output) then load only in
cycles where it is high, as the registers of a stalling pipeline do (ECP5 ``CE0``, iCE40
``CE``); the caller's own operand registers must load on the same enable.

Which family: Amaranth's convention, the ``platform`` handed to ``elaborate``. A board build
passes the amaranth-boards platform (``LatticePlatform.family == "ecp5"``,
``SiliconBluePlatform.family == "iCE40"``); ``accelgen
synth`` passes a :class:`FamilyTarget`; ``emit`` and every simulation pass none.

The simulation model of the ECP5 primitive subset used here is
``accelgen/sim/models/MULT18X18D.v`` (written from Lattice FPGA-TN-02205, the ECP5 sysDSP
usage guide); the iCE40 ``SB_MAC16`` is simulated with yosys's own model (its
``share/ice40/cells_sim.v``). ``tests/test_dsp.py`` simulates both forms against each other.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, ResetSignal, Signal, Value, signed

__all__ = ["FamilyTarget", "dsp_family", "dsp_product", "registered_product", "ECP5_MULT_WIDTH",
           "ICE40_MULT_WIDTH"]

#: operand width of one ECP5 ``MULT18X18D`` (signed or unsigned)
ECP5_MULT_WIDTH = 18
#: operand width of one iCE40 ``SB_MAC16`` in its 16x16 mode (signed or unsigned)
ICE40_MULT_WIDTH = 16
_MULT_WIDTH = {"ecp5": ECP5_MULT_WIDTH, "ice40": ICE40_MULT_WIDTH}


class FamilyTarget:
    """A stand-in platform for elaborating a design for an FPGA family without a board (the
    out-of-context ``accelgen synth``): only its ``family`` is read."""

    def __init__(self, family):
        self.family = family


def dsp_family(platform):
    """The family whose DSP primitive :func:`registered_product` instantiates: ``"ecp5"``,
    ``"ice40"`` or ``None`` (inferred ``*``)."""
    family = str(getattr(platform, "family", "")).lower()     # amaranth's iCE40: "iCE40"
    return family if family in _MULT_WIDTH else None


def registered_product(m, a_next, b_next, a_q, b_q, *, output_register, platform, name,
                       b_enable=None, enable=None, reset=True):
    """``a * b`` of operands that are registers: ``a_q`` and ``b_q`` hold ``a_next`` and
    ``b_next`` one cycle later (the caller's own registers, which its neighbours also read);
    with ``b_enable``, ``b_q`` loads ``b_next`` only in cycles where it is high.

    Returns a signed value equal, in every cycle, to ``a_q * b_q`` (``output_register``
    False) or to the previous cycle's ``a_q * b_q`` (True: one cycle of latency).

    ``enable`` (None: always): every register here, the DSP's input and output registers or
    the fabric output register, loads only in cycles where it is high, so the caller's
    ``a_q``/``b_q`` must load on it too (``b_q`` on ``enable & b_enable``); with the output
    register the value is then the product as it was in the last cycle ``enable`` was high.

    On ECP5 (see :func:`dsp_family`) with both operands at most 18 bits wide, the product is
    a ``MULT18X18D`` whose input registers load ``a_next``/``b_next`` beside ``a_q``/``b_q``
    and whose output register (``REG_OUTPUT``) holds the product; its registers reset with
    the domain's synchronous reset, as ``a_q``/``b_q`` do (``reset=False``: no register here
    resets, for ``a_q``/``b_q`` that do not either). On iCE40 with both
    operands at most 16 bits wide, it is an ``SB_MAC16`` in its 16x16 mode with the A and B
    input registers and, for ``output_register``, the 16x16 product register; their reset is
    asynchronous (the primitive has no other), driven by the domain's reset, so they hold 0
    in the same cycles as reset fabric registers (they only differ between the reset rising
    and the next clock edge). Elsewhere it is ``a_q * b_q``, registered in the fabric when
    ``output_register``. (Widths are those of ``a_q``/``b_q`` as signed numbers: pass an
    unsigned operand as a signed register one bit wider, or use :func:`dsp_product`.)
    """
    width = len(a_q) + len(b_q)
    family = dsp_family(platform)
    if family and max(len(a_q), len(b_q)) <= _MULT_WIDTH[family]:
        return _PRIMITIVE[family](m, a_next, b_next, width=width, signs=(True, True),
                                  input_register=True, output_register=output_register,
                                  enable=enable, b_enable=b_enable, name=name, reset=reset)
    product = a_q * b_q
    if not output_register:
        return product
    return _fabric_register(m, product, width, enable, name, reset=reset)


def dsp_product(m, a_next, b_next, a_q=None, b_q=None, *, output_register, platform, name,
                enable=None):
    """Exact ``a * b`` of operands of any width, signed or unsigned, on as many DSP
    multiplies as the widths need, each with the DSP's own registers.

    ``a_q``/``b_q`` are the caller's registers that hold ``a_next``/``b_next`` one cycle
    later, loading on ``enable`` (as for :func:`registered_product`; the DSPs' input registers
    stand in for them, and yosys removes them when nothing else reads them); a constant operand
    (an int or a ``Const``) is its own register, pass it as both. Both ``None``: no input
    registers, the product is of ``a_next * b_next`` (with no output register either it is
    plain ``a_next * b_next``, for yosys to map).

    Returns a signed value equal in every cycle to ``a_q * b_q`` (without input registers:
    ``a_next * b_next``), or with ``output_register`` to that product in the cycle before
    (with ``enable``: in the last cycle ``enable`` was high), as wide as Amaranth's product
    (one bit more when both operands are unsigned). ``enable`` gates every register, as in
    :func:`registered_product`.

    On ECP5 and iCE40 (:func:`dsp_family`) each operand is cut into slices that fit one
    multiply of the family's DSP, whose operands are 18 and 16 bits, each signed or unsigned
    (low slices of that many bits, unsigned; the top one signed when the operand is); a
    constant is first shifted right past its trailing zeros, and its slices that are 0 are left
    out. Each pair of slices is one DSP (:func:`registered_product`'s primitives, registers as
    requested) and the partial products are shifted and summed in the fabric, after the DSPs'
    registers: one DSP and no adder for operands that fit, e.g. ``22 x 16``-bit signed on iCE40
    as two DSPs and an adder. That adder belongs to the consumer's stage (after output
    registers, a stage of its own is the usual place). The slicing depends on the family, the
    registers do not: the latency is the same everywhere. Elsewhere it is ``a_q * b_q``
    (``a_next * b_next``) in Amaranth, registered in the fabric when ``output_register``.
    """
    registered = a_q is not None or b_q is not None
    if registered and (a_q is None or b_q is None):
        raise ValueError("dsp_product: give both operand registers a_q and b_q, or neither")
    a_next, b_next = _operand(a_next), _operand(b_next)
    a_q, b_q = (_operand(a_q), _operand(b_q)) if registered else (a_next, b_next)
    width = len(a_q) + len(b_q) + (not a_q.shape().signed and not b_q.shape().signed)
    consts = [v.value for v in (a_q, b_q) if isinstance(v, Const)]
    if 0 in consts or len(consts) == 2:              # a constant product
        return Const(consts[0] * consts[1] if len(consts) == 2 else 0, signed(width))
    family = dsp_family(platform)
    if family is None or not (registered or output_register):
        product = _signed_bits(a_q * b_q, width)
        return _fabric_register(m, product, width, enable, name) if output_register else product
    if isinstance(a_q, Const):                       # the constant (if any) as b
        a_next, b_next, a_q, b_q = b_next, a_next, b_q, a_q
    mult_width = _MULT_WIDTH[family]
    b_parts = (_const_slices(b_q.value, mult_width) if isinstance(b_q, Const)
               else _slices(b_next, mult_width))
    a_parts = _slices(a_next, mult_width)
    terms = []
    for i, (a_part, a_low) in enumerate(a_parts):
        for j, (b_part, b_low) in enumerate(b_parts):
            part_name = name if len(a_parts) * len(b_parts) == 1 else f"{name}_{i}{j}"
            signs = (a_part.shape().signed, b_part.shape().signed)
            pp = _PRIMITIVE[family](m, a_part, b_part, width=len(a_part) + len(b_part),
                                    signs=signs, input_register=registered,
                                    output_register=output_register, enable=enable,
                                    b_enable=None, name=part_name)
            terms.append((pp, a_low + b_low))
    return _sum_shifted(terms, width)


def _operand(value):
    """``value`` as a Value; a constant narrowed to the fewest bits that hold it (unsigned
    when it is not negative)."""
    value = Value.cast(value)
    return Value.cast(value.value) if isinstance(value, Const) else value


def _signed_bits(value, width):
    """``value`` (which fits) as a signed ``width``-bit value: its low bits, zero-extended
    first when it is unsigned."""
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, Const(0, 1)).as_signed()
    return value[:width].as_signed() if len(value) > width else value


def _sum_shifted(terms, width):
    """``sum(value << shift for value, shift in terms)`` (signed values) as a signed
    ``width``-bit value (the sum fits), with no adder below a term's shift: there the bits
    of the terms below pass by as wiring, and so does the shift all terms share."""
    terms = sorted(terms, key=lambda term: term[1])
    base = terms[0][1]
    total = terms[0][0]                              # the sum so far, in units of 2**base
    for value, shift in terms[1:]:
        low = shift - base
        if low >= len(total):                        # sign-extend: total[low:] is its sign
            total = Cat(total, total[-1].replicate(low + 1 - len(total))).as_signed()
        total = Cat(total[:low], total[low:].as_signed() + value).as_signed()
    if base:
        total = Cat(Const(0, base), total).as_signed()
    return _signed_bits(total, width)


def _fits(value, width):
    """An integer fits one ``width``-bit DSP operand (unsigned when >= 0, else signed)."""
    return value.bit_length() <= width if value >= 0 else (~value).bit_length() < width


def _slices(value, width):
    """``(slice, shift)`` pairs of ``value`` that sum (shifted) to it, each one DSP operand of
    at most ``width`` bits: low slices of ``width`` unsigned bits, and the rest on top, signed
    when ``value`` is."""
    n, parts, low = len(value), [], 0
    if n <= width:
        return [(value, 0)]
    while n - low > width:
        parts.append((value[low:low + width], low))
        low += width
    top = value[low:]
    parts.append((top.as_signed() if value.shape().signed else top, low))
    return parts


def _const_slices(value, width):
    """:func:`_slices` of a constant other than 0: shifted right past its trailing zeros
    first, slices that are 0 left out."""
    zeros = (value & -value).bit_length() - 1
    value >>= zeros
    parts, low = [], 0
    while not _fits(value >> low, width):
        part = (value >> low) & ((1 << width) - 1)
        if part:
            parts.append((Value.cast(part), zeros + low))
        low += width
    if value >> low:
        parts.append((Value.cast(value >> low), zeros + low))
    return parts


def _fabric_register(m, value, width, enable, name, reset=True):
    """``value`` in a ``sync`` register of ``width`` signed bits (reset to 0, or with
    ``reset=False`` only initialised to 0) that loads while ``enable`` is high (always when
    None)."""
    p = Signal(signed(width), name=f"{name}_p", reset_less=not reset)
    if enable is None:
        m.d.sync += p.eq(value)
    else:
        with m.If(enable):
            m.d.sync += p.eq(value)
    return p


def _mult18x18d(m, a_next, b_next, *, width, signs, input_register, output_register, enable,
                b_enable, name, reset=True):
    """``MULT18X18D``, 18x18 with A and B signed or unsigned as ``signs`` says (SIGNEDA,
    SIGNEDB), the low ``width`` bits of the product returned as a signed value (zero-extended
    when both are unsigned); inputs registered on CLK0 when ``input_register``
    (synchronous reset RST0; the A register on CE0 = ``enable``, always when None; the B
    register on CE1 = ``b_enable`` (and ``enable``) when given), output registered too when
    ``output_register`` (on CE0); ``C`` tied to 0, the shift chains and the other clocks
    unused. ``reset=False`` ties RST0 to 0."""
    a18, b18 = Signal(signed(18), name=f"{name}_a18"), Signal(signed(18), name=f"{name}_b18")
    p36 = Signal(signed(36), name=f"{name}_p36")
    m.d.comb += [a18.eq(a_next), b18.eq(b_next)]
    zero18 = Const(0, 18)
    ports = {
        "p_REG_INPUTA_CLK": "CLK0" if input_register else "NONE",
        "p_REG_INPUTA_CE": "CE0", "p_REG_INPUTA_RST": "RST0",
        "p_REG_INPUTB_CLK": "CLK0" if input_register else "NONE", "p_REG_INPUTB_RST": "RST0",
        "p_REG_INPUTB_CE": "CE0" if b_enable is None else "CE1",
        "p_REG_INPUTC_CLK": "NONE", "p_REG_PIPELINE_CLK": "NONE",
        "p_REG_OUTPUT_CLK": "CLK0" if output_register else "NONE",
        "p_REG_OUTPUT_CE": "CE0", "p_REG_OUTPUT_RST": "RST0",
        "p_GSR": "DISABLED", "p_RESETMODE": "SYNC", "p_MULT_BYPASS": "DISABLED",
        "p_SOURCEB_MODE": "B_SHIFT", "p_CAS_MATCH_REG": "FALSE",
        "i_CLK0": ClockSignal(), "i_CE0": Const(1, 1) if enable is None else enable,
        "i_RST0": ResetSignal() if reset else Const(0, 1),
        "i_SIGNEDA": Const(int(signs[0]), 1), "i_SIGNEDB": Const(int(signs[1]), 1),
        "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1),
    }
    if b_enable is not None:
        ports["i_CE1"] = b_enable if enable is None else b_enable & enable
    # the shift-chain inputs SRIA/SRIB and the unused clocks, enables and resets stay
    # unconnected, as yosys's own mapping leaves them: the shift chains are dedicated
    # DSP-to-DSP wires that general routing cannot reach (tying them to 0 fails routing)
    for bit in range(18):
        ports[f"i_A{bit}"] = a18[bit]
        ports[f"i_B{bit}"] = b18[bit]
        ports[f"i_C{bit}"] = zero18[bit]
    for bit in range(36):
        ports[f"o_P{bit}"] = p36[bit]
    m.submodules[f"{name}_dsp"] = Instance("MULT18X18D", **ports)
    return _product_bits(p36, width, signs)


def _sb_mac16(m, a_next, b_next, *, width, signs, input_register, output_register, enable,
              b_enable, name, reset=True):
    """``SB_MAC16`` as a 16x16 multiplier, A and B signed or unsigned as ``signs`` says
    (``A_SIGNED``, ``B_SIGNED``), the low ``width`` bits of the product returned as
    :func:`_mult18x18d` does: A and B input registers when
    ``input_register`` (B held while ``b_enable`` is low), the product register
    ``PIPELINE_16x16_MULT_REG2`` when ``output_register``, all of them on the clock enable
    ``CE`` = ``enable`` (always when None), reset by the domain's reset (``reset=False``:
    not); both output halves select the 16x16 product; the accumulators, C and D are
    unused."""
    a16, b16 = Signal(signed(16), name=f"{name}_a16"), Signal(signed(16), name=f"{name}_b16")
    p32 = Signal(signed(32), name=f"{name}_p32")
    m.d.comb += [a16.eq(a_next), b16.eq(b_next)]
    zero1, zero16 = Const(0, 1), Const(0, 16)
    ports = {
        "p_NEG_TRIGGER": Const(0, 1), "p_A_REG": Const(int(input_register), 1),
        "p_B_REG": Const(int(input_register), 1),
        "p_C_REG": Const(0, 1), "p_D_REG": Const(0, 1),
        "p_TOP_8x8_MULT_REG": Const(0, 1), "p_BOT_8x8_MULT_REG": Const(0, 1),
        "p_PIPELINE_16x16_MULT_REG1": Const(0, 1),
        "p_PIPELINE_16x16_MULT_REG2": Const(int(output_register), 1),
        "p_TOPOUTPUT_SELECT": Const(3, 2), "p_BOTOUTPUT_SELECT": Const(3, 2),
        "p_TOPADDSUB_LOWERINPUT": Const(0, 2), "p_TOPADDSUB_UPPERINPUT": Const(0, 1),
        "p_TOPADDSUB_CARRYSELECT": Const(0, 2), "p_BOTADDSUB_LOWERINPUT": Const(0, 2),
        "p_BOTADDSUB_UPPERINPUT": Const(0, 1), "p_BOTADDSUB_CARRYSELECT": Const(0, 2),
        "p_MODE_8x8": Const(0, 1), "p_A_SIGNED": Const(int(signs[0]), 1),
        "p_B_SIGNED": Const(int(signs[1]), 1),
        "i_CLK": ClockSignal(), "i_CE": Const(1, 1) if enable is None else enable,
        "i_A": a16, "i_B": b16, "i_C": zero16, "i_D": zero16,
        "i_AHOLD": zero1, "i_BHOLD": zero1 if b_enable is None else ~b_enable,
        "i_CHOLD": zero1, "i_DHOLD": zero1,
        "i_IRSTTOP": ResetSignal() if reset else zero1,
        "i_IRSTBOT": ResetSignal() if reset else zero1,
        "i_ORSTTOP": zero1, "i_ORSTBOT": zero1, "i_OLOADTOP": zero1, "i_OLOADBOT": zero1,
        "i_ADDSUBTOP": zero1, "i_ADDSUBBOT": zero1, "i_OHOLDTOP": zero1, "i_OHOLDBOT": zero1,
        "i_CI": zero1, "i_ACCUMCI": zero1, "i_SIGNEXTIN": zero1,
        "o_O": p32,
    }
    m.submodules[f"{name}_dsp"] = Instance("SB_MAC16", **ports)
    return _product_bits(p32, width, signs)


def _product_bits(p, width, signs):
    """The product's low ``width`` bits of the primitive's output ``p``, as a signed value:
    read as signed when an operand is, else zero-extended by a bit."""
    bits = p[:width]
    return bits.as_signed() if any(signs) else Cat(bits, Const(0, 1)).as_signed()


_PRIMITIVE = {"ecp5": _mult18x18d, "ice40": _sb_mac16}
