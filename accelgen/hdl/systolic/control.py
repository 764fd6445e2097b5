"""Command control of the ``systolic`` block: the command register, its checks, the state
machine that sequences PRELOAD and RUN, the performance counters and the response.

::

    cmd ──► IDLE ──► CHECK ── error ─────────────────────────► RESPOND ──► rsp, IDLE
                       │ ok, preload                                ▲
                       ├─────────────► PRELOAD ──► RUN ─────────────┘
                       │ ok                         ▲   feeder, writer and drain done
                       └────────────────────────────┘

The controller owns no datapath. It broadcasts the command and its phase to every unit as
the ``task`` interface; the units report back through ``done`` flags and the feeder's
``events``.
"""

from types import SimpleNamespace

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...generators.systolic import ABFT_ERROR
from ..common.stream import payload_layout, stream_signature
from ._util import row_bits

__all__ = ["Control", "event_signature", "task_signature"]


def task_signature(config):
    """What the controller tells every unit (seen from the controller: all ``Out``).

    Members
    -------
    start : Out(1)
        A register, high in the first cycle after CHECK (of PRELOAD, or of RUN without a
        preload): every unit clears its loop state. The units hold still while it is high
        (their ``done`` flags are still those of the previous command then). Never high
        together with ``run``.
    start_next : Out(1)
        What ``start`` holds in the next cycle (combinational), for a unit that keeps its own
        copy of ``start`` (:func:`~accelgen.hdl.systolic._util.unit_start`).
    preloading : Out(1)
        PRELOAD, after ``start``: the preloader takes ``c`` beats. A register.
    run : Out(1)
        RUN, after ``start``: the units take ``a``/``b`` beats, issue steps and drain. A
        register too (it gates every unit's handshakes).
    run_next : Out(1)
        What ``run`` holds in the next cycle (combinational): for a unit that registers a
        handshake a cycle ahead.
    run_open : Out(1)
        ``run_next`` without the end of the command (combinational, from the state and
        ``preload_done`` only): high in RUN's cycles, its last included, and in the PRELOAD
        cycle that goes to RUN. For a unit whose handshake a cycle ahead is closed anyway
        once the command can end (its beats all taken), so that the completion logic stays
        off its path.
    params : Out(payload_layout(config.cmd_fields))
        The accepted command, registered when it is accepted and held until the next one.
    ws : Out(1)
        The command runs weight-stationary (constant in one-dataflow builds).
    """
    return wiring.Signature({
        "start": Out(1),
        "start_next": Out(1),
        "preloading": Out(1),
        "run": Out(1),
        "run_next": Out(1),
        "run_open": Out(1),
        "params": Out(payload_layout(config.cmd_fields)),
        "ws": Out(1),
    })


def event_signature(config):
    """What the feeder reports to the counters (seen from the feeder: all ``Out``).

    Members
    -------
    step : Out(1)
        A step entered the array in the previous cycle (registered: one cycle after it).
    stall_a, stall_b, stall_out : Out(1)
        In the previous cycle, a step (or weight load) could not go for want of an ``a``
        beat, a B panel or accumulator-memory space. (Every event of a command is counted:
        the last one comes long before the command finishes.)
    macs : Out(range(rows * cols + 1)), macs_valid : Out(1)
        The useful MACs of a step, two cycles after it (off the issue path).
    """
    return wiring.Signature({
        "step": Out(1),
        "stall_a": Out(1),
        "stall_b": Out(1),
        "stall_out": Out(1),
        "macs": Out(range(config.rows * config.cols + 1)),
        "macs_valid": Out(1),
    })


class Control(wiring.Component):
    """Command register, checks, PRELOAD/RUN sequencing, counters and response.

    Members
    -------
    cmd : In(stream_signature(config.cmd_fields))
        The block's command stream; a beat is taken only in IDLE.
    rsp : Out(stream_signature(config.rsp_fields))
        One beat per command: ``err`` and the counters (zero when ``err`` is not 0).
    task : Out(task_signature(config))
        The command and its phase, to every unit.
    events : In(event_signature(config))
        The feeder's per-cycle activity, counted while in RUN.
    preload_done, feed_done, write_done, write_idle, drain_done : In(1)
        The preloader has taken every ``c`` beat; the feeder has issued every step; the
        writer has taken every array row / has no write in flight; the drain has sent every
        row and its output FIFO is empty.
    check_fail : In(1)
        ``abft``: a row the command drained disagreed with its checksum (final once the
        drain is done): read as RUN ends, it makes ``rsp.err`` 5 instead of 0 (a register,
        like every ``err``); the counters stay.

    Timing
    ------
    IDLE takes a command beat (``cmd.ready`` is high throughout IDLE) and registers it into
    ``task.params`` in the same clock edge. CHECK takes one cycle, plus one cycle per column
    block when the command keeps its results in the memory (it counts ``NB * M`` rows). Its
    last cycle raises ``start`` for one cycle. PRELOAD ends once ``preload_done`` is seen
    after ``start``; RUN ends once every completion input is seen after ``start``; RESPOND
    holds ``rsp.valid`` until taken, then returns to IDLE. Counters count from the accepting
    cycle to the cycle before ``rsp.valid``.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "cmd": In(stream_signature(config.cmd_fields)),
            "rsp": Out(stream_signature(config.rsp_fields)),
            "task": Out(task_signature(config)),
            "events": In(event_signature(config)),
            "preload_done": In(1),
            "feed_done": In(1),
            "write_done": In(1),
            "write_idle": In(1),
            "drain_done": In(1),
            **({"check_fail": In(1)} if config.abft else {}),
        })

    def elaborate(self, platform):
        cfg, m = self.config, Module()
        C = cfg.cols
        task, ev = self.task, self.events
        p = task.params
        accept = Signal(name="accept")
        self._command(m, accept)

        err = Signal(3, name="err")
        cw = cfg.counter_width
        ctr = {name: Signal(cw, name=f"ctr_{name}") for name in
               ("cycles", "busy", "stall_a", "stall_b", "stall_out", "macs")}
        check = self._checks(m, accept)

        # ``start`` fans out to hundreds of flip-flops: it is a register; so are ``run`` and
        # ``preloading`` (RUN / PRELOAD and not ``start``), which gate the units' handshakes
        m.d.sync += [task.start.eq(task.start_next), task.run.eq(task.run_next),
                     task.preloading.eq(0)]
        with m.FSM(name="ctl"):
            with m.State("IDLE"):
                m.d.comb += [self.cmd.ready.eq(1), accept.eq(self.cmd.valid)]
                # cleared in every IDLE cycle, not only the accepting one (nothing reads them
                # before RESPOND's rsp.valid): the block's cmd.valid stays off the counters'
                # clock enables (8x8 out of context: 8.1 ns to them)
                m.d.sync += [c.eq(0) for c in ctr.values()]
                m.d.sync += ctr["cycles"].eq(1)
                with m.If(self.cmd.valid):
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += ctr["cycles"].eq(ctr["cycles"] + 1)
                with m.If(check.zero):
                    m.d.sync += err.eq(1)
                    m.next = "RESPOND"
                with m.Elif(check.unsupported):
                    m.d.sync += err.eq(4)
                    m.next = "RESPOND"
                with m.Elif(check.k_big):
                    m.d.sync += err.eq(2)
                    m.next = "RESPOND"
                with m.Elif(check.ws_big):
                    m.d.sync += err.eq(3)
                    m.next = "RESPOND"
                with m.Elif(check.resident & check.rows_over):
                    m.d.sync += err.eq(3)
                    m.next = "RESPOND"
                with m.Elif(~check.resident | check.cols_done):
                    m.d.sync += err.eq(0)
                    m.d.comb += task.start_next.eq(1)
                    m.next = "RUN"
                    with m.If(p.preload):
                        m.next = "PRELOAD"
                with m.Else():   # count NB * M one column block per cycle
                    m.d.sync += [check.rows_left.eq(check.rows_left - p.m),
                                 check.cols_left.eq(check.cols_left - C)]
            with m.State("PRELOAD"):
                m.d.sync += ctr["cycles"].eq(ctr["cycles"] + 1)
                with m.If(self.preload_done & ~task.start):
                    m.d.comb += [task.run_next.eq(1), task.run_open.eq(1)]
                    m.next = "RUN"
                with m.Else():
                    m.d.sync += task.preloading.eq(1)
            with m.State("RUN"):
                m.d.comb += task.run_open.eq(1)
                m.d.sync += ctr["cycles"].eq(ctr["cycles"] + 1)
                for name in ("stall_a", "stall_b", "stall_out"):
                    m.d.sync += ctr[name].eq(ctr[name] + getattr(ev, name))
                with m.If(ev.step):
                    m.d.sync += ctr["busy"].eq(ctr["busy"] + 1)
                with m.If(ev.macs_valid):
                    m.d.sync += ctr["macs"].eq(ctr["macs"] + ev.macs)
                finished = self.feed_done & self.write_done & self.write_idle & \
                    ((p.output == 2) | self.drain_done)
                with m.If(finished & ~task.start):
                    m.next = "RESPOND"
                    if cfg.abft:    # the drain's checks are all done by now
                        m.d.sync += err.eq(Mux(self.check_fail, ABFT_ERROR, 0))
                with m.Else():
                    m.d.comb += task.run_next.eq(1)
            with m.State("RESPOND"):
                m.d.comb += self.rsp.valid.eq(1)
                with m.If(self.rsp.ready):
                    m.next = "IDLE"
        m.d.comb += self.rsp.payload.err.eq(err)
        # abft: a command with err 5 ran, and its counters say how
        counted = (err == 0) | (err == ABFT_ERROR) if cfg.abft else err == 0
        for name, c in ctr.items():
            m.d.comb += self.rsp.payload[name].eq(Mux(counted, c, 0))
        return m

    def _checks(self, m, accept):
        """The command's checks as flags for CHECK: the ones of the command alone registered
        with it from ``cmd.payload`` (so CHECK's state logic reads flip-flops, not compares of
        the command register), and the resident rows ``NB * M`` as a count-down that CHECK
        steps one column block per cycle: ``rows_left = D - rows`` (over: negative) and
        ``cols_left = N - 1 - cols`` (done: negative), sign bits instead of compares."""
        cfg, c = self.config, self.cmd.payload
        R, D = cfg.rows, cfg.acc_depth
        flags = SimpleNamespace(**{name: Signal(name=f"chk_{name}") for name in
                                   ("zero", "unsupported", "k_big", "ws_big", "resident")})
        flags.rows_left = Signal(signed(row_bits(cfg) + 1), name="chk_rows_left")
        flags.cols_left = Signal(signed(cfg.dim_bits + 2), name="chk_cols_left")
        unsupported = Const(0, 1)
        if cfg.dataflow_bits and len(cfg.dataflows) < (1 << cfg.dataflow_bits):
            unsupported = unsupported | (c.dataflow >= len(cfg.dataflows))
        if cfg.mode_bits and len(cfg.modes) < (1 << cfg.mode_bits):
            unsupported = unsupported | (c.mode >= len(cfg.modes))
        unsupported = unsupported | (c.output == 3)
        if not cfg.requant:
            unsupported = unsupported | (c.output == 1)
        with m.If(accept):
            m.d.sync += [
                flags.zero.eq((c.m == 0) | (c.k == 0) | (c.n == 0)),
                flags.unsupported.eq(unsupported),
                flags.k_big.eq(c.k > cfg.k_max),
                flags.ws_big.eq(self._selects_ws(c) & (c.m > D) & (c.k > R)),
                flags.resident.eq(c.accumulate | c.preload | (c.output == 2)),
                flags.rows_left.eq(D),
                flags.cols_left.eq(c.n - 1),
            ]
        flags.rows_over = flags.rows_left[-1]
        flags.cols_done = flags.cols_left[-1]
        return flags

    def _selects_ws(self, params):
        """The command ``params`` runs the ws dataflow."""
        cfg = self.config
        if "ws" not in cfg.dataflows:
            return Const(0, 1)
        if len(cfg.dataflows) == 1:
            return Const(1, 1)
        return params.dataflow == cfg.dataflows.index("ws")

    def _command(self, m, accept):
        """The command register and the dataflow it selects."""
        task = self.task
        with m.If(accept):
            m.d.sync += task.params.eq(self.cmd.payload)
        m.d.comb += task.ws.eq(self._selects_ws(task.params))
