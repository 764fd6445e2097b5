"""Constant tables in block RAM: an :class:`amaranth.lib.memory.Memory` with initial contents
and no write port, read through synchronous read ports.

A table whose entries are tuples (a PWL segment's slope and intercept, say) is one memory
with the fields packed side by side in each word, each field in the fewest two's complement
bits that hold all of its values, so one read returns a whole entry.
"""

from amaranth.hdl import Shape, unsigned
from amaranth.lib.memory import Memory

from ...approx import signed_bits

__all__ = ["ROM"]


class ROM:
    """A read-only table added to ``m`` as submodule ``name``.

    Parameters
    ----------
    m : Module
    name : str
        The memory's submodule name.
    entries : sequence
        One entry per address: integers, or equal-length tuples of signed integers (fields).
    shape : shape-castable or None
        Word shape for integer entries; ``None`` takes the narrowest shape that holds every
        entry. Tuple entries are packed into ``unsigned(sum(widths))`` words.

    Members
    -------
    memory : Memory
    widths : tuple of int or None
        Bits of each field, first field at bit 0 (tuple entries only).

    Timing
    ------
    A read port from :meth:`read_port` is synchronous: ``data`` holds the entry at the ``addr``
    of the previous clock edge on which its ``en`` was high (always, by default), so a ROM read
    is one pipeline stage; with ``en`` tied to a pipeline's enable it stalls with the pipeline.
    Any number of read ports (one per lane) share the contents.
    """

    def __init__(self, m, name, entries, *, shape=None):
        entries = list(entries)
        if entries and isinstance(entries[0], tuple):
            self.widths = tuple(max(signed_bits(e[i]) for e in entries)
                                for i in range(len(entries[0])))
            words = [self._pack(entry) for entry in entries]
            shape = unsigned(sum(self.widths))
        else:
            self.widths = None
            words = entries
            if shape is None:
                shape = Shape.cast(range(min(entries), max(entries) + 1))
        self.memory = Memory(shape=shape, depth=len(words), init=words)
        m.submodules[name] = self.memory

    def _pack(self, entry):
        word, offset = 0, 0
        for value, width in zip(entry, self.widths):
            word |= (value & ((1 << width) - 1)) << offset
            offset += width
        return word

    def read_port(self, *, src_loc_at=0, **kwargs):
        """A synchronous read port (keyword arguments as :meth:`Memory.read_port`), its signals
        named after the caller's variable."""
        return self.memory.read_port(src_loc_at=1 + src_loc_at, **kwargs)

    def fields(self, word):
        """The signed fields of a word read from a table of tuple entries."""
        out, offset = [], 0
        for width in self.widths:
            out.append(word[offset:offset + width].as_signed())
            offset += width
        return out
