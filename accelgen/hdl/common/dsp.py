"""Registered products on the FPGA's DSP blocks, with the DSP's own registers in use.

yosys maps ``a * b`` onto ECP5's ``MULT18X18D`` as a purely combinational multiplier and packs
none of the registers around it into the block, so a product between two fabric registers
pays the routing into the DSP column, the multiplier and the routing back out in one cycle
(8x8 systolic on the ULX3S: 3.9 ns of multiplier plus 9 ns of routing). On iCE40 a
combinational ``SB_MAC16`` is not timed at all (nextpnr-ice40 clocks it from a constant net).
:func:`registered_product` instantiates the family's primitive with its input registers (and
output register) enabled instead, when the design is elaborated for that family; elsewhere
(simulation without a family) it is the same registers and ``*`` in Amaranth.

Which family: Amaranth's convention, the ``platform`` handed to ``elaborate``. A board build
passes the amaranth-boards platform (``LatticePlatform.family == "ecp5"``,
``SiliconBluePlatform.family == "iCE40"``); ``accelgen
synth`` passes a :class:`FamilyTarget`; ``emit`` and every simulation pass none.

The simulation model of the ECP5 primitive subset used here is
``accelgen/sim/models/MULT18X18D.v`` (written from Lattice FPGA-TN-02205, the ECP5 sysDSP
usage guide); the iCE40 ``SB_MAC16`` is simulated with yosys's own model (its
``share/ice40/cells_sim.v``). ``tests/test_dsp.py`` simulates both forms against each other.
"""

from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal, Signal, signed

__all__ = ["FamilyTarget", "dsp_family", "registered_product", "ECP5_MULT_WIDTH",
           "ICE40_MULT_WIDTH"]

#: operand width of one ECP5 ``MULT18X18D`` (signed)
ECP5_MULT_WIDTH = 18
#: operand width of one iCE40 ``SB_MAC16`` in its 16x16 mode (signed)
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
                       b_enable=None):
    """``a * b`` of operands that are registers: ``a_q`` and ``b_q`` hold ``a_next`` and
    ``b_next`` one cycle later (the caller's own registers, which its neighbours also read);
    with ``b_enable``, ``b_q`` loads ``b_next`` only in cycles where it is high.

    Returns a signed value equal, in every cycle, to ``a_q * b_q`` (``output_register``
    False) or to the previous cycle's ``a_q * b_q`` (True: one cycle of latency).

    On ECP5 (see :func:`dsp_family`) with both operands at most 18 bits wide, the product is
    a ``MULT18X18D`` whose input registers load ``a_next``/``b_next`` beside ``a_q``/``b_q``
    and whose output register (``REG_OUTPUT``) holds the product; its registers reset with
    the domain's synchronous reset, as ``a_q``/``b_q`` do. On iCE40 with both operands at most
    16 bits wide, it is an ``SB_MAC16`` in its 16x16 mode with the A and B input registers
    and, for ``output_register``, the 16x16 product register; their reset is asynchronous
    (the primitive has no other), driven by the domain's reset, so they hold 0 in the same
    cycles as the fabric registers (they only differ between the reset rising and the next
    clock edge). Elsewhere it is ``a_q * b_q``, registered in the fabric when
    ``output_register``.
    """
    width = len(a_q) + len(b_q)
    family = dsp_family(platform)
    if family and max(len(a_q), len(b_q)) <= _MULT_WIDTH[family]:
        primitive = _mult18x18d if family == "ecp5" else _sb_mac16
        return primitive(m, a_next, b_next, width, output_register=output_register,
                         b_enable=b_enable, name=name)
    product = a_q * b_q
    if not output_register:
        return product
    p = Signal(signed(width), name=f"{name}_p")
    m.d.sync += p.eq(product)
    return p


def _mult18x18d(m, a_next, b_next, width, *, output_register, b_enable, name):
    """``MULT18X18D``, signed 18x18, inputs registered on CLK0 (synchronous reset RST0; the
    A register always enabled (CE0), the B register on CE1 = ``b_enable`` when given), output
    registered too when ``output_register``; ``C`` tied to 0, the shift chains and the other
    clocks unused."""
    a18, b18 = Signal(signed(18), name=f"{name}_a18"), Signal(signed(18), name=f"{name}_b18")
    p36 = Signal(signed(36), name=f"{name}_p36")
    m.d.comb += [a18.eq(a_next), b18.eq(b_next)]
    zero18 = Const(0, 18)
    ports = {
        "p_REG_INPUTA_CLK": "CLK0", "p_REG_INPUTA_CE": "CE0", "p_REG_INPUTA_RST": "RST0",
        "p_REG_INPUTB_CLK": "CLK0", "p_REG_INPUTB_RST": "RST0",
        "p_REG_INPUTB_CE": "CE0" if b_enable is None else "CE1",
        "p_REG_INPUTC_CLK": "NONE", "p_REG_PIPELINE_CLK": "NONE",
        "p_REG_OUTPUT_CLK": "CLK0" if output_register else "NONE",
        "p_REG_OUTPUT_CE": "CE0", "p_REG_OUTPUT_RST": "RST0",
        "p_GSR": "DISABLED", "p_RESETMODE": "SYNC", "p_MULT_BYPASS": "DISABLED",
        "p_SOURCEB_MODE": "B_SHIFT", "p_CAS_MATCH_REG": "FALSE",
        "i_CLK0": ClockSignal(), "i_CE0": Const(1, 1), "i_RST0": ResetSignal(),
        "i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1),
        "i_SOURCEA": Const(0, 1), "i_SOURCEB": Const(0, 1),
    }
    if b_enable is not None:
        ports["i_CE1"] = b_enable
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
    return p36[:width].as_signed()



def _sb_mac16(m, a_next, b_next, width, *, output_register, b_enable, name):
    """``SB_MAC16`` as a signed 16x16 multiplier: A and B input registers (B held while
    ``b_enable`` is low), the product register ``PIPELINE_16x16_MULT_REG2`` when
    ``output_register``; both output halves select the 16x16 product; the accumulators, C and
    D are unused."""
    a16, b16 = Signal(signed(16), name=f"{name}_a16"), Signal(signed(16), name=f"{name}_b16")
    p32 = Signal(signed(32), name=f"{name}_p32")
    m.d.comb += [a16.eq(a_next), b16.eq(b_next)]
    zero1, zero16 = Const(0, 1), Const(0, 16)
    ports = {
        "p_NEG_TRIGGER": Const(0, 1), "p_A_REG": Const(1, 1), "p_B_REG": Const(1, 1),
        "p_C_REG": Const(0, 1), "p_D_REG": Const(0, 1),
        "p_TOP_8x8_MULT_REG": Const(0, 1), "p_BOT_8x8_MULT_REG": Const(0, 1),
        "p_PIPELINE_16x16_MULT_REG1": Const(0, 1),
        "p_PIPELINE_16x16_MULT_REG2": Const(int(output_register), 1),
        "p_TOPOUTPUT_SELECT": Const(3, 2), "p_BOTOUTPUT_SELECT": Const(3, 2),
        "p_TOPADDSUB_LOWERINPUT": Const(0, 2), "p_TOPADDSUB_UPPERINPUT": Const(0, 1),
        "p_TOPADDSUB_CARRYSELECT": Const(0, 2), "p_BOTADDSUB_LOWERINPUT": Const(0, 2),
        "p_BOTADDSUB_UPPERINPUT": Const(0, 1), "p_BOTADDSUB_CARRYSELECT": Const(0, 2),
        "p_MODE_8x8": Const(0, 1), "p_A_SIGNED": Const(1, 1), "p_B_SIGNED": Const(1, 1),
        "i_CLK": ClockSignal(), "i_CE": Const(1, 1),
        "i_A": a16, "i_B": b16, "i_C": zero16, "i_D": zero16,
        "i_AHOLD": zero1, "i_BHOLD": zero1 if b_enable is None else ~b_enable,
        "i_CHOLD": zero1, "i_DHOLD": zero1,
        "i_IRSTTOP": ResetSignal(), "i_IRSTBOT": ResetSignal(),
        "i_ORSTTOP": zero1, "i_ORSTBOT": zero1, "i_OLOADTOP": zero1, "i_OLOADBOT": zero1,
        "i_ADDSUBTOP": zero1, "i_ADDSUBBOT": zero1, "i_OHOLDTOP": zero1, "i_OHOLDBOT": zero1,
        "i_CI": zero1, "i_ACCUMCI": zero1, "i_SIGNEXTIN": zero1,
        "o_O": p32,
    }
    m.submodules[f"{name}_dsp"] = Instance("SB_MAC16", **ports)
    return p32[:width].as_signed()
