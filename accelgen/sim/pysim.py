"""Amaranth-simulator helpers: drive a block's ``i`` stream and collect its ``o`` stream with
random valid/ready gaps, at the payload-word level. Used by the fast test tier."""

import random

from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

__all__ = ["stream_put", "stream_get", "run_stream", "run_streams"]


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
        # one sample per cycle with a cycle budget: a hang ends the run instead of the test
        cycles = 0
        while len(out) < n_out and cycles < max_cycles:
            ready = rng.random() <= ready_prob
            ctx.set(dut.o.ready, ready)
            _, _, word, valid = await ctx.tick().sample(dut.o.payload.as_value(), dut.o.valid)
            cycles += 1
            if ready and valid:
                out.append(word)
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
            sim.run()
    else:
        sim.run()
    return out



def run_streams(dut, inputs, outputs, *, seed=0, valid_prob=1.0, ready_prob=1.0,
                max_cycles=100_000, settle=32, reset_at=None, vcd=None, monitors=()):
    """Drive several input streams and collect several output streams of ``dut``, all from one
    cycle-by-cycle testbench (so runs are reproducible for a seed).

    ``inputs``: ``{port name: [payload words]}``; ``outputs``: ``{port name: expected count}``.
    Returns ``({port name: [words]}, cycles)``. Each output gets its expected count plus any
    extra words seen during ``settle`` more cycles with ready high (a spurious word fails the
    caller's comparison); fewer come back if ``max_cycles`` runs out (a hang fails the
    comparison instead of hanging). ``valid_prob``/``ready_prob`` < 1 add seeded random gaps
    and backpressure on every stream (a ``{port name: probability}`` dict sets them per stream,
    1.0 for the ports it leaves out). ``reset_at=(cycle, inputs2, outputs2)`` holds reset for
    one cycle at ``cycle``, drops everything in flight and then runs the second set of streams;
    only the second run's words are returned. ``monitors`` names output ports without
    ``ready`` (a ``valid`` and a ``payload`` only) whose every valid word is collected too
    (from both phases).
    """
    rng = random.Random(seed)

    def probability(setting, name):
        return setting.get(name, 1.0) if isinstance(setting, dict) else setting

    phases = [(inputs, outputs)] + ([tuple(reset_at[1:])] if reset_at else [])
    result = {name: [] for name in monitors}

    async def bench(ctx):
        cycle = 0
        for number, (ins, outs) in enumerate(phases):
            pending = {name: list(words) for name, words in ins.items()}
            got = {name: [] for name in outs}
            offering = dict.fromkeys(ins, False)
            settled = 0
            last_phase = number == len(phases) - 1
            while cycle < max_cycles:
                if not last_phase and cycle == reset_at[0]:
                    for name in ins:
                        ctx.set(getattr(dut, name).valid, 0)
                    ctx.set(reset, 1)
                    await ctx.tick()
                    ctx.set(reset, 0)
                    cycle += 1
                    break
                for name, words in pending.items():
                    port = getattr(dut, name)
                    if not offering[name] and words and rng.random() <= probability(
                            valid_prob, name):
                        ctx.set(port.payload.as_value(), words[0])
                        offering[name] = True
                    ctx.set(port.valid, int(offering[name]))
                readies = {}
                for name in outs:
                    readies[name] = (len(got[name]) >= outs[name]) or \
                        rng.random() <= probability(ready_prob, name)
                    ctx.set(getattr(dut, name).ready, int(readies[name]))
                sampled = [getattr(dut, n).ready for n in pending] + \
                    [x for n in (*outs, *monitors) for x in (getattr(dut, n).valid,
                                                             getattr(dut, n).payload.as_value())]
                values = (await ctx.tick().sample(*sampled))[2:]
                cycle += 1
                for name in pending:
                    ready, values = values[0], values[1:]
                    if offering[name] and ready:
                        pending[name].pop(0)
                        offering[name] = False
                for name in outs:
                    (valid, word), values = values[:2], values[2:]
                    if valid and readies[name]:
                        got[name].append(word)
                for name in monitors:
                    (valid, word), values = values[:2], values[2:]
                    if valid:
                        result[name].append(word)
                if all(len(got[n]) >= c for n, c in outs.items()) and \
                        not any(pending.values()):
                    settled += 1
                    if settled > settle:
                        break
            result.update(got)
        result["cycles"] = cycle

    reset = Signal(name="tb_reset")
    sim = Simulator(ResetInserter(reset)(dut) if reset_at else dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    cycles = result.pop("cycles")
    return result, cycles
