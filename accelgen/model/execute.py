"""Run a :class:`~accelgen.model.graph.Network` step by step: mapped steps on the blocks (their
golden models, or their RTL through :func:`accelgen.sim.runner.run_words`), host steps in
numpy / onnxruntime.

::

    feeds ─► quantize (host) ─► gemm ─► ... ─► row_softmax ─► DQ ─► ArgMax (host) ─► outputs
                                 │
                 lower (lower.py) ─► block_ops.configure / plan ─► golden result
                                                       └► RTL words ─► decode == golden

Which block runs an operation kind is the registry's answer (the entry whose ``model_ops``
module lists the kind), with the config of ``hw`` (``{block: config}``; default: the
``default`` preset), adapted to each operation by the block's ``configure``. One RTL build per
distinct config, reused by every step that needs it (the runner keys builds by config digest).
In the RTL path each step's inputs are the RTL outputs of the steps before it; a step whose RTL
output differs from its golden result is recorded as a mismatch (the run goes on with the RTL's
values).
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..generators.registry import REGISTRY
from ..numerics import ConfigError
from ..tools import ToolError
from .lower import (QTensor, format_of, lower_conv, lower_elementwise, lower_gemm,
                    lower_softmax, quantize)

__all__ = ["StepResult", "Executor", "blocks_for_kinds"]


def blocks_for_kinds():
    """``{operation kind: block name}``: the first registry entry whose ``model_ops`` module
    lists the kind."""
    out = {}
    for spec in REGISTRY.values():
        module = spec.model_ops_module()
        for kind in getattr(module, "KINDS", ()):
            out.setdefault(kind, spec.name)
    return out


@dataclass
class StepResult:
    """What one step did.

    Members
    -------
    step : Step
    where : str
        ``golden``, ``rtl`` or ``host``.
    block : str or None
    configs : list of (config digest, config)
        The block configs the step's operations ran on.
    shape : tuple
        Output shape.
    cycles : int or None
        RTL: cycles of its bulk runs (first input to last output, summed over operations);
        golden: the block's analytic model.
    model_cycles : int or None
    counters : dict
        The block's own counters summed (RTL only).
    macs : int
    peak_macs_per_cycle : float or None
    mismatches : int
        RTL output codes that differ from the golden model's.
    notes : list of str
    seconds : float
        Wall time of the step (RTL: build and simulation).
    out_params : (scale, zero point) or None
        What the block's output codes stand for, when the block states it (a block with
        its own output scale); None: the model's Q parameters.
    """
    step: object
    where: str
    block: object = None
    configs: list = field(default_factory=list)
    shape: tuple = ()
    cycles: object = None
    model_cycles: object = None
    counters: dict = field(default_factory=dict)
    macs: int = 0
    peak_macs_per_cycle: object = None
    mismatches: int = 0
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    out_params: tuple = None

    @property
    def utilization(self):
        """MACs over peak MACs times cycles (GEMM steps)."""
        if not self.macs or not self.cycles or not self.peak_macs_per_cycle:
            return None
        return self.macs / (self.peak_macs_per_cycle * self.cycles)


class Executor:
    """Runs a network's steps; see the module docstring.

    Parameters
    ----------
    network : Network
    hw : dict
        ``{block name: config}`` overriding the ``default`` presets.
    sim : ``"golden"`` or ``"rtl"``
    simulator, build_root, seed : as for :func:`accelgen.sim.runner.run_words`
    progress : callable or None
        Called with one-line status messages.
    """

    def __init__(self, network, hw=None, *, sim="golden", simulator="verilator",
                 build_root=None, seed=0, progress=None):
        self.network = network
        self.kinds = blocks_for_kinds()
        self.hw = {name: REGISTRY[name].presets["default"] for name in set(self.kinds.values())}
        self.hw.update(hw or {})
        self.sim = sim
        self.simulator = simulator
        self.build_root = build_root
        self.seed = seed
        self.say = progress or (lambda message: None)
        self.env = {}
        self.own_scale = {}     # tensor -> the model's (scale, zero point, dtype) of it

    # -- tensors --------------------------------------------------------------------------

    def operand(self, op):
        """The :class:`QTensor` of :class:`~accelgen.model.graph.Operand` ``op``: what a step
        wrote there (with the scale its block gave it), or the codes of a constant or of a
        host step with the operand's own scale and zero point."""
        value = self.env.get(op.codes)
        if isinstance(value, QTensor):
            return value
        codes = value if value is not None else self.network.constants.get(op.codes)
        if codes is None:
            raise ConfigError(f"model: tensor {op.codes!r} is read before it is computed")
        return self.with_params(codes, op)

    def with_params(self, codes, op):
        """QTensor of ``codes`` with the scale and zero point ``op`` names."""
        consts = self.network.constants
        codes = np.asarray(codes)
        scale = consts[op.scale]
        zp = consts[op.zero_point] if op.zero_point else np.zeros_like(scale, dtype=codes.dtype)
        axis = None
        if np.ndim(scale):
            axis = (1 if op.axis is None else int(op.axis)) % codes.ndim
        fmt = "s32" if codes.dtype == np.int32 else format_of(codes.dtype)
        return QTensor(codes.astype(np.int64), _scalar(scale), _scalar(zp, int), fmt, axis)

    def qtensor(self, name):
        """The quantized tensor behind DQ output ``name``."""
        from .graph import Operand
        node = self.network.dequantize.get(name)
        if node is None:
            raise ConfigError(f"model: tensor {name!r} is not quantized; expected a "
                              f"DequantizeLinear output")
        return self.operand(Operand(node.input[0], node.input[1],
                                    node.input[2] if len(node.input) > 2 and node.input[2]
                                    else None, _attr_int(node, "axis", None)))

    def value(self, name):
        """The tensor ``name`` as a numpy array: floats for DQ outputs (the real values of
        our codes), the value itself otherwise (codes for quantized tensors)."""
        if name in self.network.dequantize:
            return self.qtensor(name).real().astype(np.float32)
        if name in self.env:
            value = self.env[name]
            if name in self.own_scale:
                # a block wrote these codes at its own scale; a reader of the raw tensor
                # (a layout or host node) gets them at the model's, requantized here
                scale, zp, dtype = self.own_scale[name]
                return quantize(value.real(), scale, np.asarray(zp, dtype), dtype).codes \
                    .astype(dtype)
            return value.codes.astype(_dtype(value.fmt)) if isinstance(value, QTensor) \
                else value
        if name in self.network.constants:
            return self.network.constants[name]
        raise ConfigError(f"model: tensor {name!r} is read before it is computed")

    def isolated(self, step, codes):
        """The golden result of mapped ``step`` alone, on other input codes (``{operand
        codes name: codes}``, read with the model's own scales): what the step does to
        onnxruntime's inputs, apart from the differences that reach it from earlier steps.
        Returns the output QTensor."""
        other = Executor(self.network, self.hw, sim="golden")
        for op in step.operands():
            if op.codes in codes:
                other.env[op.codes] = self.with_params(codes[op.codes], op)
        getattr(other, f"_{step.kind}")(step)
        return other.env[step.outputs[0]]

    # -- steps ----------------------------------------------------------------------------

    def run(self, feeds):
        """Run every step on ``feeds`` (``{graph input: array}``); returns ``(outputs,
        [StepResult])`` with ``outputs`` ``{graph output: array}``."""
        self.env, self.own_scale = dict(feeds), {}
        results = []
        for step in self.network.steps:
            start = time.monotonic()
            result = getattr(self, f"_{step.kind}")(step)
            result.seconds = time.monotonic() - start
            results.append(result)
        outputs = {name: self.value(name) for name in self.network.outputs}
        return outputs, results

    def _quantize(self, step):
        node = step.nodes[0]
        consts = self.network.constants
        scale = consts[node.input[1]]
        zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else \
            np.zeros((), np.uint8)
        x = self.value(node.input[0])
        self.env[node.output[0]] = quantize(x, scale, zp, zp.dtype, _attr_int(node, "axis", 1))
        return StepResult(step, "host", shape=np.shape(x))

    def _layout(self, step):
        return self._host(step)

    def _host(self, step):
        from .host import run_node
        node = step.nodes[0]
        values = [self.value(name) if name else None for name in node.input]
        outs = run_node(self.network.model, node, values)
        for name, value in zip(node.output, outs):
            self.env[name] = value
        return StepResult(step, "host", shape=np.shape(outs[0]) if outs else ())

    def _out_params(self, step):
        consts = self.network.constants
        scale = consts[step.params["out_scale"]]
        zp_name = step.params["out_zero_point"]
        zp = consts[zp_name] if zp_name else np.zeros((), np.uint8)
        if np.ndim(scale) or np.ndim(zp):
            raise ConfigError(f"model: node {step.name!r} has a per-channel output scale; "
                              f"expected a per-tensor one")
        return float(scale), int(zp), zp.dtype

    def _gemm(self, step):
        p = step.params
        out_scale, out_zp, out_dtype = self._out_params(step)
        a, b = self.operand(p["a"]), self.operand(p["b"])
        bias = None
        if p["bias"] is not None:
            bias = self.operand(p["bias"]).real()
        elif p["bias_float"]:
            bias = np.asarray(self.network.constants[p["bias_float"]], np.float64)
        elif p["bias_acc"]:         # int32 codes at the accumulator's scale s_a * s_b
            bias = self.network.constants[p["bias_acc"]] * (a.scale * np.asarray(b.scale))
        if p["conv"] is not None:
            conv = p["conv"]
            ops, shape, reshape = lower_conv(
                a, b, out_scale, out_zp, out_dtype,
                strides=conv["strides"], pads=conv["pads"], dilations=conv["dilations"],
                bias=bias, relu=p["relu"])
        else:
            ops, shape, reshape = lower_gemm(
                a, b, out_scale, out_zp, out_dtype,
                trans_a=p["trans_a"], trans_b=p["trans_b"], alpha=p["alpha"], beta=p["beta"],
                bias=bias, relu=p["relu"])
        codes, result = self._ops(step, ops, reshape)
        self.env[step.outputs[0]] = QTensor(codes, out_scale, out_zp, format_of(out_dtype))
        return result

    def _elementwise(self, step):
        out_scale, out_zp, out_dtype = self._out_params(step)
        op = lower_elementwise(self.operand(step.params["x"]), step.params["function"],
                               out_scale, out_zp, out_dtype)
        codes, result = self._ops(step, [op], lambda r: r[0])
        scale, zp = result.out_params
        self.env[step.outputs[0]] = QTensor(codes, scale, zp, format_of(out_dtype))
        return result

    def _row_softmax(self, step):
        out_scale, out_zp, out_dtype = self._out_params(step)
        op = lower_softmax(self.operand(step.params["x"]), out_scale, out_zp)
        codes, result = self._ops(step, [op], lambda r: r[0])
        scale, zp = result.out_params
        name = step.outputs[0]
        self.env[name] = QTensor(codes, scale, zp, "s8" if zp < 0 else "u8")
        if not (math.isclose(scale, out_scale, rel_tol=1e-6) and zp == out_zp):
            self.own_scale[name] = (out_scale, out_zp, out_dtype)
            result.notes.append(f"output at the block's scale {scale:.6g} (zero point {zp}); "
                                f"the model's {out_scale:.6g} ({out_zp}) for raw readers")
        return result

    def _ops(self, step, ops, reshape):
        """Configure, plan and run ``ops`` on the block of their kind; ``(codes, result)``."""
        block = self.kinds.get(ops[0].kind)
        if block is None:
            raise ConfigError(f"model: no block runs {ops[0].kind} operations (node "
                              f"{step.name!r})")
        spec = REGISTRY[block]
        module = spec.model_ops_module()
        planned = []
        for op in ops:
            config = module.configure(self.hw[block], op)
            planned.append((config, module.plan(config, op)))
        result = StepResult(step, self.sim, block=block,
                            macs=sum(op.macs for op in ops),
                            model_cycles=sum(p.model_cycles or 0 for _, p in planned),
                            notes=list(planned[0][1].notes))
        digests = {}
        for config, _ in planned:
            digests.setdefault(config.digest(), config)
        result.configs = list(digests.items())
        result.peak_macs_per_cycle = getattr(planned[0][0], "peak_macs_per_cycle", None)
        out_scale = planned[0][1].out_scale
        result.out_params = (out_scale, planned[0][1].out_zero_point)
        if self.sim == "golden":
            codes = [p.result for _, p in planned]
            result.cycles = result.model_cycles
        else:
            codes = self._rtl(step, spec, planned, result)
        out = reshape(codes)
        result.shape = out.shape
        return out, result

    def _rtl(self, step, spec, planned, result):
        """Run the plans on the RTL, one simulator process per distinct config."""
        from ..sim.runner import run_words
        by_config = {}
        for index, (config, _) in enumerate(planned):
            by_config.setdefault(config.digest(), (config, []))[1].append(index)
        codes = [None] * len(planned)
        result.cycles = 0
        for config, indices in by_config.values():
            self.say(f"{step.name}: {len(indices)} {spec.name} operation(s) on the RTL "
                     f"({config.digest()})")
            jobs = [{"words": planned[i][1].words, "expect": planned[i][1].expect,
                     "timeout": 4 * (planned[i][1].model_cycles or 0) + 10_000}
                    for i in indices]
            runs, sim = run_words(spec, config, jobs, simulator=self.simulator,
                                  seed=self.seed, build_root=self.build_root,
                                  progress=self.say)
            for i, run in zip(indices, runs):
                plan = planned[i][1]
                try:
                    got, counters = plan.decode(run["words"])
                except ValueError as error:
                    raise ToolError(self.simulator, sim.log,
                                    f"{step.name}: the RTL's output is not an answer to the "
                                    f"plan ({error})") from None
                result.mismatches += int(np.count_nonzero(got != plan.result))
                result.cycles += run["cycles"]
                for key, value in counters.items():
                    result.counters[key] = result.counters.get(key, 0) + value
                codes[i] = got
        return codes


def _scalar(value, kind=float):
    value = np.asarray(value)
    return kind(value) if value.ndim == 0 else value


def _dtype(fmt):
    return {"s8": np.int8, "u8": np.uint8}.get(fmt, np.int64)


def _attr_int(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default
