"""Pack and unpack stream payloads described by :class:`accelgen.generators.base.Field` lists.

Payload words are Python integers (payloads may be hundreds of bits wide); fields are packed
LSB first in list order, exactly as the block's ``data.StructLayout`` places them.
"""

import numpy as np

from ..generators.base import field_offsets

__all__ = ["pack", "unpack", "payload_width"]


def payload_width(fields):
    return sum(f.width for f in fields)


def pack(fields, values):
    """``values``: ``{field name: sequence of ints}`` (missing fields are zero) → list of
    payload integers. Signed values are stored in two's complement."""
    lengths = {len(v) for v in values.values()}
    if len(lengths) > 1:
        raise ValueError(f"payload fields have different lengths: {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    words = [0] * count
    for name, (offset, width, _signed) in field_offsets(fields).items():
        if name not in values:
            continue
        mask = (1 << width) - 1
        for i, v in enumerate(values[name]):
            words[i] |= (int(v) & mask) << offset
    return words


def unpack(fields, words):
    """List of payload integers → ``{field name: array}``; fields wider than 62 bits come back
    as object arrays of Python ints, the rest as ``int64``."""
    out = {}
    for name, (offset, width, signed) in field_offsets(fields).items():
        mask = (1 << width) - 1
        vals = [(int(w) >> offset) & mask for w in words]
        if signed:
            vals = [v - (1 << width) if v >> (width - 1) else v for v in vals]
        out[name] = np.array(vals, dtype=object if width > 62 else np.int64)
    return out
