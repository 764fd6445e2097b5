"""Benchmark of ``accelgen faults``: soft-error campaigns per block, unprotected and with each
protection, and what each protection costs on ECP5 next to lock-step duplication.

Sections (all by default; pick some with ``--only campaigns,area``):

``campaigns``  per block (``--preset``, default tiny) and protection (none, tmr, dmr,
               parity, secded, and selective tmr and reg-parity: the registers behind 90 %
               of the unprotected campaign's register corruptions and hangs): ``--faults``
               single-bit upsets
               (default 10,000), the rates of silent data corruption, hang, detection and
               masking with Wilson 95 % intervals, and the detection coverage (detected /
               (detected + sdc + hang)); then the protections that are settings of a
               block (:data:`SETTINGS`, e.g. ``systolic`` with ``abft``), each a campaign
               of its config over the preset.
``area``       ECP5 LUT4 / FF / BRAM of each variant and the overhead over the unprotected
               block, next to lock-step duplication (two copies, outputs compared); a
               setting's row is its config's unprotected block, its overhead over the
               preset's.

    .venv/bin/python benchmarks/faults.py [--only campaigns] [--blocks mac,cast]
                                          [--faults 10000] [--json]
"""

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from accelgen.faults.area import area_report, overhead
from accelgen.faults.campaign import run_campaign, select_vulnerable
from accelgen.faults.harden import Protection
from accelgen.generators.registry import REGISTRY
from report import print_results, say

VARIANTS = {"none": Protection(), "tmr": Protection(registers="tmr"),
            "dmr": Protection(registers="dmr"), "parity": Protection(memories="parity"),
            "secded": Protection(memories="secded")}
#: protections that are a block's own settings: ``{block: {label: settings over the preset}}``
SETTINGS = {"systolic": {"abft": {"abft": True}}}


def _rate(report, outcome):
    rate, low, high = report.rates[outcome]
    return f"{100 * rate:.2f} ({100 * low:.2f}-{100 * high:.2f})"


def _row(block, label, report, extra=""):
    bad = report.counts["sdc"] + report.counts["hang"]
    caught = report.counts["detected"]
    return {"block": block, "protection": label, "faults": report.faults,
            "bits": report.bits, "sdc % (95 % CI)": _rate(report, "sdc"),
            "hang %": _rate(report, "hang"), "detected %": _rate(report, "detected"),
            "masked %": _rate(report, "masked"),
            "coverage %": f"{100 * caught / (caught + bad):.1f}" if caught + bad else "-",
            "seconds": report.seconds, "note": extra}


def campaigns(blocks, preset, faults, root, selections):
    rows = []
    for block in blocks:
        spec = REGISTRY[block]
        config = spec.presets[preset]
        baseline = None
        for label, protection in VARIANTS.items():
            say(f"campaign {block} {label}")
            report = run_campaign(spec, config, root / block / label, preset=preset,
                                  faults=faults, seed=1, protection=protection)
            rows.append(_row(block, label, report))
            baseline = baseline or report
        only = select_vulnerable(baseline, 0.9)
        selections[block] = only
        for mode in ("tmr", "reg-parity"):
            protection = Protection(registers=mode, only=only)
            report = run_campaign(spec, config, root / block / f"selective-{mode}",
                                  preset=preset, faults=faults, seed=2, protection=protection)
            rows.append(_row(block, f"selective {mode}", report, f"{len(only)} registers"))
            say(f"  {rows[-1]}")
        for label, settings in SETTINGS.get(block, {}).items():
            say(f"campaign {block} {label}")
            report = run_campaign(spec, replace(config, **settings), root / block / label,
                                  preset=preset, faults=faults, seed=1)
            rows.append(_row(block, label, report, f"setting {settings}"))
    return rows


def area(blocks, preset, root, selections):
    rows = []
    for block in blocks:
        spec = REGISTRY[block]
        variants = {k: v for k, v in VARIANTS.items() if k != "none"}
        if block in selections:
            for mode in ("tmr", "reg-parity"):
                variants[f"selective {mode}"] = Protection(registers=mode,
                                                           only=selections[block])
        say(f"area {block}")
        result = area_report(spec, spec.presets[preset], root / block, variants)
        for label in ["unprotected", "lockstep", *variants]:
            r, over = result[label], result["overhead"].get(label, {})
            rows.append({"block": block, "variant": label, "LUT4": r["LUT4"], "FF": r["FF"],
                         "BRAM": r["BRAM"], "LUT4 +%": over.get("LUT4", ""),
                         "FF +%": over.get("FF", "")})
        for label, settings in SETTINGS.get(block, {}).items():
            say(f"area {block} {label}")
            config = replace(spec.presets[preset], **settings)
            r = area_report(spec, config, root / block / label, {})["unprotected"]
            over = overhead(r, result["unprotected"])
            rows.append({"block": block, "variant": label, "LUT4": r["LUT4"], "FF": r["FF"],
                         "BRAM": r["BRAM"], "LUT4 +%": over.get("LUT4", ""),
                         "FF +%": over.get("FF", "")})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="campaigns,area")
    parser.add_argument("--blocks", default=",".join(REGISTRY))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--faults", type=int, default=10_000)
    parser.add_argument("--root", help="builds (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    blocks, sections = args.blocks.split(","), args.only.split(",")
    selections, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if "campaigns" in sections:
            results["campaigns"] = campaigns(blocks, args.preset, args.faults,
                                             root / "campaigns", selections)
        if "area" in sections:
            results["area"] = area(blocks, args.preset, root / "area", selections)
    print_results(results, as_json=args.json, digits=1)


if __name__ == "__main__":
    main()
