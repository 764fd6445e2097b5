"""GEMV on block ``pim``: the weight layout, the compiler that turns ``y = act(W x + b)`` into
an instruction program, and the readout of ``y`` from the ``o`` beats. numpy, the config, the
golden model and the cycle model only.

Layout (AiM-style: output ``n`` lives in one bank, its ``K`` weights along that bank's row)
    ``E`` elements per column (``column_bytes`` in ``s8``), ``kc = ceil(K / E)`` columns per
    output. Outputs go in *tiles* of ``banks``: tile ``t`` holds outputs ``n = t*banks + b`` in
    bank ``b`` (banks past ``N`` hold zeros). When ``kc <= columns`` a row holds ``p = columns
    // kc`` tiles: tile ``t`` is in row ``t // p``, columns ``(t % p)*kc`` on. Otherwise a
    tile spans ``ceil(kc / columns)`` consecutive rows. Weights past ``K`` are 0. The GB holds
    ``x`` in columns ``0 .. kc-1`` (so ``kc <= gb_columns``); bank column ``c`` of a tile
    meets GB column ``c - first column`` (plus ``columns x`` the row's index in the tile).

Program (``mode`` plain: one row buffer; overlap: two, the next row is activated into the
other buffer while MACs read this one)::

    ACT_AB row0 buf0; WR_GB x (kc columns); WR_BIAS b of tile 0 (one per bank)
    for every row of the layout (an epoch), for every tile part in it:
        MAC_ABK (init on a tile's first part) ...
        after a tile's last part: AF func shift; RD_AF   (or RD_MAC without an activation)
    EOC

Between MAC columns the compiler weaves the *side* instructions (the next tile's WR_BIAS, the
readout, the PRE_AB of the finished row and the ACT_AB of the next one) into the gaps the MAC
rate leaves (``tCCD_L`` > 1), asking the cycle model (:class:`~.pim_cycles.Timeline`) whether
one would issue before the next MAC column; one that is due (needed before the next MAC) goes
in whether or not it is free. Consecutive MAC columns then merge into one MAC_ABK.
"""

from collections import deque
from dataclasses import dataclass

import numpy as np

from ...generators.base import check_limit
from ...generators.pim import AF_FUNCS, ceil_div
from ...numerics import ConfigError
from .pim import Command, Instr, Model, gemv_reference, pack_column, result_values, activate
from .pim_cycles import Timeline

__all__ = ["Layout", "layout", "default_shape", "place", "gather", "load_program",
           "gemv_program", "Gemv", "compile_gemv", "read_y", "golden_y", "parse_gemv",
           "check_gemv_options", "check_mode", "MODES"]

MODES = ("plain", "overlap")


@dataclass(frozen=True)
class Layout:
    """Where an ``n x k`` weight matrix lives (see the module docstring).

    Members
    -------
    config : PimConfig
    n, k : int
    fmt : str
        ``"s8"`` or ``"s16"``.
    """
    config: object
    n: int
    k: int
    fmt: str = "s8"

    @property
    def elements(self):
        return self.config.elements(self.fmt)

    @property
    def kc(self):
        """Columns per output."""
        return ceil_div(self.k, self.elements)

    @property
    def tiles(self):
        return ceil_div(self.n, self.config.banks)

    @property
    def per_row(self):
        """Tiles per row (0 when a tile spans several rows)."""
        return self.config.columns // self.kc

    @property
    def rows_per_tile(self):
        return ceil_div(self.kc, self.config.columns)

    @property
    def rows_used(self):
        if self.per_row:
            return ceil_div(self.tiles, self.per_row)
        return self.tiles * self.rows_per_tile

    def parts(self, tile):
        """``[(row, first column, columns, first GB column)]`` of ``tile``, in MAC order."""
        C = self.config.columns
        if self.per_row:
            return [(tile // self.per_row, (tile % self.per_row) * self.kc, self.kc, 0)]
        first = tile * self.rows_per_tile
        return [(first + j, 0, min(C, self.kc - j * C), j * C)
                for j in range(self.rows_per_tile)]

    def epochs(self):
        """``[(row, [(tile, first column, columns, first GB column, first part, last part)])]``
        in program order: one epoch per row."""
        out = []
        for tile in range(self.tiles):
            parts = self.parts(tile)
            for j, (row, col, count, gb) in enumerate(parts):
                if not out or out[-1][0] != row:
                    out.append((row, []))
                out[-1][1].append((tile, col, count, gb, j == 0, j == len(parts) - 1))
        return out


def default_shape(config):
    """A GEMV that fills the geometry's first rows: ``2 x banks + 1`` outputs (fewer when the
    rows cannot hold them) of ``min(columns, gb_columns) x lanes - 3`` elements (a partial last
    column); the testbench's ``gemv`` default and the FPGA self-check's GEMV."""
    k = max(1, min(config.columns, config.gb_columns) * config.lanes - 3)
    n = 2 * config.banks + 1
    while n > 1:
        try:
            layout(config, n, k)
            break
        except ConfigError:
            n -= 1
    return n, k


def layout(config, n, k, fmt="s8", *, what="--gemv"):
    """The :class:`Layout` of an ``n x k`` matrix; :class:`ConfigError` (naming ``what``) when
    the geometry cannot hold it."""
    if fmt not in config.formats:
        raise ConfigError(f"{what}: format {fmt!r} is not built; allowed are "
                          f"{', '.join(config.formats)}")
    lay = Layout(config, n, k, fmt)
    if lay.kc > config.gb_columns:
        raise ConfigError(f"{what}: {n}x{k} is not allowed; K={k} needs {lay.kc} GB columns "
                          f"of {lay.elements} {fmt} elements and gb_columns is "
                          f"{config.gb_columns}")
    if lay.rows_used > config.rows:
        raise ConfigError(f"{what}: {n}x{k} is not allowed; it needs {lay.rows_used} rows per "
                          f"bank and the geometry has rows={config.rows} (banks={config.banks}, "
                          f"columns={config.columns}, column_bytes={config.column_bytes})")
    return lay


def _columns(lay, vector):
    """``vector`` (length ``kc x E`` after zero padding) as column words."""
    E = lay.elements
    padded = np.zeros(lay.kc * E, np.int64)
    padded[:len(vector)] = vector
    return [pack_column(lay.config, padded[j * E:(j + 1) * E], lay.fmt) for j in range(lay.kc)]


def place(lay, w):
    """``{(bank, row, column): word}`` of every column the layout uses (zeros included)."""
    w = np.asarray(w, np.int64)
    cfg = lay.config
    out = {}
    for tile in range(lay.tiles):
        for b in range(cfg.banks):
            n = tile * cfg.banks + b
            words = _columns(lay, w[n] if n < lay.n else np.zeros(0, np.int64))
            for row, col, count, gb in lay.parts(tile):
                for j in range(count):
                    out[(b, row, col + j)] = words[gb + j]
    return out


def gather(lay, columns):
    """The ``n x k`` matrix back from ``{(bank, row, column): word}`` (:func:`place`'s form, or
    a bank model's storage read out)."""
    from .pim import unpack_column
    cfg, E = lay.config, lay.elements
    w = np.zeros((lay.n, lay.k), np.int64)
    for tile in range(lay.tiles):
        for b in range(cfg.banks):
            n = tile * cfg.banks + b
            if n >= lay.n:
                continue
            row_vals = np.zeros(lay.kc * E, np.int64)
            for row, col, count, gb in lay.parts(tile):
                for j in range(count):
                    row_vals[(gb + j) * E:(gb + j + 1) * E] = unpack_column(
                        cfg, columns[(b, row, col + j)], lay.fmt)
            w[n] = row_vals[:lay.k]
    return w


def load_program(lay, w):
    """Instructions that write ``w`` into the banks (``WR_SBK``, one ACT_AB/PRE_AB per row),
    then EOC."""
    placed = place(lay, w)
    out = []
    for row in range(lay.rows_used):
        out.append(Instr("ACT_AB", row=row))
        out += [Instr("WR_SBK", bank=b, col=c, data=word)
                for (b, r, c), word in placed.items() if r == row]
        out.append(Instr("PRE_AB"))
    return out + [Instr("EOC")]


@dataclass
class Gemv:
    """A compiled GEMV.

    Members
    -------
    layout : Layout
    load : list of Instr
        Writes the weights (run once; weights stay in the banks).
    run : list of Instr
        The GEMV itself, ending with EOC.
    readout : list of int
        The tile of each ``o`` beat ``run`` sends.
    mode : str
    act : tuple or None
        ``(func name, shift)`` of the AF step.
    """
    layout: Layout
    load: list
    run: list
    readout: list
    mode: str
    act: tuple = None


class _Emitter:
    """Appends instructions and keeps the cycle model in step (the golden model supplies
    each instruction's commands)."""

    def __init__(self, config):
        self.model = Model(config)
        self.line = Timeline(config)
        self.out = []

    def add(self, ins):
        self.out.append(ins)
        self.line.add(ins, self.model.run(ins))

    def free(self, ins, mac):
        """Would ``ins`` issue before the MAC command ``mac`` would (so it costs nothing)?"""
        first = _first_command(self.model, ins)
        if first is None:
            return True
        return self.line.earliest(first) < self.line.earliest(mac)


def _first_command(model, ins):
    """The first DRAM command ``ins`` would issue in ``model``'s state (no state change)."""
    name = ins.name
    if name in ("WR_GB", "WR_BIAS", "AF", "RD_MAC", "RD_AF"):
        return Command({"WR_GB": "WR_GB", "WR_BIAS": "WR_BIAS", "AF": "AF",
                        "RD_MAC": "RD_MAC", "RD_AF": "RD_AF"}[name], ins.bank, 0, 0, ins.col)
    if name == "ACT_AB":
        return Command("ACT_AB", 0, ins.buf, ins.row)
    if name == "PRE_AB":
        return Command("PRE_AB", 0, ins.buf) if model.open[:, ins.buf].any() else None
    raise ValueError(f"side instruction {name} is not one the compiler weaves")


def check_mode(config, mode):
    """:class:`ConfigError` naming ``--mode`` unless ``mode`` is one of :data:`MODES` that
    ``config`` can run (``overlap`` needs two row buffers)."""
    if mode not in MODES:
        raise ConfigError(f"--mode: {mode!r} is not allowed; expected one of "
                          f"{', '.join(MODES)}")
    if mode == "overlap" and config.row_buffers < 2:
        raise ConfigError("--mode: 'overlap' is not allowed with row_buffers=1; it needs "
                          "row_buffers=2")


def gemv_program(lay, x, b=None, *, act=None, mode="plain"):
    """The instruction program of ``y = act(W x + b)`` for weights already placed by
    :func:`load_program`: returns ``(instructions, readout tiles)``. ``act`` is None or
    ``(func, shift)`` with ``func`` a name of :data:`~accelgen.generators.pim.AF_FUNCS`."""
    cfg = lay.config
    check_mode(cfg, mode)
    buffers = 2 if mode == "overlap" else 1
    bias = None if b is None else np.asarray(b, np.int64)
    mask = (1 << cfg.acc_width) - 1

    def bias_of(tile):
        values = [0 if bias is None or tile * cfg.banks + k >= lay.n
                  else int(bias[tile * cfg.banks + k]) for k in range(cfg.banks)]
        return [Instr("WR_BIAS", bank=k, data=v & mask) for k, v in enumerate(values)]

    def readout():
        if act is None:
            return [Instr("RD_MAC")]
        return [Instr("AF", func=AF_FUNCS.index(act[0]), shift=act[1]), Instr("RD_AF")]

    em = _Emitter(cfg)
    epochs = lay.epochs()
    em.add(Instr("ACT_AB", row=epochs[0][0], buf=0))
    for ins in [Instr("WR_GB", col=j, data=w) for j, w in enumerate(_columns(lay, x))]:
        em.add(ins)
    for ins in bias_of(0):
        em.add(ins)
    # side instructions as (instruction, due: the MAC column number it must precede), in two
    # queues that do not wait for each other: row control (PRE_AB, ACT_AB: the other
    # buffer's) and bank registers (WR_BIAS, the readout)
    rows_q, regs_q = deque(), deque()
    tiles_read = []
    column = 0              # MAC columns emitted so far
    # the MAC column number each epoch starts at (for the due of its ACT)
    starts, total = [], 0
    for _, parts in epochs:
        starts.append(total)
        total += sum(p[2] for p in parts)
    tile_starts = {}
    for e, (_, parts) in enumerate(epochs):
        at = starts[e]
        for tile, _, count, _, first, _ in parts:
            if first:
                tile_starts[tile] = at
            at += count

    def weave(mac, now):
        for queue in (rows_q, regs_q):
            due = [i for i, (_, d) in enumerate(queue) if d <= now]
            for _ in range(due[-1] + 1 if due else 0):
                em.add(queue.popleft()[0])
            while queue and em.free(queue[0][0], mac):
                em.add(queue.popleft()[0])

    for e, (_, parts) in enumerate(epochs):
        u = e % buffers
        if e + 1 < len(epochs):
            nxt = starts[e + 1]
            if buffers == 2:
                if e >= 1:
                    rows_q.append((Instr("PRE_AB", buf=(e - 1) % 2), nxt))
                rows_q.append((Instr("ACT_AB", row=epochs[e + 1][0], buf=(e + 1) % 2), nxt))
        for tile, col, count, gb, first, last in parts:
            for j in range(count):
                mac = Instr("MAC_ABK", buf=u, col=col + j, count=1, gb=gb + j,
                            fmt=0 if lay.fmt == "s8" else 1, init=int(first and j == 0))
                command = Command("MAC_AB", 0, u, 0, col + j)
                weave(command, column)
                em.add(mac)
                column += 1
                # with a bias, the next tile's goes into the bias registers once this tile's
                # init MAC has read them; without one they stay 0 from the prologue
                if bias is not None and first and j == 0 and tile + 1 < lay.tiles:
                    due = tile_starts[tile + 1]
                    regs_q.extend((ins, due) for ins in bias_of(tile + 1))
            if last:
                due = tile_starts.get(tile + 1, total)
                regs_q.extend((ins, due) for ins in readout())
                tiles_read.append(tile)
        if buffers == 1 and e + 1 < len(epochs):
            rows_q.append((Instr("PRE_AB", buf=0), starts[e + 1]))
            rows_q.append((Instr("ACT_AB", row=epochs[e + 1][0], buf=0), starts[e + 1]))
    for queue in (regs_q, rows_q):
        while queue:
            em.add(queue.popleft()[0])
    for u in range(buffers):
        em.add(Instr("PRE_AB", buf=u))
    em.add(Instr("EOC"))
    return _merge_macs(em.out), tiles_read


def _merge_macs(instrs):
    """Consecutive one-column MAC_ABK of following columns (same buffer and format, no
    ``init`` after the first) merged into one MAC_ABK: the same commands at the same cycles
    (the controller unrolls a MAC into columns exactly as consecutive instructions issue)."""
    out = []
    for ins in instrs:
        prev = out[-1] if out else None
        if (prev is not None and ins.name == "MAC_ABK" == prev.name and not ins.init
                and ins.buf == prev.buf and ins.fmt == prev.fmt
                and ins.col == prev.col + prev.count and ins.gb == prev.gb + prev.count):
            out[-1] = Instr("MAC_ABK", buf=prev.buf, col=prev.col, count=prev.count + 1,
                            gb=prev.gb, fmt=prev.fmt, init=prev.init)
        else:
            out.append(ins)
    return out


def compile_gemv(config, w, x, b=None, *, act=None, mode="plain", fmt="s8"):
    """Layout, weight-loading program and GEMV program of ``y = act(W x + b)``."""
    w = np.asarray(w, np.int64)
    lay = layout(config, *w.shape, fmt)
    run, tiles = gemv_program(lay, x, b, act=act, mode=mode)
    return Gemv(lay, load_program(lay, w), run, tiles, mode, act)


def read_y(gemv, o_words):
    """``y`` (length ``n``) from the ``o`` words of ``gemv.run``."""
    cfg, lay = gemv.layout.config, gemv.layout
    from ..payload import unpack
    data = unpack(cfg.o_fields, o_words)["data"]
    y = np.zeros(lay.tiles * cfg.banks, np.int64)
    for tile, word in zip(gemv.readout, data):
        y[tile * cfg.banks:(tile + 1) * cfg.banks] = result_values(cfg, word)
    return y[:lay.n]


def golden_y(config, w, x, b=None, act=None):
    """``act(W x + b)`` from the specification, in numpy: the exact int64 product, the sum
    wrapped to ``s<acc_width>`` (the accumulator), then the AF step."""
    from ...numerics import IntFormat, wrap
    y = wrap(gemv_reference(w, x, b), IntFormat(config.acc_width, True))
    if act is None:
        return y
    return activate(config, y, AF_FUNCS.index(act[0]), act[1])


def parse_gemv(text):
    """``"NxK"`` → ``(N, K)``; :class:`ConfigError` naming ``--gemv`` otherwise."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and p[0] != "0" for p in parts if p) \
            or not all(parts):
        raise ConfigError(f"--gemv: {text!r} is not allowed; expected NxK with positive "
                          f"integers, e.g. 1024x256")
    n, k = (int(p) for p in parts)
    if n > 1 << 24 or k > 1 << 24:
        raise ConfigError(f"--gemv: {text!r} is not allowed; N and K must be at most {1 << 24}")
    return n, k


def estimate_cycles(lay):
    """Rough cycles of a GEMV (for the simulation limit): MAC columns x tCCD_L + per row the
    epoch overhead, + the weight load (one WR per column)."""
    t = lay.config.timing
    macs = lay.tiles * lay.kc
    return macs * t.tCCD_L + lay.rows_used * t.epoch_cycles(1) + \
        lay.tiles * lay.config.banks * lay.kc


def check_gemv_options(config, options, arrays=None, *, allow_large=False):
    """The ``gemv`` and ``mode`` run options, checked (see
    :func:`accelgen.sim.golden.pim.check_run_options`)."""
    out = {}
    mode = options.get("mode", "plain")
    if "mode" in options:
        out["mode"] = mode
    check_mode(config, mode)
    if "gemv" in options:
        n, k = parse_gemv(options["gemv"])
        lay = layout(config, n, k)
        check_limit("sim_cycles", estimate_cycles(lay), f"--gemv {n}x{k}", allow_large)
        out["gemv"] = [n, k]
    if arrays and "w" in arrays:
        lay = layout(config, *np.asarray(arrays["w"]).shape, what="w")
        check_limit("sim_cycles", estimate_cycles(lay), "--inputs w", allow_large)
    return out
