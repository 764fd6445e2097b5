"""``accelgen`` command line: a thin layer over the package API.

Exit status: 0 success; 1 a tool failed or the RTL disagreed with the golden model (the
message names the log); 2 invalid input (one line on stderr naming the parameter, the value
and what is allowed; nothing written).
"""

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .numerics import ConfigError
from .tools import ToolError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2 (argparse prints usage otherwise)."""

    def error(self, message):
        sub = self.prog.partition(" ")[2]
        raise ConfigError(f"{sub + ': ' if sub else ''}{message}")


def _progress(args):
    def say(line):
        print(f"[accelgen] {line}", file=sys.stderr, flush=True)
    return say


def _config_args(p, block_nargs=None):
    p.add_argument("block", nargs=block_nargs, help="block name (see `accelgen list`)")
    p.add_argument("--preset", default="default", help="preset to start from (default: default)")
    p.add_argument("--config", metavar="FILE.toml", help="TOML file of settings over the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable; nested keys with dots; TOML values)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--allow-large", action="store_true",
                   help="lift the limits on memory bits and simulated cycles (see README)")


def _resolve(args):
    from .generators.registry import get_spec
    spec = get_spec(args.block)
    return spec, spec.resolve(args.preset, config_file=args.config, sets=args.set,
                              allow_large=args.allow_large)


def _table(rows, headers):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([line.format(*headers), line.format(*("-" * w for w in widths))]
                     + [line.format(*map(str, r)) for r in rows])


def _output(args, default):
    """``-o`` as given (an empty one too, which the directory check refuses), else
    ``default``."""
    return args.output if args.output is not None else default


def _print(args, data, text):
    print(json.dumps(data, indent=2) if args.json else text)


# -- commands --------------------------------------------------------------------------------

def cmd_list(args):
    from .generators.registry import REGISTRY
    data = {name: {"summary": s.summary, "presets": list(s.presets)}
            for name, s in REGISTRY.items()}
    rows = [(n, ", ".join(d["presets"]), d["summary"]) for n, d in data.items()]
    _print(args, data, _table(rows, ("block", "presets", "summary")))


def _settings_lines(table, indent="  "):
    """``key = value`` lines; a nested table of settings (a config inside the config, e.g.
    a timing table) or of named numbers gets its own indented block under ``key:``."""
    lines = []
    for key, value in table.items():
        if isinstance(value, dict) and value and all(
                isinstance(v, (int, float, str, bool)) for v in value.values()) \
                and len(value) > 4:
            lines.append(f"{indent}{key}:")
            lines += [f"{indent}  {k} = {v}" for k, v in value.items()]
        else:
            lines.append(f"{indent}{key} = {value}")
    return lines


def cmd_show(args):
    spec, config = _resolve(args)
    from .generators.emit import stream_layouts
    component = spec.build(config)
    component._MustUse__silence = True    # only its signature is read; never elaborated
    streams = stream_layouts(component, config)
    data = {"block": spec.name, "preset": args.preset, "config": config.to_dict(),
            "digest": config.digest(), "derived": config.derived(), "streams": streams}
    lines = [f"{spec.name} ({args.preset}, digest {config.digest()})", ""]
    lines += _settings_lines(config.to_dict())
    lines += ["", "derived:"] + _settings_lines(config.derived())
    for name, s in streams.items():
        lines += ["", f"stream {name} ({s['dir']}, payload {s['width']} bits):"]
        for f in s["fields"]:
            lines.append(f"  [{f['offset'] + f['width'] - 1}:{f['offset']}] {f['name']}"
                         f"{' (signed)' if f['signed'] else ''}")
            lines += [f"      {_array_text(a)}" for a in f.get("array", ())]
    given = {name: value for name, value in _show_options(args).items() if value is not None}
    if given:       # check_run_options refuses an option the block does not take
        data["model"], text = spec.model_report(config, given)
        lines += [""] + text
    if args.errors or args.plot:
        from .sim.report import error_lines, error_report, plot_errors
        title = f"{spec.name} ({args.preset})"
        if args.plot:
            data["plot"] = str(plot_errors(spec, config, args.plot, title=title))
        if args.errors:
            report = error_report(spec, config, args.preset)
            data["errors"] = report
            lines += [""] + error_lines(spec, report)
        if args.plot:
            lines.append(f"plot: {data['plot']}")
    _print(args, data, "\n".join(lines))


def _array_text(array):
    """``2 x s24 [j], stride 24 bits (when cmd.output = raw)`` for a manifest array entry."""
    shape = " x ".join(map(str, array["shape"]))
    kind = array.get("format") or f"{'s' if array['signed'] else 'u'}{array['width']}"
    when = array.get("when")
    cond = ""
    if when:
        named = [v for k, v in when.items() if k not in ("field", "equals")]
        cond = f" (when {when['field']} = {named[0] if named else when['equals']})"
    return (f"{shape} x {kind} [{', '.join(array['index'])}], stride "
            f"{', '.join(map(str, array['stride']))} bits{cond}")


def cmd_emit(args):
    spec, config = _resolve(args)
    from .generators.emit import emit
    out = emit(spec, config, args.output, preset=args.preset, top=args.top)
    data = {"verilog": str(out.verilog), "manifest": str(out.manifest_path),
            "digest": config.digest()}
    _print(args, data, f"wrote {out.verilog}\nwrote {out.manifest_path}")


def _jsonable(value):
    """Dataclass reports → plain JSON values (paths as strings)."""
    if dataclasses.is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _sim_summary(result):
    """The fields of a cocotb run a person or a script wants first."""
    data = {"passed": result.passed, "testcases": result.testcases,
            "cycles": result.cycles, "cycles_per_second": result.cycles_per_second,
            "build_seconds": result.build_seconds if result.built else None,
            "log": str(result.log), "waves": str(result.waves) if result.waves else None}
    for name, tc in result.result.get("testcases", {}).items():
        data[name] = tc
    return data


def _error_line(errors, testcase=""):
    """``error vs float64: max 0.54 LSB, mean 0.09 LSB, bias -0.02 LSB`` (+ row sums)."""
    where = f" ({testcase})" if testcase else ""
    bias = round(errors["mean"], 2) + 0.0     # no "-0.00"
    line = (f"error vs float64{where}: max {errors['max_abs']:.2f} LSB, mean "
            f"{errors['mean_abs']:.2f} LSB, bias {bias:.2f} LSB")
    if errors.get("row_sum_max_dev") is not None:
        line += (f"; row sums within {errors['row_sum_max_dev']:.4f} of 1 (bound "
                 f"{errors['row_sum_bound']:g})")
    return line


def _summary_rows(record):
    """The ``summary`` rows a testcase recorded (``[[label, text], ...]``)."""
    return [tuple(row) for row in record.get("summary", ())
            if isinstance(row, (list, tuple)) and len(row) == 2]


def _run_options(args):
    from .generators.registry import REGISTRY
    names = {o.name for s in REGISTRY.values() for o in s.run_options}
    return {name: getattr(args, name) for name in sorted(names)
            if getattr(args, name, None) is not None}


def cmd_sim(args):
    spec, config = _resolve(args)
    from .sim.runner import simulate
    if args.outputs and not args.inputs:
        raise ConfigError("--outputs: needs --inputs FILE.npz (the data whose results to save)")
    options = _run_options(args)
    # your inputs alone, or (simulate's default) a run option's testcase or all random ones
    testcases = ["user_inputs"] if args.inputs else None
    result = simulate(spec, config, preset=args.preset, simulator=args.sim, seed=args.seed,
                      beats=args.cycles, inputs=args.inputs, outputs=args.outputs,
                      testcases=testcases,
                      check=not args.no_check, waves=args.waves, progress=_progress(args),
                      options=options, allow_large=args.allow_large)
    data = _sim_summary(result)
    records = result.result.get("testcases", {})
    ran = list(result.testcases)
    if len(ran) == 1 and ran[0] != "user_inputs" and _summary_rows(records.get(ran[0], {})):
        # one testcase chosen by a run option: its summary is the answer, as a table
        rows = _summary_rows(records[ran[0]])
        rows.append(("simulator build", f"{result.build_seconds:.0f} s" if result.built
                     else "reused"))
        lines = [_table(rows, (ran[0], f"{spec.name} ({args.preset}) on {args.sim}")), ""]
        if not result.passed:
            lines.append(f"FAIL: {', '.join(result.failed)} (see the log)")
        lines.append(f"log: {result.log}")
        _print(args, data, "\n".join(lines))
        return 0 if result.passed else 1
    rows = [(name, "PASS" if ok else "FAIL") for name, ok in result.testcases.items()]
    lines = [_table(rows, ("testcase", f"{spec.name} on {args.sim}")), ""]
    if result.cycles:
        lines.append(f"simulated {result.cycles} cycles at {result.cycles_per_second:.0f} "
                     f"cycles/s")
    for name, record in records.items():
        lines += [f"{name} {label}: {text}" for label, text in _summary_rows(record)]
    if "user_inputs" in data:
        ui = data["user_inputs"]
        lines.append("your inputs: " + ", ".join(f"{k} {v}" for k, v in ui.items()
                                                 if not isinstance(v, (dict, list))))
    for name, tc in data.items():
        if isinstance(tc, dict) and isinstance(tc.get("errors"), dict):
            lines.append(_error_line(tc["errors"], "" if name == "user_inputs" else name))
    lines.append(f"log: {result.log}")
    if result.waves:
        lines.append(f"waves: {result.waves}")
    _print(args, data, "\n".join(lines))
    return 0 if result.passed else 1


def cmd_synth(args):
    spec, config = _resolve(args)
    from .fpga.flow import synth
    out_dir = _output(args, f"build/{spec.name}_{args.family}")
    report = synth(spec, config, args.family, out_dir, preset=args.preset,
                   progress=_progress(args))
    rows = [(k, v) for k, v in report.resources.items() if k != "cells"]
    _print(args, _jsonable(report), _table(rows, ("resource", args.family))
           + f"\n\nnetlist: {report.json}\nlog: {report.log}")


def cmd_build(args):
    spec, config = _resolve(args)
    from .fpga.boards import get_board
    from .fpga.flow import build, check_placer, check_pnr_seed, check_router, make_out_dir
    from .sim.runner import simulate
    get_board(args.board)
    check_router(args.router)
    check_placer(args.placer)
    check_pnr_seed(args.pnr_seed)
    # checked (and created) before the cocotb step prints or writes anything
    out_dir = make_out_dir(_output(args, f"build/{spec.name}_{args.board}"))
    say = _progress(args)
    sim = None
    if not args.skip_sim:
        say("verifying the emitted Verilog in cocotb against the golden model")
        sim = simulate(spec, config, preset=args.preset, seed=args.seed,
                       build_root=out_dir / "sim", progress=say)
        if not sim.passed:
            print(f"accelgen: error: cocotb verification failed ({', '.join(sim.failed)}); "
                  f"log: {sim.log}", file=sys.stderr)
            return 1
    report = build(spec, config, args.board, out_dir, preset=args.preset, seed=args.seed,
                   router=args.router, placer=args.placer, pnr_seed=args.pnr_seed,
                   progress=say)
    data = {"verification": None if sim is None else _sim_summary(sim),
            "build": _jsonable(report)}
    order = ("LUT4", "carry", "FF", "DSP", "BRAM", "IO")
    rows = [(k, f"{report.resources[k][0]} / {report.resources[k][1]}") for k in order
            if k in report.resources]
    rows.append(("Fmax (MHz)", f"{report.fmax_mhz:.1f} (board clock {report.target_mhz:g})"
                               + (f"; {report.fmax_note}" if report.fmax_note else "")))
    rows.append(("cocotb vs golden model", "skipped" if sim is None else
                 f"PASS ({len(sim.testcases)} testcases, {sim.cycles} cycles)"))
    rows.append(("harness self-check (sim)", f"PASS ({report.selfcheck_cycles} cycles)"))
    rows.append(("bitstream", report.bitstream))
    for name, path in report.logs.items():
        rows.append((f"{name} log", path))
    # build() raises ToolError (exit 1, with selfcheck.log) when the self-check fails.
    _print(args, data, _table(rows, ("", f"{spec.name} ({args.preset}) on {args.board}")))


def cmd_sweep(args):
    if args.block == "report":
        return _sweep_report(args)
    if args.directory is not None:
        raise ConfigError(f"sweep: {args.directory!r} is not allowed; a sweep takes one block "
                          f"(the output directory is -o DIR)")
    from .generators.registry import get_spec
    from .explore.sweep import prepare, run_sweep
    from .explore.progress import Progress
    spec = get_spec(args.block)
    plan = prepare(spec, preset=args.preset, config_file=args.config, sets=args.set,
                   grid=args.grid, random=args.random, seed=args.seed, metrics=args.metrics,
                   objectives=args.objectives, family=args.family, board=args.board,
                   target_mhz=args.target_mhz, pnr_seed=args.pnr_seed,
                   options=_run_options(args), beats=args.cycles,
                   out_dir=_output(args, f"sweeps/{spec.name}"), allow_large=args.allow_large)
    say = _progress(args)
    bar = {}

    def on_start(outcome):
        say(f"sweep of {spec.name}: {outcome.points} points ({outcome.invalid} invalid), "
            f"{outcome.tasks} tasks to run, {outcome.cached} records already in the store"
            + (f"; dashboard {outcome.dashboard}" if outcome.dashboard else ""))
        if not args.json:
            bar["show"] = Progress(outcome.tasks)

    def on_progress(done, failed, running, queued):
        if "show" in bar:
            bar["show"](done, failed, running, queued)

    printed = set()

    def on_record(task, record, key):
        if args.json:
            printed.add(key)
            print(json.dumps({"key": key, "block": spec.name, "digest": task.config.digest(),
                              "points": [dict(json.loads(i)[0]) for i in task.points],
                              "reused": False, **record}, sort_keys=True), flush=True)

    outcome = run_sweep(plan, scheduler=args.scheduler, workers=args.workers,
                        retry_failed=args.retry_failed, on_record=on_record,
                        on_progress=on_progress, on_start=on_start, progress=say)
    from .explore.report import sweep_rows, pareto_front
    from .explore.store import Store, STORE_NAME
    with Store(plan.out_dir / STORE_NAME, readonly=True) as store:
        rows = sweep_rows(spec, store, plan.metrics, [p.ident for p in plan.points])
        if args.json:       # the records this run reused, so the lines hold the whole sweep
            _print_reused(store, plan, printed)
    if args.json:
        for point in plan.points:
            if not point.valid:
                print(json.dumps({"block": spec.name, "points": [dict(point.params)],
                                  "status": "invalid", "reason": point.reason},
                                 sort_keys=True))
    front = pareto_front(rows, plan.objectives)
    if not args.json:
        print(_sweep_text(rows, front, plan.objectives, plan.out_dir, outcome))
    return 1 if args.strict and (outcome.failed or any(r["status"] == "failed" for r in rows)) \
        else 0


def _print_reused(store, plan, printed):
    idents = {p.ident for p in plan.points}
    users = {}
    for point in store.points():
        if point["ident"] in idents:
            for key in point["keys"].values():
                users.setdefault(key, []).append(dict(point["params"]))
    for key, rec in store.records(list(users)).items():
        if key in printed:
            continue
        out = {k: rec[k] for k in ("key", "block", "digest", "metric", "status", "values",
                                   "reason", "log", "host", "worker", "seconds", "tools")}
        print(json.dumps({**out, "points": users[key], "reused": True}, sort_keys=True))


#: options of a sweep that ``sweep report`` does not take (it reads the sweep's own), with
#: their defaults
_SWEEP_ONLY = {"preset": "default", "grid": [], "set": [], "config": None, "random": None,
               "metrics": "resources",
               "family": None, "board": None, "scheduler": None, "workers": None,
               "output": None, "retry_failed": False, "strict": False}


def _sweep_report(args):
    if args.directory is None:
        raise ConfigError("sweep report: expected the sweep directory, e.g. accelgen sweep "
                          "report sweeps/BLOCK")
    for name, default in _SWEEP_ONLY.items():
        if getattr(args, name) != default:
            raise ConfigError(f"--{name.replace('_', '-')}: not allowed with sweep report (it "
                              f"redraws the sweep as stored; only --objectives and --json)")
    from .explore.sweep import report_only
    html, pngs, rows, front, settings, spec, objs = report_only(args.directory,
                                                                objectives=args.objectives)
    if args.json:
        print(json.dumps({"report": str(html), "plots": [str(p) for p in pngs],
                          "points": rows, "pareto": front}, indent=2, default=str))
    else:
        print(_sweep_text(rows, front, objs, Path(args.directory), None))
    return 0


def _sweep_text(rows, front, objectives, out_dir, outcome):
    """The Pareto-optimal points as a table, the counts and the report's path."""
    lines = []
    names = [n for _, n in objectives]
    for name in names:
        if not any(name in r["values"] for r in rows):
            lines.append(f"note: no point has a value {name!r} (objective)")
    if front:
        keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
        table = [[rows[i]["params"].get(k, "") for k in keys]
                 + [_short(rows[i]["values"].get(n)) for n in names] for i in front]
        lines += [f"Pareto-optimal points ({', '.join(f'{s} {n}' for s, n in objectives)}):",
                  _table(table, keys + names), ""]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "invalid",
                                                                "pending")}
    lines.append(f"{len(rows)} points: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if outcome is not None:
        lines.append(f"{outcome.tasks} tasks run ({outcome.done} ok, {outcome.failed} failed), "
                     f"{outcome.cached} records reused, {outcome.seconds:.1f} s")
    for r in rows:
        if r["status"] == "failed":
            lines.append(f"failed: {r['point']}: " + "; ".join(
                f"{m}: {why}" + (f" (log: {r['logs'][m]})" if m in r["logs"] else "")
                for m, why in r["failures"].items()))
    lines.append(f"report: {out_dir / 'report.html'}")
    return "\n".join(lines)


def cmd_estimate(args):
    from .explore import estimate as est
    if args.fit:
        if args.block is not None:
            raise ConfigError(f"estimate: {args.block!r} is not allowed with --fit (the stores "
                              f"name their blocks)")
        return _estimate_fit(args, est)
    if args.block is None:
        raise ConfigError("estimate: expected a block (see accelgen list), or --fit STORE")
    if args.output is not None:
        raise ConfigError("-o: allowed with --fit only (where the fitted model goes)")
    spec, config = _resolve(args)
    model = est.load_model(args.model)
    estimates, notes = est.predict(model, spec.name, config, args.family)
    data = {"block": spec.name, "family": args.family, "digest": config.digest(),
            "estimates": estimates, "notes": notes}
    rows = [(t, f"{e['value']:.1f}" if t == "fmax_mhz" else f"{e['value']:.0f}",
             "-" if e["holdout_mape"] is None else f"{e['holdout_mape']:.1f} %", e["points"])
            for t, e in estimates.items()]
    lines = [_table(rows, ("value", f"estimate ({args.family})", "held-out MAPE",
                           "fit points"))]
    lines += [f"note: {n} (extrapolating)" for n in notes]
    _print(args, data, "\n".join(lines))


def _estimate_fit(args, est):
    from .outputs import check_file, write_atomic
    out = check_file("-o", _output(args, "estimator.json"), "a model file (.json)")
    samples = est.samples_from_stores(args.fit)
    if not samples:
        raise ConfigError("--fit: the stores hold no finished resources or fmax records of an "
                          "out-of-context sweep (--family)")
    base = est.load_model(args.model)
    fitted = est.fit_models(samples)
    models = dict(base.get("models", {}))
    for block, families in fitted.items():
        models[block] = {**models.get(block, {}), **families}
    write_atomic(out, json.dumps({"version": 1, "models": models}, sort_keys=True,
                                 separators=(",", ":")) + "\n")
    rows = []
    for block, families in fitted.items():
        for family, entry in families.items():
            for target, m in entry["targets"].items():
                h = m.get("holdout") or {}
                rows.append((block, family, target, m.get("kind", "ridge"), m["points"],
                             "-" if h.get("mape") is None else f"{h['mape']:.1f} %",
                             "-" if not h else f"{h['mae']:.2f}"))
    data = {"model": str(out), "fitted": {b: {f: {t: m.get("holdout") for t, m in
                                                   e["targets"].items()}
                                              for f, e in fams.items()}
                                          for b, fams in fitted.items()}}
    _print(args, data, _table(rows, ("block", "family", "value", "model", "points",
                                     "held-out MAPE", "held-out MAE"))
           + f"\n\nwrote {out}")


def cmd_run(args):
    from .model import run as model_run
    from .outputs import check_directory
    if args.output is not None:
        check_directory("-o", args.output)
    hw = model_run.read_hw(args.hw, args.hw_preset)
    data, outputs = model_run.run_model(
        args.model, args.inputs, hw=hw, sim=args.sim, allow_host=args.allow_host,
        simulator=args.simulator, build_root=args.build_root, seed=args.seed, fmax=args.fmax,
        reference=args.reference, measure_fmax=args.measure_fmax, progress=_progress(args))
    if args.output is not None:
        model_run.write_outputs(args.output, data, outputs)
    _print(args, data, "\n".join(model_run.report_lines(data, _table)))
    return 1 if data["totals"]["rtl_mismatches"] else 0


def cmd_prove(args):
    spec, config = _resolve(args)
    from .formal.prove import check_depth, prove
    if args.depth is not None:
        check_depth(args.depth)
    if args.induction_depth is not None:
        check_depth(args.induction_depth, "--induction-depth")
    if not 0 < args.timeout <= 86400:
        raise ConfigError(f"--timeout: {args.timeout:g} is not allowed; expected seconds, more "
                          f"than 0 and at most 86400")
    out_dir = _output(args, f"build/prove/{spec.name}_{args.preset}"
                      + (f"_{args.mutant}" if args.mutant else ""))
    report = prove(spec, config, out_dir, preset=args.preset, depth=args.depth,
                   induction_depth=args.induction_depth, mutant=args.mutant,
                   timeout=args.timeout, progress=_progress(args))
    counts = report.counts()
    head = (f"{spec.name} ({args.preset}): {len(report.properties)} properties, bounded "
            f"check to depth {report.depth}, induction at depth {report.induction_depth}, "
            f"solver {report.solver}: {counts.get('proven', 0)} proven (every reachable "
            f"state), {counts.get('bounded', 0)} to depth {report.depth} only, "
            f"{counts.get('failed', 0)} failed; {report.rounds} solver runs, "
            f"{report.seconds:g} s")
    rows = [(p.name, p.family, p.status) for p in report.properties]
    lines = [head, "", _table(rows, ("property", "family", "status"))]
    if report.mutant:
        caught = sorted({p.family for p in report.properties if p.status == "failed"})
        lines.append(f"\nmutant {report.mutant} (its family: {report.expected_family}): "
                     + (f"caught by {', '.join(caught)}" if caught else "NOT caught"))
    if report.reach:
        lines.append("\nreachable within the bounded check: " + ", ".join(
            f"{goal} at cycle {step}" if step is not None else f"{goal}: NOT within depth "
            f"{report.depth}" for goal, step in report.reach.items()))
    if report.counterexample:
        lines.append(f"counterexample (VCD): {report.counterexample}")
    lines.append(f"files: {report.directory}")
    _print(args, report.to_dict(), "\n".join(lines))
    return 0 if report.passed else 1


def cmd_faults(args):
    spec, config = _resolve(args)
    from .faults.campaign import (OUTCOMES, check_beats, check_campaign, run_campaign,
                                  select_vulnerable)
    from .faults.harden import parse_protection
    from .outputs import check_directory
    from .sim.simulators import check_simulator
    check_campaign(args.campaign)
    check_beats(args.beats)
    check_simulator(args.simulator, "--simulator")
    protection = parse_protection(args.protect)
    if args.selective and not protection.registers:
        raise ConfigError("--selective: protects registers; give --protect tmr, dmr or "
                          "reg-parity")
    if args.coverage is not None and not args.selective:
        raise ConfigError("--coverage: only with --selective")
    coverage = 0.9 if args.coverage is None else args.coverage
    if not 0 < coverage <= 1:
        raise ConfigError(f"--coverage: {coverage:g} is not allowed; expected a share more "
                          f"than 0 and at most 1")
    if not 1 <= args.top <= 10_000:
        raise ConfigError(f"--top: {args.top} is not allowed; expected 1 to 10000 rows")
    out_dir = _output(args, f"build/faults/{spec.name}_{args.preset}")
    check_directory("-o", out_dir)
    out_dir = Path(out_dir)
    say = _progress(args)
    data, lines = {}, []
    if args.selective:
        say("selective: an unprotected campaign first, to find the vulnerable registers")
        baseline = run_campaign(spec, config, out_dir / "unprotected", preset=args.preset,
                                faults=args.campaign, seed=args.seed, beats=args.beats,
                                simulator=args.simulator, progress=say)
        only = select_vulnerable(baseline, coverage)
        protection = dataclasses.replace(protection, only=only)
        data["unprotected"] = baseline.to_dict()
        lines += [_outcome_line("unprotected", baseline),
                  f"selected for {protection.registers} ({100 * coverage:g} % of the "
                  f"registers' corruptions and hangs): {len(only)} of "
                  f"{sum(1 for r in baseline.registers if r['kind'] == 'register')} registers "
                  f"struck: {', '.join(only[:12])}{' ...' if len(only) > 12 else ''}", ""]
    report = run_campaign(spec, config, out_dir, preset=args.preset, faults=args.campaign,
                          seed=args.seed, beats=args.beats, simulator=args.simulator,
                          protection=protection, progress=say)
    data.update(report.to_dict())
    rows = [(o, report.counts[o], f"{100 * report.rates[o][0]:.2f} %",
             f"{100 * report.rates[o][1]:.2f} - {100 * report.rates[o][2]:.2f} %")
            for o in OUTCOMES]
    lines += [f"{spec.name} ({args.preset}): {report.faults} single-bit upsets over "
              f"{report.bits} bits ({report.ff_bits} flip-flop, {report.memory_bits} memory), "
              f"workload of {report.cycles} cycles, seed {report.seed}, protection "
              f"{report.protection}, {report.seconds:g} s",
              "", _table(rows, ("outcome", "runs", "rate", "95 % interval")), "",
              "most vulnerable registers (silent data corruptions per fault there):",
              _table([(r["name"], r["kind"], r["bits"], r["faults"], r["sdc"], r["hang"],
                       r["detected"]) for r in report.registers[:args.top]],
                     ("register", "kind", "bits", "faults", "sdc", "hang", "detected")),
              "", _table([(u["name"], u["faults"], u["sdc"], u["hang"], u["detected"])
                          for u in report.units[:args.top]],
                         ("submodule", "faults", "sdc", "hang", "detected"))]
    if args.area:
        from .faults.area import area_report
        say("area: ECP5 synthesis unprotected, protected and in lock-step duplication")
        variants = {"protected": protection} if protection.active else {}
        area = area_report(spec, config, out_dir / "area", variants)
        data["area"] = area
        lines += ["", _table([(label, *(area[label].get(k, "") for k in ("LUT4", "FF", "BRAM")),
                               *(("", "") if label == "unprotected" else
                                 (f"{area['overhead'][label]['LUT4']} %",
                                  f"{area['overhead'][label]['FF']} %")))
                              for label in area if label != "overhead"],
                             ("ECP5", "LUT4", "FF", "BRAM", "LUT4 +", "FF +"))]
    lines.append(f"\nfiles: {out_dir} (campaign.json)")
    _print(args, data, "\n".join(lines))


def _outcome_line(label, report):
    parts = [f"{o} {100 * report.rates[o][0]:.2f} % ({100 * report.rates[o][1]:.2f}-"
             f"{100 * report.rates[o][2]:.2f})" for o in ("sdc", "hang", "detected")]
    return f"{label}: {report.faults} upsets: " + ", ".join(parts)


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def _show_options(args):
    """The ``show`` options on the command line (any block's), by name."""
    return {option.name: getattr(args, option.name, None)
            for option in _all_run_options() if option.show}


def _all_run_options():
    """Every block's run options → the blocks that take it (for ``sim --help``)."""
    from .generators.registry import REGISTRY
    out = {}
    for name, spec in REGISTRY.items():
        for option in spec.run_options:
            known = next((o for o in out if o.name == option.name), option)
            out.setdefault(known, []).append(name)
    return out


def _parser():
    from .generators.registry import REGISTRY
    parser = _Parser(prog="accelgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list blocks and presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="show a block's config, derived values and ports")
    _config_args(p)
    approx = ", ".join(name for name, s in REGISTRY.items() if s.approximates)
    p.add_argument("--errors", action="store_true",
                   help=f"golden model vs float64 (max, mean |error|, bias in output LSB) "
                        f"against the preset's declared bound ({approx})")
    p.add_argument("--plot", metavar="FILE.png",
                   help=f"draw error against input (needs matplotlib; {approx})")
    for option, blocks in _all_run_options().items():
        if option.show:
            p.add_argument(f"--{option.name}", metavar=option.metavar,
                           help=f"{', '.join(blocks)}: {option.help}")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("emit", help="write <top>.v and <top>.json")
    _config_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--top", help="top-level module name (default: the block name)")
    p.set_defaults(func=cmd_emit)

    p = sub.add_parser("sim", help="simulate the emitted Verilog in cocotb against the golden "
                                   "model")
    _config_args(p)
    p.add_argument("--sim", default="verilator", help="verilator (default) or icarus")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cycles", type=int, default=2000, metavar="N",
                   help="length of the random testcases (input beats or elements; see each "
                        "block's testbench); default 2000")
    p.add_argument("--waves", action="store_true", help="write a waveform file")
    p.add_argument("--inputs", metavar="FILE.npz", help="run these arrays through the RTL")
    p.add_argument("--outputs", metavar="FILE.npz", help="save what the RTL produced")
    p.add_argument("--no-check", action="store_true", help="do not compare with the golden model")
    for option, blocks in _all_run_options().items():
        p.add_argument(f"--{option.name}", metavar=option.metavar,
                       help=f"{', '.join(blocks)}: {option.help}")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("synth", help="synthesize with yosys and report resources")
    _config_args(p)
    p.add_argument("--family", required=True, help="ice40 or ecp5")
    p.add_argument("-o", "--output", metavar="DIR")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("build", help="verify, then build a self-checking bitstream for a board")
    _config_args(p)
    p.add_argument("--board", required=True, help="icebreaker or ulx3s-85f")
    p.add_argument("-o", "--output", metavar="DIR")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-sim", action="store_true", help="skip the cocotb verification step")
    p.add_argument("--router", default="router1",
                   help="nextpnr router: router1 (default) or router2 (congestion-aware; for "
                        "designs that fill most of the device)")
    p.add_argument("--placer", default="heap",
                   help="nextpnr placer: heap (default), static (electrostatic: spreads cells "
                        "more evenly; with router2 for designs that fill most of the device) "
                        "or sa")
    p.add_argument("--pnr-seed", type=int, metavar="N",
                   help="seed of nextpnr's placement (default: nextpnr's own); another seed "
                        "is another placement, for a design whose placement did not route")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("sweep", help="design-space sweep on Dask: every grid point's metrics "
                                     "into a resumable store, a Pareto report "
                                     "(accelgen sweep report DIR redraws it)")
    _config_args(p)
    p.add_argument("directory", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=[V,...]",
                   help="values of one setting (or run option) to sweep; repeatable: the "
                        "points are the cartesian product")
    p.add_argument("--random", type=int, metavar="N",
                   help="sample N points of the grid instead of all (seeded by --seed)")
    p.add_argument("--metrics", default="resources",
                   help="comma-separated: resources, fmax, errors, cycles, sim (util, "
                        "throughput); default resources")
    p.add_argument("--objectives", metavar="min:V,max:V",
                   help="values whose Pareto front the report marks (default: lut4 against "
                        "gmacs, fmax_mhz or err_max)")
    p.add_argument("--family", help="ice40 or ecp5 (resources; fmax out of context: ecp5)")
    p.add_argument("--board", help="fmax from a board build with the self-check harness")
    p.add_argument("--target-mhz", type=float, default=150,
                   help="timing target of out-of-context place and route (default 150)")
    p.add_argument("--pnr-seed", type=int, default=1, metavar="N",
                   help="nextpnr placement seed (default 1)")
    p.add_argument("--seed", type=int, default=1, help="simulation and --random seed")
    p.add_argument("--cycles", type=int, default=200, metavar="N",
                   help="length of the random testcases of the sim metric (default 200)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://host:8786) instead of a local cluster")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local cluster size (default: one worker process per core)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the failed tasks of the store again")
    p.add_argument("--strict", action="store_true",
                   help="exit status 1 when a task failed")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="sweep directory: store, report, work files (default sweeps/BLOCK)")
    for option, blocks in _all_run_options().items():
        p.add_argument(f"--{option.name}", metavar=option.metavar,
                       help=f"{', '.join(blocks)}: {option.help}")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("estimate", help="predict resources and Fmax without synthesis, from a "
                                        "model fitted to sweeps (--fit STORE refits it)")
    _config_args(p, block_nargs="?")
    p.add_argument("--family", default="ecp5", help="FPGA family (default ecp5)")
    p.add_argument("--model", metavar="FILE.json",
                   help="a model written by --fit (default: the one shipped with accelgen)")
    p.add_argument("--fit", nargs="+", metavar="STORE",
                   help="fit the model to these sweep stores (or sweep directories) and "
                        "write it to -o (default estimator.json); needs scikit-learn")
    p.add_argument("-o", "--output", metavar="FILE.json", help="where --fit writes the model")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("run", help="run a quantized ONNX model on the blocks (golden models or "
                                   "RTL), layer by layer against onnxruntime")
    p.add_argument("model", help="quantized ONNX model (QDQ or QOperator format)")
    p.add_argument("--inputs", required=True, metavar="FILE.npz",
                   help="one array per model input (and optionally labels)")
    p.add_argument("--hw", metavar="FILE.toml",
                   help="block configs: one TOML table per block: preset and settings")
    p.add_argument("--hw-preset", action="append", default=[], metavar="BLOCK=PRESET",
                   help="the preset a block runs with (repeatable; over --hw)")
    p.add_argument("--sim", default="golden", help="golden (the golden models, fast) or rtl "
                                                   "(the emitted Verilog on Verilator)")
    p.add_argument("--simulator", default="verilator", help="verilator or icarus (--sim rtl)")
    p.add_argument("--allow-host", action="store_true",
                   help="run operators no block runs on the host (the report marks them)")
    p.add_argument("--reference", default="int8",
                   help="int8 (onnxruntime's fused integer kernels, default) or qdq (its "
                        "optimizations off: each node as ONNX defines it)")
    p.add_argument("--fmax", type=float, metavar="MHZ",
                   help="clock for the latency (default: accelgen estimate's Fmax per config)")
    p.add_argument("--measure-fmax", action="store_true",
                   help="place and route each block config out of context on ECP5 for its "
                        "Fmax (minutes per config)")
    p.add_argument("--seed", type=int, default=0, help="seed of the RTL runs' stream gaps")
    p.add_argument("--build-root", metavar="DIR", help="simulation builds (default build/sim)")
    p.add_argument("-o", "--output", metavar="DIR", help="write report.json and outputs.npz")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("prove", help="prove the block's stream, reset, beat, counter and FIFO "
                                     "properties (SymbiYosys: bounded check + k-induction)")
    _config_args(p)
    p.add_argument("--depth", type=int, metavar="N",
                   help="cycles of the bounded check (default: the block's)")
    p.add_argument("--induction-depth", type=int, metavar="K",
                   help="k of the k-induction (default: the block's)")
    p.add_argument("--mutant", metavar="NAME",
                   help="plant this bug and show that the proof catches it (exit 0 when its "
                        "property family fails)")
    p.add_argument("--timeout", type=float, default=1800, metavar="SECONDS",
                   help="per solver run (default 1800)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="proof files and traces (default build/prove/<block>_<preset>)")
    p.set_defaults(func=cmd_prove)

    p = sub.add_parser("faults", help="soft-error campaign: single-bit upsets in the emitted "
                                      "RTL's flip-flops and memories, classified against the "
                                      "golden model")
    _config_args(p)
    p.add_argument("--campaign", type=int, default=1000, metavar="N",
                   help="faults to inject, one per run (default 1000)")
    p.add_argument("--beats", type=int, default=200, metavar="N",
                   help="payload beats of the workload (default 200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the workload and the faults")
    p.add_argument("--simulator", default="verilator", help="verilator (default) or icarus")
    p.add_argument("--protect", action="append", default=[], metavar="KIND",
                   help="harden the netlist first: tmr, dmr or reg-parity (registers), "
                        "parity or secded (memory words); repeatable")
    p.add_argument("--selective", action="store_true",
                   help="protect only the most vulnerable registers: an unprotected campaign "
                        "runs first and picks them")
    p.add_argument("--coverage", type=float, metavar="SHARE",
                   help="--selective: the share of the registers' corruptions and hangs the "
                        "chosen registers account for (default 0.9)")
    p.add_argument("--area", action="store_true",
                   help="also synthesize for ECP5: unprotected, protected and lock-step "
                        "duplication, with the overheads")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="registers listed in the vulnerability table (default 10)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="builds and campaign.json (default build/faults/<block>_<preset>)")
    p.set_defaults(func=cmd_faults)
    return parser


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def _stop_children():
    """After an interrupt: end the tools this process started (a simulator build's make and
    compilers, nextpnr) when it leads its own process group, as it does when started from a
    shell; otherwise they would run on after the command has returned."""
    if os.getpgrp() != os.getpid():
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    handlers = None
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        args = _parser().parse_args(argv)
        if getattr(args, "cycles", 1) < 1:
            raise ConfigError(f"--cycles: {args.cycles} is not allowed; expected at least 1")
        if not 0 <= getattr(args, "seed", 0) < 2 ** 32:
            raise ConfigError(f"--seed: {args.seed} is not allowed; expected 0 to 2**32 - 1")
        return args.func(args) or 0
    except ConfigError as err:
        print(f"accelgen: error: {err}", file=sys.stderr)
        return 2
    except ToolError as err:
        print(f"accelgen: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader of stdout went away (``accelgen show ... | head``): stop quietly, and
        # keep Python from failing again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        _stop_children()
        print("accelgen: interrupted", file=sys.stderr)
        return 130
    finally:
        if handlers is not None:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            if argv is None:
                # As the command itself, the work is done: a Ctrl-C from here on (e.g. while
                # objects are finalized at exit) ends the process with SIGINT's status instead
                # of being swallowed as "Exception ignored" with status 0.
                signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
