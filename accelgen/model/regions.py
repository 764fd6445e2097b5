"""Subgraphs of elementwise float operators that compute one function of one quantized tensor,
recognized by what they compute rather than by how an exporter wrote them.

GELU reaches ONNX as ``x * 0.5 * (1 + Erf(x / sqrt 2))`` (PyTorch before opset 20), as its
tanh approximation, or with the factors in another order; SiLU as ``x * Sigmoid(x)``. After
quantization, onnxruntime's QDQ format puts a Q/DQ pair after most of these operators. A
region is the backward cone of a Q node through :data:`REGION_OPS` (and through Q/DQ pairs
between them) down to constants and one computed quantized tensor ``x``, none of whose inner
tensors is read outside it. The region is evaluated in float64 (Q/DQ pairs as identities) at
the real value of every input code of ``x``, and it is the function ``f`` of
:data:`MATCHED` when ``|region - f| <= TOLERANCE`` output LSB at every code: then one
``elementwise`` step computes ``f`` from the codes of ``x`` to those of the region's output
(one rounding where the QDQ graph rounds after every operator; the report says so in the
step's op).
"""

import math
from dataclasses import dataclass

import numpy as np

from .. import approx

__all__ = ["Region", "find_regions", "REGION_OPS", "MATCHED", "TOLERANCE"]

REGION_OPS = ("Div", "Mul", "Add", "Sub", "Erf", "Tanh", "Pow", "Sigmoid", "Sqrt", "Neg")
NONLINEAR = ("Erf", "Tanh", "Pow", "Sigmoid", "Sqrt")
MATCHED = ("gelu", "silu", "sigmoid", "tanh")
TOLERANCE = 0.1     #: output LSB
MAX_CODES = 1 << 16

_ERF = np.frompyfunc(math.erf, 1, 1)
_UNARY = {"Erf": lambda a: _ERF(a).astype(np.float64), "Tanh": np.tanh,
          "Sigmoid": lambda a: 1 / (1 + np.exp(-a)), "Sqrt": np.sqrt, "Neg": np.negative}
_BINARY = {"Div": np.divide, "Mul": np.multiply, "Add": np.add, "Sub": np.subtract,
           "Pow": np.power}


@dataclass
class Region:
    """A recognized region.

    Members
    -------
    nodes : list
        Its ONNX nodes (operators and the Q/DQ pairs between them, the output Q last).
    x : tuple
        ``(codes, scale, zero point, axis)`` names of the quantized input.
    q : NodeProto
        The Q node of its output.
    function : str
    deviation : float
        Largest ``|region - function|`` over the input codes, in output LSB.
    """
    nodes: list
    x: tuple
    q: object
    function: str
    deviation: float

    @property
    def op(self):
        ops = [n.op_type for n in self.nodes if n.op_type not in ("QuantizeLinear",
                                                                   "DequantizeLinear")]
        return f"{self.function}({'+'.join(ops)})"


class _Cone:
    """The backward cone of one Q node (see the module docstring); ``ok`` False when it is
    not a region. A Q/DQ pair after an operator of :data:`REGION_OPS` is passed through when
    what lies behind it is still a function of the same one input (scalar constants only);
    otherwise its DQ is that input (so a GELU after a bias ``Add`` starts at the ``Add``'s
    quantized output)."""

    def __init__(self, graph, constants, q):
        self.graph, self.constants = graph, constants
        self.nodes, self.leaves = [], set()
        self.expr = self._walk(q.input[0])
        self.ok = self.expr is not None and len(self.leaves) == 1
        self.x = next(iter(self.leaves)) if self.ok else None

    def _scalar(self, value):
        value = np.asarray(value, np.float64)
        return ("const", value.reshape(())) if value.size == 1 else None

    def _const(self, dq):
        c = self.constants
        if dq.input[1] not in c or (len(dq.input) > 2 and dq.input[2] and dq.input[2] not in c):
            return None
        zp = c[dq.input[2]] if len(dq.input) > 2 and dq.input[2] else 0
        return self._scalar((np.asarray(c[dq.input[0]], np.float64) - zp) * c[dq.input[1]])

    def _leaf(self, node):
        operand = (node.input[0], node.input[1],
                   node.input[2] if len(node.input) > 2 and node.input[2] else None,
                   next((a.i for a in node.attribute if a.name == "axis"), None))
        self.leaves.add(operand)
        self.nodes.append(node)
        return ("x",)

    def _walk(self, tensor):
        if tensor in self.constants:
            return self._scalar(self.constants[tensor])
        node = self.graph.producer.get(tensor)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            if node.input[0] in self.constants:
                return self._const(node)
            inner = self.graph.producer.get(node.input[0])
            before = inner is not None and inner.op_type == "QuantizeLinear" and \
                self.graph.producer.get(inner.input[0]) is not None and \
                self.graph.producer[inner.input[0]].op_type in REGION_OPS
            if before:          # a Q/DQ pair between two operators: try to look through it
                mark, leaves = len(self.nodes), set(self.leaves)
                self.nodes += [inner, node]
                expr = self._walk(inner.input[0])
                if expr is not None and len(self.leaves) <= 1:
                    return expr
                del self.nodes[mark:]
                self.leaves = leaves
            return self._leaf(node)
        if node.op_type not in REGION_OPS:
            return None
        args = [self._walk(name) for name in node.input if name]
        if any(a is None for a in args):
            return None
        self.nodes.append(node)
        return (node.op_type, *args)

    def evaluate(self, x):
        """The cone's float64 values at input values ``x`` (None when they do not come out
        as one value per input)."""
        def ev(e):
            if e[0] == "x":
                return x
            if e[0] == "const":
                return e[1]
            args = [ev(a) for a in e[1:]]
            return _UNARY[e[0]](*args) if e[0] in _UNARY else _BINARY[e[0]](*args)
        try:
            with np.errstate(all="ignore"):
                return np.broadcast_to(np.asarray(ev(self.expr), np.float64), x.shape)
        except (ValueError, TypeError):
            return None


def _closed(graph, nodes, q):
    """No tensor inside the region is read outside it (a graph output is read outside)."""
    inside = {id(n) for n in nodes} | {id(q)}
    for node in nodes:
        for out in node.output:
            if out in graph.outputs or \
                    any(id(user) not in inside for user in graph.consumers.get(out, [])):
                return False
    return True


def _codes_dtype(graph, constants, codes, zero_point):
    """The integer type of the codes tensor: its zero point's, else that of the Q node
    writing it, else uint8 (ONNX's default)."""
    if zero_point:
        return np.asarray(constants[zero_point]).dtype
    writer = graph.producer.get(codes)
    if writer is not None and writer.op_type == "QuantizeLinear" and len(writer.input) > 2 \
            and writer.input[2] in constants:
        return np.asarray(constants[writer.input[2]]).dtype
    return np.dtype(np.uint8)


def _match(graph, cone, constants, q):
    """``(function, deviation)`` of the cone, or None."""
    codes_name, scale, zp, axis = cone.x
    s = constants.get(scale)
    ys = constants.get(q.input[1])
    if s is None or ys is None or np.ndim(s) or np.ndim(ys) or \
            (zp and (zp not in constants or np.ndim(constants[zp]))):
        return None
    z = int(constants[zp]) if zp else 0
    info = np.iinfo(_codes_dtype(graph, constants, codes_name, zp))
    if info.max - info.min + 1 > MAX_CODES:
        return None
    real = (np.arange(info.min, info.max + 1) - z) * float(s)
    got = cone.evaluate(real)
    if got is None or not np.all(np.isfinite(got)):
        return None
    best = None
    for name in MATCHED:
        ref = np.array([approx.FUNCTIONS[name](v) for v in real])
        deviation = float(np.max(np.abs(got - ref)) / float(ys))
        if deviation <= TOLERANCE and (best is None or deviation < best[1]):
            best = (name, deviation)
    return best


def find_regions(graph, constants):
    """The regions of ``graph`` (its ``producer``/``consumers`` maps and ``nodes``), largest
    first, none overlapping another."""
    regions, taken = [], set()
    for q in reversed(graph.nodes):
        if q.op_type != "QuantizeLinear" or id(q) in taken:
            continue
        producer = graph.producer.get(q.input[0])
        if producer is None or producer.op_type not in REGION_OPS:
            continue
        cone = _Cone(graph, constants, q)
        if not cone.ok or cone.x is None or \
                not any(n.op_type in NONLINEAR for n in cone.nodes):
            continue
        inner = [n for n in cone.nodes if n.op_type != "DequantizeLinear"
                 or n.input[0] != cone.x[0]]
        if any(id(n) in taken for n in inner) or not _closed(graph, inner, q):
            continue
        found = _match(graph, cone, constants, q)
        if found is None:
            continue
        order = {id(n): i for i, n in enumerate(graph.nodes)}
        nodes = sorted(inner, key=lambda n: order[id(n)]) + [q]
        taken.update(id(n) for n in nodes)
        regions.append(Region(nodes, cone.x, q, *found))
    return regions
