"""Out-of-context Fmax on ECP5: a block alone, synthesized for the family (``accelgen synth
--family ecp5``: DSP primitives with their registers) and placed and routed by nextpnr-ecp5
for the ULX3S part (LFE5U-85F, CABGA381, speed 6) with ``--out-of-context`` (ports are not
pins, so I/O placement does not limit it), timing-driven at 150 MHz, over several placer
seeds (placement alone moves Fmax by about ±10 %). Prints Fmax per seed, the median and the
critical path's two ends.

    .venv/bin/python benchmarks/fmax.py mac default --seeds 5
    .venv/bin/python benchmarks/fmax.py systolic 8x8 --seeds 2      # ~3 min per seed
    .venv/bin/python benchmarks/fmax.py systolic 16x16 --seeds 1    # ~40 min
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from accelgen.fpga.flow import place_out_of_context, synth
from accelgen.generators.registry import REGISTRY
from accelgen.tools import ToolError

TARGET_MHZ = 150


def place_and_route(netlist, seed):
    """nextpnr-ecp5 out of context (:func:`accelgen.fpga.flow.place_out_of_context`); returns
    (Fmax in MHz, critical path from, to, seconds), Fmax None when it did not route."""
    t0 = time.monotonic()
    try:
        placed = place_out_of_context(netlist, "ecp5", target_mhz=TARGET_MHZ, seed=seed)
    except ToolError:
        return None, "", "", time.monotonic() - t0
    return placed.fmax_mhz, *placed.critical_path, placed.seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("block")
    ap.add_argument("preset")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=None,
                    help="keep the netlists and logs here (default: a temporary directory)")
    args = ap.parse_args(argv)
    spec = REGISTRY[args.block]
    config = spec.presets[args.preset]
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        out = args.output or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        rep = synth(spec, config, "ecp5", out / "synth", preset=args.preset)
        print(f"{args.block} {args.preset}: synth {time.monotonic() - t0:.0f} s, "
              + ", ".join(f"{k} {v}" for k, v in rep.resources.items() if k != "cells"))
        results = []
        for seed in range(1, args.seeds + 1):
            fmax, src, dst, seconds = place_and_route(rep.json, seed)
            results.append(fmax)
            shown = "failed" if fmax is None else f"{fmax:6.1f} MHz"
            print(f"  seed {seed}: {shown}  P&R {seconds:5.0f} s   {src} -> {dst}")
        done = [f for f in results if f is not None]
        if done:
            print(f"  median {statistics.median(done):.1f} MHz, "
                  f"{sum(f >= TARGET_MHZ for f in done)}/{len(done)} seeds >= {TARGET_MHZ}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
