"""Config, timing presets and instruction set of block ``pim``: one processing-in-memory DRAM
channel (GDDR6-AiM style) that runs GEMV inside its banks.

The golden model in :mod:`accelgen.sim.golden.pim` is the executable form of this docstring;
the analytic cycle model (:mod:`accelgen.sim.golden.pim_cycles`) states the controller's timing,
and :mod:`accelgen.sim.golden.pim_check` is an independent checker of its DRAM command trace.

::

    host ─ cmd ─► unroller ─► in-order scheduler ──► DRAM command port ──► bank model
                  (MAC count   │ timing engine: rules (scope, before,   banks x rows x columns
                   → columns)  │ after, latency) compiled into down-    storage, open-row table,
                               │ counters; tFAW window; bank state      per-bank MAC unit,
                               │ refresh manager (REF every tREFI,      bias/acc/af registers,
                               │ postpones <= 8, forced close/reopen)   global buffer (GB)
                               ▼                                               │
    host ◄─ rsp (errors, EOC counters)                  read data ◄────────────┘
    host ◄─ o (RD column, RD_MAC / RD_AF results) ◄── result FIFO (credits)
      (trace: every DRAM command with its cycle, always-ready, for the timing checker)

Geometry
    ``banks`` banks in ``bank_groups`` groups (bank ``b`` is in group ``b // (banks /
    bank_groups)``), each of ``rows`` rows of ``columns`` columns of ``column_bytes`` bytes,
    and ``row_buffers`` (1, or 2 for the overlapped mode) row buffers per bank. A column holds
    ``column_bytes`` ``s8`` elements (element ``i`` at bits ``8i``) or, when ``"s16"`` is
    built, ``column_bytes / 2`` ``s16`` elements (element ``i`` at bits ``16i``, little-endian
    bytes). Each bank's MAC unit multiplies one column by one global-buffer (GB) column per
    MAC command: ``lanes = column_bytes`` ``s8`` products (or ``column_bytes / 2`` ``s16``
    ones), summed exactly into the bank's ``acc_width`` accumulator (two's complement wrap).
    The GB holds ``gb_columns`` columns (the input vector).

Row buffers
    An ``ACT`` opens a row into one row buffer of a bank; column commands (``RD``, ``WR``,
    ``MAC``) name the buffer and read or write the row it holds; ``PRE`` releases the buffer.
    With two buffers a bank holds two different rows at once (NeuPIMs-style dual row
    buffers): the next row is activated into one buffer while MACs read the other. Row storage
    is written through (a write to an open row is visible at once in the array).

Timing (cycles of the controller clock, one DRAM command per cycle; :class:`PimTiming`)
    Rules ``(scope, before, after, latency)``: command ``after`` may issue ``latency`` cycles
    or more after command ``before`` when both touch the scope. Scopes: ``buffer`` (same bank
    and row buffer), ``bank`` (same bank, any buffer), ``group`` (same bank group), ``channel``
    (any two). Column commands are RD, WR and MAC. All-bank commands (``ACT_AB``, ``WR_AB``,
    ``MAC_AB``, ``PRE_AB``) count as that command on every bank at once.

    ======== ====== ====== ======================================================
    scope    before after  latency
    ======== ====== ====== ======================================================
    buffer   ACT    RD     tRCD_RD
    buffer   ACT    WR     tRCD_WR
    buffer   ACT    MAC    tRCD_MAC
    buffer   ACT    PRE    tRAS
    bank     ACT    ACT    tRC      (the array's cycle, also across the two buffers)
    buffer   PRE    ACT    tRP
    buffer   RD     PRE    tRTP
    buffer   MAC    PRE    tRTP
    buffer   WR     PRE    tWR
    group    column column tCCD_L   (for MAC: the issue rate of the MAC unit)
    channel  column column tCCD_S
    group    ACT    ACT    tRRD_L
    channel  ACT    ACT    tRRD_S
    channel  ACT x4        tFAW     at most 4 ACT in any tFAW window; an ACT_AB counts 4
    channel  REF    any    tRFC     no command of any kind inside tRFC
    ======== ====== ====== ======================================================

    ``REF`` (all banks) needs every row buffer closed and waits as an ``ACT`` to every bank
    would (so ``tRP`` after a ``PRE``, ``tRC`` after an ``ACT``). Commands that do not touch the
    array (``WR_GB``, ``WR_BIAS``, ``AF``, ``RD_MAC``, ``RD_AF``) obey only ``tRFC``. Refresh
    (with ``refresh``): one ``REF`` is owed every ``tREFI`` cycles from reset; an owed ``REF``
    is issued as soon as every row buffer is closed (an epoch boundary); when 8 are owed the
    controller stops issuing the program, closes the open buffers (``PRE_AB`` per buffer),
    refreshes and re-opens them (one ``ACT`` per buffer that was open, bank order, buffer 0
    first), so never more than 8 are postponed and two ``REF`` are never more than 9 x tREFI
    apart. Data-bus turnaround (tWTR, tRTW) and the read latency tCL are not modelled: results
    come back through the bank model's own pipeline.

Host instructions (``cmd`` stream, one beat each; fields by :attr:`PimConfig.cmd_fields`)
    ======= ========= =========================================================================
    code    op        effect
    ======= ========= =========================================================================
    0       EOC       end of program: waits until every command has issued, every result is on
                      ``o`` and every timing counter has expired; then one ``rsp`` beat (eoc=1,
                      counters of the program) and the counters restart
    1       SYNC      waits like EOC, sends nothing
    2       ACT       open ``row`` into buffer ``buf`` of ``bank``
    3       ACT_AB    open ``row`` into buffer ``buf`` of every bank (ACT16)
    4       PRE       close buffer ``buf`` of ``bank`` (no command when it is closed)
    5       PRE_AB    close buffer ``buf`` of every bank where it is open (PREA)
    6       WR_SBK    column ``col`` of the row in ``bank``/``buf`` := ``data``
    7       RD_SBK    column ``col`` of the row in ``bank``/``buf`` → one ``o`` beat (kind 0)
    8       WR_ABK    column ``col`` of the row in buffer ``buf`` of every bank := ``data``
    9       WR_GB     GB column ``col`` := ``data``
    10      WR_BIAS   bias register of ``bank`` := the low ``bias_width`` bits of ``data``
                      (``min(acc_width, 8 x column_bytes)``), sign-extended
    11      MAC_SBK   for i < ``count``: acc[bank] += dot(column ``col+i`` of ``bank``/``buf``,
                      GB column ``gb+i``) in format ``fmt``; with ``init`` the first column
                      starts from the bias register instead of acc
    12      MAC_ABK   the same on every bank (all must hold one row in ``buf``)
    13      AF        every bank: af := f(acc) by ``func``: 0 acc, 1 max(acc, 0), 2
                      sat_s8(round_shift(acc, shift)), 3 sat_s8(round_shift(max(acc, 0), shift))
                      (``rounding``), as :func:`accelgen.numerics.requantize` with mult 1
    14      RD_MAC    the ``banks`` accumulators → one ``o`` beat (kind 1)
    15      RD_AF     the ``banks`` af registers → one ``o`` beat (kind 2)
    16..31  -         undefined: error 1
    ======= ========= =========================================================================

    A MAC instruction is unrolled into ``count`` DRAM MAC commands (columns ``col``,
    ``col+1``...). Every instruction's commands issue in program order, each at the first cycle
    its rules allow; the bank model executes them in that order through one pipeline, so an
    ``RD_MAC`` or ``AF`` right after a ``MAC`` sees its sum and a ``WR_BIAS`` after an ``init``
    MAC does not disturb it.

Errors (``rsp`` beat with eoc=0, the code and the instruction's index in its program; the
instruction issues nothing and changes nothing). Checked in this order, the first wins:
    ``1`` undefined opcode; ``2`` address out of range: ``bank``, ``row``, ``buf`` or ``col``
    past the geometry (for WR_GB: ``col`` past ``gb_columns``), a MAC with ``count`` 0, ``col +
    count > columns`` or ``gb + count > gb_columns``; ``3`` format ``fmt`` not built; ``4``
    bank state: ACT/ACT_AB on an open buffer, ACT of a row the bank's other buffer holds, RD,
    WR or MAC on a closed buffer; ``5`` an all-bank column instruction (WR_ABK, MAC_ABK) while
    buffer ``buf`` does not hold the same row in every bank.

Counters (``rsp`` on EOC; ``counter_width`` bits, wrapping; from the cycle the program's first
DRAM command issues to the cycle EOC completes): ``cycles``; ``busy`` MAC-bus busy cycles
(``tCCD_L`` per MAC command, all-bank or single); ``macs`` lane multiply-accumulates
(``lanes x banks`` per all-bank MAC column, ``lanes`` per single one; half that in ``s16``);
``acts``, ``pres``, ``refs`` commands issued (an all-bank one counts 1); ``stall_timing``
cycles an instruction waited for a timing rule; ``stall_refresh`` cycles it waited for the
refresh manager; ``stall_host`` cycles with no instruction to issue; ``stall_output`` cycles a
read waited for room in the result FIFO. MAC efficiency = ``macs x tCCD_L / (banks x lanes x
cycles)``: the fraction of the channel's peak in-bank MAC rate.
"""

from dataclasses import dataclass, fields as dataclass_fields, replace

from ..numerics import ConfigError, Rounding
from .base import Config, Field, ProofContract, ArrayLayout, check_bool, check_choice, check_int, \
    check_str_list

__all__ = ["PimTiming", "PimConfig", "PRESETS", "TIMINGS", "OPS", "DRAM_COMMANDS", "ERRORS",
           "RULES", "Rule", "COUNTERS", "FORMATS", "AF_FUNCS", "MAX_POSTPONED", "READ_LATENCY",
           "ceil_div"]

#: host instruction opcodes (index = code); codes from len(OPS) to 31 are undefined
OPS = ("EOC", "SYNC", "ACT", "ACT_AB", "PRE", "PRE_AB", "WR_SBK", "RD_SBK", "WR_ABK", "WR_GB",
       "WR_BIAS", "MAC_SBK", "MAC_ABK", "AF", "RD_MAC", "RD_AF")
OP_BITS = 5
#: DRAM-side commands (index = code on the command port and in the trace)
DRAM_COMMANDS = ("NOP", "ACT", "ACT_AB", "PRE", "PRE_AB", "RD", "WR", "WR_AB", "MAC", "MAC_AB",
                 "WR_GB", "WR_BIAS", "AF", "RD_MAC", "RD_AF", "REF")
ERRORS = {0: "ok", 1: "undefined opcode", 2: "address out of range", 3: "format not built",
          4: "bank state (row buffer open or closed)", 5: "all-bank row mismatch"}
FORMATS = ("s8", "s16")
AF_FUNCS = ("identity", "relu", "requant", "relu_requant")
SHIFT_BITS = 5
#: refreshes the manager may owe before it forces one
MAX_POSTPONED = 8
#: cycles from a read command (RD, RD_MAC, RD_AF) on the DRAM port to its ``o`` beat (the
#: bank model's pipeline, then the result FIFO), with an empty FIFO and ``o.ready`` high
READ_LATENCY = 10
COUNTERS = ("cycles", "busy", "macs", "acts", "pres", "refs", "stall_timing", "stall_refresh",
            "stall_host", "stall_output")
#: o.kind codes
O_KINDS = ("column", "mac", "af")
#: the timing parameters a command class waits for when it comes second
COLUMN = ("RD", "WR", "MAC")


@dataclass(frozen=True)
class Rule:
    """One timing rule: ``after`` may issue ``timing.<latency>`` cycles or more after
    ``before`` when both touch ``scope`` (``buffer``, ``bank``, ``group``, ``channel``)."""
    scope: str
    before: str
    after: str
    latency: str


#: the pairwise rules of the module docstring's table (tFAW and tRFC are kept apart: a window
#: and a channel-wide blackout); the controller compiles them into counters at elaboration
RULES = (
    Rule("buffer", "ACT", "RD", "tRCD_RD"), Rule("buffer", "ACT", "WR", "tRCD_WR"),
    Rule("buffer", "ACT", "MAC", "tRCD_MAC"), Rule("buffer", "ACT", "PRE", "tRAS"),
    Rule("bank", "ACT", "ACT", "tRC"), Rule("buffer", "PRE", "ACT", "tRP"),
    Rule("buffer", "RD", "PRE", "tRTP"), Rule("buffer", "MAC", "PRE", "tRTP"),
    Rule("buffer", "WR", "PRE", "tWR"),
    *(Rule("group", a, b, "tCCD_L") for a in COLUMN for b in COLUMN),
    *(Rule("channel", a, b, "tCCD_S") for a in COLUMN for b in COLUMN),
    Rule("group", "ACT", "ACT", "tRRD_L"), Rule("channel", "ACT", "ACT", "tRRD_S"),
)


def ceil_div(a, b):
    return -(-a // b)


@dataclass(frozen=True, kw_only=True)
class PimTiming(Config):
    """DRAM timing in controller cycles (see the rule table of :mod:`accelgen.generators.pim`).
    Every value is an integer from 1 to 65535; ``tREFI`` must exceed ``tRFC + tRC + tRP`` so a
    refresh can complete inside its interval.

    Members
    -------
    tRCD_RD, tRCD_WR, tRCD_MAC : int
        ACT → RD / WR / MAC, same row buffer (AiM's MAC path senses longer: 56).
    tRAS : int
        ACT → PRE, same buffer.
    tRP : int
        PRE → ACT, same buffer.
    tRC : int
        ACT → ACT, same bank (any buffer).
    tRTP : int
        RD or MAC → PRE, same buffer.
    tWR : int
        WR → PRE, same buffer (write recovery, counted from the WR command).
    tCCD_S, tCCD_L : int
        Column → column, any bank / same bank group.
    tRRD_S, tRRD_L : int
        ACT → ACT, any bank / same bank group.
    tFAW : int
        Window holding at most four ACT (an all-bank ACT counts four).
    tREFI : int
        Refresh interval (one REF owed per tREFI).
    tRFC : int
        REF → any command.
    """
    tRCD_RD: int = 36
    tRCD_WR: int = 28
    tRCD_MAC: int = 56
    tRAS: int = 54
    tRP: int = 32
    tRC: int = 89
    tRTP: int = 12
    tWR: int = 33
    tCCD_S: int = 2
    tCCD_L: int = 2
    tRRD_S: int = 6
    tRRD_L: int = 8
    tFAW: int = 42
    tREFI: int = 3333
    tRFC: int = 210

    def __post_init__(self):
        for f in dataclass_fields(self):
            check_int(f"timing.{f.name}", getattr(self, f.name), 1, 65535)
        least = self.tRFC + self.tRC + self.tRP
        if self.tREFI <= least:
            raise ConfigError(f"timing.tREFI: {self.tREFI!r} is not allowed with tRFC "
                              f"{self.tRFC}, tRC {self.tRC} and tRP {self.tRP}; expected more "
                              f"than tRFC + tRC + tRP = {least}")

    @property
    def names(self):
        return tuple(f.name for f in dataclass_fields(self))

    def epoch_cycles(self, columns):
        """Cycles of one all-bank MAC epoch of ``columns`` columns (open a row, MAC its
        columns, close it) until the next ACT may issue (pim.md)::

            max(tRC, max(tRAS, tRCD_MAC + (columns - 1) * tCCD_L + tRTP) + tRP)
        """
        return max(self.tRC, max(self.tRAS, self.tRCD_MAC + (columns - 1) * self.tCCD_L
                                 + self.tRTP) + self.tRP)


#: Timing presets. From pim.md's table: tRCD rd/wr, tRP, tRAS, tRC, tCCD S/L, tFAW, tREFI,
#: tRFC, and AiM's tRCD_MAC, tRTP, tWR. Not in pim.md and assumed here (JEDEC-typical values
#: with 4 x tRRD_S < tFAW, so the window still binds five quick ACTs, and tRRD_L > tRRD_S):
#: tRRD_S/L of every preset, tRTP and tWR of the non-AiM ones; tRCD_MAC of a plain DRAM is its
#: tRCD_RD (a MAC reads like a RD).
TIMINGS = {
    "gddr6-aim": PimTiming(),
    "gddr6": PimTiming(tRCD_RD=27, tRCD_WR=16, tRCD_MAC=27, tRAS=53, tRP=27, tRC=79, tRTP=6,
                       tWR=30, tCCD_S=2, tCCD_L=4, tRRD_S=7, tRRD_L=9, tFAW=29, tREFI=3333,
                       tRFC=211),
    "hbm2-pim": PimTiming(tRCD_RD=14, tRCD_WR=10, tRCD_MAC=14, tRAS=33, tRP=14, tRC=47, tRTP=4,
                          tWR=16, tCCD_S=2, tCCD_L=4, tRRD_S=3, tRRD_L=5, tFAW=16, tREFI=3900,
                          tRFC=350),
    "hbm2": PimTiming(tRCD_RD=14, tRCD_WR=14, tRCD_MAC=14, tRAS=34, tRP=14, tRC=48, tRTP=4,
                      tWR=16, tCCD_S=1, tCCD_L=2, tRRD_S=4, tRRD_L=6, tFAW=30, tREFI=3900,
                      tRFC=260),
}


def _bits(count):
    """Bits of a field that holds 0 .. count - 1 (at least 1)."""
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True, kw_only=True)
class PimConfig(Config):
    """Parameters of a ``pim`` block (one channel). See the module docstring.

    Members
    -------
    timing : PimTiming
        The DRAM timing (``--set timing.tRCD_MAC=40`` changes one value).
    banks : int
        Banks per channel (1 to 32).
    bank_groups : int
        Bank groups (1 to ``banks``, dividing ``banks``).
    rows : int
        Rows per bank (1 to 65536).
    columns : int
        Columns per row (1 to 1024).
    column_bytes : int
        Bytes per column (1 to 64) = ``s8`` MAC lanes per bank.
    row_buffers : int
        Row buffers per bank: 1, or 2 for the overlapped mode.
    formats : tuple of str
        Element formats the MAC units build: ``("s8",)`` or ``("s8", "s16")`` (``s16`` needs
        an even ``column_bytes``).
    acc_width : int
        Accumulator width (24 to 48; wraps).
    gb_columns : int
        Global-buffer columns (1 to 4096).
    rounding : str
        Rounding of the AF requantization shift (a :class:`~accelgen.numerics.Rounding`).
    refresh : bool
        Build the refresh manager (off: no REF is ever issued, for cycle-exact runs).
    controller_only : bool
        Emit the controller alone (DRAM command port out, read data in) instead of the whole
        channel (controller + bank model).
    trace : bool
        Add the always-ready ``trace`` output of every DRAM command with its cycle.
    counter_width : int
        Width of each performance counter and of the trace's cycle stamp (16 to 48).
    o_depth : int
        Result FIFO depth (``READ_LATENCY + 2`` to 64): reads issue only while it has room
        for their data, so a shallower FIFO would throttle back-to-back reads at full rate.
    """
    timing: PimTiming = PimTiming()
    banks: int = 16
    bank_groups: int = 4
    rows: int = 8
    columns: int = 32
    column_bytes: int = 8
    row_buffers: int = 2
    formats: tuple = ("s8",)
    acc_width: int = 32
    gb_columns: int = 32
    rounding: str = "half_up"
    refresh: bool = True
    controller_only: bool = False
    trace: bool = True
    counter_width: int = 32
    o_depth: int = 16

    def __post_init__(self):
        if not isinstance(self.timing, PimTiming):
            raise ConfigError(f"timing: {self.timing!r} is not allowed; expected a table of "
                              f"timing values")
        check_int("banks", self.banks, 1, 32)
        check_int("bank_groups", self.bank_groups, 1, 32)
        if self.banks < self.bank_groups:
            raise ConfigError(f"banks: {self.banks!r} is not allowed with bank_groups "
                              f"{self.bank_groups}; expected a multiple of bank_groups")
        if self.banks % self.bank_groups:
            raise ConfigError(f"bank_groups: {self.bank_groups!r} is not allowed with banks "
                              f"{self.banks}; expected a divisor of banks")
        check_int("rows", self.rows, 1, 65536)
        check_int("columns", self.columns, 1, 1024)
        check_int("column_bytes", self.column_bytes, 1, 64)
        check_int("row_buffers", self.row_buffers, 1, 2)
        formats = check_str_list("formats", self.formats, "['s8', 's16']")
        for fmt in formats:
            check_choice("formats", fmt, FORMATS)
        if "s8" not in formats:
            raise ConfigError(f"formats: {list(formats)!r} is not allowed; expected a list "
                              f"holding 's8'")
        object.__setattr__(self, "formats", tuple(f for f in FORMATS if f in formats))
        if "s16" in self.formats and self.column_bytes % 2:
            raise ConfigError(f"column_bytes: {self.column_bytes!r} is not allowed with format "
                              f"s16; expected an even number")
        check_int("acc_width", self.acc_width, 24, 48)
        check_int("gb_columns", self.gb_columns, 1, 4096)
        check_choice("rounding", self.rounding, [r.value for r in Rounding])
        for name in ("refresh", "controller_only", "trace"):
            check_bool(name, getattr(self, name))
        check_int("counter_width", self.counter_width, 16, 48)
        check_int("o_depth", self.o_depth, READ_LATENCY + 2, 64)
        forced = self.forced_refresh_bound
        if self.refresh and self.timing.tREFI <= forced:
            raise ConfigError(f"timing.tREFI: {self.timing.tREFI!r} is not allowed with this "
                              f"timing and {self.banks} banks x {self.row_buffers} row buffers; "
                              f"expected more than {forced} cycles, the longest forced refresh "
                              f"(close, REF, re-open every buffer)")

    # -- derived values ---------------------------------------------------------------------

    @property
    def forced_refresh_bound(self):
        """Most cycles a forced refresh can take: close (``max(tRAS, tRTP, tWR)`` then
        ``tRP``), wait ``tRC`` for the last ACT, ``tRFC``, and re-open every buffer (one ACT per
        ``max(tRRD_L, ceil(tFAW / 4))``, ``tRC`` between a bank's two buffers)."""
        t = self.timing
        reopen = self.banks * self.row_buffers * max(t.tRRD_L, ceil_div(t.tFAW, 4)) \
            + (self.row_buffers - 1) * t.tRC
        return max(t.tRAS, t.tRTP, t.tWR) + t.tRP + t.tRC + t.tRFC + reopen

    @property
    def lanes(self):
        """``s8`` multipliers per bank (elements per column)."""
        return self.column_bytes

    @property
    def column_bits(self):
        return 8 * self.column_bytes

    def elements(self, fmt):
        """Elements per column in format ``fmt`` (``"s8"`` or ``"s16"``)."""
        return self.column_bytes // (2 if fmt == "s16" else 1)

    @property
    def banks_per_group(self):
        return self.banks // self.bank_groups

    def group(self, bank):
        return bank // self.banks_per_group

    @property
    def bank_bits(self):
        return _bits(self.banks)

    @property
    def row_bits(self):
        return _bits(self.rows)

    @property
    def col_bits(self):
        return _bits(max(self.columns, self.gb_columns))

    @property
    def count_bits(self):
        """Width of ``count``: holds ``columns`` (1 to ``columns``; 0 is an error)."""
        return self.columns.bit_length()

    @property
    def gb_bits(self):
        return _bits(self.gb_columns)

    @property
    def bias_width(self):
        """Bits of a WR_BIAS value: ``min(acc_width, column_bits)``, signed."""
        return min(self.acc_width, self.column_bits)

    @property
    def result_bits(self):
        """Bits of an RD_MAC / RD_AF result: ``banks x acc_width``."""
        return self.banks * self.acc_width

    @property
    def o_bits(self):
        return max(self.column_bits, self.result_bits)

    @property
    def exact_k(self):
        """Products per accumulation that cannot wrap the accumulator (``s8``: ``|p| <=
        2**14``)."""
        return ((1 << (self.acc_width - 1)) - 1) // (1 << 14)

    @property
    def peak_macs_per_cycle(self):
        """``banks x lanes / tCCD_L``: the channel's in-bank MAC rate."""
        return self.banks * self.lanes / self.timing.tCCD_L

    def op_code(self, name):
        check_choice("op", name, OPS)
        return OPS.index(name)

    # -- stream payloads --------------------------------------------------------------------

    @property
    def cmd_fields(self):
        fmts = ", ".join(f"{i} {f}" for i, f in enumerate(FORMATS))
        ops = ", ".join(f"{i} {op}" for i, op in enumerate(OPS))
        return [
            Field("op", OP_BITS, doc=f"Instruction: {ops} (derived.op_codes); codes "
                                     f"{len(OPS)} to {(1 << OP_BITS) - 1} give err 1."),
            Field("bank", self.bank_bits, doc=f"Bank (0 to {self.banks - 1}) of ACT, PRE, "
                                              f"WR_SBK, RD_SBK, WR_BIAS, MAC_SBK."),
            Field("buf", 1, doc=f"Row buffer (0 to {self.row_buffers - 1}) of row and column "
                                f"instructions."),
            Field("row", self.row_bits, doc=f"Row (0 to {self.rows - 1}) of ACT, ACT_AB."),
            Field("col", self.col_bits, doc=f"Column (0 to {self.columns - 1}) of WR/RD/MAC "
                                            f"(the first of a MAC); GB column (0 to "
                                            f"{self.gb_columns - 1}) of WR_GB."),
            Field("count", self.count_bits, doc=f"MAC: columns to multiply (1 to "
                                                f"{self.columns}); 0 gives err 2."),
            Field("gb", self.gb_bits, doc="MAC: the first GB column (GB column gb+i meets "
                                          "bank column col+i)."),
            Field("fmt", 1, doc=f"MAC element format: {fmts}; a format not built gives "
                                f"err 3."),
            Field("init", 1, doc="MAC: 1: the first column's sum starts from the bank's "
                                 "bias register instead of its accumulator."),
            Field("func", 2, doc="AF function: " + ", ".join(
                f"{i} {f}" for i, f in enumerate(AF_FUNCS)) + "."),
            Field("shift", SHIFT_BITS, doc=f"AF requant right shift (rounding "
                                           f"{self.rounding})."),
            Field("data", self.column_bits,
                  doc="WR_SBK/WR_ABK/WR_GB: the column; WR_BIAS: the bias in the low "
                      f"{self.bias_width} bits (signed, sign-extended to "
                      f"{self.acc_width}).",
                  array=self._column_arrays("cmd.fmt")),
        ]

    def _column_arrays(self, selector):
        out = []
        for code, fmt in enumerate(FORMATS):
            if fmt not in self.formats:
                continue
            width = 16 if fmt == "s16" else 8
            out.append(ArrayLayout(shape=(self.elements(fmt),), index=("element",),
                                   stride=(width,), width=width, signed=True,
                                   when=(("field", selector if len(self.formats) > 1 else None),
                                         ("equals", code), ("format", fmt)),
                                   note=f"{self.elements(fmt)} {fmt} elements per column"))
        return tuple(out)

    @property
    def o_fields(self):
        kinds = ", ".join(f"{i} {k}" for i, k in enumerate(O_KINDS))

        def banks(kind, note):
            return ArrayLayout(shape=(self.banks,), index=("bank",), stride=(self.acc_width,),
                               width=self.acc_width, signed=True,
                               when=(("field", "kind"), ("equals", O_KINDS.index(kind)),
                                     ("kind", kind)), note=note)
        column = ArrayLayout(shape=(self.column_bytes,), index=("byte",), stride=(8,), width=8,
                             signed=True, when=(("field", "kind"), ("equals", 0),
                                                ("kind", "column")),
                             note="RD_SBK: the column's bytes (s8 elements; an s16 element is "
                                  "two bytes, little-endian); the bits above are 0")
        return [
            Field("data", self.o_bits,
                  doc=f"kind column: the column read by RD_SBK (low {self.column_bits} bits); "
                      f"kind mac/af: bank b's accumulator / af register at bits "
                      f"b*{self.acc_width} (signed).",
                  array=(column, banks("mac", "RD_MAC: the accumulators, one per bank"),
                         banks("af", "RD_AF: the af registers, one per bank"))),
            Field("kind", 2, doc=f"What data holds: {kinds}."),
        ]

    @property
    def rsp_fields(self):
        errors = "; ".join(f"{k} {v}" for k, v in ERRORS.items())
        return ([Field("eoc", 1, doc="1: the EOC beat of a program (counters valid); 0: an "
                                     "error beat (counters 0)."),
                 Field("err", 3, doc=f"Error code of the instruction ({errors}); 0 on EOC."),
                 Field("index", self.counter_width,
                       doc="Error: the instruction's index in its program (from 0, counting "
                           "every instruction since reset or the last EOC); EOC: the "
                           "program's instruction count before the EOC.")]
                + [Field(c, self.counter_width, doc=f"Counter {c} (wraps at "
                                                    f"2**{self.counter_width}).")
                   for c in COUNTERS])

    @property
    def dram_fields(self):
        """The DRAM command port (controller → bank model) and the trace payload."""
        cmds = ", ".join(f"{i} {c}" for i, c in enumerate(DRAM_COMMANDS))
        return [
            Field("cmd", 4, doc=f"DRAM command: {cmds}."),
            Field("bank", self.bank_bits, doc="Bank of single-bank commands."),
            Field("buf", 1, doc="Row buffer."),
            Field("row", self.row_bits, doc="Row of ACT / ACT_AB."),
            Field("col", self.col_bits, doc="Column (GB column of WR_GB)."),
            Field("gb", self.gb_bits, doc="GB column of MAC / MAC_AB."),
            Field("fmt", 1, doc="MAC format."),
            Field("init", 1, doc="MAC: start from the bias register."),
            Field("func", 2, doc="AF function."),
            Field("shift", SHIFT_BITS, doc="AF shift."),
            Field("data", self.column_bits, doc="Write data / bias."),
        ]

    @property
    def trace_fields(self):
        return [Field("cycle", self.counter_width, doc="Cycle of the command since reset "
                                                       "(wraps)."),
                Field("cmd", 4, doc="DRAM command code (derived.dram_commands)."),
                Field("bank", self.bank_bits, doc="Bank."),
                Field("buf", 1, doc="Row buffer."),
                Field("row", self.row_bits, doc="Row."),
                Field("col", self.col_bits, doc="Column.")]

    @property
    def rdata_fields(self):
        return [Field("data", self.o_bits, doc="Read data (as o.data)."),
                Field("kind", 2, doc="As o.kind.")]

    def stream_fields(self):
        out = {"cmd": self.cmd_fields, "o": self.o_fields, "rsp": self.rsp_fields}
        if self.controller_only:
            out["dram"] = self.dram_fields
            out["rdata"] = self.rdata_fields
        if self.trace:
            out["trace"] = self.trace_fields
        return out

    def cost(self):
        if self.controller_only:
            return {}
        bits = self.banks * self.rows * self.columns * self.column_bits \
            + self.gb_columns * self.column_bits
        return {"memory_bits": (bits, "banks x rows x columns x column_bits + gb_columns x "
                                      "column_bits")}

    def derived(self):
        t = self.timing
        return {
            "lanes": self.lanes,
            "bias_width": self.bias_width,
            "peak_macs_per_cycle": self.peak_macs_per_cycle,
            "exact_k": self.exact_k,
            "op_codes": {op: i for i, op in enumerate(OPS)},
            "dram_commands": {c: i for i, c in enumerate(DRAM_COMMANDS)},
            "format_codes": {f: i for i, f in enumerate(FORMATS) if f in self.formats},
            "af_funcs": {f: i for i, f in enumerate(AF_FUNCS)},
            "o_kinds": {k: i for i, k in enumerate(O_KINDS)},
            "errors": {str(k): v for k, v in ERRORS.items()},
            "bank_group_of_bank": [self.group(b) for b in range(self.banks)],
            "epoch_cycles": {str(c): t.epoch_cycles(c) for c in (1, 8, 16, 32, 64)
                             if c <= self.columns} | {str(self.columns):
                                                      t.epoch_cycles(self.columns)},
            "storage_bits": self.cost().get("memory_bits", (0,))[0],
        }


_GDDR6 = dict(banks=16, bank_groups=4, rows=8, columns=64, column_bytes=32, gb_columns=64)
_HBM2 = dict(banks=16, bank_groups=4, rows=8, columns=32, column_bytes=32, gb_columns=32)

PRESETS = {
    # fits the iCE40 UP5K (icebreaker, with its self-check harness 3.8k of 5.3k LUT4): 4
    # banks of 4 rows x 8 columns x 2 bytes, one row buffer (two need ~0.6k LUT4 more)
    "tiny": PimConfig(banks=4, bank_groups=2, rows=4, columns=8, column_bytes=2, gb_columns=8,
                      row_buffers=1, counter_width=16, o_depth=12),
    # the ECP5-85F channel: 8 banks (4 groups) x 8 rows x 32 columns x 8 bytes, two row
    # buffers, AiM timing; with its self-check harness 9.2k LUT4, 65 MULT18X18D, 50 MHz.
    # 16 banks (the gddr6-aim geometry) synthesize to ~16k LUT4 but did not finish routing in
    # 15 minutes (72k arcs left), so the board preset has 8
    "default": PimConfig(banks=8),
}
for _name, _timing in TIMINGS.items():
    PRESETS[_name] = PimConfig(timing=_timing, **(_HBM2 if "hbm2" in _name else _GDDR6))
PRESETS["s16"] = replace(PRESETS["default"], formats=("s8", "s16"), acc_width=48)

#: ``accelgen prove``: the result FIFO's credit carries its own assertions, and an independent
#: monitor of the DRAM command port asserts every timing rule (family ``timing``);
#: ``trcd-rd-short`` plants an ACT -> RD counter one cycle short in the timing engine
#: timings short enough for a proof's depth: every rule binds within a few cycles and can
#: bind on its own (tRC above tRAS + tRP, tRRD_S above one command per cycle), tFAW binds
#: five ACTs; tREFI is above the longest forced refresh of every preset's geometry
PROOF_TIMING = PimTiming(tRCD_RD=3, tRCD_WR=2, tRCD_MAC=3, tRAS=4, tRP=2, tRC=8, tRTP=2, tWR=3,
                         tCCD_S=2, tCCD_L=3, tRRD_S=2, tRRD_L=3, tFAW=7, tREFI=130, tRFC=3)
#: (depth 16 reaches the first o beat, at step 12 of tiny; the timing properties are
#: k-inductive at 10 with PROOF_TIMING)
PROOF = ProofContract(depth=16, induction_depth=10, mutants={"trcd-rd-short": "timing"},
                      settings={"timing": PROOF_TIMING.to_dict()})
