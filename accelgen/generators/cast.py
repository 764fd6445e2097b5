"""Config and presets of block ``cast``: an elementwise number-format converter, FP32 or
BF16 to a narrower float (FP8 E4M3/E5M2, FP6 E3M2/E2M3, FP4 E2M1, BF16, FP16) or a posit
(4, 8, 16 bits): the output stage of a float ``mac``/``systolic`` or a quantizer in front of one.

Semantics (the golden model :mod:`accelgen.sim.golden.cast` is the definition; the
rounding itself is :func:`accelgen.formats.round_to_float` / :func:`~accelgen.formats.
round_to_posit`)
    Finite inputs round to nearest, ties to even. Float targets: subnormals kept; a value
    beyond the largest finite value gives, with ``saturate`` (the default), that value of the
    same sign, without it inf (E5M2, BF16, FP16), NaN (E4M3) or the largest value (FP6/FP4,
    which have neither). A zero keeps its sign. Infinities: ``saturate``: the largest value of
    their sign; else inf, NaN (E4M3) or the largest value. NaN: the target's NaN (positive,
    quiet), or +0 in FP6/FP4 (they have none). Posit targets follow the posit standard: never
    zero or NaR for a nonzero finite input (beyond maxpos: maxpos, below minpos: minpos), zero
    to 0, NaN and infinities to NaR; ``saturate`` must stay true for them.

Streams and timing
    ``i``: ``x`` (``lanes`` source codes, lane ``l`` at bit ``l * source width``) and ``last``
    (a tag carried to the output unchanged). ``o``: ``y`` (``lanes`` target codes) and
    ``last``. One beat per cycle, ``latency = 1 + pipeline`` cycles from an accepted ``i``
    beat to its ``o`` beat; full backpressure (a stalled output freezes the pipeline). Every
    input bit pattern is legal.
"""

from dataclasses import dataclass, replace

from ..formats import FLOAT_FORMATS, POSIT_FORMATS
from ..numerics import ConfigError
from .base import (ArrayLayout, Beats, Config, Field, ProofContract, check_bool, check_choice,
                   check_int)

__all__ = ["CastConfig", "PRESETS", "SOURCES", "TARGETS"]

SOURCES = ("fp32", "bf16")
TARGETS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "bf16", "fp16", "p4", "p8", "p16")


@dataclass(frozen=True, kw_only=True)
class CastConfig(Config):
    """Parameters of a ``cast`` block. See the module docstring for the semantics.

    Members
    -------
    source : ``"fp32"`` or ``"bf16"``
        Input element format.
    target : str
        Output element format, one of ``e4m3``, ``e5m2``, ``e3m2``, ``e2m3``, ``e2m1``,
        ``bf16``, ``fp16``, ``p4``, ``p8``, ``p16``; not the source.
    saturate : bool
        Overflow and infinities to the largest finite value (float targets); posit targets
        always saturate (true only).
    lanes : int
        Elements per beat (1 to 64).
    pipeline : int
        Register stages before the output register (0 to 2): input registers, then
        registers after the decode and normalization. Latency ``1 + pipeline``.
    """
    source: str = "bf16"
    target: str = "e4m3"
    saturate: bool = True
    lanes: int = 1
    pipeline: int = 1

    def __post_init__(self):
        check_choice("source", self.source, SOURCES)
        check_choice("target", self.target, TARGETS)
        if self.target == self.source:
            raise ConfigError(f"target: {self.target!r} is not allowed; expected a format other "
                              f"than the source {self.source!r}")
        check_bool("saturate", self.saturate)
        if self.target in POSIT_FORMATS and not self.saturate:
            raise ConfigError(f"saturate: False is not allowed with posit target "
                              f"{self.target!r}; posits never overflow (beyond maxpos rounds to "
                              f"maxpos), expected true")
        check_int("lanes", self.lanes, 1, 64)
        check_int("pipeline", self.pipeline, 0, 2)

    @property
    def source_format(self):
        return FLOAT_FORMATS[self.source]

    @property
    def target_format(self):
        return FLOAT_FORMATS.get(self.target) or POSIT_FORMATS[self.target]

    @property
    def latency(self):
        return 1 + self.pipeline

    def _array(self, fmt, what):
        return ArrayLayout(shape=(self.lanes,), index=("lane",), stride=(fmt.width,),
                           width=fmt.width, format=fmt.name, note=f"{what}: {fmt.name} codes")

    @property
    def input_fields(self):
        src = self.source_format
        return [Field("x", self.lanes * src.width,
                      doc=f"{self.lanes} {src.name} codes to convert, lane l at bit "
                          f"l * {src.width}.", array=self._array(src, "input")),
                Field("last", 1, doc="Tag carried to the output beat unchanged.")]

    @property
    def output_fields(self):
        dst = self.target_format
        return [Field("y", self.lanes * dst.width,
                      doc=f"{self.lanes} {dst.name} codes: lane l of x rounded to nearest "
                          f"even{', saturating' if self.saturate else ''}.",
                      array=self._array(dst, "output")),
                Field("last", 1, doc="The input beat's last bit.")]

    def stream_fields(self):
        return {"i": self.input_fields, "o": self.output_fields}

    @property
    def semantics(self):
        """One line for ``accelgen show``."""
        over = ("saturating to the largest value" if self.saturate else
                "overflow to inf / NaN / the largest value as the format allows")
        return (f"{self.source} -> {self.target}: round to nearest, ties to even, {over}; NaN "
                f"to {'NaR' if self.target in POSIT_FORMATS else 'the target NaN (FP6/FP4: +0)'}")

    def derived(self):
        return {"latency": self.latency, "throughput_beats_per_cycle": 1,
                "elements_per_cycle": self.lanes, "semantics": self.semantics}


PRESETS = {"tiny": CastConfig(source="fp32", target="e4m3", lanes=1, pipeline=0)}
PRESETS["default"] = CastConfig(source="bf16", target="e4m3", lanes=4)
PRESETS["fp32-e5m2"] = CastConfig(source="fp32", target="e5m2", saturate=False, lanes=2)
PRESETS["fp32-bf16"] = CastConfig(source="fp32", target="bf16", saturate=False, lanes=2)
PRESETS["bf16-fp4"] = replace(PRESETS["default"], target="e2m1")
PRESETS["bf16-fp6"] = replace(PRESETS["default"], target="e3m2", lanes=2, pipeline=2)
PRESETS["bf16-p8"] = replace(PRESETS["default"], target="p8")
PRESETS["fp32-p16"] = CastConfig(source="fp32", target="p16", lanes=2, pipeline=2)

#: ``accelgen prove``: one output beat per input beat, one per pipeline stage
PROOF = ProofContract(depth=10, beats=(Beats("i", "o", lambda cfg: cfg.latency),))
