"""Arithmetic building blocks shared by the block generators."""

from amaranth.hdl import Const, Mux, Signal, Value, signed, unsigned
from amaranth.lib.memory import Memory

__all__ = ["sum_tree", "lut_product", "quarter_square_table", "rom_product", "residue3",
           "add3", "sub3", "mul3", "fold3"]


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


def quarter_square_table(width):
    """``floor(s * s / 4)`` for every ``width``-bit two's-complement ``s``, indexed by the bit
    pattern of ``s`` (entry ``2**width - 1`` is ``s = -1``)."""
    half = 1 << (width - 1)
    return [((i - 2 * half if i >= half else i) ** 2) // 4 for i in range(2 * half)]


def rom_product(m, a_next, b_next, *, name):
    """Exact ``a * b`` of two signed values of one width ``w`` from a table of quarter
    squares, ``a * b = floor((a + b)**2 / 4) - floor((a - b)**2 / 4)`` (the two squares differ
    by ``4ab`` and leave the same remainder mod 4, so the floors lose nothing): two reads of
    one ``2**(w + 1)``-word read-only :class:`~amaranth.lib.memory.Memory`
    (:func:`quarter_square_table`) and a subtraction, so yosys maps it to one block RAM with two
    read ports (ECP5, ``w`` <= 9: one ``DP16KD`` as 1024x18) and one carry chain instead of a
    DSP block or a LUT adder tree (8x8 on ECP5: about 18 CCU2C against 36 CCU2C + 65 LUT4).

    Timing: ``a_next``/``b_next`` are the values that registers ``a`` and ``b`` load at the end
    of this cycle; the RAM's address registers load ``a_next + b_next`` and ``a_next - b_next``
    beside them, and the returned value (``2w`` bits, signed) is ``a * b`` of the registers'
    contents, combinational from the RAM's read data: the timing of
    ``lut_product(m, a, b)``. The reads are synchronous, so there is no combinational form."""
    a_next, b_next = Value.cast(a_next), Value.cast(b_next)
    w = len(a_next)
    assert len(b_next) == w and a_next.shape().signed and b_next.shape().signed
    table = quarter_square_table(w + 1)
    m.submodules[f"{name}_rom"] = rom = Memory(
        shape=unsigned(max(table).bit_length()), depth=len(table), init=table)
    squares = []
    for suffix, index in (("sum", a_next + b_next), ("diff", a_next - b_next)):
        port = rom.read_port(domain="sync")
        address = Signal(signed(w + 1), name=f"{name}_{suffix}")
        m.d.comb += [address.eq(index), port.addr.eq(address.as_unsigned())]
        squares.append(port.data)
    product = Signal(signed(2 * w), name=f"{name}_p")
    m.d.comb += product.eq(squares[0] - squares[1])    # |a * b| <= 2**(2w - 2): fits
    return product


def add3(m, x, y, *, name="r3"):
    """``(x + y) mod 3`` of two residues (2-bit values 0 to 2), as a 2-bit signal (a
    corrupted residue of 3 still gives a value from 0 to 3, so it stays visible). Each
    result is a wire of its own: a nested expression would repeat its operands in the
    emitted Verilog at every level."""
    total = Signal(3, name=f"{name}_sum")
    out = Signal(2, name=name)
    m.d.comb += [total.eq(Value.cast(x) + Value.cast(y)),
                 out.eq(Mux(total >= 3, total - 3, total))]
    return out


def sub3(m, x, y, *, name="r3"):
    """``(x - y) mod 3`` of two residues from 0 to 2."""
    y = Value.cast(y)
    return add3(m, x, Mux(y == 0, 0, 3 - y)[:2], name=name)


def mul3(x, y):
    """``(x * y) mod 3`` of two residues from 0 to 2 (a 4-input table)."""
    x, y = Value.cast(x)[:2], Value.cast(y)[:2]
    return Mux((x == 0) | (y == 0), 0, Mux(x == y, 1, 2))


def fold3(m, residues, *, name="r3"):
    """``sum(residues) mod 3`` as a balanced tree of :func:`add3`."""
    residues = list(residues) or [Const(0, 2)]
    level = 0
    while len(residues) > 1:
        pairs = [add3(m, residues[i], residues[i + 1], name=f"{name}_l{level}_{i // 2}")
                 for i in range(0, len(residues) - 1, 2)]
        residues = pairs + ([residues[-1]] if len(residues) % 2 else [])
        level += 1
    return residues[0]


def residue3(m, value, *, name="r3"):
    """``value mod 3`` (0 to 2) of an Amaranth value read as its shape says (two's
    complement when signed): the sum of its 2-bit digits (``4 = 1 mod 3``) in a balanced
    tree of :func:`add3` (depth ``ceil(log2(width / 2))``). The unsigned reading of a
    negative value is ``value + 2**w``, so a set sign bit subtracts ``2**w mod 3``."""
    value = Value.cast(value)
    bits = Signal(len(value), name=f"{name}_bits")
    m.d.comb += bits.eq(value.as_unsigned())
    digits = [bits[i:i + 2] for i in range(0, len(bits), 2)]
    total = fold3(m, [Mux(d == 3, 0, d)[:2] for d in digits], name=name)
    if not value.shape().signed:
        return total
    return sub3(m, total, Mux(bits[-1], (1 << len(value)) % 3, 0), name=f"{name}_s")
