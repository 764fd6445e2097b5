"""The block contract: every registry entry provides what the generic layers use, and the
generic layers (runner, CLI, FPGA flow, reports, emission, benches) name no block."""

import re
from pathlib import Path

import pytest

from accelgen.generators.base import Config, RunOption
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.golden.protocol import (ApproxGoldenModel, GoldenModel,
                                          RunOptionsGoldenModel, StreamGoldenModel)

ROOT = Path(__file__).resolve().parent.parent / "accelgen"

#: modules that serve every block: none of them may name one (docstrings and comments
#: included, so a new block never has to edit them)
GENERIC = ["cli.py", "tools.py", "numerics.py", "outputs.py", "generators/base.py",
           "generators/emit.py", "sim/runner.py", "sim/simulators.py", "sim/inputs.py",
           "sim/report.py", "sim/payload.py", "sim/pysim.py", "sim/golden/protocol.py",
           "sim/cocotb/bench.py", "sim/cocotb/streams.py", "sim/cocotb/manifest.py",
           "fpga/flow.py", "fpga/boards.py", "fpga/harness.py", "fpga/report.py",
           "fpga/family.py", "explore/__init__.py", "explore/space.py", "explore/metrics.py",
           "explore/store.py", "explore/engine.py", "explore/report.py", "explore/sweep.py",
           "explore/progress.py", "explore/estimate.py", "model/__init__.py", "model/graph.py",
           "model/lower.py", "model/execute.py", "model/host.py", "model/reference.py",
           "model/run.py", "model/examples.py", "model/regions.py", "sim/golden/ops.py",
           "sim/cocotb/replay.py", "formal/__init__.py", "formal/harness.py",
           "formal/prove.py", "hdl/common/formal.py", "faults/__init__.py", "faults/sites.py",
           "faults/campaign.py", "faults/harden.py", "faults/area.py", "sim/cocotb/inject.py"]

BLOCK_NAME = re.compile(r"\b(" + "|".join(map(re.escape, REGISTRY)) + r")\b")


def _generic_files():
    return [ROOT / name for name in GENERIC]


def block_names_in(text):
    """``[(line number, line)]`` of ``text`` that name a registered block as a word."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if BLOCK_NAME.search(line)]


@pytest.mark.parametrize("path", _generic_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_generic_module_names_no_block(path):
    hits = block_names_in(path.read_text())
    assert not hits, f"{path.relative_to(ROOT)} names a block: {hits[:5]}"


def test_block_name_check_can_fail():
    assert block_names_in('x = 1\nif spec.name == "softmax":\n') == [
        (2, 'if spec.name == "softmax":')]
    assert block_names_in("untimed_mac16 SB_MAC16 MACs/cycle systolic_like") == []


@pytest.mark.parametrize("name", list(REGISTRY))
def test_registry_entry_is_complete(name):
    spec = REGISTRY[name]
    assert spec.name == name
    assert issubclass(spec.config_cls, Config)
    assert {"tiny", "default"} <= set(spec.presets)
    assert all(isinstance(c, spec.config_cls) for c in spec.presets.values())
    assert all(isinstance(o, RunOption) for o in spec.run_options)
    if spec.approximates:
        assert set(spec.error_bounds) <= set(spec.presets)
    for field in (spec.harness_rare or {}):
        assert field in {f.name for f in spec.presets["default"].input_fields}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_golden_model_implements_the_protocol(name):
    spec = REGISTRY[name]
    golden = spec.golden_model()
    assert isinstance(golden, GoldenModel), f"{spec.golden} lacks part of GoldenModel"
    assert set(golden.REQUIRED) <= set(golden.ARGUMENTS)
    if spec.approximates:
        assert isinstance(golden, ApproxGoldenModel)
    if spec.run_options:
        assert isinstance(golden, RunOptionsGoldenModel)
    from accelgen.fpga.harness import SelfCheckHarness
    if issubclass(spec.harness_class(), SelfCheckHarness):
        assert isinstance(golden, StreamGoldenModel)


def test_protocol_check_can_fail():
    class Incomplete:
        ARGUMENTS = ("x",)

        def check_arrays(self, config, *, strict=True, **arrays):
            pass
    assert not isinstance(Incomplete(), GoldenModel)     # no REQUIRED
    assert not isinstance(Incomplete(), StreamGoldenModel)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_testbench_testcases_are_its_cocotb_tests(name):
    spec = REGISTRY[name]
    module = spec.testbench_module()
    found = [n for n, v in vars(module).items() if type(v).__name__ == "TestGenerator"]
    assert sorted(found) == sorted(module.TESTCASES), (found, module.TESTCASES)
    assert spec.testcases == tuple(module.TESTCASES)
    assert len(set(spec.testcases)) == len(spec.testcases)
    assert "user_inputs" in spec.testcases
    for option in spec.run_options:
        assert option.testcase is None or option.testcase in spec.testcases


@pytest.mark.parametrize("name", list(REGISTRY))
def test_unknown_run_option_refused(name):
    spec = REGISTRY[name]
    with pytest.raises(ConfigError, match=rf"^--bogus: not allowed for block {name}; it "
                                          r"applies to no block$"):
        spec.check_run_options(spec.presets["tiny"], {"bogus": 1})
    assert spec.check_run_options(spec.presets["tiny"], {"bogus": None}) == {}
