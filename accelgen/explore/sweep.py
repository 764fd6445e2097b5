"""``accelgen sweep``: the package API the command line calls.

:func:`prepare` checks everything a user typed (grid, metrics, objectives, family or board,
output directory, the store's block) and writes nothing; :func:`run_sweep` connects to Dask
(refusing an unreachable scheduler before anything is written), records the points, runs the
missing tasks and writes the report; :func:`report_only` redraws the report from a store.
"""

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from ..numerics import ConfigError
from ..outputs import check_directory, locked, make_directory
from .engine import SweepOutcome, connect, plan, run_tasks, worker_versions
from .metrics import SweepContext, check_metrics, parse_metrics
from .report import check_objectives, default_objectives, parse_objectives, write_report
from .space import build_point, grid_points, parse_grid, sample_points
from .store import STORE_NAME, Store, check_store, read_only

__all__ = ["SweepPlan", "prepare", "run_sweep", "report_only", "check_target_mhz"]


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep, not yet run.

    Members
    -------
    spec : GeneratorSpec
    points : list of Point
    metrics : tuple of str
    objectives : tuple of (sense, value name)
    context : SweepContext
    out_dir : Path
    settings : dict
        What the user asked for (recorded in the store's ``meta``).
    """
    spec: object
    points: list
    metrics: tuple
    objectives: tuple
    context: object
    out_dir: Path
    settings: dict


def check_target_mhz(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 1 <= value <= 1000:
        raise ConfigError(f"--target-mhz: {value!r} is not allowed; expected a frequency "
                          f"from 1 to 1000 MHz")
    return float(value)


def _store_block(out_dir, option="-o"):
    """The block of the sweep already in ``out_dir`` (None when there is none)."""
    path = Path(out_dir) / STORE_NAME
    if not path.exists():
        return None
    check_store(path, option)
    with read_only(path) as db:
        row = db.execute("SELECT value FROM meta WHERE name = 'block'").fetchone()
    return None if row is None else json.loads(row[0])


def prepare(spec, *, preset="default", config_file=None, sets=(), grid=(), random=None,
            seed=1, metrics="resources", objectives=None, family=None, board=None,
            target_mhz=150, pnr_seed=1, options=None, beats=200, out_dir="sweeps",
            allow_large=False):
    """Check a sweep and build its points (configs only: nothing elaborated, nothing
    written). Raises :class:`ConfigError` (one line naming the option) on bad input."""
    from ..fpga.boards import get_board
    from ..fpga.family import check_family
    from ..fpga.flow import check_pnr_seed
    base = spec.resolve(preset, config_file=config_file, sets=sets, allow_large=allow_large)
    if not grid:
        raise ConfigError("--grid: none given; expected at least one --grid key=[value, ...], "
                          "e.g. --grid 'rows=[4, 8]'")
    axes = parse_grid(grid, spec, base)
    params = grid_points(axes) if random is None else sample_points(axes, random, seed)
    chosen = parse_metrics(metrics)
    if family is not None:
        check_family(family)
    if board is not None:
        get_board(board)
    context = SweepContext(family=family, board=board, target_mhz=check_target_mhz(target_mhz),
                           pnr_seed=check_pnr_seed(pnr_seed), seed=seed, beats=beats,
                           preset=preset)
    base_options = {k: v for k, v in (options or {}).items() if v is not None}
    option_keys = tuple(a.key for a in axes if a.option)
    # an option the block does not take is bad input, not a grid of invalid points
    for name in base_options:
        if name not in {o.name for o in spec.run_options}:
            spec.check_run_options(base, {name: base_options[name]})
    check_metrics(spec, chosen, replace(context, options=tuple(base_options.items())),
                  option_keys)
    if "cycles" in chosen:      # the model must take the options (e.g. --mode needs --gemv)
        first = build_point(spec, params[0], preset=preset, config_file=config_file,
                            sets=sets, options=base_options, option_keys=option_keys,
                            allow_large=allow_large, allow_large_options=True)
        if first.valid:
            spec.model_report(first.config, dict(first.options))
    multiplies = base.peak_macs_per_cycle is not None
    objs = (check_objectives(parse_objectives(objectives), chosen, multiplies)
            if objectives else default_objectives(chosen, multiplies))
    check_directory("-o", out_dir)
    found = _store_block(out_dir)
    if found is not None and found != spec.name:
        raise ConfigError(f"-o: {str(out_dir)!r} holds a sweep of {found}, not {spec.name}; "
                          f"expected a new directory or one of a {spec.name} sweep")
    points = [build_point(spec, p, preset=preset, config_file=config_file, sets=sets,
                          options=base_options, option_keys=option_keys,
                          allow_large=allow_large,
                          allow_large_options=allow_large or "sim" not in chosen)
              for p in params]
    # a run option given once for every point (not swept) that no point takes is bad input
    # (a malformed --gemm), not a grid of invalid points
    fixed = tuple(f"--{name}:" for name in base_options if name not in option_keys)
    if fixed and not any(p.valid for p in points):
        blamed = [p.reason for p in points if p.reason.startswith(fixed)]
        if blamed:
            raise ConfigError(blamed[0])
    settings = {"block": spec.name, "preset": preset, "sets": list(sets), "grid": list(grid),
                "random": random, "seed": seed, "metrics": list(chosen),
                "objectives": [list(o) for o in objs], "family": family, "board": board,
                "target_mhz": context.target_mhz, "pnr_seed": pnr_seed,
                "options": base_options, "beats": beats}
    return SweepPlan(spec=spec, points=points, metrics=chosen, objectives=objs,
                     context=context, out_dir=Path(out_dir), settings=settings)


def run_sweep(sweep, *, scheduler=None, workers=None, retry_failed=False, on_record=None,
              on_progress=None, on_start=None, report=True, progress=None):
    """Run a :class:`SweepPlan`: connect (an unreachable ``scheduler`` is a
    :class:`ConfigError` before anything is written), record the points in
    ``<out_dir>/results.sqlite``, run the tasks not already there and write the report.
    ``on_start(outcome)`` is called once the tasks are planned; ``progress(line)`` when the
    sweep waits for another one using the directory. Returns a
    :class:`~accelgen.explore.engine.SweepOutcome`."""
    start = time.monotonic()
    outcome = SweepOutcome(points=len(sweep.points),
                           invalid=sum(not p.valid for p in sweep.points))
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 1 <= workers <= 1024):
        raise ConfigError(f"--workers: {workers!r} is not allowed; expected 1 to 1024")
    if scheduler is not None and workers is not None:
        raise ConfigError("--workers: not allowed with --scheduler (the cluster has its own "
                          "workers)")
    with ExitStack() as stack:
        client, versions = None, None
        if scheduler is not None:       # refused before anything is written
            client, outcome.dashboard = stack.enter_context(connect(scheduler))
            if any(p.valid for p in sweep.points):
                versions = worker_versions(client, sweep.metrics, sweep.context)
        out_dir = make_directory("-o", sweep.out_dir)
        stack.enter_context(locked(out_dir, progress))
        store = stack.enter_context(Store(out_dir / STORE_NAME))
        store.set_meta("block", sweep.spec.name)
        store.set_meta("settings", sweep.settings)
        store.set_meta("points", [p.ident for p in sweep.points])
        tasks, outcome.cached = plan(sweep.spec, sweep.points, sweep.metrics, sweep.context,
                                     store, retry_failed=retry_failed, versions=versions)
        outcome.tasks = len(tasks)
        if tasks and client is None:    # a local cluster only when there is work for it
            _warm_tools(sweep.metrics)
            client, outcome.dashboard = stack.enter_context(connect(None, workers))
        if on_start is not None:
            on_start(outcome)
        try:
            if tasks:
                outcome.done, outcome.failed = run_tasks(
                    client, sweep.spec, tasks, store, out_dir / "work", on_record=on_record,
                    on_progress=on_progress)
        finally:
            outcome.seconds = round(time.monotonic() - start, 2)
        if report:
            write_report(sweep.spec, store, out_dir, metrics=sweep.metrics,
                         objectives=sweep.objectives, idents=[p.ident for p in sweep.points])
    return outcome


def _warm_tools(metrics):
    """Compile the YoWASP tools once before the workers start, which would otherwise all
    compile them at once."""
    if {"resources", "fmax"} & set(metrics):
        from ..fpga.flow import warm_cache
        warm_cache()


def report_only(directory, *, objectives=None):
    """Redraw the report of the sweep in ``directory`` from its store; returns what
    :func:`~accelgen.explore.report.write_report` returns plus the settings."""
    from ..generators.registry import get_spec
    shown = str(directory)
    if not (Path(directory) / STORE_NAME).is_file():
        raise ConfigError(f"sweep report: {shown!r} is not allowed; expected a sweep directory "
                          f"(one holding {STORE_NAME})")
    block = _store_block(directory, "sweep report")
    if block is None:
        raise ConfigError(f"sweep report: {shown!r} holds no finished sweep setup; expected a "
                          f"sweep directory")
    spec = get_spec(block)
    # no lock and read-only: a sweep may be writing; its records are whole transactions, the
    # report is replaced atomically
    with Store(Path(directory) / STORE_NAME, readonly=True) as st:
        settings = st.meta("settings", {})
        idents = st.meta("points")
        metrics = tuple(settings.get("metrics", ()))
        if objectives:
            multiplies = spec.presets["default"].peak_macs_per_cycle is not None
            objs = check_objectives(parse_objectives(objectives), metrics, multiplies)
        else:
            objs = tuple(tuple(o) for o in settings.get("objectives", ()))
        result = write_report(spec, st, directory, metrics=metrics, objectives=objs,
                              idents=idents)
    return (*result, settings, spec, objs)
