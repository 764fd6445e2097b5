"""Arithmetic building blocks shared by the block generators."""

from amaranth.hdl import Const, Signal, Value

__all__ = ["sum_tree", "register"]


def sum_tree(values):
    """Exact sum of ``values`` as a balanced tree of two-input adders (depth ceil(log2 n));
    Amaranth widens each adder by one bit, so no intermediate overflows."""
    values = [Value.cast(v) for v in values]
    if not values:
        return Const(0, 1)
    while len(values) > 1:
        pairs = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]


def register(m, enable, value, *, name, when=True):
    """A register loading ``value`` while ``enable`` is high, or ``value`` itself when
    ``when`` is false (lets a pipeline stage be configured away without branching)."""
    value = Value.cast(value)
    if not when or isinstance(value, Const):   # constants need no register
        return value
    reg = Signal(value.shape(), name=name)
    with m.If(enable):
        m.d.sync += reg.eq(value)
    return reg
