"""The one list of what accelgen can build. The CLI, the runner, the FPGA flow, the reports
and the tests all read it; none of them names a block.

A block family is its config module (``generators/<block>.py``: config class, presets, error
bounds), its Amaranth component (``hdl/<block>``), its golden model (``sim/golden/<block>.py``,
implementing :class:`~accelgen.sim.golden.protocol.GoldenModel`), its cocotb testbench
(``sim/cocotb/tb_<block>.py`` with ``TESTCASES``), its FPGA self-check harness, and ONE entry
below. Hardware, golden models, testbenches and harnesses are named by import path and loaded
on first use, so listing blocks and validating configs never imports Amaranth or cocotb.
"""

import importlib
from dataclasses import dataclass

from .activation import (ERROR_BOUNDS as ACTIVATION_BOUNDS, PRESETS as ACTIVATION_PRESETS,
                         PROOF as ACTIVATION_PROOF, ActivationConfig)
from .base import ConfigError, ProofContract, RunOption, close_matches, resolve_config
from .cast import PRESETS as CAST_PRESETS, PROOF as CAST_PROOF, CastConfig
from .mac import ERROR_BOUNDS as MAC_BOUNDS, PRESETS as MAC_PRESETS, PROOF as MAC_PROOF, MACConfig
from .softmax import (ERROR_BOUNDS as SOFTMAX_BOUNDS, PRESETS as SOFTMAX_PRESETS,
                      PROOF as SOFTMAX_PROOF, SoftmaxConfig)
from .pim import PRESETS as PIM_PRESETS, PROOF as PIM_PROOF, PimConfig
from .systolic import PRESETS as SYSTOLIC_PRESETS, PROOF as SYSTOLIC_PROOF, SystolicConfig

__all__ = ["GeneratorSpec", "REGISTRY", "get_spec"]


def _load(path):
    """``"module:attr"`` → the attribute; ``"module"`` → the module."""
    module, _, attr = path.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything the generic layers need to know about one block family.

    Members
    -------
    name : str
        The block's one identifier (module names, CLI argument, top-level Verilog name).
    summary : str
        One line for ``accelgen list``.
    config_cls : type
        Its frozen ``Config`` dataclass.
    presets : dict
        Named configs; always has ``"tiny"`` and ``"default"``.
    component : str
        ``"module:Class"`` of the Amaranth component; called with the config.
    golden : str
        Module of the golden model; it implements
        :class:`~accelgen.sim.golden.protocol.GoldenModel` (blocks with ``error_bounds``
        also :class:`~accelgen.sim.golden.protocol.ApproxGoldenModel`), which a test checks
        for every entry.
    testbench : str
        Module of the cocotb testbench; its ``TESTCASES`` tuple names its ``@cocotb.test``
        functions (a test checks that they agree).
    harness : str
        ``"module:Class"`` of the FPGA self-check harness (an
        :class:`~accelgen.fpga.harness.Harness`, called as ``cls(spec, config, *, beats=...,
        seed=...)``).
    run_options : tuple of RunOption
        The block's own options of ``accelgen sim`` (e.g. ``--gemm``); the golden model's
        ``check_run_options(config, options, arrays)`` validates them.
    error_bounds : dict or None
        ``{preset: {statistic: bound}}`` for approximating blocks (``accelgen show
        --errors``); None for blocks that compute exactly.
    model_ops : str or None
        Module of the block's mapping of model operations (``accelgen run``).
    proof : ProofContract or None
        What ``accelgen prove`` checks beyond every stream's rules (default: nothing more).
    protections : dict
        The block's own soft-error protections, config settings rather than netlist
        hardening: ``{label: {setting: value}}`` over any config (e.g. a residue check of
        the accumulators). ``benchmarks/faults.py`` measures each next to the block-neutral
        ones of :mod:`accelgen.faults.harden`.
    harness_rare : dict
        One-bit input fields the one-stream harness makes rarer (``{field: extra_bits}``: the
        bit is ANDed with that many more random bits), e.g. softmax's ``last`` so that rows
        are ~16 elements long rather than ~2.
    """
    name: str
    summary: str
    config_cls: type
    presets: dict
    component: str
    golden: str
    testbench: str
    harness: str
    run_options: tuple = ()
    error_bounds: dict = None
    harness_rare: dict = None
    model_ops: str = None
    proof: ProofContract = None
    protections: dict = None

    def preset(self, name):
        if name not in self.presets:
            raise ConfigError(f"--preset: {name!r} is not a preset of {self.name}; allowed are "
                              f"{', '.join(self.presets)}{close_matches(name, self.presets)}")
        return self.presets[name]

    def resolve(self, preset="default", *, config_file=None, sets=(), values=None,
                allow_large=False):
        """The config of ``preset``, then the ``--config`` file, then ``--set`` items, then
        ``values`` (``{dotted key: value}``), within
        :data:`~accelgen.generators.base.LIMITS` unless ``allow_large``."""
        return resolve_config(self.config_cls, self.preset(preset), config_file=config_file,
                              sets=sets, values=values, allow_large=allow_large)

    def build(self, config):
        """Elaborate-ready Amaranth component for ``config``."""
        return _load(self.component)(config)

    def golden_model(self):
        return _load(self.golden)

    def testbench_module(self):
        """The cocotb testbench module (imports cocotb)."""
        return _load(self.testbench)

    @property
    def testcases(self):
        """The testbench's ``TESTCASES``: all but ``user_inputs`` run by default,
        ``user_inputs`` runs when inputs are given."""
        return tuple(self.testbench_module().TESTCASES)

    def model_report(self, config, options):
        """``(data, lines)`` of the analytic answer to the ``show`` options given (checked
        here, as ``accelgen sim`` would, but without its simulation-cost limit)."""
        checked = self.check_run_options(config, options, allow_large=True)
        return self.golden_model().model_report(config, checked)

    def model_ops_module(self):
        """The block's :attr:`model_ops` module, or None."""
        return _load(self.model_ops) if self.model_ops else None

    def harness_class(self):
        return _load(self.harness)

    @property
    def approximates(self):
        """Whether the block approximates a real function (has error reports)."""
        return self.error_bounds is not None

    def check_run_options(self, config, options, arrays=None, *, allow_large=False):
        """Validate the block's run options (``{name: value}``, None values dropped) for
        ``config`` (and the user's ``arrays`` when given), and what they would cost to
        simulate against :data:`~accelgen.generators.base.LIMITS` unless ``allow_large``;
        returns the checked values the testbench receives. :class:`ConfigError` names the
        option."""
        options = {k: v for k, v in (options or {}).items() if v is not None}
        own = {o.name for o in self.run_options}
        for name in options:
            if name not in own:
                takers = [s.name for s in REGISTRY.values()
                          if name in {o.name for o in s.run_options}]
                raise ConfigError(f"--{name}: not allowed for block {self.name}; it applies to "
                                  f"{', '.join(takers) or 'no block'}")
        if not own:
            return {}
        return self.golden_model().check_run_options(config, options, arrays,
                                                     allow_large=allow_large)


_ONE_STREAM_HARNESS = "accelgen.fpga.harness:SelfCheckHarness"

REGISTRY = {
    "mac": GeneratorSpec(
        name="mac",
        summary="mixed-precision SIMD multiply-accumulate (INT8/4/2 Bit Fusion; FP8/FP6/FP4, "
                "BF16, posit, OCP MX with exact or FP32 accumulation)",
        config_cls=MACConfig, presets=MAC_PRESETS, proof=MAC_PROOF,
        protections={"residue": {"acc_check": "residue"}},
        component="accelgen.hdl.mac:MAC", golden="accelgen.sim.golden.mac",
        testbench="accelgen.sim.cocotb.tb_mac", harness=_ONE_STREAM_HARNESS,
        error_bounds=MAC_BOUNDS),
    "systolic": GeneratorSpec(
        name="systolic",
        summary="systolic GEMM engine (R x C, output/weight-stationary, int8/int4, requant)",
        config_cls=SystolicConfig, presets=SYSTOLIC_PRESETS, proof=SYSTOLIC_PROOF,
        protections={"abft": {"abft": True}},
        component="accelgen.hdl.systolic:Systolic", golden="accelgen.sim.golden.systolic",
        testbench="accelgen.sim.cocotb.tb_systolic",
        harness="accelgen.fpga.harness_systolic:SystolicHarness",
        run_options=(
            RunOption("gemm", "MxKxN", "run one GEMM of this shape at full rate and report "
                      "cycles and utilization (the gemm testcase only; accelgen show: the "
                      "analytic cycle model's answer, no simulation)", testcase="gemm",
                      show=True),
            RunOption("dataflow", "os|ws", "dataflow of --gemm and --inputs (default: the "
                      "first built)", show=True)),
        model_ops="accelgen.sim.golden.systolic_ops"),
    "activation": GeneratorSpec(
        name="activation",
        summary="elementwise GELU/SiLU/sigmoid/tanh/exp/reciprocal/rsqrt (table, PWL, I-BERT)",
        config_cls=ActivationConfig, presets=ACTIVATION_PRESETS, proof=ACTIVATION_PROOF,
        component="accelgen.hdl.activation:Activation", golden="accelgen.sim.golden.activation",
        testbench="accelgen.sim.cocotb.tb_activation", harness=_ONE_STREAM_HARNESS,
        error_bounds=ACTIVATION_BOUNDS, model_ops="accelgen.sim.golden.activation_ops"),
    "softmax": GeneratorSpec(
        name="softmax",
        summary="row-wise streaming softmax (base-2 online normalization, int8/int16 logits)",
        config_cls=SoftmaxConfig, presets=SOFTMAX_PRESETS, proof=SOFTMAX_PROOF,
        component="accelgen.hdl.softmax:Softmax", golden="accelgen.sim.golden.softmax",
        testbench="accelgen.sim.cocotb.tb_softmax", harness=_ONE_STREAM_HARNESS,
        error_bounds=SOFTMAX_BOUNDS, harness_rare={"last": 4, "mask": 2},
        model_ops="accelgen.sim.golden.softmax_ops"),
    "cast": GeneratorSpec(
        name="cast",
        summary="number-format converter: FP32/BF16 to FP8/FP6/FP4/BF16/FP16/posit (RNE, "
                "saturating or not)",
        config_cls=CastConfig, presets=CAST_PRESETS, proof=CAST_PROOF,
        component="accelgen.hdl.cast:Cast", golden="accelgen.sim.golden.cast",
        testbench="accelgen.sim.cocotb.tb_cast", harness=_ONE_STREAM_HARNESS),
    "pim": GeneratorSpec(
        name="pim",
        summary="processing-in-memory DRAM channel: bank controller (timing rules, refresh), "
                "bank model with per-bank MAC units, GEMV",
        config_cls=PimConfig, presets=PIM_PRESETS, proof=PIM_PROOF,
        component="accelgen.hdl.pim:Pim", golden="accelgen.sim.golden.pim",
        testbench="accelgen.sim.cocotb.tb_pim", harness="accelgen.fpga.harness_pim:PimHarness",
        run_options=(
            RunOption("gemv", "NxK", "run one GEMV y = W x of this shape at full rate and "
                      "report cycles, MAC efficiency, refreshes and timing violations (the "
                      "gemv testcase only; accelgen show: the analytic cycle model's answer, "
                      "no simulation)", testcase="gemv", show=True),
            RunOption("mode", "plain|overlap", "GEMV schedule of --gemv and --inputs: plain "
                      "(open, MAC, close each row) or overlap (the next row opens in the "
                      "second row buffer; default plain)", show=True))),
}


def get_spec(block):
    if block not in REGISTRY:
        raise ConfigError(f"block: {block!r} is not a known block; allowed are "
                          f"{', '.join(REGISTRY)}{close_matches(block, REGISTRY)}")
    return REGISTRY[block]
