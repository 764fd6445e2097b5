"""cocotb testbench of block ``cast``: drives the emitted Verilog's ``i`` stream, takes ``o``,
and scoreboards every output beat against :mod:`accelgen.sim.golden.cast`.

Parameters are :class:`accelgen.sim.cocotb.bench.BenchEnv` (``ACCELGEN_*``, set by
:func:`accelgen.sim.runner.simulate`); for this block:

=====================  ==================================================================
``ACCELGEN_BEATS``     input beats of the random testcases (default 200)
``ACCELGEN_INPUTS``    optional ``.npz`` with ``x``: source values, ``(beats, lanes)`` or
                       flat, and optional ``last``
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``y``: target codes,
                       ``(beats, lanes)``)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
=====================  ==================================================================

Testcases (each starts with a synchronous reset and uses its own RNG stream derived from the
seed and its name):

``every_code``       BF16 sources: every one of the 65,536 codes once, in random order;
                     FP32 sources: ``250 * ACCELGEN_BEATS`` random codes plus every
                     exponent with the significands at the target's rounding boundaries
                     (ties, one below, one above), zeros, subnormals, inf, NaN; ``lanes``
                     per beat, light gaps and backpressure; payload level.
``random_traffic``   raw random payload words (``last`` included), gaps and backpressure.
``throughput``       back-to-back beats with ``o.ready`` = 1: one beat per cycle in and out.
``latency``          lone beats and a burst: each out ``derived.latency`` cycles after it
                     was accepted.
``reset_midstream``  ``rst`` with the pipeline full: nothing in flight comes out afterwards.
``user_inputs``      ``ACCELGEN_INPUTS`` (or random values) back to back; writes
                     ``ACCELGEN_OUTPUTS``, checks unless ``ACCELGEN_CHECK=0``.
"""


import numpy as np

import cocotb

from accelgen.sim.cocotb.bench import (StreamBench, Transfers, assert_clean,
                                       beats_per_cycle, check_testcases, latency_test,
                                       random_words_test, reset_midstream_test, throughput_test)

#: the ``@cocotb.test`` functions below, in the order the runner runs them (``user_inputs``
#: only when the user gives inputs); the registry and the runner read this tuple
TESTCASES = ("every_code", "random_traffic", "throughput", "latency", "reset_midstream",
             "user_inputs")


class Bench(StreamBench):
    """Everything a testcase needs (see :class:`~accelgen.sim.cocotb.bench.StreamBench`)."""

    generator = "cast"

    def compare(self, in_words, got, want):
        """Mismatch descriptions naming the beat, its source codes and the lanes that
        differ."""
        cfg, golden = self.config, self.golden
        mismatches = []
        if len(got) != len(want):
            mismatches.append(f"RTL produced {len(got)} output beats, golden model {len(want)}")
        for n in range(min(len(got), len(want))):
            if got[n] == want[n]:
                continue
            x = self.manifest.unpack("i", in_words[n])["x"]
            g, w = (golden.unpack_outputs(cfg, [v]) for v in (got[n], want[n]))
            mismatches.append(f"beat #{n}: x={x:#x} -> RTL y={g['y'][0].tolist()} "
                              f"last={bool(g['last'][0])} != golden y={w['y'][0].tolist()} "
                              f"last={bool(w['last'][0])}")
        return mismatches


# -- stimulus ------------------------------------------------------------------------------

def _words_of_codes(bench, codes):
    """``i`` words of flat source ``codes`` (padded to whole beats), ``last`` on a quarter."""
    beats = -(-len(codes) // bench.config.lanes)
    return bench.golden.pack_codes(bench.config, codes, bench.nprng.random(beats) < 0.25)


def boundary_codes(config):
    """FP32 codes around the target's rounding boundaries at every exponent: for each
    exponent field and sign, significands at the tie (half an ULP of the target), one below
    and one above, plus zero, subnormals, inf and NaN."""
    dst = config.target_format
    cut = 23 - getattr(dst, "man_bits", getattr(dst, "frac_bits", 0))
    codes = []
    for field in range(256):
        for sign in (0, 1):
            base = (sign << 31) | (field << 23)
            for frac in (0, 1 << (cut - 1), (1 << (cut - 1)) - 1, (1 << (cut - 1)) + 1,
                         (3 << (cut - 1)), (1 << 23) - 1):
                codes.append(base | (frac & ((1 << 23) - 1)))
    return np.array(codes, np.int64)


def _back_to_back(bench):
    x = bench.golden.random_inputs(bench.config, bench.nprng, max(bench.beats, 16))["x"]
    words = bench.golden.pack_inputs(bench.config, x)
    yield (None, words, bench.golden.words(bench.config, words))


def _lone(bench, trial):
    x = bench.golden.random_inputs(bench.config, bench.nprng, 1)["x"]
    words = bench.golden.pack_inputs(bench.config, x, [trial % 2 == 0])
    return words, bench.golden.words(bench.config, words)


def _burst(bench, latency):
    x = bench.golden.random_inputs(bench.config, bench.nprng, 3 * latency + 8)["x"]
    words = bench.golden.pack_inputs(bench.config, x)
    return words, bench.golden.words(bench.config, words)


def _after_reset(bench):
    words = bench.random_words(bench.beats)
    return words, bench.golden.words(bench.config, words)


# -- figures -------------------------------------------------------------------------------



# -- testcases -----------------------------------------------------------------------------

@cocotb.test()
async def every_code(dut):
    """Every BF16 code, or FP32 random codes plus every exponent's rounding boundaries."""
    bench = await Bench.start(dut, "every_code")
    cfg = bench.config
    if cfg.source_format.width <= 16:
        codes = bench.nprng.permutation(1 << cfg.source_format.width)
        how = "every code"
    else:
        random = bench.nprng.integers(0, 1 << 32, 250 * bench.beats)
        codes = bench.nprng.permutation(np.concatenate([random, boundary_codes(cfg)]))
        how = "random codes and every exponent's rounding boundaries"
    words = _words_of_codes(bench, codes)
    _, sink = await bench.run_words(words, valid_prob=0.95, ready_prob=0.95)
    want = bench.golden.words(cfg, words)
    bench.record(codes=len(codes), beats=len(words), outputs=len(sink.words), population=how)
    bench.summary("codes checked", f"{len(codes)} ({how})")
    assert_clean(bench, bench.compare(words, sink.words, want), how)


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
    """User values through the RTL back to back; ``y`` to ``ACCELGEN_OUTPUTS``."""
    bench = await Bench.start(dut, "user_inputs")
    cfg, golden = bench.config, bench.golden
    arrays, path = bench.user_arrays()
    if arrays is None:
        arrays = golden.random_inputs(cfg, bench.nprng, bench.beats)
    words = golden.pack_inputs(cfg, arrays["x"], arrays.get("last"))
    source, sink = await bench.run_words(words, settle=False)
    y = golden.unpack_outputs(cfg, sink.words)["y"]
    bench.save_outputs(y=y)
    mismatches = bench.compare(words, sink.words, golden.words(cfg, words)) \
        if bench.env.check else []
    run = Transfers.of(source, sink)
    bench.record(inputs=path, beats=len(words), outputs=len(sink.words),
                 cycles=run.end_cycles, throughput=run.in_rate, check=bench.checked(mismatches))
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")


check_testcases(globals())
