"""Block ``systolic``: an R x C systolic GEMM engine with its tiling controller.

::

                 b ──► B-panel buffer (2 banks x k_max rows of C operands)
                          │ os: one row per step        │ ws: R rows per weight tile
                          ▼ (skewed by column)          ▼ (shadow-weight chain, no skew)
    a ──► a FIFO ──► [feeder] ──► ┌────┬────┬────┐
        (R operands  skewed by    │ PE │ PE │ PE │──► a, tags move right
         per beat)   row          ├────┼────┼────┤
                                  │ PE │ PE │ PE │    os: b moves down, results leave upwards
                                  ├────┼────┼────┤    ws: partial sums move down
                                  │ PE │ PE │ PE │
                                  └────┴────┴────┘
          os: top edge ─┐                    ┌─ ws: bottom edge
                        └─► de-skew (column j delayed C-1-j) ─► one result row
                                     │
                    read-modify-write: row = ovf((overwrite ? 0 : mem) + row)
                                     │
                           accumulator memory (acc_depth rows of C lanes)
                                     │ drain in row order
                          (requantizer) ─► output FIFO ─► o ;  rsp (err + counters)

The array is free-running: it never stalls. The feeder issues one *step* (an ``a`` beat, a
B-panel row in ``os``, and tags) per cycle or a bubble (zeros), and it only issues a step whose
results will find room: rows are retired into the accumulator memory, which is the elastic
buffer in front of the (backpressured) output. Its ring of ``acc_depth`` rows is the credit.

Output-stationary PE: ``acc`` sums exactly over the K steps of a tile; the step tagged
``last`` captures ``acc + p`` into ``out`` and clears ``acc`` (the clear is the register's
synchronous reset, so the next tile's first product needs no bubble). ``out`` registers form
a chain that moves one row *up* per cycle while the capture wave moves down, so a tile's rows
leave the top edge every other cycle, in order; the next tile's capture may follow 2R-1
cycles later (the feeder enforces it; it only matters for K < 2R-1).

Weight-stationary PE: a shadow weight register is loaded by shifting R B-panel rows down each
column (``wload``) while the previous tile computes; the step tagged ``swap`` (first row of a
weight tile) copies shadow to active as it passes. Partial sums move down and are exact
(``ws_sum_width``); the accumulator memory applies the overflow rule once per K-block.

With both dataflows the PE shares its multiplier, operand register and sum register and muxes
their sources by the command's dataflow.

Numeric semantics, stream formats, errors and counters are defined in
:mod:`accelgen.generators.systolic` and :mod:`accelgen.sim.golden.systolic`.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..numerics import IntFormat
from .common.arith import lut_product
from .common.numerics import apply_overflow
from .common.operands import read_operand
from .common.stream import stream_signature

__all__ = ["Systolic", "standalone_pe"]


def _delay(m, value, cycles, name):
    """``value`` delayed by ``cycles`` registers (free-running)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{n}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class _PE(Elaboratable):
    """One processing element. ``os``/``ws`` say which dataflows it carries; ``ws_mode`` picks
    one at run time when it carries both. Every register is free-running."""

    def __init__(self, cfg, *, os, ws, carry_valid, name, lut_multiplier=False):
        self.cfg, self.os, self.ws = cfg, os, ws
        self.lut_multiplier = lut_multiplier
        ow = cfg.operand_width
        widths = ([cfg.os_acc_width] if os else []) + ([cfg.ws_sum_width] if ws else [])
        self.sum_width = max(widths)
        self.a_in = Signal(signed(ow), name=f"{name}_a_in")
        self.a = Signal(signed(ow), name=f"{name}_a")
        self.bw = Signal(signed(ow), name=f"{name}_bw")      # os: b operand; ws: active weight
        self.ws_mode = Signal(name=f"{name}_ws_mode") if (os and ws) else Const(int(ws), 1)
        if os:
            self.b_in = Signal(signed(ow), name=f"{name}_b_in")
            self.last_in = Signal(name=f"{name}_last_in")
            self.last = Signal(name=f"{name}_last")
            self.out_in = Signal(signed(cfg.os_acc_width), name=f"{name}_out_in")
            self.ov_in = Signal(name=f"{name}_ov_in")
            self.out = Signal(signed(cfg.os_acc_width), name=f"{name}_out")
            self.ov = Signal(name=f"{name}_ov")
        if ws:
            self.swap_in = Signal(name=f"{name}_swap_in")
            self.swap = Signal(name=f"{name}_swap")
            self.w_in = Signal(signed(ow), name=f"{name}_w_in")
            self.w_s = Signal(signed(ow), name=f"{name}_w_s")
            self.load = Signal(name=f"{name}_load")
            self.ps_in = Signal(signed(self.sum_width), name=f"{name}_ps_in")
        self.carry_valid = carry_valid
        if carry_valid:
            self.v_in = Signal(name=f"{name}_v_in")
            self.v = Signal(name=f"{name}_v")
            self.sv = Signal(name=f"{name}_sv")          # ws: ``s`` holds a valid step's sum
        self.s = Signal(signed(self.sum_width), name=f"{name}_s")   # os: acc; ws: partial sum
        self.name = name

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        m.d.sync += self.a.eq(self.a_in)
        if self.os:
            m.d.sync += self.last.eq(self.last_in)
        if self.ws:
            m.d.sync += self.swap.eq(self.swap_in)
            with m.If(self.load):
                m.d.sync += self.w_s.eq(self.w_in)
        if self.carry_valid:
            m.d.sync += self.v.eq(self.v_in)
        self._operand(m)

        if self.lut_multiplier:
            product = lut_product(m, self.a, self.bw, name=f"{self.name}_m")
        else:
            product = self.a * self.bw
        product = product[:cfg.product_width].as_signed()   # exact: fits by range
        last = self.last if self.os else Const(0, 1)
        valid = self.v if self.carry_valid else Const(0, 1)
        if cfg.pe_pipeline:     # product register; the tags that go with it follow
            p = Signal(signed(cfg.product_width), name=f"{self.name}_p")
            m.d.sync += p.eq(product)
            product = p
            if self.os:
                last = _delay(m, last, 1, f"{self.name}_last_p")
            if self.carry_valid:
                valid = _delay(m, valid, 1, f"{self.name}_v_p")

        if self.os and self.ws:
            addend = Mux(self.ws_mode, self.ps_in, self.s)
        else:
            addend = self.ps_in if self.ws else self.s
        total = addend + product
        with m.If(last & ~self.ws_mode):
            m.d.sync += self.s.eq(0)          # synchronous reset: the next tile starts at 0
        with m.Else():
            m.d.sync += self.s.eq(total)
        if self.os:
            with m.If(last):
                m.d.sync += [self.out.eq(total), self.ov.eq(1)]
            with m.Else():
                m.d.sync += [self.out.eq(self.out_in), self.ov.eq(self.ov_in)]
        if self.carry_valid:
            m.d.sync += self.sv.eq(valid)
        return m

    def _operand(self, m):
        """The second multiplier operand: the passing ``b`` (os) or the active weight (ws),
        which takes the shadow weight when a ``swap`` step enters."""
        if self.os and self.ws:
            with m.If(self.ws_mode):
                with m.If(self.swap_in):
                    m.d.sync += self.bw.eq(self.w_s)
            with m.Else():
                m.d.sync += self.bw.eq(self.b_in)
        elif self.os:
            m.d.sync += self.bw.eq(self.b_in)
        else:
            with m.If(self.swap_in):
                m.d.sync += self.bw.eq(self.w_s)


def standalone_pe(config, *, lut_multiplier=False):
    """One processing element of ``config`` (an interior one: no valid tag) as
    ``(elaboratable, ports)`` for ``amaranth.back.verilog.convert``, so benchmarks can
    synthesize a PE alone."""
    pe = _PE(config, os="os" in config.dataflows, ws="ws" in config.dataflows,
             carry_valid=False, name="pe", lut_multiplier=lut_multiplier)
    ports = [v for v in vars(pe).values() if isinstance(v, Signal)]
    return pe, ports


class _Array(Elaboratable):
    """R x C PEs with input skew and output de-skew.

    Inputs (one step per cycle): ``a`` (R operands), ``b`` (C operands, os), ``last`` (os),
    ``swap`` and ``v`` (ws), ``wload``/``w_top`` (ws shadow-weight shift), ``ws_mode``.
    Output: ``row`` (C sums) with ``row_valid``, all columns aligned: os rows leave every
    other cycle in tile-row order; ws one row per valid step, in step order.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        R, C, ow = cfg.rows, cfg.cols, cfg.operand_width
        self.has_os, self.has_ws = "os" in cfg.dataflows, "ws" in cfg.dataflows
        self.a = [Signal(signed(ow), name=f"arr_a{i}") for i in range(R)]
        self.b = [Signal(signed(ow), name=f"arr_b{j}") for j in range(C)]
        self.w_top = [Signal(signed(ow), name=f"arr_w{j}") for j in range(C)]
        self.last, self.swap, self.v, self.wload = Signal(), Signal(), Signal(), Signal()
        self.ws_mode = Signal()
        widths = ([cfg.os_acc_width] if self.has_os else []) + \
                 ([cfg.ws_sum_width] if self.has_ws else [])
        self.row_width = max(widths)
        self.row = [Signal(signed(self.row_width), name=f"arr_row{j}") for j in range(C)]
        self.row_valid = Signal()

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        R, C = cfg.rows, cfg.cols
        pe = [[_PE(cfg, os=self.has_os, ws=self.has_ws, carry_valid=(i == R - 1 and self.has_ws),
                   name=f"pe{i}_{j}", lut_multiplier=i >= R - cfg.lut_rows)
               for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(C):
                m.submodules[f"pe{i}_{j}"] = pe[i][j]
        # ws: column j loads its shadow weights j cycles late, like the swap wave reaches it
        w_top = [_delay(m, self.w_top[j], j, f"sk_w{j}") for j in range(C)]
        wload = [_delay(m, self.wload, j, f"sk_wl{j}") for j in range(C)]
        for i in range(R):
            for j in range(C):
                p = pe[i][j]
                left = pe[i][j - 1] if j else None
                up = pe[i - 1][j] if i else None
                down = pe[i + 1][j] if i < R - 1 else None
                if self.has_os and self.has_ws:
                    m.d.comb += p.ws_mode.eq(self.ws_mode)
                m.d.comb += p.a_in.eq(left.a if left else _delay(m, self.a[i], i, f"sk_a{i}"))
                if self.has_os:
                    m.d.comb += [
                        p.last_in.eq(left.last if left else _delay(m, self.last, i, f"sk_l{i}")),
                        p.b_in.eq(up.bw if up else _delay(m, self.b[j], j, f"sk_b{j}")),
                        p.out_in.eq(down.out if down else 0),
                        p.ov_in.eq(down.ov if down else 0),
                    ]
                if self.has_ws:
                    m.d.comb += [
                        p.swap_in.eq(left.swap if left else _delay(m, self.swap, i, f"sk_s{i}")),
                        p.w_in.eq(up.w_s if up else w_top[j]),
                        p.load.eq(wload[j]),
                        p.ps_in.eq(up.s if up else 0),
                    ]
                if p.carry_valid:
                    m.d.comb += p.v_in.eq(left.v if left else _delay(m, self.v, i, "sk_v"))
        self._deskew(m, pe)
        return m

    def _deskew(self, m, pe):
        R, C = self.cfg.rows, self.cfg.cols
        for j in range(C):
            sources = []
            if self.has_os:
                sources.append((pe[0][j].out, pe[0][j].ov))
            if self.has_ws:
                sources.append((pe[R - 1][j].s, pe[R - 1][j].sv))
            if len(sources) == 2:
                value = Mux(self.ws_mode, sources[1][0], sources[0][0])
                valid = Mux(self.ws_mode, sources[1][1], sources[0][1])
            else:
                value, valid = sources[0]
            value = _delay(m, value, C - 1 - j, f"dsk_c{j}")
            m.d.comb += self.row[j].eq(value)
            if j == 0:
                m.d.comb += self.row_valid.eq(_delay(m, valid, C - 1, "dsk_v"))


class _Nest:
    """Loop counters of a tiling loop nest, outermost first. Level ``l`` counts ``0, step,
    2*step, ...`` while below its ``limit`` (a signal that holds still while the loop runs).
    ``advance`` steps the innermost level and carries outwards; ``done`` is set after the
    final iteration. ``start`` clears all.

    Everything a consumer reads is a register, computed when the counters move rather than
    when it is read, so loop control adds no adders or comparators to the issue path.

    Members: ``ctr`` (per level), ``first``/``end`` (the level is at its first/last value),
    ``chunk``
    (``min(step, limit - ctr)``: how many rows/columns this iteration covers), ``wrap`` (the
    level wraps on this advance; combinational), ``final`` (every level at its last value),
    ``done``.
    """

    def __init__(self, m, name, levels, *, start, advance, width):
        count = len(levels)
        self.ctr = [Signal(width, name=f"{name}_c{n}") for n in range(count)]
        self.end = [Signal(name=f"{name}_end{n}") for n in range(count)]
        self.first = [Signal(name=f"{name}_first{n}", init=1) for n in range(count)]
        self.chunk = [Signal(range(step + 1), name=f"{name}_chunk{n}")
                      for n, (_, step) in enumerate(levels)]
        rem = [Signal(width + 1, name=f"{name}_rem{n}") for n in range(count)]
        self.done = Signal(name=f"{name}_done")
        self.wrap = [Signal(name=f"{name}_wrap{n}") for n in range(count)]
        inner_end = Const(1, 1)
        for n in reversed(range(count)):
            limit, step = levels[n]
            carry = advance & inner_end
            m.d.comb += self.wrap[n].eq(carry & self.end[n])
            left = rem[n] - step                       # what remains after this iteration
            with m.If(start | (carry & self.end[n])):
                m.d.sync += [self.ctr[n].eq(0), rem[n].eq(limit), self.end[n].eq(limit <= step),
                             self.chunk[n].eq(_min(limit, step)), self.first[n].eq(1)]
            with m.Elif(carry):
                m.d.sync += [self.ctr[n].eq(self.ctr[n] + step), rem[n].eq(left),
                             self.end[n].eq(left <= step), self.chunk[n].eq(_min(left, step)),
                             self.first[n].eq(0)]
            inner_end = inner_end & self.end[n]
        self.final = inner_end
        with m.If(start):
            m.d.sync += self.done.eq(0)
        with m.Elif(advance & self.final):
            m.d.sync += self.done.eq(1)


def _min(a, b):
    return Mux(a < b, a, b)


class Systolic(wiring.Component):
    """Systolic GEMM engine.

    Parameters
    ----------
    config : SystolicConfig

    Members
    -------
    cmd : In(stream.Signature(...))
        GEMM commands (``SystolicConfig.cmd_fields``); one is executed at a time.
    a : In(stream.Signature(...))
        Operand A, R elements per beat, in the order the command's dataflow defines.
    b : In(stream.Signature(...))
        Operand B, C elements per beat: the rows of each C-column panel.
    c : In(stream.Signature(...))
        Initial accumulators of a ``preload`` command, one result row (C lanes) per beat.
    o : Out(stream.Signature(...))
        Result rows (``c``: C lanes of ``s<acc_width>``; ``last`` on a command's final row).
    rsp : Out(stream.Signature(...))
        One beat per command: ``err`` and the performance counters.

    Timing
    ------
    The array performs one step (R x C MACs) per cycle while ``a`` delivers one beat per cycle
    and the B panel of the current column block is loaded; panel ``nb + 1`` loads while panel
    ``nb`` computes. Every stream tolerates arbitrary gaps and backpressure. ``a`` and ``b``
    beats are only taken while a command that needs them runs.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "cmd": In(stream_signature(config.cmd_fields)),
            "a": In(stream_signature(config.a_fields)),
            "b": In(stream_signature(config.b_fields)),
            "c": In(stream_signature(config.c_fields)),
            "o": Out(stream_signature(config.o_fields)),
            "rsp": Out(stream_signature(config.rsp_fields)),
        })

    # The units below share state through ``self._s``, a plain namespace of signals.

    def elaborate(self, platform):
        cfg, m = self.config, Module()
        s = self._s = type("State", (), {})()
        s.array = m.submodules.array = _Array(cfg)
        self._command(m)
        self._preloader(m)
        self._panel_loader(m)
        self._a_fifo(m)
        self._feeder(m)
        if "ws" in cfg.dataflows:
            self._weight_loader(m)
        self._writer(m)
        self._drain(m)
        self._control(m)
        return m

    # -- command register and checks -------------------------------------------------------

    def _command(self, m):
        cfg, s = self.config, self._s
        dw = cfg.dim_bits
        s.M, s.K, s.N = Signal(dw, name="M"), Signal(dw, name="K"), Signal(dw, name="N")
        s.accumulate, s.output = Signal(name="accumulate"), Signal(2, name="output")
        s.preload = Signal(name="preload")
        s.ws = Signal(name="ws_mode")
        s.mode = Signal(max(1, cfg.mode_bits), name="mode")
        s.req = {}
        if cfg.requant:
            for f in cfg.cmd_fields[-5:]:
                s.req[f.name] = Signal((signed if f.signed else unsigned)(f.width), name=f.name)
        s.dataflow_code = Signal(max(1, cfg.dataflow_bits), name="dataflow_code")
        s.accept = Signal()
        p = self.cmd.payload
        with m.If(s.accept):
            m.d.sync += [s.M.eq(p.m), s.K.eq(p.k), s.N.eq(p.n), s.accumulate.eq(p.accumulate),
                         s.preload.eq(p.preload), s.output.eq(p.output)]
            if cfg.dataflow_bits:
                m.d.sync += s.dataflow_code.eq(p.dataflow)
            if cfg.mode_bits:
                m.d.sync += s.mode.eq(p.mode)
            for name, sig in s.req.items():
                m.d.sync += sig.eq(p[name])
        ws_code = cfg.dataflows.index("ws") if "ws" in cfg.dataflows else None
        if ws_code is None:
            m.d.comb += s.ws.eq(0)
        elif len(cfg.dataflows) == 1:
            m.d.comb += s.ws.eq(1)
        else:
            m.d.comb += s.ws.eq(s.dataflow_code == ws_code)
        m.d.comb += s.array.ws_mode.eq(s.ws)

    # -- preload: c rows into the accumulator memory before the command runs ---------------

    def _preloader(self, m):
        """Writes the ``c`` beats of a ``preload`` command into rows ``r mod acc_depth`` (lanes
        past N as 0) while the control is in its PRELOAD state."""
        cfg, s = self.config, self._s
        W = cfg.acc_width
        s.start, s.run, s.preloading = Signal(), Signal(), Signal()
        take = Signal(name="pre_take")
        loop = _Nest(m, "pre", [(s.N, cfg.cols), (s.M, 1)], start=s.start, advance=take,
                     width=cfg.dim_bits)
        s.preload_done = loop.done
        addr = Signal(cfg.acc_addr_bits, name="pre_addr")
        with m.If(s.start):
            m.d.sync += addr.eq(0)
        with m.Elif(take):
            m.d.sync += addr.eq(addr + 1)
        cv = loop.chunk[0]
        lanes = [Mux(j < cv, self.c.payload.c[j * W:(j + 1) * W], 0) for j in range(cfg.cols)]
        m.d.comb += [self.c.ready.eq(s.preloading & ~loop.done),
                     take.eq(self.c.valid & self.c.ready)]
        s.pre_write = (take, addr, Cat(*lanes))

    # -- B panels --------------------------------------------------------------------------

    def _panel_loader(self, m):
        """``b`` beats into bank ``p % 2`` for panel ``p``; a bank is full until its consumer
        (feeder in os, weight loader in ws) releases it."""
        cfg, s = self.config, self._s
        k_bits = max(1, (cfg.k_max - 1).bit_length())
        s.panel = m.submodules.panel = Memory(shape=unsigned(cfg.cols * cfg.b_width),
                                              depth=2 << k_bits, init=[])
        wp = s.panel.write_port()
        s.panel_rp = s.panel.read_port()
        s.panel_k_bits = k_bits
        s.bank_full = Signal(2, name="bank_full")
        s.release = Signal(2, name="release")
        bank = Signal(name="pl_bank")
        take = Signal()
        loop = _Nest(m, "pl", [(s.N, cfg.cols), (s.K, 1)], start=s.start, advance=take,
                     width=cfg.dim_bits)
        m.d.comb += [
            self.b.ready.eq(s.run & ~loop.done & ~s.bank_full.bit_select(bank, 1)),
            take.eq(self.b.valid & self.b.ready),
            wp.en.eq(take), wp.addr.eq(Cat(loop.ctr[1][:k_bits], bank)),
        ]
        # lanes past N are stored as zeros: they must add nothing to the memory's lanes there
        bw = cfg.b_width
        m.d.comb += wp.data.eq(Cat(*[Mux(j < loop.chunk[0], self.b.payload.b[j * bw:(j + 1) * bw],
                                         0) for j in range(cfg.cols)]))
        filled = Signal(2)
        m.d.comb += filled.eq(Mux(take & loop.end[1], Mux(bank, 0b10, 0b01), 0))
        with m.If(s.start):
            m.d.sync += [s.bank_full.eq(0), bank.eq(0)]
        with m.Else():
            m.d.sync += s.bank_full.eq((s.bank_full | filled) & ~s.release)
            with m.If(take & loop.end[1]):
                m.d.sync += bank.eq(~bank)

    def _panel_row(self, m, name):
        """The panel read port's data as C operands in the command's mode."""
        cfg, s = self.config, self._s
        formats = [f.b for f in cfg.mode_formats]
        mode = s.mode if cfg.mode_bits else None
        return [read_operand(m, s.panel_rp.data[j * cfg.b_width:], formats, mode,
                             name=f"{name}{j}") for j in range(cfg.cols)]

    # -- a FIFO ----------------------------------------------------------------------------

    def _a_fifo(self, m):
        """Takes exactly the command's ``a`` beats (an intake loop nest mirrors the feeder)."""
        cfg, s = self.config, self._s
        s.afifo = m.submodules.afifo = SyncFIFOBuffered(width=cfg.rows * cfg.a_width,
                                                        depth=cfg.a_depth)
        take = Signal()
        loop = _Nest(m, "ai", self._step_levels(), start=s.start, advance=take,
                     width=cfg.dim_bits)
        m.d.comb += [
            self.a.ready.eq(s.run & ~loop.done & s.afifo.w_rdy),
            take.eq(self.a.valid & self.a.ready),
            s.afifo.w_en.eq(take), s.afifo.w_data.eq(self.a.payload.a),
        ]

    def _step_levels(self):
        """Loop levels of the steps: os (nb, mb, k), ws (nb, kb, m)."""
        cfg, s = self.config, self._s
        return [(s.N, cfg.cols), (Mux(s.ws, s.K, s.M), cfg.rows), (Mux(s.ws, s.M, s.K), 1)]

    # -- feeder ----------------------------------------------------------------------------

    def _feeder(self, m):
        cfg, s = self.config, self._s
        R, C = cfg.rows, cfg.cols
        arr = s.array
        step = Signal(name="step")
        loop = s.feed = _Nest(m, "fd", self._step_levels(), start=s.start, advance=step,
                              width=cfg.dim_bits)
        _, mid, inner = loop.ctr
        s.feed_done = loop.done
        row_bits = 2 * cfg.dim_bits + 1
        s.row_bits = row_bits
        s.drained = Signal(row_bits, name="drained")
        bank = Signal(name="fd_bank")
        with m.If(s.start):
            m.d.sync += bank.eq(0)
        with m.Elif(loop.wrap[1]):
            m.d.sync += bank.eq(~bank)

        # Ring credit: accumulator-memory rows not yet claimed by an issued step. An os tile
        # claims its rows with its last step, a ws row with its step of the first K-block;
        # the drain gives one back per row it reads out. (Commands that keep their rows were
        # checked to fit, so their credit never runs out.)
        credit = Signal(range(cfg.acc_depth + 1), name="fd_credit")
        s.drain_issue = Signal(name="dr_issue")
        rv = loop.chunk[1]                  # os: rows of this tile in M (ws: rows of K)
        # os: capture spacing and ring credit for the tile's rows
        gap = Signal(range(2 * R), name="fd_gap")
        os_last = loop.end[2]
        os_ring_ok = credit >= rv
        os_ok = s.bank_full.bit_select(bank, 1) & (~os_last | ((gap == 0) & os_ring_ok))
        # ws: the weight tile must be loaded for its first row
        s.w_ready = Signal(name="w_ready")
        s.ws_bank_ready = Signal(name="ws_bank_ready")   # driven by the weight loader
        ws_first = loop.first[2]
        ws_claims = loop.first[1]
        ws_ring_ok = credit != 0
        ws_ok = (~ws_first | s.w_ready) & (~ws_claims | ws_ring_ok)
        ready = Signal(name="fd_ready")
        m.d.comb += [
            ready.eq(s.run & ~loop.done & Mux(s.ws, ws_ok, os_ok)),
            step.eq(ready & s.afifo.r_rdy),
            s.afifo.r_en.eq(step),
        ]
        claim = Mux(step, Mux(s.ws, ws_claims, Mux(os_last, rv, 0)), 0)
        with m.If(s.start):
            m.d.sync += credit.eq(cfg.acc_depth)
        with m.Else():
            m.d.sync += credit.eq(credit - claim + s.drain_issue)
        with m.If(s.start):
            m.d.sync += gap.eq(0)
        with m.Elif(step & ~s.ws & os_last):
            m.d.sync += gap.eq(2 * R - 2)
        with m.Elif(gap != 0):
            m.d.sync += gap.eq(gap - 1)

        # os: the panel row for this step; ws uses the read port in the weight loader
        s.fd_panel_addr = Cat(inner[:s.panel_k_bits], bank)
        s.fd_release = Mux(loop.wrap[1] & ~s.ws, Mux(bank, 0b10, 0b01), 0)

        # step registers (F1): the popped a beat and the tags; the panel row arrives now too
        a_bits = Signal(R * cfg.a_width, name="f1_a")
        f1 = Signal(name="f1_step")
        last, swap = Signal(name="f1_last"), Signal(name="f1_swap")
        m.d.sync += [f1.eq(step), a_bits.eq(Mux(step, s.afifo.r_data, 0)),
                     last.eq(step & ~s.ws & os_last), swap.eq(step & s.ws & ws_first)]
        formats = [f.a for f in cfg.mode_formats]
        mode = s.mode if cfg.mode_bits else None
        for i in range(R):
            op = read_operand(m, a_bits[i * cfg.a_width:], formats, mode, name=f"f1_a{i}")
            m.d.comb += arr.a[i].eq(op)
        if "os" in cfg.dataflows:
            m.d.comb += arr.last.eq(last)
            for j, op in enumerate(self._panel_row(m, "f1_b")):
                m.d.comb += arr.b[j].eq(op)
        if "ws" in cfg.dataflows:
            m.d.comb += [arr.swap.eq(swap), arr.v.eq(f1 & s.ws)]
        s.swap_issued = step & s.ws & ws_first

        # counters: useful MACs of the step (two cycles later, off the issue path), and why
        # a step did not go
        s.step = step
        rows_q, cols_q = Signal(range(R + 1), name="mc_rows"), Signal(range(C + 1), name="mc_cols")
        step_q = Signal(name="mc_step")
        m.d.sync += [step_q.eq(step), rows_q.eq(loop.chunk[1]), cols_q.eq(loop.chunk[0])]
        s.step_macs = Signal(range(R * C + 1), name="mc_macs")
        s.macs_valid = Signal(name="mc_valid")
        m.d.sync += [s.step_macs.eq(rows_q * cols_q), s.macs_valid.eq(step_q)]
        waiting = s.run & ~loop.done & ~step
        panel_missing = Mux(s.ws, ws_first & ~s.w_ready & ~s.ws_bank_ready,
                            ~s.bank_full.bit_select(bank, 1))
        ring_full = Mux(s.ws, (~ws_first | s.w_ready) & ws_claims & ~ws_ring_ok,
                        s.bank_full.bit_select(bank, 1) & os_last & (gap == 0) & ~os_ring_ok)
        s.stall_b = waiting & panel_missing
        s.stall_a = waiting & ready & ~s.afifo.r_rdy
        s.stall_out = waiting & ring_full

    # -- weight loader (ws) ----------------------------------------------------------------

    def _weight_loader(self, m):
        """Shifts the R rows of weight tile (nb, kb) into the shadow chain (row R-1 first, rows
        past K as zeros) once the previous tile's swap has passed every PE."""
        cfg, s = self.config, self._s
        R, C = cfg.rows, cfg.cols
        arr = s.array
        load = Signal(name="wl_load")            # a tile load may start
        row = Signal(range(R + 1), name="wl_row")
        busy = Signal(name="wl_busy")
        tile_done = Signal(name="wl_tile_done")
        loop = _Nest(m, "wl", [(s.N, C), (s.K, R)], start=s.start, advance=tile_done,
                     width=cfg.dim_bits)
        bank = Signal(name="wl_bank")
        # The first shift of the next tile may come once the swap step has reached the
        # bottom row (column j shifts and swaps j cycles late, so one bound fits all).
        wait = Signal(range(R + 3), name="wl_wait")
        m.d.comb += s.ws_bank_ready.eq(s.bank_full.bit_select(bank, 1))
        have = Signal(name="wl_have")            # a loaded tile waits for its swap step
        shifting = Signal(name="wl_shift")       # read data enters the shadow chain now
        m.d.comb += load.eq(s.run & s.ws & ~loop.done & ~busy & ~have & (wait == 0) &
                            s.ws_bank_ready)
        k = loop.ctr[1] + (R - 1) - row           # panel row read this cycle
        reading = busy | load
        s.wl_panel_addr = Cat(k[:s.panel_k_bits], bank)
        m.d.comb += tile_done.eq(Mux(busy, row == R - 1, load & (R == 1)))
        m.d.comb += s.w_ready.eq(have & ~shifting)
        with m.If(s.start):
            m.d.sync += [busy.eq(0), row.eq(0), bank.eq(0), have.eq(0), wait.eq(0)]
        with m.Else():
            with m.If(load & (R > 1)):
                m.d.sync += [busy.eq(1), row.eq(1)]
            with m.Elif(busy):
                m.d.sync += row.eq(row + 1)
                with m.If(row == R - 1):
                    m.d.sync += [busy.eq(0), row.eq(0)]
            with m.If(loop.wrap[1]):
                m.d.sync += bank.eq(~bank)
            with m.If(s.swap_issued):
                m.d.sync += [have.eq(0), wait.eq(R + 2)]
            with m.Else():
                with m.If(tile_done):
                    m.d.sync += have.eq(1)
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
        s.wl_release = Mux(loop.wrap[1], Mux(bank, 0b10, 0b01), 0)
        # read data arrives one cycle later: zero rows past K, shift into the shadow chain
        valid_k = Signal(name="wl_valid_k")
        m.d.sync += [shifting.eq(reading), valid_k.eq(k < s.K)]
        for j, op in enumerate(self._panel_row(m, "wl_b")):
            m.d.comb += arr.w_top[j].eq(Mux(valid_k, op, 0))
        m.d.comb += arr.wload.eq(shifting)

    # -- writer: array rows into the accumulator memory ------------------------------------

    def _writer(self, m):
        cfg, s = self.config, self._s
        R, C, W = cfg.rows, cfg.cols, cfg.acc_width
        arr = s.array
        s.acc = m.submodules.acc = Memory(shape=unsigned(C * W), depth=cfg.acc_depth, init=[])
        wp = s.acc.write_port()
        rp = s.acc.read_port()      # not transparent: see the W2 note below
        s.acc_drain_rp = s.acc.read_port()
        take = arr.row_valid & s.run
        # os: (nb, mb, row in tile); ws: (nb, kb, m)
        levels = [(s.N, C), (Mux(s.ws, s.K, s.M), R), (Mux(s.ws, s.M, Const(R, 8)), 1)]
        loop = _Nest(m, "wr", levels, start=s.start, advance=take, width=cfg.dim_bits)
        s.write_done = loop.done
        rowbase = Signal(s.row_bits, name="wr_rowbase")
        with m.If(s.start):
            m.d.sync += rowbase.eq(0)
        with m.Elif(loop.wrap[1]):
            m.d.sync += rowbase.eq(rowbase + s.M)
        mid, inner = loop.ctr[1], loop.ctr[2]
        m_index = Mux(s.ws, inner, mid + inner)
        keep = s.ws | (m_index < s.M)               # os: padding rows of the last tile
        addr = (rowbase + m_index)[:cfg.acc_addr_bits]
        overwrite = ~s.accumulate & ~s.preload & (~s.ws | loop.first[1])
        final = ~s.ws | loop.end[1]
        m.d.comb += rp.addr.eq(addr)
        # W1: the memory's data arrives; W2: registered (the block RAM's output is slow), added
        # and written back. A read in the cycle of a write to the same row would see the old
        # value, but a row comes back no sooner than its next K-block in ws, and the weight
        # swap between K-blocks keeps those at least R + 4 cycles apart.
        v1, ow1, fin1 = Signal(name="w1_valid"), Signal(name="w1_over"), Signal(name="w1_final")
        addr1 = Signal(cfg.acc_addr_bits, name="w1_addr")
        row1 = [Signal(signed(arr.row_width), name=f"w1_row{j}") for j in range(C)]
        m.d.sync += [v1.eq(take & keep), ow1.eq(overwrite), fin1.eq(take & keep & final),
                     addr1.eq(addr)] + [r.eq(x) for r, x in zip(row1, arr.row)]
        old1 = Signal(C * W, name="w2_old")
        m.d.sync += old1.eq(rp.data)
        v1, ow1, fin1, addr1 = (_delay(m, x, 1, f"w2_{n}") for x, n in
                                ((v1, "valid"), (ow1, "over"), (fin1, "final"), (addr1, "addr")))
        row1 = [_delay(m, x, 1, f"w2_row{j}") for j, x in enumerate(row1)]
        fmt = IntFormat(W, True)
        lanes = []
        for j in range(C):
            old = old1[j * W:(j + 1) * W].as_signed()
            lanes.append(apply_overflow(Mux(ow1, 0, old) + row1[j], fmt, cfg.overflow))
        pre_en, pre_addr, pre_data = s.pre_write        # never at the same time as v1
        m.d.comb += [wp.en.eq(v1 | pre_en), wp.addr.eq(Mux(pre_en, pre_addr, addr1)),
                     wp.data.eq(Mux(pre_en, pre_data, Cat(*lanes)))]
        s.final_rows = Signal(s.row_bits, name="final_rows")
        with m.If(s.start):
            m.d.sync += s.final_rows.eq(0)
        with m.Elif(fin1):
            m.d.sync += s.final_rows.eq(s.final_rows + 1)
        s.write_idle = ~v1 & ~_delay(m, take, 1, "w1_take")

    # -- drain: finished rows to the output ------------------------------------------------

    def _drain(self, m):
        cfg, s = self.config, self._s
        C, W = cfg.cols, cfg.acc_width
        rp = s.acc_drain_rp
        req = None
        if cfg.requant:
            from .common.requant import Requantizer
            req = m.submodules.requant = Requantizer(lanes=C, acc_width=W,
                                                     mult_bits=cfg.mult_bits,
                                                     rounding=cfg.rounding)
        latency = 2 + (req.latency if req else 0)
        depth = latency + 3
        ofifo = m.submodules.ofifo = SyncFIFOBuffered(
            width=len(self.o.payload.as_value()), depth=depth)
        inflight = Signal(range(depth + 1), name="dr_inflight")
        s.draining = s.run & (s.output != 2)
        issue = s.drain_issue
        loop = _Nest(m, "dr", [(s.N, C), (s.M, 1)], start=s.start, advance=issue,
                     width=cfg.dim_bits)
        addr = Signal(cfg.acc_addr_bits, name="dr_addr")
        m.d.comb += issue.eq(s.draining & ~loop.done & (s.drained < s.final_rows) &
                             (ofifo.w_level + inflight < depth))
        m.d.comb += rp.addr.eq(addr)
        with m.If(s.start):
            m.d.sync += [addr.eq(0), s.drained.eq(0)]
        with m.Elif(issue):
            m.d.sync += [addr.eq(addr + 1), s.drained.eq(s.drained + 1)]
        # D1: data; lanes past N are sent as zeros (after requantization)
        cv = loop.chunk[0]
        v1, last1 = Signal(name="d1_valid"), Signal(name="d1_last")
        cv1 = Signal(range(C + 1), name="d1_cv")
        m.d.sync += [v1.eq(issue), last1.eq(issue & loop.final), cv1.eq(cv)]
        # D2: the block RAM's output registered
        data2 = Signal(C * W, name="d2_data")
        m.d.sync += data2.eq(rp.data)
        v1, last1, cv1 = (_delay(m, x, 1, f"d2_{n}") for x, n in
                          ((v1, "valid"), (last1, "last"), (cv1, "cv")))
        raw = [data2[j * W:(j + 1) * W].as_signed() for j in range(C)]
        if req:
            m.d.comb += [req.acc[j].eq(raw[j]) for j in range(C)]
            m.d.comb += [req.mult.eq(s.req["mult"]), req.shift.eq(s.req["shift"]),
                         req.zero_point.eq(s.req["zero_point"]), req.relu.eq(s.req["relu"]),
                         req.out_signed.eq(s.req["out_signed"])]
            rq = s.output == 1
            vq = _delay(m, v1 & rq, req.latency, "dq_v")
            lq = _delay(m, last1, req.latency, "dq_l")
            cq = _delay(m, cv1, req.latency, "dq_cv")
            valid = Mux(rq, vq, v1)
            last = Mux(rq, lq, last1)
            cvo = Mux(rq, cq, cv1)
            lanes = [Mux(rq, req.y[j], raw[j]) for j in range(C)]
        else:
            valid, last, cvo, lanes = v1, last1, cv1, raw
        lanes = [Mux(j < cvo, x, 0) for j, x in enumerate(lanes)]
        word = Signal(len(self.o.payload.as_value()), name="dr_word")
        m.d.comb += word.eq(Cat(*[_fit(x, W) for x in lanes], last))
        m.d.comb += [ofifo.w_en.eq(valid), ofifo.w_data.eq(word)]
        with m.If(s.start):
            m.d.sync += inflight.eq(0)
        with m.Else():
            m.d.sync += inflight.eq(inflight + issue - valid)
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), self.o.payload.eq(ofifo.r_data),
                     ofifo.r_en.eq(self.o.ready)]
        s.drain_done = loop.done & (inflight == 0) & ~ofifo.r_rdy

    # -- control: command FSM, errors, counters, response -----------------------------------

    def _control(self, m):
        cfg, s = self.config, self._s
        R, C, D = cfg.rows, cfg.cols, cfg.acc_depth
        err = Signal(3, name="err")
        cw = cfg.counter_width
        ctr = {name: Signal(cw, name=f"ctr_{name}") for name in
               ("cycles", "busy", "stall_a", "stall_b", "stall_out", "macs")}
        chk_rows = Signal(s.row_bits, name="chk_rows")
        chk_cols = Signal(cfg.dim_bits + 1, name="chk_cols")

        # panel read port: os feeder or ws weight loader
        rp = s.panel_rp
        if "ws" in cfg.dataflows:
            m.d.comb += rp.addr.eq(Mux(s.ws, s.wl_panel_addr, s.fd_panel_addr))
            m.d.comb += s.release.eq(Mux(s.ws, s.wl_release, s.fd_release))
        else:
            m.d.comb += [rp.addr.eq(s.fd_panel_addr), s.release.eq(s.fd_release)]

        unsupported = Const(0, 1)
        if len(cfg.dataflows) < (1 << cfg.dataflow_bits):
            unsupported = unsupported | (s.dataflow_code >= len(cfg.dataflows))
        if cfg.mode_bits and len(cfg.modes) < (1 << cfg.mode_bits):
            unsupported = unsupported | (s.mode >= len(cfg.modes))
        unsupported = unsupported | (s.output == 3)
        if not cfg.requant:
            unsupported = unsupported | (s.output == 1)
        zero = (s.M == 0) | (s.K == 0) | (s.N == 0)
        ws_big = s.ws & (s.M > D) & (s.K > R)
        resident = s.accumulate | s.preload | (s.output == 2)

        # ``start`` clears every unit's loop state in the first cycle of PRELOAD or RUN. It is a
        # register (it fans out to hundreds of flip-flops), and the units hold still while it
        # is high: their ``done`` flags are still those of the previous command then.
        m.d.sync += s.start.eq(0)
        with m.FSM(name="ctl"):
            with m.State("IDLE"):
                m.d.comb += [self.cmd.ready.eq(1), s.accept.eq(self.cmd.valid)]
                with m.If(self.cmd.valid):
                    m.d.sync += [c.eq(0) for c in ctr.values()]
                    m.d.sync += [ctr["cycles"].eq(1), chk_rows.eq(0), chk_cols.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += ctr["cycles"].eq(ctr["cycles"] + 1)
                with m.If(zero):
                    m.d.sync += err.eq(1)
                    m.next = "RESPOND"
                with m.Elif(unsupported):
                    m.d.sync += err.eq(4)
                    m.next = "RESPOND"
                with m.Elif(s.K > cfg.k_max):
                    m.d.sync += err.eq(2)
                    m.next = "RESPOND"
                with m.Elif(ws_big):
                    m.d.sync += err.eq(3)
                    m.next = "RESPOND"
                with m.Elif(resident & (chk_rows > D)):
                    m.d.sync += err.eq(3)
                    m.next = "RESPOND"
                with m.Elif(~resident | (chk_cols >= s.N)):
                    m.d.sync += [err.eq(0), s.start.eq(1)]
                    m.next = "RUN"
                    with m.If(s.preload):
                        m.next = "PRELOAD"
                with m.Else():   # count NB * M one column block per cycle
                    m.d.sync += [chk_rows.eq(chk_rows + s.M), chk_cols.eq(chk_cols + C)]
            with m.State("PRELOAD"):
                m.d.comb += s.preloading.eq(~s.start)
                m.d.sync += ctr["cycles"].eq(ctr["cycles"] + 1)
                with m.If(s.preload_done & ~s.start):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += s.run.eq(~s.start)
                m.d.sync += ctr["cycles"].eq(ctr["cycles"] + 1)
                for name in ("stall_a", "stall_b", "stall_out"):
                    m.d.sync += ctr[name].eq(ctr[name] + getattr(s, name))
                with m.If(s.step):
                    m.d.sync += ctr["busy"].eq(ctr["busy"] + 1)
                with m.If(s.macs_valid):
                    m.d.sync += ctr["macs"].eq(ctr["macs"] + s.step_macs)
                finished = s.feed_done & s.write_done & s.write_idle & \
                    ((s.output == 2) | s.drain_done)
                with m.If(finished & ~s.start):
                    m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += self.rsp.valid.eq(1)
                with m.If(self.rsp.ready):
                    m.next = "IDLE"
        m.d.comb += self.rsp.payload.err.eq(err)
        for name, c in ctr.items():
            m.d.comb += self.rsp.payload[name].eq(Mux(err == 0, c, 0))


def _fit(value, width):
    """``value`` sign-extended or truncated to ``width`` bits."""
    value = value.as_signed()
    if len(value) >= width:
        return value[:width]
    return Cat(value, value[-1].replicate(width - len(value)))
