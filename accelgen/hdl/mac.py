"""Block ``mac``: mixed-precision SIMD multiply-accumulate unit.

::

              i (a, b, mode, clear, last)
                  │
          [operand registers]        pipeline >= 2
                  │
       ┌──────────┴──────────┐
    lane 0   ...          lane L-1   plain: one multiplier per lane
       │                     │       fused: (Wa/2)*(Wb/2) 3x3-bit signed bricks per lane
          [product registers]        pipeline >= 1
       │                     │
    lane sum ...          lane sum   fused: mode-dependent shifts, then an adder tree
       └──── together? ──────┘       reduction="together": one adder tree over the lanes
          [sum register]             pipeline >= 3
                  │
           acc = overflow((clear ? 0 : acc) + sum)     wrap or saturate to s<acc_width>
                  │
              o (acc0.., err)        on beats with ``last``

Numeric semantics are defined by :mod:`accelgen.sim.golden.mac`; parameters by
:class:`accelgen.generators.mac.MACConfig`.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..numerics import IntFormat
from .common.arith import register, sum_tree
from .common.numerics import apply_overflow
from .common.stream import stream_signature

__all__ = ["MAC"]


class MAC(wiring.Component):
    """Mixed-precision SIMD multiply-accumulate unit.

    Parameters
    ----------
    config : MACConfig

    Members
    -------
    i : In(stream.Signature(...))
        Operand beats: ``a``, ``b`` (lane slots, see ``MACConfig.input_fields``), ``mode`` (only
        when more than one mode is built), ``clear`` (start a new accumulation with this beat),
        ``last`` (emit the accumulators after this beat).
    o : Out(stream.Signature(...))
        One beat per input beat with ``last``: ``acc0`` .. ``acc{n-1}`` (``s<acc_width>``) and
        ``err`` (an invalid mode code was seen since the last ``clear``).

    Timing
    ------
    Accepts one beat per cycle while ``o`` is not stalled; ``o.valid`` rises ``latency`` =
    ``1 + config.pipeline`` cycles after a ``last`` beat is accepted. A stalled ``o`` (valid
    without ready) freezes the whole pipeline, and ``i.ready`` falls in the same cycle.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "i": In(stream_signature(config.input_fields)),
            "o": Out(stream_signature(config.output_fields)),
        })

    @property
    def latency(self):
        return self.config.latency

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        # Stage 0: operand registers (pipeline >= 2).
        p = self.i.payload
        mode_in = p.mode if cfg.mode_bits else 0
        stage = dict(valid=self.i.valid & en, a=p.a, b=p.b, mode=mode_in,
                     clear=p.clear, last=p.last)
        stage = self._stage(m, en, stage, "opnd", cfg.pipeline >= 2)

        # Multipliers, then product registers (pipeline >= 1).
        if cfg.multiplier == "plain":
            products = [self._plain_lane(m, stage, lane) for lane in range(cfg.lanes)]
        else:
            products = [self._fused_bricks(m, stage, lane) for lane in range(cfg.lanes)]
        ctrl = {k: stage[k] for k in ("valid", "mode", "clear", "last")}
        flat = {f"p{lane}_{n}": v for lane, ps in enumerate(products) for n, v in enumerate(ps)}
        staged = self._stage(m, en, {**ctrl, **flat}, "prod", cfg.pipeline >= 1)
        products = [[staged[f"p{lane}_{n}"] for n in range(len(ps))]
                    for lane, ps in enumerate(products)]

        # Reduction: fused bricks get their mode's shifts; lanes sum, maybe together.
        if cfg.multiplier == "plain":
            lane_sums = [ps[0] for ps in products]
        else:
            lane_sums = [sum_tree(self._shift_bricks(m, staged["mode"], ps, lane))
                         for lane, ps in enumerate(products)]
        sums = [sum_tree(lane_sums)] if cfg.reduction == "together" else lane_sums
        mode_ok = staged["mode"] < len(cfg.modes) if cfg.mode_bits else Const(1, 1)
        red = {k: staged[k] for k in ("valid", "clear", "last")}
        red.update(mode_ok=mode_ok, **{f"s{n}": s for n, s in enumerate(sums)})
        red = self._stage(m, en, red, "sum", cfg.pipeline >= 3)

        # Accumulators; their registers are the output payload.
        acc_fmt = IntFormat(cfg.acc_width, True)
        err = Signal()
        with m.If(en):
            m.d.sync += self.o.valid.eq(red["valid"] & red["last"])
            with m.If(red["valid"]):
                for n in range(cfg.accumulators):
                    acc = getattr(self.o.payload, f"acc{n}")
                    base = Mux(red["clear"], 0, acc)
                    m.d.sync += acc.eq(apply_overflow(base + red[f"s{n}"], acc_fmt, cfg.overflow))
                m.d.sync += err.eq((err & ~red["clear"]) | ~red["mode_ok"])
        m.d.comb += self.o.payload.err.eq(err)
        return m

    @staticmethod
    def _stage(m, en, values, prefix, enabled):
        """Register every value of a pipeline stage (or pass them through when disabled)."""
        return {k: register(m, en, v, name=f"{prefix}_{k}", when=enabled)
                for k, v in values.items()}

    def _mode_cases(self, m, mode):
        """Yield ``(code, Mode)`` inside ``m.Case`` blocks of a switch on ``mode``; a build
        with one mode has no mode field and no switch."""
        if not self.config.mode_bits:
            yield 0, self.config.mode_formats[0]
            return
        with m.Switch(mode):
            for code, fmt in enumerate(self.config.mode_formats):
                with m.Case(code):
                    yield code, fmt

    def _plain_lane(self, m, stage, lane):
        """One multiplier per lane on element 0 of the lane, operands extended by mode."""
        cfg = self.config
        a_w = max(f.a.width + (not f.a.signed) for f in cfg.mode_formats)
        b_w = max(f.b.width + (not f.b.signed) for f in cfg.mode_formats)
        a_op = Signal(signed(a_w), name=f"a_op{lane}")
        b_op = Signal(signed(b_w), name=f"b_op{lane}")
        for _code, fmt in self._mode_cases(m, stage["mode"]):
            a_bits = stage["a"][lane * cfg.a_lane_bits:][:fmt.a.width]
            b_bits = stage["b"][lane * cfg.b_lane_bits:][:fmt.b.width]
            m.d.comb += [a_op.eq(a_bits.as_signed() if fmt.a.signed else a_bits),
                         b_op.eq(b_bits.as_signed() if fmt.b.signed else b_bits)]
        return [a_op * b_op]

    def _brick_plan(self, fmt, n):
        """Where brick ``n`` of a lane takes its slices from in mode ``fmt``:
        ``(a bit offset, a slice is signed, b bit offset, b slice is signed, shift)``."""
        half_a, half_b = fmt.a.width // 2, fmt.b.width // 2
        per_product = half_a * half_b
        k, t = divmod(n, per_product)
        ia, jb = t % half_a, t // half_a
        return (k * fmt.a.width + 2 * ia, fmt.a.signed and ia == half_a - 1,
                k * fmt.b.width + 2 * jb, fmt.b.signed and jb == half_b - 1,
                2 * (ia + jb))

    @property
    def _bricks_per_lane(self):
        return (self.config.a_max_width // 2) * (self.config.b_max_width // 2)

    def _fused_bricks(self, m, stage, lane):
        """2-bit x 2-bit brick products of one lane; each slice is extended to 3 bits by mode
        (sign-extended only when it is the top slice of a signed element)."""
        cfg = self.config
        products = []
        for n in range(self._bricks_per_lane):
            ax = Signal(signed(3), name=f"ax{lane}_{n}")
            bx = Signal(signed(3), name=f"bx{lane}_{n}")
            for _code, fmt in self._mode_cases(m, stage["mode"]):
                a_off, a_sig, b_off, b_sig, _ = self._brick_plan(fmt, n)
                a_sl = stage["a"][lane * cfg.a_lane_bits + a_off:][:2]
                b_sl = stage["b"][lane * cfg.b_lane_bits + b_off:][:2]
                m.d.comb += [ax.eq(a_sl.as_signed() if a_sig else a_sl),
                             bx.eq(b_sl.as_signed() if b_sig else b_sl)]
            products.append(ax * bx)
        return products

    def _shift_bricks(self, m, mode, products, lane):
        """Weight each brick product by ``4**(ia + jb)`` as its mode's plan says."""
        terms = []
        max_shift = self.config.a_max_width + self.config.b_max_width - 4
        for n, prod in enumerate(products):
            term = Signal(signed(6 + max_shift), name=f"term{lane}_{n}")
            for _code, fmt in self._mode_cases(m, mode):
                m.d.comb += term.eq(prod << self._brick_plan(fmt, n)[4])
            terms.append(term)
        return terms
