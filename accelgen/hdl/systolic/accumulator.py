"""The result side of the ``systolic`` block: the accumulator memory, the writer that adds the
array's rows into it, the preloader that fills it from ``c``, and the drain that sends finished
rows (optionally requantized) to ``o``.

::

    c ──► Preloader ──┐ (PRELOAD only)
                      ▼
    array rows ──► Writer: read, add, write back ──► accumulator memory ──► Drain ──► o
                       └── row_final: one more row is complete ─────────────┘    │
                                                                   issue: one row of credit
                                                                   back to the feeder

The memory is a ring of ``acc_depth`` rows (row ``r`` at address ``r mod acc_depth``). It is
the elastic buffer between the free-running array and the backpressured output: the feeder only
issues a step whose rows the ring has room for, and the drain frees a row when it reads it.

``abft``: each memory row has one more lane, the checksum lane (``acc_width`` bits, above the C
data lanes). The preloader writes the sum of the preloaded lanes into it, the writer adds the
array's checksum column into it like a data lane, and the drain compares it with the sum of
the row's lanes (all modulo ``2**acc_width``) and raises ``check_fail`` on a mismatch.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ...formats import FP32
from ...generators.systolic import SCALE_BITS
from ...numerics import IntFormat
from ..common import formal
from ..common.arith import sum_tree
from ..common.bram import RegisteredMemory
from ..common.floats import add_fp32, convert_element, decode_element
from ..common.loopnest import LoopNest
from ..common.numerics import apply_overflow
from ..common.requant import Requantizer
from ..common.stream import stream_signature
from ._util import delay, fit, row_bits
from .control import task_signature
from .pe import row_width

__all__ = ["Accumulator", "Drain", "OutputConverter", "Preloader", "Writer", "row_word_width"]


def row_word_width(config):
    """Bits of one accumulator-memory row: C lanes of ``acc_width`` (and the checksum lane
    above them with ``abft``)."""
    return (config.cols + config.abft) * config.acc_width


class Preloader(wiring.Component):
    """Writes the ``c`` beats of a ``preload`` command into rows ``r mod acc_depth`` (lanes past
    N as 0) while the controller is in PRELOAD.

    Members
    -------
    task : In(task_signature(config))
    c : In(stream_signature(config.c_fields))
        The block's ``c`` stream.
    wr_en : Out(1), wr_addr : Out(acc_addr_bits), wr_data : Out(row_word_width)
        A memory write, in the cycle after the beat is taken (registers; ``wr_data`` is the
        registered beat with its lanes past N zeroed by registered flags, and with ``abft``
        the checksum lane: their sum modulo ``2**acc_width``, an adder tree after those
        registers).
    done : Out(1)
        Every beat of the command has been taken.

    Timing
    ------
    ``c.ready`` is high during ``task.preloading`` until the command's ``NB * M`` beats are
    taken; each beat is written in the cycle after it is taken (the write goes from
    registers into the block RAM, not from the ``c`` handshake) and ``done`` rises the cycle
    after the last take, so the last row is written in the first cycle of ``done``, long
    before the writer's first read of any row (the array's first result row).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "c": In(stream_signature(config.c_fields)),
            "wr_en": Out(1),
            "wr_addr": Out(config.acc_addr_bits),
            "wr_data": Out(row_word_width(config)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        W = cfg.acc_width
        take = Signal(name="pre_take")
        # the loop and the address count the writes (the registered takes), so the ``c``
        # handshake only reaches the write-enable register, not the counters behind it
        # (8x8 out of context: 8.5 ns into them); a take sees their state after this
        # cycle's write (``*_next``)
        m.submodules.loop = loop = LoopNest((cfg.cols, 1), width=cfg.dim_bits, name="pre")
        m.d.comb += loop.drive(start=task.start, advance=self.wr_en,
                               limits=[task.params.n, task.params.m])
        m.d.comb += self.done.eq(loop.done_next)
        with m.If(task.start):
            m.d.sync += self.wr_addr.eq(0)
        with m.Elif(self.wr_en):
            m.d.sync += self.wr_addr.eq(self.wr_addr + 1)
        m.d.comb += [self.c.ready.eq(task.preloading & ~loop.done_next),
                     take.eq(self.c.valid & self.c.ready)]
        # the beat and its lane flags (lane j within N) registered, the lanes zeroed after:
        # the flags' compares stay off the data registers' resets
        beat = Signal(cfg.cols * W, name="pre_beat")
        lane_ok = Signal(cfg.cols, name="pre_lanes")
        m.d.sync += [self.wr_en.eq(take), beat.eq(self.c.payload.c),
                     lane_ok.eq(Cat(*(j < loop.chunk_next[0] for j in range(cfg.cols))))]
        lanes = [Mux(lane_ok[j], beat[j * W:(j + 1) * W], 0) for j in range(cfg.cols)]
        if cfg.abft:
            lanes.append(sum_tree(lanes)[:W])
        m.d.comb += self.wr_data.eq(Cat(*lanes))
        return m


class Writer(wiring.Component):
    """Adds each array row into its accumulator-memory row (read-modify-write):
    ``row = ovf((overwrite ? 0 : mem) + row)``.

    Members
    -------
    task : In(task_signature(config))
    row : In(signed(row_width)).array(cols), row_valid : In(1)
        The array's result rows.
    row_cs : In(signed(row_width(config, checksum=True)))
        ``abft``: the checksum lane of the row that was on ``row`` one cycle earlier (see
        :class:`~accelgen.hdl.systolic.pe.Array`); it joins the row one register later.
    rd_addr : Out(acc_addr_bits), rd_data : In(row_word_width)
        A memory read port with registered data: ``rd_data`` holds the row at ``rd_addr``
        of two cycles earlier.
    wr_en : Out(1), wr_addr : Out(acc_addr_bits), wr_data : Out(row_word_width)
        The write-back (with ``abft`` the checksum lane too, added and wrapped like a data
        lane).
    row_final : Out(1)
        A result row is written for the last time in this cycle (the drain may read it from
        the next one).
    done : Out(1)
        Every array row of the command has been taken.
    idle : Out(1)
        No write-back in flight.

    Timing
    ------
    A row taken in cycle ``t`` (``row_valid`` in RUN) is read in ``t``, its memory data
    arrives in ``t + 1`` (W1), is registered in ``t + 2`` (W2, the block RAM's output
    register) and again in ``t + 3`` (W3), added and written in ``t + 3`` (with ``row_final``
    if it is final); the drain may read it from ``t + 4``. Rows of os padding (past M) are
    dropped. Lanes saturate or wrap per ``overflow`` once per write.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "row": In(signed(row_width(config))).array(config.cols),
            "row_valid": In(1),
            **({"row_cs": In(signed(row_width(config, checksum=True)))} if config.abft else {}),
            "rd_addr": Out(config.acc_addr_bits),
            "rd_data": In(row_word_width(config)),
            "wr_en": Out(1),
            "wr_addr": Out(config.acc_addr_bits),
            "wr_data": Out(row_word_width(config)),
            "row_final": Out(1),
            "done": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        R, C, W = cfg.rows, cfg.cols, cfg.acc_width
        p, ws = task.params, task.ws
        take = self.row_valid & task.run
        # os: (nb, mb, row in tile); ws: (nb, kb, m)
        m.submodules.loop = loop = LoopNest((C, R, 1), width=cfg.dim_bits,
                                            limit_width=max(cfg.dim_bits, 8), name="wr")
        m.d.comb += loop.drive(start=task.start, advance=take,
                               limits=[p.n, Mux(ws, p.k, p.m), Mux(ws, p.m, Const(R, 8))])
        m.d.comb += self.done.eq(loop.done)
        rowbase = Signal(row_bits(cfg), name="wr_rowbase")
        with m.If(task.start):
            m.d.sync += rowbase.eq(0)
        with m.Elif(loop.wrap[1]):
            m.d.sync += rowbase.eq(rowbase + p.m)
        # the row address ``rowbase + m`` (m: os ``mb*R + i``, ws the loop's m) and the os
        # row index kept as registers that step with the loop, so the block RAM's read
        # address comes from a flip-flop, not from two adders of the loop counters: the next
        # row is the one after (os: across tiles too), ws goes back to ``rowbase`` for each
        # K-block, and a new column block starts at ``rowbase + M``
        addr = Signal(cfg.acc_addr_bits, name="wr_addr")
        os_row = Signal(cfg.dim_bits + 1, name="wr_os_row")
        with m.If(task.start):
            m.d.sync += [addr.eq(0), os_row.eq(0)]
        with m.Elif(loop.wrap[1]):
            m.d.sync += [addr.eq(rowbase + p.m), os_row.eq(0)]
        with m.Elif(loop.wrap[2] & ws):
            m.d.sync += addr.eq(rowbase)
        with m.Elif(take):
            m.d.sync += [addr.eq(addr + 1), os_row.eq(os_row + 1)]
        keep = ws | (os_row < p.m)                  # os: padding rows of the last tile
        overwrite = ~p.accumulate & ~p.preload & (~ws | loop.first[1])
        final = ~ws | loop.end[1]
        m.d.comb += self.rd_addr.eq(addr)
        # W1: the memory's data arrives; W2: in the block RAM's output register; W3: in a
        # fabric register (an overwrite clears it, the flip-flops' synchronous reset), added,
        # saturated and written back. Adder and saturation thus lie between two registers
        # in the fabric: from the RAM's output register through them into the RAM's data
        # inputs they were two RAM routes in one cycle (8x8 out of context: 8.8-9.8 ns). A
        # read in the cycle of a write to the same row would see an unspecified word, but a
        # row comes back no sooner than its next K-block in ws, and the weight swap between
        # K-blocks keeps those at least R + 4 cycles apart (the write is 3 cycles after the
        # read).
        v1, ow1, fin1 = Signal(name="w1_valid"), Signal(name="w1_over"), Signal(name="w1_final")
        addr1 = Signal(cfg.acc_addr_bits, name="w1_addr")
        row1 = [Signal(signed(row_width(cfg)), name=f"w1_row{j}") for j in range(C)]
        m.d.sync += [v1.eq(take & keep), ow1.eq(overwrite), fin1.eq(take & keep & final),
                     addr1.eq(addr)] + [r.eq(x) for r, x in zip(row1, self.row)]
        v2, ow2, fin2, addr2 = (delay(m, x, 1, f"w2_{n}") for x, n in
                                ((v1, "valid"), (ow1, "over"), (fin1, "final"), (addr1, "addr")))
        old3 = Signal(row_word_width(cfg), name="w3_old")
        m.d.sync += old3.eq(Mux(ow2, 0, self.rd_data))
        v3, fin3, addr3 = (delay(m, x, 1, f"w3_{n}") for x, n in
                           ((v2, "valid"), (fin2, "final"), (addr2, "addr")))
        row3 = [delay(m, x, 2, f"w3_row{j}") for j, x in enumerate(row1)]
        fmt = IntFormat(W, True)
        lanes = []
        for j in range(C):
            old = old3[j * W:(j + 1) * W].as_signed()
            if cfg.is_float:    # +0 when overwriting: +0 + x = x for every sum the array makes
                lanes.append(add_fp32(m, old, row3[j], name=f"w3_add{j}"))
            else:
                lanes.append(apply_overflow(old + row3[j], fmt, cfg.overflow))
        if cfg.abft:    # row_cs is a cycle behind row: one register fewer brings it to W3
            old = old3[C * W:(C + 1) * W].as_signed()
            cs3 = delay(m, self.row_cs, 2, "w3_row_cs", reset_less=True)
            lanes.append(apply_overflow(old + cs3, fmt, cfg.overflow))
        m.d.comb += [self.wr_en.eq(v3), self.wr_addr.eq(addr3), self.wr_data.eq(Cat(*lanes))]
        m.d.comb += self.row_final.eq(fin3 & ~task.start)
        m.d.comb += self.idle.eq(~v3 & ~v2 & ~v1 & ~delay(m, take, 1, "w1_take"))
        return m


class Drain(wiring.Component):
    """Reads finished rows out of the accumulator memory in row order and sends them on ``o``,
    raw or requantized, with lanes past N as 0 and ``last`` on the command's final row.

    Members
    -------
    task : In(task_signature(config))
    row_final : In(1)
        From the writer: one more row may be read (from the next cycle on).
    rd_addr : Out(acc_addr_bits), rd_data : In(row_word_width)
        A memory read port with registered data (the row at ``rd_addr`` two cycles
        earlier).
    issue : Out(1)
        A row is read in this cycle; its ring row is free again (credit for the feeder).
    o : Out(stream_signature(config.o_fields))
        The block's ``o`` stream.
    done : Out(1)
        Every row of the command has been sent (and the output FIFO is empty).
    check_fail : Out(1)
        ``abft``: a row drained by this command disagreed with its checksum lane (a register,
        cleared by ``task.start``).

    Timing
    ------
    Unless the command's output is ``none``, a row is read (``issue``) in any RUN cycle in
    which it is final and the output FIFO has room for everything in flight. Its data is
    registered in D1 and D2 and written into the output FIFO 2 cycles later (2 + 3 through
    the requantizer). The output FIFO is ``latency + 3`` deep; ``issue`` counts the rows in
    flight towards its level, so it never overflows.

    ``abft``: the row's lane sum (modulo ``2**acc_width``) and its checksum lane are
    registered in D3 (beside the first requantizer stage, or the FIFO write), compared, and
    ``check_fail`` is set in the cycle after (D4). ``done`` also waits for those two stages;
    they end before the row can have left the output FIFO, so no command takes longer.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "row_final": In(1),
            "rd_addr": Out(config.acc_addr_bits),
            "rd_data": In(row_word_width(config)),
            "issue": Out(1),
            "o": Out(stream_signature(config.o_fields)),
            "done": Out(1),
            **({"check_fail": Out(1)} if config.abft else {}),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        C, W = cfg.cols, cfg.acc_width
        p = task.params
        req = None
        if cfg.requant and cfg.is_float:
            req = m.submodules.requant = OutputConverter(cfg)
        elif cfg.requant:
            req = m.submodules.requant = Requantizer(lanes=C, acc_width=W,
                                                     mult_bits=cfg.mult_bits,
                                                     rounding=cfg.rounding)
        assert (req.latency if req else 0) == cfg.requant_latency   # the model's timing
        latency = 2 + cfg.requant_latency
        depth = latency + 3
        word_width = len(self.o.payload.as_value())
        ofifo = m.submodules.ofifo = SyncFIFOBuffered(width=word_width, depth=depth)
        inflight = Signal(range(depth + 1), name="dr_inflight")
        pending = Signal(row_bits(cfg), name="dr_pending")     # final rows not read yet
        draining = task.run & (p.output != 2)
        issue = self.issue
        m.submodules.loop = loop = LoopNest((C, 1), width=cfg.dim_bits, name="dr")
        m.d.comb += loop.drive(start=task.start, advance=issue, limits=[p.n, p.m])
        addr = Signal(cfg.acc_addr_bits, name="dr_addr")
        # a final row is there to read, and the output FIFO has room for everything in flight
        # (a register computed a cycle ahead, see the end)
        room = Signal(name="dr_room", init=1)
        readable = Signal(name="dr_readable")                      # pending != 0
        m.d.comb += issue.eq(draining & ~loop.done & readable & room)
        m.d.comb += self.rd_addr.eq(addr)
        with m.If(task.start):
            m.d.sync += [addr.eq(0), pending.eq(0)]
        with m.Else():
            m.d.sync += pending.eq(pending + self.row_final - issue)
            with m.If(issue):
                m.d.sync += addr.eq(addr + 1)
        # pending != 0 kept as a flag: a final row and no read sets it, a read and no final
        # row leaves it set only if two or more were pending
        with m.If(task.start):
            m.d.sync += readable.eq(0)
        with m.Elif(self.row_final & ~issue):
            m.d.sync += readable.eq(1)
        with m.Elif(issue & ~self.row_final):
            m.d.sync += readable.eq(pending[1:] != 0)
        # D1: data; lanes past N are sent as zeros (after requantization)
        cv = loop.chunk[0]
        v1, last1 = Signal(name="d1_valid"), Signal(name="d1_last")
        cv1 = Signal(C, name="d1_lanes")       # lane j is within N: a mask, not a count
        m.d.sync += [v1.eq(issue), last1.eq(issue & loop.final),
                     cv1.eq(Cat(*(j < cv for j in range(C))))]
        # D2: the block RAM's output register (in the memory) holds the row; the flags follow
        v1, last1, cv1 = (delay(m, x, 1, f"d2_{n}") for x, n in
                          ((v1, "valid"), (last1, "last"), (cv1, "cv")))
        raw = [self.rd_data[j * W:(j + 1) * W].as_signed() for j in range(C)]
        if req:
            m.d.comb += [req.acc[j].eq(raw[j]) for j in range(C)]
            if cfg.is_float:
                m.d.comb += [req.scale.eq(p.scale), req.relu.eq(p.relu)]
            else:
                m.d.comb += [req.mult.eq(p.mult), req.shift.eq(p.shift),
                             req.zero_point.eq(p.zero_point), req.relu.eq(p.relu),
                             req.out_signed.eq(p.out_signed)]
            # the command's output choice as a register (the command is steady from the cycle
            # before ``start``): it selects every lane of the output word
            rq = Signal(name="dr_requant")
            m.d.sync += rq.eq(p.output == 1)
            vq = delay(m, v1 & rq, req.latency, "dq_v")
            lq = delay(m, last1, req.latency, "dq_l")
            cq = delay(m, cv1, req.latency, "dq_cv")
            valid = Mux(rq, vq, v1)
            last = Mux(rq, lq, last1)
            cvo = Mux(rq, cq, cv1)
            lanes = [Mux(rq, req.y[j], raw[j]) for j in range(C)]
        else:
            valid, last, cvo, lanes = v1, last1, cv1, raw
        lanes = [Mux(cvo[j], x, 0) for j, x in enumerate(lanes)]
        word = Signal(word_width, name="dr_word")
        m.d.comb += word.eq(Cat(*[fit(x, W) for x in lanes], last))
        m.d.comb += [ofifo.w_en.eq(valid), ofifo.w_data.eq(word)]
        with m.If(task.start):
            m.d.sync += inflight.eq(0)
        with m.Else():
            m.d.sync += inflight.eq(inflight + issue - valid)
            formal.counter(m, "rows in flight to the output FIFO", inflight + issue - valid,
                           hi=depth, family="fifo")
        # next cycle's room (``occupied`` < depth: the FIFO's words and the rows in flight to
        # it), for the four outcomes of this cycle's issue and output read, which pick one:
        # the next ``occupied`` is ``occupied - read + issue``, so each outcome is a compare of
        # the register with a constant, and no adder sits before the flag. (Nothing is in
        # flight or in the FIFO when a command starts: the previous one finished with both
        # empty.)
        occupied = Signal(range(depth + 1), name="dr_occupied")
        read = ofifo.r_rdy & ofifo.r_en
        m.d.sync += [occupied.eq(occupied - read + issue),
                     room.eq(Mux(issue, Mux(read, occupied < depth, occupied < depth - 1),
                                 Mux(read, occupied < depth + 1, occupied < depth)))]
        formal.occupancy(m, "output room (FIFO words and rows in flight)", occupied,
                         push=issue, pop=read, depth=depth)
        formal.check(m, "output FIFO: no row written when full", "fifo",
                     ~(ofifo.w_en & ~ofifo.w_rdy))
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), self.o.payload.eq(ofifo.r_data),
                     ofifo.r_en.eq(self.o.ready)]
        # empty: also nothing in the FIFO's inner memory on its way to the output register
        done = loop.done & (inflight == 0) & (ofifo.w_level == 0)
        if cfg.abft:
            done &= self._check(m, task, v1, raw)
        m.d.comb += self.done.eq(done)
        return m

    def _check(self, m, task, valid, raw):
        """``abft``: compares the row read (D2: ``raw`` lanes and the checksum lane above
        them) with its checksum; returns "no check in flight" for ``done``."""
        C, W = self.config.cols, self.config.acc_width
        total = Signal(W, name="dc_sum")
        cs = Signal(W, name="dc_cs")
        v3 = Signal(name="dc_valid")
        m.d.sync += [total.eq(sum_tree(raw)[:W]), cs.eq(self.rd_data[C * W:]),
                     v3.eq(valid)]
        with m.If(task.start):
            m.d.sync += self.check_fail.eq(0)
        with m.Elif(v3 & (total != cs)):
            m.d.sync += self.check_fail.eq(1)
        return ~v3 & ~valid


class OutputConverter(wiring.Component):
    """Float builds' output ``requant``: FP32 lanes to ``out_format`` codes.

    ``y = convert(relu(x) * 2**scale)`` per lane (see :mod:`accelgen.generators.systolic`):
    the FP32 code is decoded, ``relu`` turns a set sign bit (not NaN) into +0, ``scale`` is
    added to the exponent (exact), and the value is rounded once to ``out_format``
    (:func:`~accelgen.hdl.common.floats.convert_element`, the ``cast`` block's rounding).

    Members
    -------
    acc : In(unsigned(32)).array(cols)
        FP32 codes.
    scale : In(signed(SCALE_BITS)), relu : In(1)
    y : Out(unsigned(32)).array(cols)
        The ``out_format`` codes, zero-extended.

    Timing
    ------
    Free-running, no enable: ``latency`` = 2 (the decoded, scaled lanes are registered, then
    the codes); ``y`` in cycle ``t + 2`` is the conversion of ``acc``, ``scale`` and ``relu``
    in cycle ``t``.
    """

    latency = 2

    def __init__(self, config):
        self.config = config
        super().__init__({
            "acc": In(unsigned(32)).array(config.cols),
            "scale": In(signed(SCALE_BITS)),
            "relu": In(1),
            "y": Out(unsigned(32)).array(config.cols),
        })

    def elaborate(self, platform):
        cfg, m = self.config, Module()
        exp_min = FP32.exp_min - (1 << (SCALE_BITS - 1))
        for j in range(cfg.cols):
            d = decode_element(m, self.acc[j], FP32, name=f"cv{j}")
            neg = self.relu & d.sign & ~d.nan
            sig = Signal(FP32.sig_bits, name=f"cv{j}_sig")
            exp = Signal(signed(11), name=f"cv{j}_exp")
            sign, nan, inf = (Signal(name=f"cv{j}_{n}") for n in ("sign", "nan", "inf"))
            m.d.sync += [sig.eq(Mux(neg, 0, d.sig)), exp.eq(d.exp + self.scale),
                         sign.eq(d.sign & ~neg), nan.eq(d.nan), inf.eq(d.inf & ~neg)]
            scaled = SimpleNamespace(sig=sig, exp=exp, sign=sign, nan=nan, inf=inf)
            code = convert_element(m, scaled, cfg.out_target, saturate=cfg.out_saturate,
                                   exp_min=exp_min, name=f"cv{j}")
            m.d.sync += self.y[j].eq(code)
        return m


class Accumulator(wiring.Component):
    """The accumulator memory with its preloader, writer and drain.

    Members
    -------
    task : In(task_signature(config))
    c : In(stream_signature(config.c_fields)); o : Out(stream_signature(config.o_fields))
        The block's ``c`` and ``o`` streams.
    row : In(signed(row_width)).array(cols), row_valid : In(1)
        The array's result rows.
    row_cs : In(signed(row_width(config, checksum=True)))
        ``abft``: the array's checksum lane (see :class:`Writer`).
    drain_issue : Out(1)
        One ring row freed (credit for the feeder).
    preload_done, write_done, write_idle, drain_done : Out(1)
        The units' completion flags, for the controller.
    check_fail : Out(1)
        ``abft``: the drain's checksum flag (see :class:`Drain`).

    Timing
    ------
    See :class:`Preloader`, :class:`Writer` and :class:`Drain`. The memory has one write
    port, shared by the preloader (PRELOAD) and the writer (RUN), which are never active in
    the same cycle, and two synchronous read ports (writer, drain).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "c": In(stream_signature(config.c_fields)),
            "o": Out(stream_signature(config.o_fields)),
            "row": In(signed(row_width(config))).array(config.cols),
            "row_valid": In(1),
            **({"row_cs": In(signed(row_width(config, checksum=True))),
                "check_fail": Out(1)} if config.abft else {}),
            "drain_issue": Out(1),
            "preload_done": Out(1),
            "write_done": Out(1),
            "write_idle": Out(1),
            "drain_done": Out(1),
        })

    def elaborate(self, platform):
        cfg, m = self.config, Module()
        m.submodules.preloader = pre = Preloader(cfg)
        m.submodules.writer = wr = Writer(cfg)
        m.submodules.drain = dr = Drain(cfg)
        # no read ever meets a write to its row in the same cycle (the writer reads a row
        # R + 4 or more cycles after its last write, see the W2 note in Writer; the drain
        # reads final rows only, and a row is written again only after the drain has read it
        # and given its credit back), which RegisteredMemory leaves unspecified. Its output
        # registers are the writer's W2 and the drain's D2 registers
        mem = m.submodules.acc = RegisteredMemory(row_word_width(cfg), cfg.acc_depth,
                                                  read_ports=2, name="acc")

        wiring.connect(m, wiring.flipped(self.task), pre.task, wr.task, dr.task)
        wiring.connect(m, wiring.flipped(self.c), pre.c)
        wiring.connect(m, dr.o, wiring.flipped(self.o))
        m.d.comb += [wr.row[j].eq(self.row[j]) for j in range(cfg.cols)]
        m.d.comb += [
            wr.row_valid.eq(self.row_valid),
            mem.w_en.eq(wr.wr_en | pre.wr_en),
            mem.w_addr.eq(Mux(pre.wr_en, pre.wr_addr, wr.wr_addr)),
            mem.w_data.eq(Mux(pre.wr_en, pre.wr_data, wr.wr_data)),
            mem.r_addr[0].eq(wr.rd_addr), wr.rd_data.eq(mem.r_data[0]),
            mem.r_addr[1].eq(dr.rd_addr), dr.rd_data.eq(mem.r_data[1]),
            dr.row_final.eq(wr.row_final),
            self.drain_issue.eq(dr.issue),
            self.preload_done.eq(pre.done),
            self.write_done.eq(wr.done),
            self.write_idle.eq(wr.idle),
            self.drain_done.eq(dr.done),
        ]
        if cfg.abft:
            m.d.comb += [wr.row_cs.eq(self.row_cs), self.check_fail.eq(dr.check_fail)]
        return m
