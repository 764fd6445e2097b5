"""cocotb testbench of block ``activation``: drives the emitted Verilog's ``i`` stream, takes
``o``, and scoreboards every output beat against :mod:`accelgen.sim.golden.activation`.

Parameters come only from the environment (set by :func:`accelgen.sim.runner.simulate`):

=====================  ==================================================================
``ACCELGEN_MANIFEST``  path of ``<top>.json``; the config is rebuilt from its ``config``
``ACCELGEN_SEED``      integer seed (default 0); every failure message prints it
``ACCELGEN_BEATS``     input beats of the random testcases (default 200)
``ACCELGEN_INPUTS``    optional ``.npz`` with ``x``: codes, ``(elements,)`` or
                       ``(beats, lanes)``
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``y``, shaped as ``x``)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
``ACCELGEN_RESULT``    optional JSON file; each testcase adds ``testcases[<name>]`` to it
=====================  ==================================================================

Testcases (each starts with a synchronous reset and uses its own RNG stream derived from the
seed and its name, so results do not depend on which other testcases run):

``exhaustive``       every code of ``in_format`` once, in random order, ``lanes`` per beat (the
                     last beat padded with ``in_min``), random ``last`` bits, random
                     ``i.valid`` gaps and ``o.ready`` backpressure; every output equal to
                     golden ``activation``. Records the RTL's error against float64 over every
                     code (``errors``, output LSB).
``random_traffic``   ``ACCELGEN_BEATS`` raw random payload words (``last`` included), gaps and
                     backpressure; checked with golden ``words`` (payload level).
``throughput``       ``ACCELGEN_BEATS`` back-to-back beats with ``o.ready`` = 1: exactly one
                     beat per cycle in and out (``derived.throughput_beats_per_cycle``), i.e.
                     ``lanes`` elements per cycle (``derived.elements_per_cycle``).
``latency``          cycles from accepting a lone beat to its ``o`` transfer (``o.ready`` = 1:
                     the first cycle ``o.valid`` is high) equal ``derived.latency``, for lone
                     beats and for every beat of a back-to-back burst.
``reset_midstream``  ``rst`` while the pipeline is full (``o.ready`` held low): nothing that
                     was in flight comes out afterwards, and the following traffic is exact.
``user_inputs``      ``ACCELGEN_INPUTS`` (or random codes) back to back; writes
                     ``ACCELGEN_OUTPUTS``, checks unless ``ACCELGEN_CHECK=0``, and records
                     the RTL's error against float64 (``errors``: ``max_abs``, ``mean_abs``,
                     ``mean`` in output LSB, ``code_max`` against correctly rounded codes).

Stream timing follows :mod:`accelgen.sim.cocotb.streams`: drive after a falling edge, read in
``ReadOnly``, a transfer is tagged with the rising edge that completes it.
"""

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from accelgen.numerics import wrap
from accelgen.sim.cocotb.bench import (PERIOD_NS, BenchBase, assert_clean, env_text,
                                       reset)
from accelgen.sim.cocotb.streams import CycleCounter, StreamSink, StreamSource
from accelgen.sim.reference import error_stats

SHOW_MISMATCHES = 5


# -- parameters and set-up -----------------------------------------------------------------

class Bench(BenchBase):
    """Everything a testcase needs: manifest, config, golden model, clock, seeded RNGs.

    Members
    -------
    manifest : Manifest
    config : ActivationConfig, rebuilt from ``manifest["config"]``
    golden : module :mod:`accelgen.sim.golden.activation`
    seed, beats : int
    rng : random.Random
        For valid/ready gaps (stream drivers) and raw payload bits.
    nprng : numpy.random.Generator
        For input codes.
    counter : CycleCounter
    """

    def __init__(self, dut, testcase):
        super().__init__(dut, testcase, generator="activation")
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


def _check_enabled():
    return env_text("ACCELGEN_CHECK") not in ("0", "false", "no")


# -- scoreboard ----------------------------------------------------------------------------

def _lanes(values):
    return values[0] if len(values) == 1 else list(values)


def compare(bench, in_words, got, want):
    """Mismatch descriptions between RTL and golden ``o`` payload integers, naming the beat,
    its input codes and the lanes that differ."""
    cfg, golden = bench.config, bench.golden
    mismatches = []
    if len(got) != len(want):
        mismatches.append(f"RTL produced {len(got)} output beats, golden model {len(want)}")
    bad = [n for n in range(min(len(got), len(want))) if got[n] != want[n]]
    if not bad:
        return mismatches
    x = golden.unpack_inputs(cfg, [in_words[n] for n in bad])["x"]
    g = golden.unpack_outputs(cfg, [got[n] for n in bad])
    w = golden.unpack_outputs(cfg, [want[n] for n in bad])
    for j, n in enumerate(bad):
        lanes = [lane for lane in range(cfg.lanes) if g["y"][j, lane] != w["y"][j, lane]]
        what = (f"lanes {lanes}: x={_lanes(x[j, lanes].tolist())} -> RTL "
                f"y={_lanes(g['y'][j, lanes].tolist())} != golden "
                f"y={_lanes(w['y'][j, lanes].tolist())}") if lanes else ""
        if g["last"][j] != w["last"][j]:
            what += f"{'; ' if what else ''}RTL last={int(g['last'][j])} != golden " \
                    f"last={int(w['last'][j])}"
        mismatches.append(f"beat #{n}: {what}")
    return mismatches


async def run_words(bench, words, *, valid_prob=1.0, ready_prob=1.0, settle=True):
    """Send ``words`` and collect one output beat per input beat. With ``settle``, also wait a
    few cycles more, so an extra (spurious) output would be collected too. Returns
    ``(source, sink)``."""
    sink = bench.sink(ready_prob)
    source = bench.source(valid_prob).send(words)
    budget = bench.timeout(len(words), valid_prob * ready_prob)
    done = await source.wait_idle(budget)
    assert done, bench.fail(f"i accepted {len(source.accepted)} of {len(words)} beats within "
                            f"{budget} cycles (i.ready stuck low?)")
    done = await sink.expect(len(words), budget)
    assert done, bench.fail(f"o delivered {len(sink.received)} of {len(words)} beats within "
                            f"{budget} cycles")
    if settle:
        await ClockCycles(bench.dut.clk, bench.config.latency + 8)
        await FallingEdge(bench.dut.clk)
    source.stop()
    sink.stop()
    return source, sink


def expected_words(bench, x, last):
    """``o`` words golden :func:`activation` gives for ``(beats, lanes)`` codes ``x``."""
    y = bench.golden.activation(bench.config, x)
    return bench.golden.pack_outputs(bench.config, y, last)


def rtl_errors(config, x, y):
    """The RTL's outputs ``y`` for codes ``x`` (flat, same length) against float64, in output
    LSB, as golden ``errors`` measures the model: :func:`error_stats` of ``y - clamp(r(x))``,
    plus ``code_max`` / ``code_mismatches`` against the correctly rounded codes."""
    from accelgen.sim.golden.activation import float_reference
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    stats = error_stats(y, float_reference(config, x))
    ideal = np.asarray(config.table, np.int64)[x - config.in_fmt.min]
    stats["code_max"] = int(np.max(np.abs(y - ideal))) if y.size else 0
    stats["code_mismatches"] = int(np.count_nonzero(y != ideal))
    stats["inputs"] = int(x.size)
    if x.size:
        stats["worst_input"] = int(x.reshape(-1)[stats["worst_index"]])
    return stats


# -- testcases -----------------------------------------------------------------------------

@cocotb.test()
async def exhaustive(dut):
    """Every input code (random order, lanes per beat), random gaps and backpressure."""
    bench = await start(dut, "exhaustive")
    cfg = bench.config
    codes = bench.nprng.permutation(np.arange(cfg.in_fmt.min, cfg.in_fmt.max + 1))
    x, n = bench.golden.as_beats(cfg, codes)
    last = bench.nprng.random(len(x)) < 0.25
    last[-1] = True
    words = bench.golden.pack_inputs(cfg, x, last)
    # many beats (s16: 65536 codes): fewer gaps, so the cycle count stays modest
    light = len(words) > 4096
    valid_prob = bench.rng.uniform(0.85, 1.0) if light else bench.rng.uniform(0.5, 0.9)
    ready_prob = bench.rng.uniform(0.85, 1.0) if light else bench.rng.uniform(0.4, 0.9)
    _, sink = await run_words(bench, words, valid_prob=valid_prob, ready_prob=ready_prob)
    mismatches = compare(bench, words, sink.words, expected_words(bench, x, last))
    y = bench.golden.unpack_outputs(cfg, sink.words)["y"].reshape(-1)[:n]
    bench.record(codes=n, beats=len(words), outputs=len(sink.words), valid_prob=valid_prob,
                 ready_prob=ready_prob, errors=rtl_errors(cfg, x.reshape(-1)[:n], y))
    assert_clean(bench, mismatches, "every input code")


@cocotb.test()
async def random_traffic(dut):
    """Raw random payload words (``last`` bits included) against golden ``words``."""
    bench = await start(dut, "random_traffic")
    width = bench.manifest.width("i")
    words = [bench.rng.getrandbits(width) for _ in range(bench.beats)]
    valid_prob, ready_prob = bench.rng.uniform(0.5, 0.9), bench.rng.uniform(0.3, 0.8)
    _, sink = await run_words(bench, words, valid_prob=valid_prob, ready_prob=ready_prob)
    want = bench.golden.words(bench.config, words)
    bench.record(beats=len(words), outputs=len(sink.words), valid_prob=valid_prob,
                 ready_prob=ready_prob)
    assert_clean(bench, compare(bench, words, sink.words, want), "random payload words")


@cocotb.test()
async def throughput(dut):
    """Back-to-back beats, o.ready = 1: one beat per cycle in and out, exactly."""
    bench = await start(dut, "throughput")
    cfg = bench.config
    derived = bench.manifest.derived
    x = bench.golden.random_inputs(cfg, bench.nprng, max(bench.beats, 16))["x"]
    last = bench.nprng.random(len(x)) < 0.25
    words = bench.golden.pack_inputs(cfg, x, last)
    source, sink = await run_words(bench, words, settle=False)
    beats = len(source.accepted)
    in_cycles = source.accepted[-1][0] - source.accepted[0][0] + 1
    out_cycles = sink.received[-1][0] - sink.received[0][0] + 1
    measured = Fraction(beats, in_cycles)
    out_rate = Fraction(len(sink.received), out_cycles)
    declared = Fraction(derived.get("throughput_beats_per_cycle", 1))
    elements = measured * cfg.lanes
    problems = []
    if measured != declared or out_rate != declared:
        problems.append(f"{beats} beats accepted in {in_cycles} cycles ({float(measured):g}/"
                        f"cycle), delivered in {out_cycles} cycles ({float(out_rate):g}/cycle); "
                        f"manifest declares {declared} beat per cycle")
    if derived.get("elements_per_cycle") is not None \
            and elements != Fraction(derived["elements_per_cycle"]):
        problems.append(f"measured {float(elements):g} elements/cycle, manifest declares "
                        f"{derived['elements_per_cycle']}")
    problems += compare(bench, words, sink.words, expected_words(bench, x, last))
    bench.record(beats=beats, cycles=in_cycles, out_cycles=out_cycles,
                 beats_per_cycle=measured, elements_per_cycle=elements,
                 declared=derived.get("elements_per_cycle"))
    assert not problems, bench.fail("; ".join(problems[:SHOW_MISMATCHES]))


@cocotb.test()
async def latency(dut):
    """Lone beats and a back-to-back burst: every beat out exactly ``derived.latency`` cycles
    after it was accepted."""
    bench = await start(dut, "latency")
    cfg = bench.config
    declared = bench.manifest.derived["latency"]
    measured, problems = [], []
    for trial in range(4):
        x = bench.golden.random_inputs(cfg, bench.nprng, 1)["x"]
        words = bench.golden.pack_inputs(cfg, x, [trial % 2 == 0])
        source, sink = await run_words(bench, words)   # settles: the pipeline is empty again
        cycles = sink.received[0][0] - source.accepted[0][0]
        measured.append(cycles)
        if cycles != declared or sink.first_valid != sink.received[0][0]:
            problems.append(f"trial {trial}: o.valid first high {sink.first_valid}, transfer "
                            f"{sink.received[0][0]}, beat accepted {source.accepted[0][0]}: "
                            f"{cycles} cycles, manifest declares {declared}")
        problems += compare(bench, words, sink.words, expected_words(bench, x, [trial % 2 == 0]))
    x = bench.golden.random_inputs(cfg, bench.nprng, 3 * declared + 8)["x"]
    words = bench.golden.pack_inputs(cfg, x)
    source, sink = await run_words(bench, words)
    burst = sorted({o[0] - i[0] for i, o in zip(source.accepted, sink.received)})
    if burst != [declared]:
        problems.append(f"back-to-back burst: latencies {burst}, manifest declares {declared}")
    problems += compare(bench, words, sink.words, expected_words(bench, x, np.zeros(len(x))))
    bench.record(latency=measured[0], measured=measured, burst=burst, declared=declared)
    assert not problems, bench.fail("; ".join(problems[:SHOW_MISMATCHES]))


@cocotb.test()
async def reset_midstream(dut):
    """rst with the pipeline full: nothing in flight comes out, later traffic is exact."""
    bench = await start(dut, "reset_midstream")
    cfg = bench.config
    width = bench.manifest.width("i")
    before = [bench.rng.getrandbits(width) for _ in range(bench.beats + 4 * cfg.latency)]
    early_source = bench.source(0.9).send(before)
    early_sink = bench.sink(0.5)
    await ClockCycles(dut.clk, bench.rng.randint(cfg.latency + 2,
                                                 max(cfg.latency + 3, bench.beats // 2)))
    await FallingEdge(dut.clk)
    early_sink.stop()
    dut.o__ready.value = 0   # stall the output so the pipeline fills up
    await ClockCycles(dut.clk, cfg.latency + 3)
    await FallingEdge(dut.clk)
    early_source.stop()
    dut.i__valid.value = 0
    in_flight = len(early_source.accepted) - len(early_sink.received)
    assert in_flight > 0, bench.fail("nothing was in flight at the reset; the testcase did "
                                     "not test anything")
    await reset(dut, bench.rng.randint(1, 3))
    # Output side alone first: anything that comes out now survived the reset.
    quiet = bench.sink(1.0)
    await ClockCycles(dut.clk, cfg.latency + 8)
    await FallingEdge(dut.clk)
    quiet.stop()
    stale = [f"{bench.manifest.unpack('o', w)} came out after the reset with no input"
             for w in quiet.words]
    x = bench.golden.random_inputs(cfg, bench.nprng, bench.beats)["x"]
    last = bench.nprng.random(len(x)) < 0.25
    words = bench.golden.pack_inputs(cfg, x, last)
    _, sink = await run_words(bench, words, valid_prob=0.8, ready_prob=0.7)
    bench.record(beats_before=len(early_source.accepted), outputs_before=len(early_sink.words),
                 in_flight=in_flight, stale=len(quiet.words), beats=len(words))
    assert_clean(bench, stale + compare(bench, words, sink.words, expected_words(bench, x, last)),
                 "the traffic after the reset")


def _user_x(bench):
    """``x`` of ``ACCELGEN_INPUTS`` (validated by the runner), or random codes."""
    path = env_text("ACCELGEN_INPUTS")
    if not path:
        return bench.golden.random_inputs(bench.config, bench.nprng, bench.beats)["x"], None
    with np.load(path) as data:
        unknown = set(data.files) - set(bench.golden.ARGUMENTS)
        assert not unknown and "x" in data.files, bench.fail(
            f"{path}: arrays {sorted(data.files)}; expected x")
        return np.asarray(data["x"]), path


def _save_outputs(path, y):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, y=y)
    os.replace(tmp, path)


@cocotb.test()
async def user_inputs(dut):
    """User codes through the RTL back to back; ``y`` to ``ACCELGEN_OUTPUTS``; error against
    float64 recorded."""
    bench = await start(dut, "user_inputs")
    cfg, golden = bench.config, bench.golden
    x, path = _user_x(bench)
    beats, n = golden.as_beats(cfg, x)
    beats = wrap(beats, cfg.in_fmt)   # the hardware reads the low bits (ACCELGEN_CHECK=0)
    last = np.zeros(len(beats), bool)
    last[-1] = True
    words = golden.pack_inputs(cfg, beats, last)
    source, sink = await run_words(bench, words, settle=False)
    y_beats = golden.unpack_outputs(cfg, sink.words)["y"]
    y = y_beats.reshape(-1)[:n].reshape(np.shape(x))
    if env_text("ACCELGEN_OUTPUTS"):
        _save_outputs(env_text("ACCELGEN_OUTPUTS"), y)
    check = _check_enabled()
    mismatches = compare(bench, words, sink.words, expected_words(bench, beats, last)) \
        if check else []
    first, last_in = source.accepted[0][0], source.accepted[-1][0]
    end = sink.received[-1][0]
    rate = Fraction(len(words), last_in - first + 1)
    bench.record(inputs=path, elements=n, beats=len(words), outputs=len(sink.words),
                 cycles=end - first + 1, throughput=rate, elements_per_cycle=rate * cfg.lanes,
                 errors=rtl_errors(cfg, beats.reshape(-1)[:n], y.reshape(-1)),
                 check="skipped" if not check else "failed" if mismatches else "passed")
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")
