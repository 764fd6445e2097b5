"""The B side of the ``systolic`` block: the double-buffered B-panel memory and, for the
weight-stationary dataflow, the loader that shifts weight tiles out of it into the array.

Panel ``p`` (the ``K`` rows of column block ``p``) goes into bank ``p % 2``, so panel ``p + 1``
loads while panel ``p`` is used. One read port serves both dataflows: the feeder reads one
row per step (os), the weight loader R rows per weight tile (ws).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..common.arith import sum_tree
from ..common.bram import RegisteredMemory
from ..common.loopnest import LoopNest
from ..common.operands import operand_width
from ..common.stream import stream_signature
from ._util import panel_k_bits, read_array_operand, unit_start
from .control import task_signature

__all__ = ["PanelBuffer", "WeightLoader", "panel_operand_shape"]


def panel_operand_shape(config):
    """Shape of one B operand as read out of the panel (any mode's ``b`` format)."""
    if config.is_float:
        return signed(config.operand_width)
    return signed(operand_width([f.b for f in config.mode_formats]))


class PanelBuffer(wiring.Component):
    """Two banks of ``k_max`` rows of C ``b`` slots, written from the ``b`` stream.

    Members
    -------
    task : In(task_signature(config))
    b : In(stream_signature(config.b_fields))
        The block's ``b`` stream; lanes past N are stored as zeros.
    bank_full : Out(2)
        Bank ``i`` holds a complete panel that its reader has not released.
    fill_bank : Out(1), fill_rows : Out(panel_k_bits + 1)
        The bank being filled and how many of its rows are written: a reader may read row
        ``k < fill_rows`` of that bank before the panel is complete.
    fill_last : Out(1)
        A register: the row to be written next is its panel's last (a write in this cycle
        completes the panel and moves ``fill_bank`` to the other bank).
    fill_take, fill_restart : Out(1)
        Combinational, for readers that register a compare a cycle ahead: a row is written in
        this cycle (``fill_rows`` counts it from the next one); ``fill_rows`` restarts at 0
        in the next cycle (``start``, or the panel's last row).
    os_addr_next, ws_addr : In(panel_k_bits + 1)
        Read address (bank, k): the feeder's (os commands) for the next cycle, the weight
        loader's (ws) for this one (see Timing).
    os_release, ws_release : In(2)
        One-hot, one cycle: the reader is done with that bank.
    row : Out(panel_operand_shape(config)).array(cols)
        The row read, as C operands in the command's mode.
    row_cs : Out(signed(abft_operand_width))
        ``abft``: the checksum element of ``row`` (the exact sum of its C operands, lanes past
        N as 0), formed from the ``b`` beat as it is written and stored beside it in the
        bank, so that a fault in a stored row shows as a mismatch at drain.

    Timing
    ------
    ``b.ready`` is high in RUN while the command's beats are not all taken and the bank being
    filled is not full; it is a register, computed a cycle ahead from ``task.run_open``, this
    cycle's take and the readers' releases. ``bank_full`` rises in the cycle after a panel's
    last beat and falls in the cycle after its release. A row written in cycle ``t`` counts in
    ``fill_rows`` from ``t + 1`` and may be read from then on.

    The block RAM's read data goes straight into a register (a
    :class:`~accelgen.hdl.common.bram.RegisteredMemory`: on ECP5 the RAM's own output
    register, without which its clock-to-output is most of a cycle at 150 MHz), so ``row``
    holds the data of the address on the read port two cycles earlier: the feeder presents
    its address a cycle early (``os_addr_next``) and sees its row in the cycle after the step,
    as from a plain synchronous port; the weight loader presents ``ws_addr`` and sees the row
    two cycles later. A row that the feeder reads in the cycle it is written (a step right
    behind the panel's load) comes from the write, registered beside the read: the memory's
    word is unspecified then.
    """

    def __init__(self, config):
        self.config = config
        addr = panel_k_bits(config) + 1
        super().__init__({
            "task": In(task_signature(config)),
            "b": In(stream_signature(config.b_fields)),
            "bank_full": Out(2),
            "fill_bank": Out(1),
            "fill_rows": Out(addr),
            "fill_take": Out(1),
            "fill_restart": Out(1),
            "fill_last": Out(1),
            "os_addr_next": In(addr),
            "os_release": In(2),
            "ws_addr": In(addr),
            "ws_release": In(2),
            "row": Out(panel_operand_shape(config)).array(config.cols),
            **({"row_cs": Out(signed(config.abft_operand_width))} if config.abft else {}),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        start = unit_start(m, task, name="pl")
        k_bits = panel_k_bits(cfg)
        # a read that meets a write to its address (only the feeder's early read of a row
        # written in that cycle) takes the written word from the bypass below
        cs_width = cfg.abft_operand_width if cfg.abft else 0
        m.submodules.banks = mem = RegisteredMemory(cfg.cols * cfg.b_width + cs_width,
                                                    2 << k_bits, name="pl_banks")
        r_addr = mem.r_addr[0]
        bank_full = self.bank_full
        release = Signal(2, name="release")
        bank = Signal(name="pl_bank")
        take = Signal(name="pl_take")
        m.submodules.loop = loop = LoopNest((cfg.cols, 1), width=cfg.dim_bits, name="pl")
        m.d.comb += loop.drive(start=start, advance=take,
                               limits=[task.params.n, task.params.k])
        ready = Signal(name="pl_ready")
        m.d.comb += [
            self.b.ready.eq(ready),
            take.eq(self.b.valid & ready),
            mem.w_en.eq(take), mem.w_addr.eq(Cat(loop.ctr[1][:k_bits], bank)),
        ]
        # lanes past N are stored as zeros: they must add nothing to the memory's lanes there
        bw = cfg.b_width
        formats = [f.b for f in cfg.mode_formats]
        mode = task.params.mode if cfg.mode_bits else None
        slots = [Mux(j < loop.chunk[0], self.b.payload.b[j * bw:(j + 1) * bw], 0)
                 for j in range(cfg.cols)]
        if cfg.abft:    # the checksum element of the row, in the command's mode
            ops = [read_array_operand(m, slot, cfg, formats, mode, name=f"pw_b{j}")
                   for j, slot in enumerate(slots)]
            total = sum_tree(ops)
            slots.append(total.as_signed()[:cs_width])
        m.d.comb += mem.w_data.eq(Cat(*slots))
        m.d.comb += [self.fill_bank.eq(bank), self.fill_rows.eq(loop.ctr[1]),
                     self.fill_take.eq(take), self.fill_restart.eq(start | loop.wrap[1])]
        filled = Signal(2)
        m.d.comb += filled.eq(Mux(take & loop.end[1], Mux(bank, 0b10, 0b01), 0))
        full_next, bank_next = Signal(2, name="pl_full_next"), Signal(name="pl_bank_next")
        with m.If(start):
            m.d.comb += [full_next.eq(0), bank_next.eq(0)]
        with m.Else():
            m.d.comb += [full_next.eq((bank_full | filled) & ~release),
                         bank_next.eq(bank ^ (take & loop.end[1]))]
        m.d.sync += [bank_full.eq(full_next), bank.eq(bank_next)]
        m.d.comb += self.fill_last.eq(loop.end[1])
        # next cycle's b.ready, from what the loop, the banks and run will hold then
        all_taken = ~start & (loop.done | (take & loop.final))
        m.d.sync += ready.eq(task.run_open & ~all_taken & ~full_next.bit_select(bank_next, 1))

        if "ws" in cfg.dataflows:
            m.d.comb += [r_addr.eq(Mux(task.ws, self.ws_addr, self.os_addr_next)),
                         release.eq(Mux(task.ws, self.ws_release, self.os_release))]
        else:
            m.d.comb += [r_addr.eq(self.os_addr_next), release.eq(self.os_release)]
        data = self._registered_read(m, mem)
        for j in range(cfg.cols):
            op = read_array_operand(m, data[j * bw:], cfg, formats, mode, name=f"pr_b{j}")
            m.d.comb += self.row[j].eq(op)
        if cfg.abft:
            m.d.comb += self.row_cs.eq(data[cfg.cols * bw:].as_signed())
        return m

    @staticmethod
    def _registered_read(m, mem):
        """The read data (registered: the memory's own output register), with the word of
        a write to the read address in the same cycle in its place (both compared and
        carried in registers, so the multiplexer sits after the data register)."""
        width = len(mem.w_data)
        w_en, w_addr = Signal(name="pr_w_en"), Signal.like(mem.w_addr, name="pr_w_addr")
        w_data = Signal(width, name="pr_w_data")
        r_addr = Signal.like(mem.r_addr[0], name="pr_r_addr")
        hit, hit_data = Signal(name="pr_hit"), Signal(width, name="pr_hit_data")
        m.d.sync += [w_en.eq(mem.w_en), w_addr.eq(mem.w_addr), w_data.eq(mem.w_data),
                     r_addr.eq(mem.r_addr[0]),
                     hit.eq(w_en & (w_addr == r_addr)), hit_data.eq(w_data)]
        return Mux(hit, hit_data, mem.r_data[0])


class WeightLoader(wiring.Component):
    """ws: shifts the R rows of weight tile (nb, kb) into the array's shadow-weight chain
    (row R-1 first, rows past K as zeros) once the previous tile's swap has passed every PE.

    Members
    -------
    task : In(task_signature(config))
    bank_full : In(2); fill_bank : In(1); fill_rows : In(panel_k_bits + 1)
    fill_take, fill_restart : In(1)
        From the panel buffer.
    bank_ready : Out(1)
        The rows of the next weight tile are in the panel buffer (its panel is complete or
        being filled past them; also for the feeder's ``stall_b``).
    panel_addr : Out(panel_k_bits + 1), panel_release : Out(2)
        The panel row to read; the bank freed after a panel's last weight tile (one cycle).
    panel_row : In(panel_operand_shape(config)).array(cols)
        The panel row read two cycles earlier (see :class:`PanelBuffer`).
    w_top : Out(signed(operand_width)).array(cols), wload : Out(1)
        To the array: shift ``w_top`` into the shadow chain.
    panel_row_cs : In(signed(abft_operand_width)), w_top_cs : Out(same)
        ``abft``: the checksum element of ``panel_row`` / ``w_top``, treated alike.
    w_ready : Out(1)
        A loaded tile waits for its swap step (the feeder may issue it).
    w_ready_next : Out(1)
        Combinational: what ``w_ready`` holds in the next cycle.
    swap_issued : In(1)
        The feeder issues that swap step in this cycle.

    Timing
    ------
    A tile load takes R cycles of reads; each row enters the shadow chain two cycles after
    its read, so ``w_ready`` rises in the cycle after the last shift. The next load starts no sooner
    than ``R + 3`` cycles after the swap step is issued, by when the swap has reached the bottom
    row (column ``j`` shifts and swaps ``j`` cycles late, so one bound fits all columns).
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "task": In(task_signature(config)),
            "bank_full": In(2),
            "fill_bank": In(1),
            "fill_rows": In(panel_k_bits(config) + 1),
            "fill_take": In(1),
            "fill_restart": In(1),
            "bank_ready": Out(1),
            "panel_addr": Out(panel_k_bits(config) + 1),
            "panel_release": Out(2),
            "panel_row": In(panel_operand_shape(config)).array(config.cols),
            "w_top": Out(signed(config.operand_width)).array(config.cols),
            "wload": Out(1),
            "w_ready": Out(1),
            "w_ready_next": Out(1),
            "swap_issued": In(1),
            **({"panel_row_cs": In(signed(config.abft_operand_width)),
                "w_top_cs": Out(signed(config.abft_operand_width))} if config.abft else {}),
        })

    def elaborate(self, platform):
        cfg, m, task = self.config, Module(), self.task
        start = unit_start(m, task, name="wl")
        R, C = cfg.rows, cfg.cols
        K = task.params.k
        load = Signal(name="wl_load")            # a tile load may start
        row = Signal(range(R + 1), name="wl_row")
        busy = Signal(name="wl_busy")
        tile_done = Signal(name="wl_tile_done")
        m.submodules.loop = loop = LoopNest((C, R), width=cfg.dim_bits, name="wl")
        m.d.comb += loop.drive(start=start, advance=tile_done, limits=[task.params.n, K])
        bank = Signal(name="wl_bank")
        wait = Signal(range(R + 3), name="wl_wait")
        # the tile's rows kb .. kb + chunk - 1 are written (or the whole panel is)
        rows_in = (self.fill_bank == bank) & self._rows_written(m, start, loop, tile_done)
        m.d.comb += self.bank_ready.eq(self.bank_full.bit_select(bank, 1) | rows_in)
        have = Signal(name="wl_have")            # a loaded tile waits for its swap step
        shifting = Signal(name="wl_shift")       # read data enters the shadow chain now
        m.d.comb += load.eq(task.run & task.ws & ~loop.done & ~busy & ~have & (wait == 0) &
                            self.bank_ready)
        k = self._read_row(m, start, loop, load, busy, tile_done)    # panel row read this cycle
        reading = busy | load
        m.d.comb += self.panel_addr.eq(Cat(k[:panel_k_bits(cfg)], bank))
        # ``row == R - 1`` as a register, set a cycle ahead: the tile loop's counters (and the
        # read address, ``have``) follow ``tile_done`` without a compare in front
        at_last = Signal(name="wl_at_last")
        m.d.comb += tile_done.eq(Mux(busy, at_last, load & (R == 1)))
        read_q = Signal(name="wl_read_q")      # a read one cycle old: its row not in yet
        m.d.comb += self.w_ready.eq(have & ~read_q & ~shifting)
        have_next = ~start & ~self.swap_issued & (tile_done | have)
        m.d.comb += self.w_ready_next.eq(have_next & ~reading & ~read_q)
        with m.If(start):
            m.d.sync += [busy.eq(0), row.eq(0), bank.eq(0), have.eq(0), wait.eq(0),
                         at_last.eq(0)]
        with m.Else():
            with m.If(load & (R > 1)):
                m.d.sync += [busy.eq(1), row.eq(1), at_last.eq(R == 2)]
            with m.Elif(busy):
                m.d.sync += [row.eq(row + 1), at_last.eq(row == R - 2 if R > 1 else 0)]
                with m.If(at_last):
                    m.d.sync += [busy.eq(0), row.eq(0), at_last.eq(0)]
            with m.If(loop.wrap[1]):
                m.d.sync += bank.eq(~bank)
            with m.If(self.swap_issued):
                m.d.sync += [have.eq(0), wait.eq(R + 2)]
            with m.Else():
                with m.If(tile_done):
                    m.d.sync += have.eq(1)
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
        m.d.comb += self.panel_release.eq(Mux(loop.wrap[1], Mux(bank, 0b10, 0b01), 0))
        # read data arrives two cycles later: zero rows past K, shift into the shadow chain
        valid_k_q, valid_k = Signal(name="wl_valid_k_q"), Signal(name="wl_valid_k")
        m.d.sync += [read_q.eq(reading), shifting.eq(read_q),
                     valid_k_q.eq(k < K), valid_k.eq(valid_k_q)]
        for j in range(C):
            m.d.comb += self.w_top[j].eq(Mux(valid_k, self.panel_row[j], 0))
        if cfg.abft:
            m.d.comb += self.w_top_cs.eq(Mux(valid_k, self.panel_row_cs, 0))
        m.d.comb += self.wload.eq(shifting)
        return m

    def _read_row(self, m, start, loop, load, busy, tile_done):
        """The panel row read this cycle, ``kb + R - 1 - row`` (rows go in bottom first), as a
        choice between two registers: ``top`` (``kb + R - 1``, stepped with the tile loop as
        its ``kb`` counter is) for a load's first read, ``rest`` (counting down from ``top -
        1`` after it) while ``busy``. No adder sits between the loop counter and the RAM's
        address (8x8 out of context: ``kb + (R - 1) - row``, two carry chains, was the
        critical path of three placer seeds out of five)."""
        R = self.config.rows
        width = self.config.dim_bits + 1                  # kb + R - 1 <= k_max + R - 2
        top = Signal(width, name="wl_k_top", init=R - 1)
        top_m1 = Signal(width, name="wl_k_top_m1", init=R - 2 if R > 1 else 0)
        rest = Signal(width, name="wl_k_rest")
        with m.If(start | loop.wrap[1]):
            m.d.sync += [top.eq(R - 1), top_m1.eq(max(R - 2, 0))]
        with m.Elif(tile_done):
            m.d.sync += [top.eq(top + R), top_m1.eq(top_m1 + R)]
        with m.If(load):
            m.d.sync += rest.eq(top_m1)
        with m.Elif(busy):
            m.d.sync += rest.eq(rest - 1)
        return Mux(busy, rest, top)

    def _rows_written(self, m, start, loop, tile_done):
        """``fill_rows >= need``, ``need = min(K, kb + R)`` the rows the current weight tile
        reads up to, as a register computed a cycle ahead for every outcome of this cycle's
        panel write and tile (``need`` itself is a register kept with the tile loop, as
        ``kb + chunk``): no adder or compare sits between the loop counters and ``load``."""
        R, K = self.config.rows, self.task.params.k
        fill = self.fill_rows
        # each need comes with need - 1 (``x <= fill + 1`` is ``fill >= x - 1``), both
        # registers, so every compare below is one carry chain of registers
        need, need_m1 = Signal.like(fill, name="wl_need"), Signal.like(fill, name="wl_need_m1")
        # the next tile's need, a register too: kept one tile ahead of ``need``
        carry_need = Signal.like(fill, name="wl_need_next_tile")
        carry_m1 = Signal.like(fill, name="wl_need_next_tile_m1")
        # the first tile's need, from the command (steady from the cycle before ``start``)
        first_need = Signal.like(fill, name="wl_need_first")
        first_m1 = Signal.like(fill, name="wl_need_first_m1")

        def load_need_at(pair, row):    # min(K, row) and min(K, row) - 1, for a constant row
            # the compare and K - 1 side by side, not a subtraction behind the compare's mux
            # (8x8 out of context: compare, mux, subtract was one placer seed's critical path)
            short = K < row
            return [pair[0].eq(Mux(short, K, row)), pair[1].eq(Mux(short, K - 1, row - 1))]

        # min(K, kb + 3R) for the tile after next, as ``kb > K - 3R`` (a steady register) and
        # the sums beside the compare, not behind it
        k_m1 = Signal.like(K, name="wl_k_m1")
        k_3r = Signal(signed(len(K) + 1), name="wl_k_3r")
        m.d.sync += [k_m1.eq(K - 1), k_3r.eq(K - 3 * R),
                     *load_need_at((first_need, first_m1), R)]
        kb = loop.ctr[1]
        past_k = kb > k_3r
        restart = start | loop.wrap[1]
        with m.If(restart):
            m.d.sync += [need.eq(first_need), need_m1.eq(first_m1),
                         *load_need_at((carry_need, carry_m1), 2 * R)]
        with m.Elif(tile_done):
            m.d.sync += [need.eq(carry_need), need_m1.eq(carry_m1),
                         carry_need.eq(Mux(past_k, K, kb + 3 * R)),
                         carry_m1.eq(Mux(past_k, k_m1, kb + (3 * R - 1)))]

        def covered(x, x_m1):     # x <= fill_rows of the next cycle
            return ~self.fill_restart & Mux(self.fill_take, fill >= x_m1, fill >= x)

        written = Signal(name="wl_written")
        m.d.sync += written.eq(Mux(restart, covered(first_need, first_m1),
                                   Mux(tile_done, covered(carry_need, carry_m1),
                                       covered(need, need_m1))))
        return written
