"""The CLI as a careless and a hostile user meet it: random settings, presets, options and input
files for every block. Whatever comes in, ``accelgen`` either does its job (a valid config
elaborates and emits) or exits 2 with one line on stderr and nothing written — never a
traceback, never a hang. The simulator itself is not started: ``run_emitted`` is replaced by a
stand-in once every check has passed, so the fuzzer covers validation, not RTL."""

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelgen import cli
from accelgen.generators.registry import REGISTRY

#: a case that runs longer than this is a hang
CASE_SECONDS = 60

HOSTILE = [None, True, False, 0, 1, -1, 2, 3, 7, 8, 16, 33, 65, 1000, 10 ** 9, 2 ** 63,
           1.0, 0.5, -0.0, 1e-300, 5e-324, 1e300, math.inf, -math.inf, math.nan, "", "x",
           "s8", "s08", "u4", "os", "ws", "pwl", "table", "gelu", [], [1], ["s8s8"],
           ["s8s8", "s8s8"], [{}], {}, {"a": 1}, [[1]]]


def toml_value(value):
    """``value`` as TOML text for ``--set key=value`` (None → a bare word TOML cannot read,
    which the CLI takes as a string)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _field_values(spec):
    """Per setting: every value the presets use."""
    out = {}
    for config in spec.presets.values():
        for key, value in config.to_dict().items():
            out.setdefault(key, [])
            if value not in out[key]:
                out[key].append(value)
    return out


FIELDS = {name: _field_values(spec) for name, spec in REGISTRY.items()}
#: keep elaboration quick: configs past these sizes are only validated (show), not emitted
SMALL = {"rows": 4, "cols": 4, "lanes": 4, "n_max": 64, "k_max": 64, "acc_depth": 64}


@st.composite
def settings_argv(draw):
    block = draw(st.sampled_from(sorted(REGISTRY) * 4 + ["mca", ""]))
    spec = REGISTRY.get(block)
    presets = list(spec.presets) if spec else ["default"]
    preset = draw(st.sampled_from(presets + ["tinny"]) if draw(st.booleans()) else
                  st.just("tiny"))
    sets = []
    if spec:
        fields = FIELDS[block]
        own = spec.presets[preset].to_dict() if preset in spec.presets else {}
        for key in draw(st.lists(st.sampled_from(sorted(fields) + ["bogus"]), max_size=4,
                                 unique=True)):
            usual = st.sampled_from(fields.get(key, HOSTILE))
            # the preset's own value too: other presets' values often clash with the rest of
            # this preset (a float mode list on an int8 preset's accumulator width)
            mine = [st.just(own[key])] if own.get(key) is not None else []
            value = draw(st.one_of(usual, usual, *mine, st.sampled_from(HOSTILE)))
            sets.append(f"{key}={toml_value(value)}")
    if draw(st.integers(0, 19)) == 0:
        sets.append(draw(st.sampled_from(["lanes", "=3", "lanes==3", "a.b=1", "lanes=[[[["])))
    return block, preset, sets


def _small(config):
    data = config.to_dict()
    return all(not isinstance(data.get(k), int) or data[k] <= v for k, v in SMALL.items())


class _Simulated(Exception):
    """Raised by the stand-in simulator: every check before the simulation passed."""


def _run(argv, capsys):
    """``(exit status, stdout, stderr)``; a traceback or a hang fails the test."""
    def hang(signum, frame):
        raise TimeoutError(f"accelgen {' '.join(argv)} ran longer than {CASE_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(CASE_SECONDS)
    try:
        code = cli.main(list(argv))
    except _Simulated:
        code = "simulated"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean_refusal(argv, code, out, err, out_dir):
    assert code == 2, (argv, code, err[-2000:])
    assert out == "", argv
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("accelgen: error: "), (argv, err[-2000:])
    assert "Traceback" not in err
    assert out_dir is None or not Path(out_dir).exists(), argv


@pytest.mark.slow
def test_fuzz_show_and_emit(tmp_path_factory, capsys):
    """>= 600 random settings through ``show`` and (small valid configs) ``emit``."""
    seen = {"valid": 0, "refused": 0, "emitted": 0}

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(settings_argv())
    def case(drawn):
        block, preset, sets = drawn
        args = [block, "--preset", preset, *[x for s in sets for x in ("--set", s)]]
        code, out, err = _run(["show", *args, "--json"], capsys)
        if code != 0:
            _assert_clean_refusal(args, code, out, err, None)
            seen["refused"] += 1
            return
        seen["valid"] += 1
        config = REGISTRY[block].config_cls.from_dict(json.loads(out)["config"])
        if not _small(config):
            return
        out_dir = tmp_path_factory.mktemp("emit") / "o"
        code, out, err = _run(["emit", *args, "-o", str(out_dir)], capsys)
        assert code == 0, (args, err[-2000:])
        assert (out_dir / f"{block}.v").stat().st_size > 0
        seen["emitted"] += 1

    case()
    assert seen["valid"] + seen["refused"] >= 600
    assert seen["valid"] >= 100 and seen["refused"] >= 100 and seen["emitted"] >= 50, seen


def _random_array(draw, names):
    name = draw(st.sampled_from(names + ["junk"]))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    kind = draw(st.sampled_from(["int64", "uint64", "int8", "bool", "float64", "huge"]))
    if kind == "huge":
        arr = np.full(shape, 2 ** 63 + 5, np.uint64)
    else:
        arr = np.asarray(draw(st.integers(-300, 300)) * np.ones(shape)).astype(kind)
    return name, arr


def _valid_inputs(block):
    """A valid inputs file's arrays for the ``tiny`` preset of ``block``: the golden model's
    own encoder accepts them (built from its ``REQUIRED`` names and the shapes the block's
    ``check_arrays`` asks for)."""
    config = REGISTRY[block].presets["tiny"]
    shapes = {"mac": {"a": (3, config.to_dict().get("lanes", 1), 1),
                      "b": (3, config.to_dict().get("lanes", 1), 1)},
              "systolic": {"a": (3, 2), "b": (2, 2)},
              "activation": {"x": (5,)},
              "softmax": {"x": (2, 4)}}.get(block, {})
    return {name: np.ones(shape, np.int64) for name, shape in shapes.items()}


@st.composite
def inputs_case(draw):
    block = draw(st.sampled_from(sorted(REGISTRY)))
    names = list(REGISTRY[block].golden_model().ARGUMENTS)
    arrays = _valid_inputs(block) if draw(st.booleans()) else {}
    arrays.update(_random_array(draw, names) for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))))
    layout = draw(st.sampled_from(["npz"] * 6 + ["text", "directory", "missing"]))
    outputs = draw(st.sampled_from([None, "out.npz", "in.npz", "nodir/out.npz", "."]))
    return block, arrays, layout, outputs


@pytest.mark.slow
def test_fuzz_sim_inputs(tmp_path_factory, capsys, monkeypatch):
    """>= 400 random ``--inputs`` files (names, shapes, dtypes, huge values, not-an-npz,
    directories) and ``--outputs`` targets: refused in one line before any build, or handed
    to the simulator."""
    from accelgen.sim import runner

    def stand_in(*args, **kwargs):
        raise _Simulated
    monkeypatch.setattr(runner, "run_emitted", stand_in)
    seen = {"refused": 0, "simulated": 0}

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(inputs_case())
    def case(drawn):
        block, arrays, layout, outputs = drawn
        root = tmp_path_factory.mktemp("in")
        path = root / "in.npz"
        if layout == "npz":
            np.savez(path, **arrays)
        elif layout == "text":
            path.write_text("a,b\n1,2\n")
        elif layout == "directory":
            path.mkdir()
        argv = ["sim", block, "--preset", "tiny", "--inputs", str(path)]
        if outputs is not None:
            argv += ["--outputs", str(root / outputs)]
        build_root = root / "build"
        monkeypatch.setattr(runner, "DEFAULT_BUILD_ROOT", build_root)
        code, out, err = _run(argv, capsys)
        if code == "simulated":
            seen["simulated"] += 1
            return
        _assert_clean_refusal(argv, code, out, err, build_root)
        assert not (root / "out.npz").exists()
        seen["refused"] += 1

    case()
    assert seen["refused"] >= 100 and seen["simulated"] >= 10, seen
