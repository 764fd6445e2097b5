"""Stream payload layouts built from the configs' pure :class:`~accelgen.generators.base.Field`
lists, so the hardware and the golden model's payload packing share one description; and the
base of the blocks with one input and one output stream."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["payload_layout", "stream_signature", "StreamBlock"]


def payload_layout(fields):
    """``data.StructLayout`` with the fields in list order (LSB first)."""
    return data.StructLayout({f.name: (signed if f.signed else unsigned)(f.width)
                              for f in fields})


def stream_signature(fields):
    return stream.Signature(payload_layout(fields))


class StreamBlock(wiring.Component):
    """A block built from a config with one input stream ``i`` (payload
    ``config.input_fields``) and one output stream ``o`` (``config.output_fields``).
    Subclasses implement ``elaborate`` and document the streams and their timing.

    Members
    -------
    config
        The block's config.
    i : In(stream.Signature(...))
    o : Out(stream.Signature(...))
    latency : int
        ``config.latency``, the value the manifest publishes.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "i": In(stream_signature(config.input_fields)),
            "o": Out(stream_signature(config.output_fields)),
        })

    @property
    def latency(self):
        return self.config.latency
