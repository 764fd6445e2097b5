"""Shared machinery for block configs: validation helpers, dict/TOML round trips, overrides,
digests and payload field descriptions. Pure Python: no Amaranth, no numpy, no cocotb.
"""

import dataclasses
import difflib
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, replace

from ..numerics import ConfigError

__all__ = ["ConfigError", "Config", "Field", "ArrayLayout", "RunOption", "Beats",
           "ProofContract", "check_int",
           "check_bool", "check_real", "check_str_list", "check_choice",
           "close_matches", "parse_set_value", "apply_overrides", "field_offsets", "load_toml",
           "parse_sets", "resolve_config", "check_plain", "LIMITS", "check_limit",
           "check_cost"]


def close_matches(value, allowed):
    """``" (did you mean 'x'?)"`` for a near miss, else ``""``."""
    near = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected an integer "
                          f"from {lo} to {hi}")
    return value


def check_bool(name, value):
    """``True`` or ``False`` only: ``1``, ``0``, ``1.0`` or ``"true"`` would build the same
    hardware under a different digest."""
    if value is not True and value is not False:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected true or false")
    return value


def check_real(name, value, lo, hi, *, expected=None):
    """A real number (an ``int`` or ``float``, not a ``bool``) from ``lo`` to ``hi``, so never
    NaN or infinite; returned as a ``float``. ``expected`` replaces the message's default
    description of what is allowed (``"a real number from <lo> to <hi>"``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected "
                          f"{expected or f'a real number from {lo!r} to {hi!r}'}")
    return float(value)


def check_str_list(name, value, example):
    """A non-empty list (or tuple) of distinct strings, or one comma-separated string
    (``"s8s8, s4s4"``; entries stripped of blanks); returned as a tuple."""
    if isinstance(value, str):
        value = tuple(v.strip() for v in value.split(","))
    if not isinstance(value, (list, tuple)) or not value \
            or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}: {value!r} is not allowed; expected a non-empty list of "
                          f"names such as {example}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{name}: {list(value)!r} lists an entry twice; each once")
    return tuple(value)


def check_choice(name, value, choices):
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name}: {value!r} is not allowed; expected one of {listed}"
                          f"{close_matches(value, choices)}")
    return value


@dataclass(frozen=True)
class ArrayLayout:
    """How a payload field holds an array of equal elements (the shape of Amaranth's
    ``data.ArrayLayout`` nested once per index, described without Amaranth), as the manifest
    publishes it.

    Element ``(i_0, ..., i_n-1)`` (``0 <= i_d < shape[d]``) holds the ``width`` bits of the
    field that start at bit ``sum(i_d * stride[d])`` (bit 0 is the field's LSB), read as a
    two's complement number when ``signed``. On an input stream the hardware ignores the
    field's bits that no element covers.

    Members
    -------
    shape : tuple of int
        Element count per index, outermost first.
    index : tuple of str
        What each index counts (``("lane", "element")``).
    stride : tuple of int
        Bits from one element to the next along each index.
    width : int
        Bits per element.
    signed : bool
    when : tuple of (str, value) pairs
        When this layout applies (a field with one layout per mode has several), e.g.
        ``(("field", "mode"), ("equals", 2), ("mode", "s8s4"))``: ``field`` names the payload
        field (``"<stream>.<field>"`` for another stream's) that selects the layout, ``equals``
        its value; ``field`` is None when only one layout is built. Empty: always.
    note : str
        What a user must know beyond the layout (ignored elements, value ranges).
    format : str
        The element format when the bits are codes rather than a plain integer (``"e4m3"``,
        ``"bf16"``, ``"p8"``: see :mod:`accelgen.formats`); empty for integers.
    """
    shape: tuple
    index: tuple
    stride: tuple
    width: int
    signed: bool = False
    when: tuple = ()
    note: str = ""
    format: str = ""

    def __post_init__(self):
        for name in ("shape", "index", "stride", "when"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not len(self.shape) == len(self.index) == len(self.stride) or not self.shape:
            raise ValueError(f"ArrayLayout: shape {self.shape}, index {self.index} and stride "
                             f"{self.stride} must have one (and the same) number of entries")

    def offsets(self):
        """``[(index tuple, bit offset)]`` of every element, the last index counting fastest."""
        out = [((), 0)]
        for count, stride in zip(self.shape, self.stride):
            out = [(idx + (i,), bit + i * stride) for idx, bit in out for i in range(count)]
        return out

    def to_dict(self):
        """The manifest's record (``when`` as an object; empty ``when``/``note`` left out)."""
        out = {"shape": list(self.shape), "index": list(self.index),
               "stride": list(self.stride), "width": self.width, "signed": self.signed}
        if self.when:
            out["when"] = dict(self.when)
        if self.note:
            out["note"] = self.note
        if self.format:
            out["format"] = self.format
        return out


@dataclass(frozen=True)
class Field:
    """One payload field, described without Amaranth: ``name``, ``width`` in bits and whether
    its bits are read as a two's complement number. Payload fields are packed LSB first in
    list order; :mod:`accelgen.hdl` builds its ``StructLayout`` from the same list.

    For the manifest (:func:`accelgen.generators.emit.build_manifest`), which the hardware
    never reads: ``doc``, what the field means to a user, and ``array``, the
    :class:`ArrayLayout` of the elements it packs (one per mode where the layout depends on
    one; empty for a plain number)."""
    name: str
    width: int
    signed: bool = False
    doc: str = ""
    array: tuple = ()

    def __post_init__(self):
        if isinstance(self.array, ArrayLayout):
            object.__setattr__(self, "array", (self.array,))
        object.__setattr__(self, "array", tuple(self.array))


def field_offsets(fields):
    """``{name: (offset, width, signed)}`` for fields packed LSB first."""
    out, offset = {}, 0
    for f in fields:
        out[f.name] = (offset, f.width, f.signed)
        offset += f.width
    return out


@dataclass(frozen=True)
class Beats:
    """A pair of a block's streams whose beats ``accelgen prove`` counts: each counted beat
    taken on ``source`` leaves as exactly one beat on ``sink``, and at most ``capacity``
    of them are inside the block at once (taken, not yet delivered).

    Members
    -------
    source, sink : str
        Port names of an input and an output stream.
    capacity : callable
        ``capacity(config)`` → int: beats the block can hold (its pipeline and buffers).
    counted : str or None
        A one-bit payload field of ``source``: only beats with it set produce an output
        beat (an accumulator's ``last``); None: every beat does.
    """
    source: str
    sink: str
    capacity: typing.Callable
    counted: str = None


@dataclass(frozen=True)
class ProofContract:
    """What ``accelgen prove`` needs to know about a block beyond its ports (every stream
    port gets the stream rules and the reset rule without being listed here).

    Members
    -------
    depth : int
        Default depth of the bounded check (``--depth``): enough cycles for a command or
        row to pass through the tiny preset and out.
    induction_depth : int or None
        Default depth of the k-induction (``--induction-depth``; None: ``depth``). The
        induction's cost grows fast with it; a property that is k-inductive stays so at
        any larger k.
    beats : tuple of Beats
        Stream pairs with a one-to-one beat relation.
    mutants : dict
        ``{name: family}``: bugs the block's hardware plants when a proof asks for them
        (``accelgen.hdl.common.formal.mutant(name)``), and the property family that must
        catch each.
    settings : dict
        Settings over a preset that bring the block's behaviour within the proof's depth
        (e.g. DRAM timings of a few cycles instead of hundreds), which the proof benchmark
        and tests apply and the mutants are shown with; ``accelgen prove`` itself proves the
        config it is given.
    """
    depth: int = 20
    induction_depth: int = None
    beats: tuple = ()
    mutants: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)

    def config(self, config):
        """``config`` with :attr:`settings` applied."""
        return config.with_settings(self.settings)


@dataclass(frozen=True)
class RunOption:
    """A block's own option of ``accelgen sim`` / :func:`accelgen.sim.runner.simulate` (e.g.
    ``--gemm MxKxN``): the CLI adds ``--<name>`` for it, the runner validates every given
    option with the block's ``check_run_options`` hook and hands the checked values to the
    testbench (``ACCELGEN_OPTIONS``).

    Members
    -------
    name : str
        ``--<name>`` on the command line, ``options[name]`` in the API.
    metavar, help : str
        For ``--help`` (the CLI appends which blocks take the option).
    testcase : str or None
        Given without ``--inputs``, the option runs only this testcase (``--gemm`` runs
        ``gemm``).
    show : bool
        ``accelgen show`` takes it too and answers it without simulating, from the golden
        model's ``model_report(config, options)`` (an analytic model: ``--gemm`` cycles).
    """
    name: str
    metavar: str
    help: str
    testcase: str = None
    show: bool = False


class Config:
    """Mixin for frozen, keyword-only config dataclasses.

    Subclasses validate every field in ``__post_init__`` and raise :class:`ConfigError`.
    Derived values are properties. ``to_dict``/``from_dict`` round-trip through JSON and TOML.
    """

    def to_dict(self):
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def with_settings(self, settings):
        """This config with the top-level ``settings`` replaced, validated again (raises
        :class:`ConfigError` when the result is refused)."""
        if not settings:
            return self
        return type(self).from_dict({**self.to_dict(), **settings})

    @classmethod
    def from_dict(cls, data, *, prefix=""):
        """Build and validate a config from a plain dict (JSON/TOML shaped). Unknown keys raise
        :class:`ConfigError` with the closest known name."""
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {data!r} is not a table of "
                              f"settings")
        names = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in data.items():
            if key not in names:
                raise ConfigError(f"{prefix}{key}: unknown setting; allowed are "
                                  f"{', '.join(names)}{close_matches(key, names)}")
            hint = hints.get(key)
            if isinstance(hint, type) and issubclass(hint, Config):
                value = hint.from_dict(value, prefix=f"{prefix}{key}.")
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as err:  # a wrong type that the validators did not catch first
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from None

    def digest(self):
        """12 hex digits naming this exact configuration (stable across runs and machines)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def stream_fields(self):
        """``{stream name: [Field, ...]}`` of the payloads the block's hardware builds, with
        their ``doc`` and ``array`` descriptions; the manifest publishes them beside the
        layouts it reads from the hardware. Blocks override it; the default describes none."""
        return {}

    @property
    def peak_macs_per_cycle(self):
        """Multiply-accumulates per clock cycle at full rate (the most over the built modes),
        for figures of merit such as GMAC/s and MACs/cycle per LUT; None for a block that
        does not multiply-accumulate. Blocks that do override it."""
        return None

    def cost_features(self):
        """Analytic quantities the hardware's size follows (``{name: number}``), for the
        resource estimator (:mod:`accelgen.explore.estimate`): the memory bits of
        :meth:`cost` and the peak MACs per cycle here; blocks add their own (products,
        accumulator bits, ...)."""
        out = {"memory_bits": sum(bits for bits, _ in self.cost().values())}
        if self.peak_macs_per_cycle is not None:
            out["peak_macs_per_cycle"] = self.peak_macs_per_cycle
        return out

    def cost(self):
        """What building this config costs, for the checks of :data:`LIMITS`:
        ``{"memory_bits": (bits, "how they add up")}`` (RAM and ROM bits the hardware holds).
        Blocks with memories override it; the default is no memory."""
        return {}


#: What a config and a simulation may cost before accelgen refuses them (``--allow-large``
#: lifts these limits): on-chip memory bits of one block (4 Mbit: the largest supported FPGA,
#: the ECP5-85F, has 3.7 Mbit of block RAM; elaborating 4 Mbit takes ~10 s of CPU, 8 Mbit
#: ~20 s, and 100 Mbit ran over ten minutes into 12 GB), and the clock cycles one simulation
#: is estimated to take (at the ~30,000 cycles/s of a cocotb run, 5e7 cycles are about half
#: an hour).
LIMITS = {"memory_bits": 1 << 22, "sim_cycles": 50_000_000}


def check_limit(name, value, what, allow_large=False):
    """Raise :class:`ConfigError` when ``value`` exceeds ``LIMITS[name]`` (unless
    ``allow_large``); ``what`` says what the value counts, e.g. ``"acc_depth x cols x
    acc_width"``."""
    limit = LIMITS[name]
    if not allow_large and value > limit:
        raise ConfigError(f"{what} = {value} {name.replace('_', ' ')} is not allowed; expected "
                          f"at most {limit} (--allow-large lifts the limit)")


def check_cost(config, allow_large=False):
    """:func:`check_limit` of every entry of ``config.cost()``."""
    for name, (value, what) in config.cost().items():
        check_limit(name, value, what, allow_large)
    return config


#: settings nest at most this deep (a block config inside a block config is two levels)
MAX_DEPTH = 16
#: integers in settings have at most this many bits (a Python int converts to text only
#: below ~14,000 bits, and no setting needs more than 64)
MAX_INT_BITS = 64


def check_plain(value, where, depth=0):
    """Raise :class:`ConfigError` unless ``value`` is plain settings data: numbers (integers
    of at most :data:`MAX_INT_BITS` bits), strings, booleans, and lists/tables of them nested
    at most :data:`MAX_DEPTH` deep. TOML's dates and times, huge integers and deep nesting
    are refused here, before any config sees them. Returns ``value``."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep, which is not "
                          f"allowed")
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_plain(item, where, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise ConfigError(f"{where}: an integer of {value.bit_length()} bits is not "
                              f"allowed; expected at most {MAX_INT_BITS} bits")
    elif not isinstance(value, (str, float, bool)):
        kind = type(value).__name__.replace("datetime", "date-time")
        raise ConfigError(f"{where}: a {kind} value is not allowed; expected numbers, "
                          f"strings, booleans, lists or tables")
    return value


def _loads(text, subject):
    """``tomllib.loads(text)``; the two ways TOML text can exhaust Python (an integer past its
    4300-digit conversion limit, nesting past the recursion limit) become one-line
    :class:`ConfigError` s about ``subject``. TOML syntax errors pass through."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:
        raise ConfigError(f"{subject} holds an integer of more than 4300 digits, which is not "
                          f"allowed; expected at most {MAX_INT_BITS} bits") from None
    except RecursionError:
        raise ConfigError(f"{subject} nests values more than {MAX_DEPTH} levels deep, which is "
                          f"not allowed") from None


def parse_set_value(text, key="value"):
    """Parse the value of ``--set key=value`` as a TOML value (``4``, ``true``, ``"s8"``,
    ``["s8s8", "s4s4"]``); anything TOML cannot read is taken as a plain string."""
    try:
        return _loads(f"v = {text}", f"--set: {key}=...")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data, overrides):
    """Return a copy of the nested dict ``data`` with dotted ``{"pe.lanes": 4}`` keys set."""
    data = json.loads(json.dumps(data))
    for dotted, value in overrides.items():
        node, *path = data, *dotted.split(".")
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                raise ConfigError(f"{dotted}: {key!r} is not a nested table of settings")
            node = node[key]
        node[path[-1]] = value
    return data


def _deep_merge(base, extra):
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_toml(path):
    """The settings table of a ``--config FILE.toml`` (checked by :func:`check_plain`)."""
    from pathlib import Path
    shown = str(path)
    if not shown:
        raise ConfigError("--config: '' is not allowed; expected the path of a TOML file")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config: {shown!r} is not a readable file")
    try:
        table = _loads(path.read_text(encoding="utf-8"), f"--config: {shown!r}")
    except OSError as err:
        raise ConfigError(f"--config: {shown!r} is not readable ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config: {shown!r} is not valid TOML: {err}") from None
    return check_plain(table, "")


def parse_sets(items):
    """``["lanes=4", "pe.acc_width=24"]`` → ``{"lanes": 4, "pe.acc_width": 24}``."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: {item!r} is not allowed; expected key=value, "
                              f"e.g. --set lanes=4")
        key = key.strip()
        out[key] = check_plain(parse_set_value(value.strip(), key), key)
    return out


def resolve_config(config_cls, preset_config, *, config_file=None, sets=(), values=None,
                   allow_large=False):
    """The config a command works on: ``preset_config``, then the ``--config`` file's
    settings, then each ``--set key=value`` (nested keys with dots), then ``values`` (``{dotted
    key: value}``, already parsed: one point of a sweep), validated by
    ``config_cls`` and checked against :data:`LIMITS` (unless ``allow_large``). Raises
    :class:`ConfigError`."""
    data = preset_config.to_dict()
    given = {}
    if config_file is not None:
        given = load_toml(config_file)
        data = _deep_merge(data, given)
    overrides = parse_sets(sets)
    for key, value in (values or {}).items():
        overrides[key] = check_plain(value, key)
    data = apply_overrides(data, overrides)
    data = _rederive(preset_config, data, given, overrides)
    return check_cost(config_cls.from_dict(data), allow_large)


def _rederive(preset_config, data, given, overrides):
    """Fields the config derives from the others when left at ``"auto"`` (its
    ``AUTO_FIELDS``) go back to ``"auto"`` when the preset holds just the derived value and
    the user did not set them: ``--set modes=[...]`` then re-derives, say, the accumulation of
    the new modes instead of keeping the preset's."""
    auto = getattr(type(preset_config), "AUTO_FIELDS", ())
    set_keys = {k.split(".")[0] for k in dict(overrides)} | set(given)
    for name in auto:
        if name in set_keys:
            continue
        try:
            derived = replace(preset_config, **{name: "auto"})
        except ConfigError:     # "auto" would derive a value the other settings refuse
            continue
        if getattr(derived, name) == getattr(preset_config, name):
            data[name] = "auto"
    return data
