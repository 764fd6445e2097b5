"""Register pipelines with one shared stall: every stage of a block loads on the same enable.

::

    i.valid, i.payload ──► [stage 1] ──► [stage 2] ──► ... ──► [stage N] ──► o
                              ▲              ▲                     ▲
                              └──────────────┴────── en ───────────┘
                                                      ▲
    i.ready ◄──────────────── en = ~o.valid | o.ready ┘   (:func:`stall_enable`)

Trade-offs. One enable for the whole pipeline (rather than a skid buffer or a ready chain per
stage) costs no registers and no muxes beyond the clock enables, and keeps the latency a
constant the manifest can publish. The price is that ``o.ready`` reaches every stage's enable
and ``i.ready`` combinationally in one cycle (a fan-out, not a long path), and that a bubble
does not close up behind a stalled output: bubbles travel down the pipeline as invalid stages.
A pipeline without an enable (``enable=None``) is free-running: its registers load on every
clock edge, for the parts of a block that never stall.
"""

from types import SimpleNamespace

from amaranth.hdl import Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from . import formal

__all__ = ["OutputBuffer", "Pipeline", "register", "stall_enable"]


def stall_enable(m, out, inp=None, *, name="en"):
    """The enable of a pipeline that feeds stream ``out``: a signal that is high unless ``out``
    holds a beat that is not being taken (``~out.valid | out.ready``). With ``inp`` given, the
    pipeline's input stream, ``inp.ready`` is driven with it, so a beat enters exactly when
    every stage moves on."""
    en = Signal(name=name)
    m.d.comb += en.eq(~out.valid | out.ready)
    if inp is not None:
        m.d.comb += inp.ready.eq(en)
    return en


def register(m, value, *, enable=None, name, reset=True):
    """A ``sync`` register that loads ``value`` while ``enable`` is high (on every clock edge
    when ``enable`` is ``None``), reset to 0 (``reset=False``: initialised to 0 and not reset,
    see :class:`Pipeline`). A constant ``value`` is returned as it is: it needs no register."""
    value = Value.cast(value)
    if isinstance(value, Const):
        return value
    reg = Signal(value.shape(), name=name, reset_less=not reset)
    if enable is None:
        m.d.sync += reg.eq(value)
    else:
        with m.If(enable):
            m.d.sync += reg.eq(value)
    return reg


class Pipeline:
    """The register stages of one pipeline, counted so a block can check its latency.

    Each call of :meth:`stage` registers a set of named values (data and the control bits that
    travel with it, such as ``valid`` and ``last``) and returns the registers, which the next
    stage's logic reads. Nothing is inferred: a value that should travel on must be passed to
    every stage. Every register of the pipeline loads on the same ``enable``.

    Parameters
    ----------
    m : Module
        Where the registers go (``sync`` domain).
    enable : Value or None
        The stages' common clock enable, usually :func:`stall_enable` of the output stream;
        ``None`` for a free-running pipeline.
    prefix, suffix : str
        Register ``key`` of stage ``d`` (counted from 1) is named ``{prefix}{d}_{key}{suffix}``
        (see :meth:`add_stage` for named stages).
    reset : None or set of str
        The keys whose registers the ``sync`` reset clears (None: every key). The others
        start at 0 and keep their value through a reset, which is what a data register next
        to a ``valid`` bit needs, and what lets yosys pack the registers around a product
        into an iCE40 ``SB_MAC16`` (its registers have no synchronous reset: with one, the
        DSP stays combinational and nextpnr does not time it).

    Members
    -------
    depth : int
        Register stages so far (stages left out with ``present=False`` do not count).

    Timing
    ------
    Latency ``depth``: a value presented to stage 1 in the cycle a beat is accepted (the edge
    ``inp.valid & inp.ready``) is at the output of stage ``d`` ``d`` clock edges later while
    ``enable`` stays high, so an output stream driven by the last of ``N`` stages shows it ``N``
    cycles after it was accepted. Throughput one beat per cycle. Backpressure: while
    ``enable`` is low no register loads, so a stalled output freezes every stage at once and,
    with ``inp.ready`` = ``enable``, no beat enters; when it rises again every stage moves on
    together. No beat is lost or duplicated, and bubbles (invalid stages) keep their place.
    """

    def __init__(self, m, *, enable=None, prefix="s", suffix="", reset=None):
        self.m, self.enable = m, enable
        self.reset = None if reset is None else frozenset(reset)
        self.prefix, self.suffix = prefix, suffix
        self.depth = 0

    def stage(self, **values):
        """One register stage of ``values``; returns the registers as attributes of a
        namespace (constants pass through as they are)."""
        return self.add_stage(values)

    def add_stage(self, values, *, name=None, present=True):
        """:meth:`stage` with options: ``values`` is a mapping; ``name`` names the registers
        ``{name}_{key}{suffix}`` instead of by stage number; ``present=False`` leaves the stage
        out (the values pass through unregistered and ``depth`` stays), so a configurable
        pipeline keeps one description of its logic."""
        if not present:
            return SimpleNamespace(**{key: Value.cast(value) for key, value in values.items()})
        self.depth += 1
        label = name if name is not None else f"{self.prefix}{self.depth}"
        return SimpleNamespace(**{
            key: register(self.m, value, enable=self.enable, name=f"{label}_{key}{self.suffix}",
                          reset=self.reset is None or key in self.reset)
            for key, value in values.items()})


class OutputBuffer(wiring.Component):
    """Backpressure without a stall enable: the pipeline in front runs free, and every beat
    it produces finds a reserved place here.

    The alternative to :func:`stall_enable` for a block whose pipeline must not have one
    enable on every register (at 150 MHz on ECP5, ``o.ready`` fanned out to a thousand clock
    enables is a critical path of its own). A beat that will produce an output reserves a
    place when it enters (``reserve``); the block's input takes beats only while there is
    ``room``, so nothing ever has to wait inside the pipeline.

    Parameters
    ----------
    shape : shape-like
        Of the payload.
    depth : int
        Places: ``latency + 1`` keeps one beat per cycle at full rate (``latency`` beats in
        flight, one leaving).

    Members
    -------
    reserve : In(1)
        A beat that will produce an output enters the pipeline in this cycle.
    room : Out(1)
        From registers only: a place is free for a beat that enters in this cycle.
    w : In(stream.Signature(shape))
        The pipeline's output: taken in the cycle it is valid (``w.ready`` is always 1).
    o : Out(stream.Signature(shape))
        The block's output.

    Timing
    ------
    No added latency: a ``w`` beat is on ``o`` in the same cycle while the buffer is empty,
    and is queued behind the buffered ones (or while ``o`` is stalled). ``room`` falls when the
    beats in flight and queued fill ``depth``, so with ``o.ready`` high ``room`` stays high.
    """

    def __init__(self, shape, depth):
        self.depth = depth
        super().__init__({
            "reserve": In(1),
            "room": Out(1),
            "w": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        width = Value.cast(self.w.payload).shape().width
        m.submodules.fifo = fifo = SyncFIFO(width=width, depth=self.depth)
        # places held: beats that reserved one and have not left through ``o`` (in flight or
        # queued); ``room`` is a register, ``held < depth`` a cycle ahead
        held = Signal(range(self.depth + 1), name="held")
        room = Signal(name="room", init=1)
        left = self.o.valid & self.o.ready
        held_next = held + self.reserve - left
        m.d.sync += [held.eq(held_next), room.eq(held_next < self.depth)]
        formal.occupancy(m, "output buffer places", held, push=self.reserve, pop=left,
                         depth=self.depth)
        formal.check(m, "output buffer: no beat written into a full queue", "fifo",
                     ~(fifo.w_en & ~fifo.w_rdy))
        bypass = ~fifo.r_rdy        # queue empty: a new beat goes straight out
        m.d.comb += [
            self.room.eq(room),
            self.w.ready.eq(1),
            self.o.valid.eq(fifo.r_rdy | self.w.valid),
            self.o.payload.eq(Mux(bypass, self.w.payload, fifo.r_data)),
            fifo.r_en.eq(self.o.ready),
            fifo.w_en.eq(self.w.valid & ~(bypass & self.o.ready)),
            fifo.w_data.eq(self.w.payload),
        ]
        return m
