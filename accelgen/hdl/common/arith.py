"""Arithmetic building blocks shared by the block generators."""

from amaranth.hdl import Const, Mux, Signal, Value, signed

__all__ = ["sum_tree", "lut_product"]


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


def lut_product(m, a, b, *, name):
    """Exact ``a * b`` of two signed values built from shifted partial products and two-input
    adders, so yosys maps it to LUTs and carry chains instead of a DSP block (it turns every
    ``$mul`` cell into DSPs). The partial sums are ``keep`` wires: without them yosys merges
    the adder tree into one ``$macc`` cell and maps that to about 5x the LUTs (8x8 on ECP5:
    36 CCU2C + 65 LUT4 with the wires kept, 333 LUT4 + 123 PFUMX without). ``b``'s top bit
    has weight ``-2**(w-1)`` when it is signed (two's complement). A constant ``b`` (an int
    or a ``Const``) gives one shifted copy of ``a`` per set bit and no multiplexers."""
    a, b = Value.cast(a), Value.cast(b)
    w = len(b)
    const = b.value if isinstance(b, Const) else None
    parts = []
    for i in range(w):
        if const is not None and not (const >> i) & 1:
            continue
        part = (a if const is not None else Mux(b[i], a, 0)) << i
        parts.append(-part if i == w - 1 and b.shape().signed else part)
    if not parts:
        return Const(0, 1)
    level = 0
    while len(parts) > 1:
        sums = []
        for i in range(0, len(parts) - 1, 2):
            wire = Signal(signed(len(parts[i] + parts[i + 1])), name=f"{name}_s{level}_{i // 2}",
                          attrs={"keep": 1})
            m.d.comb += wire.eq(parts[i] + parts[i + 1])
            sums.append(wire)
        parts = sums + ([parts[-1]] if len(parts) % 2 else [])
        level += 1
    return parts[0]
