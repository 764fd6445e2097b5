"""A simple dual-port memory whose read data leaves through a register, on ECP5 the block RAM's
own output register.

nextpnr-ecp5 times an ECP5 block RAM (``DP16KD``) by its ``REGMODE``: read data has 5.83 ns
clock-to-out with ``"NOREG"`` and 0.97 ns with ``"OUTREG"`` (speed grade 6, yosys
``synth_ecp5`` + nextpnr-ecp5 ``--85k --speed 6`` out of context). yosys's ECP5 memory mapping
(``share/lattice/brams_16kd.txt``, ``brams_map_16kd.v``) never turns the output register on: a
register after a read port stays a fabric flip-flop, and the path into it starts with 5.83 ns
of the 6.67 ns of a 150 MHz cycle. :class:`RegisteredMemory` is that memory and that register;
elaborated for ECP5 it instantiates the block RAMs with ``REGMODE "OUTREG"`` instead, so the
register is the RAM's own and the read data leaves the RAM 0.97 ns after the clock. Elsewhere
(no family, or any family other than ECP5: iCE40's ``SB_RAM40_4K`` has no output register) it
is an :class:`amaranth.lib.memory.Memory` and a fabric register, for yosys to map.

Each ``DP16KD`` is connected as yosys's own mapping connects it (``brams_map_16kd.v``:
``$__PDPW16KD_`` for the 512x36 pseudo-dual-port mode, ``$__DP16KD_`` for 1024x18 .. 16384x1),
pin for pin, so that the netlist is one that every yosys + nextpnr ECP5 design with an inferred
memory of that shape already relies on; it differs from yosys's netlist only in the output
registers (``REGMODE_B "OUTREG"``, and at 36 bits ``REGMODE_A "OUTREG"`` and ``OCEA`` high: the
low half of a 36-bit read leaves through port A's side), in parameters that nothing here
exercises (``RESETMODE``, ``WRITEMODE``, ``GSR``) and in unused data inputs, tied low here,
that yosys leaves undefined. In particular the two halves of a 36-bit
word: written on DIA0..17 (bits 0..17) and DIB0..17 (bits 18..35), read on DOA0..17 (bits
0..17) and DOB0..17 (bits 18..35), yosys's convention; nextpnr-ecp5's conversion of a
``PDPW16KD`` reads them the other way round (DO0..17 from DOB), which is why the ``PDPW16KD``
primitive is not used. ``tests/test_bram.py`` compares the pin connections with what
``synth_ecp5`` makes of the generic form.

Which family: as for the DSPs, :func:`~accelgen.hdl.common.dsp.dsp_family` of the ``platform``
handed to ``elaborate`` (an amaranth-boards platform, a
:class:`~accelgen.hdl.common.dsp.FamilyTarget`, or None).

The simulation model of the ``DP16KD`` subset used here is ``accelgen/sim/models/DP16KD.v``
(written from Lattice FPGA-TN-02204, the ECP5 memory usage guide, the pin roles those of yosys's
``brams_map_16kd.v``); ``tests/test_bram.py`` simulates both forms against each other.
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .dsp import dsp_family

__all__ = ["RegisteredMemory", "ecp5_bram_plan", "ECP5_BRAM_MAX_DEPTH"]

#: the deepest memory one column of ECP5 block RAMs holds (``DP16KD`` at 16384x1); deeper ones
#: take the generic form
ECP5_BRAM_MAX_DEPTH = 16384

#: ECP5 block RAM aspects, widest first: (primitive, depth, width, lowest address pin). A
#: ``width``-bit port of a 16 Kbit RAM takes its word address on the pins from the lowest one up
#: to 13; the pins below it select a bit, a pair, a nibble, or are the write port's byte enables
#: (ADA0/ADA1 at 18 bits, ADA0..ADA3 at 36 bits: one per 9 bits of the word).
_ASPECTS = (
    ("DP16KD", 512, 36, 5),
    ("DP16KD", 1024, 18, 4),
    ("DP16KD", 2048, 9, 3),
    ("DP16KD", 4096, 4, 2),
    ("DP16KD", 8192, 2, 1),
    ("DP16KD", 16384, 1, 0),
)

#: the write port's byte enables at 18 and 36 bits: how many, on ADA0 up
_BYTE_ENABLES = {36: 4, 18: 2}


def ecp5_bram_plan(width, depth):
    """How the ECP5 form holds a ``width`` x ``depth`` memory, per read port: ``(primitive,
    aspect_depth, aspect_width, count)``: ``count`` RAMs of ``aspect_width`` bits side by
    side, in the widest aspect whose depth covers ``depth``; None when ``depth`` is over
    :data:`ECP5_BRAM_MAX_DEPTH` (the generic form)."""
    for primitive, aspect_depth, aspect_width, _ in _ASPECTS:
        if depth <= aspect_depth:
            return primitive, aspect_depth, aspect_width, -(-width // aspect_width)
    return None


class RegisteredMemory(wiring.Component):
    """``width`` x ``depth`` simple dual-port memory in the ``sync`` domain, each of its
    ``read_ports`` read ports followed by an output register.

    Ports
    -----
    w_en, w_addr, w_data : In
        One write port: ``w_data`` is written at ``w_addr`` on the clock edge that ends a
        cycle in which ``w_en`` is high.
    r_addr[i] : In
        Read address of read port ``i`` (``ceil_log2(depth)`` bits, like the write address;
        addresses from ``depth`` up are not allowed).
    r_data[i] : Out
        ``width`` bits: in cycle t, the word that was at ``r_addr[i]`` as presented in cycle
        t - 2 (the word as the writes up to cycle t - 3 left it); unspecified in the first two
        cycles after power-up (t < 2), which have no read to show, and after a reset.

    Timing. Two cycles of read latency: the RAM's synchronous read (the address sampled at the
    end of cycle t - 2) and the output register (loaded at the end of cycle t - 1); ``r_data``
    comes straight from a register, a fabric flip-flop in the generic form, the block RAM's own
    output register on ECP5 (nextpnr-ecp5, speed 6: 0.96-0.97 ns clock-to-out with ``REGMODE
    "OUTREG"`` against 5.83 ns for a RAM read without it). It is what a non-transparent
    ``Memory.read_port()`` followed by ``m.d.sync += q.eq(rp.data)`` gives. A reset leaves the
    contents alone and makes ``r_data`` unspecified for two cycles: the generic form's register
    then holds 0 (it has the domain's reset, like the registers it replaces: Verilator runs
    the 16x16 systolic array ~9 % faster with it than with a reset-less one), the ECP5 form's
    the words read (the block RAM's output reset is not used).

    Collisions. A read in the same cycle as a write to the same address returns an
    unspecified word (callers guarantee they never use it): the generic form's memory carries
    ``no_rw_check``, so yosys adds no collision logic, and on ECP5 the RAM's read of a word
    being written through its other port is not defined. A read in the cycle after a write
    sees the new word.

    Contents. There is no ``init``: the contents start at zero in both forms (the block RAMs'
    default initial contents, a ``Memory`` with ``init=[]``), which callers that write every
    word before they read it need not know.

    On ECP5 (:func:`~accelgen.hdl.common.dsp.dsp_family` of the platform is ``"ecp5"``) the
    memory is ``DP16KD`` block RAMs with their output registers on, tiled by width in the widest
    aspect whose depth covers ``depth`` (:func:`ecp5_bram_plan`): 512x36 for ``depth`` <= 512
    (the pseudo-dual-port mode of yosys's ``$__PDPW16KD_``: both ports 36 bits wide, port A
    writes, port B reads; ``REGMODE_A`` and ``REGMODE_B "OUTREG"``), else 1024x18, 2048x9,
    4096x4, 8192x2 or 16384x1 (both ports that wide, as yosys's ``$__DP16KD_``: port A writes,
    port B reads, ``REGMODE_B "OUTREG"``); ``ceil(width / aspect width)`` RAMs per read port and
    one such set per read port, all written alike (as yosys maps a memory with several read
    ports): 256 x 256 bits with two read ports takes 2 x 8 = 16 RAMs, 512 x 64 bits 2. Every
    pin is connected as in yosys's mapping of the same memory: the RAMs are clocked by
    ``ClockSignal("sync")``; the write enable ``w_en`` drives the byte enables (ADA0..ADA3 at
    36 bits, with ``WEA`` high; ADA0/ADA1 at 18 bits; low for a byte wholly past ``width``) and
    ``WEA`` (18 bits and narrower); the clock enables and output clock enables are high, the
    output resets low, the chip selects 0 (``CSDECODE "0b000"``), the address pins below the
    word address (and not byte enables) low, port B's write enable low; ``GSR "DISABLED"``,
    ``RESETMODE "SYNC"``, ``WRITEMODE "NORMAL"``. Deeper than 16384 words, and on any other
    family or none, it is the generic form: a :class:`~amaranth.lib.memory.Memory` with
    non-transparent read ports and a fabric register after each. On ECP5 even a small memory
    takes whole block RAMs (yosys might have mapped the generic form to LUT RAM): use this for
    memories that belong in block RAM.
    """

    def __init__(self, width, depth, read_ports=1, *, name="mem"):
        if width < 1 or depth < 1 or read_ports < 1:
            self._MustUse__used = True   # rejected, not forgotten: no UnusedElaboratable warning
            raise ValueError(f"RegisteredMemory: width {width}, depth {depth} and read_ports "
                             f"{read_ports} must all be positive")
        self.width, self.depth, self.read_ports, self.name = width, depth, read_ports, name
        self.addr_width = ceil_log2(depth)
        super().__init__({
            "w_en": In(1),
            "w_addr": In(unsigned(self.addr_width)),
            "w_data": In(unsigned(width)),
            "r_addr": In(unsigned(self.addr_width)).array(read_ports),
            "r_data": Out(unsigned(width)).array(read_ports),
        })

    def elaborate(self, platform):
        m = Module()
        plan = ecp5_bram_plan(self.width, self.depth)
        if dsp_family(platform) == "ecp5" and plan is not None:
            self._ecp5(m, plan)
        else:
            self._generic(m)
        return m

    def _generic(self, m):
        """``Memory`` (no collision check, non-transparent read ports) and a register after
        each read port."""
        mem = m.submodules[f"{self.name}_mem"] = Memory(
            shape=unsigned(self.width), depth=self.depth, init=[], attrs={"no_rw_check": 1})
        wp = mem.write_port()
        m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data)]
        for i in range(self.read_ports):
            rp = mem.read_port()
            q = Signal(self.width, name=f"{self.name}_q{i}")
            m.d.comb += [rp.addr.eq(self.r_addr[i]), self.r_data[i].eq(q)]
            m.d.sync += q.eq(rp.data)

    def _ecp5(self, m, plan):
        """One set of ``count`` RAMs per read port (:func:`ecp5_bram_plan`), RAM ``j`` of a
        set holding bits ``j * aspect_width`` up of every word (the last one's top bits, past
        ``width``, are not read, and not written where a whole byte enable's 9 bits are past
        ``width``, else written as 0)."""
        _, _, aspect_width, count = plan
        for i in range(self.read_ports):
            outs = []
            for j in range(count):
                low = j * aspect_width
                w_slice = self.w_data[low:low + aspect_width]
                do = Signal(aspect_width, name=f"{self.name}_do{i}_{j}")
                m.submodules[f"{self.name}_ram{i}_{j}"] = _dp16kd(
                    aspect_width, self.w_en, self.w_addr, w_slice, self.r_addr[i], do)
                outs.append(do)
            m.d.comb += self.r_data[i].eq(Cat(*outs)[:self.width])


def _pins(prefix, value, count, low=0):
    """``{f"i_{prefix}{low + k}": value[k]}`` for the ``count`` pins from ``low`` up, ``value``
    zero-extended (or cut) to ``count`` bits."""
    bits = Cat(value, Const(0, count))[:count] if len(value) < count else value[:count]
    return {f"i_{prefix}{low + k}": bits[k] for k in range(count)}


def _ties(prefix, value, pins):
    """The named pins ``{prefix}{n}`` of ``pins`` all tied to the constant bit ``value``."""
    return {f"i_{prefix}{n}": Const(value, 1) for n in pins}


def _dp16kd(aspect_width, w_en, w_addr, w_data, r_addr, do):
    """``DP16KD`` with both ports ``aspect_width`` bits wide, port A writing, port B reading
    through its output register, connected pin for pin as yosys's ``brams_map_16kd.v`` connects
    it for a memory with one write port and one read port: ``$__PDPW16KD_`` at 36 bits,
    ``$__DP16KD_`` at 18 bits and narrower (with ``PORT_B_WR_EN`` low). The word address on
    ADx<low>..ADx13; the write data from DIA0 up (at 36 bits bits 0..17 on DIA0..17, bits
    18..35 on DIB0..17), the read data from DOB0 up (at 36 bits bits 0..17 from DOA0..17, bits
    18..35 from DOB0..17). The differences from yosys's netlist: ``REGMODE_B "OUTREG"`` (yosys:
    ``"NOREG"``); at 36 bits also ``REGMODE_A "OUTREG"`` and ``OCEA`` high (yosys: ``"NOREG"``,
    low), since the low half of the read word leaves through port A's side; ``GSR
    "DISABLED"`` (yosys: ``"AUTO"``, which ``synth_ecp5`` resolves to ``"DISABLED"`` in a
    design without a ``GSR`` cell); ``RESETMODE``/``ASYNC_RESET_RELEASE "SYNC"`` and
    ``WRITEMODE "NORMAL"`` where yosys's memory mapping may pick other options (the output
    resets are tied low, port A's read data and port B's writes are not used, so none of them
    does anything here); the data pins past the memory's width (in the last RAM of a set) and,
    up to 18 bits, port B's write data tied low where yosys leaves them undefined."""
    low = next(a[3] for a in _ASPECTS if a[2] == aspect_width)
    byte_enables = _BYTE_ENABLES.get(aspect_width, 0)
    wide = aspect_width == 36
    zero, one = Const(0, 1), Const(1, 1)
    clk = ClockSignal("sync")
    ports = {
        "p_DATA_WIDTH_A": aspect_width, "p_DATA_WIDTH_B": aspect_width,
        "p_REGMODE_A": "OUTREG" if wide else "NOREG", "p_REGMODE_B": "OUTREG",
        "p_RESETMODE": "SYNC", "p_ASYNC_RESET_RELEASE": "SYNC", "p_GSR": "DISABLED",
        "p_CSDECODE_A": "0b000", "p_CSDECODE_B": "0b000",
        "p_WRITEMODE_A": "NORMAL", "p_WRITEMODE_B": "NORMAL",
        "p_CLKAMUX": "CLKA", "p_CLKBMUX": "CLKB",
        # The write enable as yosys's mapping applies it. At 36 bits ``$__PDPW16KD_`` ties WEA
        # high and puts the write port's per-byte enables (PORT_W_WR_EN[0..3]) on ADA0..ADA3,
        # its clock enable on CEA; memory_libmap gives a write port that has no clock enable of
        # its own CLK_EN = 1 and the write enable on every byte: ``synth_ecp5`` of the generic
        # form gives CEA 1, WEA 1, ADA0..ADA3 = w_en, which is what this is (CEA = w_en with the
        # byte enables high would be a configuration yosys never produces for a plain write
        # port). At 18 bits ``$__DP16KD_`` puts PORT_A_WR_EN on WEA and the byte enables
        # PORT_A_WR_BE[0..1] on ADA0/ADA1, both w_en in ``synth_ecp5``'s netlist; narrower,
        # WEA = PORT_A_WR_EN | PORT_A_WR_BE[0] = w_en and ADA0.. are address pins. The byte
        # enable of a byte wholly past the memory's width (in the last RAM of a set: the 9 bits
        # of byte k are bits 9k..9k+8 of the RAM's word) is tied low, as memory_libmap does:
        # those bits are never written (nor read).
        "i_CLKA": clk, "i_CEA": one, "i_OCEA": one, "i_WEA": one if wide else w_en,
        "i_RSTA": zero,
        "i_CLKB": clk, "i_CEB": one, "i_OCEB": one, "i_WEB": zero, "i_RSTB": zero,
        **_ties("CSA", 0, range(3)), **_ties("CSB", 0, range(3)),
        **{f"i_ADA{k}": w_en if 9 * k < len(w_data) else zero for k in range(byte_enables)},
        **_ties("ADA", 0, range(byte_enables, low)), **_ties("ADB", 0, range(low)),
        **_pins("ADA", w_addr, 14 - low, low=low), **_pins("ADB", r_addr, 14 - low, low=low),
    }
    if wide:
        ports.update(_pins("DIA", w_data[:18], 18))
        ports.update(_pins("DIB", w_data[18:], 18))
        for bit in range(18):
            ports[f"o_DOA{bit}"] = do[bit]
            ports[f"o_DOB{bit}"] = do[18 + bit]
    else:
        ports.update(_pins("DIA", w_data, 18))
        ports.update(_ties("DIB", 0, range(18)))
        for bit in range(aspect_width):
            ports[f"o_DOB{bit}"] = do[bit]
    return Instance("DP16KD", **ports)
