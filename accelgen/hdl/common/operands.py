"""Operand formats at run time: read an element slot in the format of the current precision
mode. Shared by the ``mac`` lanes and the ``systolic`` array edges, so both blocks interpret
payload bits identically (the golden models' ``IntFormat`` reading)."""

from amaranth.hdl import Signal, signed

__all__ = ["operand_width", "read_operand"]


def operand_width(formats):
    """Signed width that holds every value of every format (unsigned ones need a sign bit)."""
    return max(f.width + (not f.signed) for f in formats)


def read_operand(m, slot, formats, mode, *, name):
    """``signed(operand_width(formats))`` signal holding the low ``f.width`` bits of ``slot``
    read as ``f`` = ``formats[mode]`` (sign- or zero-extended); the higher bits of the slot are
    ignored. With one format there is no ``mode`` switch (``mode`` may be ``None``); a mode
    code past the list reads as 0."""
    op = Signal(signed(operand_width(formats)), name=name)

    def value(fmt):
        bits = slot[:fmt.width]
        return bits.as_signed() if fmt.signed else bits

    if len(formats) == 1:
        m.d.comb += op.eq(value(formats[0]))
        return op
    with m.Switch(mode):
        for code, fmt in enumerate(formats):
            with m.Case(code):
                m.d.comb += op.eq(value(fmt))
    return op
