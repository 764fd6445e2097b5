"""cocotb testbench of block ``systolic``: drives the emitted Verilog's ``cmd``, ``a``, ``b``,
``c`` streams, takes ``o`` and ``rsp``, and scoreboards every ``o`` word and the ``err`` and
``macs`` of every ``rsp`` word against :class:`accelgen.sim.golden.systolic.Model`.

Parameters are :class:`accelgen.sim.cocotb.bench.BenchEnv` (``ACCELGEN_*``, set by
:func:`accelgen.sim.runner.simulate`); for this block:

=====================  ==================================================================
``ACCELGEN_BEATS``     length of the random testcases: ``BEATS // 20`` commands (at least 4)
``ACCELGEN_OPTIONS``   JSON object; ``"gemm"``: ``"MxKxN"`` of the ``gemm`` testcase (default
                       ``4R x 4R x 4C``, ``K`` at most ``k_max``); ``"dataflow"``: ``"os"`` or
                       ``"ws"`` for ``gemm`` and ``user_inputs`` (default: the first built);
                       ``"commands"``: a list of :class:`~accelgen.sim.golden.systolic.Command`
                       field objects for ``sequence`` (the tests' cycle-model grid);
                       ``"gaps"``: ``[valid, ready]`` probabilities that make ``sequence`` run
                       with the file-backed streams' own random gaps (results still exact;
                       the cycle model, a full-rate model, is then not checked)
``ACCELGEN_INPUTS``    optional ``.npz`` with ``a`` (M x K), ``b`` (K x N), optional ``c``
``ACCELGEN_OUTPUTS``   optional ``.npz`` that ``user_inputs`` writes (``y`` and the counters)
``ACCELGEN_CHECK``     ``1`` (default) or ``0``: compare ``user_inputs`` against the golden model
=====================  ==================================================================

Testcases (each starts with a synchronous reset and uses its own RNG stream derived from the
seed and its name). The accumulator memory survives a reset and holds whatever the previous
testcase (or, on Icarus, power-up X) left in it, so a testcase that accumulates first runs a
*flush* (:func:`~accelgen.sim.golden.systolic_program.flush_command`): one ``output none``
command that overwrites every row with known products. Commands, operands and expected
words come from one :class:`~accelgen.sim.golden.systolic_program.Program` per testcase run
on ``Bench.model`` (operands and junk from ``Bench.nprng``).

``random_gemms``      random valid commands (``program.random_command``: both dataflows, every
                      mode and output, accumulate chains, preload), random valid gaps and
                      ready backpressure on every stream; in half the commands bits the
                      hardware must ignore carry random junk (:data:`JUNK`: ``a`` padding
                      elements, bits above the mode's format, ``b`` and ``c`` lanes past N).
``errors``            every error code the config can express (directed and random),
                      interleaved with valid commands whose results prove the erroneous ones
                      consumed no beat and left the memory alone; ``err`` and zero counters.
``reset_midcommand``  ``rst`` in the middle of a long command; afterwards a fresh sequence
                      (the first command overwrites or preloads its rows) must come out
                      exactly, and nothing from before the reset may come out.
``sequence``          commands back to back at full rate (random ones, errors included, or
                      the ``commands`` option) through the file-backed streams; results
                      exact and every ``rsp.cycles`` equal to the analytic cycle model
                      (:func:`~accelgen.sim.golden.systolic_cycles.command_cycles`).
``gemm``              one ``gemm`` (option) GEMM at full rate (valid and ready always high)
                      through the file-backed streams (:mod:`accelgen.sim.bulk`: no Python
                      per cycle); records the ``rsp`` counters, the model's cycles, utilization
                      ``macs / (R*C*cycles)``, the testbench's own cycle count from command
                      accept to ``rsp`` and the simulation speed; its ``summary`` rows are
                      what ``accelgen sim systolic --gemm`` prints.
``user_inputs``       ``ACCELGEN_INPUTS`` (or random arrays) as one command (``preload`` with
                      ``c``), full rate; writes ``ACCELGEN_OUTPUTS``, checks unless
                      ``ACCELGEN_CHECK=0``.

Stream timing follows :mod:`accelgen.sim.cocotb.streams`: drive after a falling edge, read in
``ReadOnly``, a transfer is tagged with the rising edge that completes it.
"""

from dataclasses import replace

import numpy as np

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge

from accelgen.generators.systolic import COUNTERS, ERRORS
from accelgen.numerics import IntFormat, wrap
from accelgen.sim.cocotb.bench import (SHOW_MISMATCHES, BenchBase, assert_clean,
                                       check_testcases, reset)
from accelgen.sim.cocotb.bulk import run_bulk
from accelgen.sim.cocotb.streams import StreamSink, StreamSource
from accelgen.sim.golden import systolic as golden
from accelgen.sim.golden import systolic_program as prog
from accelgen.sim.golden.systolic_cycles import command_cycles
from accelgen.sim.golden.systolic_program import INPUTS, Program, flush_command

#: the ``@cocotb.test`` functions below, in the order the runner runs them (``user_inputs``
#: only when the user gives inputs); the registry and the runner read this tuple
TESTCASES = ("random_gemms", "errors", "reset_midcommand", "sequence", "gemm", "user_inputs")

OUTPUTS = ("o", "rsp")
SETTLE = 32          #: extra cycles (plus the array's size) a run waits for spurious words
#: The kinds of junk ``random_gemms`` injects: all of
#: :data:`accelgen.sim.golden.systolic_program.JUNK_KINDS`.
JUNK = prog.JUNK_KINDS


# -- parameters and set-up -----------------------------------------------------------------

class Bench(BenchBase):
    """Everything a testcase needs: manifest, config, golden model, clock, seeded RNGs.

    Members
    -------
    manifest : Manifest
    config : SystolicConfig
        Rebuilt from ``manifest["config"]`` (nothing else states the config).
    model : golden.Model
        The golden model run in the same command order as the hardware.
    seed, beats : int
    rng : random.Random
        Valid/ready gaps.
    nprng : numpy.random.Generator
        Commands, operands and junk bits.
    counter : CycleCounter
    env : BenchEnv
        The parameters; ``env.options`` may hold ``gemm`` and ``dataflow``.
    """

    def __init__(self, dut, testcase):
        super().__init__(dut, testcase, generator="systolic")
        self.model = golden.Model(self.config)

    def dataflow(self):
        """The ``dataflow`` option or the first built dataflow."""
        flow = self.env.options.get("dataflow") or self.config.dataflows[0]
        assert flow in self.config.dataflows, self.fail(
            f"ACCELGEN_OPTIONS dataflow {flow!r} is not built; the config builds "
            f"{list(self.config.dataflows)}")
        return flow


# -- programs: commands, their words and what must come back ---------------------------------

def program(bench, commands, **kw):
    """``commands`` run on ``bench.model`` with operands (and junk) from ``bench.nprng``: the
    :class:`Program` (``kw``: ``arrays``, ``junk``, ``kinds`` of :meth:`Program.run`)."""
    return Program(bench.config, bench.model).run(commands, bench.nprng, **kw)


def describe_cmd(c):
    flags = [f for f in ("accumulate", "preload") if getattr(c, f)]
    return (f"{c.m}x{c.k}x{c.n} dataflow {c.dataflow} mode {c.mode} output {c.output}"
            f"{' ' + '+'.join(flags) if flags else ''}")


def budget(bench, p, gaps=1.0):
    """Generous cycle budget for program ``p`` with probability product ``gaps``."""
    cfg = bench.config
    per_cmd = 4 * (cfg.rows + cfg.cols) + 2 * cfg.k_max // max(1, cfg.rows) + 64
    return int(6 * p.total_words / max(gaps, 0.05)) + per_cmd * len(p.commands) + 500


# -- scoreboard ----------------------------------------------------------------------------

def _lanes(bench, word):
    cfg = bench.config
    fields = bench.manifest.unpack("o", word)
    lanes = wrap(golden._words_to_slots([fields["c"]], cfg.cols, cfg.acc_width)[0],
                 IntFormat(cfg.acc_width, True))
    return f"c={lanes.tolist()} last={fields['last']}"


def compare(bench, p, o_words, rsp_words):
    """Mismatch descriptions of RTL ``o``/``rsp`` words against program ``p``."""
    cfg = bench.config
    mismatches = []
    coded = [cmd.coded(cfg) for cmd in p.commands]
    if len(o_words) != len(p.o):
        mismatches.append(f"o: RTL sent {len(o_words)} words, golden {len(p.o)}")
    for n, (got, want) in enumerate(zip(o_words, p.o)):
        if got != want:
            owner = p.owner[n]
            first = p.owner.index(owner)
            junk = ", ignored bits with junk" if owner in p.junk else ""
            mismatches.append(f"o word #{n} (row {n - first} of command #{owner} "
                              f"{describe_cmd(coded[owner])}{junk}): RTL {_lanes(bench, got)} "
                              f"!= golden {_lanes(bench, want)}")
    if len(rsp_words) != len(p.rsp):
        mismatches.append(f"rsp: RTL sent {len(rsp_words)} words, golden {len(p.rsp)}")
    mask = (1 << cfg.counter_width) - 1
    for n, (word, want) in enumerate(zip(rsp_words, p.rsp)):
        got = golden.unpack_rsp(cfg, word)
        what = f"rsp #{n} (command {describe_cmd(coded[n])})"
        if (got["err"], got["macs"]) != (want.err, want.macs):
            mismatches.append(f"{what}: RTL err {got['err']} macs {got['macs']} != golden "
                              f"err {want.err} ({ERRORS.get(want.err)}) macs {want.macs}")
        elif want.err:
            if any(got[k] for k in COUNTERS):
                mismatches.append(f"{what}: err {want.err} but counters "
                                  f"{ {k: got[k] for k in COUNTERS} } are not all 0")
        elif got["busy"] != want.a_beats & mask or got["busy"] > got["cycles"]:
            mismatches.append(f"{what}: busy {got['busy']} != {want.a_beats} steps (a beats)"
                              f" or > cycles {got['cycles']}")
    return mismatches


# -- drivers -------------------------------------------------------------------------------

class Streams:
    """Random-gap drivers of all six streams (:class:`StreamSource` / :class:`StreamSink`)."""

    def __init__(self, bench, valid_prob, ready_prob):
        dut, clk, counter, rng = bench.dut, bench.dut.clk, bench.counter, bench.rng
        self.bench = bench
        self.sources = {name: StreamSource(dut, name, clk, counter, valid_prob=valid_prob[name],
                                           rng=rng) for name in INPUTS}
        self.sinks = {name: StreamSink(dut, name, clk, counter, ready_prob=ready_prob[name],
                                       rng=rng).start() for name in OUTPUTS}

    def send(self, words):
        for name in INPUTS:
            if words[name]:
                self.sources[name].send(words[name])

    def stop(self):
        """Cancel every driver and drive all valids and readys low."""
        for driver in [*self.sources.values(), *self.sinks.values()]:
            driver.stop()
        self.bench.idle()


async def run_plan(bench, p, *, valid_prob, ready_prob, settle=True):
    """Send program ``p`` with random gaps (``{stream: probability}``), collect what comes back
    (plus, with ``settle``, anything spurious in the cycles after). Returns ``(o, rsp)``
    words and records the cycles used."""
    dut = bench.dut
    streams = Streams(bench, valid_prob, ready_prob)
    gaps = min(valid_prob.values()) * min(ready_prob.values())
    limit = budget(bench, p, gaps)
    first = bench.counter.now
    streams.send(p.words)
    sink_o, sink_rsp = streams.sinks["o"], streams.sinks["rsp"]
    done = await sink_rsp.expect(len(p.rsp), limit)
    if done:
        done = await sink_o.expect(len(p.o), limit)
    if settle:
        await ClockCycles(dut.clk, SETTLE + 2 * (bench.config.rows + bench.config.cols))
        await FallingEdge(dut.clk)
    streams.stop()
    cycles = bench.counter.now - first
    left = {name: s.pending for name, s in streams.sources.items() if s.pending}
    bench.record(cycles=cycles)
    if not done:
        first = "; ".join(compare(bench, p, sink_o.words, sink_rsp.words)[:3])
        raise AssertionError(bench.fail(
            f"after {cycles} cycles (budget {limit}) the RTL sent {len(sink_rsp.words)} of "
            f"{len(p.rsp)} rsp and {len(sink_o.words)} of {len(p.o)} o words; words not "
            f"consumed: {left}; so far: {first or 'no mismatch'}"))
    assert not left, bench.fail(f"the RTL did not consume every input word: {left} left "
                                f"(the golden model consumes exactly what was sent)")
    return sink_o.words, sink_rsp.words


def gap_probs(bench):
    """Random per-stream valid and ready probabilities in [0.7, 0.9]."""
    return ({name: round(bench.rng.uniform(0.7, 0.9), 3) for name in INPUTS},
            {name: round(bench.rng.uniform(0.7, 0.9), 3) for name in OUTPUTS})


async def full_rate(bench, p, timeout, gaps=(1.0, 1.0)):
    """Program ``p`` at full rate through the file-backed streams (:mod:`accelgen.sim.bulk`):
    every input ``valid`` high while it has words, ``o.ready`` and ``rsp.ready`` always high,
    no Python per cycle. Returns ``{"o", "rsp", "cmd_cycles", "rsp_cycles", "cycles",
    "seconds"}`` (``cmd_cycles``/``rsp_cycles``: cycle of each ``cmd``/``rsp`` transfer)."""
    run = await run_bulk(bench, p.words, {"o": len(p.o), "rsp": len(p.rsp)}, timeout=timeout,
                         settle=SETTLE, log=("cmd",), valid_prob=gaps[0], ready_prob=gaps[1])
    left = {name: len(words) - run.consumed[name] for name, words in p.words.items()
            if len(words) != run.consumed[name]}
    assert run.finished and not left, bench.fail(
        f"after {run.sim_cycles} cycles (budget {timeout}) at full rate the RTL sent "
        f"{len(run.words['rsp'])} of {len(p.rsp)} rsp and {len(run.words['o'])} of {len(p.o)} "
        f"o words; words not consumed: {left}")
    return {"o": run.words["o"], "rsp": run.words["rsp"], "cmd_cycles": run.cycles["cmd"],
            "rsp_cycles": run.cycles["rsp"], "cycles": run.sim_cycles, "seconds": run.seconds}


# -- testcases -----------------------------------------------------------------------------

def _max_dim(config):
    """Shape cap of random commands: ``random_command``'s default (3R+1) on small arrays; on
    arrays of 8 rows or more 2*max(R, C)+1, still past two blocks in every dimension."""
    return None if config.rows < 8 else 2 * max(config.rows, config.cols) + 1


@cocotb.test()
async def random_gemms(dut):
    """Random valid commands with random gaps and backpressure on every stream."""
    bench = await Bench.start(dut, "random_gemms")
    cfg = bench.config
    count = max(4, bench.beats // 20)
    commands = [prog.random_command(cfg, bench.nprng, max_dim=_max_dim(cfg))
                for _ in range(count)]
    p = program(bench, [flush_command(cfg)]).run(commands, bench.nprng, junk=0.5, kinds=JUNK)
    valid_prob, ready_prob = gap_probs(bench)
    o_words, rsp_words = await run_plan(bench, p, valid_prob=valid_prob, ready_prob=ready_prob)
    coded = [c.coded(cfg) for c in commands]
    bench.record(commands=len(commands), o_words=len(o_words), junk_commands=len(p.junk),
                 valid_prob=valid_prob, ready_prob=ready_prob,
                 dataflows=sorted({cfg.dataflows[c.dataflow] for c in coded}),
                 outputs=sorted({golden.OUTPUTS[c.output] for c in coded}),
                 modes=sorted({cfg.modes[c.mode] for c in coded}),
                 accumulate=sum(c.accumulate for c in coded),
                 preload=sum(c.preload for c in coded))
    assert_clean(bench, compare(bench, p, o_words, rsp_words), "random GEMM commands")


@cocotb.test()
async def errors(dut):
    """Every error code the config can express between valid commands: nothing consumed,
    memory untouched, err codes and zero counters."""
    bench = await Bench.start(dut, "errors")
    cfg, rng = bench.config, bench.nprng
    directed = prog.error_commands(cfg)
    for cmd, code in directed:     # the list itself must say what the golden model says
        assert golden.error_code(cfg, cmd) == code, bench.fail(
            f"testbench error: {cmd} is err {golden.error_code(cfg, cmd)}, not {code}")
    commands = []
    for cmd, _ in directed:
        commands.append(prog.random_command(cfg, rng, max_dim=_max_dim(cfg)))
        commands.append(cmd)
    commands += [prog.random_command(cfg, rng, max_dim=_max_dim(cfg), allow_errors=True)
                 for _ in range(max(4, bench.beats // 20))]
    # a last valid command that accumulates onto rows the erroneous ones would have touched
    commands.append(golden.Command(m=min(cfg.acc_depth, 3 * cfg.rows + 1), k=2, n=cfg.cols,
                                   accumulate=True))
    p = program(bench, [flush_command(cfg)]).run(commands, rng)
    valid_prob, ready_prob = gap_probs(bench)
    o_words, rsp_words = await run_plan(bench, p, valid_prob=valid_prob, ready_prob=ready_prob)
    codes = [r.err for r in p.rsp[1:]]
    bench.record(commands=len(commands), err_codes={str(k): codes.count(k)
                                                    for k in sorted(set(codes))},
                 directed=len(directed), o_words=len(o_words))
    expressible = {code for _, code in directed}
    assert expressible <= set(codes), bench.fail(f"testbench error: codes {sorted(expressible)}"
                                                 f" expected, plan has {sorted(set(codes))}")
    assert_clean(bench, compare(bench, p, o_words, rsp_words), "commands with errors")


@cocotb.test()
async def reset_midcommand(dut):
    """rst during a long command; nothing from before comes out, a fresh sequence is exact."""
    bench = await Bench.start(dut, "reset_midcommand")
    cfg, dim_max = bench.config, golden.command_format(bench.config).dim_max
    flow = str(bench.nprng.choice(cfg.dataflows))
    k = min(cfg.k_max, 4 * cfg.rows)
    m = min(4 * cfg.rows, dim_max, cfg.acc_depth if flow == "ws" and k > cfg.rows else dim_max)
    long_cmd = golden.Command(m=m, k=k, n=min(3 * cfg.cols, dim_max), dataflow=flow)
    before = program(bench, [long_cmd])
    # stop somewhere inside the command (the a beats alone take this many cycles)
    stop_at = bench.rng.randint(max(4, len(before.words["a"]) // 4),
                                max(5, 3 * len(before.words["a"]) // 4))
    streams = Streams(bench, {n: 0.9 for n in INPUTS}, {n: 0.9 for n in OUTPUTS})
    streams.send(before.words)
    await ClockCycles(dut.clk, stop_at)
    await FallingEdge(dut.clk)
    streams.stop()
    accepted = {n: len(s.accepted) for n, s in streams.sources.items()}
    sent = {n: len(s.words) for n, s in streams.sinks.items()}
    await reset(dut, bench.rng.randint(1, 3))

    # Fresh sequence: the first command overwrites (or preloads) its rows, so it must not see
    # the interrupted command's partial rows; then a flush makes every row known again.
    first = replace(prog.random_command(cfg, bench.nprng, max_dim=_max_dim(cfg)),
                    accumulate=False)
    p = program(bench, [first, flush_command(cfg)])
    p.run([prog.random_command(cfg, bench.nprng, max_dim=_max_dim(cfg))
           for _ in range(max(3, bench.beats // 40))], bench.nprng)
    valid_prob, ready_prob = gap_probs(bench)
    o_words, rsp_words = await run_plan(bench, p, valid_prob=valid_prob, ready_prob=ready_prob)
    bench.record(long_command=describe_cmd(long_cmd.coded(cfg)), reset_after_cycles=stop_at,
                 accepted_before=accepted, sent_before=sent, commands_after=len(p.commands),
                 o_words=len(o_words))
    assert sent["rsp"] == 0, bench.fail(f"the long command responded within {stop_at} cycles; "
                                        f"the reset did not hit it mid-command")
    assert_clean(bench, compare(bench, p, o_words, rsp_words), "the sequence after the reset")


def _model_mismatches(bench, commands, model, rsp_words):
    """``rsp.cycles`` of each command against ``model``, the analytic model's cycles of each
    (full rate)."""
    cfg, out = bench.config, []
    for n, (cmd, cycles, word) in enumerate(zip(commands, model, rsp_words)):
        got = golden.unpack_rsp(cfg, word)["cycles"]
        want = cycles & ((1 << cfg.counter_width) - 1)
        if got != want:
            out.append(f"rsp #{n} ({describe_cmd(cmd.coded(cfg))}): rsp.cycles {got} != "
                       f"{want} of the cycle model")
    return out


@cocotb.test()
async def sequence(dut):
    """Commands back to back at full rate: results, and rsp.cycles against the cycle model."""
    bench = await Bench.start(dut, "sequence")
    cfg = bench.config
    given = bench.env.options.get("commands")
    if given:
        commands = [golden.Command(**fields) for fields in given]
    else:
        count = max(4, bench.beats // 20)
        commands = [prog.random_command(cfg, bench.nprng, max_dim=_max_dim(cfg),
                                        allow_errors=True) for _ in range(count)]
    # the flush runs first (its rsp is checked against the model too)
    p = program(bench, [flush_command(cfg)]).run(commands, bench.nprng)
    gaps = tuple(bench.env.options.get("gaps") or (1.0, 1.0))
    run = await full_rate(bench, p, budget(bench, p, gaps[0] * gaps[1]) + 4 * len(p.words["a"]),
                          gaps)
    mismatches = compare(bench, p, run["o"], run["rsp"])
    model = [command_cycles(cfg, c).cycles for c in p.commands]
    if gaps == (1.0, 1.0):
        mismatches += _model_mismatches(bench, p.commands, model, run["rsp"])
    coded = [c.coded(cfg) for c in commands]
    bench.record(commands=len(commands), errors=sum(golden.error_code(cfg, c) != 0
                                                   for c in coded),
                 dataflows=sorted({cfg.dataflows[c.dataflow] for c in coded
                                   if c.dataflow < len(cfg.dataflows)}),
                 rsp_cycles=[golden.unpack_rsp(cfg, w)["cycles"] for w in run["rsp"][1:]],
                 model_cycles=model[1:],
                 sim_cycles=run["cycles"], sim_seconds=run["seconds"],
                 cycles_per_second=run["cycles"] / run["seconds"] if run["seconds"] else None)
    assert_clean(bench, mismatches, "commands at full rate")


def default_gemm(config, flow):
    """``4R x 4R x 4C`` (K at most ``k_max``; in ws M at most ``acc_depth`` when K > R)."""
    k = min(4 * config.rows, config.k_max)
    m = 4 * config.rows
    if flow == "ws" and k > config.rows:
        m = min(m, config.acc_depth)
    return m, k, 4 * config.cols


def _gemm_shape(bench, flow):
    """The ``gemm`` option (``"MxKxN"``) or :func:`default_gemm`."""
    text = bench.env.options.get("gemm")
    return golden.parse_gemm(text) if text else default_gemm(bench.config, flow)


def _counters(bench, word):
    return golden.unpack_rsp(bench.config, word)


@cocotb.test()
async def gemm(dut):
    """One GEMM at full rate: result, counters, utilization and simulation speed."""
    bench = await Bench.start(dut, "gemm")
    cfg = bench.config
    flow = bench.dataflow()
    m, k, n = _gemm_shape(bench, flow)
    cmd = golden.Command(m=m, k=k, n=n, dataflow=flow)
    err = golden.error_code(cfg, cmd)
    assert err == 0, bench.fail(f"gemm {m}x{k}x{n} in {flow} is err {err} ({ERRORS[err]})")
    bench.model = golden.Model(cfg)     # no accumulate: the memory's contents do not matter
    p = program(bench, [cmd])
    bench.record(shape=f"{m}x{k}x{n}", m=m, k=k, n=n, dataflow=flow, mode=cfg.modes[0])
    run = await full_rate(bench, p, budget(bench, p) + 4 * len(p.words["a"]))
    rsp = _counters(bench, run["rsp"][0])
    tb_cycles = run["rsp_cycles"][0] - run["cmd_cycles"][0]
    mismatches = compare(bench, p, run["o"], run["rsp"])
    model = command_cycles(cfg, cmd).cycles
    mismatches += _model_mismatches(bench, [cmd], [model], run["rsp"])
    util = rsp["macs"] / (cfg.rows * cfg.cols * rsp["cycles"]) if rsp["cycles"] else 0.0
    if rsp["cycles"] != tb_cycles:
        mismatches.append(f"rsp.cycles {rsp['cycles']} != {tb_cycles} cycles from cmd accept "
                          f"(cycle {run['cmd_cycles'][0]}) to rsp (cycle {run['rsp_cycles'][0]})")
    bench.record(cycles=rsp["cycles"], model_cycles=model,
                 busy=rsp["busy"], stall_a=rsp["stall_a"],
                 stall_b=rsp["stall_b"], stall_out=rsp["stall_out"], macs=rsp["macs"],
                 utilization=util, tb_cycles=tb_cycles, a_beats=len(p.words["a"]),
                 b_beats=len(p.words["b"]), o_words=len(run["o"]),
                 sim_cycles=run["cycles"], sim_seconds=run["seconds"],
                 cycles_per_second=run["cycles"] / run["seconds"] if run["seconds"] else None,
                 check="failed" if mismatches else "passed")
    _gemm_summary(bench)
    dut._log.info(f"gemm {m}x{k}x{n} {flow}: {rsp['cycles']} cycles, utilization "
                  f"{100 * util:.1f} %, {run['cycles']} cycles simulated in "
                  f"{run['seconds']:.2f} s ({run['cycles'] / max(run['seconds'], 1e-9):.0f} "
                  f"cycles/s)")
    assert_clean(bench, mismatches, f"gemm {m}x{k}x{n} {flow}")


def _gemm_summary(bench):
    """The ``summary`` rows of the ``gemm`` record (what the CLI prints)."""
    gemm = bench.result
    speed = gemm["cycles_per_second"]
    rows = [("shape", gemm["shape"]), ("dataflow", gemm["dataflow"]),
            ("cycles", gemm["cycles"]), ("utilization", f"{100 * gemm['utilization']:.1f} %")]
    rows += [(k, gemm[k]) for k in ("busy", "stall_a", "stall_b", "stall_out", "macs")]
    rows.append(("check", "PASS" if gemm["check"] == "passed" else "FAIL"))
    if speed:
        rows.append(("simulation", f"{gemm['sim_cycles']} cycles at {speed:.0f} cycles/s"))
    for label, text in rows:
        bench.summary(label, text)


def _user_arrays(bench):
    """``(a, b, c or None, path or None)`` from ``ACCELGEN_INPUTS``, or random arrays."""
    arrays, path = bench.user_arrays()
    cfg = bench.config
    if arrays is None:  # a random valid command of the kind user inputs make
        while True:
            m, k, n = (int(bench.nprng.integers(1, d + 1)) for d in
                       (3 * cfg.rows + 1, min(cfg.k_max, 3 * cfg.rows + 1), 3 * cfg.cols + 1))
            c = golden.Command(m, k, n, preload=bool(bench.nprng.random() < 0.5),
                               dataflow=bench.dataflow()).coded(cfg)
            if golden.error_code(cfg, c) == 0:
                return *prog.command_operands(cfg, bench.nprng, c), None
    return arrays["a"], arrays["b"], arrays.get("c"), path


@cocotb.test()
async def user_inputs(dut):
    """User arrays as one command (preload with ``c``); outputs to ``ACCELGEN_OUTPUTS``."""
    bench = await Bench.start(dut, "user_inputs")
    cfg = bench.config
    flow = bench.dataflow()
    a, b, c, path = _user_arrays(bench)
    (m, k), n = a.shape, b.shape[1]
    cmd = golden.Command(m=m, k=k, n=n, preload=c is not None, dataflow=flow)
    err = golden.error_code(cfg, cmd)
    assert err == 0, bench.fail(f"inputs {m}x{k}x{n} in {flow} are err {err} ({ERRORS[err]})")
    fmt = cfg.mode_formats[0]
    if cfg.is_float:        # element values, exact in their formats (checked by the CLI)
        arrays = [(a, b, c)]
    else:   # the hardware reads the low bits of each element (ACCELGEN_CHECK=0 lets wider in)
        arrays = [(wrap(a, fmt.a), wrap(b, fmt.b),
                   None if c is None else wrap(c, IntFormat(cfg.acc_width, True)))]
    bench.model = golden.Model(cfg)
    p = program(bench, [cmd], arrays=arrays)
    run = await full_rate(bench, p, budget(bench, p) + 4 * len(p.words["a"]))
    rsp = _counters(bench, run["rsp"][0])
    try:
        y = golden.unpack_rows(cfg, cmd, run["o"])
    except ValueError as error:
        raise AssertionError(bench.fail(f"the RTL's o words are not a result of {m}x{k}x{n}: "
                                        f"{error}")) from None
    bench.save_outputs(y=y, **{k: np.int64(v) for k, v in rsp.items()})
    mismatches = []
    if bench.env.check:
        want = golden.gemm(cfg, a, b, c, dataflow=flow)
        if not np.array_equal(y, want):
            bad = np.argwhere(y != want)
            mismatches = [f"y[{i}, {j}]: RTL {y[i, j]} != golden {want[i, j]}"
                          for i, j in bad[:SHOW_MISMATCHES]] + \
                [f"{len(bad)} of {y.size} elements differ"]
        mismatches += [x for x in compare(bench, p, run["o"], run["rsp"]) if x.startswith("rsp")]
    util = rsp["macs"] / (cfg.rows * cfg.cols * rsp["cycles"]) if rsp["cycles"] else 0.0
    bench.record(inputs=path, shape=f"{m}x{k}x{n}", dataflow=flow, preload=c is not None,
                 **{name: rsp[name] for name in COUNTERS}, utilization=util,
                 check=bench.checked(mismatches))
    assert_clean(bench, mismatches, f"user inputs {path or '(random)'}")


check_testcases(globals())
