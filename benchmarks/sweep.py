"""accelgen sweep and accelgen estimate, measured.

``speed``      wall time of one 24-point synthesis sweep (mac tiny: lanes x pipeline x
               acc_width, ECP5 yosys) run three ways, each into a new directory: a plain loop
               calling the task function in this process (no engine), a LocalCluster of one
               worker, and a LocalCluster of two (this machine's cores); the speed-up of two
               workers over the loop, and the engine's overhead per point ((one worker - loop)
               / points).
``data``       the training sweeps of the shipped estimator (resources and Fmax out of context
               on ECP5 around the presets; about 40 minutes on 2 cores) into ``--data DIR``.
``estimator``  the estimator fitted to the stores in ``--data DIR``: held-out MAPE per block
               and value (25 % of each block's points held out, seeded) of ridge, gradient
               boosting and 3-nearest neighbours on the same features and split, and of the
               shipped choice (the kind 5-fold cross-validation on the other points picked),
               and the time of one prediction.

    .venv/bin/python benchmarks/sweep.py --only speed
    .venv/bin/python benchmarks/sweep.py --only data,estimator --data build/estimator
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from accelgen.cli import main as accelgen
from accelgen.explore import estimate as est
from accelgen.explore.metrics import SweepContext, run_task
from accelgen.explore.space import build_point, grid_points, parse_grid
from accelgen.generators.registry import REGISTRY

SPEED_GRID = ["lanes=[1, 2, 3, 4]", "pipeline=[0, 1, 2]", "acc_width=[24, 32]"]

#: (block, preset, grid): the neighbourhoods of the presets the shipped estimator is fitted to
TRAINING = [
    ("mac", "default", ["lanes=[1, 2, 4, 8]", "pipeline=[1, 3, 7]",
                        'modes=[["s8s8"], ["s8s8", "s4s4"], ["s8s8", "u8s8", "s8s4", "s4s4", '
                        '"s8s2", "s4s2", "s2s2"]]', 'multiplier=["plain", "fused"]']),
    ("mac", "fp8", ["lanes=[1, 2, 4, 8]", "pipeline=[1, 3, 5]"]),
    ("activation", "default", ['function=["gelu", "silu", "sigmoid", "tanh"]',
                               'backend=["table", "pwl"]', "segments=[8, 16, 32]",
                               "lanes=[1, 2, 4]"]),
    ("softmax", "default", ["n_max=[32, 128, 512]", "exp_segments=[8, 16, 32]",
                            'recip=["table", "pwl"]', "newton=[true, false]"]),
    ("cast", "default", ['source=["fp32", "bf16"]', 'target=["e4m3", "e5m2", "bf16", "e2m1"]',
                         "lanes=[1, 2, 4, 8]"]),
    ("pim", "tiny", ["banks=[2, 4, 8]", "columns=[16, 32, 64]", "acc_width=[24, 32]"]),
    ("systolic", "tiny", ["rows=[2, 4, 6, 8]", "cols=[2, 4, 8]",
                          'dataflows=[["os"], ["os", "ws"]]']),
]


def _quiet(argv):
    """Run the CLI with its stdout and stderr discarded; returns the exit status."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return accelgen(argv)


def speed(tmp):
    spec = REGISTRY["mac"]
    axes = parse_grid(SPEED_GRID, spec, spec.presets["tiny"])
    points = [build_point(spec, p, preset="tiny") for p in grid_points(axes)]
    context = SweepContext(family="ecp5", preset="tiny")
    from accelgen.fpga.flow import warm_cache
    warm_cache()
    t0 = time.monotonic()
    for i, point in enumerate(points):
        run_task("mac", point.config.to_dict(), "resources", context, str(tmp / f"loop{i}"))
    loop = time.monotonic() - t0
    times = {}
    for workers in (1, 2):
        out = tmp / f"w{workers}"
        t0 = time.monotonic()
        status = _quiet(["sweep", "mac", "--preset", "tiny", *sum((["--grid", g]
                                                                    for g in SPEED_GRID), []),
                         "--family", "ecp5", "--workers", str(workers), "-o", str(out)])
        times[workers] = time.monotonic() - t0
        assert status == 0, f"the sweep of {workers} worker(s) failed"
    n = len(points)
    print(f"speed: {n}-point synthesis sweep (mac tiny, ECP5), wall time")
    print(f"  plain loop in this process     {loop:7.1f} s   ({loop / n:.2f} s/point)")
    print(f"  LocalCluster, 1 worker         {times[1]:7.1f} s")
    print(f"  LocalCluster, 2 workers        {times[2]:7.1f} s")
    print(f"  speed-up of 2 workers over the loop      {loop / times[2]:.2f}x")
    print(f"  speed-up of 2 workers over 1 worker      {times[1] / times[2]:.2f}x")
    print(f"  engine overhead per point (1 worker - loop) / {n}: "
          f"{(times[1] - loop) / n:.2f} s (cluster start, planning, store, report included)")


def data(directory):
    directory.mkdir(parents=True, exist_ok=True)
    for block, preset, grid in TRAINING:
        out = directory / f"{block}-{preset}"
        t0 = time.monotonic()
        status = _quiet(["sweep", block, "--preset", preset,
                         *sum((["--grid", g] for g in grid), []), "--family", "ecp5",
                         "--metrics", "resources,fmax", "-o", str(out)])
        print(f"data: {block} {preset}: exit {status}, {time.monotonic() - t0:.0f} s -> {out}")


def _knn_mape(train, test, target):
    import numpy as np
    from sklearn.neighbors import KNeighborsRegressor
    names = sorted({n for f, _ in train for n in f})
    x, mean, scale = est._design([f for f, _ in train], names)
    model = KNeighborsRegressor(n_neighbors=3).fit(x, np.log1p([v[target] for _, v in train]))
    xt, _, _ = est._design([f for f, _ in test], names, mean, scale)
    return est.mape([v[target] for _, v in test], np.expm1(model.predict(xt)))


def _kind_mape(kind, train, test, target):
    model = est._fit_one([f for f, _ in train], [v[target] for _, v in train], kind)
    return est.mape([v[target] for _, v in test], [est._apply(model, f) for f, _ in test])


def estimator(directory):
    stores = sorted(p for p in directory.iterdir() if (p / "results.sqlite").exists())
    samples = est.samples_from_stores(stores)
    fitted = est.fit_models(samples)
    print(f"estimator: held-out MAPE (%), {int(est.HOLDOUT * 100)} % of each block's points "
          f"held out (seed 1) of both the choice and the fit; 'shipped' is the regressor that "
          f"5-fold cross-validation on the other points chose")
    print(f"  {'block':<11}{'value':<10}{'points':>7}{'ridge':>8}{'boosting':>10}{'3-NN':>7}"
          f"{'shipped':>9}  kind")
    summary = {}
    for (block, family), points in sorted(samples.items()):
        for target, model in fitted[block][family]["targets"].items():
            have = [(f, v) for f, v in points if v.get(target) is not None]
            held = est.held_out(len(have), 1)
            train = [p for i, p in enumerate(have) if i not in held]
            test = [p for i, p in enumerate(have) if i in held]
            shipped = (model.get("holdout") or {}).get("mape")
            cells = [_kind_mape("ridge", train, test, target),
                     _kind_mape("boosting", train, test, target),
                     _knn_mape(train, test, target)]
            print(f"  {block:<11}{target:<10}{len(have):>7}{_pct(cells[0]):>8}"
                  f"{_pct(cells[1]):>10}{_pct(cells[2]):>7}{_pct(shipped):>9}  "
                  f"{model['kind']}")
            summary.setdefault(target, []).append(shipped)
    print("  median of the shipped model over blocks: " + ", ".join(
        f"{t} {_pct(statistics.median([v for v in vals if v is not None]))} %"
        for t, vals in summary.items() if any(v is not None for v in vals)))
    model = {"models": fitted}
    for block in ("mac", "systolic"):
        if block in fitted:
            config = REGISTRY[block].presets["default"]
            t0 = time.perf_counter()
            for _ in range(100):
                est.predict(model, block, config, "ecp5")
            print(f"  one prediction ({block}, every value): "
                  f"{(time.perf_counter() - t0) * 10:.2f} ms")


def _pct(value):
    return "-" if value is None else f"{value:.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="speed,estimator",
                    help="comma-separated sections: speed, data, estimator")
    ap.add_argument("--data", type=Path, default=Path("build/estimator"),
                    help="directory of the training sweeps (data writes, estimator reads)")
    args = ap.parse_args(argv)
    sections = args.only.split(",")
    tmp = Path(tempfile.mkdtemp(dir=Path.cwd(), prefix="bench-sweep-"))
    try:
        if "speed" in sections:
            speed(tmp)
        if "data" in sections:
            data(args.data)
        if "estimator" in sections:
            estimator(args.data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
