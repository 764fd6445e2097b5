"""``accelgen run MODEL.onnx``: a quantized network on the blocks, layer by layer, against
onnxruntime.

:func:`run_model` loads and cuts the model (:mod:`accelgen.model.graph`), checks the inputs,
runs it on the blocks' golden models or RTL (:mod:`accelgen.model.execute`), runs the same
model in onnxruntime (:mod:`accelgen.model.reference`) and compares every mapped step's output
with onnxruntime's, in onnxruntime's output LSB. Block-neutral: blocks are found through the
registry's ``model_ops`` entries.
"""

import json
import math
import tomllib
from pathlib import Path

import numpy as np

from ..generators.registry import REGISTRY
from ..numerics import ConfigError
from .execute import Executor, blocks_for_kinds
from .graph import load_network

__all__ = ["run_model", "read_hw", "read_inputs", "MAX_INPUT_ELEMENTS", "SIMS"]

MAX_INPUT_ELEMENTS = 1 << 24
SIMS = ("golden", "rtl")
LABELS = "labels"


def read_hw(path=None, presets=()):
    """``{block: config}`` from a ``--hw`` TOML file (one table per block: ``preset`` and
    settings, e.g. ``[BLOCK] preset = "NAME"``) and ``--hw-preset BLOCK=PRESET`` items (over
    the file's presets). :class:`ConfigError` naming ``--hw`` otherwise."""
    tables = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--hw: {str(path)!r} is not allowed; expected an existing TOML "
                              f"file")
        try:
            tables = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"--hw: {str(path)!r} is not valid TOML ({error})") from None
    for item in presets:
        block, sep, preset = item.partition("=")
        if not sep or not block or not preset:
            raise ConfigError(f"--hw-preset: {item!r} is not allowed; expected BLOCK=PRESET, "
                              f"e.g. BLOCK=default")
        tables.setdefault(block.strip(), {})["preset"] = preset.strip()
    runners = set(blocks_for_kinds().values())
    out = {}
    for block, table in tables.items():
        if block not in REGISTRY:
            raise ConfigError(f"--hw: {block!r} is not a block; allowed are "
                              f"{', '.join(sorted(runners))}")
        if block not in runners:
            raise ConfigError(f"--hw: block {block!r} runs no network operations; allowed are "
                              f"{', '.join(sorted(runners))}")
        if not isinstance(table, dict):
            raise ConfigError(f"--hw: {block} = {table!r} is not allowed; expected a table "
                              f"[{block}] of settings")
        settings = dict(table)
        preset = settings.pop("preset", "default")
        if not isinstance(preset, str):
            raise ConfigError(f"--hw: {block}.preset = {preset!r} is not allowed; expected a "
                              f"preset name")
        out[block] = REGISTRY[block].resolve(preset, values=_flatten(settings))
    return out


def _flatten(table, prefix=""):
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_inputs(network, path):
    """``(feeds, labels or None)`` from ``--inputs FILE.npz``: one array per graph input
    (its shape and dtype kind checked against the model), and optionally ``labels``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--inputs: {str(path)!r} is not allowed; expected an existing .npz "
                          f"file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except Exception as error:
        raise ConfigError(f"--inputs: {str(path)!r} is not a readable .npz file "
                          f"({type(error).__name__})") from None
    labels = arrays.pop(LABELS, None)
    expected = ", ".join(network.inputs) + f" (and optionally {LABELS})"
    for name in arrays:
        if name not in network.inputs:
            raise ConfigError(f"--inputs: array {name!r} is not an input of the model; expected "
                              f"{expected}")
    feeds, batch = {}, None
    for name, (shape, dtype) in network.inputs.items():
        if name not in arrays:
            raise ConfigError(f"--inputs: array {name!r} is missing; expected {expected}")
        x = arrays[name]
        if x.size == 0:
            raise ConfigError(f"--inputs: {name} is empty (shape {x.shape}); expected at least "
                              f"one element")
        if x.size > MAX_INPUT_ELEMENTS:
            raise ConfigError(f"--inputs: {name} has {x.size} elements; at most "
                              f"{MAX_INPUT_ELEMENTS} are allowed")
        if x.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, x.shape)):
            want = "x".join("N" if d is None else str(d) for d in shape)
            raise ConfigError(f"--inputs: {name} has shape {'x'.join(map(str, x.shape))}; the "
                              f"model expects {want}")
        if np.dtype(dtype).kind == "f" and x.dtype.kind != "f" or \
                np.dtype(dtype).kind in "iu" and x.dtype.kind not in "iu":
            raise ConfigError(f"--inputs: {name} has dtype {x.dtype}; the model expects "
                              f"{np.dtype(dtype)}")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise ConfigError(f"--inputs: {name} holds NaN or infinite values; expected finite "
                              f"numbers")
        if x.dtype.kind in "iu" and np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            if x.min() < info.min or x.max() > info.max:
                raise ConfigError(f"--inputs: {name} holds values from {x.min()} to {x.max()}; "
                                  f"the model's {np.dtype(dtype)} takes {info.min} to {info.max}")
        feeds[name] = x.astype(dtype)
        if shape and shape[0] is None:
            batch = x.shape[0]
    if labels is not None and (labels.dtype.kind not in "iu" or labels.ndim != 1 or
                               (batch is not None and labels.shape != (batch,))):
        raise ConfigError(f"--inputs: {LABELS} has shape {labels.shape} and dtype "
                          f"{labels.dtype}; expected integers of shape "
                          f"({'N' if batch is None else batch},)")
    return feeds, labels, batch or 1


def _compare(mine, theirs, scale, zero_point):
    """``(exact rate, max |error|)`` of our QTensor against onnxruntime's codes, in
    onnxruntime's LSB (the real values compared, so a block with its own output scale is
    measured fairly)."""
    theirs = np.asarray(theirs, np.int64)
    if math.isclose(float(mine.scale), scale, rel_tol=1e-6) and mine.zero_point == zero_point:
        # the same quantization (a scale such as 1/255 written in float32 or float64)
        err = np.abs(mine.codes.reshape(theirs.shape) - theirs).astype(np.float64)
    else:
        real = (theirs - zero_point) * scale
        err = np.round(np.abs(mine.real().reshape(real.shape) - real) / scale, 3)
    return float(np.mean(err == 0)), float(err.max()) if err.size else 0.0


def _accuracy(outputs, labels):
    """``{output: top-1 accuracy}`` for the outputs that predict ``labels``: integer outputs
    of the labels' shape, or scores of shape (batch, classes)."""
    out = {}
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.shape == labels.shape and value.dtype.kind in "iu":
            out[name] = float(np.mean(value == labels))
        elif value.ndim == 2 and value.shape[0] == labels.shape[0] and value.dtype.kind == "f":
            out[name] = float(np.mean(np.argmax(value, axis=1) == labels))
    return out


def _measured_fmax(block, config, work_dir, progress):
    """Fmax of ``config`` placed and routed out of context on ECP5 (yosys, then nextpnr at
    150 MHz, placer seed 1), in ``work_dir``."""
    from ..fpga.flow import place_out_of_context, synth
    spec = REGISTRY[block]
    progress(f"measuring the Fmax of {block} {config.digest()} (ECP5, out of context)")
    synthesized = synth(spec, config, "ecp5", Path(work_dir) / f"{block}-{config.digest()}")
    return place_out_of_context(synthesized.json, "ecp5").fmax_mhz


def _fmax(results, fmax, family="ecp5", *, measure=False, work_dir=None, progress=None):
    """``{config digest: (MHz, source)}`` for the configs the steps ran on."""
    from ..explore import estimate as est
    model = est.load_model(None) if fmax is None else None
    out = {}
    for r in results:
        for digest, config in r.configs:
            if digest in out:
                continue
            if fmax is not None:
                out[digest] = (float(fmax), "--fmax")
                continue
            if measure:
                out[digest] = (_measured_fmax(r.block, config, work_dir, progress),
                               "measured (ECP5 out of context, nextpnr)")
                continue
            try:
                estimates, _ = est.predict(model, r.block, config, family)
                out[digest] = (estimates["fmax_mhz"]["value"], "estimated (accelgen estimate)")
            except (ConfigError, KeyError):
                out[digest] = (None, "unknown")
    return out


def _step_rows(network, results, executor, reference):
    rows = []
    for r in results:
        step = r.step
        row = {"step": step.name, "op": step.op, "kind": step.kind, "where": r.where,
               "block": r.block, "configs": [d for d, _ in r.configs],
               "shape": list(r.shape), "cycles": r.cycles, "model_cycles": r.model_cycles,
               "utilization": r.utilization, "macs": r.macs, "rtl_mismatches": r.mismatches,
               "counters": r.counters, "notes": r.notes, "seconds": round(r.seconds, 3)}
        if step.mapped:
            name = step.outputs[0]
            scale = float(network.constants[step.params["out_scale"]])
            zp_name = step.params["out_zero_point"]
            zp = int(network.constants[zp_name]) if zp_name else 0
            exact, worst = _compare(executor.env[name], reference[name], scale, zp)
            sources = {n: reference[n] for n in network.step_sources(step)}
            alone = executor.isolated(step, sources)
            exact_alone, worst_alone = _compare(alone, reference[name], scale, zp)
            row.update(exact_rate=exact, max_err_lsb=worst, exact_rate_alone=exact_alone,
                       max_err_lsb_alone=worst_alone,
                       out_scale=float(executor.env[name].scale), reference_scale=scale)
        rows.append(row)
    return rows


def require_onnx():
    """:class:`ConfigError` unless onnx and onnxruntime are installed (the ``onnx`` extra)."""
    import importlib.util
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"run: needs {' and '.join(missing)}; install with pip install "
                          f"'accelgen[onnx]'")


def run_model(model_path, inputs_path, *, hw=None, sim="golden", allow_host=False,
              simulator="verilator", build_root=None, seed=0, fmax=None, reference="int8",
              measure_fmax=False, progress=None):
    """Run ``model_path`` on ``inputs_path`` (see the module docstring). Returns ``(data,
    outputs)``: the report (JSON-able) and ``{graph output: array}`` of our run. Raises
    :class:`ConfigError` for bad input before anything runs."""
    require_onnx()
    from .reference import REFERENCES, run_reference
    if sim not in SIMS:
        raise ConfigError(f"--sim: {sim!r} is not allowed; expected one of {', '.join(SIMS)}")
    from ..sim.simulators import SIMULATORS, check_simulator
    if sim == "rtl" or simulator not in SIMULATORS:     # installed: only when it runs
        check_simulator(simulator, "--simulator")
    if reference not in REFERENCES:
        raise ConfigError(f"--reference: {reference!r} is not allowed; expected one of "
                          f"{', '.join(REFERENCES)}")
    if fmax is not None and not (isinstance(fmax, (int, float)) and 0 < fmax < 10_000):
        raise ConfigError(f"--fmax: {fmax!r} is not allowed; expected MHz above 0 and below "
                          f"10000")
    if fmax is not None and measure_fmax:
        raise ConfigError("--measure-fmax: not allowed together with --fmax (one clock source)")
    if build_root is not None and (sim == "rtl" or measure_fmax):
        from ..outputs import check_directory
        check_directory("--build-root", build_root)
    say = progress or (lambda message: None)
    network = load_network(model_path, allow_host=allow_host)
    feeds, labels, batch = read_inputs(network, inputs_path)
    # the golden models first, silently: an --hw config an operation cannot use is refused
    # (exit 2, one line) before anything is printed or built
    executor = Executor(network, hw, sim="golden", seed=seed)
    outputs, results = executor.run(feeds)
    if sim == "rtl":
        executor = Executor(network, hw, sim=sim, simulator=simulator, build_root=build_root,
                            seed=seed, progress=say)
        say(f"running {len(network.steps)} steps ({sum(s.mapped for s in network.steps)} on "
            f"blocks) on the RTL")
        outputs, results = executor.run(feeds)
    say(f"running the same model in onnxruntime ({reference})")
    ref_name, reference = reference, run_reference(network, feeds, reference)
    rows = _step_rows(network, results, executor, reference)
    mapped = [r for r in results if r.step.mapped]
    fmaxes = _fmax(mapped, fmax, measure=measure_fmax,
                   work_dir=Path(build_root or "build") / "fmax", progress=say)
    total_cycles = sum(r.cycles or 0 for r in mapped)
    latency_us = 0.0
    for r in mapped:
        mhz = fmaxes[r.configs[0][0]][0] if r.configs else None
        latency_us = None if mhz is None or latency_us is None else \
            latency_us + (r.cycles or 0) / mhz
    data = {
        "model": str(model_path), "inputs": str(inputs_path), "sim": sim, "batch": batch,
        "reference": ref_name,
        "steps": rows,
        "blocks": {r.block: {d: c.to_dict() for d, c in r.configs} for r in mapped},
        "fmax_mhz": {d: {"value": v, "source": s} for d, (v, s) in fmaxes.items()},
        "totals": {"cycles": total_cycles, "cycles_per_inference": total_cycles / batch,
                   "latency_us": latency_us,
                   "latency_us_per_inference": None if latency_us is None else
                   latency_us / batch,
                   "macs": sum(r.macs for r in mapped),
                   "host_steps": [r.step.name for r in results if r.step.kind == "host"],
                   "rtl_mismatches": sum(r.mismatches for r in mapped)},
        "outputs": {}}
    for name, value in outputs.items():
        theirs = np.asarray(reference[name])
        value = np.asarray(value)
        entry = {"shape": list(value.shape), "dtype": str(value.dtype)}
        if value.shape == theirs.shape:
            if value.dtype.kind == "f":
                diff = np.abs(value.astype(np.float64) - theirs)
                entry["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
                node = network.dequantize.get(name)
                if node is not None and np.ndim(network.constants[node.input[1]]) == 0:
                    lsb = np.rint(diff / float(network.constants[node.input[1]]))
                    entry["max_err_lsb"] = float(lsb.max()) if lsb.size else 0.0
                    entry["err_lsb_histogram"] = np.bincount(
                        lsb.astype(np.int64).ravel()).tolist()
            # codes (floats of one scale written in float32 or float64 compare as equal)
            same = (lsb == 0) if "err_lsb_histogram" in entry else (value == theirs)
            entry["equal_rate"] = float(np.mean(same)) if value.size else 1.0
        data["outputs"][name] = entry
    if labels is not None:
        data["accuracy"] = {"accelgen": _accuracy(outputs, labels),
                            "onnxruntime": _accuracy(reference, labels),
                            "samples": int(labels.shape[0])}
    return data, outputs


def report_lines(data, table):
    """The text report of :func:`run_model`'s data; ``table(rows, headers)`` formats a
    table. Layout steps (no arithmetic) are left out of the table (the JSON has them)."""
    rows = []
    for s in data["steps"]:
        if s["kind"] == "layout":
            continue
        util = "-" if s["utilization"] is None else f"{100 * s['utilization']:.1f} %"
        where = s["where"] if s["kind"] != "host" else "host (--allow-host)"
        rows.append((s["step"], s["op"], where, s["block"] or "-",
                     "x".join(map(str, s["shape"])) or "-",
                     "-" if s["cycles"] is None else str(s["cycles"]), util,
                     _rate(s.get("exact_rate")), _lsb(s.get("max_err_lsb")),
                     _rate(s.get("exact_rate_alone")), _lsb(s.get("max_err_lsb_alone"))))
    t = data["totals"]
    lines = [table(rows, ("step", "op", "on", "block", "shape", "cycles", "util",
                          "= ORT", "max |err|", "= ORT alone", "max |err| alone"))]
    lines.append("(= ORT: output codes equal to onnxruntime's int8 run; |err| in its output "
                 "LSB; alone: the step on onnxruntime's own input codes)")
    lines.append(f"cycles: {t['cycles']} in all, {t['cycles_per_inference']:.0f} per inference "
                 f"(batch {data['batch']}); MACs {t['macs']}")
    if t["latency_us"] is not None:
        sources = sorted({f["source"] for f in data["fmax_mhz"].values()})
        clocks = ", ".join(f"{f['value']:.0f}" for f in data["fmax_mhz"].values())
        lines.append(f"latency: {t['latency_us']:.1f} us in all, "
                     f"{t['latency_us_per_inference']:.3f} us per inference at Fmax "
                     f"{clocks} MHz ({'; '.join(sources)})")
    if t["host_steps"]:
        lines.append(f"host: {', '.join(t['host_steps'])} ran on the host (--allow-host)")
    for name, out in data["outputs"].items():
        if "max_err_lsb" in out:
            hist = ", ".join(f"{d}: {n}" for d, n in enumerate(out["err_lsb_histogram"]) if n)
            lines.append(f"output {name!r}: {100 * out['equal_rate']:.1f} % of codes equal to "
                         f"onnxruntime ({data['reference']}), max {out['max_err_lsb']:.0f} LSB "
                         f"(codes per |difference| in LSB: {hist})")
    if data["sim"] == "rtl":
        lines.append(f"RTL vs golden: {t['rtl_mismatches']} output codes differ")
    if "accuracy" in data:
        acc = data["accuracy"]
        for name, value in acc["accelgen"].items():
            ref = acc["onnxruntime"].get(name)
            lines.append(f"top-1 accuracy of {name!r} on {acc['samples']} labels: accelgen "
                         f"{100 * value:.2f} %, onnxruntime int8 "
                         f"{'-' if ref is None else f'{100 * ref:.2f} %'}")
    return lines


def _lsb(value):
    if value is None:
        return "-"
    return f"{value:.0f}" if math.isclose(value, round(value), abs_tol=1e-6) else f"{value:.2f}"


def _rate(value):
    return "-" if value is None else f"{100 * value:.1f} %"


def write_outputs(out_dir, data, outputs):
    """``DIR/report.json`` and ``DIR/outputs.npz`` (each written to a temporary name and
    renamed)."""
    import os
    from ..outputs import make_directory, write_atomic
    out_dir = Path(out_dir)
    make_directory("-o", out_dir)
    write_atomic(out_dir / "report.json", json.dumps(data, indent=2, default=_json) + "\n")
    tmp = out_dir / "outputs.tmp.npz"
    np.savez(tmp, **{k: np.asarray(v) for k, v in outputs.items()})
    os.replace(tmp, out_dir / "outputs.npz")


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
