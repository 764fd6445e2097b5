"""The ``pim`` controller: host instructions in, DRAM commands out, in order, every timing rule
obeyed, refresh issued.

::

    cmd ─► cur (one instruction; MAC: column index i) ─► decode ─► program command ──┐
                  │ validate against the bank-state table (err → rsp)                ├─► dram
    refresh manager (owed REFs; boundary REF; forced close / REF / re-open) ─────────┘   trace
                  ▲                     timing engine (rule counters, tFAW, tRFC) ◄── issue
    rdata ─► result FIFO ─► o     (reads issue only while the FIFO has room for them)
    counters, errors ─► rsp FIFO ─► rsp

Timing: an instruction that reaches ``cur`` in cycle ``s`` issues its first command in the
first cycle from ``s`` on that the timing engine allows it and the refresh manager does not
hold the channel; the next instruction is taken in the cycle its last command issues, so
commands of consecutive instructions can issue in consecutive cycles. See
:mod:`accelgen.sim.golden.pim_cycles` for the exact model.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ...generators.pim import COUNTERS, DRAM_COMMANDS, FORMATS, MAX_POSTPONED, OPS
from ..common import formal
from ..common.stream import payload_layout, stream_signature
from .monitor import TimingMonitor
from .timing import CLASSES, TimingEngine, _all, _any

__all__ = ["Controller"]

D = {name: code for code, name in enumerate(DRAM_COMMANDS)}
OP = {name: code for code, name in enumerate(OPS)}
NONE = len(CLASSES)
#: program op → (DRAM command, rule class or None, all-bank)
_ISSUES = {
    "ACT": ("ACT", "ACT", False), "ACT_AB": ("ACT_AB", "ACT", True),
    "PRE": ("PRE", "PRE", False), "PRE_AB": ("PRE_AB", "PRE", True),
    "WR_SBK": ("WR", "WR", False), "RD_SBK": ("RD", "RD", False),
    "WR_ABK": ("WR_AB", "WR", True), "WR_GB": ("WR_GB", None, False),
    "WR_BIAS": ("WR_BIAS", None, False), "MAC_SBK": ("MAC", "MAC", False),
    "MAC_ABK": ("MAC_AB", "MAC", True), "AF": ("AF", None, False),
    "RD_MAC": ("RD_MAC", None, False), "RD_AF": ("RD_AF", None, False),
}
_READS = ("RD_SBK", "RD_MAC", "RD_AF")


def always_ready(fields):
    """A stream without ``ready`` (``valid`` and ``payload`` only): the receiver takes every
    beat. (``stream.Signature(always_ready=True)`` gives a constant ``ready`` member, which a
    top-level Verilog port cannot be.)"""
    return wiring.Signature({"valid": Out(1), "payload": Out(payload_layout(fields))})


class Controller(wiring.Component):
    """In-order PIM channel controller (see the module docstring and
    :mod:`accelgen.generators.pim` for the instruction set, the rules and the counters).

    Members
    -------
    cmd : In(stream)
        Host instructions.
    o : Out(stream)
        Results (RD_SBK columns, RD_MAC / RD_AF bank values).
    rsp : Out(stream)
        Error beats and EOC beats with the counters.
    dram : Out(stream, always ready)
        DRAM commands; ``valid`` marks the cycles a command issues (the memory must take it).
    rdata : In(stream, always ready)
        Read data from the memory, in command order.
    trace : Out(stream, always ready)
        With ``config.trace``: every DRAM command with its cycle stamp.
    """

    def __init__(self, config):
        self.config = config
        ports = {
            "cmd": In(stream_signature(config.cmd_fields)),
            "o": Out(stream_signature(config.o_fields)),
            "rsp": Out(stream_signature(config.rsp_fields)),
            "dram": Out(always_ready(config.dram_fields)),
            "rdata": In(always_ready(config.rdata_fields)),
        }
        if config.trace:
            ports["trace"] = Out(always_ready(config.trace_fields))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        B, U = cfg.banks, cfg.row_buffers
        m.submodules.timing = te = TimingEngine(cfg)

        # -- the current instruction ---------------------------------------------------------
        cur = Signal(payload_layout(cfg.cmd_fields))
        cur_valid = Signal()
        cur_i = Signal(range(cfg.columns + 1))
        op = cur.op

        def is_op(*names):
            return _any(op == OP[n] for n in names)

        # -- bank-state table -----------------------------------------------------------------
        is_open = [[Signal(name=f"open_b{b}_u{u}") for u in range(U)] for b in range(B)]
        rowtab = [[Signal(cfg.row_bits, name=f"row_b{b}_u{u}") for u in range(U)]
                  for b in range(B)]
        open_of = Array(Array(is_open[b]) for b in range(B))
        row_of = Array(Array(rowtab[b]) for b in range(B))
        bufmask = {u: Cat(is_open[b][u] for b in range(B)) for u in range(U)}
        open_in_buf = Array(bufmask[u] for u in range(U))[cur.buf] if U > 1 else bufmask[0]
        all_closed = ~_any(is_open[b][u] for b in range(B) for u in range(U))
        same_row = Array(_all(is_open[b][u] & (rowtab[b][u] == rowtab[0][u]) for b in range(B))
                         for u in range(U))

        # -- validation -----------------------------------------------------------------------
        err = Signal(3)
        bank_ops = is_op("ACT", "PRE", "WR_SBK", "RD_SBK", "WR_BIAS", "MAC_SBK")
        buf_ops = is_op("ACT", "ACT_AB", "PRE", "PRE_AB", "WR_SBK", "RD_SBK", "WR_ABK",
                        "MAC_SBK", "MAC_ABK")
        mac = is_op("MAC_SBK", "MAC_ABK")
        out_of_range = (
            (bank_ops & (cur.bank >= B)) | (buf_ops & (cur.buf >= U))
            | (is_op("ACT", "ACT_AB") & (cur.row >= cfg.rows))
            | (is_op("WR_SBK", "RD_SBK", "WR_ABK") & (cur.col >= cfg.columns))
            | (is_op("WR_GB") & (cur.col >= cfg.gb_columns))
            | (mac & ((cur.count == 0) | (cur.col + cur.count > cfg.columns)
                      | (cur.gb + cur.count > cfg.gb_columns))))
        fmt_bad = mac & ~_any(cur.fmt == c for c, f in enumerate(FORMATS) if f in cfg.formats)
        here_open = open_of[cur.bank][cur.buf] if U > 1 else open_of[cur.bank][0]
        if U > 1:
            other = ~cur.buf
            twin = open_of[cur.bank][other] & (row_of[cur.bank][other] == cur.row)
            twin_any = _any(Array(is_open[b])[other] & (Array(rowtab[b])[other] == cur.row)
                            for b in range(B))
        else:
            twin = twin_any = Const(0)
        state_bad = ((is_op("ACT") & (here_open | twin))
                     | (is_op("ACT_AB") & ((open_in_buf != 0) | twin_any))
                     | (is_op("WR_SBK", "RD_SBK", "MAC_SBK") & ~here_open))
        abk_bad = is_op("WR_ABK", "MAC_ABK") & ~(same_row[cur.buf] if U > 1 else same_row[0])
        with m.If(op >= len(OPS)):
            m.d.comb += err.eq(1)
        with m.Elif(out_of_range):
            m.d.comb += err.eq(2)
        with m.Elif(fmt_bad):
            m.d.comb += err.eq(3)
        with m.Elif(state_bad):
            m.d.comb += err.eq(4)
        with m.Elif(abk_bad):
            m.d.comb += err.eq(5)

        # -- the program's next command -------------------------------------------------------
        p = Signal(payload_layout(cfg.dram_fields))
        p_kind = Signal(range(NONE + 1), init=NONE)
        p_targets = Signal(B)
        p_has = Signal()
        p_read = Signal()
        p_last = Signal(init=1)
        one_hot = Signal(B)
        # every field defaults to 0 (a field no branch assigns would be left undriven: X)
        m.d.comb += [p.eq(0), one_hot.eq(1 << cur.bank)]
        for name, (dram, cls, all_bank) in _ISSUES.items():
            with m.If(op == OP[name]):
                m.d.comb += [p.cmd.eq(D[dram]), p_has.eq(1),
                             p_kind.eq(CLASSES.index(cls) if cls else NONE),
                             p_read.eq(name in _READS)]
                if all_bank:
                    m.d.comb += p_targets.eq(open_in_buf if name == "PRE_AB" else (1 << B) - 1)
                elif cls is not None or name == "WR_BIAS":
                    m.d.comb += p_targets.eq(one_hot if cls else 0)
                    m.d.comb += p.bank.eq(cur.bank)
                if cls is not None:
                    m.d.comb += p.buf.eq(cur.buf)
                if name in ("ACT", "ACT_AB"):
                    m.d.comb += p.row.eq(cur.row)
                if name in ("WR_SBK", "RD_SBK", "WR_ABK", "WR_GB"):
                    m.d.comb += p.col.eq(cur.col)
                if name in ("WR_SBK", "WR_ABK", "WR_GB", "WR_BIAS"):
                    m.d.comb += p.data.eq(cur.data)
                if name in ("MAC_SBK", "MAC_ABK"):
                    m.d.comb += [p.col.eq(cur.col + cur_i), p.gb.eq(cur.gb + cur_i),
                                 p.fmt.eq(cur.fmt), p.init.eq(cur.init & (cur_i == 0)),
                                 p_last.eq(cur_i + 1 == cur.count)]
                if name == "AF":
                    m.d.comb += [p.func.eq(cur.func), p.shift.eq(cur.shift)]
                if name == "PRE":
                    m.d.comb += p_has.eq(here_open)
                if name == "PRE_AB":
                    m.d.comb += p_has.eq(open_in_buf != 0)

        def rule_ready(kind, targets, buf, cmd):
            """The timing engine allows a command of ``kind`` on ``targets`` now."""
            ok = Signal()
            with m.Switch(kind):
                for f, cls in enumerate(CLASSES):
                    with m.Case(f):
                        m.d.comb += ok.eq(te.ready(cls, targets, buf))
                with m.Default():
                    m.d.comb += ok.eq(1)
            faw = Mux(cmd == D["ACT_AB"], te.faw_free == 4,
                      Mux(cmd == D["ACT"], te.faw_free != 0, 1))
            return ok & faw & ~te.blackout

        # -- result FIFO and read credits -----------------------------------------------------
        m.submodules.o_fifo = o_fifo = fifo.SyncFIFOBuffered(
            width=len(self.o.payload.as_value()), depth=cfg.o_depth)
        inflight = Signal(range(cfg.o_depth + 1))
        issue_read = Signal()
        m.d.comb += [o_fifo.w_en.eq(self.rdata.valid),
                     o_fifo.w_data.eq(self.rdata.payload.as_value()),
                     self.o.valid.eq(o_fifo.r_rdy),
                     self.o.payload.eq(o_fifo.r_data),
                     o_fifo.r_en.eq(self.o.ready)]
        m.d.sync += inflight.eq(inflight + issue_read - self.rdata.valid)
        credit = inflight + o_fifo.level < cfg.o_depth
        formal.occupancy(m, "result FIFO with reads in flight", inflight + o_fifo.level,
                         push=issue_read, pop=self.o.valid & self.o.ready, depth=cfg.o_depth)
        formal.check(m, "result FIFO: no result written when full", "fifo",
                     ~(o_fifo.w_en & ~o_fifo.w_rdy))
        drained = (inflight == 0) & (o_fifo.level == 0)

        # rsp: one output register (responses are rare; a full register stalls the program)
        rsp_word = Signal(payload_layout(cfg.rsp_fields))
        rsp_push = Signal()
        rsp_room = ~self.rsp.valid | self.rsp.ready
        with m.If(rsp_push):
            m.d.sync += [self.rsp.valid.eq(1), self.rsp.payload.eq(rsp_word)]
        with m.Elif(self.rsp.ready):
            m.d.sync += self.rsp.valid.eq(0)

        # -- refresh manager ------------------------------------------------------------------
        # its command this cycle (REF, PRE_AB or ACT: the fields below, the others are 0)
        r = Signal(payload_layout([f for f in cfg.dram_fields
                                   if f.name in ("cmd", "bank", "buf", "row")]))
        r_kind = Signal(range(NONE + 1), init=NONE)
        r_targets = Signal(B)
        r_want = Signal()                                # it has a command to issue
        hold = Signal()                                  # it holds the program
        r_issue = Signal()
        owed = Signal(range(MAX_POSTPONED + 2))
        if cfg.refresh:
            t = cfg.timing
            interval = Signal(range(t.tREFI))
            tick = interval == t.tREFI - 1
            m.d.sync += interval.eq(Mux(tick, 0, interval + 1))
            did_ref = r_issue & (r.cmd == D["REF"])
            m.d.sync += owed.eq(owed + tick - did_ref)
            # the refresh rule: at most MAX_POSTPONED REFs postponed, so never more than
            # (MAX_POSTPONED + 1) tREFI between two REFs
            formal.counter(m, "refreshes owed", owed + tick - did_ref, lo=0,
                           hi=MAX_POSTPONED + 1)
            saved = Signal(B * U)
            remaining = Signal(B * U)
            forced = Signal()
            m.d.comb += forced.eq(owed >= MAX_POSTPONED)
            with m.FSM(name="refresh"):
                with m.State("IDLE"):
                    with m.If(owed != 0):
                        with m.If(all_closed):
                            m.d.comb += [hold.eq(1), r_want.eq(1), r.cmd.eq(D["REF"])]
                            with m.If(r_issue):
                                m.d.sync += remaining.eq(0)
                        with m.Elif(forced):
                            m.d.comb += hold.eq(1)
                            m.d.sync += saved.eq(Cat(bufmask[u] for u in range(U)))
                            m.next = "CLOSE"
                with m.State("CLOSE"):
                    m.d.comb += hold.eq(1)
                    closing = Signal(range(max(2, U)))
                    for u in reversed(range(U)):
                        with m.If(bufmask[u] != 0):
                            m.d.comb += closing.eq(u)
                    with m.If(~all_closed):
                        m.d.comb += [r_want.eq(1), r.cmd.eq(D["PRE_AB"]), r.buf.eq(closing),
                                     r_kind.eq(CLASSES.index("PRE")),
                                     r_targets.eq(Array(bufmask[u] for u in range(U))[closing])]
                    with m.Else():
                        m.d.comb += [r_want.eq(1), r.cmd.eq(D["REF"])]
                        with m.If(r_issue):
                            m.d.sync += remaining.eq(saved)
                            m.next = "REOPEN"
                with m.State("REOPEN"):
                    m.d.comb += hold.eq(1)
                    with m.If(remaining == 0):
                        m.next = "IDLE"
                    with m.Else():
                        low = Signal(range(B * U))
                        for k in reversed(range(B * U)):
                            with m.If(remaining[k]):
                                m.d.comb += low.eq(k)
                        slot_bank = Signal(range(B))
                        slot_buf = Signal(range(max(2, U)))
                        m.d.comb += [slot_bank.eq(low % B), slot_buf.eq(low // B)]
                        m.d.comb += [r_want.eq(1), r.cmd.eq(D["ACT"]), r.bank.eq(slot_bank),
                                     r.buf.eq(slot_buf),
                                     r.row.eq(row_of[slot_bank][slot_buf] if U > 1
                                              else row_of[slot_bank][0]),
                                     r_kind.eq(CLASSES.index("ACT")),
                                     r_targets.eq(1 << slot_bank)]
                        with m.If(r_issue):
                            m.d.sync += remaining.eq(remaining & ~(1 << low))
        ref_ok = Mux(r.cmd == D["REF"], te.all_ready("ACT") & ~te.blackout,
                     rule_ready(r_kind, r_targets, r.buf, r.cmd))
        m.d.comb += r_issue.eq(r_want & ref_ok)

        # -- issue ----------------------------------------------------------------------------
        p_ok = rule_ready(p_kind, p_targets, p.buf, p.cmd) & (~p_read | credit)
        active = cur_valid & ~hold
        p_issue = Signal()
        m.d.comb += p_issue.eq(active & (err == 0) & p_has & p_ok)
        is_eoc, is_sync = is_op("EOC") & (err == 0), is_op("SYNC")
        quiet = te.quiet & drained
        consume = Signal()
        with m.If(active):
            with m.If(err != 0):
                m.d.comb += consume.eq(rsp_room)
            with m.Elif(is_eoc):
                m.d.comb += consume.eq(quiet & rsp_room)
            with m.Elif(is_sync):
                m.d.comb += consume.eq(quiet)
            with m.Elif(~p_has):
                m.d.comb += consume.eq(1)
            with m.Else():
                m.d.comb += consume.eq(p_issue & p_last)
        m.d.comb += issue_read.eq(p_issue & p_read)

        issue = p_issue | r_issue
        sel = Signal(payload_layout(cfg.dram_fields))
        sel_kind = Signal(range(NONE + 1))
        sel_targets = Signal(B)
        # field by field: the refresh manager drives cmd, bank, buf and row only (a field
        # driven by nothing but a constant becomes an `always @*` block Icarus never runs)
        for f in cfg.dram_fields:
            mine = f.name in ("cmd", "bank", "buf", "row")
            m.d.comb += getattr(sel, f.name).eq(
                Mux(r_issue, getattr(r, f.name) if mine else 0, getattr(p, f.name)))
        m.d.comb += [sel_kind.eq(Mux(r_issue, r_kind, p_kind)),
                     sel_targets.eq(Mux(r_issue, r_targets, p_targets))]
        m.d.comb += [self.dram.valid.eq(issue), self.dram.payload.eq(sel),
                     te.issue.eq(issue), te.kind.eq(sel_kind), te.targets.eq(sel_targets),
                     te.buf.eq(sel.buf), te.weight4.eq(sel.cmd == D["ACT_AB"]),
                     te.refresh.eq(sel.cmd == D["REF"])]
        if formal.active():
            # a second opinion on the timing engine, from the command port alone
            m.submodules.timing_monitor = mon = TimingMonitor(cfg, self.dram.valid,
                                                              self.dram.payload)
            # a lemma that makes the buffer rules inductive (a PRE_AB closes what is open)
            formal.check(m, "bank-state table: as the DRAM commands left it", "timing",
                         Cat(mon.open[b][u] for b in range(B) for u in range(U))
                         == Cat(is_open[b][u] for b in range(B) for u in range(U)))

        # bank-state table updates
        with m.If(issue):
            for b in range(B):
                for u in range(U):
                    hit = sel_targets[b] & (sel.buf == u)
                    with m.If(hit & (sel.cmd == D["ACT"]) | hit & (sel.cmd == D["ACT_AB"])):
                        m.d.sync += [is_open[b][u].eq(1), rowtab[b][u].eq(sel.row)]
                    with m.If(hit & ((sel.cmd == D["PRE"]) | (sel.cmd == D["PRE_AB"]))):
                        m.d.sync += is_open[b][u].eq(0)

        # instruction register
        m.d.comb += self.cmd.ready.eq(~cur_valid | consume)
        with m.If(p_issue & ~p_last):
            m.d.sync += cur_i.eq(cur_i + 1)
        with m.If(self.cmd.ready):
            m.d.sync += [cur_valid.eq(self.cmd.valid), cur_i.eq(0)]
            with m.If(self.cmd.valid):
                m.d.sync += cur.eq(self.cmd.payload)

        # -- counters and responses -----------------------------------------------------------
        w = cfg.counter_width
        counters = {name: Signal(w, name=f"n_{name}") for name in COUNTERS}
        index = Signal(w)
        started = Signal()
        end = consume & is_eoc
        with m.If(consume):
            m.d.sync += index.eq(Mux(is_eoc, 0, index + 1))
        m.d.comb += rsp_push.eq(consume & ((err != 0) | is_eoc))
        m.d.comb += [rsp_word.eq(0), rsp_word.eoc.eq(err == 0), rsp_word.err.eq(err),
                     rsp_word.index.eq(index)]
        with m.If(err == 0):
            for name in COUNTERS:
                m.d.comb += getattr(rsp_word, name).eq(counters[name])
        running = started | p_issue
        is_mac = (p.cmd == D["MAC"]) | (p.cmd == D["MAC_AB"])
        lanes = {f: cfg.elements(f) for f in cfg.formats}
        mac_count = Mux(p.cmd == D["MAC_AB"], B, 1) * Mux(p.fmt == 1, lanes.get("s16", 0),
                                                           lanes["s8"])
        # an instruction that is there and neither issued nor completed this cycle waits: for
        # room in the result or response FIFO (output), else for a rule or for quiet (timing)
        blocked = active & (err == 0) & ~p_issue & ~consume
        out_block = p_has & p_read & ~credit | is_eoc & quiet & ~rsp_room
        events = {
            "cycles": running,
            "busy": Mux(p_issue & is_mac, cfg.timing.tCCD_L, 0),
            "macs": Mux(p_issue & is_mac, mac_count, 0),
            "acts": issue & ((sel.cmd == D["ACT"]) | (sel.cmd == D["ACT_AB"])),
            "pres": issue & ((sel.cmd == D["PRE"]) | (sel.cmd == D["PRE_AB"])),
            "refs": r_issue & (r.cmd == D["REF"]),
            "stall_timing": started & blocked & ~out_block,
            "stall_refresh": started & cur_valid & hold,
            "stall_host": started & ~cur_valid,
            "stall_output": started & (blocked & out_block
                                       | active & (err != 0) & ~rsp_room),
        }
        with m.If(end):
            m.d.sync += started.eq(0)
            for name in COUNTERS:
                m.d.sync += counters[name].eq(0)
        with m.Else():
            m.d.sync += started.eq(running)
            for name, inc in events.items():
                m.d.sync += counters[name].eq(counters[name] + inc)

        # -- trace ----------------------------------------------------------------------------
        if cfg.trace:
            now = Signal(w)
            m.d.sync += now.eq(now + 1)
            tr = self.trace.payload
            m.d.comb += [self.trace.valid.eq(issue), tr.cycle.eq(now), tr.cmd.eq(sel.cmd),
                         tr.bank.eq(sel.bank), tr.buf.eq(sel.buf), tr.row.eq(sel.row),
                         tr.col.eq(sel.col)]
        return m
