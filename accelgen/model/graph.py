"""Read a quantized ONNX model and cut it into steps: the operations the blocks execute, and
the nodes the host runs.

A model in onnxruntime's QDQ format holds float operators between ``DequantizeLinear`` (DQ)
and ``QuantizeLinear`` (Q) nodes; the integer meaning of an operator is "its DQ inputs, the
float operator, the Q of its output". :func:`load_network` recognizes these groups:

``gemm``         ``MatMul``, ``Gemm`` or ``Conv`` (im2col) with DQ inputs and a Q output; a
                 following ``Relu`` joins it. After ``MatMul`` a following ``Add`` of
                 a constant (the bias an exporter writes after ``MatMul``) joins it, its
                 intermediate Q/DQ pair dropped (the bias is added in the accumulator, one
                 rounding instead of two).
``elementwise``  ``Gelu``, ``Sigmoid``, ``Tanh`` with a DQ input and a Q output, and
                 subgraphs of elementwise float operators that compute GELU, SiLU, sigmoid
                 or tanh of one tensor (:mod:`accelgen.model.regions`: GELU as exporters
                 write it with ``Erf`` or ``Tanh``).
``row_softmax``  ``Softmax`` over the last axis, DQ input, Q output.
``layout``       nodes that move, select or relabel elements without arithmetic on them
                 (``Reshape``, ``Transpose``, ``Flatten``, ``Identity``, ``ArgMax``, ...): run
                 on the host, always.
``quantize``     a Q node outside a group (the network's input, or after a host node): run on
                 the host with ONNX's rounding (half to even, saturating).
``host``         any other node: refused unless ``allow_host``, then run by onnxruntime on the
                 host, in float, as the model says.

DQ nodes are views: they give the real values of a quantized tensor to whoever asks. A group
is fused only when its inner tensors are read nowhere else (graph outputs included) and every
scale and zero point it uses is a constant; otherwise its nodes stay separate.

The QOperator format names the integer operators directly: ``QLinearMatMul`` and
``QLinearConv`` are ``gemm`` steps (a ``QLinearAdd`` of a constant after ``QLinearMatMul``
joins it as the bias, as in QDQ), ``QLinearSoftmax`` a ``row_softmax`` step,
``QLinearSigmoid`` an ``elementwise`` one; other QLinear operators (``QLinearAdd`` of two
tensors, ...) are ``host`` steps.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np


from ..numerics import ConfigError
from ..sim.golden.ops import KINDS
from .regions import find_regions

__all__ = ["Network", "Step", "Operand", "load_network", "LAYOUT_OPS", "ELEMENTWISE_FUNCTIONS"]

#: ONNX operators that only move, select or relabel elements: the host runs them, always
LAYOUT_OPS = ("Identity", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Cast",
              "ArgMax", "ArrayFeatureExtractor", "Shape", "Gather", "Concat", "Slice", "Split",
              "ZipMap")
#: ONNX operator -> the elementwise function of :data:`accelgen.approx.FUNCTIONS`
ELEMENTWISE_FUNCTIONS = {"Gelu": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh",
                         "QLinearSigmoid": "sigmoid"}
QOPERATOR_OPS = ("QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger", "QLinearAdd",
                 "QGemm", "QLinearSoftmax", "QLinearSigmoid")
MAX_FILE_BYTES = 1 << 30


class Operand(NamedTuple):
    """A quantized tensor as a step reads it: the names of its codes, scale and zero point
    (None: 0), and the axis of per-channel parameters (None: ONNX's default)."""
    codes: str
    scale: str
    zero_point: object
    axis: object = None


@dataclass
class Step:
    """One step of a network, in execution order.

    Members
    -------
    name : str
        The ONNX name of its main node (its op type and index when the node has none).
    kind : str
        ``gemm``, ``elementwise``, ``row_softmax``, ``layout``, ``quantize`` or ``host``.
    op : str
        What the report shows: the ONNX op types it covers (``MatMul+Add``).
    nodes : list
        The ONNX nodes it covers, main node first.
    inputs, outputs : list of str
        Tensor names read and written.
    params : dict
        Kind-specific: ``gemm``: ``a``, ``b`` (:class:`Operand`), ``trans_a``, ``trans_b``,
        ``alpha``, ``beta``, ``relu``, ``conv`` (Conv attributes or None) and the bias as one
        of ``bias`` (a constant Operand), ``bias_float`` (a float constant's name) or
        ``bias_acc`` (int32 codes in accumulator units, QLinearConv); ``elementwise``:
        ``x``, ``function``; ``row_softmax``: ``x``; all mapped kinds: ``out_scale``,
        ``out_zero_point`` (names of the output quantization's tensors).
    """
    name: str
    kind: str
    op: str
    nodes: list
    inputs: list
    outputs: list
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.inputs:
            self.inputs = [op.codes for op in self.operands()] + \
                [self.params[k] for k in ("bias_float", "bias_acc") if self.params.get(k)]

    @property
    def mapped(self):
        """Executed by a block (rather than on the host)."""
        return self.kind in KINDS

    def operands(self):
        """The quantized operands of a mapped step."""
        return [self.params[k] for k in ("a", "b", "bias", "x")
                if isinstance(self.params.get(k), Operand)]


@dataclass
class Network:
    """A loaded model cut into :class:`Step`\\ s.

    Members
    -------
    model : onnx.ModelProto
    path : Path
    steps : list of Step
    constants : dict
        Initializer (and ``Constant`` node) name -> numpy array.
    dequantize : dict
        DQ output name -> its node (``(input, scale, zero point)`` names and ``axis``).
    inputs : dict
        Graph input name -> ``(shape, numpy dtype)``; a dimension without a value is None.
    outputs : list of str
        Graph output names.
    """
    model: object
    path: Path
    steps: list
    constants: dict
    dequantize: dict
    inputs: dict
    outputs: list

    @property
    def quantized_outputs(self):
        """The tensors (codes) the mapped steps write: the Q outputs ORT also computes."""
        return [s.outputs[0] for s in self.steps if s.mapped]

    def step_sources(self, step):
        """The computed quantized tensors (not constants) that ``step`` reads."""
        return [op.codes for op in step.operands() if op.codes not in self.constants]


def _node_name(node, index):
    return node.name or f"{node.op_type}_{index}"


def _attr(node, name, default=None):
    from onnx import helper
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _read_model(path):
    """The ModelProto of ``path``; :class:`ConfigError` naming ``model`` when it is not an
    ONNX file."""
    import onnx
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model: {str(path)!r} is not allowed; expected an existing .onnx file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(f"model: {str(path)!r} is {path.stat().st_size} bytes; at most "
                          f"{MAX_FILE_BYTES} are allowed")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as error:      # protobuf DecodeError, ValidationError, ...
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else \
            type(error).__name__
        raise ConfigError(f"model: {str(path)!r} is not a valid ONNX model ({first})") from None
    if not model.graph.node:
        raise ConfigError(f"model: {str(path)!r} has no nodes")
    return model


def _constants(model):
    from onnx import numpy_helper
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        if _attr(node, "value") is not None:
            consts[node.output[0]] = numpy_helper.to_array(_attr(node, "value"))
        for kind, dtype in kinds.items():
            if _attr(node, kind) is not None:
                consts[node.output[0]] = np.asarray(_attr(node, kind), dtype)
    return consts


def _graph_inputs(model, constants):
    from onnx import helper
    out = {}
    for value in model.graph.input:
        if value.name in constants:
            continue
        t = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        out[value.name] = (tuple(dims), helper.tensor_dtype_to_np_dtype(t.elem_type))
    return out


class _Graph:
    """Producer/consumer maps of the node list."""

    def __init__(self, nodes, outputs=()):
        self.nodes = nodes
        self.outputs = set(outputs)     # graph outputs: read outside every node
        self.producer = {}
        self.consumers = defaultdict(list)
        for node in nodes:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                if name:
                    self.consumers[name].append(node)

    def only_consumer(self, tensor, op_type):
        """The one node reading ``tensor`` when it has type ``op_type`` (and the tensor is
        not also a graph output), else None."""
        users = self.consumers.get(tensor, [])
        if tensor in self.outputs or len(users) != 1 or users[0].op_type != op_type:
            return None
        return users[0]


def _q_after(graph, node):
    """The Q node that is the only consumer of ``node``'s output, or None."""
    return graph.only_consumer(node.output[0], "QuantizeLinear")


def _dq_input(graph, name):
    producer = graph.producer.get(name)
    return producer if producer is not None and producer.op_type == "DequantizeLinear" else None


def _operand_of_dq(node):
    """The :class:`Operand` a DQ node reads."""
    return Operand(node.input[0], node.input[1],
                   node.input[2] if len(node.input) > 2 and node.input[2] else None,
                   _attr(node, "axis"))


def _dq_operand(graph, name):
    dq = _dq_input(graph, name)
    return _operand_of_dq(dq) if dq is not None else None


def _constant_params(constants, *operands):
    """Every operand's scale and zero point are constants (a block takes them as
    parameters)."""
    return all(op.scale in constants and (op.zero_point is None or op.zero_point in constants)
               for op in operands)


def _per_column(constants, name):
    """A bias constant that adds one value per output column: every axis but the last of
    length 1 (a per-row or per-element constant is not a bias)."""
    shape = np.shape(constants[name])
    return all(d == 1 for d in shape[:-1])


def _q_range(constants, q):
    """The real interval a Q node's codes cover."""
    scale = float(constants[q.input[1]])
    zp = constants[q.input[2]] if len(q.input) > 2 and q.input[2] else np.zeros((), np.uint8)
    info = np.iinfo(np.asarray(zp).dtype)
    return (info.min - int(zp)) * scale, (info.max - int(zp)) * scale


def _out_params(q):
    """``out_scale``/``out_zero_point`` names of Q node ``q``."""
    return {"out_scale": q.input[1],
            "out_zero_point": q.input[2] if len(q.input) > 2 and q.input[2] else None}


def _fold_bias(graph, constants, q):
    """``(bias operand, nodes, next Q)`` when ``q`` -> DQ -> ``Add(., DQ(constant))`` -> Q
    follows a GEMM, else None."""
    dq = graph.only_consumer(q.output[0], "DequantizeLinear")
    add = dq and graph.only_consumer(dq.output[0], "Add")
    if add is None:
        return None
    other = [n for n in add.input if n != dq.output[0]]
    bias = _dq_operand(graph, other[0]) if len(other) == 1 else None
    q2 = _q_after(graph, add)
    if bias is None or q2 is None or bias.codes not in constants or \
            not _constant_params(constants, bias) or not _per_column(constants, bias.codes):
        return None
    return bias, [dq, add, q2], q2


def _fold_relu(graph, constants, q):
    """``(nodes, next Q)`` when ``q`` -> DQ -> Relu -> Q and ``q`` saturates nowhere inside
    the second Q's range (the fused step rounds once, to the second Q), else None."""
    dq = graph.only_consumer(q.output[0], "DequantizeLinear")
    relu = dq and graph.only_consumer(dq.output[0], "Relu")
    q2 = relu and _q_after(graph, relu)
    if q2 is None or any(n not in constants for n in q.input[1:] + q2.input[1:] if n):
        return None
    if _q_range(constants, q)[1] < _q_range(constants, q2)[1] * (1 - 1e-6):
        return None
    return [dq, relu, q2], q2


def _conv_params(node, weights):
    """Conv attributes, or None for what the im2col lowering does not take (groups,
    auto_pad, other than 2-D, weights that are not a constant)."""
    conv = {"strides": tuple(_attr(node, "strides", (1, 1))),
            "pads": tuple(_attr(node, "pads", (0, 0, 0, 0))),
            "dilations": tuple(_attr(node, "dilations", (1, 1)))}
    if weights is None or np.ndim(weights) != 4 or int(_attr(node, "group", 1)) != 1 or \
            _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or \
            len(conv["strides"]) != 2 or len(conv["pads"]) != 4 or len(conv["dilations"]) != 2:
        return None
    return conv


def _gemm_params(a, b, node):
    return {"a": a, "b": b, "bias": None, "bias_float": None, "bias_acc": None,
            "relu": False, "conv": None,
            "trans_a": bool(_attr(node, "transA", 0)), "trans_b": bool(_attr(node, "transB", 0)),
            "alpha": float(_attr(node, "alpha", 1.0)), "beta": float(_attr(node, "beta", 1.0))}


def _gemm_step(graph, constants, node, index):
    """The ``gemm`` step of QDQ MatMul/Gemm/Conv ``node`` (with the bias Add and Relu after
    it), or None when its inputs are not DQ outputs or its output is not quantized."""
    ins = [n for n in node.input if n]
    q = _q_after(graph, node)
    operands = [_dq_operand(graph, n) for n in ins[:2]]
    if q is None or len(ins) < 2 or None in operands or \
            not _constant_params(constants, *operands) or q.input[1] not in constants:
        return None
    params = _gemm_params(*operands, node)
    nodes, ops = [node, q], [node.op_type]
    if node.op_type == "Conv":
        params["conv"] = _conv_params(node, constants.get(operands[1].codes))
        if params["conv"] is None:
            return None
    if node.op_type in ("Gemm", "Conv") and len(ins) == 3:
        # an int32 bias through DQ, or a float constant (the quantizer leaves some biases
        # float); one value per output column
        bias = _dq_operand(graph, ins[2])
        if bias is not None and bias.codes in constants and _constant_params(constants, bias) \
                and _per_column(constants, bias.codes):
            params["bias"] = bias
        elif ins[2] in constants and _per_column(constants, ins[2]):
            params["bias_float"] = ins[2]
        else:
            return None
    elif node.op_type == "MatMul":
        fold = _fold_bias(graph, constants, q)
        if fold is not None:
            params["bias"], more, q = fold
            nodes += more
            ops.append("Add")
    relu = _fold_relu(graph, constants, q)
    if relu is not None:
        more, q = relu
        params["relu"] = True
        nodes += more
        ops.append("Relu")
    params.update(_out_params(q))
    return Step(_node_name(node, index), "gemm", "+".join(ops), nodes, [], [q.output[0]],
                params)


def _qlinear_operand(node, first, axis=None):
    """The operand of a QOperator node's inputs ``first .. first + 2``."""
    ins = list(node.input) + [""] * 3
    return Operand(ins[first], ins[first + 1], ins[first + 2] or None, axis)


def _qlinear_gemm_step(graph, constants, node, index):
    """The ``gemm`` step of QOperator ``QLinearMatMul``/``QLinearConv`` (a following
    ``QLinearAdd`` of a constant joins it as the bias)."""
    if node.op_type == "QLinearMatMul":
        params = _gemm_params(_qlinear_operand(node, 0), _qlinear_operand(node, 3, -1), node)
    else:
        params = _gemm_params(_qlinear_operand(node, 0), _qlinear_operand(node, 3, 0), node)
        params["conv"] = _conv_params(node, constants.get(node.input[3]))
        if params["conv"] is None:
            return None
        if len(node.input) > 8 and node.input[8]:
            if node.input[8] not in constants:
                return None
            params["bias_acc"] = node.input[8]
    if not _constant_params(constants, params["a"], params["b"]) or \
            node.input[6] not in constants:
        return None
    nodes, ops = [node], [node.op_type]
    out = {"out_scale": node.input[6], "out_zero_point": node.input[7] or None}
    output = node.output[0]
    add = graph.only_consumer(output, "QLinearAdd")
    if node.op_type == "QLinearMatMul" and add is not None:
        side = 3 if add.input[0] == output else 0
        bias = _qlinear_operand(add, side)
        if bias.codes in constants and _constant_params(constants, bias) and \
                _per_column(constants, bias.codes) and add.input[6] in constants:
            params["bias"] = bias
            nodes.append(add)
            ops.append("QLinearAdd")
            out = {"out_scale": add.input[6], "out_zero_point": add.input[7] or None}
            output = add.output[0]
    params.update(out)
    return Step(_node_name(node, index), "gemm", "+".join(ops), nodes, [], [output], params)


def _unary_step(graph, constants, node, index, kind, **params):
    """An ``elementwise`` or ``row_softmax`` step: QDQ (DQ input, Q output) or QOperator
    (``QLinearSigmoid``, ``QLinearSoftmax``)."""
    if node.op_type.startswith("QLinear"):
        x = _qlinear_operand(node, 0)
        if not _constant_params(constants, x) or node.input[3] not in constants:
            return None
        params.update(x=x, out_scale=node.input[3],
                      out_zero_point=node.input[4] if len(node.input) > 4 and node.input[4]
                      else None)
        return Step(_node_name(node, index), kind, node.op_type, [node], [],
                    [node.output[0]], params)
    q = _q_after(graph, node)
    x = _dq_operand(graph, node.input[0])
    if q is None or x is None or not _constant_params(constants, x) or \
            q.input[1] not in constants:
        return None
    params.update(x=x, **_out_params(q))
    return Step(_node_name(node, index), kind, node.op_type, [node, q], [],
                [q.output[0]], params)


def _region_step(region, first, index):
    """The ``elementwise`` step of a recognized :class:`~accelgen.model.regions.Region`
    (named after its first node)."""
    return Step(_node_name(first, index), "elementwise", region.op, region.nodes, [],
                [region.q.output[0]],
                {"x": Operand(*region.x), "function": region.function,
                 "deviation_lsb": region.deviation, **_out_params(region.q)})


def _softmax_step(graph, constants, node, index, ranks, opset):
    """A ``row_softmax`` step when it normalizes over the last axis. Before opset 13
    ``Softmax`` defaulted to axis 1 and normalized over every axis from ``axis`` on, which is
    the last axis only when ``axis`` is the last."""
    old = node.op_type == "Softmax" and opset < 13
    axis = int(_attr(node, "axis", 1 if old else -1))
    rank = ranks.get(node.input[0])
    if axis != -1 and (rank is None or axis != rank - 1):
        return None
    if old and axis == -1 and rank is None:
        return None
    return _unary_step(graph, constants, node, index, "row_softmax")


def _ranks(model):
    """Tensor name -> rank, where ONNX shape inference knows it."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:       # a model shape inference cannot read still runs
        return {}
    out = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input) + \
            list(inferred.graph.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            out[v.name] = len(t.shape.dim)
    return out


def _is_quantized(model):
    ops = {n.op_type for n in model.graph.node}
    return bool(ops & {"QuantizeLinear", "DequantizeLinear", *QOPERATOR_OPS})


def load_network(path, *, allow_host=False):
    """Read ``path`` and cut it into steps (see the module docstring). :class:`ConfigError`
    (one line naming ``model`` and the node) for a file that is not ONNX, a float model, and,
    unless ``allow_host``, an operator no block runs."""
    model = _read_model(path)
    if not _is_quantized(model):
        raise ConfigError(f"model: {str(path)!r} is a float model (no QuantizeLinear or "
                          f"DequantizeLinear nodes); expected a quantized model, e.g. from "
                          f"onnxruntime.quantization.quantize_static in QDQ format")
    constants = _constants(model)
    graph = _Graph([n for n in model.graph.node if n.op_type != "Constant"],
                   [o.name for o in model.graph.output])
    ranks = _ranks(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    dequantize = {n.output[0]: n for n in graph.nodes if n.op_type == "DequantizeLinear"}
    region_of = {id(n): r for r in find_regions(graph, constants) for n in r.nodes}
    taken, steps = set(), []
    for index, node in enumerate(graph.nodes):
        if id(node) in taken:
            continue
        if id(node) in region_of:
            steps.append(_region_step(region_of[id(node)], node, index))
            taken.update(id(n) for n in steps[-1].nodes)
            continue
        if node.op_type == "DequantizeLinear":
            continue
        step = None
        if node.op_type in ("MatMul", "Gemm", "Conv"):
            step = _gemm_step(graph, constants, node, index)
        elif node.op_type in ("QLinearMatMul", "QLinearConv"):
            step = _qlinear_gemm_step(graph, constants, node, index)
        elif node.op_type in ELEMENTWISE_FUNCTIONS:
            step = _unary_step(graph, constants, node, index, "elementwise",
                               function=ELEMENTWISE_FUNCTIONS[node.op_type])
        elif node.op_type in ("Softmax", "QLinearSoftmax"):
            step = _softmax_step(graph, constants, node, index, ranks, opset)
        if step is None:
            kind = "quantize" if node.op_type == "QuantizeLinear" else \
                "layout" if node.op_type in LAYOUT_OPS else "host"
            if kind == "host" and not allow_host:
                raise ConfigError(f"model: node {_node_name(node, index)!r} ({node.op_type}) "
                                  f"is not supported on the blocks; --allow-host runs it on "
                                  f"the host")
            step = Step(_node_name(node, index), kind, node.op_type, [node],
                        [n for n in node.input if n], list(node.output))
        taken.update(id(n) for n in step.nodes)
        steps.append(step)
    _check_order(steps, graph, constants, model)
    return Network(model=model, path=Path(path), steps=steps, constants=constants,
                   dequantize=dequantize, inputs=_graph_inputs(model, constants),
                   outputs=[o.name for o in model.graph.output])


def _check_order(steps, graph, constants, model):
    """Steps run in list order: every tensor a step reads must exist by then (fused groups
    can only move a node later than ONNX's order, never need a later tensor earlier)."""
    known = set(constants) | {v.name for v in model.graph.input}
    dq = {n.output[0]: n.input[0] for n in graph.nodes if n.op_type == "DequantizeLinear"}
    for step in steps:
        for name in step.inputs:
            source = dq.get(name, name)
            if name not in known and source not in known:
                raise ConfigError(f"model: node {step.name!r} ({step.op}) reads {name!r} before "
                                  f"it is computed; expected nodes in topological order")
        known.update(step.outputs)
        known.update(n.output[0] for n in step.nodes if n.op_type == "DequantizeLinear")
