"""The issue side of the ``systolic`` block: the ``a`` FIFO and the feeder that turns its beats
into array steps.

The feeder decides, once per cycle, whether the next step of the command's loop nest may enter
the array. A step needs its ``a`` beat, its B panel (os) or its weight tile (ws), and room for
its results: the array never stalls, so every row it produces must find a free row in the
accumulator memory. The feeder keeps that room as a credit (rows of the ring not yet claimed
by an issued step) that the drain returns one row at a time.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common import formal
from ..common.arith import lut_product
from ..common.loopnest import LoopNest
from ..common.stream import stream_signature
from ._util import lookahead, null_operand, panel_k_bits, read_array_operand, unit_start
from .control import event_signature, task_signature

__all__ = ["AIntake", "Feeder", "step_beats_signature"]


def step_beats_signature(config):
    """The ``a`` FIFO's read side: one step's R operand slots per beat."""
    return stream.Signature(unsigned(config.rows * config.a_width))


def _step_nest(config, name):
    """The loop nest of the steps: os (nb, mb, k), ws (nb, kb, m)."""
    return LoopNest((config.cols, config.rows, 1), width=config.dim_bits, name=name)


def _step_limits(task):
    p = task.params
    return [p.n, Mux(task.ws, p.k, p.m), Mux(task.ws, p.m, p.k)]


class AIntake(wiring.Component):
    """The ``a`` FIFO, filled with exactly the command's ``a`` beats.

    Members
    -------
    task : In(task_signature(config))
    a : In(stream_signature(config.a_fields))
        The block's ``a`` stream.
    steps : Out(step_beats_signature(config))
        The FIFO's read side, to the feeder.
    valid_next : Out(1)
        Combinational: what ``steps.valid`` holds in the next cycle.

    Timing
    ------
    ``a.ready`` is a register: high in RUN while the command's beats are not all taken and
    the FIFO has room for one more beat whatever the feeder reads (an intake loop nest that
    mirrors the feeder's counts the beats, so beats of the next command are never taken
    early; the beats taken and not yet read, the FIFO's level and the registered beat, are
    counted without this cycle's read, so the FIFO is one beat deeper than ``a_depth``). It
    is computed a cycle ahead from ``task.run_open`` and this cycle's take, so the block's
    ``a.ready`` and the intake's
    counters hang off flip-flops. A beat taken in cycle ``t`` is registered (every cycle,
    taken or not: no enable), written into the FIFO in ``t + 1`` and on ``steps`` from
    ``t + 2``. The FIFO's head is read straight from its (distributed) memory: the feeder's
    read moves a pointer, and no register bank waits on its decision. Its write enable is the
    registered beat itself (``a.ready`` already guarantees room, so no "not full" gate sits
    between that flip-flop and the memory) and ``steps.valid`` is a register (``valid_next``
    registered): on the 8x8 array a ``SyncFIFO``'s full/empty gates, shared with the feeder,
    put 6 ns of routing between its level register and its own clock enable.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "a": In(stream_signature(config.a_fields)),
            "steps": Out(step_beats_signature(config)),
            "valid_next": Out(1),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        start = unit_start(m, task, name="ai")
        depth = cfg.a_depth + 1
        width = cfg.rows * cfg.a_width
        take = Signal(name="ai_take")
        ready = Signal(name="ai_ready")
        beat, beat_valid = Signal(width, name="ai_beat"), Signal(name="ai_beat_valid")
        m.d.sync += [beat.eq(self.a.payload.a), beat_valid.eq(take)]
        # the loop counts the registered beats, a cycle after their take: ``take`` (the
        # block's ``a.valid`` behind the ``a.ready`` register) then only gates registers, not
        # the loop's counters (8x8 out of context: 7.8 ns into them). No beat is in flight
        # when ``start`` clears the loop: ``a.ready`` opens with RUN.
        m.submodules.loop = loop = _step_nest(cfg, "ai")
        m.d.comb += loop.drive(start=start, advance=beat_valid, limits=_step_limits(task))
        valid = Signal(name="ai_valid")                     # the FIFO holds a beat
        read = valid & self.steps.ready
        level = Signal(range(depth + 1), name="ai_level")   # beats in the FIFO
        m.d.sync += level.eq(level + beat_valid - read)
        formal.occupancy(m, "a FIFO", level, push=beat_valid, pop=read, depth=depth)
        # next cycle's ready, with the room counted as if the feeder read nothing now: the
        # FIFO can then hold what comes even if the feeder reads nothing next cycle either.
        # Beats taken and not read are ``level + beat_valid``, and this cycle's take adds
        # one: ``level`` compared with each threshold, the take and the registered beat pick
        # (each term for both values of ``take``, which picks last).
        all_taken = ~start & Mux(take, loop.done_next | loop.final_next, loop.done_next)
        room = Mux(take, Mux(beat_valid, level < depth - 2, level < depth - 1),
                   Mux(beat_valid, level < depth - 1, level < depth))
        m.d.sync += ready.eq(task.run_open & ~all_taken & room)
        # what steps.valid holds in the next cycle (the feeder decides its steps a cycle
        # ahead): ``level + beat_valid - read != 0``, as compares of the level register that
        # the late read only picks (a read needs ``level >= 1``)
        m.d.comb += self.valid_next.eq(beat_valid | Mux(read, level != 1, level != 0))
        m.d.sync += valid.eq(self.valid_next)
        m.submodules.mem = mem = Memory(shape=width, depth=depth, init=[])
        w_port, r_port = mem.write_port(), mem.read_port(domain="comb")
        m.d.comb += [
            self.a.ready.eq(ready),
            take.eq(self.a.valid & ready),
            w_port.en.eq(beat_valid), w_port.data.eq(beat),
            w_port.addr.eq(_ring_pointer(m, w_port.addr, beat_valid, depth, "ai_produce")),
            r_port.addr.eq(_ring_pointer(m, r_port.addr, read, depth, "ai_consume")),
            self.steps.valid.eq(valid), self.steps.payload.eq(r_port.data),
        ]
        return m


def _ring_pointer(m, addr, advance, depth, name):
    """A pointer into a ring of ``depth`` entries that moves one entry each cycle ``advance``
    is high: returns the register, to be assigned to ``addr``."""
    pointer = Signal.like(addr, name=name)
    with m.If(advance):
        m.d.sync += pointer.eq(Mux(pointer == depth - 1, 0, pointer + 1))
    return pointer


class Feeder(wiring.Component):
    """Issues one step per cycle (or a bubble) into the array.

    Members
    -------
    task : In(task_signature(config))
    a : In(step_beats_signature(config))
        ``a`` beats from the FIFO; one is taken per issued step.
    bank_full : In(2); fill_bank : In(1); fill_rows : In(panel_k_bits + 1)
    fill_take, fill_last : In(1)
        The B-panel banks that hold a complete panel; the bank being filled, the count of its
        rows written, whether one is written in this cycle and whether that row would be its
        panel's last (an os step may read a row of a panel still being loaded).
    panel_addr_next : Out(panel_k_bits + 1), panel_release : Out(2)
        os: the panel row (bank, k) of the step in the next cycle (combinational: the panel
        buffer reads it a cycle early and returns it in the cycle after that step, when F1
        holds the step); the bank freed by the last step of a panel (one-hot, for one
        cycle).
    w_ready, w_bank_ready : In(1)
        ws, from the weight loader: the next weight tile is in the shadow chain / the panel
        it loads from is complete (for ``stall_b`` only). 0 in os-only builds.
    credit : In(1)
        The drain has read one row out of the accumulator memory: one more row of credit.
    a_valid_next, w_ready_next : In(1)
        What ``a.valid`` and ``w_ready`` hold in the next cycle (combinational): the issue
        decision is taken a cycle ahead.
    a_ops : Out(signed(operand_width)).array(rows), last, swap, valid : Out(1)
        To the array: the step's A operands in the command's mode, and its tags (os: last
        step of a tile; ws: first step of a weight tile, not a bubble). Zeros for a bubble;
        float builds send the null operand for a bubble and for ws elements past K.
    swap_issued : Out(1)
        ws: a ``swap`` step is issued in this cycle (the weight loader may start the next
        tile once it has passed every PE).

    done : Out(1)
        Every step of the command has been issued.
    events : Out(event_signature(config))
        Activity for the counters.

    Timing
    ------
    A step is issued (``events.step``, ``a.ready``) in the cycle its conditions hold (the
    decision is a register, computed in the cycle before from the next-state values); the
    array operands and tags are registered (F1) and on the outputs in the next cycle, with
    the panel row read for it. An os tile's last step claims the tile's rows of credit and
    holds the next tile's last step back until ``R`` cycles later (the array's result chain
    carries one row per cycle); a ws step of the first K-block claims one row.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "a": In(step_beats_signature(config)),
            "bank_full": In(2),
            "fill_bank": In(1),
            "fill_rows": In(panel_k_bits(config) + 1),
            "fill_take": In(1),
            "fill_last": In(1),
            "panel_addr_next": Out(panel_k_bits(config) + 1),
            "panel_release": Out(2),
            "w_ready": In(1),
            "w_bank_ready": In(1),
            "credit": In(1),
            "a_valid_next": In(1),
            "w_ready_next": In(1),
            "a_ops": Out(signed(config.operand_width)).array(config.rows),
            "last": Out(1),
            "swap": Out(1),
            "valid": Out(1),
            "swap_issued": Out(1),
            "done": Out(1),
            "events": Out(event_signature(config)),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        start = unit_start(m, task, name="fd")
        R = cfg.rows
        ws = task.ws
        # The issue decision is a register: ``step`` (issued in this cycle) was decided in the
        # previous one, from what every input of the decision holds in this cycle (the
        # units' next-state values). So it is the same decision as one taken from this
        # cycle's values, in every cycle, and its fan-out hangs off a flip-flop.
        step = Signal(name="step")
        m.submodules.loop = loop = _step_nest(cfg, "fd")
        m.d.comb += loop.drive(start=start, advance=step, limits=_step_limits(task))
        m.d.comb += self.done.eq(loop.done)
        bank, bank_next = self._panel_bank(m, start, loop, step)

        # Ring credit: accumulator-memory rows not yet claimed by an issued step. An os tile
        # claims its rows with its last step, a ws row with its step of the first K-block;
        # the drain gives one back per row it reads out. (Commands that keep their rows were
        # checked to fit, so their credit never runs out.)
        credit = Signal(range(cfg.acc_depth + 1), name="fd_credit")
        rv = loop.chunk[1]                  # os: rows of this tile in M (ws: rows of K)
        # os: capture spacing and ring credit for the tile's rows
        gap = Signal(range(R), name="fd_gap")
        gap_next = Signal(range(R), name="fd_gap_next")
        os_last = loop.end[2]
        # rows a step claims, if it goes: an os tile's last step its rows, a ws step of the
        # first K-block one
        step_claim = Mux(ws, loop.first[1], Mux(os_last, rv, 0))
        os_ring_ok, os_ring_ok_next = self._ring_credit_covers(m, start, step, credit, os_last,
                                                               loop)
        row_in, row_in_next = self._row_written(m, start, loop, step)
        panel_full = self.bank_full.bit_select(bank, 1) | \
            ((self.fill_bank == bank) & row_in)                         # or this row is in
        os_ok = panel_full & (~os_last | ((gap == 0) & os_ring_ok))
        # ws: the weight tile must be loaded for its first row
        ws_first = loop.first[2]
        ws_claims = loop.first[1]
        ws_ring_ok, ws_ring_ok_next = self._credit_left(m, start, step, credit, ws_claims)
        ws_ok = (~ws_first | self.w_ready) & (~ws_claims | ws_ring_ok)
        ready = Signal(name="fd_ready")     # this cycle's conditions (for the counters)
        m.d.comb += [
            ready.eq(task.run & ~loop.done & Mux(ws, ws_ok, os_ok)),
            self.a.ready.eq(step),
        ]
        # the same conditions as they will be in the next cycle; os: for both values of this
        # cycle's panel write, which picks one as the decision's last gate
        os_ring_next = ~loop.end_next[2] | ((gap_next == 0) & os_ring_ok_next)
        os_ok_next = Mux(self.fill_take,
                         *(self._panel_full_next(start, bank_next, take, row_in_next[take]) &
                           os_ring_next for take in (1, 0)))
        ws_ok_next = (~loop.first_next[2] | self.w_ready_next) & \
            (~loop.first_next[1] | ws_ring_ok_next)
        # ``run``, not ``run_next``: they differ only in the cycle RUN begins (no ``a`` beat
        # can be in the FIFO then: the intake takes beats from RUN on) and once the command
        # is finishing (the feeder is done then), so the controller's state logic stays off
        # the issue path
        m.d.sync += step.eq(task.run & ~loop.done_next & self.a_valid_next &
                            Mux(ws, ws_ok_next, os_ok_next))
        claim = Mux(step, step_claim, 0)
        with m.If(start):
            # (a proof may plant an extra row of credit, a bug its ring check must catch)
            m.d.sync += credit.eq(cfg.acc_depth + formal.mutant("credit-off-by-one"))
        with m.Else():
            m.d.sync += credit.eq(credit - claim + self.credit)
            formal.counter(m, "ring credit", credit - claim + self.credit, hi=cfg.acc_depth,
                           family="fifo")
        with m.If(start):
            m.d.comb += gap_next.eq(0)
        with m.Elif(step & ~ws & os_last):
            m.d.comb += gap_next.eq(R - 1)
        with m.Elif(gap != 0):
            m.d.comb += gap_next.eq(gap - 1)
        with m.Else():
            m.d.comb += gap_next.eq(gap)
        m.d.sync += gap.eq(gap_next)

        # os: the panel row for the next cycle's step (read a cycle early, so the block RAM's
        # output goes into a register); in ws the weight loader owns the read port
        m.d.comb += [
            self.panel_addr_next.eq(Cat(self._panel_row_next(m, start, loop, step), bank_next)),
            self.panel_release.eq(Mux(loop.wrap[1] & ~ws, Mux(bank, 0b10, 0b01), 0)),
        ]

        # step registers (F1): the popped a beat and the tags; the panel row arrives now too
        a_bits = Signal(R * cfg.a_width, name="f1_a")
        f1 = Signal(name="f1_step")
        last, swap = Signal(name="f1_last"), Signal(name="f1_swap")
        # F1 takes the FIFO's head in every cycle (not only with a step, which would put the
        # issue decision on a few hundred clock enables); a bubble is zeroed after F1
        m.d.sync += [f1.eq(step), a_bits.eq(self.a.payload),
                     last.eq(step & ~ws & os_last), swap.eq(step & ws & ws_first)]
        formats = [f.a for f in cfg.mode_formats]
        mode = task.params.mode if cfg.mode_bits else None
        used = Signal(R, name="f1_used")        # float: elements that are not bubble/padding
        if cfg.is_float:    # ws: elements past K are padding
            m.d.sync += used.eq(Mux(step, Cat(*(~ws | (i < rv) for i in range(R))), 0))
        for i in range(R):
            op = read_array_operand(m, a_bits[i * cfg.a_width:], cfg, formats, mode,
                                    name=f"f1_a{i}")
            if cfg.is_float:    # a product with a null operand is +0, whatever the other is
                op = Mux(used[i], op, null_operand(cfg))
            else:
                op = Mux(f1, op, 0)
            m.d.comb += self.a_ops[i].eq(op)
        m.d.comb += [self.last.eq(last), self.swap.eq(swap), self.valid.eq(f1 & ws),
                     self.swap_issued.eq(step & ws & ws_first)]

        # counters: the step and why a step did not go (one cycle later), its useful MACs (two
        # cycles later): registered, so the issue decision does not reach the counters
        ev = self.events
        m.d.sync += ev.step.eq(step)
        rows_q = Signal(range(R + 1), name="mc_rows")
        cols_q = Signal(range(cfg.cols + 1), name="mc_cols")
        step_q = Signal(name="mc_step")
        m.d.sync += [step_q.eq(step), rows_q.eq(loop.chunk[1]), cols_q.eq(loop.chunk[0])]
        # in LUTs: yosys maps ``*`` to an unregistered DSP (8x8: 3.9 ns through it, 8.5 in all)
        macs = lut_product(m, rows_q, cols_q, name="mc_macs")
        m.d.sync += [ev.macs.eq(macs), ev.macs_valid.eq(step_q)]
        waiting = task.run & ~loop.done & ~step
        panel_missing = Mux(ws, ws_first & ~self.w_ready & ~self.w_bank_ready, ~panel_full)
        ring_full = Mux(ws, (~ws_first | self.w_ready) & ws_claims & ~ws_ring_ok,
                        panel_full & os_last & (gap == 0) & ~os_ring_ok)
        m.d.sync += [ev.stall_b.eq(waiting & panel_missing),
                     ev.stall_a.eq(waiting & ready & ~self.a.valid),
                     ev.stall_out.eq(waiting & ring_full)]
        return m

    @staticmethod
    def _panel_bank(m, start, loop, step):
        """The B-panel bank the step reads, ``fd_bank``, and its next value: it flips where
        the step wraps the panel level (K). The next value is a choice between registers,
        ``fd_bank`` and ``fd_bank_if_step`` (the bank after a step now, kept a cycle ahead
        from the loop's next flags), picked by ``step``: one LUT in front of the block RAM's
        address pins instead of three (8x8 out of context: 7.8 ns, ``step`` through the
        loop's wrap and the bank flip)."""
        bank = Signal(name="fd_bank")
        bank_if_step = Signal(name="fd_bank_if_step")
        bank_next = Signal(name="fd_bank_next")
        m.d.comb += bank_next.eq(~start & Mux(step, bank_if_step, bank))
        m.d.sync += [bank.eq(bank_next),
                     bank_if_step.eq(bank_next ^ loop.last_from_next[1])]
        return bank, bank_next

    def _panel_row_next(self, m, start, loop, step):
        """os: the panel row of the next cycle's step, ``loop.ctr_next[2]``, as a choice
        between registers: the row now and ``fd_row_after_step`` (this row + 1, or 0 where the
        step wraps K), kept with the loop. The block RAM's address pins are then one LUT
        behind ``step`` instead of the loop's next-state logic (8x8 out of context: 8.3 ns,
        four LUT levels and three long routes)."""
        bits = panel_k_bits(self.config)
        row = loop.ctr[2][:bits]
        after = Signal(bits, name="fd_row_after_step")
        with m.If(start | loop.wrap[2]):        # the row goes to 0
            m.d.sync += after.eq(Mux(loop.end_next[2], 0, 1))
        with m.Elif(step):                      # the row goes to ``after``
            m.d.sync += after.eq(Mux(loop.end_next[2], 0, after + 1))
        return Mux(start, 0, Mux(step, after, row))

    def _panel_full_next(self, start, bank_next, take, row_in_next):
        """os: in the next cycle, the step's panel row is written (its bank holds a complete
        panel, or is being filled and ``row_in_next``), for this cycle's panel write ``take``
        (0 or 1; ``row_in_next`` computed for the same value). The feeder's own release never
        reaches the bank it reads next (it releases the bank it leaves), so only the panel's
        completion by this cycle's write joins ``bank_full``."""
        full = self.bank_full.bit_select(bank_next, 1)
        filling = self.fill_bank == bank_next
        if take:    # a write of the panel's last row completes it and moves the fill bank
            full |= self.fill_last & filling
            filling = Mux(self.fill_last, ~filling, filling)
        return ~start & (full | (filling & row_in_next))

    def _row_written(self, m, start, loop, step):
        """``inner < fill_rows`` (the step's panel row is written), as a register computed a
        cycle ahead for every outcome of this cycle's issue decision, the panel's write and
        the tile's wrap, which only pick one. The difference ``fill_rows - inner`` is a
        register of its own (kept by increments, or rebuilt from one side when the other
        restarts at 0), so each outcome is a compare of that register with a small constant
        (the next difference is ``diff``, ``diff + 1`` or ``diff - 1``), and no carry chain
        lies between the counters and the issue decision.

        Returns the flag and its next value for each value of this cycle's panel write
        (``fill_take`` 0, 1): the issue decision takes both and lets the write pick."""
        inner, fill = loop.ctr[2], self.fill_rows
        take, wrap = self.fill_take, loop.wrap[2]
        diff = Signal(signed(max(len(inner), len(fill)) + 2), name="fd_fill_ahead")

        def diff_next(stepped, took):
            # the next difference for a known issue decision (the step wraps the inner level
            # at its end) and panel write, so ``step`` (a register with a wide fan-out) and
            # the write (the block's ``b.valid`` behind a ready register) only pick one of
            # the sums instead of entering their carry chains (8x8: 8.1 and 7.9 ns)
            wraps = loop.end[2] if stepped else 0
            restart = start | (self.fill_last if took else 0)   # fill_rows -> 0
            return Mux(start | (restart & wraps), 0,        # fill_rows -> 0; inner -> 0
                       Mux(restart, -inner - stepped,       # fill_rows -> 0; inner -> inner+1
                           Mux(wraps, fill + took,          # inner -> 0; fill_rows + took
                               diff + (took - stepped))))
        m.d.sync += diff.eq(Mux(step, Mux(take, diff_next(1, 1), diff_next(1, 0)),
                                Mux(take, diff_next(0, 1), diff_next(0, 0))))
        # the next difference is positive: after a wrap, 0 < fill_rows (+ 1); else
        # diff + take - step > 0, i.e. diff > step - take: bit tests of the register (its
        # sign, any bit, any bit above bit 0), no compares
        sign = diff[-1]
        above_0, above_1 = ~sign & diff.any(), ~sign & diff[1:].any()
        # with a write in this cycle the panel's last row restarts fill_rows (the row is then
        # in through bank_full)
        idle = ~start & Mux(wrap, fill != 0, Mux(step, above_1, above_0))
        took = ~start & ~self.fill_last & Mux(wrap, 1, Mux(step, above_0, ~sign))
        flag, _ = lookahead(m, Mux(take, took, idle), name="fd_row_in")
        return flag, (idle, took)

    def _credit_left(self, m, start, step, credit, claims):
        """``credit != 0`` (ws: a row of the ring is free), as a register computed a cycle
        ahead for both outcomes of this cycle's issue decision and of the drain's credit,
        like :meth:`_row_written`. A ws step claims one row (``claims``: of the first
        K-block) and the drain gives at most one back, so the next credit is ``credit - 1``,
        ``credit`` or ``credit + 1``, whose compares with zero are ``credit != 1``,
        ``credit != 0`` and true: compares of a register, picked by the late signals. (Only
        ws reads the flag; ``start`` sets it, the credit then being ``acc_depth >= 1``.)"""
        back = self.credit          # the drain gives a row back in this cycle
        claimed = Mux(back, credit != 0, credit != 1)
        kept = back | (credit != 0)
        return lookahead(m, start | Mux(step & claims, claimed, kept),
                         name="fd_credit_left", init=1)

    def _ring_credit_covers(self, m, start, step, credit, os_last, loop):
        """``credit >= rv`` (the ring has room for this tile's rows), as a register computed a
        cycle ahead for both outcomes of this cycle's issue decision, like
        :meth:`_row_written` (and for both values of the drain's credit): the credit after
        this cycle against this tile's rows, as ``credit >= rv - in`` without a step or with
        one that claims nothing, ``credit >= 2 rv - in`` after an os tile's last step (which
        claims ``rv``); the thresholds come from registers alone. Exact wherever it is read:
        only os reads it, ``rv`` only changes with an os tile's last step, and the flag is
        only read for a tile's last step (or its stall) with ``gap`` at 0, which the
        ``R - 1`` cycles of ``gap`` after that step rule out for ``R >= 2`` (``rv`` is always 1
        for ``R = 1``); after ``start`` the credit is ``acc_depth >= R``."""
        back = self.credit          # the drain gives a row back in this cycle
        # each compare for both values of ``back``, which then picks one: the drain's issue
        # decision is late, and no carry chain waits for it. The thresholds ``rv - 1``,
        # ``rv``, ``2 rv - 1`` and ``2 rv`` are registers, so each compare is one carry chain
        # of registers (``rv - 1`` is -1 for ``rv`` 0: signed). For R >= 3 they are loaded
        # from ``rv`` itself, a cycle late, not from the loop's next row count (which has its
        # compares and multiplexers in front: 8x8, 7.8 ns into these): the flag computed in
        # the cycle after ``rv`` changes may then be stale, and ``gap`` (R - 1 cycles from
        # the step that changed it) keeps it unread. After ``start`` they hold the first
        # tile's rows from cycle ``start + 2``; the first step can come in ``start + 3`` at
        # the earliest (its ``a`` beat is taken from ``start + 1`` on, registered, then in
        # the FIFO), so its decision in ``start + 2`` reads a flag computed from them.
        R, rv = self.config.rows, loop.chunk[1]              # this tile's rows in M
        source = rv if R >= 3 else loop.chunk_next[1]
        thresholds = []
        for name, value in (("rv_m1", source - 1), ("rv", source),
                            ("rv2_m1", 2 * source - 1), ("rv2", 2 * source)):
            th = Signal(signed(len(rv) + 2), name=f"fd_th_{name}")
            m.d.sync += th.eq(value)
            thresholds.append(th)
        rv_m1, rv_q, rv2_m1, rv2 = thresholds
        keep = Mux(back, credit >= rv_m1, credit >= rv_q)
        claim = Mux(back, credit >= rv2_m1, credit >= rv2)
        return lookahead(m, start | Mux(step & os_last, claim, keep),
                         name="fd_ring_ok", init=1)
