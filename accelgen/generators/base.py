"""Shared machinery for block configs: validation helpers, dict/TOML round trips, overrides,
digests and payload field descriptions. Pure Python: no Amaranth, no numpy, no cocotb.
"""

import dataclasses
import difflib
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass

from ..numerics import ConfigError

__all__ = ["ConfigError", "Config", "Field", "check_int", "check_choice", "close_matches",
           "parse_set_value", "apply_overrides", "field_offsets"]


def close_matches(value, allowed):
    """``" (did you mean 'x'?)"`` for a near miss, else ``""``."""
    near = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name}: {value!r} is not allowed; expected an integer "
                          f"from {lo} to {hi}")
    return value


def check_choice(name, value, choices):
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name}: {value!r} is not allowed; expected one of {listed}"
                          f"{close_matches(value, choices)}")
    return value


@dataclass(frozen=True)
class Field:
    """One payload field, described without Amaranth: ``name``, ``width`` in bits and whether
    its bits are read as a two's complement number. Payload fields are packed LSB first in
    list order; :mod:`accelgen.hdl` builds its ``StructLayout`` from the same list."""
    name: str
    width: int
    signed: bool = False


def field_offsets(fields):
    """``{name: (offset, width, signed)}`` for fields packed LSB first."""
    out, offset = {}, 0
    for f in fields:
        out[f.name] = (offset, f.width, f.signed)
        offset += f.width
    return out


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

    @classmethod
    def from_dict(cls, data, *, prefix=""):
        """Build and validate a config from a plain dict (JSON/TOML shaped). Unknown keys raise
        :class:`ConfigError` with the closest known name."""
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix or 'config'}: {data!r} is not a table of settings")
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
            raise ConfigError(f"{prefix or 'config'}: {err}") from None

    def digest(self):
        """12 hex digits naming this exact configuration (stable across runs and machines)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_set_value(text):
    """Parse the value of ``--set key=value`` as a TOML value (``4``, ``true``, ``"s8"``,
    ``["s8s8", "s4s4"]``); anything TOML cannot read is taken as a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
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
