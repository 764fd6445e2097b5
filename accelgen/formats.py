"""Element formats beyond integers: OCP/IEEE-style floats, posits, and the exact decoded form
every multiplier in accelgen works on. Pure Python (no numpy, no Amaranth).

Every element of every format decodes to the same exact form::

    value = (-1)**sign * sig * 2**exp        (sig, exp integers; sig >= 0)

plus two flags, ``nan`` and ``inf``. A product of two decoded elements is exact
(``sign_a ^ sign_b``, ``sig_a * sig_b``, ``exp_a + exp_b``), and a sum of products is exact in a
fixed-point register whose LSB weighs ``2**(smallest product exp)`` -- the "Kulisch" register
of the float MAC modes. Integers decode to ``(sign, |x|, 0)``.

Formats (names as configs and mode strings spell them):

========  ===========================  ====  =====  ==========================================
name      reference (ml_dtypes)        bits  bias   specials
========  ===========================  ====  =====  ==========================================
e4m3      float8_e4m3fn (OCP FP8)      8     7      no inf; NaN = S.1111.111; max 448
e5m2      float8_e5m2 (OCP FP8)        8     15     IEEE inf/NaN; max 57344
e3m2      float6_e3m2fn (OCP FP6)      6     3      none; max 28
e2m3      float6_e2m3fn (OCP FP6)      6     1      none; max 7.5
e2m1      float4_e2m1fn (OCP FP4)      4     1      none; max 6
bf16      bfloat16                     16    127    IEEE inf/NaN
fp16      float16 (IEEE binary16)      16    15     IEEE inf/NaN
fp32      float32 (IEEE binary32)      32    127    IEEE inf/NaN (accumulators, converters)
p4        posit(4, 1)  (XR-NPE)        4     -      one NaR code (0b1000): read as NaN
p8        posit(8, 0)                  8     -      NaR 0x80
p16       posit(16, 1)                 16    -      NaR 0x8000
========  ===========================  ====  =====  ==========================================

Subnormals exist in every float format (exponent field 0: ``sig = fraction``, exponent of the
smallest normal). A posit ``p(n, es)`` is sign, a regime run of ``k`` (value ``useed**k``,
``useed = 2**2**es``), up to ``es`` exponent bits (missing low bits are 0) and the fraction;
negative posits are the two's complement of their magnitude's code.
"""

from dataclasses import dataclass

from .numerics import ConfigError, IntFormat

__all__ = ["FloatFormat", "PositFormat", "MXElement", "Decoded", "FLOAT_FORMATS",
           "POSIT_FORMATS", "MX_FORMATS", "E8M0_BIAS", "E8M0_NAN",
           "ELEMENT_FORMATS", "FP32", "element_format", "int_decode", "decode_range",
           "product_range", "round_to_float", "round_to_posit"]


@dataclass(frozen=True)
class Decoded:
    """Exact value of one element: ``(-1)**sign * sig * 2**exp`` unless ``nan`` or ``inf``
    (then ``sig`` is 0 and ``sign`` is the infinity's sign)."""
    sign: int
    sig: int
    exp: int
    nan: bool = False
    inf: bool = False


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: sign, ``exp_bits`` exponent, ``man_bits`` fraction.

    Members
    -------
    name : str
    exp_bits, man_bits, bias : int
    specials : ``"ieee"``, ``"fn"`` or ``"none"``
        ``ieee``: the all-ones exponent is inf (fraction 0) or NaN; ``fn`` (OCP E4M3): only
        the all-ones code magnitude is NaN, no inf; ``none``: every code is a finite number.
    ml_dtype : str
        The ``ml_dtypes``/numpy type with the same encoding (the reference in tests).
    """
    name: str
    exp_bits: int
    man_bits: int
    bias: int
    specials: str
    ml_dtype: str

    kind = "float"
    signed = True

    @property
    def width(self):
        return 1 + self.exp_bits + self.man_bits

    @property
    def sig_bits(self):
        """Bits of the decoded significand (hidden bit + fraction)."""
        return self.man_bits + 1

    @property
    def exp_min(self):
        """``exp`` of subnormals and of the smallest binade: ``1 - bias - man_bits``."""
        return 1 - self.bias - self.man_bits

    @property
    def max_field(self):
        """Largest exponent field that holds finite numbers."""
        top = (1 << self.exp_bits) - 1
        return top - 1 if self.specials == "ieee" else top

    @property
    def exp_max(self):
        return self.max_field - self.bias - self.man_bits

    @property
    def max_code(self):
        """Code of the largest finite positive value."""
        frac = (1 << self.man_bits) - 1 - (1 if self.specials == "fn" else 0)
        return (self.max_field << self.man_bits) | frac

    @property
    def has_inf(self):
        return self.specials == "ieee"

    @property
    def has_nan(self):
        return self.specials != "none"

    @property
    def nan_code(self):
        """The canonical (quiet, positive) NaN this format's converters write."""
        if self.specials == "ieee":
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << (self.man_bits - 1))
        if self.specials == "fn":
            return (1 << (self.width - 1)) - 1
        return None

    @property
    def inf_code(self):
        return ((1 << self.exp_bits) - 1) << self.man_bits if self.has_inf else None

    @property
    def negative_zero_code(self):
        return 1 << (self.width - 1)

    def decode(self, code):
        """:class:`Decoded` value of ``code`` (an unsigned integer of ``width`` bits)."""
        sign = code >> (self.width - 1) & 1
        field = code >> self.man_bits & ((1 << self.exp_bits) - 1)
        frac = code & ((1 << self.man_bits) - 1)
        magnitude = code & ((1 << (self.width - 1)) - 1)
        if self.specials == "ieee" and field == (1 << self.exp_bits) - 1:
            return Decoded(sign, 0, 0, nan=frac != 0, inf=frac == 0)
        if self.specials == "fn" and magnitude == (1 << (self.width - 1)) - 1:
            return Decoded(sign, 0, 0, nan=True)
        if field == 0:
            return Decoded(sign, frac, self.exp_min)
        return Decoded(sign, frac | 1 << self.man_bits, field + self.exp_min - 1)


@dataclass(frozen=True)
class PositFormat:
    """Posit ``(n, es)``: tapered precision, one NaR code (``1 << (n-1)``), no subnormals."""
    name: str
    n: int
    es: int

    kind = "posit"
    signed = True

    @property
    def width(self):
        return self.n

    @property
    def frac_bits(self):
        """Most fraction bits any code has (the regime takes at least 2 bits)."""
        return max(0, self.n - 3 - self.es)

    @property
    def sig_bits(self):
        return self.frac_bits + 1

    @property
    def exp_min(self):
        """``exp`` of minpos as decoded (``sig`` is left-aligned to ``sig_bits``)."""
        return -(self.n - 2) * (1 << self.es) - self.frac_bits

    @property
    def exp_max(self):
        return (self.n - 2) * (1 << self.es) - self.frac_bits

    @property
    def max_code(self):
        return (1 << (self.n - 1)) - 1

    has_inf = False
    has_nan = True

    @property
    def nan_code(self):
        return 1 << (self.n - 1)

    inf_code = None
    negative_zero_code = None

    def decode(self, code):
        """:class:`Decoded` value of ``code``: ``sig`` has the hidden bit at
        ``sig_bits - 1`` (fraction left-aligned), so every nonzero ``sig`` is normalized."""
        n = self.n
        if code == 0:
            return Decoded(0, 0, 0)
        if code == 1 << (n - 1):
            return Decoded(0, 0, 0, nan=True)
        sign = code >> (n - 1)
        mag = (-code) & ((1 << n) - 1) if sign else code
        bits = [(mag >> i) & 1 for i in range(n - 2, -1, -1)]    # after the sign, MSB first
        run = 1
        while run < len(bits) and bits[run] == bits[0]:
            run += 1
        k = run - 1 if bits[0] else -run
        rest = bits[run + 1:]                                       # after the terminating bit
        exp_field = 0
        for i in range(self.es):
            exp_field = exp_field << 1 | (rest[i] if i < len(rest) else 0)
        frac = rest[self.es:]
        frac_value = 0
        for bit in frac:
            frac_value = frac_value << 1 | bit
        sig = (1 << self.frac_bits | frac_value << (self.frac_bits - len(frac)))
        return Decoded(sign, sig, k * (1 << self.es) + exp_field - self.frac_bits)


@dataclass(frozen=True)
class MXElement:
    """An element type of an OCP Microscaling (MX v1.0) block: ``element`` decoded as usual,
    times ``2**exp_offset`` (MXINT8's implicit 2**-6), times the block's shared E8M0 scale
    (applied by the block's dot product, not here). Codes are the element's codes.

    Members
    -------
    name : str
        ``"mxe4m3"``, ``"mxe5m2"``, ``"mxe3m2"``, ``"mxe2m3"``, ``"mxe2m1"``, ``"mxi8"``.
    element : FloatFormat or IntFormat
    exp_offset : int
    """
    name: str
    element: object
    exp_offset: int = 0

    kind = "mx"
    signed = True

    @property
    def width(self):
        return self.element.width

    @property
    def sig_bits(self):
        return decode_range(self.element)[2]

    @property
    def exp_min(self):
        return decode_range(self.element)[0] + self.exp_offset

    @property
    def exp_max(self):
        return decode_range(self.element)[1] + self.exp_offset

    def decode(self, code):
        if isinstance(self.element, IntFormat):
            value = code - (1 << self.width) if code >> (self.width - 1) else code
            d = int_decode(self.element, value)
        else:
            d = self.element.decode(code)
        return Decoded(d.sign, d.sig, d.exp + self.exp_offset, d.nan, d.inf)

    @property
    def max_code(self):
        return self.element.max if isinstance(self.element, IntFormat) else self.element.max_code

    @property
    def nan_code(self):
        return None if isinstance(self.element, IntFormat) else self.element.nan_code

    @property
    def inf_code(self):
        return None if isinstance(self.element, IntFormat) else self.element.inf_code

    @property
    def negative_zero_code(self):
        return getattr(self.element, "negative_zero_code", None)

    @property
    def has_nan(self):
        return self.nan_code is not None

    @property
    def has_inf(self):
        return self.inf_code is not None


#: E8M0 shared scale of an MX block: 2**(code - 127); code 0xFF is NaN
E8M0_BIAS = 127
E8M0_NAN = 0xFF

FLOAT_FORMATS = {f.name: f for f in (
    FloatFormat("e4m3", 4, 3, 7, "fn", "float8_e4m3fn"),
    FloatFormat("e5m2", 5, 2, 15, "ieee", "float8_e5m2"),
    FloatFormat("e3m2", 3, 2, 3, "none", "float6_e3m2fn"),
    FloatFormat("e2m3", 2, 3, 1, "none", "float6_e2m3fn"),
    FloatFormat("e2m1", 2, 1, 1, "none", "float4_e2m1fn"),
    FloatFormat("bf16", 8, 7, 127, "ieee", "bfloat16"),
    FloatFormat("fp16", 5, 10, 15, "ieee", "float16"),
    FloatFormat("fp32", 8, 23, 127, "ieee", "float32"),
)}
FP32 = FLOAT_FORMATS["fp32"]
POSIT_FORMATS = {f.name: f for f in (
    PositFormat("p4", 4, 1), PositFormat("p8", 8, 0), PositFormat("p16", 16, 1))}

def _mx_formats():
    out = {f"mx{n}": MXElement(f"mx{n}", FLOAT_FORMATS[n])
           for n in ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1")}
    out["mxi8"] = MXElement("mxi8", IntFormat(8, True), -6)
    return out


#: MX element types by name (OCP MX v1.0: MXFP8, MXFP6, MXFP4, MXINT8)
MX_FORMATS = _mx_formats()
#: every non-integer element format by name
ELEMENT_FORMATS = {**FLOAT_FORMATS, **POSIT_FORMATS, **MX_FORMATS}


def element_format(text, *, param="format"):
    """The format named ``text``: an :class:`~accelgen.numerics.IntFormat` (``"s8"``,
    ``"u4"``), a :class:`FloatFormat` or a :class:`PositFormat`."""
    if isinstance(text, str) and text in ELEMENT_FORMATS:
        return ELEMENT_FORMATS[text]
    try:
        return IntFormat.parse(text, param=param)
    except ConfigError:
        raise ConfigError(f"{param}: {text!r} is not an element format; allowed are s<n>, "
                          f"u<n> and {', '.join(ELEMENT_FORMATS)}") from None


def int_decode(fmt, value):
    """:class:`Decoded` form of integer ``value`` of :class:`IntFormat` ``fmt``."""
    return Decoded(int(value < 0), abs(int(value)), 0)


def decode_range(fmt):
    """``(exp_min, exp_max, sig_bits)`` of the decoded form of any element of ``fmt``:
    every finite nonzero value is ``sig * 2**exp`` with ``exp_min <= exp <= exp_max`` and
    ``sig < 2**sig_bits``."""
    if isinstance(fmt, IntFormat):
        return 0, 0, fmt.width        # |x| <= 2**(w-1) signed, < 2**w unsigned
    return fmt.exp_min, fmt.exp_max, fmt.sig_bits


def product_range(fmt_a, fmt_b):
    """``(exp_min, magnitude_bits)`` of exact products of ``fmt_a`` x ``fmt_b`` elements:
    every product is an integer multiple of ``2**exp_min`` below ``2**(exp_min +
    magnitude_bits)`` in magnitude."""
    ea0, ea1, sa = decode_range(fmt_a)
    eb0, eb1, sb = decode_range(fmt_b)
    return ea0 + eb0, (ea1 + eb1 + sa + sb) - (ea0 + eb0)


def round_to_float(sign, mag, exp, fmt, *, sticky=False, saturate=False):
    """Code of ``fmt`` nearest to ``(-1)**sign * (mag + d) * 2**exp`` with ties to even,
    where ``0 < d < 1`` if ``sticky`` else ``d = 0`` (``mag >= 0`` integer).

    Overflow (a rounded magnitude above the largest finite value) gives inf where ``fmt``
    has it, else NaN (OCP E4M3), else -- and always when ``saturate`` -- the largest finite
    value of that sign. A nonzero value that rounds to zero keeps its sign (IEEE)."""
    if not isinstance(fmt, FloatFormat):
        raise TypeError(f"round_to_float: {fmt!r} is not a FloatFormat")
    sign_bit = sign << (fmt.width - 1)
    if mag == 0 and not sticky:
        return sign_bit
    # work on an integer ``m`` with 2 spare low bits so that the sticky part is exact:
    # value = (m + d') * 2**e with 0 < d' < 1 only if sticky
    m, e = mag << 2 | (1 if sticky else 0), exp - 2
    top = m.bit_length() - 1 + e                 # exponent of the leading one
    lsb = max(top - fmt.man_bits, fmt.exp_min)   # weight of the result's last bit
    shift = lsb - e
    if shift <= 0:
        q, round_up = m << -shift, False
    else:
        q = m >> shift
        rest = m & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        round_up = rest > half or (rest == half and q & 1)
    q += round_up
    # q * 2**lsb is the rounded magnitude; q may have grown to man_bits + 2 bits
    if q >> (fmt.man_bits + 1):
        q >>= 1
        lsb += 1
    if q == 0:
        return sign_bit
    if q >> fmt.man_bits:            # normal
        field = lsb - fmt.exp_min + 1
        code = field << fmt.man_bits | (q & ((1 << fmt.man_bits) - 1))
    else:                            # subnormal (lsb == exp_min)
        code = q
    if code > fmt.max_code:
        if saturate or not fmt.has_nan:
            code = fmt.max_code
        elif fmt.has_inf:
            code = fmt.inf_code
        else:
            return fmt.nan_code
    return sign_bit | code


def round_to_posit(sign, mag, exp, fmt):
    """Code of posit ``fmt`` for ``(-1)**sign * mag * 2**exp`` (``mag >= 0`` integer), rounded
    as the posit standard (2022) rounds: the exact bit string after the sign (regime,
    exponent bits, fraction) is cut to ``n - 1`` bits with round to nearest, ties to even on
    the bit string; never to zero or NaR: a value beyond maxpos gives maxpos, a nonzero value
    below minpos gives minpos. Zero gives 0; negative values are the two's complement."""
    if not isinstance(fmt, PositFormat):
        raise TypeError(f"round_to_posit: {fmt!r} is not a PositFormat")
    n, es = fmt.n, fmt.es
    if mag == 0:
        return 0
    top = mag.bit_length() - 1
    scale = exp + top                           # value = 1.f * 2**scale
    k, e = scale >> es, scale & ((1 << es) - 1)
    largest = (1 << (n - 1)) - 1
    if k > n - 2:
        body = largest
    elif k < -(n - 2):
        body = 1
    else:
        regime, regime_bits = ((1 << (k + 2)) - 2, k + 2) if k >= 0 else (1, 1 - k)
        string = (((regime << es) | e) << top) | (mag & ((1 << top) - 1))
        length = regime_bits + es + top
        if length <= n - 1:
            body = string << (n - 1 - length)
        else:
            cut = length - (n - 1)
            body, rest = string >> cut, string & ((1 << cut) - 1)
            half = 1 << (cut - 1)
            body += rest > half or (rest == half and body & 1)
        body = min(max(body, 1), largest)
    return (-body) & ((1 << n) - 1) if sign else body
