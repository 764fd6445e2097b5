"""Loop nests in hardware: the counters of a tiling loop nest as registers.

A controller that walks a blocked iteration space (``for nb: for mb: for k:``) needs, per
level, the counter, whether it is at its first or last value and how much of the block the
current iteration covers (the last block of a dimension may be partial). :class:`LoopNest`
keeps all of that in registers that are computed when the counters move, so a consumer's
issue logic reads flip-flops only and loop control adds no adders or comparators to it.
"""

from amaranth.hdl import Const, Elaboratable, Module, Mux, Signal

__all__ = ["LoopNest"]


class LoopNest(Elaboratable):
    """Counters of a loop nest, outermost level first.

    Level ``l`` counts ``0, step[l], 2*step[l], ...`` while below ``limit[l]``; ``advance``
    steps the innermost level and carries outwards, ``done`` is set after the final iteration
    and ``start`` clears everything. Every level runs at least once (with a ``limit`` of 0, once
    with ``chunk`` 0: callers reject empty dimensions).

    Parameters
    ----------
    steps : sequence of int
        Step of each level, outermost first (each at least 1).
    width : int
        Width of the counters.
    limit_width : int
        Width of the ``limit`` ports (default ``width``); wide enough for every limit value.
    name : str
        Prefix of the signal names.

    Members
    -------
    start : Signal(), in
        Clears the nest (``ctr`` 0, ``first`` 1, ``done`` 0) and samples ``limit``. It takes
        precedence over ``advance``.
    advance : Signal(), in
        The current iteration is over; go to the next one.
    limit : list of Signal(limit_width), in
        Per level; sampled on ``start`` and whenever the level wraps, so it must hold still
        from the cycle before ``start`` until ``done`` (its compares with the step are
        registers, loaded in every cycle: a command register that is loaded at least a cycle
        before ``start`` meets this).
    ctr : list of Signal(width), out
        Per level, the current value (a multiple of the level's step).
    first, end : list of Signal(), out
        Per level, the counter is at its first / last value.
    chunk : list of Signal(range(step + 1)), out
        Per level, ``min(step, limit - ctr)``: how many rows or columns this iteration covers.
    wrap : list of Signal(), out
        Per level, combinational: the level wraps to 0 on this cycle's ``advance``.
    final : Signal(), out
        Combinational from registers: every level is at its last value.
    last_from : list of Signal(), out
        Per level, a register: every level from this one inwards is at its last value (the
        level wraps if this cycle advances; ``wrap[n]`` is ``advance & last_from[n]``, and
        ``final`` is ``last_from[0]``).
    done : Signal(), out
        The final iteration has been advanced past.
    end_next, first_next, last_from_next : list of Signal(), out
    done_next, final_next : Signal(), out
    ctr_next, chunk_next : list of Signal, out
        Combinational: what ``end``, ``first``, ``last_from``, ``done``, ``final``, ``ctr`` and
        ``chunk`` hold in the next cycle
        (for a consumer that registers a decision a cycle ahead, or that addresses a memory
        a cycle early).

    Timing
    ------
    ``ctr``, ``first``, ``end``, ``chunk`` and ``done`` are registers: they show the effect of
    ``start`` or ``advance`` in the cycle after it. ``wrap`` depends combinationally on
    ``advance`` (and registers), ``final`` on registers only. One ``advance`` per cycle is
    allowed. After the final iteration every level has wrapped to its first value and ``done``
    is high until the next ``start``; consumers gate ``advance`` with ``~done``.
    """

    def __init__(self, steps, *, width, limit_width=None, name):
        self.steps = tuple(steps)
        self.width = width
        count = len(self.steps)
        self.start = Signal(name=f"{name}_start")
        self.advance = Signal(name=f"{name}_advance")
        self.limit = [Signal(limit_width or width, name=f"{name}_limit{n}")
                      for n in range(count)]
        self.ctr = [Signal(width, name=f"{name}_c{n}") for n in range(count)]
        self.end = [Signal(name=f"{name}_end{n}") for n in range(count)]
        self.first = [Signal(name=f"{name}_first{n}", init=1) for n in range(count)]
        self.chunk = [Signal(range(step + 1), name=f"{name}_chunk{n}")
                      for n, step in enumerate(self.steps)]
        self.wrap = [Signal(name=f"{name}_wrap{n}") for n in range(count)]
        self.final = Signal(name=f"{name}_final")
        self.last_from = [Signal(name=f"{name}_lastfrom{n}") for n in range(count)]
        self.last_from_next = [Signal(name=f"{name}_lastfrom{n}_next") for n in range(count)]
        self.done = Signal(name=f"{name}_done")
        self.end_next = [Signal(name=f"{name}_end{n}_next") for n in range(count)]
        self.first_next = [Signal(name=f"{name}_first{n}_next") for n in range(count)]
        self.done_next = Signal(name=f"{name}_done_next")
        self.final_next = Signal(name=f"{name}_final_next")
        self.ctr_next = [Signal(width, name=f"{name}_c{n}_next") for n in range(count)]
        self.chunk_next = [Signal(range(step + 1), name=f"{name}_chunk{n}_next")
                           for n, step in enumerate(self.steps)]
        self._rem = [Signal(width + 1, name=f"{name}_rem{n}") for n in range(count)]
        self._name = name

    def drive(self, *, start, advance, limits):
        """The assignments of the input ports, for the parent's ``m.d.comb``."""
        return [self.start.eq(start), self.advance.eq(advance),
                *(port.eq(value) for port, value in zip(self.limit, limits, strict=True))]

    def elaborate(self, platform):
        m = Module()
        count = len(self.steps)
        # ``last_from[n]``: every level from ``n`` inwards is at its last value. A register, so
        # the carry into a level is one gate of ``advance``; its next value is computed from
        # registers only, for the case that this cycle advances (``advance`` just picks it).
        last_from = self.last_from + [Const(1, 1)]
        end_start, end_advanced = [], []
        for n in range(count):
            limit, step, rem = self.limit[n], self.steps[n], self._rem[n]
            wraps, carries = last_from[n], last_from[n + 1]     # if this cycle advances
            m.d.comb += self.wrap[n].eq(self.advance & wraps)
            left = rem - step                          # what remains after this iteration
            # the level's first value is its last (``limit <= step``) and the one after next
            # will be (``limit <= 2 step``): compares of the steady limit, as registers, so
            # no carry chain of the limit's source reaches the flags (see ``limit``)
            first_end = Signal(name=f"{self._name}_firstend{n}")
            first_near = Signal(name=f"{self._name}_firstnear{n}")
            m.d.sync += [first_end.eq(limit <= step), first_near.eq(limit <= 2 * step)]
            # ``near``: the level will be at its last value after one more carry (``rem <=
            # 2 step``), a register beside ``end``, so the end flag after an advance is a
            # choice between registers (and ``first_end``)
            near = Signal(name=f"{self._name}_near{n}")
            end_advanced.append(Mux(wraps, first_end, Mux(carries, near, self.end[n])))
            end_start.append(first_end)
            m.d.comb += [
                self.end_next[n].eq(Mux(self.start, first_end,
                                        Mux(self.advance, end_advanced[n], self.end[n]))),
                self.first_next[n].eq(Mux(self.start | self.wrap[n], 1,
                                          ~(self.advance & carries) & self.first[n]))]
            # the flags' next values exist once, as the ``*_next`` outputs
            m.d.sync += [self.end[n].eq(self.end_next[n]), self.first[n].eq(self.first_next[n])]
            m.d.sync += [self.ctr[n].eq(self.ctr_next[n]),
                         self.chunk[n].eq(self.chunk_next[n])]
            with m.If(self.start | self.wrap[n]):
                m.d.comb += [self.ctr_next[n].eq(0),
                             self.chunk_next[n].eq(Mux(first_end, limit, step))]
                m.d.sync += [rem.eq(limit), near.eq(first_near)]
            with m.Elif(self.advance & carries):
                # ``left <= 2 step`` as ``rem <= 3 step``: a compare of a register, beside
                # the subtraction rather than after it; ``near`` is ``rem <= 2 step`` (so
                # from ``start`` on), so the next chunk is a choice between registers and
                # ``left``, with no compare in front
                m.d.comb += [self.ctr_next[n].eq(self.ctr[n] + step),
                             self.chunk_next[n].eq(Mux(near, left, step))]
                m.d.sync += [rem.eq(left), near.eq(rem <= 3 * step)]
            with m.Else():
                m.d.comb += [self.ctr_next[n].eq(self.ctr[n]),
                             self.chunk_next[n].eq(self.chunk[n])]
        for n in range(count):
            m.d.comb += self.last_from_next[n].eq(
                Mux(self.start, _all(end_start[n:]),
                    Mux(self.advance, _all(end_advanced[n:]), last_from[n])))
            m.d.sync += last_from[n].eq(self.last_from_next[n])
        m.d.comb += self.final_next.eq(self.last_from_next[0])
        m.d.comb += self.final.eq(last_from[0])
        m.d.comb += self.done_next.eq(~self.start & (self.done | self.advance & self.final))
        m.d.sync += self.done.eq(self.done_next)
        return m


def _all(flags):
    result = Const(1, 1)
    for flag in flags:
        result = result & flag
    return result
