"""A sweep's results as rows, its Pareto front, and its report: ``report.html`` (one
self-contained file: a table sortable by any column with the Pareto-optimal points marked, the
plots embedded) and the PNGs beside it (``pareto.png``: the front of the chosen objectives;
``param_<key>.png``: each measured value against each swept parameter).

Everything here reads the store only, so ``accelgen sweep report DIR`` redraws a report at any
time, also while the sweep runs or after it was killed.
"""

import base64
import html
import json
import math
import os
from pathlib import Path

from ..generators.base import close_matches
from ..numerics import ConfigError
from ..outputs import write_atomic
from .metrics import METRICS, derived_values

__all__ = ["parse_objectives", "check_objectives", "default_objectives", "sweep_rows",
           "pareto_front", "write_report", "STATIC_VALUES"]

#: the values each metric always gives (``cycles`` and ``sim`` also give block figures:
#: ``model_<figure>``, ``<testcase>_<figure>``)
STATIC_VALUES = {"resources": ("lut4", "carry", "ff", "dsp", "bram"),
                 "fmax": ("fmax_mhz",),
                 "errors": ("err_max", "err_mean", "err_bias"),
                 "cycles": (),
                 "sim": ("sim_passed", "sim_cycles", "sim_cycles_per_s")}
#: derived values and the metrics they need
DERIVED = {"macs_per_cycle": (), "gmacs": ("fmax",), "macs_per_cycle_per_lut": ("resources",),
           "macs_per_cycle_per_dsp": ("resources",)}


def parse_objectives(text):
    """``"min:lut4,max:gmacs"`` → ``(("min", "lut4"), ("max", "gmacs"))``."""
    out = []
    for item in str(text).split(","):
        sense, sep, name = item.strip().partition(":")
        if not sep or sense not in ("min", "max") or not name.strip():
            raise ConfigError(f"--objectives: {item.strip()!r} is not allowed; expected "
                              f"min:VALUE or max:VALUE, e.g. min:lut4,max:gmacs")
        out.append((sense, name.strip()))
    names = [n for _, n in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"--objectives: {text!r} names a value twice; each once")
    return tuple(out)


def _available(metrics, multiplies):
    names = [v for m in metrics for v in STATIC_VALUES[m]]
    if multiplies:
        # resources from an out-of-context fmax count too (its task also synthesizes)
        have = set(metrics) | ({"resources"} if "fmax" in metrics else set())
        names += [d for d, need in DERIVED.items() if set(need) <= have]
    return names


def check_objectives(objectives, metrics, multiplies):
    """Each objective must name a value the chosen ``metrics`` give (``model_*`` with
    ``cycles``; with ``sim``, its testcase figures are known only once it ran)."""
    names = _available(metrics, multiplies)
    for _, name in objectives:
        if name in names or (name.startswith("model_") and "cycles" in metrics):
            continue
        if "sim" in metrics and not any(name in v for v in STATIC_VALUES.values()) \
                and name not in DERIVED:
            continue
        raise ConfigError(f"--objectives: {name!r} is not a value of --metrics "
                          f"{','.join(metrics)}; allowed are {', '.join(names)}"
                          f"{close_matches(name, names)}")
    return objectives


def default_objectives(metrics, multiplies):
    """Objectives when none are given: the smallest design (LUT4) against the fastest
    (GMAC/s, or Fmax, or MACs/cycle) or the most accurate (max error)."""
    names = _available(metrics, multiplies)
    cost = [("min", "lut4")] if "lut4" in names else []
    if "cycles" in metrics:         # the analytic model's answer: the fewest cycles
        names.append("model_cycles")
    for sense, name in (("max", "gmacs"), ("max", "fmax_mhz"), ("min", "err_max"),
                        ("min", "model_cycles"), ("max", "macs_per_cycle")):
        if name in names:
            return tuple(cost + [(sense, name)])
    return tuple(cost)


# -- rows -------------------------------------------------------------------------------------

def sweep_rows(spec, store, metrics, idents=None):
    """One dict per point of ``store`` (in the order added; only those of ``idents``, the
    last sweep's, when given): ``point`` (label), ``params``, ``digest``, ``status`` (``ok``,
    ``failed``, ``invalid`` or ``pending``), ``values`` (measured and derived), ``failures``
    and ``logs`` (metric → reason / log path)."""
    points = store.points()
    if idents is not None:
        wanted = set(idents)
        points = [p for p in points if p["ident"] in wanted]
    records = store.records([k for p in points for k in p["keys"].values()])
    rows = []
    for p in points:
        params = {k: v for k, v in p["params"]}
        label = " ".join(f"{k}={_text(v)}" for k, v in p["params"]) or "base"
        row = {"point": label, "params": params, "digest": p["digest"], "values": {},
               "failures": {}, "logs": {}, "seconds": 0.0}
        if p["reason"]:
            row.update(status="invalid", failures={"config": p["reason"]})
            rows.append(row)
            continue
        config = None
        missing = any(records.get(p["keys"].get(m)) is None for m in metrics)
        # every record of the point: an out-of-context fmax task's synthesis too
        for metric, key in p["keys"].items():
            rec = records.get(key)
            if rec is None:
                continue
            config = config or rec["config"]
            row["seconds"] += rec["seconds"]
            if rec["status"] == "ok":
                row["values"].update(rec["values"])
            else:
                row["failures"][metric] = rec["reason"]
            if rec["log"]:
                row["logs"][metric] = rec["log"]
        if config is not None:
            row["values"].update(derived_values(spec.config_cls.from_dict(config),
                                                row["values"]))
        row["status"] = "failed" if row["failures"] else "pending" if missing else "ok"
        row["seconds"] = round(row["seconds"], 2)
        rows.append(row)
    return rows


def _text(value):
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _number(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def pareto_front(rows, objectives):
    """Indices of the rows not dominated on ``objectives`` (among the rows that have a number
    for every objective): no other row is at least as good in all and better in one."""
    if not objectives:
        return []
    scored = []
    for i, row in enumerate(rows):
        vals = [_number(row["values"].get(name)) for _, name in objectives]
        if None in vals:
            continue
        scored.append((i, [v if sense == "min" else -v
                           for (sense, _), v in zip(objectives, vals)]))
    if not scored:
        return []
    import numpy as np
    costs = np.array([c for _, c in scored])
    front = []
    for row, (i, a) in enumerate(scored):   # numpy per row: 10,000 points in about a second
        dominated = np.all(costs <= a, axis=1) & np.any(costs < a, axis=1)
        dominated[row] = False
        if not dominated.any():
            front.append(i)
    return front


def value_columns(rows):
    """Every value name in the rows, in first-seen order."""
    seen = {}
    for row in rows:
        for name in row["values"]:
            seen.setdefault(name, None)
    return list(seen)


# -- plots ------------------------------------------------------------------------------------

def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    """Write the PNG under a temporary name, then rename it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(temporary, format="png", dpi=90, metadata={"Software": None})
    os.replace(temporary, path)


def plot_pareto(rows, objectives, front, path, title):
    """Scatter of the first two objectives (or the one objective against the point number),
    the front marked and joined. Returns the path, or None without matplotlib or numbers."""
    plt = _pyplot()
    pts = [(i, [_number(r["values"].get(n)) for _, n in objectives[:2]])
           for i, r in enumerate(rows)]
    pts = [(i, v) for i, v in pts if None not in v]
    if plt is None or not pts or not objectives:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    if len(objectives) == 1:
        xs = [i for i, _ in pts]
        ax.scatter(xs, [v[0] for _, v in pts], c="0.6", label="points")
        ax.scatter([i for i in front], [_number(rows[i]["values"][objectives[0][1]])
                                        for i in front], c="tab:red", label="best")
        ax.set_xlabel("point")
        ax.set_ylabel(f"{objectives[0][1]} ({objectives[0][0]})")
    else:
        ax.scatter([v[0] for _, v in pts], [v[1] for _, v in pts], c="0.6", label="points")
        fpts = sorted((_number(rows[i]["values"][objectives[0][1]]),
                       _number(rows[i]["values"][objectives[1][1]])) for i in front)
        ax.plot([x for x, _ in fpts], [y for _, y in fpts], "o-", c="tab:red",
                label="Pareto front")
        ax.set_xlabel(f"{objectives[0][1]} ({objectives[0][0]})")
        ax.set_ylabel(f"{objectives[1][1]} ({objectives[1][0]})")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def plot_parameter(rows, key, columns, path, title):
    """Each value column against the swept parameter ``key`` (one panel per column)."""
    plt = _pyplot()
    if plt is None or not columns:
        return None
    levels = []
    for row in rows:
        text = _text(row["params"].get(key))
        if text not in levels:
            levels.append(text)
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 2.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, columns):
        xs, ys = [], []
        for row in rows:
            y = _number(row["values"].get(name))
            if y is not None:
                xs.append(levels.index(_text(row["params"].get(key))))
                ys.append(y)
        ax.scatter(xs, ys, s=14)
        ax.set_xticks(range(len(levels)), levels, fontsize=7, rotation=20)
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: against {key}", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


# -- HTML -------------------------------------------------------------------------------------

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#eee;cursor:pointer;position:sticky;top:0}td.n{text-align:right}
tr.pareto td{background:#fff3d6}tr.invalid td,tr.failed td{color:#a00}
img{max-width:100%;margin:0.5em 0;border:1px solid #ddd}"""

_SCRIPT = """function sortBy(th){const t=th.closest('table'),i=[...th.parentNode.children]
.indexOf(th),b=t.tBodies[0],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const rows=[...b.rows];rows.sort((x,y)=>{const a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;
const p=parseFloat(a),q=parseFloat(c);let r;if(!isNaN(p)&&!isNaN(q))r=p-q;
else if(isNaN(p)&&isNaN(q))r=(a||'').localeCompare(c||'');else r=isNaN(p)?1:-1;
return asc?r:-r});rows.forEach(r=>b.appendChild(r))}"""


def _cell(value):
    num = _number(value)
    if num is not None:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        return f'<td class="n" data-v="{num!r}">{html.escape(shown)}</td>'
    text = "" if value is None else _text(value)
    return f'<td data-v="{html.escape(text, quote=True)}">{html.escape(text)}</td>'


def render_html(title, summary, rows, objectives, front, images):
    """The report page (a string): summary lines, plots (``[(caption, png bytes)]``) and the
    sortable table."""
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    columns = value_columns(rows)
    head = (["pareto", "status", *keys, *columns, "seconds", "why not ok"])
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{_STYLE}</style>",
           f"<script>{_SCRIPT}</script>", "</head>", "<body>",
           f"<h1>{html.escape(title)}</h1>", "<ul>"]
    out += [f"<li>{html.escape(line)}</li>" for line in summary]
    out.append("</ul>")
    for caption, data in images:
        out.append(f'<figure><img alt="{html.escape(caption, quote=True)}" '
                   f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                   f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append('<table id="points">')
    out.append("<thead><tr>" + "".join(f'<th onclick="sortBy(this)">{html.escape(h)}</th>'
                                       for h in head) + "</tr></thead>")
    out.append("<tbody>")
    front = set(front)
    for i, row in enumerate(rows):
        cls = "pareto" if i in front else row["status"]
        why = "; ".join(f"{m}: {r}" for m, r in row["failures"].items())
        cells = [_cell("\u2605" if i in front else ""), _cell(row["status"])]
        cells += [_cell(row["params"].get(k)) for k in keys]
        cells += [_cell(row["values"].get(c)) for c in columns]
        cells += [_cell(row["seconds"]), _cell(why)]
        out.append(f'<tr class="{cls}" data-point="{html.escape(row["point"], quote=True)}">'
                   + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _plot_columns(rows, objectives):
    """The value columns worth a panel: the objectives first, then every column whose value
    varies across the points (at most 12)."""
    columns = [n for _, n in objectives]
    for name in value_columns(rows):
        nums = {_number(r["values"].get(name)) for r in rows} - {None}
        if name not in columns and len(nums) > 1:
            columns.append(name)
    return columns[:12]


def write_report(spec, store, directory, *, metrics, objectives, title=None, idents=None):
    """Write ``report.html`` and the PNGs of the points ``idents`` (default: all) into
    ``directory``; returns ``(html path, [png paths], rows, front)``."""
    directory = Path(directory)
    rows = sweep_rows(spec, store, metrics, idents)
    for stale in directory.glob("param_*.png"):     # of parameters no longer swept
        stale.unlink(missing_ok=True)
    front = pareto_front(rows, objectives)
    title = title or f"accelgen sweep: {spec.name}"
    pngs, images = [], []
    path = plot_pareto(rows, objectives, front, directory / "pareto.png", title)
    if path is not None:
        pngs.append(path)
        images.append((f"Pareto front: {', '.join(f'{s} {n}' for s, n in objectives)}",
                       path.read_bytes()))
    columns = _plot_columns(rows, objectives)
    for key in dict.fromkeys(k for r in rows for k in r["params"]):
        safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in key)
        path = plot_parameter(rows, key, columns, directory / f"param_{safe}.png", title)
        if path is not None:
            pngs.append(path)
            images.append((f"measured values against {key}", path.read_bytes()))
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "invalid",
                                                                "pending")}
    summary = [f"{len(rows)} points: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
               f"metrics: {', '.join(metrics)} "
               f"({'; '.join(METRICS[m].summary for m in metrics)})",
               "objectives: " + (", ".join(f"{s} {n}" for s, n in objectives) or "none")
               + f"; {len(front)} Pareto-optimal points (marked \u2605)"]
    if not images:
        summary.append("no plots: matplotlib is not installed (pip install 'accelgen[plot]') "
                       "or no point has numbers yet")
    report = directory / "report.html"
    write_atomic(report, render_html(title, summary, rows, objectives, front, images))
    return report, pngs, rows, front
