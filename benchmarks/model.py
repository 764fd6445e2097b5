"""accelgen run, measured: quantized networks on the blocks.

For each example network (the digits MLP and the digits CNN on the 360 test images; one
transformer encoder block, 4 sequences of 32 tokens, width 64, 4 heads, FFN 128) and each
systolic array preset (4x4 ``default``, ``8x8``, ``16x16``; activation ``tiny``: a full GELU
table; softmax ``default``, adapted to the model's scales):

``golden``  cycles per inference from the blocks' cycle models, per-layer utilization
            (MACs / (peak MACs per cycle * cycles)), and agreement with onnxruntime (int8 and
            qdq references) on the network's output.
``rtl``     the same on the emitted Verilog (Verilator): RTL cycles, RTL == golden, and the
            wall time of the RTL run (including the Verilator builds of configs not built
            before under ``--build-root``).

Cycles per inference are per image, and per sequence of 32 tokens for the encoder.

    .venv/bin/python benchmarks/model.py                       # golden and rtl, all presets
    .venv/bin/python benchmarks/model.py --only golden --presets default,8x8
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from accelgen.model import examples
from accelgen.model.run import read_hw, run_model

PRESETS = ("default", "8x8", "16x16")


#: rows of the model input per inference (the encoder's input holds one token per row)
PER_INFERENCE = {"mlp": 1, "cnn": 1, "encoder": 32}


def _models(root):
    return {"mlp": (examples.digits_mlp(root / "mlp"), False),
            "cnn": (examples.digits_cnn(root / "cnn"), False),
            "encoder": (examples.encoder_block(root / "encoder"), True)}


def _layers(data):
    return [(s["step"], s["op"], "x".join(map(str, s["shape"])), s["cycles"], s["utilization"])
            for s in data["steps"] if s["where"] in ("golden", "rtl")]


def _print_layers(name, preset, data):
    print(f"\n{name} on systolic {preset}: per layer")
    print(f"  {'step':<10} {'op':<12} {'shape':<12} {'cycles':>8} {'util':>7}")
    for step, op, shape, cycles, util in _layers(data):
        u = "-" if util is None else f"{100 * util:.1f} %"
        print(f"  {step:<10} {op:<12} {shape:<12} {cycles:>8} {u:>7}")


def _output_line(data):
    out = next(iter(v for v in data["outputs"].values() if "max_err_lsb" in v), None)
    if out is None:
        return "-"
    return f"{100 * out['equal_rate']:.1f} % / {out['max_err_lsb']:.0f} LSB"


def run(only, presets, build_root):
    import logging
    with tempfile.TemporaryDirectory() as tmp:
        models = _models(Path(tmp))
        logging.getLogger().setLevel(logging.WARNING)   # the quantizer's and runner's INFO
        rows = []
        for name, (ex, host) in models.items():
            for preset in presets:
                hw = read_hw(presets=[f"systolic={preset}", "activation=tiny"])
                gold, _ = run_model(ex.model, ex.inputs, hw=hw, allow_host=host)
                qdq, _ = run_model(ex.model, ex.inputs, hw=hw, allow_host=host,
                                   reference="qdq")
                t = gold["totals"]
                gemm = [s for s in gold["steps"] if s["kind"] == "gemm"]
                util = sum(s["macs"] for s in gemm) / sum(
                    s["macs"] / s["utilization"] for s in gemm)
                per = PER_INFERENCE[name]
                row = {"model": name, "preset": preset, "batch": gold["batch"] // per,
                       "golden_cpi": t["cycles_per_inference"] * per, "gemm_util": util,
                       "vs_int8": _output_line(gold), "vs_qdq": _output_line(qdq),
                       "acc": next(iter(gold.get("accuracy", {}).get("accelgen", {})
                                        .values()), None)}
                _print_layers(name, preset, gold)
                if "rtl" in only:
                    start = time.monotonic()
                    rtl, _ = run_model(ex.model, ex.inputs, hw=hw, allow_host=host,
                                       sim="rtl", build_root=build_root)
                    row["rtl_seconds"] = time.monotonic() - start
                    row["rtl_cpi"] = rtl["totals"]["cycles_per_inference"] * per
                    row["rtl_mismatches"] = rtl["totals"]["rtl_mismatches"]
                    row["sim_seconds"] = sum(s["seconds"] for s in rtl["steps"]
                                             if s["where"] == "rtl")
                rows.append(row)
                sys.stdout.flush()
        print("\nper network and array (batch: images or sequences; cycles per image or "
              "sequence)")
        head = (f"{'model':<8} {'array':<8} {'batch':>5} {'golden cyc/inf':>14} "
                f"{'GEMM util':>9} {'= ORT int8 / max':>17} {'= ORT qdq / max':>16}")
        if "rtl" in only:
            head += f" {'RTL cyc/inf':>11} {'RTL==golden':>11} {'RTL wall s':>10}"
        print(head)
        for r in rows:
            line = (f"{r['model']:<8} {r['preset']:<8} {r['batch']:>5} {r['golden_cpi']:>14.0f} "
                    f"{100 * r['gemm_util']:>8.1f}% {r['vs_int8']:>17} {r['vs_qdq']:>16}")
            if "rtl" in only:
                line += (f" {r['rtl_cpi']:>11.0f} {'yes' if not r['rtl_mismatches'] else 'NO':>11}"
                         f" {r['rtl_seconds']:>10.1f}")
            print(line)
        for name in models:
            accs = [f"{r['preset']} {100 * r['acc']:.2f} %" for r in rows
                    if r["model"] == name and r["acc"] is not None]
            if accs:
                print(f"{name} top-1 accuracy on the blocks: {', '.join(accs)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="golden,rtl", help="golden and/or rtl")
    parser.add_argument("--presets", default=",".join(PRESETS),
                        help="systolic presets (default: default,8x8,16x16)")
    parser.add_argument("--build-root", default="build/sim", help="simulation builds")
    args = parser.parse_args(argv)
    run(set(args.only.split(",")), [p for p in args.presets.split(",") if p], args.build_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
