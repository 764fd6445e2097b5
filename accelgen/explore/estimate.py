"""``accelgen estimate``: resources and Fmax of a config in milliseconds, without synthesis,
from a model fitted to sweep stores (the idea of wa-hls4ml: learn the tools' answer from
sweeps, predict it for the next design).

Model: for each block, FPGA family and value (``lut4``, ``carry``, ``ff``, ``dsp``, ``bram``,
``fmax_mhz``), a regression of ``log(1 + value)`` on features of the config:

* every numeric setting ``x`` as ``log2(1 + |x|)`` (a power law in each setting), every
  boolean as 0/1, every string setting one-hot, every list of names as its length and one
  indicator per name (``modes`` holding ``s4s4``);
* the config's top-level numeric derived values (widths, latency, table sizes), the same way;
* the block's analytic cost quantities (:meth:`~accelgen.generators.base.Config.
  cost_features`: products, accumulator bits, memory bits, ...), the same way.

Two regressors are tried (scikit-learn, for ``--fit`` only): ridge regression (regularization
chosen by leave-one-out cross-validation; in log space it is multiplicative, resources scaling
as a product of powers of the settings, which is how arrays and lanes grow and extrapolates
sensibly) and gradient-boosted trees (100 trees of depth 3; they learn the interactions of
categorical settings, e.g. which modes a multiplier builds, but cannot extrapolate). For each
block and value the one with the lower 5-fold cross-validated MAPE on the training points is
kept (ridge below :data:`BOOSTING_MIN` points). Prediction needs only numpy: the fitted model
is a JSON file of feature names, scalings and coefficients or trees
(``accelgen/explore/estimator.json`` is shipped; ``accelgen estimate --fit STORE ... -o
FILE`` writes another and ``--model FILE`` uses it). Each model carries its held-out error
(MAPE over a seeded 25 % of its points, kept out of both the choice and the fit) and the range
of every feature it saw, so a prediction outside it says so.
"""

import json
import math
import random
from importlib import resources
from pathlib import Path

from ..generators.base import close_matches
from ..numerics import ConfigError

__all__ = ["TARGETS", "features", "fit_models", "load_model", "predict", "mape",
           "SHIPPED"]

#: the values an estimate predicts (the ``resources`` metric's, and ``fmax``'s)
TARGETS = ("lut4", "carry", "ff", "dsp", "bram", "fmax_mhz")
#: the fitted model shipped with accelgen
SHIPPED = "estimator.json"
#: share of each block's points held out to measure the error
HOLDOUT = 0.25


def _add(out, name, value):
    if isinstance(value, bool):
        out[name] = float(value)
    elif isinstance(value, (int, float)):
        if math.isfinite(value):
            out[f"log:{name}"] = math.log2(1 + abs(value))
    elif isinstance(value, str):
        out[f"{name}={value}"] = 1.0
    elif isinstance(value, (list, tuple)):
        out[f"len:{name}"] = float(len(value))
        for item in value:
            if isinstance(item, str):
                out[f"{name}~{item}"] = 1.0
    elif isinstance(value, dict):
        for key, item in value.items():
            _add(out, f"{name}.{key}", item)


def features(config):
    """``{feature name: number}`` of ``config`` (see the module docstring); absent features
    are 0."""
    out = {}
    for key, value in config.to_dict().items():
        _add(out, key, value)
    for key, value in config.derived().items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _add(out, f"derived.{key}", value)
    for key, value in config.cost_features().items():
        _add(out, f"cost.{key}", value)
    return out


def mape(actual, predicted):
    """Mean absolute percentage error over the points whose actual value is not 0, in %;
    None when every actual value is 0."""
    pairs = [(a, p) for a, p in zip(actual, predicted) if a]
    if not pairs:
        return None
    return 100 * sum(abs(p - a) / abs(a) for a, p in pairs) / len(pairs)


# -- fitting (scikit-learn) ----------------------------------------------------------------------

#: regressors tried for each block and value; the one with the lower cross-validated error on
#: the training points is kept
KINDS = ("ridge", "boosting")
#: below this many training points only ridge is tried (boosted trees need data)
BOOSTING_MIN = 24


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError("--fit: needs scikit-learn; install it with pip install "
                          "'accelgen[estimate]'") from None


def _design(rows, names, mean=None, scale=None):
    import numpy as np
    x = np.array([[r.get(n, 0.0) for n in names] for r in rows], dtype=float)
    if mean is None:
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
    return (x - mean) / scale, mean, scale


def _regressor(kind):
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    if kind == "ridge":
        return RidgeCV(alphas=[10.0 ** e for e in range(-4, 4)])
    return GradientBoostingRegressor(random_state=1)


def _sig(value):
    return float(f"{value:.7g}")


def _fit_one(feats, ys, kind):
    """The JSON model of one target: ``kind`` fitted to ``log(1 + y)`` on the features."""
    import numpy as np
    names = sorted({n for f in feats for n in f})
    x, mean, scale = _design(feats, names)
    fitted = _regressor(kind).fit(x, np.log1p(np.array(ys, dtype=float)))
    model = {"kind": kind, "features": names, "mean": [_sig(v) for v in mean],
             "scale": [_sig(v) for v in scale]}
    if kind == "ridge":
        model.update(coef=[_sig(v) for v in fitted.coef_], intercept=_sig(fitted.intercept_),
                     alpha=float(fitted.alpha_))
        return model
    model.update(init=_sig(float(fitted.init_.constant_.ravel()[0])),
                 rate=fitted.learning_rate, trees=[_tree(e[0].tree_)
                                                   for e in fitted.estimators_])
    return model


def _tree(tree):
    """One regression tree as ``[left, right, feature, threshold, value]`` lists (a leaf has
    ``left`` = -1)."""
    return [tree.children_left.tolist(), tree.children_right.tolist(),
            tree.feature.tolist(), [_sig(v) for v in tree.threshold],
            [_sig(v) for v in tree.value.ravel()]]


def _apply(model, feats):
    """``model``'s prediction for one point (numpy only)."""
    import numpy as np
    x, _, _ = _design([feats], model["features"], np.array(model["mean"]),
                      np.array(model["scale"]))
    x = x[0]
    if model.get("kind", "ridge") == "ridge":
        return float(np.expm1(x @ np.array(model["coef"]) + model["intercept"]))
    total = model["init"]
    for left, right, feature, threshold, value in model["trees"]:
        node = 0
        while left[node] != -1:
            node = left[node] if x[feature[node]] <= threshold[node] else right[node]
        total += model["rate"] * value[node]
    return float(np.expm1(total))


def _cv_mape(feats, ys, kind, seed):
    """5-fold cross-validated MAPE of ``kind`` on these points (the model choice)."""
    from sklearn.model_selection import KFold
    predicted = [0.0] * len(ys)
    for train, test in KFold(5, shuffle=True, random_state=seed).split(feats):
        model = _fit_one([feats[i] for i in train], [ys[i] for i in train], kind)
        for i in test:
            predicted[i] = _apply(model, feats[i])
    return mape(ys, predicted)


def _choose(feats, ys, seed):
    """The kind of regressor with the lower cross-validated MAPE (ridge when too few points
    or every value is 0)."""
    if len(ys) < BOOSTING_MIN or not any(ys):
        return "ridge"
    scores = {kind: _cv_mape(feats, ys, kind, seed) for kind in KINDS}
    return min(KINDS, key=lambda k: scores[k])


def fit_models(samples, *, seed=1):
    """Fit every ``(block, family)`` of ``samples`` (``{(block, family): [(features, values),
    ...]}``): per target, the regressor kind chosen by cross-validation on the training points
    (:data:`KINDS`), its held-out error (a seeded :data:`HOLDOUT` share of the points held
    out of both the choice and the fit), then the chosen kind refitted on all points, and the
    feature ranges. Returns ``{block: {family: {...}}}``."""
    _sklearn()
    out = {}
    for (block, family), points in sorted(samples.items()):
        entry = {"points": len(points), "targets": {}, "ranges": _ranges(points)}
        for target in TARGETS:
            have = [(f, v[target]) for f, v in points if v.get(target) is not None]
            if len(have) < 4:
                continue
            held = held_out(len(have), seed)
            train = [(f, y) for i, (f, y) in enumerate(have) if i not in held]
            test = [(f, y) for i, (f, y) in enumerate(have) if i in held]
            kind = _choose([f for f, _ in train], [y for _, y in train], seed)
            model = _fit_one([f for f, _ in have], [y for _, y in have], kind)
            if test:
                partial = _fit_one([f for f, _ in train], [y for _, y in train], kind)
                predicted = [_apply(partial, f) for f, _ in test]
                model["holdout"] = {"points": len(test), "mape": _round(
                    mape([y for _, y in test], predicted)), "mae": _round(
                    sum(abs(p - y) for (_, y), p in zip(test, predicted)) / len(test))}
            model["points"] = len(have)
            entry["targets"][target] = model
        out.setdefault(block, {})[family] = entry
    return out


def held_out(count, seed):
    """The indices of ``count`` points held out to measure the error: a seeded
    :data:`HOLDOUT` share (none below 8 points)."""
    if count < 8:
        return set()
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return set(order[:max(1, round(HOLDOUT * count))])


def _round(value):
    return None if value is None else round(value, 3)


def _ranges(points):
    ranges = {}
    for feats, _ in points:
        for name, value in feats.items():
            lo, hi = ranges.get(name, (value, value))
            ranges[name] = (min(lo, value), max(hi, value))
    return {n: list(r) for n, r in sorted(ranges.items())}


def samples_from_stores(paths):
    """``{(block, family): [(features, values), ...]}`` from the ``resources`` and ``fmax``
    records of sweep stores (or directories holding one); :class:`ConfigError` naming
    ``--fit`` for a path that is not a store."""
    from ..generators.registry import get_spec
    from .store import STORE_NAME, Store, check_store
    merged = {}
    for path in paths:
        shown, path = str(path), Path(path)
        if path.is_dir():
            path = path / STORE_NAME
        if not path.is_file():
            raise ConfigError(f"--fit: {shown!r} is not allowed; expected a sweep store "
                              f"({STORE_NAME}) or a directory holding one")
        check_store(path, "--fit")
        with Store(path, readonly=True) as store:
            for rec in store.records().values():
                if rec["status"] != "ok" or rec["metric"] not in ("resources", "fmax") \
                        or "family" not in rec["context"] or rec["context"].get("board"):
                    continue
                key = (rec["block"], rec["context"]["family"], json.dumps(rec["config"],
                                                                          sort_keys=True))
                merged.setdefault(key, {}).update(rec["values"])
    samples = {}
    for (block, family, config_text), values in sorted(merged.items()):
        config = get_spec(block).config_cls.from_dict(json.loads(config_text))
        samples.setdefault((block, family), []).append((features(config), values))
    return samples


# -- prediction ---------------------------------------------------------------------------------

def load_model(path=None):
    """The fitted model: ``path`` (``--model``), or the one shipped with accelgen."""
    if path is None:
        text = resources.files(__package__).joinpath(SHIPPED).read_text(encoding="utf-8")
        return json.loads(text)
    try:
        model = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"--model: {str(path)!r} is not allowed ({err}); expected a model "
                          f"file written by accelgen estimate --fit") from None
    if not _well_formed(model):
        raise ConfigError(f"--model: {str(path)!r} is not allowed (not a model: its entries "
                          f"are not those --fit writes); expected a model file written by "
                          f"accelgen estimate --fit")
    return model


def _well_formed(model):
    """Whether ``model`` has the shape :func:`fit_models` gives (checked before any
    prediction reads it)."""
    if not isinstance(model, dict) or not isinstance(model.get("models"), dict):
        return False
    for families in model["models"].values():
        if not isinstance(families, dict):
            return False
        for entry in families.values():
            if not isinstance(entry, dict) or not isinstance(entry.get("targets"), dict) \
                    or not isinstance(entry.get("ranges"), dict):
                return False
            if not all(isinstance(r, list) and len(r) == 2 and _numbers(r)
                       and (not name.startswith("log:") or _log_range(r))
                       for name, r in entry["ranges"].items()):
                return False
            for tm in entry["targets"].values():
                if not _well_formed_target(tm):
                    return False
    return True


def _log_range(values):
    """Whether a ``log:`` feature's range (``log2(x + 1)`` of a setting) can be read back as
    the setting's numbers: below 1024 (``2 ** v`` must stay a float)."""
    return all(-1 <= v < 1024 for v in values)


def _numbers(values):
    """Whether every item of ``values`` is a real number (not a bool)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _well_formed_target(tm):
    if not isinstance(tm, dict) or not isinstance(tm.get("points"), int):
        return False
    holdout = tm.get("holdout")
    if holdout is not None and not (isinstance(holdout, dict) and _numbers(
            [v for v in (holdout.get("mape"),) if v is not None])):
        return False
    kind = tm.get("kind", "ridge")
    keys = ("features", "mean", "scale") + (("coef",) if kind == "ridge" else ())
    if kind not in KINDS or not all(isinstance(tm.get(k), list) for k in keys) \
            or len({len(tm[k]) for k in keys}) != 1:
        return False
    if not all(isinstance(f, str) for f in tm["features"]) \
            or not all(_numbers(tm[k]) for k in keys if k != "features"):
        return False
    if kind == "ridge":
        return _numbers([tm.get("intercept")])
    width = len(tm["features"])
    trees = tm.get("trees")
    if not isinstance(tm.get("init"), (int, float)) or not isinstance(tm.get("rate"), float) \
            or not isinstance(trees, list):
        return False
    for tree in trees:
        if not isinstance(tree, list) or len(tree) != 5 \
                or not all(isinstance(a, list) and _numbers(a) for a in tree) \
                or len({len(a) for a in tree}) != 1 \
                or not all(isinstance(v, int) for a in tree[:3] for v in a):
            return False
        nodes = len(tree[0])
        left, right, feature = tree[0], tree[1], tree[2]
        for n in range(nodes):     # every branch leads forward to a node that exists
            if left[n] != -1 and not (n < left[n] < nodes and n < right[n] < nodes
                                      and 0 <= feature[n] < width):
                return False
    return True


def predict(model, block, config, family):
    """``(estimates, notes)``: ``{target: {"value", "holdout_mape"}}`` for ``config`` of
    ``block`` on ``family``, and notes on features outside the fitted ranges."""
    entry = model.get("models", {}).get(block, {})
    if family not in entry:
        fitted = sorted(f"{b}/{f}" for b, fams in model.get("models", {}).items()
                        for f in fams)
        raise ConfigError(f"--family: the model has no fit for {block} on {family!r}; it "
                          f"has {', '.join(fitted) or 'none'}"
                          f"{close_matches(f'{block}/{family}', fitted)}")
    entry = entry[family]
    feats = features(config)
    out = {}
    for target, tm in entry["targets"].items():
        value = max(0.0, _apply(tm, feats))
        out[target] = {"value": value, "holdout_mape": (tm.get("holdout") or {}).get("mape"),
                       "points": tm["points"]}
    notes = []
    for name, value in sorted(feats.items()):
        rng = entry["ranges"].get(name)
        if rng is None:
            notes.append(f"{name} was never seen in the fit")
        elif not rng[0] <= value <= rng[1]:
            if name.startswith("log:"):     # say it in the setting's own numbers
                name, value, rng = name[4:], 2 ** value - 1, [2 ** r - 1 for r in rng]
            notes.append(f"{name} = {value:g} is outside the fitted {rng[0]:g}..{rng[1]:g}")
    return out, notes
