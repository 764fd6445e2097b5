"""Integer number formats, rounding and overflow as pure numpy functions.

These functions *define* the numeric semantics of every accelgen block: golden models call
them, and each one has an Amaranth twin in :mod:`accelgen.hdl.common.numerics` that is tested
exhaustively against it. Nothing here imports Amaranth or cocotb.

All array functions take anything :func:`numpy.asarray` accepts and return ``int64`` arrays;
inputs must fit in ``int64`` (|x| < 2**62 keeps every intermediate exact).
"""

import enum
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["ConfigError", "IntFormat", "Rounding", "Overflow",
           "wrap", "saturate", "apply_overflow", "round_shift", "requantize"]


class ConfigError(ValueError):
    """Invalid parameter. ``str(err)`` is one line naming the parameter, the value and what is
    allowed; the CLI prints it and exits with status 2."""


class Rounding(enum.Enum):
    """How :func:`round_shift` rounds ``x / 2**shift`` to an integer."""
    FLOOR = "floor"              #: toward -inf (plain arithmetic shift)
    HALF_UP = "half_up"          #: nearest, ties toward +inf (add 2**(s-1), then shift)
    HALF_AWAY = "half_away"      #: nearest, ties away from zero
    HALF_EVEN = "half_even"      #: nearest, ties to even (IEEE default, torch.round)
    TOWARD_ZERO = "toward_zero"  #: truncate toward zero (C integer division)


class Overflow(enum.Enum):
    """What happens to a value outside a format's range."""
    WRAP = "wrap"          #: keep the low bits (two's complement modular arithmetic)
    SATURATE = "saturate"  #: clamp to the nearest representable value


#: ASCII digits only (``\d`` would take "s٨"), matched with ``fullmatch`` (``$`` would take a
#: trailing newline); leading zeros are refused by :meth:`IntFormat.parse`
_FORMAT_RE = re.compile(r"([su])([0-9]+)")
MAX_FORMAT_WIDTH = 62


@dataclass(frozen=True)
class IntFormat:
    """A two's complement (``signed``) or unsigned integer of ``width`` bits.

    Spelled ``"s8"`` (INT8, [-128, 127]) or ``"u4"`` (UINT4, [0, 15]) in configs and mode names.
    """
    width: int
    signed: bool

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ConfigError(f"format width: {self.width!r} is not allowed; "
                              f"expected a positive integer")
        if self.width > 62:
            raise ConfigError(f"format width: {self.width} is not allowed; expected at most 62")

    @classmethod
    def parse(cls, text, *, param="format"):
        """``"s8"`` → ``IntFormat(8, True)``; raises :class:`ConfigError` naming ``param``.

        Only the canonical spelling is taken (``s`` or ``u``, then the width from 1 to 62 in
        ASCII digits without leading zeros; no blanks, no ``+``), so one format has one name
        and one config digest."""
        m = _FORMAT_RE.fullmatch(text) if isinstance(text, str) else None
        if not m:
            raise ConfigError(f"{param}: {text!r} is not an integer format; expected 's' or 'u' "
                              f"followed by a width, e.g. 's8' or 'u4'")
        sign, digits = m.groups()
        width = digits.lstrip("0") or "0"
        if len(width) > 2 or not 1 <= int(width) <= MAX_FORMAT_WIDTH:
            raise ConfigError(f"{param}: {text!r} is not allowed; an integer format is 1 to "
                              f"{MAX_FORMAT_WIDTH} bits wide, e.g. 's8' or 'u4'")
        if width != digits:
            raise ConfigError(f"{param}: {text!r} is not allowed; expected {sign + width!r} "
                              f"(widths are written without leading zeros)")
        return cls(int(width), sign == "s")

    @property
    def name(self):
        return f"{'s' if self.signed else 'u'}{self.width}"

    @property
    def min(self):
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self):
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def __str__(self):
        return self.name


def _int64(x):
    return np.asarray(x, dtype=np.int64)


def wrap(x, fmt):
    """Two's complement wrap of ``x`` into ``fmt``: keep the low ``fmt.width`` bits and
    reinterpret them as ``fmt`` (sign-extend when signed)."""
    x = _int64(x)
    low = x & ((1 << fmt.width) - 1)
    if fmt.signed:
        low = np.where(low >= (1 << (fmt.width - 1)), low - (1 << fmt.width), low)
    return low.astype(np.int64)


def saturate(x, fmt):
    """Clamp ``x`` to ``[fmt.min, fmt.max]``."""
    return np.clip(_int64(x), fmt.min, fmt.max).astype(np.int64)


def apply_overflow(x, fmt, policy):
    """:func:`wrap` or :func:`saturate` ``x`` into ``fmt`` as ``policy`` says."""
    policy = Overflow(policy)
    return wrap(x, fmt) if policy is Overflow.WRAP else saturate(x, fmt)


def round_shift(x, shift, mode):
    """``x / 2**shift`` rounded to an integer with rounding ``mode``; ``shift >= 0``.

    ``shift == 0`` returns ``x`` unchanged in every mode. The result needs at most
    ``width(x) - shift + 1`` bits (one more than a plain shift, for round-up carries).
    """
    x = _int64(x)
    mode = Rounding(mode)
    if shift < 0:
        raise ConfigError(f"shift: {shift} is not allowed; expected >= 0")
    if shift == 0:
        return x.copy()
    floor = x >> shift
    rem = x & ((1 << shift) - 1)            # x - floor * 2**shift, in [0, 2**shift)
    half = 1 << (shift - 1)
    if mode is Rounding.FLOOR:
        up = np.zeros_like(x, dtype=bool)
    elif mode is Rounding.HALF_UP:
        up = rem >= half
    elif mode is Rounding.HALF_AWAY:
        up = (rem > half) | ((rem == half) & (x >= 0))
    elif mode is Rounding.HALF_EVEN:
        up = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    else:  # TOWARD_ZERO
        up = (rem != 0) & (x < 0)
    return (floor + up).astype(np.int64)


S8, U8 = IntFormat(8, True), IntFormat(8, False)


def requantize(acc, mult, shift, zero_point, relu, out_signed, rounding):
    """Integer-only (dyadic) requantization of accumulators to 8 bits.

    ``q = round_shift(acc * mult, shift, rounding)``; with ``relu``, ``q = max(q, 0)``; then
    ``y = q + zero_point`` saturated to ``s8`` (``out_signed``) or ``u8``. ``acc * mult`` must
    fit in int64 (the GEMM engine's config keeps ``acc_width + mult_bits <= 62``); ``shift`` is a
    scalar from 0 to 63; the other parameters are scalars.
    """
    acc = _int64(acc)
    if not 0 <= int(shift) <= 63:
        raise ConfigError(f"shift: {shift} is not allowed; expected 0 to 63")
    q = round_shift(acc * np.int64(mult), int(shift), rounding)
    if relu:
        q = np.maximum(q, 0)
    return saturate(q + np.int64(zero_point), S8 if out_signed else U8)


#: Width of the unsigned low chunks of a wide requantizer product (a DSP's 18-bit signed port
#: takes 17 unsigned bits)
REQUANT_CHUNK = 17


def requantizer_latency(acc_width, mult_bits, round_stage=True, shift_stage=None):
    """Cycles of the hardware requantizer (:class:`accelgen.hdl.common.requant.Requantizer`)
    for these widths: 3, plus 2 when ``acc * mult`` is wider than one 18x18 DSP multiply
    (``acc_width > 18`` and ``mult_bits > 1``), where it is built from partial products of
    ``REQUANT_CHUNK``-bit slices of ``acc`` with registered operands and products (a DSP's
    input and output registers), then summed in a stage of its own;
    plus 1 with ``round_stage`` (the rounded value registered before the zero point is added);
    plus 1 with ``shift_stage`` (default: as ``round_stage``; the rounding shift in two
    stages, by the high bits of ``shift`` and then by the low ones)."""
    shift_stage = round_stage if shift_stage is None else shift_stage
    return 3 + 2 * requantizer_splits(acc_width, mult_bits) + bool(round_stage) + \
        bool(shift_stage)


def requantizer_splits(acc_width, mult_bits):
    """The requantizer builds ``acc * mult`` from partial products of ``REQUANT_CHUNK``-bit
    slices of ``acc``: the product is wider than one 18x18 DSP multiply."""
    return acc_width > 18 and mult_bits > 1
