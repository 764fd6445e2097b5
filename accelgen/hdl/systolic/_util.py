"""Helpers shared by the ``systolic`` units: delay lines, lane fitting and widths derived from
the config that several units must agree on."""

from amaranth.hdl import Cat, Const, Signal

from ...generators.systolic import ELEMENT_EXP_BITS
from ..common.floats import read_element, unpack_decoded
from ..common.operands import read_operand

__all__ = ["delay", "taps", "lookahead", "unit_start", "fit", "panel_k_bits", "row_bits",
           "read_array_operand", "unpack_operand", "null_operand"]


def delay(m, value, cycles, name, **like):
    """``value`` delayed by ``cycles`` registers (free-running), made by ``Signal.like``:
    ``like`` overrides what they copy from ``value``, e.g. ``init=1`` or ``reset_less=True``
    (for data whose tags say when it counts, so the domain reset need not reach it)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{n}", **like)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def taps(m, value, cycles, name):
    """``value`` delayed by each of ``cycles`` (a list), taken from one shared delay line."""
    line = [value]
    for n in range(max(cycles)):
        reg = Signal.like(value, name=f"{name}_d{n}")
        m.d.sync += reg.eq(line[-1])
        line.append(reg)
    return [line[c] for c in cycles]


def lookahead(m, next_value, *, name, init=0):
    """``(flag, flag_next)``: a flag register that loads ``next_value``, the flag's value in
    the next cycle, and that value itself. The control units compute such flags a cycle
    ahead, for every outcome of this cycle's late decisions (which then only pick one), so
    a consumer that registers its own decision a cycle ahead reads ``flag_next`` and everyone
    else a flip-flop with no compare behind it."""
    flag = Signal(name=name, init=init)
    flag_next = Signal(name=f"{name}_next")
    m.d.comb += flag_next.eq(next_value)
    m.d.sync += flag.eq(flag_next)
    return flag, flag_next


def unit_start(m, task, *, name):
    """This unit's own copy of ``task.start`` (same value in every cycle, reset included).

    ``start`` clears the loop state of every unit, a few hundred flip-flops across the
    array's edges: as one flip-flop its net spans the design, and each unit's issue
    decision (which reads its counters' next values, and so ``start``) paid for that net's
    routing (8x8 out of context: 3.9 ns of a 9.6 ns critical path). The copy is kept
    inverted, loaded from ``~start_next``: a register with the same input as another would
    be merged with it by synthesis (yosys ``opt_merge``)."""
    start_n = Signal(name=f"{name}_start_n", init=1)
    m.d.sync += start_n.eq(~task.start_next)
    return ~start_n


def fit(value, width):
    """``value`` sign-extended or truncated to ``width`` bits."""
    value = value.as_signed()
    if len(value) >= width:
        return value[:width]
    return Cat(value, value[-1].replicate(width - len(value)))


def row_bits(config):
    """Width of result-row counts and indices (``NB * M`` and below)."""
    return 2 * config.dim_bits + 1


def panel_k_bits(config):
    """Row-address bits of one B-panel bank (``k_max`` rows); the bank is the bit above."""
    return max(1, (config.k_max - 1).bit_length())


def read_array_operand(m, slot, config, formats, mode, *, name):
    """One element slot as the array carries it (:attr:`SystolicConfig.operand_width`):
    integer modes read as signed integers, float modes decoded and packed
    (:func:`~accelgen.hdl.common.floats.pack_decoded`; code 0 of every float format, +0,
    packs to 0)."""
    if config.is_float:
        return read_element(m, slot, formats, mode, sig_bits=config.element_sig_bits,
                            exp_bits=ELEMENT_EXP_BITS, name=name)
    return read_operand(m, slot, formats, mode, name=name)


def unpack_operand(config, value):
    """Float modes: the decoded namespace of an operand the array carries."""
    return unpack_decoded(value.as_unsigned(), config.element_sig_bits, ELEMENT_EXP_BITS)


def null_operand(config):
    """Float modes: the operand of a bubble or of padding, NaN and inf flags both set (no
    element decodes to it); a product with a null operand is +0 whatever the other operand
    holds, so neither adds anything to a sum (a ``+0`` would make ``0 * inf = NaN`` with a
    stale weight)."""
    return Const(0b11 << (config.element_sig_bits + ELEMENT_EXP_BITS + 1),
                 config.operand_width)
