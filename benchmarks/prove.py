"""Benchmark of ``accelgen prove``: every block and preset through the bounded check and
k-induction at the block's default depth, and every mutant of the tiny presets.

Sections (all by default; pick some with ``--only proofs,mutants``):

``proofs``   per block and preset (with the block's proof settings, e.g. pim's short
             timings; a preset they do not fit is listed with the reason): properties, how
             many are proven for every reachable state (the induction closed on them), how
             many to the depth only, failures, solver runs, wall time, and the first cycle
             each output can deliver a beat (``-``: not within the bounded check's depth).
             A preset whose proof runs past ``--timeout`` is listed as such.
``mutants``  per block (tiny preset) and planted bug: the family that must catch it, the
             families that did, the bounded check's wall time and the trace.

    .venv/bin/python benchmarks/prove.py [--only proofs] [--blocks mac,cast]
                                         [--presets tiny,default] [--timeout 900] [--json]
"""

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from accelgen.formal.prove import mutants_of, prove
from accelgen.generators.registry import REGISTRY
from accelgen.numerics import ConfigError
from accelgen.tools import ToolError
from report import print_results, say


def _prove_row(block, preset, out_dir, timeout):
    spec = REGISTRY[block]
    start = time.monotonic()
    try:
        config = spec.proof.config(spec.presets[preset])
        report = prove(spec, config, out_dir, preset=preset, timeout=timeout)
    except (ToolError, ConfigError) as err:
        return {"block": block, "preset": preset, "properties": "", "proven": "",
                "bounded": "", "failed": "", "runs": "",
                "seconds": round(time.monotonic() - start, 1), "note": str(err)[:80]}
    counts = report.counts()
    failed = [p.name for p in report.properties if p.status == "failed"]
    return {"block": block, "preset": preset, "properties": len(report.properties),
            "proven": counts.get("proven", 0), "bounded": counts.get("bounded", 0),
            "failed": counts.get("failed", 0), "runs": report.rounds,
            "seconds": report.seconds, "depth": report.depth, "k": report.induction_depth,
            "first beat": ", ".join(f"{goal.split(':')[0]} {step if step is not None else '-'}"
                                    for goal, step in report.reach.items()),
            "note": "; ".join(failed) or ""}


def proofs(blocks, root, timeout, presets=None):
    rows = []
    for block in blocks:
        for preset in REGISTRY[block].presets:
            if presets is not None and preset not in presets:
                continue
            say(f"prove {block} {preset}")
            rows.append(_prove_row(block, preset, root / f"{block}_{preset}", timeout))
            say(f"  {rows[-1]}")
    return rows


def mutants(blocks, root, timeout):
    rows = []
    for block in blocks:
        spec = REGISTRY[block]
        for mutant, family in mutants_of(spec).items():
            say(f"mutant {block} {mutant}")
            config = spec.proof.config(spec.presets["tiny"])
            report = prove(spec, config, root / f"{block}_{mutant}", preset="tiny",
                           mutant=mutant, timeout=timeout)
            caught = sorted({p.family for p in report.properties if p.status == "failed"})
            rows.append({"block": block, "mutant": mutant, "family": family,
                         "caught by": ", ".join(caught) or "NOT caught",
                         "seconds": report.seconds,
                         "trace": Path(report.counterexample).name
                         if report.counterexample else ""})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="proofs,mutants")
    parser.add_argument("--blocks", default=",".join(REGISTRY))
    parser.add_argument("--presets", help="presets to prove, comma-separated (default: all)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per solver run")
    parser.add_argument("--root", help="proof files (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    blocks = args.blocks.split(",")
    sections = args.only.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        results = {}
        if "proofs" in sections:
            results["proofs"] = proofs(blocks, root / "proofs", args.timeout,
                                       set(args.presets.split(",")) if args.presets else None)
        if "mutants" in sections:
            results["mutants"] = mutants(blocks, root / "mutants", args.timeout)
    print_results(results, as_json=args.json, digits=1)


if __name__ == "__main__":
    multiprocessing.freeze_support()
    main()
