"""Bit-exact model of block ``pim``'s instruction set. The module docstring of
:mod:`accelgen.generators.pim` is the specification; this module is its executable form.

A :class:`Model` holds one channel's state: bank storage (``banks x rows x columns`` columns of
``column_bytes`` bytes), the open row of every row buffer, the global buffer (GB), and per bank
the bias register, the accumulator and the af register. :meth:`Model.run` executes one
:class:`Instr` and returns a :class:`Step`: its error code, the DRAM commands it issues (the
analytic cycle model :mod:`accelgen.sim.golden.pim_cycles` schedules them) and the ``o`` words
it sends. Storage and GB start zeroed (as after FPGA configuration or a simulator's start) and
keep their contents across a reset; a reset closes every buffer and clears the bank
registers (:meth:`Model.reset`).

Numerics: a MAC column multiplies the ``s8`` (or ``s16``) elements of a bank column by those
of a GB column and sums the products exactly (int64); the accumulator wraps to
``s<acc_width>`` (two's complement). AF is :func:`accelgen.numerics.requantize` with mult 1 and
zero point 0 for the requant functions. All exact: products have at most 31 bits and a column
at most 64 of them.

Payload level: :func:`pack_instr` / :func:`unpack_instr` convert to and from ``cmd`` words;
:meth:`Model.words` runs raw words (any bit pattern is a legal word).
"""

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ...generators.pim import AF_FUNCS, COUNTERS, DRAM_COMMANDS, FORMATS, OPS, O_KINDS
from ...numerics import IntFormat, requantize, wrap
from ..payload import pack, unpack

__all__ = ["ARGUMENTS", "REQUIRED", "Instr", "Command", "Step", "Model", "pack_instr",
           "unpack_instr", "pack_column", "unpack_column", "result_values", "error_code",
           "check_arrays", "check_run_options", "gemv_reference"]

#: arrays of ``accelgen sim pim --inputs FILE.npz``: y = act(W x + b)
ARGUMENTS = ("w", "x", "b")
REQUIRED = ("w", "x")


@dataclass(frozen=True)
class Instr:
    """One host instruction; ``op`` is a name of :data:`~accelgen.generators.pim.OPS` or a
    code (codes past them are undefined and give error 1). Fields an op does not use are
    ignored (any value)."""
    op: object
    bank: int = 0
    buf: int = 0
    row: int = 0
    col: int = 0
    count: int = 0
    gb: int = 0
    fmt: int = 0
    init: int = 0
    func: int = 0
    shift: int = 0
    data: int = 0

    @property
    def code(self):
        return OPS.index(self.op) if isinstance(self.op, str) else int(self.op)

    @property
    def name(self):
        code = self.code
        return OPS[code] if code < len(OPS) else f"op{code}"

    def __str__(self):
        used = {"ACT": "bank buf row", "ACT_AB": "buf row", "PRE": "bank buf", "PRE_AB": "buf",
                "WR_SBK": "bank buf col", "RD_SBK": "bank buf col", "WR_ABK": "buf col",
                "WR_GB": "col", "WR_BIAS": "bank", "MAC_SBK": "bank buf col count gb fmt init",
                "MAC_ABK": "buf col count gb fmt init", "AF": "func shift"}.get(self.name, "")
        return " ".join([self.name] + [f"{k}={getattr(self, k)}" for k in used.split()])


class Command(NamedTuple):
    """One DRAM command as the trace shows it (fields a command does not use are 0)."""
    cmd: str
    bank: int = 0
    buf: int = 0
    row: int = 0
    col: int = 0

    @property
    def code(self):
        return DRAM_COMMANDS.index(self.cmd)


class Step(NamedTuple):
    """What one instruction did: ``err`` (0 ok), the DRAM ``commands`` it issued in order,
    the ``o`` words it sent, and for a MAC the lane MACs it did."""
    err: int
    commands: tuple
    o_words: tuple
    macs: int


def pack_instr(config, instrs):
    """``cmd`` payload words of ``instrs`` (each field masked to its width)."""
    names = [f.name for f in config.cmd_fields]
    values = {n: [] for n in names}
    for ins in instrs:
        for n in names:
            values[n].append(ins.code if n == "op" else getattr(ins, n))
    return pack(config.cmd_fields, values)


def unpack_instr(config, words):
    fields = unpack(config.cmd_fields, words)
    return [Instr(**{n: int(fields[n][i]) for n in fields}) for i in range(len(words))]


def pack_column(config, values, fmt="s8"):
    """A column word from its elements (``s8`` or ``s16``, element ``i`` at bits ``i*w``)."""
    width = 16 if fmt == "s16" else 8
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << width) - 1)) << (i * width)
    return word


def unpack_column(config, word, fmt="s8"):
    """The signed elements of a column word."""
    raw = np.frombuffer(int(word).to_bytes(config.column_bytes, "little"), dtype=np.uint8)
    return raw.view(np.int16 if fmt == "s16" else np.int8).astype(np.int64)


def result_values(config, word):
    """The ``banks`` signed values of an RD_MAC / RD_AF ``o.data``."""
    w = config.acc_width
    return wrap([(int(word) >> (b * w)) & ((1 << w) - 1) for b in range(config.banks)],
                IntFormat(w, True))


def error_code(config, state, ins):
    """The error of ``ins`` in the model ``state`` (0 ok); see the spec's error list."""
    code = ins.code
    if code >= len(OPS):
        return 1
    op = OPS[code]
    cfg = config
    if _out_of_range(cfg, op, ins):
        return 2
    if op in ("MAC_SBK", "MAC_ABK") and (ins.fmt >= len(FORMATS)
                                         or FORMATS[ins.fmt] not in cfg.formats):
        return 3
    is_open, rows = state.open, state.open_row
    other = 1 - ins.buf
    if op == "ACT":
        if is_open[ins.bank, ins.buf]:
            return 4
        if cfg.row_buffers == 2 and is_open[ins.bank, other] and rows[ins.bank, other] == ins.row:
            return 4
    elif op == "ACT_AB":
        if is_open[:, ins.buf].any():
            return 4
        if cfg.row_buffers == 2 and (is_open[:, other] & (rows[:, other] == ins.row)).any():
            return 4
    elif op in ("WR_SBK", "RD_SBK", "MAC_SBK"):
        if not is_open[ins.bank, ins.buf]:
            return 4
    elif op in ("WR_ABK", "MAC_ABK"):
        if not (is_open[:, ins.buf].all() and (rows[:, ins.buf] == rows[0, ins.buf]).all()):
            return 5
    return 0


def _out_of_range(cfg, op, ins):
    uses_bank = op in ("ACT", "PRE", "WR_SBK", "RD_SBK", "WR_BIAS", "MAC_SBK")
    uses_buf = op in ("ACT", "ACT_AB", "PRE", "PRE_AB", "WR_SBK", "RD_SBK", "WR_ABK",
                      "MAC_SBK", "MAC_ABK")
    if uses_bank and ins.bank >= cfg.banks:
        return True
    if uses_buf and ins.buf >= cfg.row_buffers:
        return True
    if op in ("ACT", "ACT_AB") and ins.row >= cfg.rows:
        return True
    if op in ("WR_SBK", "RD_SBK", "WR_ABK") and ins.col >= cfg.columns:
        return True
    if op == "WR_GB" and ins.col >= cfg.gb_columns:
        return True
    if op in ("MAC_SBK", "MAC_ABK"):
        return (ins.count == 0 or ins.col + ins.count > cfg.columns
                or ins.gb + ins.count > cfg.gb_columns)
    return False


@dataclass
class Model:
    """One channel's state; :meth:`run` executes instructions in program order.

    Members
    -------
    storage : ndarray (banks, rows, columns, column_bytes) uint8
    open : ndarray (banks, row_buffers) bool
    open_row : ndarray (banks, row_buffers) int64
    gb : ndarray (gb_columns, column_bytes) uint8
    bias, acc, af : ndarray (banks,) int64
    index : int
        Instructions of the current program so far (since reset or the last EOC).
    """
    config: object
    storage: np.ndarray = field(default=None, repr=False)
    open: np.ndarray = field(default=None, repr=False)
    open_row: np.ndarray = field(default=None, repr=False)
    gb: np.ndarray = field(default=None, repr=False)
    bias: np.ndarray = field(default=None, repr=False)
    acc: np.ndarray = field(default=None, repr=False)
    af: np.ndarray = field(default=None, repr=False)
    index: int = 0

    def __post_init__(self):
        c = self.config
        if self.storage is None:
            self.storage = np.zeros((c.banks, c.rows, c.columns, c.column_bytes), np.uint8)
        self.reset()
        self.gb = np.zeros((c.gb_columns, c.column_bytes), np.uint8)

    def reset(self):
        """What a hardware reset does: every row buffer closed, the bias, accumulator and af
        registers 0, the program index 0. Storage and GB keep their values (they are zero
        only after configuration)."""
        c = self.config
        self.open = np.zeros((c.banks, c.row_buffers), bool)
        self.open_row = np.zeros((c.banks, c.row_buffers), np.int64)
        self.bias = np.zeros(c.banks, np.int64)
        self.acc = np.zeros(c.banks, np.int64)
        self.af = np.zeros(c.banks, np.int64)
        self.index = 0

    # -- execution --------------------------------------------------------------------------

    def run(self, ins):
        """Execute ``ins``; returns its :class:`Step`."""
        err = error_code(self.config, self, ins)
        if ins.code == OPS.index("EOC") and not err:
            self.index = 0
        else:
            self.index += 1
        if err:
            return Step(err, (), (), 0)
        return getattr(self, "_" + OPS[ins.code].lower())(ins)

    def program(self, instrs):
        """:meth:`run` each of ``instrs``; the list of Steps."""
        return [self.run(ins) for ins in instrs]

    def words(self, words):
        """Payload level: run raw ``cmd`` words; the list of Steps."""
        return self.program(unpack_instr(self.config, words))

    def _acc_fmt(self):
        return IntFormat(self.config.acc_width, True)

    def _eoc(self, ins):
        return Step(0, (), (), 0)

    _sync = _eoc

    def _act(self, ins):
        self.open[ins.bank, ins.buf] = True
        self.open_row[ins.bank, ins.buf] = ins.row
        return Step(0, (Command("ACT", ins.bank, ins.buf, ins.row),), (), 0)

    def _act_ab(self, ins):
        self.open[:, ins.buf] = True
        self.open_row[:, ins.buf] = ins.row
        return Step(0, (Command("ACT_AB", 0, ins.buf, ins.row),), (), 0)

    def _pre(self, ins):
        if not self.open[ins.bank, ins.buf]:
            return Step(0, (), (), 0)
        self.open[ins.bank, ins.buf] = False
        return Step(0, (Command("PRE", ins.bank, ins.buf),), (), 0)

    def _pre_ab(self, ins):
        if not self.open[:, ins.buf].any():
            return Step(0, (), (), 0)
        self.open[:, ins.buf] = False
        return Step(0, (Command("PRE_AB", 0, ins.buf),), (), 0)

    def _column_bytes(self, word):
        return np.frombuffer(int(word).to_bytes(self.config.column_bytes, "little",
                                                signed=False), dtype=np.uint8)

    def _data_bytes(self, ins):
        return self._column_bytes(ins.data & ((1 << self.config.column_bits) - 1))

    def _wr_sbk(self, ins):
        row = self.open_row[ins.bank, ins.buf]
        self.storage[ins.bank, row, ins.col] = self._data_bytes(ins)
        return Step(0, (Command("WR", ins.bank, ins.buf, 0, ins.col),), (), 0)

    def _rd_sbk(self, ins):
        row = self.open_row[ins.bank, ins.buf]
        word = int.from_bytes(self.storage[ins.bank, row, ins.col].tobytes(), "little")
        o = pack(self.config.o_fields, {"data": [word], "kind": [O_KINDS.index("column")]})
        return Step(0, (Command("RD", ins.bank, ins.buf, 0, ins.col),), tuple(o), 0)

    def _wr_abk(self, ins):
        rows = self.open_row[:, ins.buf]
        self.storage[np.arange(self.config.banks), rows, ins.col] = self._data_bytes(ins)
        return Step(0, (Command("WR_AB", 0, ins.buf, 0, ins.col),), (), 0)

    def _wr_gb(self, ins):
        self.gb[ins.col] = self._data_bytes(ins)
        return Step(0, (Command("WR_GB", 0, 0, 0, ins.col),), (), 0)

    def _wr_bias(self, ins):
        width = self.config.bias_width
        low = ins.data & ((1 << width) - 1)
        self.bias[ins.bank] = low - (1 << width) if low >> (width - 1) else low
        return Step(0, (Command("WR_BIAS", ins.bank),), (), 0)

    def _mac(self, ins, banks):
        cfg = self.config
        fmt = FORMATS[ins.fmt]
        dtype = np.int16 if fmt == "s16" else np.int8
        rows = self.open_row[banks, ins.buf]
        commands = []
        for i in range(ins.count):
            col, g = ins.col + i, ins.gb + i
            w = self.storage[banks, rows, col].view(dtype).astype(np.int64)
            x = self.gb[g].view(dtype).astype(np.int64)
            dot = w @ x
            base = self.bias[banks] if ins.init and i == 0 else self.acc[banks]
            self.acc[banks] = wrap(base + dot, self._acc_fmt())
            if len(banks) == cfg.banks:
                commands.append(Command("MAC_AB", 0, ins.buf, 0, col))
            else:
                commands.append(Command("MAC", int(banks[0]), ins.buf, 0, col))
        return Step(0, tuple(commands), (), ins.count * len(banks) * cfg.elements(fmt))

    def _mac_sbk(self, ins):
        return self._mac(ins, np.array([ins.bank]))

    def _mac_abk(self, ins):
        return self._mac(ins, np.arange(self.config.banks))

    def _af(self, ins):
        self.af = activate(self.config, self.acc, ins.func, ins.shift)
        return Step(0, (Command("AF"),), (), 0)

    def _results(self, values, kind):
        cfg = self.config
        mask = (1 << cfg.acc_width) - 1
        word = 0
        for b, v in enumerate(values):
            word |= (int(v) & mask) << (b * cfg.acc_width)
        return tuple(pack(cfg.o_fields, {"data": [word], "kind": [O_KINDS.index(kind)]}))

    def _rd_mac(self, ins):
        return Step(0, (Command("RD_MAC"),), self._results(self.acc, "mac"), 0)

    def _rd_af(self, ins):
        return Step(0, (Command("RD_AF"),), self._results(self.af, "af"), 0)


def activate(config, acc, func, shift):
    """The AF step on accumulators ``acc`` (see the spec): identity, relu, or requantize with
    mult 1 and zero point 0 to ``s8`` (with relu for func 3)."""
    name = AF_FUNCS[func]
    acc = np.asarray(acc, np.int64)
    if name == "identity":
        return acc.copy()
    if name == "relu":
        return np.maximum(acc, 0)
    return requantize(acc, 1, shift, 0, name == "relu_requant", True, config.rounding)


def expected_counters(config, steps):
    """The counters of a program that do not depend on timing: ``busy``, ``macs``, ``acts``,
    ``pres`` (``refs`` is 0 without refresh)."""
    out = dict.fromkeys(COUNTERS, 0)
    for step in steps:
        for c in step.commands:
            if c.cmd in ("MAC", "MAC_AB"):
                out["busy"] += config.timing.tCCD_L
            elif c.cmd in ("ACT", "ACT_AB"):
                out["acts"] += 1
            elif c.cmd in ("PRE", "PRE_AB"):
                out["pres"] += 1
        out["macs"] += step.macs
    return out


# -- the GEMV reference and the --inputs contract --------------------------------------------


def gemv_reference(w, x, b=None):
    """``W x + b`` in exact int64 (numpy's integer matmul)."""
    y = np.asarray(w, np.int64) @ np.asarray(x, np.int64)
    return y if b is None else y + np.asarray(b, np.int64)


def check_arrays(config, *, strict=True, fmt="s8", **arrays):
    """Raise ``ValueError`` (message starting with the array's name) unless ``w`` (N x K),
    ``x`` (K) and optional ``b`` (N) are integer arrays of matching shapes (with ``strict``:
    ``w``, ``x`` within ``fmt``, ``b`` within ``s<bias_width>``) that the geometry can hold."""
    from .pim_gemv import layout   # the layout states the geometry's capacity
    for name in arrays:
        if name not in ARGUMENTS:
            raise ValueError(f"{name}: not an argument of pim; expected {', '.join(ARGUMENTS)}")
    w, x, b = (arrays.get(n) for n in ARGUMENTS)
    for name, arr, dims in (("w", w, 2), ("x", x, 1), ("b", b, 1)):
        if arr is None:
            if name in REQUIRED:
                raise ValueError(f"{name}: missing; expected an integer array")
            continue
        arr = np.asarray(arr)
        if arr.dtype.kind not in "iu" or arr.ndim != dims or 0 in arr.shape:
            raise ValueError(f"{name}: shape {arr.shape} dtype {arr.dtype} is not allowed; "
                             f"expected a non-empty {dims}-D integer array")
    n, k = np.asarray(w).shape
    if np.asarray(x).shape != (k,):
        raise ValueError(f"x: shape {np.asarray(x).shape} is not allowed; expected ({k},) to "
                         f"match w {np.asarray(w).shape}")
    if b is not None and np.asarray(b).shape != (n,):
        raise ValueError(f"b: shape {np.asarray(b).shape} is not allowed; expected ({n},)")
    layout(config, n, k, fmt, what="w")     # raises when the geometry cannot hold it
    if strict:
        f = IntFormat(16 if fmt == "s16" else 8, True)
        for name, arr, lo_hi in (("w", w, (f.min, f.max)), ("x", x, (f.min, f.max)),
                                 ("b", b, (-(1 << (config.bias_width - 1)),
                                           (1 << (config.bias_width - 1)) - 1))):
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.min() < lo_hi[0] or arr.max() > lo_hi[1]:
                raise ValueError(f"{name}: values from {arr.min()} to {arr.max()} are not "
                                 f"allowed; expected {lo_hi[0]} to {lo_hi[1]}")


def check_run_options(config, options, arrays=None, *, allow_large=False):
    """``gemv`` (``"NxK"``) and ``mode`` (``plain`` or ``overlap``): checked against the
    geometry (and the simulation limits unless ``allow_large``)."""
    from .pim_gemv import check_gemv_options
    return check_gemv_options(config, options, arrays, allow_large=allow_large)



def model_report(config, options):
    """``accelgen show pim --gemv NxK [--mode plain|overlap]``: the analytic cycle model
    (:mod:`accelgen.sim.golden.pim_cycles`) of that GEMV's run program at full rate with
    refresh off (the weights loaded first, as ``accelgen sim --gemv`` does), its MAC
    efficiency and the most cycles refresh could add. ``options`` are checked
    (:func:`check_run_options`). Returns ``(data, lines)``."""
    from ...numerics import ConfigError
    from .pim_cycles import mac_efficiency, refresh_budget
    from .pim_gemv import compile_gemv
    from .pim_program import Expected
    if "gemv" not in options:
        raise ConfigError("--mode: allowed in accelgen show only together with --gemv (it "
                          "picks the schedule of that GEMV)")
    n, k = options["gemv"]
    mode = options.get("mode", "plain")
    gemv = compile_gemv(config, np.zeros((n, k), np.int64), np.zeros(k, np.int64), mode=mode)
    model = Model(config)
    if not config.controller_only:
        model.program(gemv.load)
    exp = Expected(config, gemv.run, model)
    counts = exp.rsp[-1]
    cycles = counts["cycles"]
    data = {"gemv": f"{n}x{k}", "mode": mode, "cycles": cycles, "macs": counts["macs"],
            "mac_efficiency": mac_efficiency(config, counts["macs"], cycles),
            "acts": counts["acts"], "pres": counts["pres"],
            "refresh_budget": refresh_budget(config, cycles) if config.refresh else 0}
    lines = [f"cycle model: GEMV {n}x{k} ({mode}) at full rate, refresh off (no simulation)",
             f"  cycles          {cycles}  (rsp.cycles of the run program)",
             f"  MAC efficiency  {100 * data['mac_efficiency']:.1f} %  (MAC x tCCD_L / "
             f"(banks x lanes x cycles))",
             f"  MAC commands    {counts['macs']}, ACT {counts['acts']}, PRE {counts['pres']}"]
    if config.refresh:
        lines.append(f"  refresh adds    at most {data['refresh_budget']} cycles")
    return data, lines
