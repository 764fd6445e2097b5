"""Block ``cast``: elementwise FP32/BF16 to FP8/FP6/FP4/BF16/FP16/posit conversion.

::

      i (x: lanes source codes, last)
          │
     [input registers]              pipeline >= 1
          │
     decode (sign, significand, exponent, NaN, inf) per lane
          │
     [decoded registers]            pipeline >= 2
          │
     round to the target: float (normalize, keep man_bits + 1, RNE, subnormals, overflow)
     or posit (regime string, RNE on the bit string, clamp to minpos/maxpos)
          │
     [output register]
          │
      o (y: lanes target codes, last)

Numeric semantics are defined by :mod:`accelgen.sim.golden.cast`; parameters by
:class:`accelgen.generators.cast.CastConfig`.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Module

from .common.floats import convert_element, decode_element
from .common.pipeline import Pipeline, stall_enable
from .common.stream import StreamBlock

__all__ = ["Cast"]


class Cast(StreamBlock):
    """Elementwise number-format converter.

    Parameters
    ----------
    config : CastConfig

    Members
    -------
    i : In(stream.Signature(...))
        ``x``: ``lanes`` source codes; ``last``: a tag carried through.
    o : Out(stream.Signature(...))
        ``y``: ``lanes`` target codes; ``last``.

    Timing
    ------
    One beat per cycle; ``o.valid`` rises ``latency = 1 + config.pipeline`` cycles after a
    beat is accepted. A stalled ``o`` freezes the pipeline and lowers ``i.ready`` in the same
    cycle.
    """

    def elaborate(self, platform):
        cfg = self.config
        src = cfg.source_format
        m = Module()
        en = stall_enable(m, self.o, self.i)
        pipe = Pipeline(m, enable=en)
        p = self.i.payload
        s = vars(pipe.add_stage(dict(valid=self.i.valid & en, x=p.x, last=p.last), name="in",
                                present=cfg.pipeline >= 1))
        decoded = dict(valid=s["valid"], last=s["last"])
        for lane in range(cfg.lanes):
            d = decode_element(m, s["x"][lane * src.width:], src, name=f"dec{lane}")
            decoded[f"d{lane}"] = Cat(d.sig, d.exp.as_unsigned()[:10], d.sign, d.nan, d.inf)
        s = vars(pipe.add_stage(decoded, name="dec", present=cfg.pipeline >= 2))
        codes = []
        for lane in range(cfg.lanes):
            codes.append(self._convert(m, s[f"d{lane}"], name=f"cvt{lane}"))
        out = self.o.payload
        with m.If(en):
            m.d.sync += self.o.valid.eq(s["valid"])
            with m.If(s["valid"]):
                m.d.sync += [out.y.eq(Cat(*codes)), out.last.eq(s["last"])]
        if pipe.depth + 1 != cfg.latency:
            raise AssertionError(f"cast pipeline has {pipe.depth + 1} stages, config.latency "
                                 f"says {cfg.latency}")
        return m

    def _convert(self, m, packed, *, name):
        """Target code of one lane's decoded value (``Cat(sig, exp[10], sign, nan, inf)``)."""
        cfg = self.config
        src = cfg.source_format
        sig_bits = src.sig_bits
        d = SimpleNamespace(sig=packed[:sig_bits], exp=packed[sig_bits:sig_bits + 10].as_signed(),
                            sign=packed[sig_bits + 10], nan=packed[sig_bits + 11],
                            inf=packed[sig_bits + 12])
        return convert_element(m, d, cfg.target_format, saturate=cfg.saturate,
                               exp_min=src.exp_min, name=name)
