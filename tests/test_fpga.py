"""FPGA flow: the self-checking harness (fast tier, Amaranth simulator) and yosys / nextpnr /
pack runs on both boards (``fpga`` marker)."""

import dataclasses
import itertools
import random
import re

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.sim import Simulator

from accelgen.fpga import harness as hz
from accelgen.fpga import harness_systolic as hs
from accelgen.fpga.boards import BOARDS, check_family, get_board
from accelgen.generators.base import field_offsets
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.golden import systolic as golden
from accelgen.sim.payload import payload_width

SPEC = REGISTRY["mac"]
TINY = SPEC.presets["tiny"]
SYS = REGISTRY["systolic"]
SYS_TINY = SYS.presets["tiny"]


def _accepted(harness, ports):
    """Simulate ``harness`` to ``done``; the payload words each of the block's ``ports`` took,
    in order (values sampled at the clock edge: a transfer is valid & ready just before it)."""
    streams = [getattr(harness.block, name) for name in ports]
    seen = {name: [] for name in ports}

    async def bench(ctx):
        while not ctx.get(harness.done):
            _, _, *values = await ctx.tick().sample(
                *(v for st in streams for v in (st.valid, st.ready, st.payload.as_value())))
            for k, name in enumerate(ports):
                valid, ready, payload = values[3 * k:3 * k + 3]
                if valid and ready:
                    seen[name].append(payload)

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


# -- fast tier: the Python model and its hardware twin -----------------------------------------

def test_xorshift32_known_values():
    # Marsaglia's xorshift32 (13, 17, 5) from state 1: published first outputs.
    x, seq = 1, []
    for _ in range(3):
        x = hz.xorshift32(x)
        seq.append(x)
    assert seq == [270369, 67634689, 2647435461]


def test_crc_matrix_equals_bit_serial_definition():
    rng = random.Random(7)
    for width in (1, 25, 33, 129):
        masks = hz.crc_masks(width)
        for _ in range(50):
            crc, word = rng.getrandbits(32), rng.getrandbits(width)
            assert hz.crc_update(masks, crc, word) == hz.crc_serial(crc, word, width), \
                f"width {width}, crc 0x{crc:08x}, word 0x{word:x}"


def test_signature_catches_single_and_double_bit_errors():
    rng = random.Random(3)
    words = [rng.getrandbits(33) for _ in range(20)]
    good = hz.signature(words, 33)
    for _ in range(100):
        bad = list(words)
        for _ in range(rng.choice((1, 2))):
            i, b = rng.randrange(len(bad)), rng.randrange(33)
            bad[i] ^= 1 << b
        if bad != words:
            assert hz.signature(bad, 33) != good


@pytest.mark.parametrize("width", [25, 33, 70])
def test_prng_and_crc_hardware_twins_match_model(width):
    """xorshift32 and the one-cycle CRC update in Amaranth against the Python model, a few
    hundred steps with random words (seed 11)."""
    steps, rng = 300, random.Random(11)
    words = [rng.getrandbits(width) for _ in range(steps)]
    m = Module()
    x = Signal(32, init=0x1234_5678)
    crc = Signal(32, init=hz.CRC_INIT)
    word = Signal(width)
    m.d.sync += [x.eq(hz.xorshift32(x)), crc.eq(hz.crc_next(crc, word, width))]
    seen = []

    async def bench(ctx):
        for w in words:
            ctx.set(word, w)
            await ctx.tick()
            seen.append((ctx.get(x), ctx.get(crc)))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    px, pc, masks = 0x1234_5678, hz.CRC_INIT, hz.crc_masks(width)
    for t, w in enumerate(words):
        px, pc = hz.xorshift32(px), hz.crc_update(masks, pc, w)
        assert seen[t] == (px, pc), f"step {t}: hardware {seen[t]}, model {(px, pc)}"


def test_harness_sends_the_modelled_stimulus():
    """The beats the block accepts in simulation are exactly :func:`stimulus_words`."""
    beats, seed = 40, 5
    h = hz.SelfCheckHarness(SPEC, TINY, beats=beats, seed=seed)
    accepted = _accepted(h, ["i"])["i"]
    assert accepted == hz.stimulus_words(payload_width(TINY.input_fields), beats, seed)


# -- fast tier: the harness in the Amaranth simulator -----------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_harness_passes_on_tiny(seed):
    h = hz.SelfCheckHarness(SPEC, TINY, beats=128, seed=seed)
    r = hz.simulate(h)
    assert r.done and r.passed and not r.failed, f"seed {seed}: {r}"
    assert (r.signature, r.count) == (h.expected_signature, h.expected_count)
    assert 0 < h.expected_count < 128      # random `last` bits: some beats emit, some do not
    assert r.cycles < h.timeout


def test_harness_fails_with_corrupted_expectation():
    h = hz.SelfCheckHarness(SPEC, TINY, beats=128, seed=1, corrupt_expected=True)
    r = hz.simulate(h)
    assert r.done and r.failed and not r.passed, f"seed 1: {r}"
    assert r.signature == h.model_signature != h.expected_signature


def test_harness_fails_on_timeout():
    """A run that outlasts the timeout must fail, not hang: a 10-cycle budget is shorter
    than any 16-beat run, so the timeout trips first."""
    h = hz.SelfCheckHarness(SPEC, TINY, beats=16, seed=1)
    h.timeout = 10             # read at elaboration
    r = hz.simulate(h, max_cycles=400)
    assert r.done and r.failed and not r.passed
    assert r.cycles < 20


def test_harness_beats_validated():
    with pytest.raises(ConfigError, match=r"^--beats: 0 is not allowed; expected an integer "
                                          r"from 1 to 1048576$"):
        hz.SelfCheckHarness(SPEC, TINY, beats=0)


# -- fast tier: the systolic harness ------------------------------------------------------------

@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_systolic_program_covers_the_features(preset):
    cfg = SYS.presets[preset]
    p = hs.plan(cfg, beats=1, seed=3)
    coded = [c.coded(cfg) for c in p.commands]
    first = coded[0]
    assert (first.output, first.accumulate, first.preload, first.k) == (2, False, False, 1)
    assert first.m * -(-first.n // cfg.cols) == cfg.acc_depth     # clears every memory row
    assert sorted(err for err, _ in p.rsp if err) == [1, 4]
    valid = [c for c, (err, _) in zip(coded, p.rsp) if not err]
    for flow in range(len(cfg.dataflows)):
        mine = [c for c in valid if c.dataflow == flow]
        assert any(c.accumulate and not c.preload for c in mine), (preset, flow)
        assert any(c.preload for c in mine) and any(c.output == 2 for c in mine)
        assert any(c.output == 0 for c in mine)
        assert any(c.output == 1 for c in mine) == cfg.requant
        assert any(c2.accumulate and (c1.m, c1.k, c1.dataflow) == (c2.m, c2.k, c2.dataflow)
                   and c1.n % cfg.cols and c2.n == -(-c1.n // cfg.cols) * cfg.cols
                   for c1, c2 in zip(mine, mine[1:])), "widening pair"
    assert p.cmd_words == tuple(golden.pack_command(cfg, c) for c in p.commands)
    assert p == hs.plan(cfg, beats=1, seed=3)                        # deterministic


def test_systolic_program_grows_to_the_beat_budget():
    small, big = (hs.plan(SYS_TINY, beats=b, seed=1) for b in (1, 2000))
    assert big.commands[:len(small.commands)] == small.commands
    assert big.beats >= 2000 > small.beats
    assert big.consumed["a"] > 0 and big.consumed["b"] > 0 and big.consumed["c"] > 0


def test_systolic_harness_sends_the_planned_streams():
    """The block takes exactly the ROM's commands and prefixes of the modelled operand
    streams, as many beats as the golden model pulled (holds whatever the block computes)."""
    h = hs.SystolicHarness(SYS, SYS_TINY, beats=150, seed=4)
    seen = _accepted(h, ["cmd", "a", "b", "c"])
    assert seen["cmd"] == list(h.plan.cmd_words)
    for name in hs.OPERANDS:
        width = payload_width(getattr(SYS_TINY, f"{name}_fields"))
        want = list(itertools.islice(hz.lane_words(h.plan.seeds[name], width),
                                     h.plan.consumed[name]))
        assert seen[name] == want, name


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_systolic_harness_passes(preset):
    h = hs.SystolicHarness(SYS, SYS.presets[preset], beats=300, seed=2)
    r = hz.simulate(h)
    assert r.done and r.passed and not r.failed, f"seed 2: {r}"
    assert r.cycles < h.timeout // 4
    assert r.observed == h.expected_values()
    assert (r.signature, r.count) == (h.expected_signature, h.expected_count)


def test_systolic_harness_fails_with_corrupted_expectation():
    h = hs.SystolicHarness(SYS, SYS_TINY, beats=300, seed=2, corrupt_expected=True)
    r = hz.simulate(h)
    assert r.done and r.failed and not r.passed, f"seed 2: {r}"
    assert r.signature == h.model_signature != h.expected_signature
    assert {k: v for k, v in r.observed.items() if v != h.expected_values()[k]} == \
        {"o signature": h.model_signature}


class _Mutant(wiring.Component):
    """``block`` with one output stream's payload passed through ``mutate`` (a function of
    the payload ``View``): a broken block the harness must catch."""

    def __init__(self, block, stream, mutate):
        self.inner, self.stream, self.mutate = block, stream, mutate
        super().__init__(block.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(self.inner, name)
            if member.flow == wiring.In:
                m.d.comb += [inner.valid.eq(outer.valid), inner.payload.eq(outer.payload),
                             outer.ready.eq(inner.ready)]
            else:
                payload = self.mutate(inner.payload) if name == self.stream else inner.payload
                m.d.comb += [outer.valid.eq(inner.valid), outer.payload.eq(payload),
                             inner.ready.eq(outer.ready)]
        return m


@pytest.mark.parametrize("stream, mutate, caught", [
    # bit 0 of lane 0 flipped on each command's last row only
    ("o", lambda p: p.as_value() ^ p.last, {"o signature"}),
    # the macs counter one too high (its field is the last)
    ("rsp", lambda p: p.as_value() + (1 << field_offsets(SYS_TINY.rsp_fields)["macs"][0]),
     {"rsp signature"}),
    # a timing counter is not checked: a correct block's counters depend on the flow control
    ("rsp", lambda p: p.as_value() ^ (1 << field_offsets(SYS_TINY.rsp_fields)["cycles"][0]),
     set()),
])
def test_systolic_harness_catches_a_broken_block(stream, mutate, caught):
    h = hs.SystolicHarness(SYS, SYS_TINY, beats=100, seed=5)
    h.block = _Mutant(h.block, stream, mutate)
    r = hz.simulate(h)
    assert r.done and r.failed == bool(caught) != r.passed, f"seed 5: {r}"
    assert {k for k, v in r.observed.items() if v != h.expected_values()[k]} == caught


def test_systolic_harness_beats_validated():
    with pytest.raises(ConfigError, match=r"^--beats: 0 is not allowed; expected an integer "
                                          r"from 1 to 1048576$"):
        hs.SystolicHarness(SYS, SYS_TINY, beats=0)


def test_selfcheck_log_lists_every_check(tmp_path):
    from accelgen.fpga.flow import _selfcheck
    h, r, log = _selfcheck(SYS, SYS_TINY, tmp_path, beats=50, seed=3)
    text = log.read_text()
    assert r.passed and "MISMATCH" not in text
    for name, value in h.expected_values().items():
        shown = f"0x{value:08x}" if "signature" in name else str(value)
        assert re.search(rf"^  {name} +expected +{shown} +simulated +{shown}$", text, re.M), name
    assert text.endswith(f"done=True passed=True failed=False after {r.cycles} cycles\n")


def test_harness_dispatch():
    from accelgen.fpga.flow import HARNESSES, harness_class
    assert harness_class(SPEC) is hz.SelfCheckHarness
    assert harness_class(SYS) is hs.SystolicHarness
    assert set(HARNESSES) == set(REGISTRY)
    with pytest.raises(ConfigError) as err:
        harness_class(dataclasses.replace(SPEC, name="macc"))
    assert str(err.value) == ("block: 'macc' has no self-check harness, so it cannot be built "
                              "for a board; blocks with one are mac, systolic, activation, "
                              "softmax (did you mean 'mac'?)")


# -- fast tier: names ---------------------------------------------------------------------------

def test_bad_board_name():
    with pytest.raises(ConfigError) as err:
        get_board("icebraker")
    assert str(err.value) == ("--board: 'icebraker' is not a known board; allowed are "
                              "icebreaker, ulx3s-85f (did you mean 'icebreaker'?)")
    with pytest.raises(ConfigError) as err:
        get_board("x")
    assert str(err.value) == ("--board: 'x' is not a known board; allowed are icebreaker, "
                              "ulx3s-85f")


def test_bad_family_name():
    with pytest.raises(ConfigError) as err:
        check_family("ecp")
    assert str(err.value) == ("--family: 'ecp' is not a known FPGA family; allowed are ice40, "
                              "ecp5 (did you mean 'ecp5'?)")


def test_synth_rejects_bad_family_before_writing(tmp_path):
    from accelgen.fpga.flow import synth
    with pytest.raises(ConfigError, match=r"^--family: 'xilinx'"):
        synth(SPEC, TINY, "xilinx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_boards_map_to_families():
    assert {name: b.family for name, b in BOARDS.items()} == {"icebreaker": "ice40",
                                                              "ulx3s-85f": "ecp5"}


def test_nextpnr_log_parsing():
    from accelgen.fpga.flow import parse_nextpnr_log
    log = ("Info: Logic utilisation before packing:\n"
           "Info:     Total LUT4s:       465/83640     0%\n"
           "Info:         logic LUTs:    369/83640     0%\n"
           "Info:         carry LUTs:     96/83640     0%\n"
           "Info:      Total DFFs:       253/83640     0%\n\n"
           "Info: Device utilisation:\n"
           "Info: \t          TRELLIS_IO:       6/    365     1%\n"
           "Info: \t          MULT18X18D:       1/    156     0%\n"
           "Info: \t              DP16KD:       0/    208     0%\n\n"
           "Info: Max frequency for clock '$glbnet$clk': 165.23 MHz (PASS at 25.00 MHz)\n"
           "Info: Max frequency for clock '$glbnet$clk': 143.88 MHz (PASS at 25.00 MHz)\n")
    res, fmax = parse_nextpnr_log(log, "ecp5")
    assert fmax == 143.88
    assert res["LUT4"] == (369, 83640) and res["carry"] == (48, 41820)
    assert res["FF"] == (253, 83640) and res["DSP"] == (1, 156) and res["IO"] == (6, 365)
    assert res["BRAM"] == (0, 208)


def test_nextpnr_ice40_pseudo_clock_is_not_the_design_clock():
    """nextpnr-ice40 lists the constant net on a combinational SB_MAC16's clock pin as a clock
    of its own, sometimes first: the Fmax is the real clock's, and the log is flagged."""
    from accelgen.fpga.flow import parse_nextpnr_log, untimed_mac16
    log = ("Info: Max frequency for clock '$PACKER_GND_NET_$glb_clk': 256.81 MHz (PASS at "
           "12.00 MHz)\n"
           "Info: Max frequency for clock          'button_sync.clk': 32.63 MHz (PASS at "
           "12.00 MHz)\n")
    _, fmax = parse_nextpnr_log(log, "ice40", clock_hint="clk12")
    assert fmax == 32.63 and untimed_mac16(log)
    plain = log.splitlines()[1]
    assert parse_nextpnr_log(plain, "ice40")[1] == 32.63 and not untimed_mac16(plain)
    # a pseudo-clock without interior paths shows only in the cross-domain delays
    crossing = (plain + "\nInfo: Clock '$PACKER_GND_NET_$glb_clk' has no interior paths\n"
                "Info: Max delay posedge $PACKER_GND_NET_$glb_clk -> posedge clk$SB_IO_IN_$glb_"
                "clk   : 5.16 ns\n")
    assert parse_nextpnr_log(crossing, "ice40")[1] == 32.63 and untimed_mac16(crossing)
    assert not untimed_mac16("Info: promoting $PACKER_GND_NET (fanout 1)\n" + plain)


# -- fpga tier ------------------------------------------------------------------------------------

KEYS = {"LUT4", "carry", "FF", "DSP", "BRAM", "cells"}


@pytest.mark.fpga
def test_synth_tiny_ice40(tmp_path):
    from accelgen.fpga.flow import synth
    r = synth(SPEC, TINY, "ice40", tmp_path, preset="tiny")
    assert set(r.resources) == KEYS
    assert r.resources["LUT4"] > 0 and r.resources["FF"] > 0
    # synth_ice40 -dsp maps the 8x8 multiplier into one SB_MAC16
    assert r.resources["DSP"] == 1
    assert r.json.exists() and r.log.exists()


@pytest.mark.fpga
def test_synth_tiny_ecp5(tmp_path):
    from accelgen.fpga.flow import synth
    r = synth(SPEC, TINY, "ecp5", tmp_path, preset="tiny")
    assert set(r.resources) == KEYS
    assert r.resources["LUT4"] > 0
    # yosys infers one MULT18X18D for the plain s8 x s8 multiplier
    assert r.resources["DSP"] == 1
    assert r.resources["carry"] > 0       # the 24-bit accumulator's CCU2C chain


@pytest.mark.fpga
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_build_tiny(tmp_path, board):
    from accelgen.fpga.flow import build
    lines = []
    r = build(SPEC, TINY, board, tmp_path, preset="tiny", progress=lines.append)
    assert r.bitstream.exists() and r.bitstream.stat().st_size > 0
    assert r.selfcheck_passed and r.selfcheck_cycles > 0
    assert r.fmax_mhz > r.target_mhz > 0
    assert r.resources["DSP"][0] == 1
    assert r.resources["IO"][0] == 6        # clock, button, four LEDs
    assert r.resources["LUT4"][0] > 0 and r.resources["FF"][0] > 0
    assert any("yosys" in ln for ln in lines) and any("nextpnr" in ln for ln in lines)
    assert (tmp_path / ("top.pcf" if r.family == "ice40" else "top.lpf")).exists()


def test_tool_failure_detail_names_the_overflowing_resource():
    from accelgen.fpga.flow import _failure_detail
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    6673/   5280   126%\n\n"
           "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
           "'ICESTORM_LC'\n")
    assert _failure_detail(log, 255) == (
        "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
        "'ICESTORM_LC' (does not fit: ICESTORM_LC 6673/5280 used)")


@pytest.mark.fpga
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_synth_systolic_tiny(tmp_path, family):
    from accelgen.fpga.flow import synth
    r = synth(SYS, SYS_TINY, family, tmp_path, preset="tiny")
    assert set(r.resources) == KEYS
    assert r.resources["LUT4"] > 0 and r.resources["FF"] > 0 and r.resources["carry"] > 0
    # one multiplier per PE (2x2) in DSPs; the accumulator memory and the B panels in block
    # RAM (iCE40) or, being small, in distributed RAM (ECP5)
    assert r.resources["DSP"] >= SYS_TINY.rows * SYS_TINY.cols
    assert r.resources["BRAM"] + r.resources["cells"].get("TRELLIS_DPR16X4", 0) > 0


@pytest.mark.fpga
@pytest.mark.parametrize("board, preset", [("icebreaker", "tiny"), ("ulx3s-85f", "default")])
def test_build_systolic(tmp_path, board, preset):
    """The systolic harness on both boards (quick placement keeps the 4x4 build near a
    minute; the CLI's builds are timing-driven)."""
    from accelgen.fpga.flow import build
    cfg = SYS.presets[preset]
    r = build(SYS, cfg, board, tmp_path, preset=preset, beats=300, seed=2, quick=True)
    assert r.selfcheck_passed and r.selfcheck_cycles > 0
    assert set(r.selfcheck_checks) == {"o signature", "o beats", "rsp signature", "rsp beats",
                                       "a beats", "b beats", "c beats"}
    assert r.bitstream.exists() and r.bitstream.stat().st_size > 0
    assert r.resources["IO"][0] == 6        # clock, button, four LEDs: no stream pins
    assert r.resources["DSP"][0] >= (cfg.rows - getattr(cfg, "lut_rows", 0)) * cfg.cols
    assert r.resources["LUT4"][0] > 0 and r.resources["FF"][0] > 0
    assert r.resources["BRAM"][0] > 0
    assert r.fmax_mhz > r.target_mhz > 0


@pytest.mark.parametrize("block, preset", [("activation", "default"), ("softmax", "tiny")])
def test_nonlinear_harness_passes_and_can_fail(block, preset):
    """The generic one-stream harness around the nonlinear blocks: passes against the golden
    model, fails when the expectation is corrupted."""
    spec = REGISTRY[block]
    cfg = spec.presets[preset]
    ok = hz.simulate(hz.SelfCheckHarness(spec, cfg, beats=200, seed=3))
    assert ok.done and ok.passed and not ok.failed and ok.count > 0
    bad = hz.simulate(hz.SelfCheckHarness(spec, cfg, beats=200, seed=3, corrupt_expected=True))
    assert bad.done and bad.failed and not bad.passed


@pytest.mark.fpga
@pytest.mark.parametrize("board, block, preset", [("ulx3s-85f", "softmax", "default"),
                                                   ("icebreaker", "activation", "tiny")])
def test_build_nonlinear(tmp_path, board, block, preset):
    from accelgen.fpga.flow import build
    spec = REGISTRY[block]
    r = build(spec, spec.presets[preset], board, tmp_path, preset=preset, beats=400, seed=2,
              quick=True)
    assert r.selfcheck_passed and r.selfcheck_cycles > 0
    assert r.bitstream.exists() and r.bitstream.stat().st_size > 0
    assert r.resources["IO"][0] == 6
    assert r.resources["BRAM"][0] > 0
    assert r.fmax_mhz > r.target_mhz > 0


@pytest.mark.fpga
@pytest.mark.parametrize("family, dsp_cell", [("ecp5", "MULT18X18D"), ("ice40", "SB_MAC16")])
def test_activation_without_dsp_maps_no_dsp_block(tmp_path, family, dsp_cell):
    """``dsp=False`` keeps the PWL and I-BERT products off the DSP blocks: the same design
    with ``dsp=True`` takes at least one per lane."""
    from accelgen.fpga.flow import synth
    act = REGISTRY["activation"]
    for preset in ("default", "gelu_ibert"):
        cfg = act.presets[preset]
        with_dsp = synth(act, cfg, family, tmp_path / f"{preset}-dsp", preset=preset)
        without = synth(act, dataclasses.replace(cfg, dsp=False), family,
                        tmp_path / f"{preset}-lut", preset=preset)
        assert with_dsp.resources["cells"].get(dsp_cell, 0) >= cfg.lanes, preset
        assert without.resources["cells"].get(dsp_cell, 0) == 0, preset
        assert without.resources["DSP"] == 0 and without.resources["LUT4"] > 0
