"""Benchmark of ``accelgen faults``: soft-error campaigns per block, unprotected and with each
protection, and what each protection costs on ECP5 next to lock-step duplication.

Sections (all by default; pick some with ``--only campaigns,area``):

``campaigns``  per block (``--preset``, default tiny) and protection (none, tmr, dmr,
               parity, secded, and selective tmr and reg-parity: the registers behind 90 %
               of the unprotected campaign's register corruptions and hangs; then the
               block's own protections, config settings such as mac's residue check, alone
               and with selective tmr of the registers behind 90 % of what they leave):
               ``--faults`` single-bit upsets (default 10,000), the rates of silent data
               corruption, hang, detection and masking with Wilson 95 % intervals, and the
               detection coverage (detected / (detected + sdc + hang)).
``area``       ECP5 LUT4 / FF / BRAM of each variant and the overhead over the unprotected
               block, next to lock-step duplication (two copies, outputs compared).

    .venv/bin/python benchmarks/faults.py [--only campaigns] [--blocks mac,cast]
                                          [--variants none,tmr,abft] [--faults 10000]
                                          [--json]

``--variants`` keeps the named rows (protections, ``selective``, and the block's own
protections by label; default all).
"""

import argparse
import tempfile
from pathlib import Path

from accelgen.faults.area import area_report
from accelgen.faults.campaign import run_campaign, select_vulnerable
from accelgen.faults.harden import Protection
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from report import print_results, say

VARIANTS = {"none": Protection(), "tmr": Protection(registers="tmr"),
            "dmr": Protection(registers="dmr"), "parity": Protection(memories="parity"),
            "secded": Protection(memories="secded")}


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


def _wanted(label, variants):
    """Whether ``--variants`` keeps ``label`` (None: every row)."""
    return variants is None or label in variants


def campaigns(blocks, preset, faults, root, selections, variants=None):
    rows = []
    for block in blocks:
        spec = REGISTRY[block]
        config = spec.presets[preset]
        baseline = None
        for label, protection in VARIANTS.items():
            if label != "none" and not _wanted(label, variants):
                continue     # the unprotected campaign is every selection's baseline
            say(f"campaign {block} {label}")
            report = run_campaign(spec, config, root / block / label, preset=preset,
                                  faults=faults, seed=1, protection=protection)
            rows.append(_row(block, label, report))
            baseline = baseline or report
        only = select_vulnerable(baseline, 0.9)
        selections[block] = only
        for mode in ("tmr", "reg-parity") if _wanted("selective", variants) else ():
            protection = Protection(registers=mode, only=only)
            report = run_campaign(spec, config, root / block / f"selective-{mode}",
                                  preset=preset, faults=faults, seed=2, protection=protection)
            rows.append(_row(block, f"selective {mode}", report, f"{len(only)} registers"))
            say(f"  {rows[-1]}")
        rows += _own_protections(spec, config, preset, faults, root / block, selections,
                                 variants)
    return rows


def _protected(spec, config, label, settings):
    """``config`` with a protection's settings, or None (said) when the config refuses them
    (e.g. mac's residue check with float modes)."""
    try:
        return config.with_settings(settings)
    except ConfigError as err:
        say(f"{spec.name} {label}: not applicable to this preset ({err})")
        return None


def _own_protections(spec, config, preset, faults, root, selections, variants):
    """Rows of the block's own protections (``spec.protections``), alone and with selective
    tmr of the registers their campaign leaves most vulnerable."""
    rows = []
    for label, settings in (spec.protections or {}).items():
        protected = _protected(spec, config, label, settings)
        if protected is None or not _wanted(label, variants):
            continue
        say(f"campaign {spec.name} {label}")
        report = run_campaign(spec, protected, root / label, preset=preset, faults=faults,
                              seed=1)
        rows.append(_row(spec.name, label, report))
        only = select_vulnerable(report, 0.9)
        selections[(spec.name, label)] = only
        report = run_campaign(spec, protected, root / f"{label}-tmr", preset=preset,
                              faults=faults, seed=2,
                              protection=Protection(registers="tmr", only=only))
        rows.append(_row(spec.name, f"{label} + selective tmr", report,
                         f"{len(only)} registers"))
        say(f"  {rows[-1]}")
    return rows


def area(blocks, preset, root, selections, wanted=None):
    rows = []
    for block in blocks:
        spec = REGISTRY[block]
        variants = {k: v for k, v in VARIANTS.items() if k != "none" and _wanted(k, wanted)}
        if block in selections and _wanted("selective", wanted):
            for mode in ("tmr", "reg-parity"):
                variants[f"selective {mode}"] = Protection(registers=mode,
                                                           only=selections[block])
        say(f"area {block}")
        config = spec.presets[preset]
        own = {}
        for label, settings in (spec.protections or {}).items():
            protected = _protected(spec, config, label, settings)
            if protected is None or not _wanted(label, wanted):
                continue
            own[label] = (protected, None)
            if (block, label) in selections:
                own[f"{label} + selective tmr"] = (
                    protected, Protection(registers="tmr", only=selections[(block, label)]))
        result = area_report(spec, config, root / block, variants, configs=own)
        for label in ["unprotected", "lockstep", *variants, *own]:
            r, over = result[label], result["overhead"].get(label, {})
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
    parser.add_argument("--variants", help="rows to keep, comma-separated (default: all)")
    parser.add_argument("--root", help="builds (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    blocks, sections = args.blocks.split(","), args.only.split(",")
    variants = set(args.variants.split(",")) if args.variants else None
    selections, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if "campaigns" in sections:
            results["campaigns"] = campaigns(blocks, args.preset, args.faults,
                                             root / "campaigns", selections, variants)
        if "area" in sections:
            results["area"] = area(blocks, args.preset, root / "area", selections, variants)
    print_results(results, as_json=args.json, digits=1)


if __name__ == "__main__":
    main()
