"""Benchmark of block ``mac``: resources, Fmax and MACs/cycle per precision mode, as ratios
against a plain one-mode INT8 MAC built by the same flow.

For every design and FPGA family it runs ``accelgen.fpga.flow.synth`` on the block alone
(LUT4 / carry / FF / DSP) and ``accelgen.fpga.flow.build`` on the self-checking harness around
it (nextpnr Fmax, with the block's operands and results registered). Then, for each mode the
design carries, it prints MACs/cycle, MACs/cycle per LUT4 and per DSP and those two divided by
the baseline's (``int8`` preset: 4 plain lanes, INT8 only), plus GMAC/s at Fmax.

    .venv/bin/python benchmarks/mac.py            # baseline + presets + one-mode fused builds
    .venv/bin/python benchmarks/mac.py --quick    # baseline and the default preset only
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from accelgen.fpga.flow import build, synth
from accelgen.generators.registry import REGISTRY
from accelgen.tools import ToolError

SPEC = REGISTRY["mac"]
BOARDS = {"ecp5": "ulx3s-85f", "ice40": "icebreaker"}
BASELINE = "int8"


def designs(quick):
    presets = SPEC.presets
    out = {BASELINE: presets[BASELINE], "default": presets["default"]}
    if quick:
        return out
    out["plain_mixed"] = presets["plain_mixed"]
    out["w4a8"] = presets["w4a8"]
    for mode in presets["default"].modes:        # what one mode costs without the others
        out[f"fused-{mode}"] = replace(presets["default"], modes=(mode,))
    return out


def measure(name, config, family, root):
    """Resources of the block alone and Fmax of the harness build (None if it does not fit)."""
    out = root / f"{name}_{family}"
    t0 = time.monotonic()
    resources = synth(SPEC, config, family, out / "synth").resources
    fmax, note = None, ""
    try:
        fmax = build(SPEC, config, BOARDS[family], out / "build").fmax_mhz
    except ToolError as err:
        note = f"build failed: {str(err).split(';')[0]}"
    print(f"  {name:<14} {family:<6} {time.monotonic() - t0:6.1f} s {note}", file=sys.stderr)
    return {"resources": {k: v for k, v in resources.items() if k != "cells"},
            "fmax_mhz": fmax, "note": note}


def ratio(x, base):
    if base in (None, 0) or x is None:
        return None
    return x / base


def rows_for(results, configs, families):
    rows = []
    for family in families:
        base = results[(BASELINE, family)]
        base_macs = configs[BASELINE].macs_per_cycle["s8s8"]
        base_per_lut = base_macs / base["resources"]["LUT4"]
        base_per_dsp = base_macs / base["resources"]["DSP"] if base["resources"]["DSP"] else None
        for name, cfg in configs.items():
            res = results[(name, family)]
            r = res["resources"]
            for mode, macs in cfg.macs_per_cycle.items():
                per_lut = macs / r["LUT4"]
                per_dsp = macs / r["DSP"] if r["DSP"] else None
                rows.append({
                    "design": name, "mode": mode, "family": family,
                    "LUT4": r["LUT4"], "carry": r["carry"], "FF": r["FF"], "DSP": r["DSP"],
                    "fmax_mhz": res["fmax_mhz"], "macs_per_cycle": macs,
                    "macs_per_klut": 1000 * per_lut,
                    "per_lut_vs_int8": ratio(per_lut, base_per_lut),
                    "per_dsp_vs_int8": ratio(per_dsp, base_per_dsp) if per_dsp else None,
                    "gmacs": macs * res["fmax_mhz"] / 1000 if res["fmax_mhz"] else None,
                    "note": res["note"]})
    return rows


def _fmt(v, spec="{:.2f}"):
    if v is None:
        return "-"
    return spec.format(v) if isinstance(v, float) else str(v)


def print_table(rows):
    head = ("design", "mode", "family", "LUT4", "carry", "FF", "DSP", "Fmax MHz", "MAC/cyc",
            "MAC/cyc/kLUT", "perLUT x int8", "perDSP x int8", "GMAC/s")
    keys = ("design", "mode", "family", "LUT4", "carry", "FF", "DSP", "fmax_mhz",
            "macs_per_cycle", "macs_per_klut", "per_lut_vs_int8", "per_dsp_vs_int8", "gmacs")
    table = [head] + [tuple(_fmt(r[k]) for k in keys) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for n, row in enumerate(table):
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    print("\nperDSP x int8 '-' : the design uses no DSP (its MACs come from LUTs).")
    print("Fmax '-' : the harness build did not fit or failed (see the note in --json).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="baseline and default preset only")
    parser.add_argument("--family", choices=sorted(BOARDS), action="append",
                        help="limit to one family (repeatable)")
    parser.add_argument("--out", default="build/bench_mac", help="build directory")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    families = args.family or list(BOARDS)
    configs = designs(args.quick)
    root = Path(args.out)
    results = {(name, fam): measure(name, cfg, fam, root)
               for fam in families for name, cfg in configs.items()}
    rows = rows_for(results, configs, families)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
