"""The testbench side of the runner contract: the runner writes the ``ACCELGEN_*`` variables,
:class:`~accelgen.sim.cocotb.bench.BenchEnv` reads them back once; no simulator runs here."""

from pathlib import Path

import pytest

from accelgen.sim.cocotb.bench import BenchEnv
from accelgen.sim.runner import bench_variables


def test_runner_environment_round_trips_through_bench_env(tmp_path):
    env = bench_variables(tmp_path / "m.json", tmp_path, seed=7, beats=33,
                                inputs=tmp_path / "in.npz", outputs=tmp_path / "out.npz",
                                check=False, options={"gemm": "4x4x4", "dataflow": "ws"})
    parsed = BenchEnv.from_environ(env)
    assert parsed == BenchEnv(manifest=(tmp_path / "m.json").resolve(), seed=7, beats=33,
                              check=False, result=tmp_path / "result.json",
                              inputs=tmp_path / "in.npz",
                              outputs=(tmp_path / "out.npz").resolve(),
                              options={"gemm": "4x4x4", "dataflow": "ws"})


def test_defaults():
    parsed = BenchEnv.from_environ({"ACCELGEN_MANIFEST": "m.json"})
    assert parsed == BenchEnv(manifest=Path("m.json"))
    assert (parsed.seed, parsed.beats, parsed.check, parsed.options) == (0, 200, True, {})
    assert parsed.inputs is None and parsed.outputs is None and parsed.result is None


@pytest.mark.parametrize("text, check", [("0", False), ("false", False), ("No", False),
                                         ("1", True), ("true", True), ("YES", True),
                                         ("", True)])
def test_check_spellings(text, check):
    env = {"ACCELGEN_MANIFEST": "m.json", "ACCELGEN_CHECK": text}
    assert BenchEnv.from_environ(env).check is check


@pytest.mark.parametrize("name, value, message", [
    ("ACCELGEN_BEATS", "0", "ACCELGEN_BEATS='0' is not allowed; expected an integer >= 1"),
    ("ACCELGEN_BEATS", "many", "ACCELGEN_BEATS='many' is not allowed; expected an integer >= 1"),
    ("ACCELGEN_SEED", "-1", "ACCELGEN_SEED='-1' is not allowed; expected an integer >= 0"),
    ("ACCELGEN_CHECK", "maybe", "ACCELGEN_CHECK='maybe' is not allowed; expected 1 or 0 (or "
                                "true/false, yes/no)"),
    ("ACCELGEN_OPTIONS", "[1]", "ACCELGEN_OPTIONS='[1]' is not allowed; expected a JSON "
                                "object, e.g. {\"gemm\": \"64x64x64\"}"),
    ("ACCELGEN_OPTIONS", "{", "ACCELGEN_OPTIONS='{' is not allowed; expected a JSON object, "
                              "e.g. {\"gemm\": \"64x64x64\"}"),
])
def test_malformed_values_name_the_variable(name, value, message):
    with pytest.raises(ValueError) as err:
        BenchEnv.from_environ({"ACCELGEN_MANIFEST": "m.json", name: value})
    assert str(err.value) == message


def test_manifest_is_required():
    with pytest.raises(ValueError, match="^ACCELGEN_MANIFEST is not set"):
        BenchEnv.from_environ({})
