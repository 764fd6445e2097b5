"""Stream payload layouts built from the configs' pure :class:`~accelgen.generators.base.Field`
lists, so the hardware and the golden model's payload packing share one description."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream

__all__ = ["payload_layout", "stream_signature"]


def payload_layout(fields):
    """``data.StructLayout`` with the fields in list order (LSB first)."""
    return data.StructLayout({f.name: (signed if f.signed else unsigned)(f.width)
                              for f in fields})


def stream_signature(fields):
    return stream.Signature(payload_layout(fields))
