"""cocotb testbench of block ``softmax``: drives the emitted Verilog's ``i`` stream (one logit
per beat, rows ended by ``last`` or by ``n_max``), takes ``o`` (one probability code per
element), and scoreboards every output beat against :mod:`accelgen.sim.golden.softmax`.

Parameters are :class:`accelgen.sim.cocotb.bench.BenchEnv` (``ACCELGEN_*``, set by
:func:`accelgen.sim.runner.simulate`); for this block:

=====================  ==================================================================
``ACCELGEN_BEATS``     input elements of the random testcases (default 200; ``random_rows``
                       sends at least 6 rows, ``throughput`` at least 16 rows of ``n_max``)
``ACCELGEN_INPUTS``    optional ``.npz``: ``x`` (rows, n) logit codes, optional ``lengths``
                       (rows,) and ``mask`` (rows, n; True = excluded)
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes: ``y`` shaped as ``x``,
                       the masked code (probability 0) past each row's end
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
=====================  ==================================================================

Testcases (each starts with a synchronous reset and uses its own RNG stream derived from the
seed and its name, so results do not depend on which other testcases run):

``random_rows``      random rows (lengths 1 to ``n_max``, logits of random spread, random
                     mask densities from none to all when the config has ``mask``), random
                     ``i.valid`` gaps and ``o.ready`` backpressure; every output beat (code and
                     ``last``) equal to the golden model's.
``directed_rows``    all equal (zero, max, min code), one-hot (first, middle, last), all at
                     the most negative code, ascending (the maximum arrives last) and
                     descending, alternating extremes, all masked and single survivors
                     (``mask``), rows of 1 and of ``n_max``, rows longer than ``n_max`` (split
                     by the hardware, with and without a ``last``), and back-to-back rows of
                     different lengths; sent once at full rate (``o.ready`` = 1) and once with
                     gaps and backpressure. Mismatches name the case.
``throughput``       rows of ``n_max`` back to back, ``o.ready`` = 1: records elements per
                     cycle from the first input accepted to the last output (``end_to_end``)
                     and the input and output rates; asserts the input rate and the
                     end-to-end figure reach what :class:`accelgen.hdl.softmax.Softmax`
                     documents (:func:`row_period`, :func:`throughput_bound`; at least 0.9
                     end to end for ``n_max >= 64``) and every output is exact.
``reset_midstream``  ``rst`` mid-row with outputs stalled: nothing from before comes out (the
                     output side listens for ``2 * n_max + latency + 8`` cycles), and the
                     following rows (the first one must start a fresh row) are exact.
``user_inputs``      ``ACCELGEN_INPUTS`` (or random rows) at full rate; writes
                     ``ACCELGEN_OUTPUTS``, checks unless ``ACCELGEN_CHECK=0``, and records the
                     RTL's error against float64 softmax (``errors``: ``max_abs``,
                     ``mean_abs``, ``mean`` in output LSB; u8/s8 also ``row_sum_max_dev``).

``throughput`` and ``reset_midstream`` are the shared testcases of
:mod:`accelgen.sim.cocotb.bench`; this module supplies their stimulus, scoreboard and figure.

Stream timing follows :mod:`accelgen.sim.cocotb.streams`: drive after a falling edge, read in
``ReadOnly``, a transfer is tagged with the rising edge that completes it.
"""

from fractions import Fraction

import numpy as np

import cocotb

from accelgen.numerics import wrap
from accelgen.sim.cocotb.bench import (SHOW_MISMATCHES, StreamBench, Transfers, assert_clean,
                                       check_testcases, reset_midstream_test, throughput_test)
from accelgen.sim.payload import unpack
from accelgen.sim.reference import error_stats, softmax_float

#: the ``@cocotb.test`` functions below, in the order the runner runs them (``user_inputs``
#: only when the user gives inputs); the registry and the runner read this tuple
TESTCASES = ("random_rows", "directed_rows", "throughput", "reset_midstream", "user_inputs")


def row_period(config):
    """Cycles per row of ``n_max`` elements at full rate, as :class:`accelgen.hdl.softmax.Softmax`
    documents (Timing): one element per cycle with no bubble between rows of ``N >=
    latency - 5`` elements; shorter rows cost ``(latency - 5 - N) / 2`` extra cycles each."""
    n = config.n_max
    return n + -(-max(0, config.latency - 5 - n) // 2)


def throughput_bound(config, rows):
    """Least end-to-end elements per cycle ``throughput`` accepts for ``rows`` rows of
    ``n_max``: rows enter at :func:`row_period` cycles each; a row's outputs follow its last
    element by ``latency`` cycles and stream at one per cycle, so from the first input
    accepted to the last output take at most ``rows * period + n_max + latency`` cycles. With
    ``n_max >= 64`` the bound is also at least 0.9 (:func:`throughput` sends 16 rows or
    more)."""
    n = config.n_max
    bound = Fraction(rows * n, rows * row_period(config) + n + config.latency)
    return max(bound, Fraction(9, 10)) if n >= 64 else bound


# -- parameters and set-up -----------------------------------------------------------------

class Bench(StreamBench):
    """Everything a testcase needs: manifest, config, golden model, clock, seeded RNGs.

    Members
    -------
    config : SoftmaxConfig, rebuilt from ``manifest["config"]``
    golden : module :mod:`accelgen.sim.golden.softmax`
    rng : random.Random
        For valid/ready gaps (stream drivers) and raw payload bits.
    nprng : numpy.random.Generator
        For logits, lengths and masks.
    hold_cycles : int (property)
        ``n_max``: a row's outputs start only after its last element.

    and those of :class:`~accelgen.sim.cocotb.bench.StreamBench` (``env``, ``manifest``,
    ``seed``, ``beats``, ``counter``, ``result``, ...).
    """

    generator = "softmax"
    unit = "elements"

    @property
    def hold_cycles(self):
        return self.config.n_max

    def compare(self, in_words, got, want, *, cases=None):
        """Mismatch descriptions between RTL and golden ``o`` payload integers, naming each
        element's row, position, logit and mask (and its directed case when ``cases`` maps
        element indices to names)."""
        mismatches = []
        if len(got) != len(want):
            mismatches.append(f"RTL produced {len(got)} outputs, golden model {len(want)}")
        index = None
        for n in range(min(len(got), len(want))):
            if got[n] == want[n]:
                continue
            index = index or element_index(self, in_words)
            row, pos, x, m = index[n]
            g, w = self.manifest.unpack("o", got[n]), self.manifest.unpack("o", want[n])
            case = f"case {cases[n]!r} " if cases is not None else ""
            mismatches.append(f"{case}row {row} element {pos} (x={x}"
                              f"{', masked' if m else ''}): RTL y={g['y']} last={g['last']} "
                              f"!= golden y={w['y']} last={w['last']}")
        return mismatches


# -- stimulus ------------------------------------------------------------------------------

def element_words(bench, x, mask=None, last=None):
    """``i`` words of elements ``x`` (``mask``: True = excluded; ``last``: per element),
    without any row structure of their own: ``last`` defaults to the final element only."""
    x = np.asarray(x, np.int64).reshape(-1)
    if last is None:
        last = np.zeros(len(x), bool)
        last[-1] = True
    mask = np.zeros(len(x), bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    fields = {"x": x, "last": last}
    if bench.config.mask:
        fields["mask"] = mask
    return [bench.manifest.pack("i", {k: int(v[n]) for k, v in fields.items()})
            for n in range(len(x))]


def random_lengths_and_masks(bench, rows):
    """Random ``(lengths, mask or None)`` for ``rows`` rows of ``n_max``: lengths uniform in
    1..n_max with full and single rows mixed in; mask density per row from none to all."""
    cfg, rng = bench.config, bench.nprng
    lengths = rng.integers(1, cfg.n_max + 1, size=rows)
    special = rng.random(rows)
    lengths[special < 0.15] = cfg.n_max
    lengths[special > 0.92] = 1
    if not cfg.mask:
        return lengths, None
    density = rng.choice([0.0, 0.0, 0.1, 0.5, 0.9, 1.0], size=rows)
    return lengths, rng.random((rows, cfg.n_max)) < density[:, None]


# -- scoreboard ----------------------------------------------------------------------------

def element_index(bench, in_words):
    """Per output element the hardware will produce: ``(row, position, x, mask)``; rows end
    at ``last`` or after ``n_max`` elements, an unfinished final row produces nothing."""
    cfg = bench.config
    f = unpack(cfg.input_fields, in_words)
    masks = f["mask"].tolist() if cfg.mask else [0] * len(in_words)
    out, row, cur = [], 0, []
    for x, m, last in zip(f["x"].tolist(), masks, f["last"].tolist()):
        cur.append((row, len(cur), x, m))
        if last or len(cur) == cfg.n_max:
            out += cur
            row, cur = row + 1, []
    return out


def rtl_errors(config, x, lengths, mask, y):
    """The RTL's output codes ``y`` (rows, >= max length) for rows ``x`` against float64
    softmax, in output LSB, as golden ``errors`` measures the model: :func:`error_stats` over
    every element, plus (u8/s8) the worst row-sum deviation of the probabilities and its
    bound ``N * 2**-8``."""
    from accelgen.sim.golden.softmax import float_codes, probabilities
    got, want, sums = [], [], []
    for i, n in enumerate(lengths.tolist()):
        keep = ~mask[i, :n]
        p = softmax_float(x[i, :n], config.in_scale, keep)
        got.append(y[i, :n])
        want.append(float_codes(config, p))
        if keep.any():
            sums.append(abs(float(probabilities(config, y[i, :n]).sum()) - 1.0))
    stats = error_stats(np.concatenate(got), np.concatenate(want))
    stats["rows"] = int(len(lengths))
    stats["elements"] = int(lengths.sum())
    if config.output != "log2":
        stats["row_sum_max_dev"] = max(sums) if sums else 0.0
        stats["row_sum_bound"] = int(lengths.max()) * 2 ** -8
    return stats


# -- testcases -----------------------------------------------------------------------------

@cocotb.test()
async def random_rows(dut):
    """Random rows, lengths and masks; random valid gaps and o.ready backpressure."""
    bench = await Bench.start(dut, "random_rows")
    cfg = bench.config
    rows = max(6, bench.beats // max(1, (cfg.n_max + 1) // 2))
    x = bench.golden.random_rows(cfg, bench.nprng, rows)
    lengths, mask = random_lengths_and_masks(bench, rows)
    words = bench.golden.pack_inputs(cfg, x, lengths, mask)
    valid_prob, ready_prob = bench.rng.uniform(0.5, 0.9), bench.rng.uniform(0.3, 0.8)
    _, sink = await bench.run_words(words, valid_prob=valid_prob, ready_prob=ready_prob)
    want = bench.golden.words(cfg, words)
    bench.record(rows=rows, elements=len(words), outputs=len(sink.words),
                 masked=int(mask.sum()) if mask is not None else 0, valid_prob=valid_prob,
                 ready_prob=ready_prob)
    assert_clean(bench, bench.compare(words, sink.words, want), "random rows")


def directed_cases(bench):
    """``[(name, words)]``: every case ends its last row (with ``last`` or at ``n_max``)."""
    cfg, rng = bench.config, bench.nprng
    n, lo, hi = cfg.n_max, cfg.in_fmt.min, cfg.in_fmt.max
    one = max(1, min(hi, round(1 / cfg.in_scale)))        # the code of real 1.0
    cases = []

    def add(name, x, mask=None, last=None):
        cases.append((name, element_words(bench, x, mask, last)))

    for value in (0, hi, lo, int(rng.integers(lo, hi + 1))):
        add(f"all equal {value}", [value] * n)
    for pos in sorted({0, n // 2, n - 1}):
        row = [lo] * n
        row[pos] = hi
        add(f"one-hot at {pos}", row)
        row = [0] * n
        row[pos] = one
        add(f"zeros and one 1.0 at {pos}", row)
    add("all at the most negative code", [lo] * n)
    ramp = np.linspace(lo, hi, n).round().astype(np.int64)
    add("ascending (max last)", ramp)
    add("descending (max first)", ramp[::-1])
    add("ascending by 1.0 steps", np.clip(np.arange(n) * one - (n // 2) * one, lo, hi))
    add("alternating extremes", [hi if i % 2 else lo for i in range(n)])
    for value in (hi, lo, 0):
        add(f"N=1 ({value})", [value])
    add("N=n_max random", bench.golden.random_rows(cfg, rng, 1)[0])
    if cfg.mask:
        x = bench.golden.random_rows(cfg, rng, 1)[0]
        add("all masked", x, np.ones(n, bool))
        add("N=1 masked", [hi], [True])
        for pos in sorted({0, n - 1}):
            keep = np.ones(n, bool)
            keep[pos] = False
            add(f"only element {pos} unmasked", x, keep)
        row = [lo] * n
        row[-1] = hi
        add("max masked, rest at min", row, np.arange(n) == n - 1)
    extra = int(rng.integers(1, n + 1))
    x = bench.golden.random_rows(cfg, rng, 1, n=2 * n + 1)[0]
    add(f"{n + extra} elements, last at the end (split at n_max)", x[:n + extra])
    add(f"{2 * n + 1} elements, last at the end (split twice)", x)
    add(f"{n} elements without last (n_max ends the row)", x[:n], last=np.zeros(n, bool))
    # back to back rows of different lengths (one case: rows follow each other directly)
    lengths = [1, n, 2, max(1, n - 1), 3, max(1, n // 2), 1]
    rows = bench.golden.random_rows(cfg, rng, len(lengths))
    words = []
    for length, row in zip(lengths, rows):
        words += element_words(bench, row[:min(length, n)])
    cases.append((f"back-to-back rows of lengths {[min(length, n) for length in lengths]}",
                  words))
    return cases


@cocotb.test()
async def directed_rows(dut):
    """Directed rows (equal, one-hot, extremes, ramps, masks, N=1, N=n_max, split rows, rows
    back to back), once at full rate and once with gaps and backpressure."""
    bench = await Bench.start(dut, "directed_rows")
    cases = directed_cases(bench)
    words = [w for _, ws in cases for w in ws]
    names = [name for name, ws in cases for _ in ws]
    want = bench.golden.words(bench.config, words)
    mismatches = []
    for valid_prob, ready_prob in ((1.0, 1.0), (bench.rng.uniform(0.5, 0.9),
                                                bench.rng.uniform(0.3, 0.8))):
        _, sink = await bench.run_words(words, valid_prob=valid_prob, ready_prob=ready_prob)
        mismatches += [f"(valid {valid_prob:.2f}, ready {ready_prob:.2f}) {m}"
                       for m in bench.compare(words, sink.words, want, cases=names)]
    bench.record(cases=[name for name, _ in cases], elements=len(words))
    assert_clean(bench, mismatches, "directed rows")



def _full_rows(bench):
    """``throughput``: rows of ``n_max`` (at least 16, ``beats / n_max`` when more)."""
    cfg = bench.config
    x = bench.golden.random_rows(cfg, bench.nprng, max(16, bench.beats // cfg.n_max))
    words = bench.golden.pack_inputs(cfg, x)
    yield None, words, bench.golden.words(cfg, words)


def elements_per_cycle(bench, runs):
    """``throughput``: the input rate at least ``n_max / row_period`` and the end-to-end
    figure (first input accepted to last output) at least :func:`throughput_bound`."""
    cfg, run = bench.config, runs[None]
    rows, elements = run.beats // cfg.n_max, run.beats
    end_to_end = Fraction(elements, run.end_cycles)
    in_rate, out_rate = run.in_rate, run.out_rate
    bound = throughput_bound(cfg, rows)
    steady = Fraction(cfg.n_max, row_period(cfg))
    problems = []
    if in_rate < steady:
        problems.append(f"input rate {float(in_rate):.4f} elements/cycle ({elements} in "
                        f"{run.in_cycles} cycles), below the documented "
                        f"{cfg.n_max}/{row_period(cfg)} per row of n_max")
    if end_to_end < bound:
        problems.append(f"{elements} elements ({rows} rows of {cfg.n_max}) from first input "
                        f"accepted (cycle {run.first_in}) to last output (cycle "
                        f"{run.last_out}): {float(end_to_end):.4f} elements/cycle, below the "
                        f"bound {float(bound):.4f} (input rate {float(in_rate):.4f}, output "
                        f"rate {float(out_rate):.4f})")
    bench.record(rows=rows, elements=elements, cycles=run.end_cycles,
                 elements_per_cycle=end_to_end, end_to_end=end_to_end, input_rate=in_rate,
                 output_rate=out_rate, bound=bound, steady_bound=steady,
                 first_output_after=run.first_out - run.first_in,
                 declared=bench.manifest.derived.get("elements_per_cycle"))
    bench.summary("elements/cycle (measured)", f"{float(end_to_end):.4g}")
    return problems


throughput = throughput_test(
    Bench, stimulus=_full_rows, figure=elements_per_cycle,
    doc="Rows of n_max back to back, o.ready = 1: elements per cycle, first input accepted "
        "to last output, at least :func:`throughput_bound`.")


def _random_rows(bench):
    """``reset_midstream``: ``(words, expected words)`` of ``max(4, beats / n_max)`` random
    rows with random lengths and masks."""
    cfg = bench.config
    rows = max(4, bench.beats // max(1, cfg.n_max))
    x = bench.golden.random_rows(cfg, bench.nprng, rows)
    lengths, mask = random_lengths_and_masks(bench, rows)
    words = bench.golden.pack_inputs(cfg, x, lengths, mask)
    return words, bench.golden.words(cfg, words)


def _fill_cycles(bench, words):
    """Traffic long enough for a whole row to be inside, up to half of ``words``."""
    least = bench.config.n_max + bench.config.latency
    return bench.rng.randint(least, max(least + 1, len(words) // 2))


def _stall_cycles(bench):
    """``latency`` and up to a row more, so the reset hits rows at random points."""
    return bench.config.latency + bench.rng.randint(1, bench.config.n_max + 2)


def _mid_row(bench, accepted):
    """Whether the reset came inside a row (the accepted elements end no row)."""
    return {"mid_row": len(element_index(bench, accepted)) != len(accepted)}


reset_midstream = reset_midstream_test(
    Bench, before=lambda bench: _random_rows(bench)[0], fill=_fill_cycles,
    stall=_stall_cycles, notes=_mid_row, after=_random_rows, what="the rows after the reset",
    doc="rst mid-row with outputs stalled: nothing from before comes out, later rows exact.")


def _user_rows(bench):
    """``(x 2-D, lengths, mask, shape of x, path)`` of ``ACCELGEN_INPUTS`` (validated by the
    runner), or random rows."""
    cfg = bench.config
    arrays, path = bench.user_arrays()
    if arrays is None:
        rows = max(4, bench.beats // max(1, cfg.n_max))
        x = bench.golden.random_rows(cfg, bench.nprng, rows)
        lengths, mask = random_lengths_and_masks(bench, rows)
        return x, lengths, mask, x.shape, None
    x, lengths, mask = arrays["x"], arrays.get("lengths"), arrays.get("mask")
    shape = x.shape
    x = x.reshape(1, -1) if x.ndim == 1 else x
    if mask is not None:
        mask = np.asarray(mask, bool).reshape(x.shape)
    if lengths is None:
        lengths = np.full(x.shape[0], x.shape[1], np.int64)
    return x, np.asarray(lengths, np.int64), mask, shape, path


@cocotb.test()
async def user_inputs(dut):
    """User rows through the RTL at full rate; ``y`` to ``ACCELGEN_OUTPUTS``; error against
    float64 recorded."""
    bench = await Bench.start(dut, "user_inputs")
    cfg, golden = bench.config, bench.golden
    x, lengths, mask, shape, path = _user_rows(bench)
    x = wrap(x, cfg.in_fmt)   # the hardware reads the low bits (ACCELGEN_CHECK=0)
    words = golden.pack_inputs(cfg, x, lengths, mask)
    source, sink = await bench.run_words(words, settle=False)
    got = golden.unpack_outputs(cfg, sink.words, lengths)["rows"]
    y = np.full(x.shape, golden.masked_code(cfg), np.int64)
    y[:, :got.shape[1]] = got
    bench.save_outputs(y=y.reshape(shape))
    mismatches = []
    if bench.env.check:
        want = golden.softmax(cfg, x, lengths, mask)
        bad = np.argwhere(y != want)
        mismatches = [f"row {i} element {j} (x={x[i, j]}): RTL y={y[i, j]} != golden "
                      f"{want[i, j]}" for i, j in bad[:SHOW_MISMATCHES]]
        if bad.size:
            mismatches.append(f"{len(bad)} of {int(lengths.sum())} elements differ")
        if not bad.size:   # the codes agree: the last bits and the output count must too
            mismatches = bench.compare(words, sink.words, golden.words(cfg, words))
    keep_mask = mask if mask is not None else np.zeros(x.shape, bool)
    run = Transfers.of(source, sink)
    bench.record(inputs=path, rows=int(len(lengths)), elements=len(words),
                 outputs=len(sink.words), cycles=run.end_cycles,
                 elements_per_cycle=Fraction(len(words), run.end_cycles),
                 input_rate=run.in_rate, errors=rtl_errors(cfg, x, lengths, keep_mask, y),
                 check=bench.checked(mismatches))
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")


check_testcases(globals())
