"""Read a block's ``<top>.json`` manifest and pack/unpack stream payloads from it alone.

The manifest written by :func:`accelgen.generators.emit.emit` is the contract between a
generated ``.v`` file and whoever drives it. This module depends on nothing but the standard
library, so a testbench (or a host script) can drive the Verilog knowing only the manifest:

::

    m = Manifest.load("build/<top>.json")
    word = m.pack("i", {"a": 0x12, "b": 0x34, "clear": 1, "last": 1})
    m.unpack("o", word)          # -> {"acc0": -5, "err": 0}

Payload words are Python integers (payloads may be hundreds of bits wide); a field is stored
at its ``offset`` as ``width`` bits, two's complement when ``signed``. Values are masked to the
field width on packing, exactly as the hardware would truncate them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PayloadField", "Manifest", "load_manifest", "pack_word", "unpack_word"]


@dataclass(frozen=True)
class PayloadField:
    """One field of a stream payload, as the manifest lists it.

    Members
    -------
    name : str
    offset : int
        Bit position of the field's LSB inside the payload word.
    width : int
    signed : bool
        Whether the field's bits are read as a two's complement number.
    """
    name: str
    offset: int
    width: int
    signed: bool = False

    @property
    def mask(self):
        return (1 << self.width) - 1

    def insert(self, word, value):
        """``word`` with this field set to ``value`` (masked to the field width)."""
        return (word & ~(self.mask << self.offset)) | ((int(value) & self.mask) << self.offset)

    def extract(self, word):
        """This field's value in ``word``; sign-extended when ``signed``."""
        raw = (int(word) >> self.offset) & self.mask
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw


def pack_word(fields, values):
    """One payload integer from ``{field name: int}``; missing fields are zero. Unknown names
    raise :class:`KeyError` (a typo would otherwise silently send zeros)."""
    by_name = {f.name: f for f in fields}
    unknown = set(values) - set(by_name)
    if unknown:
        raise KeyError(f"unknown payload fields {sorted(unknown)}; the payload has "
                       f"{', '.join(by_name)}")
    word = 0
    for name, value in values.items():
        word = by_name[name].insert(word, value)
    return word


def unpack_word(fields, word):
    """``{field name: int}`` of one payload integer."""
    return {f.name: f.extract(word) for f in fields}


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest.

    Members
    -------
    data : dict
        The JSON document as read (``generator``, ``preset``, ``top``, ``config``, ``digest``,
        ``derived``, ``ports``, ``streams``, ``tools``).
    path : Path or None
        Where it was read from; the Verilog file named by ``data["verilog"]`` sits beside it.
    """
    data: dict
    path: Path = None

    @classmethod
    def load(cls, path):
        path = Path(path)
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f), path)

    def __getitem__(self, key):
        return self.data[key]

    @property
    def top(self):
        return self.data["top"]

    @property
    def config(self):
        return self.data["config"]

    @property
    def derived(self):
        return self.data["derived"]

    @property
    def verilog_path(self):
        return (self.path.parent if self.path else Path()) / self.data["verilog"]

    def stream(self, name):
        """The manifest record of stream ``name`` (``payload``/``valid``/``ready`` port names,
        ``width``, ``fields``, ``dir``)."""
        streams = self.data["streams"]
        if name not in streams:
            raise KeyError(f"stream {name!r} is not in the manifest; it has "
                           f"{', '.join(streams)}")
        return streams[name]

    def fields(self, stream):
        """:class:`PayloadField` list of ``stream``'s payload, LSB first."""
        return [PayloadField(f["name"], f["offset"], f["width"], bool(f["signed"]))
                for f in sorted(self.stream(stream)["fields"], key=lambda f: f["offset"])]

    def width(self, stream):
        return self.stream(stream)["width"]

    def pack(self, stream, values):
        """One payload integer of ``stream`` from ``{field: int}``."""
        return pack_word(self.fields(stream), values)

    def unpack(self, stream, word):
        """``{field: int}`` of one payload integer of ``stream``."""
        return unpack_word(self.fields(stream), word)

    def unpack_many(self, stream, words):
        """``{field: [int, ...]}`` of a sequence of payload integers."""
        fields = self.fields(stream)
        return {f.name: [f.extract(w) for w in words] for f in fields}


def load_manifest(path):
    """:meth:`Manifest.load`."""
    return Manifest.load(path)
