"""Element decoders, FP32 rounding and FP32 addition as combinational Amaranth logic. Each is
the hardware twin of a definition in :mod:`accelgen.formats` /
:mod:`accelgen.sim.golden.elements` and is tested against it exhaustively (decoders, the
rounding of every 16-bit magnitude at every exponent) or on random and directed operands
(addition).

Decoded form (as in :mod:`accelgen.formats`): ``value = (-1)**sign * sig * 2**exp`` with
``nan``/``inf`` flags; a NaN or inf decodes with ``sig = 0``, so a product of decoded
significands is 0 whenever a special is involved and only the flags carry it.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

from ...formats import FP32, FloatFormat, MXElement, PositFormat
from ...numerics import IntFormat
from .normalize import leading_zeros

__all__ = ["decode_element", "round_float", "round_fp32", "encode_posit", "add_fp32",
           "pack_decoded", "unpack_decoded", "read_element", "product_fp32", "convert_element",
           "FP32_NAN", "FP32_INF"]

FP32_NAN = FP32.nan_code
FP32_INF = FP32.inf_code


def decode_element(m, bits, fmt, *, name):
    """Decoded form of the ``fmt.width`` low bits of ``bits`` as Amaranth values:
    a namespace of ``sign``, ``sig`` (unsigned), ``exp`` (signed), ``nan``, ``inf``.
    Integers decode to ``(x < 0, |x|, 0)``. Intermediate signals (posits) are named
    ``{name}_*``."""
    bits = bits[:fmt.width]
    if isinstance(fmt, MXElement):       # the element's own decode, exponent offset added
        d = decode_element(m, bits, fmt.element, name=name)
        return SimpleNamespace(**{**vars(d), "exp": d.exp + fmt.exp_offset})
    if isinstance(fmt, IntFormat):
        return _decode_int(bits, fmt)
    if isinstance(fmt, FloatFormat):
        return _decode_float(bits, fmt)
    if isinstance(fmt, PositFormat):
        return _decode_posit(m, bits, fmt, name)
    raise TypeError(f"decode_element: {fmt!r} is not an element format")


def _decode_int(bits, fmt):
    sign = bits[-1] if fmt.signed else Const(0, 1)
    value = bits.as_signed() if fmt.signed else bits
    return SimpleNamespace(sign=sign, sig=Mux(sign, -value, value)[:fmt.width], exp=Const(0, 1),
                           nan=Const(0, 1), inf=Const(0, 1))


def _decode_float(bits, fmt):
    w, man, top = fmt.width, fmt.man_bits, (1 << fmt.exp_bits) - 1
    sign, field, frac = bits[w - 1], bits[man:w - 1], bits[:man]
    if fmt.specials == "ieee":
        nan, inf = (field == top) & (frac != 0), (field == top) & (frac == 0)
    elif fmt.specials == "fn":
        nan, inf = bits[:w - 1] == (1 << (w - 1)) - 1, Const(0, 1)
    else:
        nan, inf = Const(0, 1), Const(0, 1)
    normal = field != 0
    sig = Mux(nan | inf, 0, Cat(frac, normal))
    # subnormals share the exponent of the smallest normal binade
    exp = Mux(normal, field, 1) + (fmt.exp_min - 1)
    return SimpleNamespace(sign=sign, sig=sig, exp=exp, nan=nan, inf=inf)


def _decode_posit(m, bits, fmt, name):
    """Posit decode: two's complement magnitude, regime run length by a leading-zero count
    (of the body, inverted when the run is of ones), then the body shifted past the regime
    and its terminating bit leaves the exponent bits on top and the fraction below."""
    n, es, fb = fmt.n, fmt.es, fmt.frac_bits
    sign = bits[n - 1]
    nar = bits == 1 << (n - 1)
    zero = bits == 0
    body = Signal(n - 1, name=f"{name}_body")
    m.d.comb += body.eq(Mux(sign, -bits, bits)[:n - 1])
    first = body[n - 2]
    count, all_same = leading_zeros(Mux(first, ~body, body), m, name=f"{name}_lz")
    run = Signal(range(n), name=f"{name}_run")
    m.d.comb += run.eq(Mux(all_same, n - 1, count))
    k = Mux(first, run - 1, -run)
    rest = (body << (run + 1))[:n - 1]
    exp_field = rest[n - 1 - es:n - 1] if es else Const(0, 1)
    frac = rest[n - 1 - es - fb:n - 1 - es] if fb else Const(0, 0)
    sig = Mux(zero | nar, 0, Cat(frac, Const(1, 1)))
    exp = (k << es) + exp_field - fb
    return SimpleNamespace(sign=Mux(nar, 0, sign), sig=sig, exp=exp, nan=nar, inf=Const(0, 1))


def _held(m, decoded, name):
    """A decoded namespace copied into signals ``{name}_<field>`` (shared, not re-expanded,
    by its several readers)."""
    out = {}
    for key, value in vars(decoded).items():
        sig = Signal(value.shape(), name=f"{name}_{key}")
        m.d.comb += sig.eq(value)
        out[key] = sig
    return SimpleNamespace(**out)


def round_float(m, mag, exp_lsb, sign, fmt, *, sticky=0, saturate=False, exp_min=None,
                lz=None, name):
    """Code of :class:`~accelgen.formats.FloatFormat` ``fmt`` nearest (ties to even) to
    ``(-1)**sign * (mag + d) * 2**exp_lsb`` with ``0 < d < 1`` if ``sticky`` else ``d = 0``,
    as :func:`accelgen.formats.round_to_float` defines it: overflow gives inf, NaN (E4M3) or
    the largest value (formats with neither, or ``saturate``); a zero ``mag`` without
    ``sticky``, or a value below half the smallest subnormal, gives a zero of ``sign``.
    ``mag`` is unsigned, ``exp_lsb`` an int or a signed value (``exp_min``, when given, is
    its lowest value: it may save the clamp below). ``lz``, when given, is ``(count, zero)``
    of :func:`~accelgen.hdl.common.normalize.leading_zeros` of ``mag`` (at its given width),
    computed earlier so a pipeline can register it (constant ``exp_lsb`` only).

    The magnitude is normalized by its leading-zero count, but never further than the
    subnormal binade allows (the shift stops where the last kept bit weighs ``2**exp_min``
    of the format); the top ``man_bits + 1`` bits are kept, the next is the round bit, and
    everything below (plus ``sticky``) is the sticky bit. The exponent field and the
    significand are added, so a rounding carry (or a subnormal rounding up to the smallest
    normal) moves the exponent for free. A variable exponent so low that the whole value lies
    below half the smallest subnormal is clamped (its result is zero anyway), which bounds
    the zeros the magnitude needs on top.
    """
    kept = fmt.man_bits + 1
    mag, sticky = mag.as_unsigned(), Value.cast(sticky)
    given = len(mag)
    tiny = Const(0, 1)
    if isinstance(exp_lsb, int):
        width = max(given, kept + 2, kept + fmt.exp_min - exp_lsb)
    else:
        lowest = fmt.exp_min - given        # below it: value < 2**(exp_min - 1)
        if exp_min is None or exp_min < lowest:
            tiny = Signal(name=f"{name}_tiny")
            m.d.comb += tiny.eq(exp_lsb < lowest)
            exp_lsb = Mux(tiny, lowest, exp_lsb)
            exp_min = lowest
        # zeros on top so that the lowest exponent needs no right shift (limit >= 0): a
        # known exp_min (an adder's, say) keeps the window, count and shifter narrow
        width = max(given, kept + 2, kept + fmt.exp_min - exp_min)
    held = Signal(width, name=f"{name}_mag")   # read bit by bit below: hold, don't copy
    m.d.comb += held.eq(mag)
    mag = held
    if lz is None:
        count, zero = leading_zeros(mag, m, name=f"{name}_lz")
    else:                       # the count of the value at its own width, padded on top here
        if not isinstance(exp_lsb, int):
            raise ValueError("round_float: lz needs a constant exp_lsb")
        count, zero = lz[0] + (width - given), lz[1]
    limit = exp_lsb + width - kept - fmt.exp_min   # shift that puts the last kept bit at exp_min
    shift = Signal(range(width + 1), name=f"{name}_shift")
    m.d.comb += shift.eq(Mux(zero, 0, Mux(count > limit, limit, count)))
    shifted = Signal(width, name=f"{name}_norm")
    m.d.comb += shifted.eq(mag << shift)
    q = shifted[width - kept:]
    up = shifted[width - kept - 1] & ((shifted[:width - kept - 1] != 0) | sticky | q[0])
    field = limit - shift                  # biased exponent - 1 of a normal result, 0 else
    code = Signal(signed(len(field) + kept + 2), name=f"{name}_code")
    m.d.comb += code.eq((field << fmt.man_bits) + q + up)
    if saturate or not fmt.has_nan:
        overflow = fmt.max_code
    else:
        overflow = fmt.inf_code if fmt.has_inf else fmt.nan_code
    out = Signal(fmt.width, name=name)
    if fmt.max_code & ((1 << fmt.man_bits) - 1) == (1 << fmt.man_bits) - 1:
        # the largest value has an all-ones fraction: compare the exponent bits only (a
        # short compare instead of one as wide as the code, at the end of the path)
        too_big = code[fmt.man_bits:] > (fmt.max_code >> fmt.man_bits)
    else:
        too_big = code > fmt.max_code
    magnitude = Mux((zero & ~sticky) | tiny, 0, Mux(too_big, overflow, code[:fmt.width - 1]))
    signed_code = Cat(magnitude[:fmt.width - 1], sign)
    if overflow == fmt.nan_code:           # overflow to NaN: the canonical (positive) NaN
        signed_code = Mux(too_big & ~tiny & ~(zero & ~sticky), fmt.nan_code, signed_code)
    m.d.comb += out.eq(signed_code)
    return out


def round_fp32(m, mag, exp_lsb, sign, sticky=0, *, exp_min=None, lz=None, name):
    """:func:`round_float` into FP32 (overflow to inf)."""
    return round_float(m, mag, exp_lsb, sign, FP32, sticky=sticky, exp_min=exp_min, lz=lz,
                       name=name)


def add_fp32(m, x, y, *, name):
    """IEEE binary32 ``x + y`` (codes), round to nearest even, subnormals kept; a NaN result
    is :data:`FP32_NAN`. ``x + (-x)`` is +0, ``-0 + -0`` is -0.

    The operand of larger magnitude is ``X``; ``Y``'s significand is aligned to it with three
    extra low bits and everything shifted out folded into a sticky flag. For a subtraction
    with sticky set the exact difference lies strictly between ``X - Y_kept - 1`` and
    ``X - Y_kept`` (in units of the last kept bit), so the magnitude handed to
    :func:`round_fp32` is ``X - Y_kept - 1`` with its sticky flag: no approximation anywhere.
    """
    dx, dy = (_held(m, decode_element(m, v, FP32, name=f"{name}_{v_name}"),
                    f"{name}_{v_name}") for v, v_name in ((x, "x"), (y, "y")))
    nan = dx.nan | dy.nan | (dx.inf & dy.inf & (dx.sign != dy.sign))
    inf = dx.inf | dy.inf
    inf_sign = Mux(dx.inf, dx.sign, dy.sign)
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq(y[:31] > x[:31])
    big = SimpleNamespace(**{k: Mux(swap, getattr(dy, k), getattr(dx, k))
                             for k in ("sign", "sig", "exp")})
    small = SimpleNamespace(**{k: Mux(swap, getattr(dx, k), getattr(dy, k))
                               for k in ("sign", "sig", "exp")})
    diff = Signal(range(300), name=f"{name}_diff")
    # both differences beside the magnitude compare, not after it: one carry chain less
    diff_xy = Signal(signed(10), name=f"{name}_dxy")
    diff_yx = Signal(signed(10), name=f"{name}_dyx")
    m.d.comb += [diff_xy.eq(dx.exp - dy.exp), diff_yx.eq(dy.exp - dx.exp)]
    m.d.comb += diff.eq(Mux(swap, diff_yx, diff_xy))
    wide = Cat(Const(0, 3), small.sig[:24])            # 27 bits: significand and 3 extra
    cut = Signal(range(28), name=f"{name}_cut")
    m.d.comb += cut.eq(Mux(diff > 27, 27, diff))
    kept = wide >> cut
    # sticky: a set bit is shifted out exactly when the smaller significand has fewer than
    # diff - 3 trailing zeros; both counts run beside the compare, not after the shift
    trailing = {v_name: leading_zeros(d.sig[:24][::-1], m, name=f"{name}_tz{v_name}")
                for v_name, d in (("x", dx), ("y", dy))}
    tz_small = Mux(swap, trailing["x"][0], trailing["y"][0])
    zero_small = Mux(swap, trailing["x"][1], trailing["y"][1])
    sticky = Signal(name=f"{name}_sticky")
    m.d.comb += sticky.eq(~zero_small & (tz_small + 3 < diff))
    big_wide = Cat(Const(0, 3), big.sig[:24])
    subtract = big.sign != small.sign
    magnitude = Signal(28, name=f"{name}_mag")
    m.d.comb += magnitude.eq(Mux(subtract, big_wide - kept - sticky, big_wide + kept))
    rounded = round_fp32(m, magnitude, big.exp - 3, big.sign, sticky, exp_min=FP32.exp_min - 3,
                         name=f"{name}_round")
    exact_zero = (magnitude == 0) & ~sticky
    zero_code = Cat(Const(0, 31), dx.sign & dy.sign)
    result = Signal(32, name=name)
    m.d.comb += result.eq(Mux(nan, FP32_NAN,
                              Mux(inf, Cat(Const(FP32_INF, 31), inf_sign),
                                  Mux(exact_zero, zero_code, rounded))))
    return result


def encode_posit(m, d, fmt, *, name):
    """Posit code of ``fmt`` for a decoded value ``d`` (a namespace of ``sign``, ``sig``,
    ``exp``, ``nan``, ``inf``), as :func:`accelgen.formats.round_to_posit` defines it: NaN and
    inf give NaR, zero 0, anything else the bit string rounded to nearest even, clamped to
    [minpos, maxpos] in magnitude.

    The significand is normalized (leading-zero count), its scale split into the regime
    ``k = scale >> es`` and the exponent bits; the regime pattern (``k + 1`` ones and a zero,
    or ``-k`` zeros and a one) is put at the top of an ``n + es + fraction``-bit string with
    the exponent bits and the fraction shifted in right behind it; the top ``n - 1`` bits are
    the body, the next bit rounds (ties to even with the sticky OR of the rest)."""
    n, es = fmt.n, fmt.es
    sig = d.sig.as_unsigned()
    width = len(sig)
    frac_bits = width - 1
    count, zero = leading_zeros(sig, m, name=f"{name}_lz")
    norm = Signal(width, name=f"{name}_norm")
    m.d.comb += norm.eq(sig << count)
    scale = Signal(signed(12), name=f"{name}_scale")
    m.d.comb += scale.eq(d.exp + (width - 1) - count)
    k = Signal(signed(12), name=f"{name}_k")
    m.d.comb += k.eq(scale >> es)
    e_bits = scale[:es] if es else Const(0, 0)
    tail = Cat(norm[:frac_bits], e_bits)                     # exponent bits, then fraction
    tail_bits = frac_bits + es
    total = n + tail_bits                                    # regime at most n bits
    # regime left-aligned in n bits: k >= 0: k + 1 ones; k < 0: a one after -k zeros
    regime_len = Signal(range(n + 2), name=f"{name}_rlen")
    in_range = (k <= n - 2) & (k >= -(n - 2))
    k_pos = Mux(k >= 0, k, 0)[:len(regime_len)]
    k_neg = Mux(k < 0, -k, 0)[:len(regime_len)]
    m.d.comb += regime_len.eq(Mux(k >= 0, k_pos + 2, k_neg + 1))
    ones = Signal(n, name=f"{name}_ones")
    m.d.comb += ones.eq(Mux(k >= 0, ~(Const((1 << n) - 1, n) >> (k_pos + 1)),
                            Const(1 << (n - 1), n) >> k_neg))
    string = Signal(total, name=f"{name}_string")
    m.d.comb += string.eq(Cat(Const(0, tail_bits), ones) | ((tail << n) >> regime_len))
    body = string[total - (n - 1):]
    guard = string[total - n]
    sticky = string[:total - n] != 0
    rounded = Signal(n, name=f"{name}_rounded")
    m.d.comb += rounded.eq(body + (guard & (sticky | body[0])))
    largest = (1 << (n - 1)) - 1
    magnitude = Signal(n - 1, name=f"{name}_body")
    m.d.comb += magnitude.eq(Mux(~in_range, Mux(k > 0, largest, 1),
                                 Mux(rounded > largest, largest, Mux(rounded == 0, 1, rounded))))
    out = Signal(n, name=name)
    m.d.comb += out.eq(Mux(d.nan | d.inf, 1 << (n - 1),
                           Mux(zero, 0, Mux(d.sign, -Cat(magnitude, Const(0, 1)),
                                            Cat(magnitude, Const(0, 1))))))
    return out


# -- decoded elements carried as one value, products, conversion ------------------------------


def pack_decoded(d, sig_bits, exp_bits):
    """``Cat(sig, exp, sign, nan, inf)`` of decoded ``d``: ``sig_bits`` unsigned, ``exp_bits``
    signed (the form arrays carry elements in, so each is decoded once)."""
    sig = d.sig.as_unsigned()
    sig = sig[:sig_bits] if len(sig) >= sig_bits else Cat(sig, Const(0, sig_bits - len(sig)))
    exp = d.exp.as_signed()
    exp = exp[:exp_bits] if len(exp) >= exp_bits else _extend(exp, exp_bits)
    return Cat(sig, exp, d.sign, d.nan, d.inf)


def _extend(value, width):
    value = value.as_signed()
    return Cat(value, value[-1].replicate(width - len(value)))


def unpack_decoded(packed, sig_bits, exp_bits):
    """The namespace :func:`pack_decoded` packed."""
    return SimpleNamespace(sig=packed[:sig_bits],
                           exp=packed[sig_bits:sig_bits + exp_bits].as_signed(),
                           sign=packed[sig_bits + exp_bits], nan=packed[sig_bits + exp_bits + 1],
                           inf=packed[sig_bits + exp_bits + 2])


def read_element(m, slot, formats, mode, *, sig_bits, exp_bits, name):
    """Signal holding the low bits of ``slot`` decoded in ``formats[mode]`` and packed
    (:func:`pack_decoded`); with one format there is no ``mode`` switch, a mode code past
    the list reads as +0 (all zero)."""
    out = Signal(sig_bits + exp_bits + 3, name=name)
    packed = [pack_decoded(decode_element(m, slot, fmt, name=f"{name}_{code}"), sig_bits,
                           exp_bits) for code, fmt in enumerate(formats)]
    if len(formats) == 1:
        m.d.comb += out.eq(packed[0])
        return out
    with m.Switch(mode):
        for code, value in enumerate(packed):
            with m.Case(code):
                m.d.comb += out.eq(value)
    return out


def product_fp32(m, da, db, *, exp_min, name):
    """FP32 code of the product of decoded elements ``da`` and ``db``, rounded to nearest
    even (exact when it fits FP32): NaN (:data:`FP32_NAN`) when an operand is NaN or inf
    times zero, inf of the product's sign when an operand is inf, a zero of the product's
    sign when an operand is zero. ``exp_min`` is the lowest ``da.exp + db.exp``."""
    sign = da.sign ^ db.sign
    zero_a = (da.sig == 0) & ~da.nan & ~da.inf
    zero_b = (db.sig == 0) & ~db.nan & ~db.inf
    nan = da.nan | db.nan | (da.inf & zero_b) | (db.inf & zero_a)
    inf = da.inf | db.inf
    mag = Signal(len(da.sig) + len(db.sig), name=f"{name}_mag")
    exp = Signal(signed(max(len(da.exp), len(db.exp)) + 1), name=f"{name}_exp")
    m.d.comb += [mag.eq(da.sig * db.sig), exp.eq(da.exp + db.exp)]
    rounded = round_fp32(m, mag, exp, sign, exp_min=exp_min, name=f"{name}_round")
    code = Signal(32, name=name)
    m.d.comb += code.eq(Mux(nan, FP32_NAN, Mux(inf, Cat(Const(FP32_INF, 31), sign), rounded)))
    return code


def convert_element(m, d, dst, *, saturate, exp_min, name):
    """Code of ``dst`` (a float or posit format) for decoded ``d``, as the ``cast`` block
    defines it (:func:`accelgen.sim.golden.cast.convert`): finite values rounded to nearest
    even once; infinities to the largest value (``saturate`` or a format with neither inf
    nor NaN), else inf or NaN (E4M3); NaN to the format's NaN, +0 where it has none (FP6/FP4),
    NaR for posits. ``exp_min`` is the lowest value of ``d.exp``."""
    if not isinstance(dst, FloatFormat):
        return encode_posit(m, d, dst, name=name)
    rounded = round_float(m, d.sig, d.exp, d.sign, dst, saturate=saturate, exp_min=exp_min,
                          name=name)
    if saturate or not dst.has_nan:
        inf_code = Cat(Const(dst.max_code, dst.width - 1), d.sign)
    elif dst.has_inf:
        inf_code = Cat(Const(dst.inf_code, dst.width - 1), d.sign)
    else:
        inf_code = Const(dst.nan_code, dst.width)
    code = Signal(dst.width, name=f"{name}_code")
    m.d.comb += code.eq(Mux(d.nan, dst.nan_code if dst.has_nan else 0,
                            Mux(d.inf, inf_code, rounded)))
    return code
