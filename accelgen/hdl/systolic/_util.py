"""Helpers shared by the ``systolic`` units: delay lines, lane fitting and widths derived from
the config that several units must agree on."""

from amaranth.hdl import Cat, Signal

__all__ = ["delay", "fit", "panel_k_bits", "row_bits"]


def delay(m, value, cycles, name):
    """``value`` delayed by ``cycles`` registers (free-running)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{n}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


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
