"""The points of a sweep: a base config (preset, ``--config``, ``--set``) and ``--grid`` lists
of values for some of its settings (or of the block's run options, e.g. a GEMM shape), taken as
their cartesian product or as ``--random N`` points sampled from it.

A point is the tuple of its ``(key, value)`` pairs in grid order. Building its config may fail
(a combination the config refuses, e.g. more columns than a mode allows): such a point is
*invalid*, recorded with the config's one-line reason, and costs no task. Keys and list syntax
are checked before anything runs; an unknown key, a malformed list or an empty one is a
:class:`~accelgen.numerics.ConfigError` naming ``--grid``.

Pure Python: no Amaranth, no Dask.
"""

import itertools
import json
import random
from dataclasses import dataclass

from ..generators.base import check_plain, close_matches, parse_set_value
from ..numerics import ConfigError

__all__ = ["Axis", "Point", "parse_grid", "grid_points", "sample_points", "config_keys",
           "build_point"]

#: a sweep of more points than this is refused (``--random N`` samples a larger space)
MAX_POINTS = 100_000


@dataclass(frozen=True)
class Axis:
    """One ``--grid key=[v0, v1, ...]``: a config setting (dotted for nested ones) or a run
    option of the block, and its values in the order given.

    Members
    -------
    key : str
    values : tuple
    option : bool
        True when ``key`` is one of the block's run options (``accelgen sim --<key>``)."""
    key: str
    values: tuple
    option: bool = False


@dataclass(frozen=True)
class Point:
    """One configuration of a sweep.

    Members
    -------
    params : tuple of (key, value)
        The swept values, in grid order.
    config : Config or None
        The block config; None when the point is invalid.
    options : tuple of (name, value)
        The block's run options at this point (the base options with the swept ones over
        them), sorted by name.
    reason : str
        Why the point is invalid (``""`` when it is valid)."""
    params: tuple
    config: object = None
    options: tuple = ()
    reason: str = ""

    @property
    def valid(self):
        return self.config is not None

    @property
    def label(self):
        """``rows=8 cols=4`` (``base`` for a sweep of no axis)."""
        return " ".join(f"{k}={_text(v)}" for k, v in self.params) or "base"

    @property
    def ident(self):
        """Stable text naming the point: its params, its config's digest (or, for an invalid
        point, why) and its run options, as JSON; two sweeps of other base settings into one
        store do not share a point unless they build the same config."""
        return json.dumps([[[k, v] for k, v in self.params],
                           self.config.digest() if self.valid else self.reason,
                           [[k, v] for k, v in self.options]], separators=(",", ":"))


def _text(value):
    return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value


def config_keys(data, prefix=""):
    """Every settable dotted key of a config's ``to_dict()``: nested tables give ``pe.lanes``
    as well as ``pe`` itself."""
    out = []
    for key, value in data.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += config_keys(value, f"{prefix}{key}.")
    return out


def parse_grid(items, spec, base_config):
    """``["rows=[4, 8]", ...]`` → ``[Axis, ...]``. Each value list is TOML (``[4, 8]``,
    ``["os", "ws"]``, ``[["os"], ["os", "ws"]]``); keys are settings of ``base_config`` or
    run options of ``spec``, each at most once."""
    axes, known = [], config_keys(base_config.to_dict())
    options = {o.name for o in spec.run_options}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid: {item!r} is not allowed; expected key=[value, ...], "
                              f"e.g. --grid 'rows=[4, 8]'")
        if key not in known and key not in options:
            allowed = known + sorted(options)
            raise ConfigError(f"--grid: {key!r} is not a setting of {spec.name}; allowed are "
                              f"{', '.join(allowed)}{close_matches(key, allowed)}")
        if any(a.key == key for a in axes):
            raise ConfigError(f"--grid: {key!r} is given twice; give each key once, with all "
                              f"its values in one list")
        values = parse_set_value(text.strip(), key)
        if not isinstance(values, list):
            raise ConfigError(f"--grid: {key}={text.strip()!r} is not allowed; expected a "
                              f"TOML list of values, e.g. {key}=[1, 2]")
        if not values:
            raise ConfigError(f"--grid: {key}=[] is not allowed; expected at least one value")
        check_plain(values, key)
        shown = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(shown)) != len(shown):
            raise ConfigError(f"--grid: {key}={text.strip()} lists a value twice; each once")
        axes.append(Axis(key, tuple(values), option=key in options))
    return axes


def _count(axes):
    total = 1
    for axis in axes:
        total *= len(axis.values)
    return total


def grid_points(axes):
    """Every combination of the axes' values (the last axis counting fastest), as params
    tuples."""
    if _count(axes) > MAX_POINTS:
        raise ConfigError(f"--grid: {_count(axes)} points is not allowed; expected at most "
                          f"{MAX_POINTS} (--random N samples a larger space)")
    return [tuple(zip((a.key for a in axes), combo))
            for combo in itertools.product(*(a.values for a in axes))]


def sample_points(axes, count, seed):
    """``count`` distinct combinations drawn uniformly from the grid (all of them, in grid
    order, when it has no more than ``count``), in grid order; ``seed`` makes the draw
    repeatable."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_POINTS:
        raise ConfigError(f"--random: {count!r} is not allowed; expected an integer from 1 "
                          f"to {MAX_POINTS}")
    total = _count(axes)
    if total <= count:
        return grid_points(axes)
    picked = sorted(random.Random(seed).sample(range(total), count))
    sizes = [len(a.values) for a in axes]
    out = []
    for index in picked:
        combo = []
        for size in reversed(sizes):
            index, digit = divmod(index, size)
            combo.append(digit)
        combo.reverse()
        out.append(tuple((a.key, a.values[d]) for a, d in zip(axes, combo)))
    return out


def build_point(spec, params, *, preset, config_file=None, sets=(), options=None,
                option_keys=(), allow_large=False, allow_large_options=None):
    """The :class:`Point` of ``params``: its config (resolved as ``--preset``, ``--config``,
    ``--set``, then the point's settings) and run options checked by the block, or the
    reason it is invalid. ``allow_large_options`` (default ``allow_large``) lifts the
    simulation-cost limit of the run options (a sweep that does not simulate)."""
    if allow_large_options is None:
        allow_large_options = allow_large
    settings = {k: v for k, v in params if k not in option_keys}
    opts = dict(options or {})
    opts.update({k: v for k, v in params if k in option_keys})
    try:
        config = spec.resolve(preset, config_file=config_file, sets=sets, values=settings,
                              allow_large=allow_large)
        if opts:
            spec.check_run_options(config, opts, allow_large=allow_large_options)
    except ConfigError as err:
        return Point(params=params, options=tuple(sorted(opts.items())), reason=str(err))
    return Point(params=params, config=config, options=tuple(sorted(opts.items())))
