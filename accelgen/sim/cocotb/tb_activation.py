"""cocotb testbench of block ``activation``: drives the emitted Verilog's ``i`` stream, takes
``o``, and scoreboards every output beat against :mod:`accelgen.sim.golden.activation`.

Parameters are :class:`accelgen.sim.cocotb.bench.BenchEnv` (``ACCELGEN_*``, set by
:func:`accelgen.sim.runner.simulate`); for this block:

=====================  ==================================================================
``ACCELGEN_BEATS``     input beats of the random testcases (default 200)
``ACCELGEN_INPUTS``    optional ``.npz`` with ``x``: codes, ``(elements,)`` or
                       ``(beats, lanes)``
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``y``, shaped as ``x``)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
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

``throughput``, ``latency`` and ``reset_midstream`` are the shared testcases of
:mod:`accelgen.sim.cocotb.bench`; this module supplies their stimulus, scoreboard and figure.

Stream timing follows :mod:`accelgen.sim.cocotb.streams`: drive after a falling edge, read in
``ReadOnly``, a transfer is tagged with the rising edge that completes it.
"""


import numpy as np

import cocotb

from accelgen.numerics import wrap
from accelgen.sim.cocotb.bench import (StreamBench, Transfers, assert_clean,
                                       beats_per_cycle, check_testcases, latency_test,
                                       random_words_test, reset_midstream_test, throughput_test)
from accelgen.sim.reference import error_stats

#: the ``@cocotb.test`` functions below, in the order the runner runs them (``user_inputs``
#: only when the user gives inputs); the registry and the runner read this tuple
TESTCASES = ("exhaustive", "random_traffic", "throughput", "latency",
             "reset_midstream", "user_inputs")


class Bench(StreamBench):
    """Everything a testcase needs: manifest, config, golden model, clock, seeded RNGs.

    Members
    -------
    config : ActivationConfig, rebuilt from ``manifest["config"]``
    golden : module :mod:`accelgen.sim.golden.activation`
    rng : random.Random
        For valid/ready gaps (stream drivers) and raw payload bits.
    nprng : numpy.random.Generator
        For input codes.

    and those of :class:`~accelgen.sim.cocotb.bench.StreamBench` (``env``, ``manifest``,
    ``seed``, ``beats``, ``counter``, ``result``, ...).
    """

    generator = "activation"

    def compare(self, in_words, got, want):
        """Mismatch descriptions between RTL and golden ``o`` payload integers, naming the
        beat, its input codes and the lanes that differ."""
        cfg, golden = self.config, self.golden
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


# -- scoreboard ----------------------------------------------------------------------------

def _lanes(values):
    return values[0] if len(values) == 1 else list(values)


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


# -- stimulus ------------------------------------------------------------------------------

def _beats(bench, x, last):
    """``(words, expected words)`` of ``(beats, lanes)`` codes ``x`` with ``last`` bits."""
    return bench.golden.pack_inputs(bench.config, x, last), expected_words(bench, x, last)


def _random_beats(bench, beats):
    """``beats`` random beats, ``last`` on about a quarter of them."""
    x = bench.golden.random_inputs(bench.config, bench.nprng, beats)["x"]
    return _beats(bench, x, bench.nprng.random(len(x)) < 0.25)


def _back_to_back(bench):
    """``throughput``: ``beats`` (at least 16) random beats."""
    yield (None, *_random_beats(bench, max(bench.beats, 16)))


def _lone(bench, trial):
    """``latency``: one random beat, ``last`` on every other trial."""
    x = bench.golden.random_inputs(bench.config, bench.nprng, 1)["x"]
    return _beats(bench, x, [trial % 2 == 0])


def _burst(bench, latency):
    """``latency``: ``3 * latency + 8`` random beats back to back, no ``last``."""
    x = bench.golden.random_inputs(bench.config, bench.nprng, 3 * latency + 8)["x"]
    return bench.golden.pack_inputs(bench.config, x), expected_words(bench, x, np.zeros(len(x)))


def _after_reset(bench):
    """``reset_midstream``: ``beats`` random beats."""
    return _random_beats(bench, bench.beats)


# -- figures -------------------------------------------------------------------------------



# -- testcases -----------------------------------------------------------------------------

@cocotb.test()
async def exhaustive(dut):
    """Every input code (random order, lanes per beat), random gaps and backpressure."""
    bench = await Bench.start(dut, "exhaustive")
    cfg = bench.config
    codes = bench.nprng.permutation(np.arange(cfg.in_fmt.min, cfg.in_fmt.max + 1))
    x, n = bench.golden.as_beats(cfg, codes)
    last = bench.nprng.random(len(x)) < 0.25
    last[-1] = True
    words, want = _beats(bench, x, last)
    # many beats (s16: 65536 codes): fewer gaps, so the cycle count stays modest
    light = len(words) > 4096
    valid_prob = bench.rng.uniform(0.85, 1.0) if light else bench.rng.uniform(0.5, 0.9)
    ready_prob = bench.rng.uniform(0.85, 1.0) if light else bench.rng.uniform(0.4, 0.9)
    _, sink = await bench.run_words(words, valid_prob=valid_prob, ready_prob=ready_prob)
    mismatches = bench.compare(words, sink.words, want)
    y = bench.golden.unpack_outputs(cfg, sink.words)["y"].reshape(-1)[:n]
    bench.record(codes=n, beats=len(words), outputs=len(sink.words), valid_prob=valid_prob,
                 ready_prob=ready_prob, errors=rtl_errors(cfg, x.reshape(-1)[:n], y))
    assert_clean(bench, mismatches, "every input code")


random_traffic = random_words_test(
    Bench, doc="Raw random payload words (``last`` bits included), gaps and backpressure, "
               "against golden ``words``.")


throughput = throughput_test(
    Bench, stimulus=_back_to_back, figure=beats_per_cycle,
    doc="Back-to-back beats, o.ready = 1: one beat per cycle in and out, exactly.")

latency = latency_test(
    Bench, lone=_lone, burst=_burst,
    doc="Lone beats and a back-to-back burst: every beat out exactly ``derived.latency`` "
        "cycles after it was accepted.")

reset_midstream = reset_midstream_test(
    Bench, after=_after_reset, what="the traffic after the reset",
    doc="rst with the pipeline full: nothing in flight comes out, later traffic is exact.")


@cocotb.test()
async def user_inputs(dut):
    """User codes through the RTL back to back; ``y`` to ``ACCELGEN_OUTPUTS``; error against
    float64 recorded."""
    bench = await Bench.start(dut, "user_inputs")
    cfg, golden = bench.config, bench.golden
    arrays, path = bench.user_arrays()
    x = np.asarray(arrays["x"]) if arrays is not None else \
        golden.random_inputs(cfg, bench.nprng, bench.beats)["x"]
    beats, n = golden.as_beats(cfg, x)
    beats = wrap(beats, cfg.in_fmt)   # the hardware reads the low bits (ACCELGEN_CHECK=0)
    last = np.zeros(len(beats), bool)
    last[-1] = True
    words, want = _beats(bench, beats, last)
    source, sink = await bench.run_words(words, settle=False)
    y_beats = golden.unpack_outputs(cfg, sink.words)["y"]
    y = y_beats.reshape(-1)[:n].reshape(np.shape(x))
    bench.save_outputs(y=y)
    mismatches = bench.compare(words, sink.words, want) if bench.env.check else []
    run = Transfers.of(source, sink)
    bench.record(inputs=path, elements=n, beats=len(words), outputs=len(sink.words),
                 cycles=run.end_cycles, throughput=run.in_rate,
                 elements_per_cycle=run.in_rate * cfg.lanes,
                 errors=rtl_errors(cfg, beats.reshape(-1)[:n], y.reshape(-1)),
                 check=bench.checked(mismatches))
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")


check_testcases(globals())
