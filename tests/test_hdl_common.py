"""The shared register pipeline (:mod:`accelgen.hdl.common.pipeline`) in the Amaranth simulator:
its latency, and that a stalled output freezes it with no beat lost or duplicated. The blocks
built on it (mac, activation, softmax) rely on exactly this. And the systolic units' loop
nest (:mod:`accelgen.hdl.common.loopnest`) against the Python loop it stands for."""

import itertools
import random
from types import SimpleNamespace

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from accelgen.hdl.common.loopnest import LoopNest
from accelgen.hdl.common.pipeline import OutputBuffer, Pipeline, stall_enable


class _Delay(wiring.Component):
    """``stages`` pipeline stages of an 8-bit payload and its valid bit, with a stage left out
    (``present=False``) in the middle; ``o`` is driven by the last stage's registers."""

    def __init__(self, stages):
        self.stages = stages
        self.depth = None
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        en = stall_enable(m, self.o, self.i)
        pipe = Pipeline(m, enable=en)
        s = SimpleNamespace(valid=self.i.valid, data=self.i.payload)
        for n in range(self.stages):
            s = pipe.stage(valid=s.valid, data=s.data)
            if n == 0:
                s = pipe.add_stage(vars(s), name="absent", present=False)
        m.d.comb += [self.o.valid.eq(s.valid), self.o.payload.eq(s.data)]
        self.depth = pipe.depth
        return m


class _BufferedDelay(wiring.Component):
    """``stages`` free-running stages of an 8-bit payload, then an :class:`OutputBuffer` of
    ``stages + 1`` places; only beats with an odd payload produce an output when ``sparse``
    (as a MAC's ``last`` beats do)."""

    def __init__(self, stages, sparse):
        self.stages, self.sparse = stages, sparse
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
                          "room": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = buf = OutputBuffer(8, self.stages + 1)
        take = self.i.valid & buf.room
        produces = take & (self.i.payload[0] if self.sparse else 1)
        m.d.comb += [self.i.ready.eq(buf.room), self.room.eq(buf.room),
                     buf.reserve.eq(produces)]
        pipe = Pipeline(m)
        s = SimpleNamespace(valid=produces, data=self.i.payload)
        for _ in range(self.stages):
            s = pipe.stage(valid=s.valid, data=s.data)
        m.d.comb += [buf.w.valid.eq(s.valid), buf.w.payload.eq(s.data)]
        wiring.connect(m, buf.o, wiring.flipped(self.o))
        return m


def _simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("stages", [1, 2, 3, 5])
def test_pipeline_of_n_stages_delays_every_beat_exactly_n_cycles(stages):
    dut = _Delay(stages)
    seen = []               # (cycle, payload) of every output beat
    offers = {0: 11, 1: 12, 2: 13, 7: 14}   # cycle -> payload: a burst of 3, a gap, one more

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(20):
            ctx.set(dut.i.valid, cycle in offers)
            ctx.set(dut.i.payload, offers.get(cycle, 0))
            assert ctx.get(dut.i.ready), cycle       # never stalled: o.ready is high
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()

    _simulate(dut, testbench)
    assert dut.depth == stages
    assert seen == [(cycle + stages, word) for cycle, word in sorted(offers.items())]


@pytest.mark.parametrize("stages", [1, 3, 4])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stalled_output_freezes_the_pipeline_and_no_beat_is_lost(stages, seed):
    """Random valid gaps and random ``o.ready``: every cycle, ``o`` and ``i.ready`` equal a
    shift-register model that moves only while ``o`` is not stalled, and the beats come out
    once each, in order."""
    dut = _Delay(stages)
    rng = random.Random(seed)
    sent, got = [], []

    async def testbench(ctx):
        model = [(0, 0)] * stages            # (valid, payload) of stage 1 .. stages
        word, offering = 0, False
        for cycle in range(600):
            if not offering and rng.random() < 0.7:    # a source holds its offer until taken
                offering, word = True, rng.randrange(256)
            ready = rng.random() < 0.5
            ctx.set(dut.i.valid, offering)
            ctx.set(dut.i.payload, word)
            ctx.set(dut.o.ready, ready)
            o_valid, o_word = model[-1]
            en = not o_valid or ready
            where = f"seed {seed}, {stages} stages, cycle {cycle}"
            assert ctx.get(dut.i.ready) == en, where
            assert ctx.get(dut.o.valid) == o_valid, where
            if o_valid:
                assert ctx.get(dut.o.payload) == o_word, where
                if ready:
                    got.append(o_word)
            if en:
                if offering:
                    sent.append(word)
                model = [(int(offering), word)] + model[:-1]
                offering = False
            await ctx.tick()

    _simulate(dut, testbench)
    where = f"seed {seed}, {stages} stages"
    assert got == sent[:len(got)], where                # in order, none lost or repeated
    assert len(sent) - len(got) <= stages, where        # the rest is still in the stages
    assert len(got) > 100, f"{where}: too few beats to mean anything"


@pytest.mark.parametrize("stages", [1, 3, 6])
def test_output_buffer_adds_no_latency_and_keeps_full_rate(stages):
    """With ``o.ready`` high, every beat is taken in its cycle and comes out exactly ``stages``
    cycles later: the buffer is bypassed, and ``latency + 1`` places are enough for one beat
    per cycle."""
    dut = _BufferedDelay(stages, sparse=False)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(40):
            ctx.set(dut.i.valid, cycle < 30)
            ctx.set(dut.i.payload, cycle)
            assert cycle >= 30 or ctx.get(dut.i.ready), cycle
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload)))
            await ctx.tick()

    _simulate(dut, testbench)
    assert seen == [(word + stages, word) for word in range(30)]


@pytest.mark.parametrize("stages", [1, 4])
@pytest.mark.parametrize("sparse", [False, True], ids=["every", "sparse"])
@pytest.mark.parametrize("seed", [1, 2])
def test_output_buffer_under_backpressure_loses_nothing_and_room_ignores_ready(
        stages, sparse, seed):
    """Random gaps and random ``o.ready``: the produced beats come out once each, in order;
    ``room`` (``i.ready``) is the same whatever ``o.ready`` is in that cycle (it comes from
    registers, so ``o.ready`` reaches no enable); and a stalled output is held, not dropped
    or changed, until it is taken."""
    dut = _BufferedDelay(stages, sparse)
    rng = random.Random(seed)
    sent, got = [], []

    async def testbench(ctx):
        word, offering, held = 0, False, None
        for cycle in range(800):
            if not offering and rng.random() < 0.8:
                offering, word = True, rng.randrange(256)
            ready = rng.random() < 0.4
            ctx.set(dut.i.valid, offering)
            ctx.set(dut.i.payload, word)
            where = f"seed {seed}, {stages} stages, cycle {cycle}"
            ctx.set(dut.o.ready, not ready)
            room_other = ctx.get(dut.room)
            ctx.set(dut.o.ready, ready)
            assert ctx.get(dut.room) == room_other, where
            if ctx.get(dut.o.valid):
                out = ctx.get(dut.o.payload)
                assert held is None or out == held, where   # a stalled beat stays put
                held = None if ready else out
                if ready:
                    got.append(out)
            if offering and ctx.get(dut.i.ready):
                if not sparse or word & 1:
                    sent.append(word)
                offering = False
            await ctx.tick()

    _simulate(dut, testbench)
    where = f"seed {seed}, {stages} stages"
    assert got == sent[:len(got)], where
    assert len(sent) - len(got) <= stages + 1, where     # the rest is in flight or waiting
    assert len(got) > 100, f"{where}: too few beats to mean anything"


def _loop_nest_reference(limits, steps):
    """Per iteration, per level: (counter, chunk) of ``for c0 in range(0, L0, s0): for c1 ...``
    (every level runs at least once)."""
    levels = [[(c, min(s, lim - c)) for c in range(0, max(lim, 1), s)]
              for lim, s in zip(limits, steps, strict=True)]
    return list(itertools.product(*levels))


@pytest.mark.parametrize("seed", range(4))
def test_loop_nest_counts_every_iteration_of_the_blocked_space(seed):
    """LoopNest against the Python loop nest it stands for: counters, chunks, first/end flags,
    the wrap of each level on an advance, ``final`` and ``done``, and the ``*_next`` outputs
    against the flags of the next cycle; random limits (partial last blocks included), an
    advance in a random 70 % of the cycles, limits set a cycle before each ``start``."""
    steps = (3, 2, 1)
    dut = LoopNest(steps, width=6, name="t")
    rng = random.Random(seed)
    runs = [[rng.randint(1, 9) for _ in steps] for _ in range(6)]

    async def bench(ctx):
        for limits in runs:
            for port, value in zip(dut.limit, limits, strict=True):
                ctx.set(port, value)
            await ctx.tick()
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            iterations = _loop_nest_reference(limits, steps)
            index = 0
            while True:
                done = index == len(iterations)
                assert ctx.get(dut.done) == done
                current = iterations[0 if done else index]
                for n, (ctr, chunk) in enumerate(current):
                    assert ctx.get(dut.ctr[n]) == ctr, (limits, index, n)
                    assert ctx.get(dut.chunk[n]) == chunk, (limits, index, n)
                    assert ctx.get(dut.first[n]) == (ctr == 0)
                    assert ctx.get(dut.end[n]) == (ctr + steps[n] >= limits[n])
                if done:
                    break
                ends = [ctr + s >= lim for (ctr, _), s, lim in zip(current, steps, limits)]
                assert ctx.get(dut.final) == all(ends)
                advance = rng.random() < 0.7
                ctx.set(dut.advance, advance)
                for n in range(len(steps)):
                    assert ctx.get(dut.wrap[n]) == (advance and all(ends[n:]))
                following = [ctx.get(s) for s in (*dut.end_next, *dut.first_next, dut.done_next,
                                                   *dut.ctr_next, *dut.chunk_next)]
                await ctx.tick()
                ctx.set(dut.advance, 0)
                index += advance
                assert following == [ctx.get(s) for s in (*dut.end, *dut.first, dut.done,
                                                           *dut.ctr, *dut.chunk)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
