"""Benchmark of block ``pim``: epoch cycles, MAC efficiency (plain vs overlapped dual row
buffers), RTL cycles against the analytic cycle model over a GEMV sweep, the cost of refresh,
and FPGA resources and Fmax.

Sections (all by default; pick some with ``--only epochs,sweep,refresh,fpga``):

``epochs``   one all-bank epoch (ACT_AB, MAC_ABK of c columns, PRE_AB) with AiM timing:
             pim.md's closed form, the cycle model and the RTL (controller alone, Amaranth
             simulator) for c = 1, 8, 16, 32, 64.
``sweep``    GEMV y = W x (weights resident) for N x K = {1024, 4096, 16384} x {256, 512,
             1024}, plain and overlapped, AiM timing and geometry (16 banks, 64 columns of 32
             bytes, rows as needed), refresh off: cycles of the cycle model and of the RTL
             (the controller alone on Verilator, cocotb ``gemv`` testcase: every command's
             cycle is compared with the model's), MAC efficiency = MACs x tCCD_L / (banks x
             lanes x cycles). Targets: plain 57 % (the published design), overlapped >= 90 %.
``refresh``  the same GEMV 4096 x 1024 with refresh on: cycles, REF count, the overhead
             against refresh off, and the cycle model's refresh budget.
``fpga``     ``accelgen build`` (self-checking harness, nextpnr) of the default channel and
             the controller alone on the ULX3S-85F (ECP5-85F) and of the tiny channel on the
             icebreaker (iCE40 UP5K): resources and Fmax.

    .venv/bin/python benchmarks/pim.py [--only sweep] [--quick] [--json]
"""

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from accelgen.generators.registry import REGISTRY
from report import print_results, say
from accelgen.sim.golden.pim import Instr, Model
from accelgen.sim.golden.pim_cycles import mac_efficiency, refresh_budget, schedule
from accelgen.sim.golden.pim_gemv import gemv_program, layout

SPEC = REGISTRY["pim"]
AIM = SPEC.presets["gddr6-aim"]
NS, KS = (1024, 4096, 16384), (256, 512, 1024)



def model_gemv(config, n, k, mode, bias=False):
    """``(cycles, efficiency)`` of the cycle model for the GEMV program of ``n x k`` (``y = W
    x``, or with ``bias`` ``+ b``)."""
    lay = layout(config, n, k)
    rng = np.random.default_rng(0)
    b = rng.integers(-1000, 1000, n) if bias else None
    run, _ = gemv_program(lay, rng.integers(-128, 128, k), b, mode=mode)
    steps = Model(config).program(run)
    cycles = schedule(config, run, steps).programs[-1]["cycles"]
    return cycles, mac_efficiency(config, sum(s.macs for s in steps), cycles)


def epochs(root, quick):
    from accelgen.hdl.pim import Pim
    from accelgen.sim.golden.pim_program import Expected
    from accelgen.sim.payload import unpack
    from accelgen.sim.pysim import run_streams
    cfg = replace(AIM, refresh=False, controller_only=True)
    rows = []
    for c in (1, 8, 16, 32, 64):
        prog = [Instr("ACT_AB", row=1), Instr("MAC_ABK", count=c), Instr("PRE_AB"),
                Instr("EOC")]
        exp = Expected(cfg, prog)
        outs, _ = run_streams(Pim(cfg), {"cmd": exp.cmd_words}, {"rsp": 1})
        rtl = int(unpack(cfg.rsp_fields, outs["rsp"])["cycles"][0])
        rows.append({"columns": c, "pim.md": cfg.timing.epoch_cycles(c),
                     "model": exp.schedule.programs[0]["cycles"], "rtl": rtl,
                     "mac_bus_busy": f"{c * cfg.timing.tCCD_L}/{rtl}",
                     "efficiency": c * cfg.timing.tCCD_L / rtl})
        say(f"  epoch {rows[-1]}")
    return rows


def _rtl_gemv(config, n, k, mode, root):
    from accelgen.sim.runner import simulate
    res = simulate(SPEC, config, preset="gddr6-aim", testcases=["gemv"],
                   options={"gemv": f"{n}x{k}", "mode": mode}, build_root=Path(root) / "sim",
                   allow_large=True)
    case = res.result["testcases"]["gemv"]
    return res.passed, case


def _sweep_config(ns, ks):
    """AiM geometry with rows enough for every shape, the controller alone, refresh off."""
    big = replace(AIM, rows=65536)
    rows = max(layout(big, n, k).rows_used for n in ns for k in ks)
    return replace(AIM, rows=max(AIM.rows, rows), refresh=False, controller_only=True)


def sweep(root, quick):
    ns, ks = ((1024, 4096), (256, 1024)) if quick else (NS, KS)
    cfg = _sweep_config(ns, ks)
    rows = []
    for n in ns:
        for k in ks:
            for mode in ("plain", "overlap"):
                t0 = time.monotonic()
                model, eff = model_gemv(cfg, n, k, mode)
                biased, eff_b = model_gemv(cfg, n, k, mode, bias=True)
                passed, case = _rtl_gemv(cfg, n, k, mode, root)
                rows.append({"N x K": f"{n}x{k}", "mode": mode, "model cycles": model,
                             "rtl cycles": case.get("cycles"),
                             "equal": case.get("cycles") == model,
                             "mac efficiency": eff, "rtl efficiency": case.get("mac_efficiency"),
                             "with bias (model)": f"{biased} ({100 * eff_b:.1f} %)",
                             "violations": case.get("timing_violations"), "passed": passed,
                             "seconds": round(time.monotonic() - t0)})
                say(f"  sweep {rows[-1]}")
    return rows


def refresh(root, quick):
    n, k = (1024, 1024) if quick else (4096, 1024)
    off = _sweep_config([n], [k])
    on = replace(off, refresh=True)
    rows = []
    for mode in ("plain", "overlap"):
        model, _ = model_gemv(off, n, k, mode)
        _, case_off = _rtl_gemv(off, n, k, mode, root)
        passed, case_on = _rtl_gemv(on, n, k, mode, root)
        extra = case_on["cycles"] - case_off["cycles"]
        rows.append({"N x K": f"{n}x{k}", "mode": mode, "cycles (refresh off)":
                     case_off["cycles"], "cycles (refresh on)": case_on["cycles"],
                     "REF": case_on["refreshes"], "overhead": extra / case_off["cycles"],
                     "model budget": refresh_budget(on, model),
                     "efficiency on": case_on["mac_efficiency"],
                     "violations": case_on["timing_violations"], "passed": passed})
        say(f"  refresh {rows[-1]}")
    return rows


def fpga(root, quick):
    from accelgen.fpga.flow import build
    runs = [("default channel", "ulx3s-85f", SPEC.presets["default"], "default"),
            ("controller alone", "ulx3s-85f", replace(SPEC.presets["default"],
                                                      controller_only=True), "default"),
            ("tiny channel", "icebreaker", SPEC.presets["tiny"], "tiny")]
    if quick:
        runs = runs[2:]
    rows = []
    for what, board, cfg, preset in runs:
        t0 = time.monotonic()
        rep = build(SPEC, cfg, board, Path(root) / f"build-{board}-{cfg.digest()}",
                    preset=preset)
        res = {k: v for k, v in rep.resources.items() if k != "cells"}
        rows.append({"design": what, "board": board, "fmax_mhz": rep.fmax_mhz,
                     **{k: f"{v[0]}/{v[1]}" if isinstance(v, (list, tuple)) else v
                        for k, v in res.items()},
                     "selfcheck": rep.selfcheck_passed,
                     "seconds": round(time.monotonic() - t0)})
        say(f"  fpga {rows[-1]}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="epochs,sweep,refresh,fpga",
                        help="comma-separated sections: epochs, sweep, refresh, fpga")
    parser.add_argument("--quick", action="store_true", help="fewer shapes and designs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--root", default="build/bench-pim", help="work directory")
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    sections = {"epochs": epochs, "sweep": sweep, "refresh": refresh, "fpga": fpga}
    results = {}
    for name in args.only.split(","):
        say(f"[{name}]")
        results[name] = sections[name.strip()](root, args.quick)
    print_results(results, as_json=args.json, digits=3)


if __name__ == "__main__":
    main()
