"""Block ``softmax``: row-wise streaming softmax with base-2 online normalization.

Two passes over every row, joined by a double-buffered row memory. ``[...]`` marks a register
stage; pass 1 and the reciprocal are free-running pipelines, pass 2 stalls as a whole on
``o``::

    i (x, mask, last)                                   pass 1: one element per cycle
      │  ingest: write address, row end (last or n_max-th beat), i.ready
      ▼
    exponent unit (step 1)     table: [x] [x*C] [ROM] [ROM out]                 4 stages
      │                        pwl:   [x] [x*C] [ROM slope, icpt] [ROM out] [slope off] [v]  6
      │                        ibert: [x' div_mult: partial products] [x' div_mult]
      │                               [k q] [-p, p + b] [-p (p + b)]
      │                               [-p (p + b) mult] [v]                          7
      ▼  (k, v, mask)
      ├──────────────────────────────────────────► row memory, 2 * n_max entries of
      │                                            (k, v, mask); bank 0: rows 0, 2, ..
    online normalization (step 2)                  bank 1: rows 1, 3, ..
      max loop:  K = max(K, k)     [shift amounts a, b; v]        │
      sum loop:  S = (S >> a) + (v >> b)                          │ read at 1 element
      │ at a row end: [K, S, end address]                         │ per cycle
      ▼                                                           │
    reciprocal (step 3, once per row)                             │
      [leading zeros] [m, e] [ROM] ([ROM out] [slope off] [PWL v])
      (Newton: [m r] [2**17 - (m r >> 16)] [r t])
      ▼                                                           │
    row info, one slot per bank: (end, Kx = K + e + c, r) ──► reader: address, last, row
                                                                  ▼
                                 pass 2: [memory data] [memory out] [P = v r, shift]
                                         [u8: P >> s, round bit | log2: leading zeros of P]
                                         [y, last] ──► o

Row memory. Row ``n`` lives in bank ``n % 2``. Pass 1 may write element ``j`` of a row into a
bank only once every older row of that bank has been read past element ``j``: either the bank
holds no unread row, or its one unread row is the one pass 2 is reading and its read address
is past ``j``. So the next-but-one row streams in right behind the read-out of its bank and
rows longer than the pipeline latency cost no cycles at the row boundary. Each bank has at
most one row that is finished but not yet started in pass 2, so one row-info slot per bank is
all the queue there is (the reader copies a slot into its own registers when a row starts).

Trade-offs. The exponent ``k`` and mantissa ``v`` are stored rather than the logit, so pass 2
needs no second exponent unit; the price is a wider row memory (``k``, ``v`` and ``mask``:
about ``A + 12`` bits per element against the logit's 8 to 16). Step 2 is split into two
loops a stage apart, because the running maximum decides both rescale shifts: ``S = (S >>
(k - K)) + v`` on a new maximum, else ``S + (v >> (K - k))``, is exactly ``S = (S >> a) +
(v >> b)`` with ``a = max(K, k) - K`` and ``b = max(K, k) - k``. The maximum loop (compare,
mux) registers ``a`` and ``b``; the sum loop is two shifters side by side and an adder, no
subtracter or compare. (As one loop, step 2 held the ``ulx3s-85f`` build of preset
``default`` to 77 MHz; split, the presets reach 119 to 133 MHz on an LFE5U-85F out of
context, limited by the sum loop, a multiplier or the row memory's clock-to-out.) Every
product goes straight into a register, with at most one adder in front of the multiplier;
the adders that consume products sit in the next stage (but for the partial products of
I-BERT's ``-p (p + b) mult`` where it is wider than one DSP multiply: on iCE40, 17 x 18
bits, summed before its register as yosys's own mapping did). Every memory's data is registered
once more before use (ECP5 block RAM has a slow clock-to-out), and the log2 code compares
``P`` against ``sqrt 2`` at each of the few positions its leading one can take instead of
normalizing it with a shifter.

Numeric semantics are defined by :mod:`accelgen.sim.golden.softmax`; parameters and every
constant (``C``, ``G``, tables, PWL segments, I-BERT constants) by
:class:`accelgen.generators.softmax.SoftmaxConfig`, never recomputed here; the signal widths
follow from the config's exact value ranges (``SoftmaxConfig.ranges``).
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from ..approx import half_up_bias
from ..generators.softmax import RECIP_Q, SQRT2_Q15
from .common import formal
from .common.dsp import dsp_product
from .common.normalize import leading_zeros, normalize
from .common.pipeline import Pipeline, stall_enable
from .common.rom import ROM
from .common.stream import StreamBlock

__all__ = ["Softmax"]

_TAGS = ("valid", "end", "addr", "bank", "mask")    # what travels with an element in pass 1

def _range_shape(lo, hi):
    """The narrowest shape that holds every integer in ``[lo, hi]``."""
    return Shape.cast(range(lo, hi + 1))


def _cut_to_range(value, lo, hi):
    """``value`` known to lie in ``[lo, hi]``, cut to :func:`_range_shape` of that range."""
    shape = _range_shape(lo, hi)
    bits = Value.cast(value)[:shape.width]
    return bits.as_signed() if shape.signed else bits


def _saturate_unsigned(value, bits):
    """A non-negative ``value`` as ``bits`` unsigned bits, all ones when it does not fit."""
    return Mux(value[bits:].any(), (1 << bits) - 1, value[:bits])


def _clamp(value, lo, hi):
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def _pwl_rom(m, name, pwl):
    """A ROM of the segments ``(slope, intercept + 2**(frac-1))`` of a uniform ``pwl``."""
    return ROM(m, name, [(sl, c + half_up_bias(pwl.frac))
                         for sl, c in zip(pwl.slopes, pwl.intercepts)])


def _pwl_value(pipe, s, rom, offset, frac, value_range, carry):
    """A PWL's value from a registered word ``s.rom`` of :func:`_pwl_rom`: the product
    ``slope * offset`` in its own stage, then ``(product + intercept) >> frac``
    (combinational, for the caller's next register). Returns the product stage (with the
    ``carry`` fields) and the value."""
    slope, icpt = rom.fields(s.rom)
    s = pipe.stage(prod=slope * offset, icpt=icpt, **_carry(s, *carry))
    return s, _cut_to_range((s.prod + s.icpt) >> frac, *value_range)


#: the pipeline registers a reset clears: the valid bits and the tags that act as control
#: (``row_end`` becomes the reciprocal pipeline's valid). The data beside them need none, and
#: without a reset the registers around a product go into an iCE40 SB_MAC16, so it is timed
_RESET = ("valid", "row_end", "end", "last", "bank", "mask")


def _carry(stage, *names):
    """The named attributes of a stage namespace as a dict, to travel on to the next one."""
    return {n: getattr(stage, n) for n in names}


class Softmax(StreamBlock):
    """Row-wise streaming softmax of integer logits.

    For each row the output codes are those of
    :func:`accelgen.sim.golden.softmax.words`: base-2 exponent domain (table, PWL or I-BERT
    polynomial), online normalization of the running maximum ``K`` and sum ``S``, a
    normalized reciprocal (table or PWL, optional Newton step) and ``u8``, ``s8`` or ``log2``
    codes. Every input bit pattern is legal; a row ends with ``last`` or at its ``n_max``-th
    element (whose output carries ``last``).

    Parameters
    ----------
    config : SoftmaxConfig

    Members
    -------
    i : In(stream.Signature(...))
        ``x`` (signed ``in_format``), ``mask`` (when ``config.mask``; 1 = excluded) and
        ``last`` (ends the row).
    o : Out(stream.Signature(...))
        One beat per input beat, in order: ``y`` (``u8``, ``s8`` or 4-bit ``log2`` code) and
        ``last`` (the element ends its row).
    latency : int
        ``config.latency``: clock edges from the one that accepts the beat of a one-element
        row to ``o.valid`` of its output, with empty pipelines and ``o.ready`` high. It is
        ``4`` (table), ``6`` (pwl) or ``7`` (ibert) exponent stages, the maximum loop's
        register, ``5`` to ``10`` reciprocal stages (table or PWL, Newton step) and ``5``
        output stages: 18 for preset ``tiny``, 20 for ``default``.

    Timing
    ------
    Pass 1 takes one element per cycle and pass 2 emits one per cycle, with no bubble between
    rows. ``i.ready`` falls only while the bank the next element goes to still holds an
    unread element at its address: row ``n + 2`` starts once pass 2 has started row ``n``,
    ``latency - 4`` cycles after row ``n``'s last element was taken. Back-to-back rows of
    ``N`` elements therefore stream at one element per cycle when ``N >= latency - 5``, and
    cost ``(latency - 5 - N) / 2`` extra cycles per row when shorter (rows of one element:
    about ``(latency - 4) / 2`` cycles each). ``o`` may stall at any time: a stalled ``o``
    freezes pass 2 and the reader; pass 1 keeps going until its bank runs into unread data.
    """

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        self._rng = cfg.ranges
        self._platform = platform          # the DSP family of i-exp's products
        rows = self._row_state(m)
        beat = self._ingest(m, rows)
        el, exp_depth = self._exponent(m, beat)
        row_end, sum_depth = self._online_sum(m, rows, el)
        recip_depth = self._reciprocal(m, rows, row_end)
        out_depth = self._pass2(m, rows)
        # edges: the exponent stages end at the maximum loop, the sum loop's edge starts the
        # reciprocal, whose last edge fills the row-info slot, read out in that cycle
        depth = exp_depth + sum_depth + recip_depth + out_depth
        if depth != cfg.latency:     # the manifest publishes the config's value
            raise AssertionError(f"softmax pipeline has latency {depth} (exponent "
                                 f"{exp_depth}, sum {sum_depth}, reciprocal {recip_depth}, "
                                 f"output {out_depth}); config.latency says {cfg.latency}")
        return m

    # -- row bookkeeping -----------------------------------------------------------------------

    def _row_state(self, m):
        """Registers shared by the writer (pass 1), the reciprocal and the reader (pass 2)."""
        cfg, rng = self.config, self._rng
        rows = SimpleNamespace()
        # per bank: rows finished by pass 1 and not yet fully read (0, 1 or 2)
        rows.pending = [Signal(2, name=f"pending{b}") for b in range(2)]
        rows.pend_inc = [Signal(name=f"pend_inc{b}") for b in range(2)]
        rows.pend_dec = [Signal(name=f"pend_dec{b}") for b in range(2)]
        for b in range(2):
            m.d.sync += rows.pending[b].eq(rows.pending[b] + rows.pend_inc[b]
                                           - rows.pend_dec[b])
            formal.counter(m, f"row memory bank {b}: rows pending",
                           rows.pending[b] + rows.pend_inc[b] - rows.pend_dec[b], lo=0, hi=2,
                           family="fifo")
        # reader: the next address to read, its bank, and whether a row is under way
        rows.rd_addr = Signal(range(2 * cfg.n_max), name="rd_addr")
        rows.rd_bank = Signal(name="rd_bank")
        rows.rd_active = Signal(name="rd_active")
        # row info slots (one per bank), written by the reciprocal unit
        rows.kx_shape = self._kx_shape()
        rows.info = [SimpleNamespace(
            valid=Signal(name=f"info{b}_valid"),
            end=Signal(range(2 * cfg.n_max), name=f"info{b}_end"),
            kx=Signal(rows.kx_shape, name=f"info{b}_kx"),
            r=Signal(range(rng.r[1] + 1), name=f"info{b}_r")) for b in range(2)]
        rows.memory = Memory(shape=self._entry_layout(), depth=2 * cfg.n_max, init=[])
        m.submodules.rows = rows.memory
        return rows

    def _entry_layout(self):
        rng = self._rng
        fields = {"v": _range_shape(*rng.v), "k": _range_shape(*rng.k)}
        if self.config.mask:
            fields["mask"] = unsigned(1)
        return data.StructLayout(fields)

    def _p_lead(self):
        """The positions the leading one of ``P = v r`` can take: ``P`` lies in ``[v_lo r_lo,
        v_hi r_hi]``, usually a span of two or three bit positions (``v`` and ``r`` are
        normalized)."""
        rng = self._rng
        return range((rng.v[0] * rng.r[0]).bit_length() - 1, rng.p_width)

    def _kx_offset(self):
        """``Kx = K + e + offset`` per row; pass 2 needs ``Kx - k``: the shift ``sh - 8`` of
        the u8 rounding, or ``sh - n0`` for log2 (``n0``: the lowest leading-one position of
        ``P``)."""
        if self.config.output == "log2":
            return RECIP_Q - self._p_lead()[0]
        return RECIP_Q - 8

    def _kx_shape(self):
        rng = self._rng
        off = self._kx_offset()
        return _range_shape(rng.k[0] + off, rng.k[1] + rng.sum_width - 1 + off)

    # -- pass 1 --------------------------------------------------------------------------------

    def _ingest(self, m, rows):
        """Accept beats, give each its row-memory address and mark row ends. Returns the
        accepted beat's fields (combinational, valid in the accepting cycle)."""
        cfg, n = self.config, self.config.n_max
        wr_bank = Signal(name="wr_bank")
        wr_addr = Signal(range(2 * n), name="wr_addr")
        pending = Mux(wr_bank, rows.pending[1], rows.pending[0])
        # Writable: the bank holds no unread row, or only the one being read and that read
        # is past this address (so pass 2 already has the old entry). All registers.
        m.d.comb += self.i.ready.eq(
            (pending == 0)
            | ((pending == 1) & rows.rd_active & (rows.rd_bank == wr_bank)
               & (wr_addr < rows.rd_addr)))
        take = self.i.valid & self.i.ready
        p = self.i.payload
        end = p.last | (wr_addr == Mux(wr_bank, 2 * n - 1, n - 1))
        with m.If(take):
            with m.If(end):
                m.d.sync += [wr_addr.eq(Mux(wr_bank, 0, n)), wr_bank.eq(~wr_bank)]
            with m.Else():
                m.d.sync += wr_addr.eq(wr_addr + 1)
        for b in range(2):
            m.d.comb += rows.pend_inc[b].eq(take & end & (wr_bank == b))
        return dict(valid=take, end=end, addr=wr_addr, bank=wr_bank,
                    mask=p.mask if cfg.mask else Const(0, 1), x=p.x)

    def _exponent(self, m, beat):
        """Step 1: ``(k, v)`` of every element, with the beat's tags; returns the last
        stage and the number of stages."""
        pipe = Pipeline(m, prefix="e", reset=_RESET)
        build = {"table": self._exp_table, "pwl": self._exp_pwl,
                 "ibert": self._exp_ibert}[self.config.exp]
        tags = {key: beat[key] for key in _TAGS}
        return build(m, pipe, beat["x"], tags), pipe.depth

    def _base2(self, pipe, x, tags):
        """``t = (x * C) >> G`` (``x`` registered, then the product; two stages); returns the
        stage and ``(k, f)``. The register holds the whole product ``x * C`` and the shift is
        wiring after it: an output register the width of the product is one yosys packs into
        an iCE40 ``SB_MAC16``."""
        cfg = self.config
        c, g = cfg.base2
        # the logit registered first: a product of two registers, written into a third, is
        # one whose registers all go into the DSP on iCE40 (also where it takes two SB_MAC16)
        s = pipe.stage(x=x, **tags)
        s = pipe.stage(xc=s.x * c, **_carry(s, *tags))
        t = s.xc >> g
        k = _cut_to_range(t >> cfg.exp_frac, *self._rng.k)
        return s, k, t[:cfg.exp_frac]

    def _exp_table(self, m, pipe, x, tags):
        """``v = T[f]``: ROM, then its output register."""
        cfg = self.config
        s, k, f = self._base2(pipe, x, tags)
        rom = ROM(m, "pow2_rom", cfg.pow2_table, shape=unsigned(self._rng.v[1].bit_length()))
        port = rom.read_port()
        m.d.comb += port.addr.eq(f)
        s = pipe.stage(k=k, **_carry(s, *tags))
        return pipe.stage(k=s.k, v=port.data, **_carry(s, *tags))

    def _exp_pwl(self, m, pipe, x, tags):
        """``v = (icpt + 2**(frac-1) + slope * (f - base)) >> frac`` over uniform segments:
        segment and offset are bit fields of ``f``; the rounding constant sits in the ROM's
        intercepts (:func:`_pwl_rom`)."""
        pwl, rng = self.config.pow2_pwl, self._rng
        s, k, f = self._base2(pipe, x, tags)
        rom = _pwl_rom(m, "pow2_pwl", pwl)
        port = rom.read_port()
        sh = pwl.uniform_shift
        m.d.comb += port.addr.eq(f[sh:])
        s = pipe.stage(k=k, off=f[:sh] if sh else Const(0, 1), **_carry(s, *tags))
        s = pipe.stage(k=s.k, off=s.off, rom=port.data, **_carry(s, *tags))
        s, v = _pwl_value(pipe, s, rom, s.off, pwl.frac, rng.v, ("k", *tags))
        return pipe.stage(k=s.k, v=v, **_carry(s, *tags))

    def _exp_ibert(self, m, pipe, x, tags):
        """I-BERT's i-exp on the ln-2 grid: ``k = floor(x / q)`` by the config's exact
        multiply-shift of ``x' = x - k_offset q``, ``p = x - (k + 1) q = (x' - q) - (k -
        k_offset) q``, ``z = p (p + b) + c``, ``v = (z mult + 2**(shift-1)) >> shift``. A
        multiplier's product goes straight into a register (``x'`` is one adder in front of
        the first): ``p + b`` is formed beside ``-p`` from ``x' - q + b``, and ``c`` is
        added after the multiply by ``mult``, as ``c mult``.

        ``x' div_mult`` (preset ``ibert``: 17 x 18 bits) is wider than one DSP multiply: it
        is :func:`~accelgen.hdl.common.dsp.dsp_product`'s partial products, each in a DSP
        whose output register is in use (``x'`` comes from the input port through an adder,
        so there is no input register), and their sum is registered in a stage of its own.
        (Inferred, yosys left those DSPs combinational and untimed on iCE40.)"""
        ib, rng, cfg = self.config.ibert_exp, self._rng, self.config
        poly, q, k0 = ib["poly"], ib["q"], ib["k_offset"]
        b, c, mult, shift = poly.b_int, poly.c_int, ib["mult"], ib["shift"]
        xs = x - k0 * q                                      # >= 0: k_offset q <= in_min
        span = cfg.in_fmt.max - k0 * q
        prod = dsp_product(m, _cut_to_range(xs, 0, span), ib["div_mult"], output_register=True,
                           platform=self._platform, name="div")
        s = pipe.stage(xq=xs - q, xqb=xs - q + b, **tags)
        s = pipe.stage(prod=_cut_to_range(prod, 0, span * ib["div_mult"]),
                       **_carry(s, "xq", "xqb", *tags))
        kk = _cut_to_range(s.prod >> ib["div_shift"], 0, rng.k[1] - k0)      # k - k_offset
        s = pipe.stage(kk=kk, kq=kk * q, **_carry(s, "xq", "xqb", *tags))
        # -p in [1, q] and p + b in [b - q, b - 1], positive (b ~ 3.9 q): the products are
        # of magnitudes, which keeps p (p + b) mult within an unsigned 18 x 18 multiplier
        if b - q < 1:
            raise AssertionError(f"i-exp: b_int {b} is not above q {q}")
        np = _cut_to_range(s.kq - s.xq, 1, q)
        pb = _cut_to_range(s.xqb - s.kq, b - q, b - 1)
        s = pipe.stage(k=_cut_to_range(s.kk + k0, *rng.k), np=np, pb=pb, **_carry(s, *tags))
        # np pb and npp mult on DSPs with their input registers (standing in for np, pb and
        # npp): npp leaves its DSP unregistered for the next one's input registers, and the
        # partial products of the wider npp mult are summed into w as yosys would (inferred,
        # yosys left one of those DSPs combinational and untimed on iCE40)
        npp = _cut_to_range(dsp_product(m, np, pb, s.np, s.pb, output_register=False,
                                        platform=self._platform, name="npp"),
                            b - q, q * (b - 1))
        s = pipe.stage(k=s.k, npp=npp, **_carry(s, *tags))
        w = dsp_product(m, npp, mult, s.npp, mult, output_register=False,
                        platform=self._platform, name="w")
        s = pipe.stage(k=s.k, w=_cut_to_range(w, (b - q) * mult, q * (b - 1) * mult),
                       **_carry(s, *tags))
        # (z mult + half) >> shift with z = c - npp: c mult joins the rounding constant
        v = _cut_to_range(((c * mult + half_up_bias(shift)) - s.w) >> shift, *rng.v)
        return pipe.stage(k=s.k, v=v, **_carry(s, *tags))

    def _online_sum(self, m, rows, el):
        """Step 2 and the row-memory write, as two one-cycle loops. The maximum loop keeps
        ``K`` (a compare and a mux) and registers the rescale shifts of the element: ``S >>
        (k - K)`` when ``k`` is a new maximum, ``v >> (K - k)`` otherwise, ``S >> inf`` for a
        row's first kept element and ``v = 0`` for a masked one. The sum loop one stage later
        is then only ``S = (S >> a) + (v >> b)``: two shifters side by side and the adder,
        with registered shift amounts. Returns the row end's stage namespace with the row's
        final ``(K, S)`` (that element included)."""
        rng = self._rng
        wp = rows.memory.write_port()
        m.d.comb += [wp.addr.eq(el.addr), wp.en.eq(el.valid),
                     wp.data.v.eq(el.v), wp.data.k.eq(el.k)]
        if self.config.mask:
            m.d.comb += wp.data.mask.eq(el.mask)

        big_k = Signal(_range_shape(*rng.k), name="run_k")
        first = Signal(init=1, name="run_first")
        keep = el.valid & ~el.mask
        up = el.k > big_k
        new_k = Mux(keep & (first | up), el.k, big_k)
        m.d.sync += big_k.eq(new_k)
        with m.If(keep):
            m.d.sync += first.eq(0)
        with m.If(el.valid & el.end):
            m.d.sync += first.eq(1)
        # Shift amounts saturate at all ones, which is at least the operand's width: the
        # shift then gives 0, as the floor of a real shift by that much would.
        s_bits, v_bits = rng.sum_width.bit_length(), len(el.v).bit_length()
        shift_s = Mux(first, (1 << s_bits) - 1,
                      Mux(up, _saturate_unsigned(el.k - big_k, s_bits), 0))
        shift_v = Mux(first | up, 0, _saturate_unsigned(big_k - el.k, v_bits))
        pipe = Pipeline(m, prefix="n", reset=_RESET)
        s = pipe.stage(shift_s=Mux(keep, shift_s, 0), shift_v=shift_v, v=Mux(keep, el.v, 0),
                       k=new_k, row_end=el.valid & el.end, end=el.addr, bank=el.bank)

        big_s = Signal(rng.sum_width, name="run_s")
        new_s = Signal(rng.sum_width, name="new_s")
        m.d.comb += new_s.eq((big_s >> s.shift_s) + (s.v >> s.shift_v))
        m.d.sync += big_s.eq(new_s)
        return SimpleNamespace(valid=s.row_end, k=s.k, s=new_s, end=s.end, bank=s.bank), 1

    # -- step 3 --------------------------------------------------------------------------------

    def _reciprocal(self, m, rows, row):
        """Step 3 once per row: ``e``, ``m`` by leading-zero count and left shift, ``r`` from
        the config's table or PWL, the optional Newton step; the row-info slot of the row's
        bank receives ``(end, Kx = K + e + offset, r)``."""
        cfg, rng = self.config, self._rng
        ws, j = rng.sum_width, cfg.recip_bits
        pipe = Pipeline(m, prefix="r", reset=_RESET)
        s = pipe.stage(**vars(row))
        count, _zero = leading_zeros(s.s)
        s = pipe.stage(count=count, **_carry(s, "valid", "k", "s", "end", "bank"))
        top = normalize(s.s, s.count)
        mant = top[ws - RECIP_Q - 1:] if ws > RECIP_Q else Cat(Const(0, RECIP_Q + 1 - ws), top)
        kx = _cut_to_range(s.k + (ws - 1 + self._kx_offset()) - s.count,
                           *_bounds(rows.kx_shape))
        s = pipe.stage(mant=mant, kx=kx, **_carry(s, "valid", "end", "bank"))
        index = s.mant[RECIP_Q - j:RECIP_Q]
        tags = ("valid", "end", "bank", "kx", "mant")
        if cfg.recip == "table":
            rom = ROM(m, "recip_rom", cfg.recip_table, shape=_range_shape(*rng.r0))
            port = rom.read_port()
            m.d.comb += port.addr.eq(index)
            s = pipe.stage(**_carry(s, *tags))
            r = port.data
            if cfg.newton:      # the ROM output register; without Newton the slot is one
                s = pipe.stage(r=r, **_carry(s, *tags))
                r = s.r
        else:
            pwl = cfg.recip_pwl
            rom = _pwl_rom(m, "recip_pwl", pwl)
            port = rom.read_port()
            m.d.comb += port.addr.eq(index)
            sh = pwl.uniform_shift
            s = pipe.stage(**_carry(s, *tags))
            s = pipe.stage(rom=port.data, **_carry(s, *tags))
            s, r = _pwl_value(pipe, s, rom, s.mant[:sh] if sh else Const(0, 1), pwl.frac,
                              rng.r0, tags)
            if cfg.newton:
                s = pipe.stage(r=r, **_carry(s, *tags))
                r = s.r
        if cfg.newton:
            # r = (r (2**17 - (m r >> 16))) >> 16: each product in its own stage, the
            # subtraction between them in another
            s = pipe.stage(pm=s.mant * r, r=r, **_carry(s, "valid", "end", "bank", "kx"))
            t = _cut_to_range((2 << RECIP_Q) - (s.pm >> RECIP_Q), *rng.newton_t)
            s = pipe.stage(t=t, r=s.r, **_carry(s, "valid", "end", "bank", "kx"))
            r = _cut_to_range((s.r * s.t) >> RECIP_Q, *rng.r)
        for b, slot in enumerate(rows.info):
            # one slot per bank is the whole queue: a row's info never overwrites another's
            formal.check(m, f"row info slot {b}: not written while full", "fifo",
                         ~(s.valid & (s.bank == b) & slot.valid))
            with m.If(s.valid & (s.bank == b)):
                m.d.sync += [slot.valid.eq(1), slot.end.eq(s.end), slot.kx.eq(s.kx),
                             slot.r.eq(r)]
        return pipe.depth + 1       # and the row-info slot

    # -- pass 2 --------------------------------------------------------------------------------

    def _pass2(self, m, rows):
        """Reader and output pipeline, all stages enabled by ``en = ~o.valid | o.ready``."""
        cfg, n = self.config, self.config.n_max
        en = stall_enable(m, self.o, name="out_en")

        # The reader's own copy of the current row's info; a row starts straight from its
        # slot (no idle cycle), and the slot is free again from then on.
        cur = SimpleNamespace(end=Signal.like(rows.info[0].end, name="cur_end"),
                              kx=Signal.like(rows.info[0].kx, name="cur_kx"),
                              r=Signal.like(rows.info[0].r, name="cur_r"))

        def slot(field):
            return Mux(rows.rd_bank, getattr(rows.info[1], field), getattr(rows.info[0], field))

        def row(field):
            return Mux(rows.rd_active, getattr(cur, field), slot(field))

        have = rows.rd_active | slot("valid")
        last = rows.rd_addr == row("end")
        issue = en & have
        port = rows.memory.read_port()
        m.d.comb += [port.addr.eq(rows.rd_addr), port.en.eq(en)]
        with m.If(issue):
            with m.If(~rows.rd_active):
                m.d.sync += [cur.end.eq(slot("end")), cur.kx.eq(slot("kx")),
                             cur.r.eq(slot("r"))]
                for b in range(2):
                    with m.If(rows.rd_bank == b):
                        m.d.sync += rows.info[b].valid.eq(0)
            with m.If(last):
                m.d.sync += [rows.rd_active.eq(0), rows.rd_bank.eq(~rows.rd_bank),
                             rows.rd_addr.eq(Mux(rows.rd_bank, 0, n))]
            with m.Else():
                m.d.sync += [rows.rd_active.eq(1), rows.rd_addr.eq(rows.rd_addr + 1)]
        for b in range(2):
            m.d.comb += rows.pend_dec[b].eq(issue & last & (rows.rd_bank == b))

        pipe = Pipeline(m, enable=en, prefix="o", reset=_RESET)
        s = pipe.stage(valid=have, last=last, kx=row("kx"), r=row("r"))
        d = port.data
        s = pipe.stage(k=d.k, v=d.v, mask=d.mask if cfg.mask else Const(0, 1),
                       **_carry(s, "valid", "last", "kx", "r"))
        y = self._format(pipe, s)
        with m.If(en):
            m.d.sync += [self.o.valid.eq(y.valid), self.o.payload.last.eq(y.last),
                         self.o.payload.y.eq(y.y)]
        return pipe.depth + 1       # and the output register

    def _format(self, pipe, s):
        """Step 4 from the registered row-memory data: ``P = v r`` and the shift in one stage,
        then u8/s8 (``P >> s`` with the round bit) or log2 (leading one of ``P`` and the
        ``sqrt 2`` compares), then the code; returns ``valid``, ``last`` and ``y`` for the
        output register."""
        cfg, rng = self.config, self._rng
        wp = rng.p_width
        tags = ("valid", "last", "mask")
        shift = s.kx - s.k      # sh - 8 (u8, s8) or sh - n0 (log2)
        product = _cut_to_range(s.v * s.r, 0, (1 << wp) - 1)
        if cfg.output == "log2":
            return self._log2(pipe, s, product, shift, tags)
        # u8: min(255, (P L + 2**(sh-1)) >> sh). L = 256: with s = sh - 8 >= 8, floor(P / 2**s)
        # plus bit s-1 of P; (2 P) >> s holds both. L = 255: P L = (P << 8) - P, shifted by
        # s + 8. s past the width of 2 P L gives 0, as floor does.
        if cfg.out_levels == 256:
            scaled, extra = product, 0
        else:
            scaled, extra = (product << 8) - product * (256 - cfg.out_levels), 8
        top = wp + extra + 1
        s = pipe.stage(p=scaled, sh=_cut_to_range(_clamp(shift + extra, 0, top), 0, top),
                       **_carry(s, *tags))
        q = Cat(Const(0, 1), s.p) >> s.sh
        s = pipe.stage(floor=q[1:10], half=q[0], over=q[10:].any(), **_carry(s, *tags))
        total = s.floor + s.half
        u8 = Mux(s.over | (total > 255), 255, total)[:8]
        u8 = Mux(s.mask, 0, u8)
        y = u8 - 128 if cfg.output == "s8" else u8
        return SimpleNamespace(valid=s.valid, last=s.last, y=y)

    def _log2(self, pipe, s, product, shift, tags):
        """``y = clamp(sh - n - (top > SQRT2_Q15), 0, 15)``, ``n`` the leading-one position
        of ``P`` and ``top`` the 16 bits from it down. ``n`` takes one of a few positions
        (:meth:`_p_lead`), so every candidate gets its own window compare, side by side, and
        the leading one picks a candidate's code: no normalizing shifter. ``c = sh - n0`` is
        clamped to ``[0, 16 + last candidate]``, past which every code is 0 or 15 anyway."""
        lead = self._p_lead()
        top = len(lead) - 1
        s = pipe.stage(p=product, c=_cut_to_range(_clamp(shift, 0, 16 + top), 0, 16 + top),
                       **_carry(s, *tags))
        picks = {}
        for j, n in enumerate(lead):
            window = s.p[n - 15:n + 1] if n >= 15 else Cat(Const(0, 15 - n), s.p[:n + 1])
            picks[f"hit{j}"] = s.p[n] & ~s.p[n + 1:].any()
            # the candidate's code, chosen by its compare here rather than after it
            picks[f"y{j}"] = Mux(window > SQRT2_Q15, _clamp(s.c - j - 1, 0, 15),
                                 _clamp(s.c - j, 0, 15))[:4]
        s = pipe.stage(**picks, **_carry(s, *tags))
        y = Const(15, 4)      # masked elements (P >= 1 for the others: one candidate hits)
        for j in range(len(lead)):
            y = Mux(getattr(s, f"hit{j}") & ~s.mask, getattr(s, f"y{j}"), y)
        return SimpleNamespace(valid=s.valid, last=s.last, y=y)


def _bounds(shape):
    """``(lo, hi)`` of an integer shape."""
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1
