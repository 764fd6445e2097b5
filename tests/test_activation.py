"""Block ``activation``: RTL (Amaranth simulator) against the golden model over every input
code of every preset and of small configs covering each function x back-end, under random
gaps and backpressure, and the declared latency and throughput measured exactly (fast tier);
the emitted Verilog in cocotb on Verilator and Icarus (``cocotb`` marker); yosys / nextpnr
builds (``fpga`` marker).

Golden model against float64 lives in ``test_nonlinear_errors.py`` and
``test_nonlinear_golden.py``; here the golden model is the scoreboard."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from accelgen import approx
from accelgen.generators.activation import FUNCTIONS, PRESETS, ActivationConfig
from accelgen.generators.registry import REGISTRY
from accelgen.hdl.activation import Activation, ibert_exp_divider
from accelgen.sim.golden import activation as golden
from accelgen.sim.pysim import run_streams
from accelgen.sim.runner import default_testcases

from support import (SEED, check_selfchecked_build, errors_like_golden,
                     false_manifest_is_caught, needs_icarus, simulate_passing,
                     simulate_preset)

# Six-bit formats keep the exhaustive runs short; the scales put each function's interesting
# range inside the codes and its values inside the output format.
_SMALL = {
    "gelu": dict(in_format="s6", in_scale=1 / 8, out_format="s6", out_scale=1 / 8),
    "silu": dict(in_format="s6", in_scale=1 / 8, out_format="s6", out_scale=1 / 8),
    "sigmoid": dict(in_format="s6", in_scale=1 / 8, out_format="u6", out_scale=1 / 64),
    "tanh": dict(in_format="s6", in_scale=1 / 8, out_format="s6", out_scale=1 / 32),
    "exp": dict(in_format="s6", in_scale=1 / 8, out_format="u6", out_scale=1 / 64),
    "reciprocal": dict(in_format="u6", in_scale=1 / 16, out_format="u6", out_scale=1 / 4),
    "rsqrt": dict(in_format="u6", in_scale=1 / 16, out_format="u6", out_scale=1 / 8),
}


def _small(function, backend, **kwargs):
    return ActivationConfig(function=function, backend=backend,
                            **{**_SMALL[function], "segments": 8, **kwargs})


EXTRA = {
    **{f"table_{f}": _small(f, "table", lanes=3 if f in ("silu", "exp") else 1)
       for f in FUNCTIONS},
    **{f"pwl_{s}_{f}": _small(f, "pwl", spacing=s, lanes=2 if f == "tanh" else 1)
       for f in FUNCTIONS for s in ("uniform", "nonuniform")},
    "ibert_gelu_s6": _small("gelu", "ibert", lanes=3),
    "ibert_exp_s6": _small("exp", "ibert", lanes=2),
    # zero points away from 0: asymmetric input codes, shifted outputs
    "table_zp": _small("sigmoid", "table", in_zero_point=-7, out_zero_point=5),
    "pwl_zp": _small("gelu", "pwl", in_format="u6", in_zero_point=40, out_zero_point=-9),
    "ibert_gelu_zp": replace(PRESETS["gelu_ibert"], out_zero_point=-20),
    "ibert_exp_zp": replace(PRESETS["exp_ibert"], in_format="s8", in_scale=1 / 16,
                            out_zero_point=100, lanes=1),
    # i-exp with the clamp at n * x0 inside the codes (x0_int == -2: q saturates at 30)
    "ibert_exp_clamp": _small("exp", "ibert", in_format="s8", in_scale=0.5, out_format="u8",
                              out_scale=1 / 256),
    # i-GELU with a nonzero erf_shift (the overflow guard shifts)
    "ibert_gelu_erf_shift": _small("gelu", "ibert", in_format="s10", in_scale=1 / 256,
                                   out_format="s8", out_scale=1 / 64),
    # outputs so fine that one unit of I-BERT's intermediate integers moves the result: the
    # clamps, floors and roundings inside the polynomials become visible
    "ibert_gelu_fine": _small("gelu", "ibert", out_format="s16", out_scale=2 ** -13,
                              mult_bits=24),
    "ibert_gelu_erf_fine": _small("gelu", "ibert", in_format="s10", in_scale=1 / 256,
                                  out_format="s16", out_scale=2 ** -16, mult_bits=24),
    "ibert_exp_fine": _small("exp", "ibert", in_format="s12", in_scale=1 / 64,
                             out_format="u16", out_scale=2 ** -37, mult_bits=24),
    # shifts of 63 and more (q large): the result rounds to 0; the golden model's rounding
    # term once overflowed int64 there and gave -1 on 699 codes
    "ibert_exp_shift63": _small("exp", "ibert", in_format="s12", in_scale=2 ** -6,
                                out_format="s8", out_scale=1 / 16, mult_bits=24),
    # a multiplier without shift (round at 2**q only)
    "ibert_exp_shift0": _small("exp", "ibert", in_scale=1 / 4, out_format="u16",
                               out_scale=2 ** -13, mult_bits=8),
    # PWL corners: no fraction bits, one code per uniform segment, two nonuniform segments,
    # the most nonuniform segments on a wide input
    "pwl_frac0": _small("tanh", "pwl", spacing="nonuniform", pwl_frac=0, out_scale=1 / 8),
    "pwl_shift0": _small("sigmoid", "pwl", in_format="s4", in_scale=1 / 2, spacing="uniform",
                         segments=16),
    "pwl_two": _small("silu", "pwl", spacing="nonuniform", segments=2),
    "pwl_s12": _small("gelu", "pwl", in_format="s12", in_scale=1 / 256, out_format="s10",
                      out_scale=1 / 128, spacing="nonuniform", segments=64, lanes=2),
    # products from LUTs and carry chains (dsp=False): the same numbers, other gates
    "lut_preset_default": replace(PRESETS["default"], dsp=False),
    "lut_preset_exp_ibert": replace(PRESETS["exp_ibert"], dsp=False),
    "lut_pwl_nonuniform_sigmoid": _small("sigmoid", "pwl", spacing="nonuniform", dsp=False),
    "lut_pwl_s12": _small("gelu", "pwl", in_format="s12", in_scale=1 / 256, out_format="s10",
                          out_scale=1 / 128, spacing="uniform", segments=16, dsp=False),
    "lut_ibert_gelu_zp": replace(PRESETS["gelu_ibert"], out_zero_point=-20, dsp=False),
    "lut_ibert_gelu_erf_fine": _small("gelu", "ibert", in_format="s10", in_scale=1 / 256,
                                      out_format="s16", out_scale=2 ** -16, mult_bits=24,
                                      dsp=False),
    "lut_ibert_exp_fine": _small("exp", "ibert", in_format="s12", in_scale=1 / 64,
                                 out_format="u16", out_scale=2 ** -37, mult_bits=24, dsp=False),
    "lut_ibert_exp_clamp": _small("exp", "ibert", in_format="s8", in_scale=0.5,
                                  out_format="u8", out_scale=1 / 256, dsp=False, lanes=2),
}
CONFIGS = {**{f"preset_{n}": c for n, c in PRESETS.items()}, **EXTRA}


def _exhaustive_beats(cfg):
    """``(beats, lanes)`` codes in which every lane sees every code (each code once overall
    for inputs past 12 bits), lanes rotated against each other so a beat mixes codes."""
    codes = np.array(list(cfg.codes), np.int64)
    n = len(codes)
    if n > 4096:
        beats = -(-n // cfg.lanes)
        return np.resize(codes, beats * cfg.lanes).reshape(beats, cfg.lanes)
    t = np.arange(n)[:, None]
    return codes[(t + np.arange(cfg.lanes)[None, :] * (n // cfg.lanes + 1)) % n]


def _run(cfg, words, **probs):
    got, _cycles = run_streams(Activation(cfg), {"i": words}, {"o": len(words)},
                               max_cycles=50 * len(words) + 200, **probs)
    return got["o"]


def _first_mismatch(cfg, words, got, expected):
    for k, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            x = golden.unpack_inputs(cfg, [words[k]])["x"][0].tolist()
            return (f"beat {k}: x {x} -> y {golden.unpack_outputs(cfg, [g])['y'][0].tolist()}, "
                    f"golden {golden.unpack_outputs(cfg, [e])['y'][0].tolist()}")
    return f"{len(got)} beats out, {len(expected)} expected"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rtl_matches_golden_every_code(name):
    cfg = CONFIGS[name]
    seed = 3
    x = _exhaustive_beats(cfg)
    last = np.random.default_rng(seed).integers(0, 2, len(x)).astype(bool)
    words = golden.pack_inputs(cfg, x, last)
    expected = golden.words(cfg, words)
    got = _run(cfg, words)
    assert got == expected, f"{name}, seed {seed}: {_first_mismatch(cfg, words, got, expected)}"


BACKPRESSURE = ["preset_tiny", "preset_default", "preset_sigmoid_pwl", "preset_gelu_ibert",
                "preset_exp_ibert", "table_silu", "pwl_nonuniform_tanh", "ibert_gelu_s6",
                "lut_preset_default"]


@pytest.mark.parametrize("name", BACKPRESSURE)
def test_rtl_matches_golden_with_gaps_and_backpressure(name):
    cfg = CONFIGS[name]
    seed = 17
    rng = np.random.default_rng(seed)
    beats = 300
    x = golden.random_inputs(cfg, rng, beats)["x"]
    words = golden.pack_inputs(cfg, x, rng.integers(0, 2, beats).astype(bool))
    expected = golden.words(cfg, words)
    got = _run(cfg, words, seed=seed, valid_prob=0.5, ready_prob=0.5)
    assert got == expected, f"{name}, seed {seed}: {_first_mismatch(cfg, words, got, expected)}"


def _measure(cfg, beats):
    """Stream ``beats`` random beats back to back with ``o.ready`` high. Returns the
    component's declared latency, the edges that accepted an ``i`` beat, the edges that
    transferred an ``o`` beat, the ``o`` words and the golden words (edge ``e`` is the
    ``e``-th rising clock edge of the run)."""
    dut = Activation(cfg)
    rng = np.random.default_rng(5)
    words = golden.pack_inputs(cfg, golden.random_inputs(cfg, rng, beats)["x"],
                               rng.integers(0, 2, beats).astype(bool))
    ins, outs, got = [], [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for edge in range(beats + cfg.latency + 8):
            if edge < beats:
                ctx.set(dut.i.payload.as_value(), words[edge])
            ctx.set(dut.i.valid, int(edge < beats))
            _, _, iv, ir, ov, word = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            if iv and ir:
                ins.append(edge)
            if ov:
                outs.append(edge)
                got.append(word)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return dut.latency, ins, outs, got, golden.words(cfg, words)


LATENCY = {"preset_tiny": 2, "preset_default": 3, "preset_tanh_pwl": 4,
           "preset_gelu_ibert": 7, "preset_exp_ibert": 7, "pwl_two": 4, "pwl_shift0": 3}


@pytest.mark.parametrize("name", sorted(LATENCY))
def test_latency_and_throughput_as_declared(name):
    cfg = CONFIGS[name]
    declared, ins, outs, got, expected = _measure(cfg, 1)
    assert declared == cfg.latency == LATENCY[name]
    assert outs[0] - ins[0] == cfg.latency, (ins, outs)
    beats = 24
    _, ins, outs, got, expected = _measure(cfg, beats)
    assert ins == list(range(beats)), "i.ready fell while o was not stalled"
    assert outs == list(range(cfg.latency, cfg.latency + beats)), "o has gaps"
    assert got == expected


def test_latency_is_the_same_for_every_preset_of_a_backend():
    # latency depends on the back-end (and PWL spacing) only, never on formats or constants
    for cfg in CONFIGS.values():
        want = {"table": 2, "ibert": 7}.get(cfg.backend) or \
            (3 if cfg.spacing == "uniform" else 4)
        assert cfg.latency == want, cfg


PRODUCTS = sorted(n for n, c in CONFIGS.items() if c.backend != "table")


@pytest.mark.parametrize("name", PRODUCTS)
def test_dsp_setting_decides_whether_products_are_multiplies(name):
    """``dsp=True``: one ``$mul`` per product and lane, for yosys to map to DSPs (PWL: 1,
    none when the offset is a constant 0 (one segment per code); I-BERT: 3);
    ``dsp=False``: none, every product is shifted partial sums."""
    cfg = CONFIGS[name]
    if cfg.backend == "pwl":
        per_lane = int(cfg.pwl.uniform_shift != 0)
    else:
        per_lane = 3
    for dsp, want in ((True, per_lane * cfg.lanes), (False, 0)):
        text = rtlil.convert(Activation(replace(cfg, dsp=dsp)))
        assert text.count("cell $mul ") == want, (name, dsp)


def test_table_is_a_rom_with_one_read_port_per_lane():
    cfg = EXTRA["table_silu"]      # lanes=3
    text = rtlil.convert(Activation(cfg))
    assert text.count("cell $memrd_v2") == 3
    assert "cell $memwr" not in text
    assert text.count("cell $meminit_v2") == 1


IBERT_EXP = sorted(n for n, c in CONFIGS.items() if c.backend == "ibert" and c.function == "exp")


@pytest.mark.parametrize("name", IBERT_EXP)
def test_ibert_exp_divider_is_exact_over_the_dividend_range(name):
    # q = |xc| // |x0_int| is a multiply and a shift in the RTL: the constants are
    # floor_div_magic's, exact for every dividend below 2**dividend_bits, and that range holds
    # every clamped |x| of the config's codes
    cfg = CONFIGS[name]
    poly = cfg.ibert["poly"]
    div = ibert_exp_divider(poly)
    d = -poly.x0_int
    assert div["divisor"] == d
    assert div["dividend_bits"] == (poly.n * d).bit_length()
    assert (div["mult"], div["shift"]) == approx.floor_div_magic(d, div["dividend_bits"])
    u = np.arange(1 << div["dividend_bits"], dtype=object)
    assert ((u * div["mult"]) >> div["shift"] == u // d).all()
    codes = np.array(list(cfg.codes), np.int64)
    clamped = -np.maximum(np.minimum(codes, 0), poly.n * poly.x0_int)
    assert 0 <= clamped.min() and clamped.max() < 1 << div["dividend_bits"]


# -- cocotb: the emitted Verilog on Verilator (and Icarus where installed) -------------------

SPEC = REGISTRY["activation"]
BEATS = 150


def _check_cocotb(result, config):
    """Scoreboards clean, figures exact, and the RTL's error over every input code is the
    golden model's error report (the RTL equals the model, so must its error)."""
    cases = result.result["testcases"]
    for name in ("exhaustive", "random_traffic", "reset_midstream"):
        assert cases[name]["mismatches"] == 0
    assert cases["exhaustive"]["codes"] == 1 << config.in_fmt.width
    assert cases["throughput"]["beats_per_cycle"] == 1
    assert cases["throughput"]["elements_per_cycle"] == config.lanes
    assert cases["latency"]["measured"] == [config.latency] * 4
    assert cases["latency"]["burst"] == [config.latency]
    assert cases["reset_midstream"]["in_flight"] > 0 and cases["reset_midstream"]["stale"] == 0
    got, want = cases["exhaustive"]["errors"], golden.errors(config)
    assert got["inputs"] == want["inputs"]
    for key in ("max_abs", "mean_abs", "mean"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)
    assert (got["code_max"], got["code_mismatches"]) == (want["code_max"],
                                                         want["code_mismatches"])


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_verilator_preset(preset, tmp_path):
    """exhaustive, random_traffic, throughput, latency, reset_midstream on one Verilator
    build per preset (each about 10-15 s, most of it the build)."""
    result = simulate_preset(SPEC, preset, tmp_path, simulator="verilator", beats=BEATS)
    _check_cocotb(result, SPEC.presets[preset])


@pytest.mark.cocotb
@needs_icarus
def test_icarus_tiny(tmp_path):
    result = simulate_preset(SPEC, "tiny", tmp_path, simulator="icarus", beats=60)
    _check_cocotb(result, SPEC.presets["tiny"])


@pytest.mark.cocotb
def test_user_inputs_and_cli(tmp_path, monkeypatch, capsys):
    """A flat x of an odd length (padded to whole beats of 2 lanes) and a (beats, lanes) x,
    through simulate() and ``accelgen sim --inputs --outputs``: y has x's shape, equals the
    golden model, and the recorded error against float64 is the golden model's."""
    from accelgen.cli import main
    config = SPEC.presets["default"]
    assert config.lanes == 2
    rng = np.random.default_rng(SEED)
    flat = rng.integers(config.in_fmt.min, config.in_fmt.max + 1, 37)
    np.savez(tmp_path / "flat.npz", x=flat)
    result = simulate_passing(SPEC, config, preset="default", inputs=tmp_path / "flat.npz",
                              outputs=tmp_path / "flat_out.npz",
                              build_root=tmp_path / "build" / "sim")
    assert list(result.testcases) == default_testcases(SPEC) + ["user_inputs"]
    user = result.result["testcases"]["user_inputs"]
    assert (user["check"], user["elements"], user["beats"]) == ("passed", 37, 19)
    errors_like_golden(user["errors"], golden.errors(config, flat))
    with np.load(tmp_path / "flat_out.npz") as out:
        np.testing.assert_array_equal(out["y"], golden.activation(config, flat))

    monkeypatch.chdir(tmp_path)
    grid = rng.integers(config.in_fmt.min, config.in_fmt.max + 1, (9, 2))
    np.savez(tmp_path / "grid.npz", x=grid)
    argv = ["sim", "activation", "--inputs", "grid.npz", "--outputs", "grid_out.npz",
            "--seed", "3"]
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["testcases"] == {"user_inputs": True}
    assert data["user_inputs"]["check"] == "passed"
    errors_like_golden(data["user_inputs"]["errors"], golden.errors(config, grid.ravel()))
    with np.load(tmp_path / "grid_out.npz") as out:
        assert out["y"].shape == (9, 2)
        np.testing.assert_array_equal(out["y"], golden.activation(config, grid))
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert re.search(r"^error vs float64: max \d+\.\d\d LSB, mean \d+\.\d\d LSB, bias "
                     r"-?\d+\.\d\d LSB$", text, re.M), text


@pytest.mark.cocotb
def test_testbench_catches_wrong_rtl(tmp_path):
    """Verilog of GELU with the manifest of SiLU (same ports): every scoreboard must fail,
    with the seed in the message; the true pairing passes."""
    real = SPEC.presets["tiny"]
    false_manifest_is_caught(SPEC, real, replace(real, function="silu"), tmp_path,
                             ["exhaustive", "random_traffic", "reset_midstream"],
                             "mismatches in every input code")


# -- FPGA: yosys / nextpnr builds ------------------------------------------------------------
# (the self-check harness in the Amaranth simulator, for every one-stream block:
# tests/test_fpga.py)

@pytest.mark.fpga
def test_build_tiny_icebreaker(tmp_path):
    from accelgen.fpga.flow import build
    r = build(SPEC, SPEC.presets["tiny"], "icebreaker", tmp_path, preset="tiny", beats=400,
              seed=2, quick=True)
    check_selfchecked_build(r)
    assert r.resources["BRAM"][0] > 0


@pytest.mark.fpga
@pytest.mark.parametrize("family, dsp_cell", [("ecp5", "MULT18X18D"), ("ice40", "SB_MAC16")])
def test_without_dsp_maps_no_dsp_block(tmp_path, family, dsp_cell):
    """``dsp=False`` keeps the PWL and I-BERT products off the DSP blocks: the same design
    with ``dsp=True`` takes at least one per lane."""
    from accelgen.fpga.flow import synth
    for preset in ("default", "gelu_ibert"):
        cfg = SPEC.presets[preset]
        with_dsp = synth(SPEC, cfg, family, tmp_path / f"{preset}-dsp", preset=preset)
        without = synth(SPEC, replace(cfg, dsp=False), family, tmp_path / f"{preset}-lut",
                        preset=preset)
        assert with_dsp.resources["cells"].get(dsp_cell, 0) >= cfg.lanes, preset
        assert without.resources["cells"].get(dsp_cell, 0) == 0, preset
        assert without.resources["DSP"] == 0 and without.resources["LUT4"] > 0
