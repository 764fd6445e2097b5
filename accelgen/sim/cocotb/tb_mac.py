"""cocotb testbench of block ``mac``: drives the emitted Verilog, scoreboards against the golden
model :mod:`accelgen.sim.golden.mac`.

Parameters come only from the environment (set by :func:`accelgen.sim.runner.simulate`):

=====================  ==================================================================
``ACCELGEN_MANIFEST``  path of ``<top>.json``; the config is rebuilt from its ``config``
``ACCELGEN_SEED``      integer seed (default 0); every failure message prints it
``ACCELGEN_BEATS``     input beats per testcase (per mode in ``throughput``; default 200)
``ACCELGEN_INPUTS``    optional ``.npz`` with arrays named as golden ``ARGUMENTS``
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``acc``, ``err``)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
``ACCELGEN_RESULT``    optional JSON file; each testcase adds ``testcases[<name>]`` to it
=====================  ==================================================================

Testcases (each starts with a synchronous reset and uses its own RNG stream derived from the
seed and its name, so results do not depend on which other testcases run):

``random_traffic``   random in-range operands in random modes, random ``i.valid`` gaps and
                     random ``o.ready`` backpressure; every output checked (array level).
``random_words``     raw random payload bits, invalid mode codes included; checked with
                     ``golden.words`` (payload level).
``throughput``       per mode, back-to-back beats with ``o.ready`` = 1: MACs per cycle from
                     first to last accepted beat must equal the manifest's
                     ``derived.macs_per_cycle[mode]`` exactly.
``latency``          cycles from accepting a lone ``last`` beat to its ``o`` transfer (with
                     ``o.ready`` = 1, the first cycle ``o.valid`` is high) must equal
                     ``derived.latency``.
``reset_midstream``  ``rst`` in the middle of random traffic; afterwards an accumulation that
                     starts *without* ``clear`` must come out as if from zero, and nothing in
                     flight before the reset may come out.
``user_inputs``      runs ``ACCELGEN_INPUTS`` (or random inputs) back to back, writes what the
                     RTL produced to ``ACCELGEN_OUTPUTS``, checks unless ``ACCELGEN_CHECK=0``.
"""

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from accelgen.sim.cocotb.bench import PERIOD_NS, BenchBase, assert_clean, reset
from accelgen.sim.cocotb.streams import CycleCounter, StreamSink, StreamSource

SHOW_MISMATCHES = 5


# -- parameters and set-up -----------------------------------------------------------------

class Bench(BenchBase):
    """Everything a testcase needs: manifest, config, golden model, clock, seeded RNGs.

    Members
    -------
    manifest : Manifest
    config : the block's Config, rebuilt from ``manifest["config"]``
    golden : module (``run``, ``words``, ``pack_inputs``, ``unpack_outputs``, ...)
    seed, beats : int
    rng : random.Random
        For valid/ready gaps (stream drivers).
    nprng : numpy.random.Generator
        For operands.
    counter : CycleCounter
    """

    def __init__(self, dut, testcase):
        super().__init__(dut, testcase, generator="mac")
        self.golden = self.spec.golden_model()

    def source(self, valid_prob=1.0):
        return StreamSource(self.dut, "i", self.dut.clk, self.counter, valid_prob=valid_prob,
                            rng=self.rng)

    def sink(self, ready_prob=1.0):
        return StreamSink(self.dut, "o", self.dut.clk, self.counter, ready_prob=ready_prob,
                          rng=self.rng).start()

    def timeout(self, beats, gaps=1.0):
        """Generous cycle budget for ``beats`` transfers at ``gaps`` (probability product)."""
        return int(8 * (beats + 4) / max(gaps, 0.05)) + 8 * self.config.latency + 100


async def start(dut, testcase):
    """Clock, idle streams and a reset; returns the :class:`Bench`."""
    bench = Bench(dut, testcase)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    bench.counter = CycleCounter(PERIOD_NS, "ns")
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut)
    return bench


# -- scoreboard ----------------------------------------------------------------------------

def _describe(bench, word):
    return bench.manifest.unpack("o", word) if word is not None else "nothing"


def compare_words(bench, got, want):
    """Mismatch descriptions between RTL and golden output payload integers."""
    mismatches = []
    for n in range(max(len(got), len(want))):
        g = got[n] if n < len(got) else None
        w = want[n] if n < len(want) else None
        if g != w:
            mismatches.append(f"output #{n}: RTL {_describe(bench, g)} != golden "
                              f"{_describe(bench, w)}")
    return mismatches


def compare_arrays(got, want):
    """Mismatch descriptions between ``{"acc", "err"}`` results of RTL and golden model."""
    mismatches = []
    n_got, n_want = len(got["err"]), len(want["err"])
    if n_got != n_want:
        mismatches.append(f"RTL produced {n_got} outputs, golden model {n_want}")
    for n in range(min(n_got, n_want)):
        if (not np.array_equal(got["acc"][n], want["acc"][n])
                or bool(got["err"][n]) != bool(want["err"][n])):
            mismatches.append(f"output #{n}: RTL acc={got['acc'][n].tolist()} "
                              f"err={bool(got['err'][n])} != golden "
                              f"acc={want['acc'][n].tolist()} err={bool(want['err'][n])}")
    return mismatches


def count_last(bench, words):
    return sum(bench.manifest.unpack("i", w)["last"] for w in words)


async def run_words(bench, words, *, valid_prob=1.0, ready_prob=1.0, settle=True):
    """Send ``words`` and collect the outputs their ``last`` bits call for. With ``settle``,
    also wait a few cycles more, so an extra (spurious) output would be collected too.
    Returns ``(source, sink)``."""
    expected = count_last(bench, words)
    sink = bench.sink(ready_prob)
    source = bench.source(valid_prob).send(words)
    budget = bench.timeout(len(words), valid_prob * ready_prob)
    done = await source.wait_idle(budget)
    assert done, bench.fail(f"i accepted {len(source.accepted)} of {len(words)} beats within "
                            f"{budget} cycles (i.ready stuck low?)")
    done = await sink.expect(expected, budget)
    assert done, bench.fail(f"o delivered {len(sink.received)} of {expected} outputs within "
                            f"{budget} cycles")
    if settle:
        await ClockCycles(bench.dut.clk, bench.config.latency + 8)
        await FallingEdge(bench.dut.clk)
    source.stop()
    sink.stop()
    return source, sink


def macs_of(bench, words):
    """MACs the golden semantics assign to input ``words``: lanes x products per lane of each
    beat's mode (beats with an invalid mode code do no MACs)."""
    total = 0
    for w in words:
        code = bench.manifest.unpack("i", w).get("mode", 0)
        if code < len(bench.config.modes):
            total += bench.config.lanes * bench.config.products_per_lane(code)
    return total


# -- testcases -----------------------------------------------------------------------------

@cocotb.test()
async def random_traffic(dut):
    """Random in-range operands and modes, random valid gaps and o.ready backpressure."""
    bench = await start(dut, "random_traffic")
    args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats, last_every=3)
    words = bench.golden.pack_inputs(bench.config, **args)
    valid_prob, ready_prob = bench.rng.uniform(0.5, 0.9), bench.rng.uniform(0.3, 0.8)
    _, sink = await run_words(bench, words, valid_prob=valid_prob, ready_prob=ready_prob)
    got = bench.golden.unpack_outputs(bench.config, sink.words)
    want = bench.golden.run(bench.config, **args)
    bench.record(beats=len(words), outputs=len(sink.words), valid_prob=valid_prob,
                 ready_prob=ready_prob)
    assert_clean(bench, compare_arrays(got, want), "random traffic")


@cocotb.test()
async def random_words(dut):
    """Raw random payload bits (unused slots, invalid mode codes) against ``golden.words``."""
    bench = await start(dut, "random_words")
    width = bench.manifest.width("i")
    words = [bench.rng.getrandbits(width) for _ in range(bench.beats)]
    words[-1] = words[-1] | (1 << _field(bench, "i", "last").offset)   # flush at the end
    _, sink = await run_words(bench, words, valid_prob=0.8, ready_prob=0.6)
    want = bench.golden.words(bench.config, words)
    bench.record(beats=len(words), outputs=len(sink.words))
    assert_clean(bench, compare_words(bench, sink.words, want), "random payload words")


def _field(bench, stream, name):
    return next(f for f in bench.manifest.fields(stream) if f.name == name)


@cocotb.test()
async def throughput(dut):
    """Per mode: back-to-back beats, o.ready = 1; MACs/cycle must equal the declared figure."""
    bench = await start(dut, "throughput")
    declared = bench.manifest.derived["macs_per_cycle"]
    figures, problems = {}, []
    for mode in bench.config.modes:
        args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats, modes=[mode])
        words = bench.golden.pack_inputs(bench.config, **args)
        source, sink = await run_words(bench, words, settle=False)
        first, last = source.accepted[0][0], source.accepted[-1][0]
        cycles = last - first + 1
        macs = len(source.accepted) * bench.config.lanes * bench.config.products_per_lane(mode)
        measured = Fraction(macs, cycles)
        figures[mode] = {"beats": len(source.accepted), "cycles": cycles, "macs": macs,
                         "macs_per_cycle": measured, "declared": declared.get(mode),
                         "beats_per_cycle": Fraction(len(source.accepted), cycles)}
        if declared.get(mode) is None or measured != Fraction(declared[mode]):
            problems.append(f"mode {mode}: measured {macs} MACs in {cycles} cycles = "
                            f"{float(measured):g} MACs/cycle, manifest declares "
                            f"{declared.get(mode)}")
        problems += [f"mode {mode}: {m}" for m in compare_arrays(
            bench.golden.unpack_outputs(bench.config, sink.words),
            bench.golden.run(bench.config, **args))]
    bench.record(macs_per_cycle={m: f["macs_per_cycle"] for m, f in figures.items()},
                 modes=figures)
    assert not problems, bench.fail("; ".join(problems[:SHOW_MISMATCHES]))


@cocotb.test()
async def latency(dut):
    """Cycles from accepting a lone ``last`` beat to its o transfer equal ``derived.latency``."""
    bench = await start(dut, "latency")
    declared = bench.manifest.derived["latency"]
    measured, problems = [], []
    for trial in range(4):
        args = bench.golden.random_inputs(bench.config, bench.nprng, 1)
        words = bench.golden.pack_inputs(bench.config, **args)
        source, sink = await run_words(bench, words)   # settles: the pipeline is empty again
        cycles = sink.received[0][0] - source.accepted[0][0]
        measured.append(cycles)
        if cycles != declared or sink.first_valid != sink.received[0][0]:
            problems.append(f"trial {trial}: o.valid first high {sink.first_valid}, transfer "
                            f"{sink.received[0][0]}, beat accepted {source.accepted[0][0]}: "
                            f"{cycles} cycles, manifest declares {declared}")
        problems += compare_arrays(bench.golden.unpack_outputs(bench.config, sink.words),
                                   bench.golden.run(bench.config, **args))
    bench.record(latency=measured[0], measured=measured, declared=declared)
    assert not problems, bench.fail("; ".join(problems[:SHOW_MISMATCHES]))


@cocotb.test()
async def reset_midstream(dut):
    """rst during traffic: nothing in flight comes out, and accumulation restarts from zero."""
    bench = await start(dut, "reset_midstream")
    width = bench.manifest.width("i")
    # Raw words before the reset: they can leave err set and the accumulators dirty.
    before = [bench.rng.getrandbits(width) for _ in range(bench.beats)]
    early_source = bench.source(0.8).send(before)
    early_sink = bench.sink(0.5)
    await ClockCycles(dut.clk, bench.rng.randint(3, max(4, bench.beats // 2)))
    await FallingEdge(dut.clk)
    early_source.stop()
    early_sink.stop()
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    await reset(dut, bench.rng.randint(1, 3))
    args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats)
    args["clear"][0] = False   # only the reset may have zeroed the accumulators and err
    words = bench.golden.pack_inputs(bench.config, **args)
    _, sink = await run_words(bench, words, valid_prob=0.8, ready_prob=0.7)
    bench.record(beats_before=len(early_source.accepted), outputs_before=len(early_sink.words),
                 beats=len(words))
    assert_clean(bench, compare_arrays(bench.golden.unpack_outputs(bench.config, sink.words),
                                       bench.golden.run(bench.config, **args)),
                 "the accumulation after the reset")


def _user_arrays(bench):
    """Arrays of ``ACCELGEN_INPUTS`` (names = golden ``ARGUMENTS``), or random inputs."""
    path = os.environ.get("ACCELGEN_INPUTS")
    if not path:
        return bench.golden.random_inputs(bench.config, bench.nprng, bench.beats), None
    with np.load(path) as data:
        unknown = set(data.files) - set(bench.golden.ARGUMENTS)
        assert not unknown, bench.fail(f"{path}: unknown arrays {sorted(unknown)}; expected "
                                       f"names from {list(bench.golden.ARGUMENTS)}")
        return {k: data[k] for k in bench.golden.ARGUMENTS if k in data.files}, path


def _save_outputs(path, got):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, acc=got["acc"], err=got["err"])
    os.replace(tmp, path)


@cocotb.test()
async def user_inputs(dut):
    """User arrays through the RTL back to back; outputs to ``ACCELGEN_OUTPUTS``."""
    bench = await start(dut, "user_inputs")
    args, path = _user_arrays(bench)
    words = bench.golden.pack_inputs(bench.config, **args)
    source, sink = await run_words(bench, words, settle=False)
    got = bench.golden.unpack_outputs(bench.config, sink.words)
    if os.environ.get("ACCELGEN_OUTPUTS"):
        _save_outputs(os.environ["ACCELGEN_OUTPUTS"], got)
    first, last_in = source.accepted[0][0], source.accepted[-1][0]
    end = sink.received[-1][0] if sink.received else last_in
    macs = macs_of(bench, words)
    check = os.environ.get("ACCELGEN_CHECK", "1").strip() not in ("0", "false", "no")
    mismatches = compare_arrays(got, bench.golden.run(bench.config, **args)) if check else []
    bench.record(inputs=path, beats=len(words), outputs=len(sink.words),
                 cycles=end - first + 1, throughput=Fraction(len(words), last_in - first + 1),
                 macs=macs, macs_per_cycle=Fraction(macs, last_in - first + 1),
                 check="skipped" if not check else "failed" if mismatches else "passed")
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")
