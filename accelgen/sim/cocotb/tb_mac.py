"""cocotb testbench of block ``mac``: drives the emitted Verilog, scoreboards against the golden
model :mod:`accelgen.sim.golden.mac`.

Parameters are :class:`accelgen.sim.cocotb.bench.BenchEnv` (``ACCELGEN_*``, set by
:func:`accelgen.sim.runner.simulate`); for this block:

=====================  ==================================================================
``ACCELGEN_BEATS``     input beats per testcase (per mode in ``throughput``; default 200)
``ACCELGEN_INPUTS``    optional ``.npz`` with arrays named as golden ``ARGUMENTS`` (``a``
                       and ``b`` required)
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``acc``, ``err``; element
                       lanes also ``acc_fp32``: the FP32 codes of ``acc`` as float32)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
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
``reset_midstream``  ``rst`` after raw random traffic with the output stalled, so something is
                     in flight (asserted: accepted beats after the last delivered ``last``);
                     after the reset nothing may come out without input, and an accumulation
                     that starts *without* ``clear`` must come out as if from zero.
``every_product``    per mode, single products in lane 0 (every other element 0), one output per
                     beat: every operand pair of modes of at most 16 operand bits together
                     (65,536 for 8-bit x 8-bit), ``50 * ACCELGEN_BEATS`` random pairs of wider
                     modes (BF16, FP16, posit16); against the golden model, payload level.
``user_inputs``      runs ``ACCELGEN_INPUTS`` (or random inputs) back to back, writes what the
                     RTL produced to ``ACCELGEN_OUTPUTS``, checks unless ``ACCELGEN_CHECK=0``.

``throughput``, ``latency`` and ``reset_midstream`` are the shared testcases of
:mod:`accelgen.sim.cocotb.bench`; this module supplies their stimulus, scoreboard and figure.
"""

from fractions import Fraction

import numpy as np

import cocotb

from accelgen.sim.cocotb.bench import (StreamBench, Transfers, assert_clean, check_testcases,
                                       latency_test, reset_midstream_test, throughput_test)

#: the ``@cocotb.test`` functions below, in the order the runner runs them (``user_inputs``
#: only when the user gives inputs); the registry and the runner read this tuple
TESTCASES = ("random_traffic", "random_words", "throughput", "latency",
             "reset_midstream", "every_product", "user_inputs")


class Bench(StreamBench):
    """Everything a testcase needs: manifest, config, golden model, clock, seeded RNGs.

    Members
    -------
    golden : module (``run``, ``words``, ``pack_inputs``, ``unpack_outputs``, ...)
    nprng : numpy.random.Generator
        For operands.
    rng : random.Random
        For valid/ready gaps (stream drivers) and raw payload bits.

    and those of :class:`~accelgen.sim.cocotb.bench.StreamBench` (``env``, ``manifest``,
    ``config``, ``seed``, ``beats``, ``counter``, ``result``, ...).
    """

    generator = "mac"

    def expected_outputs(self, words):
        """One output per ``last`` bit."""
        return sum(self.manifest.unpack("i", w)["last"] for w in words)

    def in_flight(self, accepted, delivered):
        """Accepted beats after the ``delivered``-th ``last``: their outputs are pending or
        their products sit in the accumulators."""
        ends = [n for n, w in enumerate(accepted) if self.manifest.unpack("i", w)["last"]]
        return len(accepted) - (ends[delivered - 1] + 1 if delivered else 0)

    def compare(self, in_words, got, want):
        """Scoreboard of ``o`` payloads ``got`` against the golden arrays ``want``."""
        return compare_arrays(self.golden.unpack_outputs(self.config, got), want)


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


def macs_of(bench, words):
    """MACs the golden semantics assign to input ``words``: lanes x products per lane of each
    beat's mode (beats with an invalid mode code do no MACs)."""
    total = 0
    for w in words:
        code = bench.manifest.unpack("i", w).get("mode", 0)
        if code < len(bench.config.modes):
            total += bench.config.lanes * bench.config.products_per_lane(code)
    return total


# -- stimulus ------------------------------------------------------------------------------

def _inputs(bench, args):
    """``(words, golden arrays)`` of argument arrays ``args``."""
    return (bench.golden.pack_inputs(bench.config, **args),
            bench.golden.run(bench.config, **args))


def _per_mode(bench):
    """``throughput``: ``beats`` random beats of each mode."""
    for mode in bench.config.modes:
        args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats, modes=[mode])
        yield (mode, *_inputs(bench, args))


def _lone(bench, trial):
    """``latency``: one random ``last`` beat."""
    return _inputs(bench, bench.golden.random_inputs(bench.config, bench.nprng, 1))


def _fresh_accumulation(bench):
    """``reset_midstream``: random traffic whose first beat does not ``clear``: only the reset
    may have zeroed the accumulators and ``err``."""
    args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats)
    args["clear"][0] = False
    return _inputs(bench, args)


#: operand bits (a + b) up to which ``every_product`` runs every pair of a mode
EXHAUSTIVE_BITS = 16


def _product_pairs(bench, code):
    """``every_product``: ``(how, args)`` with one product per beat in lane 0 of mode
    ``code``: every pair of codes, or random ones for wide modes."""
    cfg = bench.config
    fmt = cfg.mode_formats[code]
    if fmt.a.width + fmt.b.width <= EXHAUSTIVE_BITS:
        codes_a, codes_b = np.divmod(np.arange(1 << (fmt.a.width + fmt.b.width)), 1 << fmt.b.width)
        how = "every pair"
    else:
        count = 50 * bench.beats
        codes_a = bench.nprng.integers(0, 1 << fmt.a.width, count)
        codes_b = bench.nprng.integers(0, 1 << fmt.b.width, count)
        how = "random pairs"
    beats = len(codes_a)
    dtype = np.float64 if cfg.element_lane else np.int64
    a = np.zeros((beats, cfg.lanes, cfg.elements_per_lane), dtype)
    b = np.zeros_like(a)
    a[:, 0, 0] = bench.golden.code_values(fmt.a, codes_a)
    b[:, 0, 0] = bench.golden.code_values(fmt.b, codes_b)
    ones = np.ones(beats, bool)
    return how, {"a": a, "b": b, "mode": np.full(beats, code), "clear": ones, "last": ones}


# -- figures -------------------------------------------------------------------------------

def macs_per_cycle(bench, runs):
    """``throughput``: per mode, MACs from first to last accepted beat equal the manifest's
    ``derived.macs_per_cycle[mode]``."""
    cfg = bench.config
    declared = bench.manifest.derived["macs_per_cycle"]
    figures, problems = {}, []
    for mode, run in runs.items():
        macs = run.beats * cfg.lanes * cfg.products_per_lane(mode)
        measured = Fraction(macs, run.in_cycles)
        figures[mode] = {"beats": run.beats, "cycles": run.in_cycles, "macs": macs,
                         "macs_per_cycle": measured, "declared": declared.get(mode),
                         "beats_per_cycle": run.in_rate}
        if declared.get(mode) is None or measured != Fraction(declared[mode]):
            problems.append(f"mode {mode}: measured {macs} MACs in {run.in_cycles} cycles = "
                            f"{float(measured):g} MACs/cycle, manifest declares "
                            f"{declared.get(mode)}")
    bench.record(macs_per_cycle={m: f["macs_per_cycle"] for m, f in figures.items()},
                 modes=figures)
    bench.summary("MACs/cycle (measured beats/cycle x MACs per beat)",
                  ", ".join(f"{m} {float(f['macs_per_cycle']):g}" for m, f in figures.items()))
    return problems


# -- testcases -----------------------------------------------------------------------------

@cocotb.test()
async def random_traffic(dut):
    """Random in-range operands and modes, random valid gaps and o.ready backpressure."""
    bench = await Bench.start(dut, "random_traffic")
    args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats, last_every=3)
    words, want = _inputs(bench, args)
    valid_prob, ready_prob = bench.rng.uniform(0.5, 0.9), bench.rng.uniform(0.3, 0.8)
    _, sink = await bench.run_words(words, valid_prob=valid_prob, ready_prob=ready_prob)
    bench.record(beats=len(words), outputs=len(sink.words), valid_prob=valid_prob,
                 ready_prob=ready_prob)
    assert_clean(bench, bench.compare(words, sink.words, want), "random traffic")


@cocotb.test()
async def random_words(dut):
    """Raw random payload bits (unused slots, invalid mode codes) against ``golden.words``."""
    bench = await Bench.start(dut, "random_words")
    words = bench.random_words(bench.beats)
    last = next(f for f in bench.manifest.fields("i") if f.name == "last")
    words[-1] = words[-1] | (1 << last.offset)   # flush at the end
    _, sink = await bench.run_words(words, valid_prob=0.8, ready_prob=0.6)
    want = bench.golden.words(bench.config, words)
    bench.record(beats=len(words), outputs=len(sink.words))
    assert_clean(bench, compare_words(bench, sink.words, want), "random payload words")


throughput = throughput_test(
    Bench, stimulus=_per_mode, figure=macs_per_cycle,
    doc="Per mode: back-to-back beats, o.ready = 1; MACs/cycle must equal the declared figure.")

latency = latency_test(
    Bench, lone=_lone,
    doc="Cycles from accepting a lone ``last`` beat to its o transfer equal "
        "``derived.latency``.")

reset_midstream = reset_midstream_test(
    Bench, after=_fresh_accumulation, what="the accumulation after the reset",
    doc="rst with beats in flight: nothing comes out afterwards, and accumulation restarts "
        "from zero.")


@cocotb.test()
async def every_product(dut):
    """Per mode, single products one per beat: every operand pair where the mode has at most
    16 operand bits, else random pairs; each against the golden model."""
    bench = await Bench.start(dut, "every_product")
    counts, mismatches = {}, []
    for code, mode in enumerate(bench.config.modes):
        how, args = _product_pairs(bench, code)
        words = bench.golden.pack_inputs(bench.config, **args)
        _, sink = await bench.run_words(words)
        want = bench.golden.words(bench.config, words)
        counts[mode] = f"{how}: {len(words)}"
        mismatches += [f"mode {mode}: {m}" for m in compare_words(bench, sink.words, want)]
    bench.record(products=counts)
    bench.summary("products checked", ", ".join(f"{m} {c}" for m, c in counts.items()))
    assert_clean(bench, mismatches, "single products")


@cocotb.test()
async def user_inputs(dut):
    """User arrays through the RTL back to back; outputs to ``ACCELGEN_OUTPUTS``."""
    bench = await Bench.start(dut, "user_inputs")
    args, path = bench.user_arrays()
    if args is None:
        args = bench.golden.random_inputs(bench.config, bench.nprng, bench.beats)
    words = bench.golden.pack_inputs(bench.config, **args)
    source, sink = await bench.run_words(words, settle=False)
    got = bench.golden.unpack_outputs(bench.config, sink.words)
    # element lanes: acc holds FP32 codes; acc_fp32 is the same bits as float32 values
    extra = ({"acc_fp32": np.asarray(got["acc"], np.int64).astype(np.uint32).view(np.float32)}
             if bench.config.element_lane else {})
    bench.save_outputs(acc=got["acc"], err=got["err"], **extra)
    run = Transfers.of(source, sink)
    macs = macs_of(bench, words)
    mismatches = compare_arrays(got, bench.golden.run(bench.config, **args)) \
        if bench.env.check else []
    bench.record(inputs=path, beats=len(words), outputs=len(sink.words),
                 cycles=run.end_cycles, throughput=run.in_rate, macs=macs,
                 macs_per_cycle=Fraction(macs, run.in_cycles), check=bench.checked(mismatches))
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")


check_testcases(globals())
