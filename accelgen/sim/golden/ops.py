"""The integer operations a quantized network is lowered to, and the stream plan that runs one
of them on a block. Block-neutral: a block's ``<block>_ops`` module (named by its registry
entry's ``model_ops``) says which kinds it executes and turns an operation into the words of
its streams; :mod:`accelgen.model` lowers ONNX nodes into these operations and never names a
block.

Every operation states its numbers exactly (integer codes in, integer codes out) and keeps the
real scales it came from, so each block derives its own parameters (multiplier widths, tables)
from them, and the report can turn codes back into real values.

::

    ONNX node(s) ──lower──► GemmOp / ElementwiseOp / SoftmaxOp   (codes + scales)
                                 │ block_ops.configure(base config, op) -> config
                                 │ block_ops.plan(config, op)       -> Plan
                                 ▼
    Plan.words ──► RTL (file-backed streams) ──► Plan.decode(o words) == Plan.result (golden)
"""

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

__all__ = ["GemmOp", "ElementwiseOp", "SoftmaxOp", "Plan", "KINDS"]


@dataclass(frozen=True, eq=False)
class GemmOp:
    """``Y = requant(A . B + C)`` per output column ``j``:
    ``y = sat_out(round(acc * scale[j]) + zero_point)`` (with ``relu``: ``max(round(.), 0)``
    before the zero point), ``acc = sum_k A[m, k] * B[k, j] + C[m, j]`` exact.

    Members
    -------
    a : int array, M x K
        Codes of ``a_format`` (``"s8"`` or ``"u8"``).
    b : int array, K x N
        Codes of ``b_format`` (``"s8"``).
    c : int array, M x N, or None
        Added to the exact accumulators: bias and zero-point terms, in accumulator units
        (``a_scale * b_scale``).
    scale : float array, N
        Real multiplier of each column's accumulator into output codes (``s_a s_b / s_y``);
        the block approximates it (dyadic, for instance) and states how.
    zero_point : int
    out_signed : bool
        Output ``s8`` (True) or ``u8``.
    relu : bool
    """
    kind: ClassVar[str] = "gemm"
    a: np.ndarray
    a_format: str
    b: np.ndarray
    b_format: str
    c: object
    scale: np.ndarray
    zero_point: int
    out_signed: bool
    relu: bool = False

    @property
    def shape(self):
        (m, k), n = self.a.shape, self.b.shape[1]
        return m, k, n

    @property
    def macs(self):
        m, k, n = self.shape
        return m * k * n

    @property
    def out_format(self):
        return "s8" if self.out_signed else "u8"


@dataclass(frozen=True, eq=False)
class ElementwiseOp:
    """``y = f(x)`` per element: input codes ``x`` stand for ``in_scale * (x -
    in_zero_point)``, output codes for ``out_scale * (y - out_zero_point)``; ``function`` is a
    name of :data:`accelgen.approx.FUNCTIONS` (``gelu``, ``sigmoid``, ``tanh``, ...)."""
    kind: ClassVar[str] = "elementwise"
    x: np.ndarray
    function: str
    in_format: str
    in_scale: float
    in_zero_point: int
    out_format: str
    out_scale: float
    out_zero_point: int

    @property
    def macs(self):
        return 0


@dataclass(frozen=True, eq=False)
class SoftmaxOp:
    """Softmax of each row of ``x`` (rows x n; the last axis): logit codes stand for
    ``in_scale * (x - in_zero_point)``. ``out_scale``/``out_zero_point``: the output
    quantization the network asks for (None: any); the block meets it where it can, and
    states what its codes are in :attr:`Plan.out_scale` / :attr:`Plan.out_zero_point`."""
    kind: ClassVar[str] = "row_softmax"
    x: np.ndarray
    in_format: str
    in_scale: float
    in_zero_point: int
    out_scale: object = None
    out_zero_point: object = None

    @property
    def macs(self):
        return 0


KINDS = (GemmOp.kind, ElementwiseOp.kind, SoftmaxOp.kind)


@dataclass(eq=False)
class Plan:
    """One operation on one block config, at stream level.

    Members
    -------
    words : {input stream: [payload int]}
        What the RTL's input streams receive, in order.
    expect : {output stream: int}
        How many words each output stream sends.
    result : int array
        The golden model's output codes (the shape of the operation's output).
    decode : callable
        ``decode({output stream: [payload int]})`` -> ``(codes, counters)``: the RTL's output
        words as codes in the shape of :attr:`result`, and the block's own performance counters
        summed over the plan (``{}`` when it has none); :class:`ValueError` when the words
        are not an answer to this plan.
    out_scale, out_zero_point : float, int
        What an output code stands for: ``out_scale * (code - out_zero_point)``.
    commands : int
        Commands or rows the plan issues (for the report).
    model_cycles : int or None
        The block's analytic estimate of the plan's cycles at full rate (its cycle model, or
        beats plus latency), used by the golden path.
    notes : list of str
        How the block carried the operation out (tiling, approximations), for the report.
    """
    words: dict
    expect: dict
    result: np.ndarray
    decode: Callable
    out_scale: float
    out_zero_point: int
    commands: int = 1
    model_cycles: object = None
    notes: list = field(default_factory=list)
