"""The one list of what accelgen can build. The CLI, the tests and the FPGA flow all read it.

Hardware and golden models are named by import path and loaded on first use, so listing blocks
and validating configs never imports Amaranth.
"""

import importlib
from dataclasses import dataclass

from .base import ConfigError, close_matches
from .mac import PRESETS as MAC_PRESETS, MACConfig

__all__ = ["GeneratorSpec", "REGISTRY", "get_spec"]


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
        Module of the golden model. It provides ``ARGUMENTS``, ``run(config, **arrays)``,
        ``words(config, in_words) -> out_words`` (payload level), ``pack_inputs``,
        ``unpack_outputs`` and ``random_inputs(config, rng, beats)``.
    """
    name: str
    summary: str
    config_cls: type
    presets: dict
    component: str
    golden: str

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
}


def get_spec(block):
    if block not in REGISTRY:
        raise ConfigError(f"block: {block!r} is not a known block; allowed are "
                          f"{', '.join(REGISTRY)}{close_matches(block, REGISTRY)}")
    return REGISTRY[block]
