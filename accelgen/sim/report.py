"""Accuracy reports of the approximator blocks: golden model against float64, with the
preset's declared bound, and an error plot. ``accelgen show BLOCK --errors [--plot FILE]``
calls these."""

import os

from ..numerics import ConfigError
from ..outputs import check_file

__all__ = ["error_report", "error_lines", "plot_errors"]


def _require(spec, option):
    if not spec.approximates:
        from ..generators.registry import REGISTRY
        blocks = ", ".join(name for name, s in REGISTRY.items() if s.approximates)
        raise ConfigError(f"{option}: not allowed for block {spec.name!r}; it computes exactly "
                          f"(no approximation error); blocks with error reports are {blocks}")


def error_report(spec, config, preset=None):
    """``{"stats": ..., "bound": {...} or None, "within_bound": bool or None}``: the golden
    model's ``errors(config)`` and, when ``config`` is the unchanged ``preset``, that
    preset's declared bound and whether every bounded statistic lies within it (u8/s8
    outputs: also the row sums, when the statistics have them)."""
    _require(spec, "--errors")
    stats = spec.golden_model().errors(config)
    bound = None
    if preset in spec.presets and spec.presets[preset] == config:
        bound = spec.error_bounds.get(preset)
    within = None
    if bound is not None:
        within = all(stats[k] <= v for k, v in bound.items())
        if "row_sum_bound" in stats:
            within = within and stats["row_sum_max_dev"] <= stats["row_sum_bound"]
    return {"stats": stats, "bound": bound, "within_bound": within}


def error_lines(spec, report):
    """Text lines of :func:`error_report`."""
    s, bound = report["stats"], report["bound"] or {}

    def bounded(key, text):
        if key not in bound:
            return text
        ok = "PASS" if s[key] <= bound[key] else "FAIL"
        return f"{text:<10}  (declared bound {bound[key]:g}: {ok})"

    lines = [f"error vs float64 {s['population']}, in {s.get('unit', 'output LSB')}:",
             f"  max |error|    {bounded('max_abs', format(s['max_abs'], '.4f'))}",
             f"  mean |error|   {bounded('mean_abs', format(s['mean_abs'], '.4f'))}",
             f"  mean error     {s['mean']:+.4f}  (bias)"]
    if "code_max" in s:
        lines.append(f"  max |code - correctly rounded code|  "
                     f"{bounded('code_max', str(s['code_max']))}  ({s['code_mismatches']} of "
                     f"{s['inputs']} codes differ)")
    if "row_sum_max_dev" in s:
        ok = "PASS" if s["row_sum_max_dev"] <= s["row_sum_bound"] else "FAIL"
        lines.append(f"  max |row sum - 1|  {s['row_sum_max_dev']:.4f}  (bound N * 2**-8 = "
                     f"{s['row_sum_bound']:g}: {ok})")
    for mode, m in s.get("per_mode", {}).items():
        lines.append(f"  mode {mode:<12} max {m['max_abs']:<9.4g} mean {m['mean_abs']:<9.4g} "
                     f"bias {m['mean']:<+9.3g} max relative {m['max_rel']:.3g} "
                     f"(length {m['length']})")
    if report["bound"] is None:
        lines.append("  (no declared bound: the config differs from every preset with one)")
    return lines


def plot_errors(spec, config, path, *, title=None):
    """Draw error (output LSB) against input into ``path`` (PNG) with matplotlib."""
    _require(spec, "--plot")
    shown = str(path)
    path = check_file("--plot", path, "a PNG file")
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot: needs matplotlib; install it with "
                          "pip install 'accelgen[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    x, err, label = spec.golden_model().error_points(config)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.plot(x, err, ".", markersize=2)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel(label)
    ax.set_ylabel("golden - float64 (output LSB)")
    ax.set_title(title or f"{spec.name} {config.digest()}")
    ax.grid(True, linewidth=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, format="png", metadata={"Software": None})
        tmp.replace(path)
    except OSError as err:
        raise ConfigError(f"--plot: {shown!r} could not be written ({err.strerror})") from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
