"""The cocotb runner (:mod:`accelgen.sim.runner`) and the manifest helpers, for every block:
what is refused before anything is built (simulator, testcases, inputs), which testcases run
by default, a failed build, and the module boundaries. Each block's own cocotb runs are in
its ``tests/test_<block>.py``.

Checks that are the same for every block are parametrized over the registry; those that need
one concrete block's arrays or Verilog use ``mac`` (the quickest to build).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import accelgen
from accelgen.generators.emit import emit
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.runner import default_testcases, run_emitted, simulate
from accelgen.tools import ToolError

SPEC = REGISTRY["mac"]


@pytest.mark.parametrize("block", list(REGISTRY))
def test_unknown_simulator_is_one_line_config_error(block, tmp_path):
    spec = REGISTRY[block]
    with pytest.raises(ConfigError) as info:
        simulate(spec, spec.presets["tiny"], simulator="modelsim", build_root=tmp_path)
    assert str(info.value) == ("--sim: 'modelsim' is not allowed; expected one of "
                               "'verilator', 'icarus'")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("block", list(REGISTRY))
def test_missing_icarus_is_config_error(block, tmp_path, monkeypatch):
    spec = REGISTRY[block]
    monkeypatch.setattr("accelgen.sim.simulators.icarus_available", lambda: False)
    with pytest.raises(ConfigError, match="'icarus' is not installed.*apt-get install"):
        simulate(spec, spec.presets["tiny"], simulator="icarus", build_root=tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("block", list(REGISTRY))
def test_testcase_defaults_and_unknown_testcase(block, tmp_path):
    """Every testcase of the testbench but ``user_inputs`` (each block has it, last) runs by
    default, in the testbench's order; ``user_inputs`` joins when inputs are given. A testcase
    the testbench does not have is refused before anything is built."""
    spec = REGISTRY[block]
    cases = list(spec.testcases)
    assert cases[-1] == "user_inputs" and cases.count("user_inputs") == 1
    assert default_testcases(spec) == cases[:-1]
    assert default_testcases(spec, inputs=True) == cases
    allowed = ", ".join(map(repr, cases))
    for testcases, message in ((["speed"], f"'speed' is not allowed for {block}; expected "
                                           f"one of {allowed}"),
                               ([], f"no testcase given; expected one or more of {allowed}")):
        with pytest.raises(ConfigError) as info:
            simulate(spec, spec.presets["tiny"], testcases=testcases, build_root=tmp_path / "b")
        assert str(info.value) == f"--testcase: {message}"
    assert not (tmp_path / "b").exists()


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
    # (an unknown testcase: test_testcase_defaults_and_unknown_testcase, every block)
    assert not (tmp_path / "b").exists()


@pytest.mark.cocotb
def test_build_failure_raises_tool_error_with_log(tmp_path):
    build = emit(SPEC, SPEC.presets["tiny"], tmp_path, top=SPEC.name).manifest_path
    (tmp_path / f"{SPEC.name}.v").write_text(f"module {SPEC.name}(input clk); this is not "
                                             f"verilog\n")
    with pytest.raises(ToolError, match="log: .*build.log") as info:
        run_emitted(build, simulator="verilator", testcases=["latency"])
    assert info.value.log.exists()


def test_manifest_module_stands_alone_and_runner_owns_cocotb_tools():
    """The manifest helpers import nothing of accelgen's (hosts can vendor the file), and only
    accelgen.sim.runner imports cocotb_tools."""
    code = ("import sys, runpy; runpy.run_path(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.startswith(('accelgen', 'cocotb'))))")
    path = Path(accelgen.__file__).parent / "sim" / "cocotb" / "manifest.py"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
    users = [p for p in Path(accelgen.__file__).parent.rglob("*.py")
             if "cocotb_tools" in p.read_text()]
    assert [p.name for p in users] == ["runner.py"]


def test_build_root_that_is_a_file_is_one_config_error(tmp_path):
    """A ``build_root`` below a regular file: a one-line ConfigError naming it (it once
    surfaced as NotADirectoryError from ``mkdir``), nothing written."""
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(ConfigError, match=r"^--build-root: .* is not allowed; the directory "
                                          r"cannot be created \(Not a directory\)"):
        simulate(SPEC, SPEC.presets["tiny"], build_root=blocker)
    assert blocker.read_text() == "keep" and sorted(tmp_path.iterdir()) == [blocker]
