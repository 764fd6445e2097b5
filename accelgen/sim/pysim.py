"""Amaranth-simulator helpers: drive a block's ``i`` stream and collect its ``o`` stream with
random valid/ready gaps, at the payload-word level. Used by the fast test tier."""

import random

from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "run_stream"]


async def stream_put(ctx, stream, word):
    """Offer ``word`` on ``stream`` until the sink takes it."""
    ctx.set(stream.payload.as_value(), word)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take one payload word from ``stream``."""
    ctx.set(stream.ready, 1)
    word, = await ctx.tick().sample(stream.payload.as_value()).until(stream.valid)
    ctx.set(stream.ready, 0)
    return word


def run_stream(dut, words, n_out, *, seed=0, valid_prob=1.0, ready_prob=1.0,
               max_cycles=None, settle=32, vcd=None):
    """Send ``words`` into ``dut.i`` and return the words ``dut.o`` produced: ``n_out`` of them
    plus any extra ones seen in ``settle`` more cycles with ``o.ready`` high, so a spurious
    output fails the caller's comparison. Fewer words come back if ``max_cycles`` runs out
    first (a hang fails the comparison instead of hanging). ``valid_prob``/``ready_prob`` < 1
    insert random gaps and backpressure (seeded)."""
    rng = random.Random(seed)
    out = []
    max_cycles = (max_cycles or 20 * (len(words) + n_out) + 100) + settle

    async def driver(ctx):
        for word in words:
            while rng.random() > valid_prob:
                await ctx.tick()
            await stream_put(ctx, dut.i, word)

    async def monitor(ctx):
        while len(out) < n_out:
            while rng.random() > ready_prob:
                await ctx.tick()
            out.append(await stream_get(ctx, dut.o))
        ctx.set(dut.o.ready, 1)
        for _ in range(settle):
            _, _, word, valid = await ctx.tick().sample(dut.o.payload.as_value(), dut.o.valid)
            if valid:
                out.append(word)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver, background=True)
    sim.add_testbench(monitor)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run_until(max_cycles * 1e-8)
    else:
        sim.run_until(max_cycles * 1e-8)
    return out
