"""FPGA flow: the self-checking harness (fast tier, Amaranth simulator) and yosys / nextpnr /
pack runs on both boards (``fpga`` marker)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from accelgen.fpga import harness as hz
from accelgen.fpga.boards import BOARDS, check_family, get_board
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.payload import payload_width

SPEC = REGISTRY["mac"]
TINY = SPEC.presets["tiny"]


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
    accepted = []

    async def bench(ctx):
        # values sampled at the clock edge: a transfer is valid & ready just before it
        while not ctx.get(h.done):
            _, _, valid, ready, payload = await ctx.tick().sample(
                h.block.i.valid, h.block.i.ready, h.block.i.payload.as_value())
            if valid and ready:
                accepted.append(payload)

    sim = Simulator(h)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
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
