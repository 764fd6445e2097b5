"""Block ``activation``: an elementwise nonlinear unit with three back-ends.

Every lane has its own copy of the back-end's pipeline; ``valid`` and ``last`` travel beside
them in a register chain of the same length. ``[...]`` marks a register stage::

    table (latency 2)          pwl (latency 4 nonuniform, 3 uniform)
      x - in_min                 nonuniform: j = #{bases[1:] <= x}  (comparators, thermometer)
        │                          [j, low bits of x]
      [ROM read port]            j, offset = top, low bits of x - lo   (uniform: wiring only)
        │                          (M_j, C_j + 2**(F-1), base_j) from j;  offset = x - base_j
      [y]                          [M_j, C'_j, offset]
                                 p = M_j * offset                      (multiplier)
                                   [p, C'_j]
                                 y = sat((p + C'_j) >> F)
                                   [y]

    ibert gelu (latency 7)                       ibert exp (latency 7)
      d = min(|x| + b, 0)                          xc = clamp(x, n x0, 0)
                                                   P = xc * -div_mult        (multiplier)
        [d, x<0, x]                                  [xc, P]     q = P >> div_shift
      sq = d * d                (multiplier)       r = xc - q x0, u = r + b  (table of q x0)
        [sq, x<0, x]                                 [r, u, q]
      t = (sgn(x) (sq + c)) >> k  + one            z0 = r * u                (multiplier)
        [t, x]                                       [z0, q]
      y_int = x * t             (multiplier)       partial products of z0 * mult  (mult.)
        [y_int]                                      [pp, q]
      partial products of y_int * (sign mult)      p0 = sum of pp
        [pp]                    (multiplier)         [p0, q]
      p = sum of pp                                a = (p0 + c mult) >> (shift - 1)
        [p]                                          [a, q]
      y = sat((p + zp 2**shift + 2**(shift-1)) >> shift)   y = sat(((a >> q) + 1 + 2 zp) >> 1)
        [y]                                          [y]

DSP blocks. Every product is :func:`~accelgen.hdl.common.dsp.dsp_product`: elaborated for an
FPGA family it is that family's DSP primitive (iCE40 ``SB_MAC16``, ECP5 ``MULT18X18D``) with
its own registers in use, so that no DSP is a combinational island between fabric registers
(nextpnr-ice40 does not time those at all). The register before a product is the DSP's input
register, the register after it its output register (``sq``, PWL's ``p``, i-exp's ``P`` which
has no input register) where the product goes to fabric logic; a product that feeds another
multiplier leaves its DSP unregistered and lands in the next DSP's input registers (``y_int``,
``z0``). The output multipliers of I-BERT are wider than one DSP multiply (``y_int * mult``:
22 x 16 bits signed at preset ``gelu_ibert``, after the constant's trailing zero; ``z0 *
mult``: 22 x 11 at ``exp_ibert``; two DSPs on either family): their partial products are
registered in the DSPs and summed in a stage of their own, whatever the family (so the
latency is the same everywhere; with ``dsp`` off, or without a family, that stage registers
the product once more). Every register of the DSPs loads on the pipeline's stall enable; the
DSPs' registers are cleared by the reset, the data registers they stand in for are not, which
only changes data that no valid beat carries. ``t``, ``y_int`` and ``z0`` are as wide as
their ranges, so that ``x * t`` fits one DSP and the products after them are no wider than
they need to be.

Trade-offs. A multiplier and the adder that consumes its product never share a stage; the
longest fabric stages are two short adders in series (i-GELU's ``t``) or an adder followed by
the saturating compare. The table back-end is a block-RAM ROM (one read port per lane) with an
output register after it, so the ROM's clock-to-out does not reach the consumer. The segment
search of nonuniform PWL is a bank of comparators against constants (at most 63 per lane)
whose outputs form a thermometer code: one stage, no multiplier. The ``x // x0`` of i-exp is
an exact multiply-shift division (:func:`accelgen.approx.floor_div_magic`, one DSP per lane)
fed by the clamp of ``x`` (one constant compare and two muxes) in the same stage; ``q`` is a
bit field of the product, so the next stage is the table of ``q x0`` and a subtraction, as it
was when 30 comparators per lane formed ``q`` (s16 preset on ECP5: 1226 LUT4 + 1020 CCU2C +
12 DSP with comparators, 602 LUT4 + 276 CCU2C + 16 DSP with the multiply).

Numeric semantics are defined by :mod:`accelgen.sim.golden.activation`; parameters and
constants by :class:`accelgen.generators.activation.ActivationConfig` and
:mod:`accelgen.approx` (the ROM contents, PWL segments and I-BERT constants are the config's,
never recomputed here).
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned

from ..approx import floor_div_magic, half_up_bias, signed_bits
from .common.arith import lut_product
from .common.dsp import dsp_product
from .common.numerics import saturate
from .common.pipeline import Pipeline, register, stall_enable
from .common.rom import ROM
from .common.stream import StreamBlock

__all__ = ["Activation"]


class Activation(StreamBlock):
    """Elementwise GELU / SiLU / sigmoid / tanh / exp / reciprocal / rsqrt on integer codes.

    Each lane maps its input code to the output code the golden model
    :func:`accelgen.sim.golden.activation.activation` gives, by the back-end of
    ``config.backend`` (full ROM, piecewise-linear segments or I-BERT integer polynomials).
    Every input bit pattern is a legal code.

    Parameters
    ----------
    config : ActivationConfig

    Members
    -------
    i : In(stream.Signature(...))
        ``x`` (``lanes`` codes of ``in_format``, lane ``l`` at bit ``l * in_width``) and
        ``last`` (a tag).
    o : Out(stream.Signature(...))
        ``y`` (``lanes`` codes of ``out_format``, lane ``l`` at bit ``l * out_width``) and the
        ``last`` of the same beat.
    latency : int
        ``config.latency``: table 2, pwl 3 (uniform) or 4 (nonuniform), ibert 7.

    Timing
    ------
    Accepts one beat per cycle while ``o`` is not stalled; an accepted beat appears on ``o``
    ``latency`` cycles later (``o.valid`` rises ``latency`` clock edges after the edge that
    took it). A stalled ``o`` (valid without ready) freezes every stage, and ``i.ready``
    falls in the same cycle; bubbles travel down the pipeline as invalid stages.
    """

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        en = stall_enable(m, self.o, self.i)
        self._platform = platform          # the DSP family the products are built for

        w, ow = cfg.in_fmt.width, cfg.out_fmt.width
        lanes = [self.i.payload.x[lane * w:(lane + 1) * w] for lane in range(cfg.lanes)]
        backend = {"table": self._table, "pwl": self._pwl, "ibert": self._ibert}[cfg.backend]
        ys, depth = backend(m, en, lanes)
        if depth + 1 != cfg.latency:     # the config's latency is what the manifest publishes
            raise AssertionError(f"{cfg.backend} pipeline has {depth + 1} stages, "
                                 f"config.latency says {cfg.latency}")

        # valid and last, beside the lanes' pipelines (whose data registers have no reset: with
        # one, yosys leaves an iCE40 SB_MAC16 combinational, and nextpnr does not time it)
        tags = Pipeline(m, enable=en)
        s = SimpleNamespace(valid=self.i.valid, last=self.i.payload.last)
        for _ in range(depth):
            s = tags.stage(valid=s.valid, last=s.last)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(s.valid), self.o.payload.last.eq(s.last)]
            for lane, y in enumerate(ys):
                m.d.sync += self.o.payload.y[lane * ow:(lane + 1) * ow].eq(y)
        return m

    # Each back-end maps the lanes' raw input bits to the lanes' output codes (the values the
    # output register loads) and returns ``(codes, registers before the output register)``.

    def _table(self, m, en, lanes):
        """One ROM entry per code, read at ``x - in_min``; the read port is the only stage."""
        cfg = self.config
        rom = ROM(m, "rom", cfg.table, shape=_format_shape(cfg.out_fmt))
        ys = []
        for bits in lanes:
            port = rom.read_port(domain="sync")
            m.d.comb += [port.addr.eq(_code_index(bits, cfg.in_fmt)), port.en.eq(en)]
            ys.append(port.data)
        return ys, 1

    def _pwl(self, m, en, lanes):
        """``y = sat((C_j + 2**(F-1) + M_j * (x - base_j)) >> F)``; the rounding constant is
        folded into the intercept table, which saves the adder of a separate rounding step."""
        cfg, p = self.config, self.config.pwl
        if p.lo != cfg.in_fmt.min:
            raise AssertionError(f"PWL starts at {p.lo}, the input format at {cfg.in_fmt.min}")
        icpts = [c + half_up_bias(p.frac) for c in p.intercepts]
        icpt_shape = signed(max(signed_bits(c) for c in icpts))
        ob = p.offset_bits
        ys = []
        for lane, bits in enumerate(lanes):
            pipe = Pipeline(m, enable=en, suffix=str(lane), reset=())
            if p.uniform_shift is not None:
                # bases are lo + j * 2**shift: index and offset are bit fields of x - lo
                idx, sh = _code_index(bits, cfg.in_fmt), p.uniform_shift
                j = idx[sh:]
                offset = idx[:sh] if sh else Const(0, 1)
            else:
                x = _read(bits, cfg.in_fmt)
                s = pipe.stage(j=_thermometer_count([x >= b for b in p.bases[1:]]),
                               x_low=bits[:ob])
                j = s.j
                # offset < 2**ob, so its low ob bits are all there is to compute
                base_low = _lookup(m, j, [b & ((1 << ob) - 1) for b in p.bases], unsigned(ob),
                                   name=f"base{lane}")
                offset = (s.x_low - base_low)[:ob]
            slope = _lookup(m, j, p.slopes, signed(p.slope_bits), name=f"slope{lane}")
            icpt = _lookup(m, j, icpts, icpt_shape, name=f"icpt{lane}")
            s = pipe.stage(slope=slope, icpt=icpt, offset=offset)
            # the DSP's input and output registers stand in for slope, offset and prod
            prod = self._product(m, pipe, slope, offset, s.slope, s.offset,
                                 output_register=True, name=f"pwl{lane}")
            s = pipe.stage(icpt=s.icpt)
            ys.append(saturate((prod + s.icpt) >> p.frac, cfg.out_fmt))
        return ys, pipe.depth

    def _product(self, m, pipe, a_next, b_next, a_q, b_q, *, output_register, name):
        """Exact ``a * b`` of the values ``a_next``/``b_next`` that ``pipe`` registers as
        ``a_q``/``b_q`` (``None``: unregistered operands, the product of ``a_next * b_next``),
        registered once more when ``output_register`` (on ``pipe``'s enable, as its stages):
        with ``config.dsp`` on the elaborating family's DSPs with their input (and output)
        registers in place of ``pipe``'s, which then feed nothing and are removed
        (:func:`~accelgen.hdl.common.dsp.dsp_product`; ``*`` without a family); with
        ``config.dsp`` off shifted partial products of the registers over the bits of ``b``
        (pass the narrower operand, or the constant, as ``b``)."""
        if self.config.dsp:
            return dsp_product(m, a_next, b_next, a_q, b_q, output_register=output_register,
                               platform=self._platform, enable=pipe.enable, name=name)
        a, b = (a_next, b_next) if a_q is None else (a_q, b_q)
        product = lut_product(m, a, b, name=name)
        if not output_register:
            return product
        return register(m, product, enable=pipe.enable, name=f"{name}_p", reset=False)

    def _ibert(self, m, en, lanes):
        build = self._ibert_exp if self.config.function == "exp" else self._ibert_gelu
        ys = []
        for lane, bits in enumerate(lanes):
            pipe = Pipeline(m, enable=en, suffix=str(lane), reset=())
            ys.append(build(m, pipe, bits.as_signed(), lane))
        return ys, pipe.depth

    def _ibert_gelu(self, m, pipe, x, lane):
        """i-GELU (:class:`accelgen.approx.IBertGelu`) and the output multiplier:
        ``y = sat(zp + round_half_up(sign * x * (e + one) * mult / 2**shift))``."""
        cfg, ib = self.config, self.config.ibert
        poly, mult, shift = ib["poly"], ib["sign"] * ib["mult"], ib["shift"]
        b, c, k, one = poly.b_int, poly.c_int, poly.erf_shift, poly.one_int

        # min(|x|, -b) + b == min(|x| + b, 0): one adder and a sign test instead of two
        # comparisons; both signs' sums are formed side by side.
        d = Signal(signed(signed_bits(b)), name=f"d{lane}")          # [b, 0]
        v = Mux(x < 0, b - x, x + b)
        m.d.comb += d.eq(Mux(v > 0, 0, v))
        s = pipe.stage(d=d, neg=x < 0, x=x)
        # the DSP's input registers stand in for d, its output register for sq
        sq = self._product(m, pipe, d, d, s.d, s.d, output_register=True, name=f"sq{lane}")
        s = pipe.stage(neg=s.neg, x=s.x)
        # e = (sgn(x) * (sq + c)) >> k, floor. For x < 0, floor(-v / 2**k) == ~((v - 1) >> k),
        # so no negation sits in series with the shift: t = e + one is one adder after the
        # first. x == 0 takes the positive branch where sgn(0) is 0, harmless as y = x * t.
        # t is as wide as its range (sq in [0, b**2]; both branches are monotonic in sq), so
        # that x * t fits one DSP where it can.
        t_pos = ((sq + c) >> k) + one
        t_neg = (one - 1) - ((sq + (c - 1)) >> k)
        ends = [((v + c) >> k) + one for v in (0, b * b)] + \
               [(one - 1) - ((v + (c - 1)) >> k) for v in (0, b * b)]
        t_range = (min(ends), max(ends))
        t = Signal(signed(_range_bits(*t_range)), name=f"t{lane}")
        m.d.comb += t.eq(Mux(s.neg, t_neg, t_pos))
        x_next, s = s.x, pipe.stage(t=t, x=s.x)
        # y_int leaves its DSP unregistered: the output multiplier's input registers hold it
        y_range = _product_range(t_range, (cfg.in_fmt.min, cfg.in_fmt.max))
        y_int = _cut(self._product(m, pipe, t, x_next, s.t, s.x, output_register=False,
                                   name=f"yint{lane}"), *y_range)
        s = pipe.stage(y_int=y_int)
        # y_int * mult: wider than one DSP multiply (two or more on the FPGA), partial products
        # in the DSPs' output registers, then their sum registered in a stage of its own
        prod = self._product(m, pipe, y_int, mult, s.y_int, mult, output_register=True,
                             name=f"out{lane}")
        pipe.stage()                      # the partial products' registers, in the DSPs
        s = pipe.stage(prod=_cut(prod, *_product_range(y_range, (mult, mult))))
        # zp and the half-LSB are one constant: floor((p + h) / 2**s) + zp == floor((p + h +
        # zp * 2**s) / 2**s)
        bias = (cfg.out_zero_point << shift) + half_up_bias(shift)
        return saturate((s.prod + bias) >> shift, cfg.out_fmt)

    def _ibert_exp(self, m, pipe, x, lane):
        """i-exp (:class:`accelgen.approx.IBertExp`) and the output multiplier:
        ``y = sat(zp + round_half_up(z * mult / 2**(shift + q)))``.

        ``x`` clamped to ``[n * x0, 0]`` (codes outside clamp to an end, where ``r`` is 0) is
        ``xc``; ``q = xc // x0 = |xc| // |x0|`` is the exact multiply-shift division of
        :func:`ibert_exp_divider`, formed as ``xc * -div_mult`` (non-negative, no negation
        of ``xc``) whose bits from ``div_shift`` up are ``q``. ``r = xc - q * x0`` then needs
        one table of ``q * x0``.

        Rounding by the variable amount ``shift + q``: with ``a = p >> (shift - 1)`` (floor),
        ``round_half_up(p / 2**(shift + q)) == floor((a / 2**q + 1) / 2)``, so the variable
        shifter works on ``a`` and the round-up is the bit it shifts into position 0.
        """
        cfg, ib = self.config, self.config.ibert
        poly, mult, shift = ib["poly"], ib["sign"] * ib["mult"], ib["shift"]
        x0, n, b, c = poly.x0_int, poly.n, poly.b_int, poly.c_int
        fmt = cfg.in_fmt
        div = ibert_exp_divider(poly)

        k_max = min(n, -fmt.min // -x0)          # the largest q a code of the format reaches
        # x >= 0 (sign bit clear) clamps to 0; the low clamp only where the format reaches it
        xc = Signal(signed(fmt.width), name=f"xc{lane}")
        low = Mux(x < n * x0, n * x0, x) if n * x0 > fmt.min else x
        m.d.comb += xc.eq(Mux(x[-1], low, 0))
        q_bits = max(1, k_max.bit_length())
        # == |xc| * div_mult >= 0, registered whole (the DSP's output register) beside xc
        prod = self._product(m, pipe, xc, -div["mult"], None, None, output_register=True,
                             name=f"div{lane}")
        s = pipe.stage(xc=xc)
        s.q = prod[div["shift"]:div["shift"] + q_bits]

        # r and u lie in known ranges, so their widths (the low bits of the differences) are
        # all there is to compute; two tables, not r + b after r: the subtractions run side by
        # side
        r = Signal(signed(signed_bits(x0 + 1)), name=f"r{lane}")     # (x0, 0]
        u = Signal(signed(max(signed_bits(x0 + 1 + b), signed_bits(b))), name=f"u{lane}")
        qx0 = _lookup(m, s.q, [k * x0 for k in range(k_max + 1)],
                      signed(signed_bits(k_max * x0)), name=f"qx0_{lane}")
        qx0_b = _lookup(m, s.q, [k * x0 - b for k in range(k_max + 1)],
                        signed(max(signed_bits(k * x0 - b) for k in range(k_max + 1))),
                        name=f"qx0_b{lane}")
        m.d.comb += [r.eq(s.xc - qx0), u.eq(s.xc - qx0_b)]
        s = pipe.stage(r=r, u=u, q=s.q)
        # z0 leaves its DSP unregistered: the output multiplier's input registers hold it
        z_range = _product_range((x0 + 1, 0), (x0 + 1 + b, b))
        z0 = _cut(self._product(m, pipe, u, r, s.u, s.r, output_register=False,
                                name=f"z{lane}"), *z_range)
        s = pipe.stage(z0=z0, q=s.q)
        # z0 * mult: partial products in the DSPs' output registers, then their sum
        p0 = self._product(m, pipe, z0, mult, s.z0, mult, output_register=True,
                           name=f"out{lane}")
        s = pipe.stage(q=s.q)
        s = pipe.stage(p0=_cut(p0, *_product_range(z_range, (mult, mult))), q=s.q)
        # z * mult == z0 * mult + c * mult: the constant joins after the multiplier
        p = s.p0 + c * mult
        s = pipe.stage(a=p >> (shift - 1) if shift else p << 1, q=s.q)
        return saturate(((s.a >> s.q) + (1 + 2 * cfg.out_zero_point)) >> 1, cfg.out_fmt)


def ibert_exp_divider(poly):
    """The exact ``q = |xc| // |x0_int|`` of i-exp (``poly``: :class:`accelgen.approx.IBertExp`)
    as a multiply and a shift: ``{"divisor", "dividend_bits", "mult", "shift"}`` with
    ``(u * mult) >> shift == u // divisor`` for every ``0 <= u < 2**dividend_bits``
    (:func:`accelgen.approx.floor_div_magic`); the clamp keeps ``|xc| <= n * |x0_int|``,
    which ``dividend_bits`` covers."""
    divisor = -poly.x0_int
    bits = (poly.n * divisor).bit_length()
    mult, shift = floor_div_magic(divisor, bits)
    return {"divisor": divisor, "dividend_bits": bits, "mult": mult, "shift": shift}


def _range_bits(lo, hi):
    """Bits of the narrowest signed number holding every integer in ``[lo, hi]``."""
    return max(signed_bits(lo), signed_bits(hi))


def _product_range(a, b):
    """``(min, max)`` of ``x * y`` over ``x`` in ``[a[0], a[1]]`` and ``y`` in
    ``[b[0], b[1]]``."""
    ends = [x * y for x in a for y in b]
    return min(ends), max(ends)


def _cut(value, lo, hi):
    """A signed ``value`` known to lie in ``[lo, hi]``, as that range's narrowest signed
    number (its low bits: exact)."""
    bits = _range_bits(lo, hi)
    return value if len(value) <= bits else value[:bits].as_signed()


def _format_shape(fmt):
    """The Amaranth shape of an :class:`~accelgen.numerics.IntFormat`'s codes."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def _read(bits, fmt):
    """Raw code bits read as ``fmt``."""
    return bits.as_signed() if fmt.signed else bits


def _code_index(bits, fmt):
    """``x - fmt.min`` as an unsigned number of ``fmt.width`` bits: for a signed format that
    is the two's complement code with its sign bit flipped (no adder)."""
    return Cat(bits[:-1], ~bits[-1]) if fmt.signed else bits


def _thermometer_count(flags):
    """How many of ``flags`` are set, where ``flags[i]`` implies ``flags[i - 1]`` (the
    comparisons of one value against ordered constants). The count is the position of the
    thermometer's edge; each of its bits is an OR of one-hot edge terms (a few LUT levels for
    tens of flags), where an adder tree would be a chain of adders."""
    if not flags:
        return Const(0, 1)
    flags = list(flags) + [Const(0, 1)]
    edges = {k: flags[k - 1] & ~flags[k] for k in range(1, len(flags))}
    bits = [Cat(*[e for k, e in edges.items() if k >> i & 1]).any()
            for i in range((len(flags) - 1).bit_length())]
    return Cat(*bits)


def _lookup(m, index, values, shape, *, name):
    """``values[index]`` as a ``shape`` signal (a small ROM that yosys maps to LUTs); the
    constant itself when every entry is equal."""
    if len(set(values)) == 1:
        return Const(values[0], shape)
    out = Signal(shape, name=name)
    with m.Switch(index):
        for k, v in enumerate(values):
            with m.Case(k):
                m.d.comb += out.eq(v)
    return out
