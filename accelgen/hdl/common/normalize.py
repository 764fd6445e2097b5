"""Leading-one detection: the count of leading zero bits of an unsigned value, as a balanced
tree (depth ``ceil(log2 w)`` two-input muxes), for normalizing a value to ``[2**(w-1), 2**w)``
with a left shift (floating-point style mantissas, ``bit_length``, ``log2``)."""

from amaranth.hdl import Cat, Const, Mux, Signal, Value

__all__ = ["leading_zeros", "normalize"]


def leading_zeros(value, m=None, *, name="lz"):
    """``(count, zero)`` for the unsigned bits of ``value`` (width ``w``): ``count`` is the
    number of zero bits above the highest one, so ``bit_length(value) = w - count``, and
    ``zero`` is high when ``value == 0`` (``count`` is then meaningless). ``count`` has
    ``ceil(log2 w)`` bits (at least 1).

    Each tree node halves the problem: a pair ``(zero, count)`` for the high and the low half
    gives ``zero = zero_hi & zero_lo`` and ``count = zero_hi ? half + count_lo : count_hi``,
    where the ``+ half`` is just the new top bit of the count. The value is padded with
    zeros *below* its lowest bit up to a power of two, which changes no leading-zero count.

    With a module ``m``, every tree level is held in signals (``{name}_z<level>_<i>``,
    ``{name}_c<level>_<i>``): each node reads its children twice, so a tree of expressions
    is shared, not copied, by consumers that expand expressions (Amaranth's simulator
    compiles one copy per use -- 2**levels copies of the leaves for a wide value).
    """
    bits = Value.cast(value).as_unsigned()
    width = max(2, 1 << (len(bits) - 1).bit_length())
    bits = Cat(Const(0, width - len(bits)), bits)
    # leaves: one (zero, count) pair per two bits, count = 1 when the upper bit is clear
    nodes = [(~(bits[i] | bits[i + 1]), ~bits[i + 1]) for i in range(0, width, 2)]
    level = 0
    while len(nodes) > 1:
        if m is not None:
            nodes = [_held(m, node, f"{name}_{{}}{level}_{i}") for i, node in enumerate(nodes)]
        nodes = [(z_lo & z_hi, Mux(z_hi, Cat(c_lo, Const(1, 1)), Cat(c_hi, Const(0, 1))))
                 for (z_lo, c_lo), (z_hi, c_hi) in zip(nodes[0::2], nodes[1::2])]
        level += 1
    zero, count = nodes[0]
    if m is not None:
        zero, count = _held(m, (zero, count), f"{name}_{{}}")
    return count, zero


def _held(m, node, pattern):
    """``(zero, count)`` copied into signals named by ``pattern`` (``z``/``c`` filled in)."""
    zero, count = node
    z, c = Signal(name=pattern.format("z")), Signal(len(Value.cast(count)),
                                                    name=pattern.format("c"))
    m.d.comb += [z.eq(zero), c.eq(count)]
    return z, c


def normalize(value, count):
    """``value << count``, kept to the width of ``value``: with ``count`` from
    :func:`leading_zeros`, the highest one lands on the top bit (``value != 0``)."""
    value = Value.cast(value).as_unsigned()
    return (value << count)[:len(value)]
