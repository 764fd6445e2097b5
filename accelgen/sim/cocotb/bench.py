"""What every ``tb_<block>`` testbench shares: its parameters (read once from the environment
into :class:`BenchEnv`), seeded RNGs per testcase, the result JSON and its summary rows, the
reset sequence, and for one-in/one-out blocks the stream bench :class:`StreamBench` and the
testcase factories :func:`throughput_test`, :func:`latency_test` and
:func:`reset_midstream_test`.

Parameters come only from the environment, set by :mod:`accelgen.sim.runner`:

=====================  ==================================================================
``ACCELGEN_MANIFEST``  path of ``<top>.json``; the config is rebuilt from its ``config``
``ACCELGEN_SEED``      integer >= 0 (default 0); every failure message prints it
``ACCELGEN_BEATS``     integer >= 1 (default 200): the length of the random testcases (each
                       testbench says what it counts)
``ACCELGEN_CHECK``     ``1`` (default) or ``0`` (also ``false``/``no``): compare
                       ``user_inputs`` against the golden model
``ACCELGEN_RESULT``    optional JSON file; each testcase adds ``testcases[<name>]`` to it
``ACCELGEN_INPUTS``    optional ``.npz`` of arrays named as the golden model's ``ARGUMENTS``
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes
``ACCELGEN_OPTIONS``   JSON object of the block's run options, e.g. ``{"gemm": "64x64x64"}``
                       (default ``{}``; an absent key means the testbench's default)
=====================  ==================================================================

An empty variable counts as unset. A malformed value fails every testcase with a message that
names the variable.

The shared testcases of a one-stream block (``i`` in, ``o`` out), built by the factories::

    throughput       i ══════════════▶   back to back, o.ready = 1, settle=False
                     o ══════════════▶   figure(bench, {key: Transfers}) judges the rates

    latency          i ─▶ (lone beat, trials times)         [burst: back to back]
                     o      ─▶ exactly derived.latency later, o.valid first high then

    reset_midstream  i ─ ─ gaps ─ ─ ─ ─┬─ ─ gaps ─ ─ ─┐ rst │ idle          │ after: gaps
                     o ─ ─ backpressure ┘ ready = 0    ┘     │ ready = 1:    │ checked
                       fill cycles      stall cycles         │ nothing comes │
                                        in_flight > 0 here   │ out (quiet)   │

Each block supplies only what differs: its ``Bench(StreamBench)`` (golden model, scoreboard
``compare``, and where needed ``expected_outputs``, ``in_flight``, ``hold_cycles``), its
stimulus generators and its declared figure.
"""

import functools
import json
import os
import random
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.regression import TestGenerator
from cocotb.triggers import ClockCycles, FallingEdge

from accelgen.generators.registry import REGISTRY
from accelgen.outputs import write_atomic
from accelgen.sim.cocotb.manifest import Manifest
from accelgen.sim.cocotb.streams import CycleCounter, StreamSink, StreamSource

__all__ = ["PERIOD_NS", "RESET_CYCLES", "SHOW_MISMATCHES", "BenchEnv", "bench_env",
           "random_words_test",
           "BenchBase", "StreamBench", "Transfers", "reset", "assert_clean",
           "throughput_test", "latency_test", "reset_midstream_test", "check_testcases"]

PERIOD_NS = 10
RESET_CYCLES = 3
#: how many mismatches a failure message shows (the count is always recorded)
SHOW_MISMATCHES = 5

_CHECK_OFF = ("0", "false", "no")
_CHECK_ON = ("", "1", "true", "yes")


# -- parameters ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchEnv:
    """The testbench parameters, read once from the ``ACCELGEN_*`` variables (see the module
    docstring).

    Members
    -------
    manifest : Path
        ``ACCELGEN_MANIFEST`` (required).
    seed : int
        ``ACCELGEN_SEED``, >= 0 (default 0).
    beats : int
        ``ACCELGEN_BEATS``, >= 1 (default 200).
    check : bool
        ``ACCELGEN_CHECK``: False for ``0``/``false``/``no``, True for ``1``/``true``/``yes``
        or unset.
    result, inputs, outputs : Path or None
        ``ACCELGEN_RESULT``, ``ACCELGEN_INPUTS``, ``ACCELGEN_OUTPUTS``.
    options : dict
        ``ACCELGEN_OPTIONS``, a JSON object (default ``{}``): the block's run options as the
        runner validated them; a key that is absent means the testbench's default.
    """
    manifest: Path
    seed: int = 0
    beats: int = 200
    check: bool = True
    result: Path | None = None
    inputs: Path | None = None
    outputs: Path | None = None
    options: dict = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ=None):
        """Parse ``environ`` (default ``os.environ``); :class:`ValueError` naming the variable
        on a malformed value."""
        environ = os.environ if environ is None else environ

        def text(name):
            return environ.get(name, "").strip()

        def path(name):
            return Path(text(name)) if text(name) else None

        def integer(name, default, least):
            value = text(name)
            if not value:
                return default
            try:
                number = int(value)
            except ValueError:
                number = None
            if number is None or number < least:
                raise ValueError(f"{name}={value!r} is not allowed; expected an integer >= "
                                 f"{least}")
            return number

        manifest = path("ACCELGEN_MANIFEST")
        if manifest is None:
            raise ValueError("ACCELGEN_MANIFEST is not set; expected the path of the block's "
                             "<top>.json manifest")
        check = text("ACCELGEN_CHECK")
        if check.lower() not in _CHECK_ON + _CHECK_OFF:
            raise ValueError(f"ACCELGEN_CHECK={check!r} is not allowed; expected 1 or 0 (or "
                             f"true/false, yes/no)")
        options = text("ACCELGEN_OPTIONS") or "{}"
        try:
            options = json.loads(options)
        except ValueError:
            options = None
        if not isinstance(options, dict):
            raise ValueError(f"ACCELGEN_OPTIONS={text('ACCELGEN_OPTIONS')!r} is not allowed; "
                             f"expected a JSON object, e.g. {{\"gemm\": \"64x64x64\"}}")
        return cls(manifest=manifest, seed=integer("ACCELGEN_SEED", 0, 0),
                   beats=integer("ACCELGEN_BEATS", 200, 1),
                   check=check.lower() not in _CHECK_OFF, result=path("ACCELGEN_RESULT"),
                   inputs=path("ACCELGEN_INPUTS"), outputs=path("ACCELGEN_OUTPUTS"),
                   options=options)


@functools.cache
def bench_env():
    """The :class:`BenchEnv` of this simulator process (parsed on first use, then shared by
    every testcase)."""
    return BenchEnv.from_environ()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serializable: {value!r}")


# -- every testbench -----------------------------------------------------------------------

class BenchBase:
    """Manifest, config, seeds and the result entry of one testcase.

    Members
    -------
    env : BenchEnv
        The parameters (:func:`bench_env`).
    manifest : Manifest
    spec : GeneratorSpec of the manifest's generator
    config : the block's Config, rebuilt from ``manifest["config"]`` (nothing else states it)
    seed, beats : int
        ``env.seed`` and ``env.beats``.
    rng : random.Random
        Valid/ready gaps (stream drivers), raw payload bits and junk bits.
    nprng : numpy.random.Generator
        Operands and commands.
    counter : CycleCounter
        Set where the clock starts.
    result : dict
        This testcase's entry of the result JSON; ``result["summary"]`` holds the rows of
        :meth:`summary`.

    Each testcase gets its own RNG streams, derived from the seed and its name, so its results
    do not depend on which other testcases run.
    """

    def __init__(self, dut, testcase, *, generator=None):
        self.dut = dut
        self.testcase = testcase
        self.env = bench_env()
        self.manifest = Manifest.load(self.env.manifest)
        if generator is not None and self.manifest["generator"] != generator:
            raise ValueError(f"tb_{generator}: manifest of {self.manifest['generator']!r}")
        self.spec = REGISTRY[self.manifest["generator"]]
        self.config = self.spec.config_cls.from_dict(self.manifest.config)
        self.seed = self.env.seed
        self.beats = self.env.beats
        stream = zlib.crc32(testcase.encode())
        self.rng = random.Random(self.seed * 1_000_003 + stream)
        self.nprng = np.random.default_rng([self.seed, stream])
        self.counter = None
        self.result = {}

    @classmethod
    async def start(cls, dut, testcase):
        """Clock, idle streams and a reset; returns the bench of ``testcase``."""
        bench = cls(dut, testcase)
        Clock(dut.clk, PERIOD_NS, unit="ns").start()
        bench.counter = CycleCounter(PERIOD_NS, "ns")
        dut.bulk_run.value = 0      # the simulation top passes the ports through
        bench.idle()
        await reset(dut)
        return bench

    def idle(self):
        """Every input stream's ``valid`` and every output stream's ``ready`` low, as the
        manifest lists the streams (stop the drivers first)."""
        for stream in self.manifest["streams"].values():
            port = stream["valid"] if stream["dir"] == "in" else stream["ready"]
            if port is not None:        # an output without ready (a monitor) needs nothing
                getattr(self.dut, port).value = 0

    def fail(self, message):
        """Assertion text that names the seed and how to reproduce."""
        return (f"[{self.testcase}, seed={self.seed}, preset={self.manifest['preset']}, "
                f"digest={self.manifest['digest']}] {message} (reproduce with "
                f"ACCELGEN_SEED={self.seed} ACCELGEN_BEATS={self.beats})")

    def record(self, **values):
        """Add ``values`` to this testcase's entry of the result JSON (written at once, so a
        failing assertion afterwards still leaves its numbers behind)."""
        self.result.update(values)
        path = self.env.result
        if path is None:
            return
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc.setdefault("seed", self.seed)
        doc.setdefault("beats", self.beats)
        doc.setdefault("clock_period_ns", PERIOD_NS)
        doc.setdefault("testcases", {})[self.testcase] = self.result
        write_atomic(path, json.dumps(doc, indent=2, default=_json_default) + "\n")

    def summary(self, label, text):
        """Append the row ``[label, text]`` to ``result["summary"]``: what the CLI prints of
        this testcase, in order, without knowing the block."""
        self.record(summary=[*self.result.get("summary", []), [label, str(text)]])

    def checked(self, mismatches):
        """``"skipped"`` (``env.check`` off), ``"failed"`` or ``"passed"``: the ``check``
        field of a ``user_inputs`` record."""
        return "skipped" if not self.env.check else "failed" if mismatches else "passed"

    def user_arrays(self):
        """``(arrays, path)``: the arrays of ``env.inputs`` (names from the golden model's
        ``ARGUMENTS``, its ``REQUIRED`` ones present; the runner validated them), or ``(None,
        None)`` when the user gave none."""
        path = self.env.inputs
        if path is None:
            return None, None
        golden = self.spec.golden_model()
        names, required = tuple(golden.ARGUMENTS), tuple(golden.REQUIRED)
        with np.load(path) as data:
            files = set(data.files)
            optional = [n for n in names if n not in required]
            assert files <= set(names) and set(required) <= files, self.fail(
                f"{path}: arrays {sorted(files)}; expected {', '.join(required)}"
                + (f" and optionally {', '.join(optional)}" if optional else ""))
            return {name: np.asarray(data[name]) for name in names if name in files}, path

    def save_outputs(self, **arrays):
        """Write ``arrays`` to ``env.outputs`` (nothing when unset) through a temporary file
        renamed into place, so an interrupted run leaves no half-written file. Returns the
        path or None."""
        path = self.env.outputs
        if path is None:
            return None
        tmp = path.with_name(path.name + ".tmp.npz")   # numpy appends .npz to other names
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path


def assert_clean(bench, mismatches, what):
    """Record the mismatch count and fail with the first few, naming the seed."""
    bench.record(mismatches=len(mismatches))
    shown = "; ".join(mismatches[:SHOW_MISMATCHES])
    more = f" (+{len(mismatches) - SHOW_MISMATCHES} more)" if len(mismatches) > SHOW_MISMATCHES \
        else ""
    assert not mismatches, bench.fail(f"{len(mismatches)} mismatches in {what}: {shown}{more}")


async def reset(dut, cycles=RESET_CYCLES):
    """Reset the block for ``cycles`` rising edges, driving from falling edges like the stream
    drivers do. Returns just after a falling edge, the block out of reset. The simulation top
    registers ``rst`` (:mod:`accelgen.sim.bulk`): the block resets on the ``cycles`` edges after
    the first one with ``rst`` high, and the return waits one more edge, so the block's reset
    edges are the last ``cycles`` before the return, as with a direct reset."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)


# -- one-in/one-out blocks -----------------------------------------------------------------

class StreamBench(BenchBase):
    """The bench of a block with one input stream ``i`` and one output stream ``o``.

    A block's testbench subclasses it as ``Bench``, sets :attr:`generator` and defines
    :meth:`compare`; blocks whose outputs do not follow their input beats one to one also
    override :meth:`expected_outputs`, :meth:`in_flight` or :attr:`hold_cycles`.

    Members
    -------
    generator : str (class attribute)
        The registry name of the block; the manifest must be one of it.
    unit : str (class attribute)
        What the records call input transfers: ``"beats"`` (default) or ``"elements"``.
    golden : module
        The block's golden model.
    hold_cycles : int (property)
        Cycles an input may wait inside the block beyond ``latency`` before its output
        appears: 0 by default; a block that buffers a whole row before its first output says
        how long the row can be. Adds ``4 * hold_cycles`` to :meth:`timeout` and
        ``2 * hold_cycles`` to :attr:`quiet_cycles`.
    quiet_cycles : int (property)
        How long ``reset_midstream`` listens for stale outputs after the reset:
        ``latency + 8 + 2 * hold_cycles``.

    and those of :class:`BenchBase`.
    """

    generator = None
    unit = "beats"

    def __init__(self, dut, testcase):
        super().__init__(dut, testcase, generator=self.generator)
        self.golden = self.spec.golden_model()


    @property
    def hold_cycles(self):
        return 0

    @property
    def quiet_cycles(self):
        return self.config.latency + 8 + 2 * self.hold_cycles

    def source(self, valid_prob=1.0):
        """A :class:`StreamSource` on ``i`` with gaps from :attr:`rng`."""
        return StreamSource(self.dut, "i", self.dut.clk, self.counter, valid_prob=valid_prob,
                            rng=self.rng)

    def sink(self, ready_prob=1.0):
        """A started :class:`StreamSink` on ``o`` with backpressure from :attr:`rng`."""
        return StreamSink(self.dut, "o", self.dut.clk, self.counter, ready_prob=ready_prob,
                          rng=self.rng).start()

    def timeout(self, beats, gaps=1.0):
        """Generous cycle budget for ``beats`` transfers at ``gaps`` (probability product)."""
        return (int(8 * (beats + 4) / max(gaps, 0.05)) + 8 * self.config.latency
                + 4 * self.hold_cycles + 100)

    def random_words(self, count):
        """``count`` raw random ``i`` payloads (every bit random, from :attr:`rng`)."""
        width = self.manifest.width("i")
        return [self.rng.getrandbits(width) for _ in range(count)]

    def expected_outputs(self, words):
        """How many ``o`` transfers input ``words`` call for: one per word."""
        return len(words)

    def in_flight(self, accepted, delivered):
        """How many of the ``accepted`` input words have not had their effect on ``o`` yet,
        ``delivered`` outputs later: ``len(accepted) - delivered``."""
        return len(accepted) - delivered

    def compare(self, in_words, got, want):
        """Mismatch descriptions of RTL ``o`` payloads ``got`` (for input ``in_words``)
        against ``want`` (what the stimulus generator gave: payloads or arrays)."""
        raise NotImplementedError(f"{type(self).__name__}.compare")

    async def run_words(self, words, *, valid_prob=1.0, ready_prob=1.0, settle=True,
                        expected=None):
        """Send ``words`` and collect ``expected`` outputs (default
        :meth:`expected_outputs`). With ``settle``, also wait ``latency + 8`` cycles more, so
        an extra (spurious) output would be collected too. Returns ``(source, sink)``."""
        expected = self.expected_outputs(words) if expected is None else expected
        sink = self.sink(ready_prob)
        source = self.source(valid_prob).send(words)
        budget = self.timeout(len(words), valid_prob * ready_prob)
        done = await source.wait_idle(budget)
        assert done, self.fail(f"i accepted {len(source.accepted)} of {len(words)} beats "
                               f"within {budget} cycles (i.ready stuck low?)")
        done = await sink.expect(expected, budget)
        assert done, self.fail(f"o delivered {len(sink.received)} of {expected} outputs "
                               f"within {budget} cycles")
        if settle:
            await ClockCycles(self.dut.clk, self.config.latency + 8)
            await FallingEdge(self.dut.clk)
        source.stop()
        sink.stop()
        return source, sink


@dataclass(frozen=True)
class Transfers:
    """Handshake cycles of one :meth:`StreamBench.run_words` call.

    Members
    -------
    beats, outputs : int
        Transfers on ``i`` and on ``o``.
    first_in, last_in : int
        Cycles of the first and the last ``i`` transfer.
    first_out, last_out : int or None
        The same on ``o`` (None without outputs).
    in_cycles, out_cycles : int (properties)
        First to last transfer, both included.
    end_cycles : int (property)
        First ``i`` transfer to the last ``o`` transfer (to the last ``i`` one without
        outputs), both included.
    in_rate, out_rate : Fraction (properties)
        ``beats / in_cycles`` and ``outputs / out_cycles``.
    """
    beats: int
    outputs: int
    first_in: int
    last_in: int
    first_out: int | None
    last_out: int | None

    @classmethod
    def of(cls, source, sink):
        out = sink.received
        return cls(len(source.accepted), len(out), source.accepted[0][0],
                   source.accepted[-1][0], out[0][0] if out else None,
                   out[-1][0] if out else None)

    @property
    def in_cycles(self):
        return self.last_in - self.first_in + 1

    @property
    def out_cycles(self):
        return self.last_out - self.first_out + 1

    @property
    def end_cycles(self):
        return (self.last_in if self.last_out is None else self.last_out) - self.first_in + 1

    @property
    def in_rate(self):
        return Fraction(self.beats, self.in_cycles)

    @property
    def out_rate(self):
        return Fraction(self.outputs, self.out_cycles)


# -- testcase factories --------------------------------------------------------------------

def _testcase(bench_cls, name, doc, body):
    """The cocotb test ``name`` of ``bench_cls``'s module: start a bench, run ``body(bench)``.
    cocotb names a test by its function's ``__qualname__`` and module, and the runner selects
    testcases and reads results.xml by that name, so both are set here; assign the result to
    the module attribute ``name``."""
    async def testcase(dut):
        await body(await bench_cls.start(dut, name))

    testcase.__name__ = testcase.__qualname__ = name
    testcase.__module__ = bench_cls.__module__
    testcase.__doc__ = doc
    return cocotb.test()(testcase)


def throughput_test(bench_cls, *, stimulus, figure, doc):
    """The ``throughput`` testcase: each run of ``stimulus(bench)`` (an iterable of ``(key,
    words, want)``) back to back with ``o.ready`` = 1 and no settling, every output checked
    with ``bench.compare`` (mismatches prefixed ``"<key>: "`` unless ``key`` is None); then
    ``figure(bench, {key: Transfers})`` records the measured figures (and its
    :meth:`~BenchBase.summary` row) and returns the problems with the declared ones."""
    async def body(bench):
        runs, mismatches = {}, []
        for key, words, want in stimulus(bench):
            source, sink = await bench.run_words(words, settle=False)
            runs[key] = Transfers.of(source, sink)
            prefix = "" if key is None else f"{key}: "
            mismatches += [prefix + m for m in bench.compare(words, sink.words, want)]
        problems = figure(bench, runs) + mismatches
        assert not problems, bench.fail("; ".join(problems[:SHOW_MISMATCHES]))
    return _testcase(bench_cls, "throughput", doc, body)


def beats_per_cycle(bench, runs):
    """The ``throughput`` figure of a one-stream block (for :func:`throughput_test`): the
    run's beats in and out per cycle must equal ``derived.throughput_beats_per_cycle``
    (default 1) exactly, and, where the manifest declares ``elements_per_cycle``, ``lanes``
    elements per beat must make that figure. Records the measured and declared rates."""
    derived = bench.manifest.derived
    run = runs[None]
    declared = Fraction(derived.get("throughput_beats_per_cycle", 1))
    elements = run.in_rate * bench.config.lanes
    problems = []
    if run.in_rate != declared or run.out_rate != declared:
        problems.append(f"{run.beats} beats accepted in {run.in_cycles} cycles "
                        f"({float(run.in_rate):g}/cycle), delivered in {run.out_cycles} "
                        f"cycles ({float(run.out_rate):g}/cycle); manifest declares "
                        f"{declared} beat per cycle")
    if derived.get("elements_per_cycle") is not None \
            and elements != Fraction(derived["elements_per_cycle"]):
        problems.append(f"measured {float(elements):g} elements/cycle, manifest declares "
                        f"{derived['elements_per_cycle']}")
    bench.record(beats=run.beats, cycles=run.in_cycles, out_cycles=run.out_cycles,
                 beats_per_cycle=run.in_rate, elements_per_cycle=elements,
                 declared=derived.get("elements_per_cycle"))
    bench.summary("beats/cycle", f"{float(run.in_rate):g} in, {float(run.out_rate):g} out "
                                 f"({float(elements):.4g} elements/cycle)")
    return problems


def random_words_test(bench_cls, *, name="random_traffic", doc):
    """A testcase of ``bench.beats`` raw random payload words (every bit pattern, tags
    included) with random ``i.valid`` gaps and ``o.ready`` backpressure, every output checked
    against the golden model's ``words`` with ``bench.compare``."""
    async def body(bench):
        words = bench.random_words(bench.beats)
        valid_prob, ready_prob = bench.rng.uniform(0.5, 0.9), bench.rng.uniform(0.3, 0.8)
        _, sink = await bench.run_words(words, valid_prob=valid_prob, ready_prob=ready_prob)
        want = bench.golden.words(bench.config, words)
        bench.record(beats=len(words), outputs=len(sink.words), valid_prob=valid_prob,
                     ready_prob=ready_prob)
        assert_clean(bench, bench.compare(words, sink.words, want), "random payload words")
    return _testcase(bench_cls, name, doc, body)


def latency_test(bench_cls, *, lone, burst=None, doc, trials=4):
    """The ``latency`` testcase: ``trials`` lone inputs ``lone(bench, trial)`` -> ``(words,
    want)``, each with the pipeline empty (``run_words`` settles); from the accepted beat to
    the first output must take ``derived.latency`` cycles exactly, ``o.valid`` first high in
    that very cycle (``o.ready`` = 1), and the output must be exact. With ``burst(bench,
    latency)`` -> ``(words, want)`` (blocks with one output per input beat), every beat of
    that back-to-back burst must also take exactly ``latency``. Records ``latency`` (of the
    first trial), ``measured``, ``declared`` and ``burst`` (the set of burst latencies)."""
    async def body(bench):
        declared = bench.manifest.derived["latency"]
        measured, problems, extra = [], [], {}
        for trial in range(trials):
            words, want = lone(bench, trial)
            source, sink = await bench.run_words(words)   # settles: the pipeline is empty again
            cycles = sink.received[0][0] - source.accepted[0][0]
            measured.append(cycles)
            if cycles != declared or sink.first_valid != sink.received[0][0]:
                problems.append(f"trial {trial}: o.valid first high {sink.first_valid}, "
                                f"transfer {sink.received[0][0]}, beat accepted "
                                f"{source.accepted[0][0]}: {cycles} cycles, manifest "
                                f"declares {declared}")
            problems += bench.compare(words, sink.words, want)
        if burst is not None:
            words, want = burst(bench, declared)
            source, sink = await bench.run_words(words)
            extra["burst"] = sorted({o[0] - i[0] for i, o in zip(source.accepted,
                                                                  sink.received)})
            if extra["burst"] != [declared]:
                problems.append(f"back-to-back burst: latencies {extra['burst']}, manifest "
                                f"declares {declared}")
            problems += bench.compare(words, sink.words, want)
        bench.record(latency=measured[0], measured=measured, **extra, declared=declared)
        assert not problems, bench.fail("; ".join(problems[:SHOW_MISMATCHES]))
    return _testcase(bench_cls, "latency", doc, body)


def _fill_cycles(bench, words):
    latency = bench.config.latency
    return bench.rng.randint(latency + 2, max(latency + 3, bench.beats // 2))


def reset_midstream_test(bench_cls, *, after, what, doc, before=None, fill=_fill_cycles,
                         stall=None, notes=None):
    """The ``reset_midstream`` testcase::

        before(bench) -> words           (default: beats + 4 * latency raw random words)
        fill(bench, words) -> cycles     of traffic: i.valid gaps 0.9, o.ready backpressure 0.5
                                         (default: latency + 2 up to beats / 2)
        stall(bench) -> cycles           more with o.ready low, so the pipeline fills up
                                         (default: latency + 3)
        -- i.valid low; bench.in_flight(accepted, delivered) > 0 asserted (else the testcase
           tests nothing); notes(bench, accepted words) -> dict of extra record fields
        -- rst for 1 to 3 cycles
        quiet: o.ready = 1, no input for bench.quiet_cycles: nothing may come out
        after(bench) -> (words, want)    with gaps 0.8 and backpressure 0.7; exact
                                         (bench.compare), or the stale outputs count too

    Records ``<unit>_before``, ``outputs_before``, ``in_flight``, the notes, ``stale``,
    ``<unit>`` (``bench.unit``) and ``mismatches``; fails naming ``what``."""
    async def body(bench):
        dut, cfg = bench.dut, bench.config
        words = before(bench) if before is not None else \
            bench.random_words(bench.beats + 4 * cfg.latency)
        early_source = bench.source(0.9).send(words)
        early_sink = bench.sink(0.5)
        await ClockCycles(dut.clk, fill(bench, words))
        await FallingEdge(dut.clk)
        early_sink.stop()
        dut.o__ready.value = 0   # stall the output so the pipeline fills up
        await ClockCycles(dut.clk, stall(bench) if stall is not None else cfg.latency + 3)
        await FallingEdge(dut.clk)
        early_source.stop()
        dut.i__valid.value = 0
        accepted = [w for _, w in early_source.accepted]
        in_flight = bench.in_flight(accepted, len(early_sink.received))
        assert in_flight > 0, bench.fail("nothing was in flight at the reset; the testcase did "
                                         "not test anything")
        extra = notes(bench, accepted) if notes is not None else {}
        await reset(dut, bench.rng.randint(1, 3))
        # Output side alone first: anything that comes out now survived the reset.
        quiet = bench.sink(1.0)
        await ClockCycles(dut.clk, bench.quiet_cycles)
        await FallingEdge(dut.clk)
        quiet.stop()
        stale = [f"{bench.manifest.unpack('o', w)} came out after the reset with no input"
                 for w in quiet.words]
        words, want = after(bench)
        _, sink = await bench.run_words(words, valid_prob=0.8, ready_prob=0.7)
        bench.record(**{f"{bench.unit}_before": len(accepted)},
                     outputs_before=len(early_sink.words), in_flight=in_flight, **extra,
                     stale=len(quiet.words), **{bench.unit: len(words)})
        assert_clean(bench, stale + bench.compare(words, sink.words, want), what)
    return _testcase(bench_cls, "reset_midstream", doc, body)


def check_testcases(namespace):
    """Raise :class:`RuntimeError` unless ``namespace["TESTCASES"]`` (a testbench module's
    ``globals()``) lists the module's cocotb tests in definition order (the run order), each
    named as the attribute that holds it: the registry and the runner select testcases and
    read results.xml by these names."""
    found = [(attr, obj.name) for attr, obj in namespace.items()
             if isinstance(obj, TestGenerator)]
    if tuple(namespace["TESTCASES"]) != tuple(a for a, _ in found) \
            or any(attr != name for attr, name in found):
        raise RuntimeError(f"{namespace['__name__']}: TESTCASES {namespace['TESTCASES']} do not "
                           f"match its cocotb tests (attribute, test name) {found}")
