"""The processing elements and the R x C array with its input skew and output de-skew.

The array is free-running (no enables, no stalls): whatever enters its edges in a cycle is a
step or a bubble, and results leave it a fixed number of cycles later. See the package
docstring for the two dataflows.
"""

from amaranth.hdl import Const, Elaboratable, Module, Mux, Signal, signed

from ..common.arith import lut_product, rom_product
from ..common.dsp import registered_product
from ..common.floats import add_fp32, product_fp32
from ._util import delay, taps, unpack_operand

__all__ = ["PE", "Array", "standalone_pe", "row_width", "MULTIPLIERS", "row_multiplier"]

#: how a PE multiplies: a DSP block (on ECP5 a ``MULT18X18D``), LUTs and carry chains
#: (:func:`~accelgen.hdl.common.arith.lut_product`), or a quarter-square table in block RAM
#: (:func:`~accelgen.hdl.common.arith.rom_product`)
MULTIPLIERS = ("dsp", "lut", "rom")


def row_multiplier(cfg, i):
    """The multiplier of PE row ``i``: the bottom ``lut_rows`` rows use LUTs, the
    ``rom_rows`` above them tables, the rest DSPs."""
    if i >= cfg.rows - cfg.lut_rows:
        return "lut"
    return "rom" if i >= cfg.rows - cfg.lut_rows - cfg.rom_rows else "dsp"


def row_width(cfg, checksum=False):
    """Width of the sums the array delivers: the widest of its dataflows' PE sums (of the
    abft checksum column with ``checksum``)."""
    if checksum:
        os_width, ws_width = cfg.abft_os_acc_width, cfg.abft_ws_sum_width
    else:
        os_width, ws_width = cfg.os_acc_width, cfg.ws_sum_width
    widths = ([os_width] if "os" in cfg.dataflows else []) + \
             ([ws_width] if "ws" in cfg.dataflows else [])
    return max(widths)


class PE(Elaboratable):
    """One processing element. ``os``/``ws`` say which dataflows it carries; ``ws_mode`` picks
    one at run time when it carries both. Every register is free-running (no enables).

    Members (signals named ``<name>_<member>``; ``*_in`` come from the neighbours)
    -------
    a_in -> a : the A operand, passed to the right one cycle later.
    b_in -> bw : os: the B operand, passed down one cycle later; ws: ``bw`` is the active
        weight, which takes the shadow weight ``w_s`` when a ``swap_in`` step enters.
    w_in, load -> w_s : ws: the shadow weight, loaded from above while ``load`` is high.
    last_in -> last, swap_in -> swap, v_in -> v : step tags, passed right with ``a``.
    ps_in : ws: the partial sum from above.
    s : os: the accumulator (cleared by the step tagged ``last``); ws: ``ps_in + a * bw``,
        passed down; ``sv`` says it belongs to a valid step (bottom row only).
    out : os: the capture register; a ``last`` step writes ``acc + p`` into it (and nothing
        else does).
    emit_in -> emit, ch_in/cv_in -> ch/cv : os: the result chain, moving *down* one row per
        cycle; a step tagged ``emit`` (the array sends it ``i + 1 + pe_pipeline`` cycles after
        ``last`` in row ``i``) puts ``out`` into ``ch`` (``cv`` set), otherwise ``ch`` takes
        the value from above.
    ws_mode : in when both dataflows are built, else a constant.

    Timing
    ------
    ``a``, the tags and ``bw`` are registers; ``s`` and ``out`` are written ``1 + pe_pipeline``
    cycles after ``a``/``bw`` hold the step (each level adds a product register and delays the
    tags that go with it); ``ch`` one cycle after ``emit`` holds. Elaborated for ECP5, an
    integer PE's product is a ``MULT18X18D`` whose input registers load beside ``a`` and
    ``bw`` and whose output register is the first product register (same timing; see
    :func:`~accelgen.hdl.common.dsp.registered_product`); a second one is a fabric register.
    ``multiplier`` (:data:`MULTIPLIERS`) says how it multiplies; every kind has this timing
    (a ``"rom"`` PE's table reads are synchronous: their address registers load beside ``a``
    and ``bw``).

    Reset
    -----
    Only the tags reset, so the domain reset reaches a few flip-flops per PE rather than all of
    them (on the 16x16 board build it was an 18.5 ns route to every PE's accumulator): ``a``,
    ``bw``, ``w_s``, ``s``, ``out``, ``ch`` and the product registers (a DSP's too) keep
    whatever they held. ``last`` resets to 1, and so do the skew registers that bring it into
    row ``i``: every operand in the array at the reset travels with a ``last`` tag (the products
    already past the operand registers before them), so each accumulator is cleared (os) after
    the last stale product reaches it and before the first step after the reset does; the steps
    after it carry zero A operands (null ones in float builds), whose products add nothing,
    until a command starts. The captures those tags cause are never emitted (``emit`` resets to
    0). In ws every step recomputes the partial sums and only ``sv`` marks one valid; every
    weight tile loads ``w_s`` before its ``swap``.
    """

    def __init__(self, cfg, *, os, ws, carry_valid, name, multiplier="dsp", checksum=False):
        assert multiplier in MULTIPLIERS
        self.cfg, self.os, self.ws = cfg, os, ws
        self.multiplier = multiplier
        ow = cfg.operand_width
        # abft: a checksum PE multiplies ``a`` by a checksum element (wider) and sums modulo
        # 2**acc_width at most (see :attr:`SystolicConfig.abft_os_acc_width`)
        if checksum:
            bw_width, self.product_width = cfg.abft_operand_width, cfg.abft_product_width
            self.os_width, self.ws_width = cfg.abft_os_acc_width, cfg.abft_ws_sum_width
        else:
            bw_width, self.product_width = ow, cfg.product_width
            self.os_width, self.ws_width = cfg.os_acc_width, cfg.ws_sum_width
        widths = ([self.os_width] if os else []) + ([self.ws_width] if ws else [])
        self.sum_width = max(widths)
        self.a_in = Signal(signed(ow), name=f"{name}_a_in")
        # data registers are not reset (see Reset above); the tags are
        self.a = Signal(signed(ow), name=f"{name}_a", reset_less=True)
        self.bw = Signal(signed(bw_width), name=f"{name}_bw",            # os: b; ws: weight
                         reset_less=True)
        self.ws_mode = Signal(name=f"{name}_ws_mode") if (os and ws) else Const(int(ws), 1)
        if os:
            self.b_in = Signal(signed(bw_width), name=f"{name}_b_in")
            self.last_in = Signal(name=f"{name}_last_in")
            self.last = Signal(name=f"{name}_last", init=1)
            self.out = Signal(signed(self.os_width), name=f"{name}_out", reset_less=True)
            self.emit_in = Signal(name=f"{name}_emit_in")
            self.emit = Signal(name=f"{name}_emit")
            self.ch_in = Signal(signed(self.os_width), name=f"{name}_ch_in")
            self.cv_in = Signal(name=f"{name}_cv_in")
            self.ch = Signal(signed(self.os_width), name=f"{name}_ch", reset_less=True)
            self.cv = Signal(name=f"{name}_cv")
        if ws:
            self.swap_in = Signal(name=f"{name}_swap_in")
            self.swap = Signal(name=f"{name}_swap")
            self.w_in = Signal(signed(bw_width), name=f"{name}_w_in")
            self.w_s = Signal(signed(bw_width), name=f"{name}_w_s", reset_less=True)
            self.load = Signal(name=f"{name}_load")
            self.ps_in = Signal(signed(self.sum_width), name=f"{name}_ps_in")
        self.carry_valid = carry_valid
        if carry_valid:
            self.v_in = Signal(name=f"{name}_v_in")
            self.v = Signal(name=f"{name}_v")
            self.sv = Signal(name=f"{name}_sv")          # ws: ``s`` holds a valid step's sum
        self.s = Signal(signed(self.sum_width), name=f"{name}_s",   # os: acc; ws: partial sum
                        reset_less=True)
        self.name = name

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        m.d.sync += self.a.eq(self.a_in)
        if self.os:
            m.d.sync += [self.last.eq(self.last_in), self.emit.eq(self.emit_in)]
        if self.ws:
            m.d.sync += self.swap.eq(self.swap_in)
            with m.If(self.load):
                m.d.sync += self.w_s.eq(self.w_in)
        if self.carry_valid:
            m.d.sync += self.v.eq(self.v_in)
        bw_next, bw_load = self._operand(m)

        registered = False      # the product register is already in the product (a DSP's)
        if cfg.is_float:
            product = self._float_product(m)
        elif self.multiplier == "lut":
            product = lut_product(m, self.a, self.bw, name=f"{self.name}_m")
        elif self.multiplier == "rom":   # the table's address registers load beside a and bw
            bw_held = bw_next if bw_load is None else Mux(bw_load, bw_next, self.bw)
            product = rom_product(m, self.a_in, bw_held, name=f"{self.name}_m")
        else:   # on ECP5 a MULT18X18D whose input registers mirror a and bw
            registered = bool(cfg.pe_pipeline)
            product = registered_product(m, self.a_in, bw_next, self.a, self.bw,
                                         output_register=registered, platform=platform,
                                         b_enable=bw_load, name=f"{self.name}_m", reset=False)
        product = product[:self.product_width].as_signed()   # exact (or mod 2**acc_width)
        last = self.last if self.os else Const(0, 1)
        valid = self.v if self.carry_valid else Const(0, 1)
        if cfg.pe_pipeline:     # product registers; the tags that go with them follow
            fabric = cfg.pe_pipeline - registered
            product = delay(m, product, fabric, f"{self.name}_p", reset_less=True)
            if self.os:
                last = delay(m, last, cfg.pe_pipeline, f"{self.name}_last_p")
            if self.carry_valid:
                valid = delay(m, valid, cfg.pe_pipeline, f"{self.name}_v_p")

        if self.os and self.ws:
            addend = Mux(self.ws_mode, self.ps_in, self.s)
        else:
            addend = self.ps_in if self.ws else self.s
        if cfg.is_float:
            total = add_fp32(m, addend, product, name=f"{self.name}_add")
        else:
            total = addend + product
        with m.If(last & ~self.ws_mode):
            m.d.sync += self.s.eq(0)          # synchronous reset: the next tile starts at 0
        with m.Else():
            m.d.sync += self.s.eq(total)
        if self.os:
            with m.If(last):
                m.d.sync += self.out.eq(total)
            # the chain moves with the capture wave: row i puts its result in i cycles after
            # its capture, between row i - 1's and row i + 1's, so rows leave one per cycle
            with m.If(self.emit):
                m.d.sync += [self.ch.eq(self.out), self.cv.eq(1)]
            with m.Else():
                m.d.sync += [self.ch.eq(self.ch_in), self.cv.eq(self.cv_in)]
        if self.carry_valid:
            m.d.sync += self.sv.eq(valid)
        return m

    def _float_product(self, m):
        """Float modes: the FP32 code of ``a * bw`` (operands decoded at the array's edges)."""
        cfg = self.cfg
        exp_min = min(f.a.exp_min + f.b.exp_min for f in cfg.mode_formats)
        a, b = unpack_operand(cfg, self.a), unpack_operand(cfg, self.bw)
        code = product_fp32(m, a, b, exp_min=exp_min, name=f"{self.name}_fp")
        null = (a.nan & a.inf) | (b.nan & b.inf)    # bubble or padding: adds +0
        return Mux(null, 0, code)

    def _operand(self, m):
        """The second multiplier operand: the passing ``b`` (os) or the active weight (ws),
        which takes the shadow weight when a ``swap`` step enters. Returns what ``bw`` loads
        and when (``None``: every cycle); a DSP's input register loads the same."""
        if self.os and self.ws:
            value, load = Mux(self.ws_mode, self.w_s, self.b_in), ~self.ws_mode | self.swap_in
        elif self.os:
            value, load = self.b_in, None
        else:
            value, load = self.w_s, self.swap_in
        if load is None:
            m.d.sync += self.bw.eq(value)
        else:
            with m.If(load):
                m.d.sync += self.bw.eq(value)
        return value, load


def standalone_pe(config, *, multiplier="dsp"):
    """One processing element of ``config`` (an interior one: no valid tag) as
    ``(elaboratable, ports)`` for ``amaranth.back.verilog.convert``, so benchmarks can
    synthesize a PE alone."""
    pe = PE(config, os="os" in config.dataflows, ws="ws" in config.dataflows,
            carry_valid=False, name="pe", multiplier=multiplier)
    ports = [v for v in vars(pe).values() if isinstance(v, Signal)]
    return pe, ports


class Array(Elaboratable):
    """R x C PEs with input skew and output de-skew.

    Members
    -------
    a : list of R Signal(signed(operand_width)), in
        One step's A operands (element ``i`` enters row ``i``); zeros for a bubble.
    b : list of C Signal(signed(operand_width)), in
        os: the step's B-panel row (element ``j`` enters column ``j``).
    last : Signal(), in
        os: the step is the last of its tile; each PE captures its sum as the step passes.
    swap, v : Signal(), in
        ws: the step is the first of a weight tile (the active weights take the shadow ones
        as it passes) / the step is not a bubble (only such steps produce a ``row``).
    wload : Signal(), in; w_top : list of C Signal(signed(operand_width)), in
        ws: shift ``w_top`` into the top of each column's shadow-weight chain.
    ws_mode : Signal(), in
        The PEs run weight-stationary (read only when both dataflows are built). Row ``i``
        reads it ``i + 1`` cycles late, from a register chain down the rows (one net to all
        R x C PEs was 3.9 ns of routing on the 8x8 array): it may change only while the
        array holds no step of a command, as it does between commands.
    row : list of C Signal(signed(row_width(cfg))), out; row_valid : Signal(), out
        One result row, all columns aligned: os rows leave every other cycle in tile-row
        order; ws one row per valid step, in step order.
    b_cs, w_top_cs : Signal(signed(abft_operand_width)), in
        ``abft``: the checksum element of the step's B-panel row (os) / of the weight row
        shifted in (ws), for the checksum column (column ``C``, right of column ``C - 1``).
    row_cs : Signal(signed(row_width(cfg, checksum=True))), out
        ``abft``: the checksum column's sum of the row that was on ``row`` one cycle
        earlier (the checksum column is one cycle behind column ``C - 1`` and is not
        de-skewed: the writer delays ``row`` one cycle more instead of every data column).

    Timing
    ------
    Free-running: the inputs are taken every cycle. Row ``i`` is delayed ``i`` cycles and
    column ``j`` ``j`` cycles on the way in, column ``j`` ``C-1-j`` cycles on the way out. With
    ``p = pe_pipeline`` and a step on the inputs in cycle ``t``: ws, its partial-sum row is on
    ``row`` in cycle ``t + R + C + p``; os, if it is a tile's last step, tile row ``i`` is on
    ``row`` in cycle ``t + R + C + p + 1 + i`` (rows leave the bottom edge one per cycle; two
    os tiles' last steps must enter at least R cycles apart, so that row ``i`` of the next
    tile is captured after this tile's row ``i`` has moved into the chain). ``wload`` in
    cycle ``t`` shifts column ``j`` in cycle ``t + j``, in step with a ``swap`` wave that
    enters in cycle ``t``.
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
        self.row_width = row_width(cfg)
        self.row = [Signal(signed(self.row_width), name=f"arr_row{j}") for j in range(C)]
        self.row_valid = Signal()
        if cfg.abft:
            self.b_cs = Signal(signed(cfg.abft_operand_width), name="arr_b_cs")
            self.w_top_cs = Signal(signed(cfg.abft_operand_width), name="arr_w_cs")
            self.row_cs = Signal(signed(row_width(cfg, checksum=True)), name="arr_row_cs")

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        R, C = cfg.rows, cfg.cols
        pe = [[PE(cfg, os=self.has_os, ws=self.has_ws, carry_valid=(i == R - 1 and self.has_ws),
                  name=f"pe{i}_{j}", multiplier=row_multiplier(cfg, i))
               for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(C):
                m.submodules[f"pe{i}_{j}"] = pe[i][j]
        b_top, w_tops = list(self.b), list(self.w_top)
        if cfg.abft:    # the checksum column: column C (a table multiplier would be too wide)
            for i in range(R):
                kind = "lut" if row_multiplier(cfg, i) == "rom" else row_multiplier(cfg, i)
                pe[i].append(PE(cfg, os=self.has_os, ws=self.has_ws, carry_valid=False,
                                name=f"pe{i}_cs", multiplier=kind, checksum=True))
                m.submodules[f"pe{i}_cs"] = pe[i][C]
            b_top.append(self.b_cs)
            w_tops.append(self.w_top_cs)
        cols = len(pe[0])
        # ws: column j loads its shadow weights j cycles late, like the swap wave reaches it
        w_top = [delay(m, w_tops[j], j, f"sk_w{j}" if j < C else "sk_w_cs", reset_less=True)
                 for j in range(cols)]
        wload = [delay(m, self.wload, j, f"sk_wl{j}" if j < C else "sk_wl_cs")
                 for j in range(cols)]
        if self.has_os:     # row i emits i + 1 + p cycles after its (row-skewed) capture
            emit = taps(m, self.last, [2 * i + 1 + cfg.pe_pipeline for i in range(R)], "sk_e")
        # row i's copy of ws_mode. Not one per PE, i + 1 + j cycles late: yosys (opt_merge)
        # merges the registers of equal delay, leaving one per anti-diagonal that spans the
        # array (16x16 out of context: a 21.5 ns path, two 10 ns routes)
        if self.has_os and self.has_ws:
            mode = taps(m, self.ws_mode, [i + 1 for i in range(R)], "sk_m")
        else:
            mode = [None] * R
        for i in range(R):
            for j in range(cols):
                p = pe[i][j]
                left = pe[i][j - 1] if j else None
                up = pe[i - 1][j] if i else None
                if self.has_os and self.has_ws:
                    m.d.comb += p.ws_mode.eq(mode[i])
                m.d.comb += p.a_in.eq(left.a if left else
                                      delay(m, self.a[i], i, f"sk_a{i}", reset_less=True))
                if self.has_os:     # the skewed tags reset to 1 like the PEs' (see PE)
                    m.d.comb += [
                        p.last_in.eq(left.last if left else
                                     delay(m, self.last, i, f"sk_l{i}", init=1)),
                        p.b_in.eq(up.bw if up else
                                  delay(m, b_top[j], j, f"sk_b{j}" if j < C else "sk_b_cs",
                                        reset_less=True)),
                        p.emit_in.eq(left.emit if left else emit[i]),
                        p.ch_in.eq(up.ch if up else 0),
                        p.cv_in.eq(up.cv if up else 0),
                    ]
                if self.has_ws:
                    m.d.comb += [
                        p.swap_in.eq(left.swap if left else delay(m, self.swap, i, f"sk_s{i}")),
                        p.w_in.eq(up.w_s if up else w_top[j]),
                        p.load.eq(wload[j]),
                        p.ps_in.eq(up.s if up else 0),
                    ]
                if p.carry_valid:
                    m.d.comb += p.v_in.eq(left.v if left else delay(m, self.v, i, "sk_v"))
        self._deskew(m, pe, mode[-1])
        return m

    def _deskew(self, m, pe, mode):
        R, C = self.cfg.rows, self.cfg.cols
        for j in range(C):
            sources = []
            if self.has_os:
                sources.append((pe[R - 1][j].ch, pe[R - 1][j].cv))
            if self.has_ws:
                sources.append((pe[R - 1][j].s, pe[R - 1][j].sv))
            if len(sources) == 2:
                value = Mux(mode, sources[1][0], sources[0][0])
                valid = Mux(mode, sources[1][1], sources[0][1])
            else:
                value, valid = sources[0]
            value = delay(m, value, C - 1 - j, f"dsk_c{j}", reset_less=True)
            m.d.comb += self.row[j].eq(value)
            if j == 0:
                m.d.comb += self.row_valid.eq(delay(m, valid, C - 1, "dsk_v"))
        if self.cfg.abft:
            cs = pe[R - 1][C]
            sources = ([cs.ch] if self.has_os else []) + ([cs.s] if self.has_ws else [])
            m.d.comb += self.row_cs.eq(Mux(mode, sources[1], sources[0])
                                       if len(sources) == 2 else sources[0])
