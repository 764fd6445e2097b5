"""The one list of what accelgen can build. The CLI, the tests and the FPGA flow all read it.

Hardware and golden models are named by import path and loaded on first use, so listing blocks
and validating configs never imports Amaranth.
"""

import importlib
from dataclasses import dataclass

from .base import ConfigError, apply_overrides, close_matches, parse_set_value
from .activation import (ERROR_BOUNDS as ACTIVATION_BOUNDS, PRESETS as ACTIVATION_PRESETS,
                         ActivationConfig)
from .mac import PRESETS as MAC_PRESETS, MACConfig
from .softmax import (ERROR_BOUNDS as SOFTMAX_BOUNDS, PRESETS as SOFTMAX_PRESETS,
                      SoftmaxConfig)
from .systolic import PRESETS as SYSTOLIC_PRESETS, SystolicConfig

__all__ = ["GeneratorSpec", "REGISTRY", "get_spec", "resolve_config", "load_toml", "parse_sets"]


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything the flows need to know about one block family.

    Members
    -------
    name : str
        The block's one identifier (module names, CLI argument, top-level Verilog name).
    summary : str
    config_cls : type
        Its frozen ``Config`` dataclass.
    presets : dict
        Named configs; always has ``"tiny"`` and ``"default"``.
    component : str
        ``"module:Class"`` of the Amaranth component; called with the config.
    golden : str
        Module of the golden model. It provides ``ARGUMENTS`` (the array names ``accelgen sim
        --inputs`` accepts) and ``check_arrays(config, *, strict, **arrays)``, which raises
        ``ValueError`` for arrays the block cannot take (``strict``: also values outside
        their formats); the rest of its API is the block's
        own (its cocotb testbench and FPGA harness know it).
    testcases : tuple of str
        The cocotb testbench's testcases (``accelgen.sim.cocotb.tb_<name>``); all but
        ``user_inputs`` run by default, ``user_inputs`` runs when inputs are given.
    """
    name: str
    summary: str
    config_cls: type
    presets: dict
    component: str
    golden: str
    testcases: tuple = ("random_traffic", "random_words", "throughput", "latency",
                        "reset_midstream", "user_inputs")
    error_bounds: dict = None

    def preset(self, name):
        if name not in self.presets:
            raise ConfigError(f"--preset: {name!r} is not a preset of {self.name}; allowed are "
                              f"{', '.join(self.presets)}{close_matches(name, self.presets)}")
        return self.presets[name]

    def build(self, config):
        """Elaborate-ready Amaranth component for ``config``."""
        module, _, cls = self.component.partition(":")
        return getattr(importlib.import_module(module), cls)(config)

    def golden_model(self):
        return importlib.import_module(self.golden)


REGISTRY = {
    "mac": GeneratorSpec(
        name="mac",
        summary="mixed-precision SIMD multiply-accumulate (INT8/4/2, plain or Bit Fusion)",
        config_cls=MACConfig, presets=MAC_PRESETS,
        component="accelgen.hdl.mac:MAC", golden="accelgen.sim.golden.mac"),
    "systolic": GeneratorSpec(
        name="systolic",
        summary="systolic GEMM engine (R x C, output/weight-stationary, int8/int4, requant)",
        config_cls=SystolicConfig, presets=SYSTOLIC_PRESETS,
        component="accelgen.hdl.systolic:Systolic", golden="accelgen.sim.golden.systolic",
        testcases=("random_gemms", "errors", "reset_midcommand", "gemm", "user_inputs")),
    "activation": GeneratorSpec(
        name="activation",
        summary="elementwise GELU/SiLU/sigmoid/tanh/exp/reciprocal/rsqrt (table, PWL, I-BERT)",
        config_cls=ActivationConfig, presets=ACTIVATION_PRESETS,
        component="accelgen.hdl.activation:Activation", golden="accelgen.sim.golden.activation",
        testcases=("exhaustive", "random_traffic", "throughput", "latency", "reset_midstream",
                   "user_inputs"), error_bounds=ACTIVATION_BOUNDS),
    "softmax": GeneratorSpec(
        name="softmax",
        summary="row-wise streaming softmax (base-2 online normalization, int8/int16 logits)",
        config_cls=SoftmaxConfig, presets=SOFTMAX_PRESETS,
        component="accelgen.hdl.softmax:Softmax", golden="accelgen.sim.golden.softmax",
        testcases=("random_rows", "directed_rows", "throughput", "reset_midstream",
                   "user_inputs"), error_bounds=SOFTMAX_BOUNDS),
}


def get_spec(block):
    if block not in REGISTRY:
        raise ConfigError(f"block: {block!r} is not a known block; allowed are "
                          f"{', '.join(REGISTRY)}{close_matches(block, REGISTRY)}")
    return REGISTRY[block]


def _deep_merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_toml(path):
    """The settings table of a ``--config FILE.toml``."""
    import tomllib
    from pathlib import Path
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config: {str(path)!r} is not a readable file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config: {str(path)!r} is not valid TOML: {err}") from None


def parse_sets(items):
    """``["lanes=4", "pe.acc_width=24"]`` → ``{"lanes": 4, "pe.acc_width": 24}``."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: {item!r} is not allowed; expected key=value, "
                              f"e.g. --set lanes=4")
        out[key.strip()] = parse_set_value(value.strip())
    return out


def resolve_config(spec, *, preset="default", config_file=None, sets=()):
    """The config a command works on: ``preset``, then the ``--config`` file's settings, then
    each ``--set key=value`` (nested keys with dots). Raises :class:`ConfigError`."""
    data = spec.preset(preset).to_dict()
    if config_file:
        data = _deep_merge(data, load_toml(config_file))
    data = apply_overrides(data, parse_sets(sets))
    return spec.config_cls.from_dict(data)
