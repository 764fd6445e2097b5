"""cocotb testbench of block ``pim``: drives the emitted channel's ``cmd`` stream, takes ``o``
and ``rsp``, records every DRAM command on ``trace``, and checks

* every ``o`` word and the ``eoc``, ``err``, ``index``, ``busy`` and ``macs`` of every ``rsp``
  word against the golden model (:mod:`accelgen.sim.golden.pim`);
* the DRAM trace with the independent timing checker (:mod:`accelgen.sim.golden.pim_check`):
  no violated rule, no illegal state, no refresh starvation;
* the command sequence against the golden model's (refresh off: equal; refresh on: the
  program's commands in order, with the refresh manager's REF, PRE_AB and ACT between them);
* at full rate with refresh off, every counter and every command's cycle against the
  analytic cycle model (:mod:`accelgen.sim.golden.pim_cycles`).

Parameters are :class:`accelgen.sim.cocotb.bench.BenchEnv` (``ACCELGEN_*``); for this block:

=====================  ==================================================================
``ACCELGEN_BEATS``     length of the random testcases: ``BEATS // 4`` instructions
``ACCELGEN_OPTIONS``   JSON object: ``"gemv"``: ``[N, K]`` of the ``gemv`` testcase (default:
                       a shape that fills the geometry's first rows); ``"mode"``: ``plain``
                       or ``overlap`` (``gemv``, ``user_inputs``)
``ACCELGEN_INPUTS``    optional ``.npz`` with ``w`` (N x K), ``x`` (K), optional ``b`` (N)
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``y`` and the counters)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
=====================  ==================================================================

Testcases (each starts with a reset; row storage survives it, so the ones that read columns
they did not write first run :func:`~accelgen.sim.golden.pim_program.clear_program`):

``random_programs``   random legal programs (every op, both buffers, junk in every ignored
                      field, EOC now and then) with random gaps on ``cmd`` and backpressure
                      on ``o``/``rsp``, then the same at full rate (cycle-exact when refresh
                      is off)
``errors``            every directed error the config can express, then programs with many
                      random errors: error beats, nothing issued, nothing changed
``reset_midprogram``  ``rst`` inside a GEMV; a fresh GEMV afterwards is exact
``gemv``              the ``gemv`` option's GEMV (weights loaded, then ``y = W x``) at full
                      rate: ``y`` against numpy, cycles against the cycle model, MAC
                      efficiency, refreshes, timing violations; its ``summary`` rows are what
                      ``accelgen sim pim --gemv NxK`` prints
``refresh``           GEMV programs back to back for at least 20 x tREFI: every REF legal,
                      count and spacing within the rules, ``y`` exact when refreshes interrupt
``user_inputs``       ``ACCELGEN_INPUTS`` (or random arrays) as one GEMV; writes
                      ``ACCELGEN_OUTPUTS``, checks unless ``ACCELGEN_CHECK=0``
"""

import copy
import time

import numpy as np

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from accelgen.generators.base import field_offsets
from accelgen.generators.pim import ERRORS
from accelgen.sim.cocotb.bench import BenchBase, assert_clean, check_testcases, reset
from accelgen.sim.cocotb.streams import StreamMonitor, StreamSink, StreamSource
from accelgen.sim.golden import pim as golden
from accelgen.sim.golden.pim_check import check_trace, decode_trace, summary
from accelgen.sim.golden.pim_cycles import mac_efficiency, refresh_budget
from accelgen.sim.golden.pim_gemv import compile_gemv, default_shape, golden_y, read_y
from accelgen.sim.golden.pim_program import (TIMING_COUNTERS, Expected, clear_program,
                                             error_instrs, random_program)
from accelgen.sim.payload import unpack

#: the ``@cocotb.test`` functions below, in run order (``user_inputs`` only with inputs)
TESTCASES = ("random_programs", "errors", "reset_midprogram", "gemv", "refresh", "user_inputs")

SETTLE = 32
#: rsp fields every run must match whatever the timing
WORK_FIELDS = ("eoc", "err", "index", "busy", "macs")


class Bench(BenchBase):
    """Manifest, config, seeded RNGs, and the golden model of the channel's storage.

    Members
    -------
    config : PimConfig
    model : golden.Model
        Runs every instruction the hardware runs, in the same order (its storage is the
        hardware's after :func:`clear_program` or a GEMV load).
    """

    def __init__(self, dut, testcase):
        super().__init__(dut, testcase, generator="pim")
        self.model = golden.Model(self.config)

    def mode(self):
        mode = self.env.options.get("mode", "plain")
        return mode

    def after_reset(self):
        """The golden model's view of a hardware reset; a new trace monitor (the trace's cycle
        stamps restart at a reset, and the checker reads the trace from a reset on)."""
        self.model.reset()
        if getattr(self, "monitor", None) is not None:
            self.monitor.stop()
        self.monitor = StreamMonitor(self.dut, "trace", self.dut.clk, self.counter).start()

    def start_memory(self):
        """With ``controller_only``: a stub memory on the ``dram``/``rdata`` ports that answers
        every read (RD, RD_MAC, RD_AF) :data:`~accelgen.hdl.pim.bank.PIPELINE` cycles later,
        as the bank model does, with data 0 and the read's ``kind`` (the controller's timing
        does not depend on data; its results are not checked)."""
        if self.config.controller_only:
            cocotb.start_soon(_stub_memory(self))

    def trace(self):
        """Every DRAM command since the last reset, cycle stamps unwrapped."""
        return decode_trace(self.config, self.monitor.words)


async def _stub_memory(bench):
    from collections import deque

    from accelgen.generators.pim import DRAM_COMMANDS, O_KINDS
    from accelgen.hdl.pim.bank import PIPELINE
    from accelgen.sim.cocotb.streams import bit
    dut = bench.dut
    kinds = {DRAM_COMMANDS.index("RD"): O_KINDS.index("column"),
             DRAM_COMMANDS.index("RD_MAC"): O_KINDS.index("mac"),
             DRAM_COMMANDS.index("RD_AF"): O_KINDS.index("af")}
    cmd_at = field_offsets(bench.config.dram_fields)["cmd"][0]
    kind_at = field_offsets(bench.config.rdata_fields)["kind"][0]
    due = deque()
    dut.rdata__valid.value = 0
    while True:
        await FallingEdge(dut.clk)
        now = bench.counter.now
        if due and due[0][0] == now:
            dut.rdata__valid.value = 1
            dut.rdata__payload.value = due.popleft()[1] << kind_at
        else:
            dut.rdata__valid.value = 0
        await ReadOnly()
        if bit(dut.dram__valid):
            cmd = (dut.dram__payload.value.to_unsigned() >> cmd_at) & 0xF
            if cmd in kinds:
                due.append((now + PIPELINE, kinds[cmd]))


# -- running programs ---------------------------------------------------------------------------

async def run(bench, instrs, *, valid_prob=1.0, ready_prob=1.0, limit=None):
    """Send ``instrs``; returns ``(Expected, o words, rsp words, trace tuples, cycles)``. The
    golden model (``bench.model``) runs them first; the trace is every DRAM command seen
    (cycle stamps unwrapped)."""
    dut, cfg = bench.dut, bench.config
    exp = Expected(cfg, instrs, bench.model)
    source = StreamSource(dut, "cmd", dut.clk, bench.counter, valid_prob=valid_prob,
                          rng=bench.rng)
    sinks = {name: StreamSink(dut, name, dut.clk, bench.counter, ready_prob=ready_prob,
                              rng=bench.rng).start() for name in ("o", "rsp")}
    mark = len(bench.monitor.received)
    gaps = max(0.05, valid_prob * ready_prob)
    limit = limit or int(4 * (exp.schedule.end + 50 * len(instrs)) / gaps) + 2000
    first = bench.counter.now
    source.send(exp.cmd_words)
    done = await sinks["rsp"].expect(len(exp.rsp), limit)
    if done:
        done = await sinks["o"].expect(len(exp.o), limit)
    await ClockCycles(dut.clk, SETTLE)
    await FallingEdge(dut.clk)
    for driver in (source, *sinks.values()):
        driver.stop()
    bench.idle()
    cycles = bench.counter.now - first
    o_words, rsp_words = sinks["o"].words, sinks["rsp"].words
    assert done and not source.pending, bench.fail(
        f"after {cycles} cycles (budget {limit}) the RTL sent {len(rsp_words)} of "
        f"{len(exp.rsp)} rsp and {len(o_words)} of {len(exp.o)} o words; {source.pending} "
        f"instructions not taken")
    return exp, o_words, rsp_words, bench.trace()[mark:], cycles


def _rsp(bench, words):
    fields = unpack(bench.config.rsp_fields, words)
    return [{k: int(v[i]) for k, v in fields.items()} for i in range(len(words))]


def _subsequence(small, big):
    """Whether ``small`` occurs in ``big`` in order (other items between)."""
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def compare(bench, exp, o_words, rsp_words, trace, *, exact):
    """Mismatch descriptions of one run against its :class:`Expected`; ``exact``: full rate,
    so with refresh off every counter and every command's cycle too."""
    cfg = bench.config
    out = []
    if len(o_words) != len(exp.o):
        out.append(f"o: RTL sent {len(o_words)} words, golden {len(exp.o)}")
    owners = [i for i, s in enumerate(exp.steps) for _ in s.o_words]
    if cfg.controller_only:     # a stub memory answers: only the kinds of the beats are known
        off, width, _ = field_offsets(cfg.o_fields)["kind"]
        o_words = [(w >> off) & ((1 << width) - 1) << off for w in o_words]
        exp_o = [(w >> off) & ((1 << width) - 1) << off for w in exp.o]
    else:
        exp_o = exp.o
    for n, (got, want) in enumerate(zip(o_words, exp_o)):
        if got != want:
            out.append(f"o word #{n} (instruction #{owners[n]} {exp.instrs[owners[n]]}): RTL "
                       f"{got:#x} != golden {want:#x}")
    got_rsp = _rsp(bench, rsp_words)
    if len(got_rsp) != len(exp.rsp):
        out.append(f"rsp: RTL sent {len(got_rsp)} beats, golden {len(exp.rsp)}")
    timing = exact and not cfg.refresh
    for n, (got, want) in enumerate(zip(got_rsp, exp.rsp)):
        keys = [k for k in want if timing or (k not in TIMING_COUNTERS
                                              and (not cfg.refresh or k not in ("acts", "pres")))]
        diff = {k: (got[k], want[k]) for k in keys if got[k] != want[k]}
        if diff:
            what = ERRORS.get(want["err"], "?")
            out.append(f"rsp #{n} ({'eoc' if want['eoc'] else 'error ' + what}): (RTL, golden) "
                       f"{diff}")
    violations = check_trace(bench.trace(), cfg)
    out += [f"timing checker: {v.message}" for v in violations]
    program_cmds = [c[1:] for c in exp.trace]
    seen = [c[1:] for c in trace]
    if not cfg.refresh:
        if seen != program_cmds:
            first = next((i for i, (a, b) in enumerate(zip(seen, program_cmds)) if a != b),
                         min(len(seen), len(program_cmds)))
            out.append(f"DRAM command #{first}: RTL {seen[first:first + 1]} != golden "
                       f"{program_cmds[first:first + 1]} ({len(seen)} vs {len(program_cmds)})")
        elif exact:
            rel = [(t - trace[0][0], *c) for t, *c in trace] if trace else []
            want = [(t - exp.trace[0][0], *c) for t, *c in exp.trace] if exp.trace else []
            bad = next((i for i, (a, b) in enumerate(zip(rel, want)) if a != b), None)
            if bad is not None:
                out.append(f"DRAM command #{bad} issued at relative cycle {rel[bad][0]}, the "
                           f"cycle model says {want[bad][0]} ({want[bad][1:]})")
    elif not _subsequence(program_cmds, [c for c in seen if c[0] != "REF"]):
        out.append("the program's DRAM commands are not in the trace in order")
    bench.record(violations=summary(violations))
    return out


# -- testcases ------------------------------------------------------------------------------------

async def start(dut, name):
    bench = await Bench.start(dut, name)
    bench.after_reset()
    bench.start_memory()
    return bench


async def clear(bench):
    """Run :func:`clear_program` (every column and GB column 0, as the fresh golden model's);
    returns its mismatches."""
    exp, o, rsp, trace, _ = await run(bench, clear_program(bench.config))
    return compare(bench, exp, o, rsp, trace, exact=True)


@cocotb.test()
async def random_programs(dut):
    """Random legal programs with gaps and backpressure, then at full rate."""
    bench = await start(dut, "random_programs")
    cfg = bench.config
    mismatches = await clear(bench)
    length = max(20, bench.beats // 4)
    valid_prob = round(bench.rng.uniform(0.6, 0.9), 3)
    ready_prob = round(bench.rng.uniform(0.5, 0.9), 3)
    prog = random_program(cfg, bench.nprng, length, model=copy.deepcopy(bench.model),
                          error_rate=0.05)
    exp, o, rsp, trace, cycles = await run(bench, prog, valid_prob=valid_prob,
                                           ready_prob=ready_prob)
    mismatches += compare(bench, exp, o, rsp, trace, exact=False)
    prog = random_program(cfg, bench.nprng, length, model=copy.deepcopy(bench.model),
                          error_rate=0.05)
    exp2, o, rsp, trace, _ = await run(bench, prog)
    mismatches += compare(bench, exp2, o, rsp, trace, exact=True)
    ops = sorted({i.name for i in exp.instrs + exp2.instrs})
    bench.record(instructions=2 * length, valid_prob=valid_prob, ready_prob=ready_prob,
                 ops=ops, commands=len(exp.trace) + len(exp2.trace), cycles=cycles)
    assert_clean(bench, mismatches, "random programs")


@cocotb.test()
async def errors(dut):
    """Every directed error, then programs with many random errors."""
    bench = await start(dut, "errors")
    cfg = bench.config
    mismatches = await clear(bench)
    directed = error_instrs(cfg, golden.Model(cfg))
    for ins, code in directed:          # the list must say what the golden model says
        assert golden.Model(cfg).run(ins).err == code, bench.fail(
            f"testbench error: {ins} is not err {code}")
    model = copy.deepcopy(bench.model)
    model.program([ins for ins, _ in directed])
    prog = [ins for ins, _ in directed] + random_program(
        cfg, bench.nprng, max(20, bench.beats // 4), model=model, error_rate=0.4)
    exp, o, rsp, trace, _ = await run(bench, prog, valid_prob=0.8, ready_prob=0.7)
    mismatches += compare(bench, exp, o, rsp, trace, exact=False)
    codes = [r["err"] for r in exp.rsp if not r["eoc"]]
    bench.record(directed=len(directed), err_codes={str(k): codes.count(k)
                                                    for k in sorted(set(codes))})
    assert {c for _, c in directed} <= set(codes), bench.fail("testbench error: codes missing")
    assert_clean(bench, mismatches, "programs with errors")


def _gemv(bench, n, k, *, rng=None, act=None, bias=True):
    """Random ``w``, ``x`` (and ``b`` with ``bias``) and their compiled GEMV."""
    cfg = bench.config
    rng = rng if rng is not None else bench.nprng
    w = rng.integers(-128, 128, (n, k))
    x = rng.integers(-128, 128, k)
    half = 1 << (min(cfg.bias_width, 24) - 1)
    b = rng.integers(-half, half, n) if bias else None
    return w, x, b, compile_gemv(cfg, w, x, b, act=act, mode=bench.mode())


@cocotb.test()
async def reset_midprogram(dut):
    """rst inside a GEMV; a fresh GEMV afterwards is exact."""
    bench = await start(dut, "reset_midprogram")
    cfg = bench.config
    n, k = default_shape(cfg)
    _, _, _, g = _gemv(bench, n, k)
    source = StreamSource(dut, "cmd", dut.clk, bench.counter, valid_prob=0.9, rng=bench.rng)
    sinks = [StreamSink(dut, s, dut.clk, bench.counter, ready_prob=0.7, rng=bench.rng).start()
             for s in ("o", "rsp")]
    source.send(golden.pack_instr(cfg, g.load + g.run))
    stop_at = bench.rng.randint(20, 20 + len(g.load))
    await ClockCycles(dut.clk, stop_at)
    await FallingEdge(dut.clk)
    for d in (source, *sinks):
        d.stop()
    bench.idle()
    await reset(dut, bench.rng.randint(1, 3))
    bench.after_reset()
    w, x, b, g = _gemv(bench, n, k, act=("relu_requant", 5))
    exp, o, rsp, trace, _ = await run(bench, g.load + g.run, valid_prob=0.8, ready_prob=0.8)
    mismatches = compare(bench, exp, o, rsp, trace, exact=False)
    y = read_y(g, o) if len(o) == len(g.readout) else None
    if not cfg.controller_only and (
            y is None or not np.array_equal(y, golden_y(cfg, w, x, b, ("relu_requant", 5)))):
        mismatches.append("y after the reset differs from numpy")
    bench.record(reset_after_cycles=stop_at, shape=f"{n}x{k}")
    assert_clean(bench, mismatches, "the GEMV after the reset")


async def _gemv_run(bench, n, k, *, arrays=None):
    """Load and run one GEMV (``arrays`` or random ``y = W x``) at full rate; returns
    ``(record, mismatches, y)``."""
    cfg = bench.config
    if arrays is None:
        w, x, b, g = _gemv(bench, n, k, bias=False)
    else:
        w, x, b = arrays
        g = compile_gemv(cfg, w, x, b, mode=bench.mode())
    mismatches = []
    if not cfg.controller_only:         # the controller alone has no storage to load
        exp, o, rsp, trace, _ = await run(bench, g.load)
        mismatches += compare(bench, exp, o, rsp, trace, exact=True)
    wall = time.perf_counter()
    exp, o, rsp, trace, sim_cycles = await run(bench, g.run)
    seconds = time.perf_counter() - wall
    mismatches += compare(bench, exp, o, rsp, trace, exact=True)
    y = read_y(g, o) if len(o) == len(g.readout) else np.zeros(n, np.int64)
    want = golden_y(cfg, w, x, b)
    if bench.env.check and not cfg.controller_only and not np.array_equal(y, want):
        bad = np.flatnonzero(y != want)
        mismatches.append(f"y[{bad[0]}]: RTL {y[bad[0]]} != numpy {want[bad[0]]} "
                          f"({len(bad)} of {n} differ)")
    got = _rsp(bench, rsp)[-1]
    model = exp.schedule.programs[-1]["cycles"]
    if cfg.refresh:
        budget = refresh_budget(cfg, model)
        if not model <= got["cycles"] <= model + budget:
            mismatches.append(f"cycles {got['cycles']} outside [{model}, {model + budget}] "
                              f"(cycle model + refresh budget)")
    violations = check_trace(bench.trace(), cfg)
    record = {"shape": f"{n}x{k}", "mode": bench.mode(), "cycles": got["cycles"],
              "model_cycles": model,
              "mac_efficiency": mac_efficiency(cfg, got["macs"], got["cycles"]),
              "refreshes": got["refs"], "timing_violations": len(violations),
              "macs": got["macs"], "busy": got["busy"],
              **{k: got[k] for k in ("acts", "pres", "stall_timing", "stall_refresh")},
              "sim_cycles": sim_cycles, "sim_seconds": seconds,
              "check": "failed" if mismatches else
              "passed (timing only: controller alone)" if cfg.controller_only else "passed"}
    return record, mismatches, y


def _gemv_summary(bench, rec):
    rows = [("shape", rec["shape"]), ("mode", rec["mode"]), ("cycles", rec["cycles"]),
            ("model cycles", rec["model_cycles"]),
            ("MAC efficiency", f"{100 * rec['mac_efficiency']:.1f} %"),
            ("refreshes", rec["refreshes"]), ("timing violations", rec["timing_violations"]),
            ("check", "FAIL" if rec["check"] == "failed" else
             "PASS" + rec["check"][len("passed"):])]
    for label, text in rows:
        bench.summary(label, text)


@cocotb.test()
async def gemv(dut):
    """The ``gemv`` option's GEMV at full rate: y, cycles, MAC efficiency, refreshes."""
    bench = await start(dut, "gemv")
    n, k = bench.env.options.get("gemv") or default_shape(bench.config)
    rec, mismatches, _ = await _gemv_run(bench, n, k)
    bench.record(**rec)
    _gemv_summary(bench, rec)
    dut._log.info(f"gemv {n}x{k} {rec['mode']}: {rec['cycles']} cycles (model "
                  f"{rec['model_cycles']}), MAC efficiency {100 * rec['mac_efficiency']:.1f} %")
    assert_clean(bench, mismatches, f"gemv {n}x{k}")


@cocotb.test()
async def refresh(dut):
    """GEMV programs back to back for >= 20 tREFI: refresh legal, counted, y exact."""
    bench = await start(dut, "refresh")
    cfg = bench.config
    if not cfg.refresh:
        bench.record(skipped="refresh is off in this config")
        return
    n, k = default_shape(cfg)
    w, x, b, g = _gemv(bench, n, k)
    begin = bench.counter.now
    exp, o, rsp, _, _ = await run(bench, g.load)
    mismatches = []
    runs = 0
    while bench.counter.now - begin < 20 * cfg.timing.tREFI:
        exp, o, rsp, _, _ = await run(bench, g.run)
        runs += 1
        if not cfg.controller_only and not np.array_equal(read_y(g, o), golden_y(cfg, w, x, b)):
            mismatches.append(f"run {runs}: y differs from numpy")
    trace = bench.trace()
    end = trace[-1][0]
    violations = check_trace(trace, cfg, end=end)
    mismatches += [f"timing checker: {v.message}" for v in violations]
    refs = [t for t, c, *_ in trace if c == "REF"]
    gaps = np.diff([0] + refs + [end])
    bench.record(cycles=end - begin, runs=runs, refreshes=len(refs),
                 longest_gap=int(gaps.max()), tREFI=cfg.timing.tREFI,
                 violations=summary(violations))
    if len(refs) < (end // cfg.timing.tREFI) - 8:
        mismatches.append(f"{len(refs)} REF in {end} cycles (tREFI {cfg.timing.tREFI})")
    assert_clean(bench, mismatches, f"{runs} GEMV runs over {end - begin} cycles")


@cocotb.test()
async def user_inputs(dut):
    """User arrays (w, x, optional b) as one GEMV; y to ACCELGEN_OUTPUTS."""
    bench = await start(dut, "user_inputs")
    arrays, path = bench.user_arrays()
    if arrays is None:
        n, k = default_shape(bench.config)
        w, x, b, _ = _gemv(bench, n, k)
    else:
        w, x, b = arrays["w"], arrays["x"], arrays.get("b")
    n, k = np.asarray(w).shape
    rec, mismatches, y = await _gemv_run(bench, n, k, arrays=(w, x, b))
    bench.save_outputs(y=y, cycles=np.int64(rec["cycles"]), macs=np.int64(rec["macs"]),
                       refreshes=np.int64(rec["refreshes"]))
    bench.record(inputs=path, **{k: v for k, v in rec.items() if k != "check"},
                 check=bench.checked(mismatches))
    assert_clean(bench, mismatches if bench.env.check else [], f"user inputs {path}")


check_testcases(globals())
