"""Independent timing checker of the DRAM command trace of block ``pim``.

This module is a *second opinion* on the controller: it is written from the rule table (the
module docstring of :mod:`accelgen.generators.pim` and ``pim.md``, restated below), not from
the controller, its compiled ``RULES`` tuple or the golden / cycle models. It reads the
``trace`` stream (every DRAM command with its cycle) and reports every timing rule and every
bank-state rule the trace breaks.

API
---
:func:`check_trace` checks a trace of tuples ``(cycle, cmd, bank, buf, row, col)`` (``cmd`` a
name of :data:`~accelgen.generators.pim.DRAM_COMMANDS` or its index; fields a command does not
use are ignored, ``None`` reads as 0) and returns a list of :class:`Violation`;
:func:`decode_trace` turns payload words of the ``trace`` stream into such tuples;
:func:`summary` counts violations by rule.

Commands
--------
``NOP`` is ignored. ``ACT`` (bank, buf, row), ``ACT_AB`` (buf, row on every bank), ``PRE``
(bank, buf), ``PRE_AB`` (buf of every bank), the *column commands* ``RD``, ``WR``, ``MAC``
(bank, buf, col) and ``WR_AB``, ``MAC_AB`` (buf, col on every bank), ``WR_GB`` (col = GB
column), ``WR_BIAS`` (bank), ``AF``, ``RD_MAC``, ``RD_AF``, ``REF`` (every bank). An all-bank
command counts as that command on every bank at once; its constituents do not constrain each
other. Cycle 0 is reset; every row buffer starts closed.

State rules
-----------
``bus``
    At most one command per cycle: every command's cycle exceeds the previous command's.
``range``
    An address past the geometry, for the fields the command uses: ``bank >= banks``, ``buf
    >= row_buffers``, ``row >= rows`` (ACT, ACT_AB), ``col >= columns`` (column commands),
    ``col >= gb_columns`` (WR_GB).
``act_open``
    ACT on an open buffer; ACT_AB while buffer ``buf`` is open in any bank.
``act_twin``
    With two row buffers: ACT / ACT_AB of a row that the same bank's other buffer holds open.
``closed_row``
    RD, WR or MAC on a closed buffer.
``abk_rows``
    WR_AB / MAC_AB while buffer ``buf`` does not hold one and the same row open in every bank
    (a closed buffer in some bank is reported here, not as ``closed_row``).
``pre_closed``
    PRE on a closed buffer; PRE_AB while buffer ``buf`` is closed in every bank.
``ref_open``
    REF while any buffer of any bank is open.
``refresh_off``
    Any REF when the block is built without refresh (``config.refresh`` False).

Timing rules (the rule name is the latency's name)
--------------------------------------------------
Command ``after`` must issue at least ``timing.<latency>`` cycles after command ``before``
when both touch the scope: ``buffer`` (same bank and row buffer), ``bank`` (same bank, any
buffer), ``group`` (same bank group, same bank included), ``channel`` (any two commands).

========= ========= ======== =========== ===================================================
scope     before    after    latency
========= ========= ======== =========== ===================================================
buffer    ACT       RD       tRCD_RD
buffer    ACT       WR       tRCD_WR
buffer    ACT       MAC      tRCD_MAC
buffer    ACT       PRE      tRAS
buffer    PRE       ACT      tRP
buffer    RD, MAC   PRE      tRTP
buffer    WR        PRE      tWR
bank      ACT       ACT      tRC         also between the two buffers of a bank
group     column    column   tCCD_L
channel   column    column   tCCD_S
group     ACT       ACT      tRRD_L
channel   ACT       ACT      tRRD_S
channel   ACT x4             tFAW        ACT weighs 1, ACT_AB 4: an activation of weight w
                                         at cycle t needs w + (weights of the activations
                                         at t' with t - tFAW < t' < t) <= 4
channel   REF       any      tRFC        no command but NOP at a cycle < REF + tRFC
every     PRE / ACT REF      tRP / tRC   REF waits as an ACT to every bank would: tRP
                                         after the PRE that closed each buffer, tRC after
                                         each bank's latest ACT
========= ========= ======== =========== ===================================================

``PRE_AB`` is a PRE of buffer ``buf`` in each bank where that buffer is open (tRAS, tRTP, tWR
apply there and tRP runs afterwards for each buffer it closed); the banks where the buffer is
closed are not touched. Each rule is reported at most once per command, against the most
recent (hence tightest) predecessor.

Refresh-rate rules (only with ``config.refresh``; ``r_1 < r_2 < ...`` the REF cycles)
-------------------------------------------------------------------------------------
``refresh_gap``
    ``r_1``, any ``r_{i+1} - r_i`` or ``end - r_last`` (``end`` itself without a REF) exceeds
    ``9 x tREFI`` (``MAX_POSTPONED + 1`` intervals); reported at the cycle the gap ends.
``refresh_debt``
    At some cycle ``t <= end`` fewer than ``floor(t / tREFI) - MAX_POSTPONED`` REF issued at
    cycles ``<= t`` (one REF is owed per tREFI from reset, at most 8 may be postponed);
    reported once, at the first such ``t``.

State after a violation
-----------------------
The checker keeps going as if every command had executed, so one mistake is reported once
and later checks stay meaningful:

* an ACT / ACT_AB always opens its row (replacing the row an illegally re-activated buffer
  held) and starts tRCD, tRAS, tRC, tRRD and tFAW, even if it broke a rule;
* a column command always counts for tCCD, tRTP and tWR, even on a closed buffer or a row
  mismatch; tRCD is measured from the buffer's latest ACT whether or not it is still open;
* a PRE of a closed buffer (like the untouched banks of a PRE_AB) is a no-op for the array,
  as in JEDEC DRAM: it checks no buffer timing and does not restart tRP;
* a REF changes no buffer state (an illegally open buffer stays open) and always starts
  tRFC; every REF counts for the refresh-rate rules;
* a command whose ``bank`` or ``buf`` is out of range changes no bank state and is checked
  only against the rules that do not need that address (``bus``, ``tRFC``, channel scope;
  a bad ``buf`` with a good ``bank`` still counts for the bank and group rules);
* a command out of cycle order (``bus``) is checked and recorded at its own cycle.
"""

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple, Optional

from ...generators.pim import DRAM_COMMANDS, MAX_POSTPONED
from ..payload import unpack

__all__ = ["Violation", "check_trace", "decode_trace", "summary", "STATE_RULES",
           "TIMING_RULES", "REFRESH_RULES"]

STATE_RULES = ("bus", "range", "act_open", "act_twin", "closed_row", "abk_rows", "pre_closed",
               "ref_open", "refresh_off")
TIMING_RULES = ("tRCD_RD", "tRCD_WR", "tRCD_MAC", "tRAS", "tRP", "tRC", "tRTP", "tWR",
                "tCCD_S", "tCCD_L", "tRRD_S", "tRRD_L", "tFAW", "tRFC")
REFRESH_RULES = ("refresh_gap", "refresh_debt")

#: the single-bank command an all-bank command stands for on every bank
ALL_BANK = {"ACT_AB": "ACT", "PRE_AB": "PRE", "WR_AB": "WR", "MAC_AB": "MAC"}
COLUMN = ("RD", "WR", "MAC")
#: ACT → column command latency, by column command
TRCD = {"RD": "tRCD_RD", "WR": "tRCD_WR", "MAC": "tRCD_MAC"}
#: most activations (weighted) in one tFAW window, and each activation's weight
FAW_LIMIT = 4
FAW_WEIGHT = {"ACT": 1, "ACT_AB": 4}
#: longest allowed REF-to-REF distance, in tREFI
MAX_GAP_INTERVALS = MAX_POSTPONED + 1

#: the address fields each command uses (``gb``: ``col`` as a GB column)
_ADDRESS = {"ACT": ("bank", "buf", "row"), "ACT_AB": ("buf", "row"), "PRE": ("bank", "buf"),
            "PRE_AB": ("buf",), "RD": ("bank", "buf", "col"), "WR": ("bank", "buf", "col"),
            "MAC": ("bank", "buf", "col"), "WR_AB": ("buf", "col"), "MAC_AB": ("buf", "col"),
            "WR_GB": ("gb",), "WR_BIAS": ("bank",)}


class Violation(NamedTuple):
    """One broken rule: ``cycle`` of the offending command (or where a refresh rule fails),
    its ``index`` in the trace (None when no command is to blame), the ``rule`` name and a
    one-line ``message``."""
    cycle: int
    index: Optional[int]
    rule: str
    message: str


class _Stamp(NamedTuple):
    """An earlier command as a timing predecessor."""
    cycle: int
    what: str


class _Activation(NamedTuple):
    cycle: int
    weight: int
    stamp: _Stamp


@dataclass
class _Buffer:
    """One row buffer of one bank."""
    row: Optional[int] = None        # the open row; None when closed
    act: Optional[_Stamp] = None     # latest ACT into it
    pre: Optional[_Stamp] = None     # latest PRE that closed it
    read: Optional[_Stamp] = None    # latest RD or MAC on it (tRTP)
    write: Optional[_Stamp] = None   # latest WR on it (tWR)


class _Command(NamedTuple):
    index: int
    cycle: int
    name: str
    bank: int
    buf: int
    row: int
    col: int

    @property
    def base(self):
        """The single-bank command this one is (itself unless all-bank)."""
        return ALL_BANK.get(self.name, self.name)

    def describe(self):
        uses = _ADDRESS.get(self.name, ())
        words = [self.name]
        if "bank" in uses:
            words.append(f"bank {self.bank}")
        if "buf" in uses:
            words.append(f"buf {self.buf}")
        if "row" in uses:
            words.append(f"row {self.row}")
        if "col" in uses or "gb" in uses:
            words.append(f"col {self.col}")
        return " ".join(words)


def _command_name(cmd):
    if isinstance(cmd, str):
        if cmd not in DRAM_COMMANDS:
            raise ValueError(f"trace: unknown DRAM command {cmd!r}; expected one of "
                             f"{', '.join(DRAM_COMMANDS)}")
        return cmd
    code = int(cmd)
    if not 0 <= code < len(DRAM_COMMANDS):
        raise ValueError(f"trace: DRAM command code {code} is not defined; expected 0 to "
                         f"{len(DRAM_COMMANDS) - 1}")
    return DRAM_COMMANDS[code]


def _as_int(value):
    return 0 if value is None else int(value)


class _Checker:
    """Walks the trace once, keeping the bank state and the latest command of every kind in
    every scope."""

    def __init__(self, config):
        self.config = config
        self.timing = config.timing
        self.buffers = [[_Buffer() for _ in range(config.row_buffers)]
                        for _ in range(config.banks)]
        self.bank_act = [None] * config.banks
        self.group_act = [None] * config.bank_groups
        self.group_column = [None] * config.bank_groups
        self.channel_act = None
        self.channel_column = None
        self.activations = []           # recent _Activation, for tFAW
        self.last_ref = None
        self.ref_cycles = []            # (cycle, index) of every REF
        self.last_cycle = None
        self.violations = []

    # -- reporting ---------------------------------------------------------------------------

    def report(self, cmd, rule, text):
        self.violations.append(Violation(cmd.cycle, cmd.index, rule,
                                         f"cycle {cmd.cycle}: {text}"))

    def wait(self, cmd, rule, stamps):
        """``cmd`` must be ``timing.<rule>`` cycles or more after every stamp in ``stamps``
        (None entries: no predecessor); report once, against the most recent one."""
        stamps = [s for s in stamps if s is not None]
        if not stamps:
            return
        latest = max(stamps, key=lambda s: s.cycle)
        need = getattr(self.timing, rule)
        seen = cmd.cycle - latest.cycle
        if seen < need:
            self.report(cmd, rule, f"{cmd.describe()} is {seen} cycles after {latest.what} at "
                                   f"{latest.cycle}; {rule} needs {need}")

    # -- addresses ---------------------------------------------------------------------------

    def bank_ok(self, cmd):
        return 0 <= cmd.bank < self.config.banks

    def buf_ok(self, cmd):
        return 0 <= cmd.buf < self.config.row_buffers

    def banks_of(self, cmd):
        """The banks ``cmd`` touches: all for an all-bank command or REF, its own when it is
        in range, none otherwise."""
        if cmd.name in ALL_BANK or cmd.name == "REF":
            return list(range(self.config.banks))
        return [cmd.bank] if self.bank_ok(cmd) else []

    def groups_of(self, banks):
        return sorted({self.config.group(b) for b in banks})

    def check_range(self, cmd):
        cfg = self.config
        limits = {"bank": ("bank", cmd.bank, cfg.banks, "banks"),
                  "buf": ("buf", cmd.buf, cfg.row_buffers, "row_buffers"),
                  "row": ("row", cmd.row, cfg.rows, "rows"),
                  "col": ("col", cmd.col, cfg.columns, "columns"),
                  "gb": ("col", cmd.col, cfg.gb_columns, "gb_columns")}
        bad = [f"{field} {value} is out of range ({name} {limit})"
               for field, value, limit, name in (limits[u] for u in _ADDRESS.get(cmd.name, ()))
               if not 0 <= value < limit]
        if bad:
            self.report(cmd, "range", f"{cmd.describe()}: " + ", ".join(bad))

    # -- one command -------------------------------------------------------------------------

    def step(self, cmd):
        if cmd.name == "NOP":
            return
        if self.last_cycle is not None and cmd.cycle <= self.last_cycle:
            self.report(cmd, "bus", f"{cmd.describe()} is not after the previous command at "
                                    f"{self.last_cycle} (one command per cycle)")
        self.last_cycle = cmd.cycle
        self.check_range(cmd)
        self.wait(cmd, "tRFC", [self.last_ref])
        if cmd.base == "ACT":
            self.activate(cmd)
        elif cmd.base == "PRE":
            self.precharge(cmd)
        elif cmd.base in COLUMN:
            self.column(cmd)
        elif cmd.name == "REF":
            self.refresh(cmd)
        # WR_GB, WR_BIAS, AF, RD_MAC, RD_AF do not touch the array: tRFC only

    def activate(self, cmd):
        banks = self.banks_of(cmd)
        if self.buf_ok(cmd):
            self.check_act_state(cmd, banks)
            self.wait(cmd, "tRP", [self.buffers[b][cmd.buf].pre for b in banks])
        self.wait(cmd, "tRC", [self.bank_act[b] for b in banks])
        groups = self.groups_of(banks)
        self.wait(cmd, "tRRD_L", [self.group_act[g] for g in groups])
        self.wait(cmd, "tRRD_S", [self.channel_act])
        weight = FAW_WEIGHT[cmd.name]
        self.check_faw(cmd, weight)
        stamp = _Stamp(cmd.cycle, cmd.describe())
        for b in banks:
            if self.buf_ok(cmd):
                self.buffers[b][cmd.buf].row = cmd.row
                self.buffers[b][cmd.buf].act = stamp
            self.bank_act[b] = stamp
        for g in groups:
            self.group_act[g] = stamp
        self.channel_act = stamp
        self.activations.append(_Activation(cmd.cycle, weight, stamp))

    def check_act_state(self, cmd, banks):
        opened = [(b, self.buffers[b][cmd.buf].row) for b in banks
                  if self.buffers[b][cmd.buf].row is not None]
        if opened:
            where = ", ".join(f"bank {b} row {r}" for b, r in opened)
            self.report(cmd, "act_open", f"{cmd.describe()} while buf {cmd.buf} is open "
                                         f"({where})")
        if self.config.row_buffers == 2:
            other = 1 - cmd.buf
            twins = [b for b in banks if self.buffers[b][other].row == cmd.row]
            if twins:
                self.report(cmd, "act_twin", f"{cmd.describe()} while buf {other} holds row "
                                             f"{cmd.row} open in bank "
                                             f"{', '.join(map(str, twins))}")

    def check_faw(self, cmd, weight):
        t_faw = self.timing.tFAW
        self.activations = [a for a in self.activations if a.cycle > cmd.cycle - t_faw]
        window = sorted((a for a in self.activations if a.cycle < cmd.cycle),
                        key=lambda a: a.cycle, reverse=True)
        count = weight + sum(a.weight for a in window)
        if count <= FAW_LIMIT:
            return
        a = _faw_culprit(window, weight)
        self.report(cmd, "tFAW", f"{cmd.describe()} is {cmd.cycle - a.cycle} cycles after "
                                 f"{a.stamp.what} at {a.cycle}, {count} activations in the "
                                 f"window (ACT_AB weighs {FAW_WEIGHT['ACT_AB']}, at most "
                                 f"{FAW_LIMIT}); tFAW needs {t_faw}")

    def precharge(self, cmd):
        banks = self.banks_of(cmd)
        if not banks or not self.buf_ok(cmd):
            return          # address out of range: reported, nothing to close
        closing = [b for b in banks if self.buffers[b][cmd.buf].row is not None]
        if not closing:
            where = "in every bank" if cmd.name == "PRE_AB" else ""
            self.report(cmd, "pre_closed", f"{cmd.describe()} while buf {cmd.buf} is closed "
                                           f"{where}".rstrip())
            return
        buffers = [self.buffers[b][cmd.buf] for b in closing]
        self.wait(cmd, "tRAS", [buf.act for buf in buffers])
        self.wait(cmd, "tRTP", [buf.read for buf in buffers])
        self.wait(cmd, "tWR", [buf.write for buf in buffers])
        stamp = _Stamp(cmd.cycle, cmd.describe())
        for buf in buffers:
            buf.row = None
            buf.pre = stamp

    def column(self, cmd):
        banks = self.banks_of(cmd)
        if banks and self.buf_ok(cmd):
            if cmd.name in ALL_BANK:
                self.check_same_rows(cmd, banks)
            elif self.buffers[cmd.bank][cmd.buf].row is None:
                self.report(cmd, "closed_row", f"{cmd.describe()} on a closed buffer")
            self.wait(cmd, TRCD[cmd.base], [self.buffers[b][cmd.buf].act for b in banks])
        groups = self.groups_of(banks)
        self.wait(cmd, "tCCD_L", [self.group_column[g] for g in groups])
        self.wait(cmd, "tCCD_S", [self.channel_column])
        stamp = _Stamp(cmd.cycle, cmd.describe())
        if self.buf_ok(cmd):
            for b in banks:
                if cmd.base == "WR":
                    self.buffers[b][cmd.buf].write = stamp
                else:
                    self.buffers[b][cmd.buf].read = stamp
        for g in groups:
            self.group_column[g] = stamp
        self.channel_column = stamp

    def check_same_rows(self, cmd, banks):
        rows = [self.buffers[b][cmd.buf].row for b in banks]
        if None in rows or len(set(rows)) > 1:
            shown = ", ".join("-" if r is None else str(r) for r in rows)
            self.report(cmd, "abk_rows", f"{cmd.describe()} while buf {cmd.buf} does not hold "
                                         f"one row open in every bank (rows by bank: {shown})")

    def refresh(self, cmd):
        if not self.config.refresh:
            self.report(cmd, "refresh_off", f"{cmd.describe()} but the block is built without "
                                            f"refresh")
        opened = [(b, u) for b, bufs in enumerate(self.buffers) for u, buf in enumerate(bufs)
                  if buf.row is not None]
        if opened:
            where = ", ".join(f"bank {b} buf {u}" for b, u in opened)
            self.report(cmd, "ref_open", f"{cmd.describe()} while row buffers are open "
                                         f"({where})")
        self.wait(cmd, "tRP", [buf.pre for bufs in self.buffers for buf in bufs])
        self.wait(cmd, "tRC", self.bank_act)
        self.last_ref = _Stamp(cmd.cycle, cmd.describe())
        self.ref_cycles.append((cmd.cycle, cmd.index))


def _faw_culprit(window, weight):
    """The activation of ``window`` (most recent first) that pushes the weighted count of an
    activation of ``weight`` past ``FAW_LIMIT``: the one the new activation must be tFAW
    after."""
    total = weight
    for activation in window:
        total += activation.weight
        if total > FAW_LIMIT:
            return activation
    raise AssertionError("the window is within the limit")


# -- refresh rate -----------------------------------------------------------------------------


def _refresh_gaps(ref_cycles, end, t_refi):
    """``refresh_gap`` violations: REF-to-REF (from reset, to ``end``) distances above
    ``MAX_GAP_INTERVALS x tREFI``."""
    limit = MAX_GAP_INTERVALS * t_refi
    out, previous, since = [], 0, "reset"
    for cycle, index in ref_cycles:
        if cycle - previous > limit:
            out.append(Violation(cycle, index, "refresh_gap",
                                 f"cycle {cycle}: REF is {cycle - previous} cycles after "
                                 f"{since}; refresh_gap allows at most {MAX_GAP_INTERVALS} x "
                                 f"tREFI = {limit}"))
        previous, since = cycle, f"the REF at {cycle}"
    if end - previous > limit:
        out.append(Violation(end, None, "refresh_gap",
                             f"cycle {end}: the run ends {end - previous} cycles after {since}; "
                             f"refresh_gap allows at most {MAX_GAP_INTERVALS} x tREFI = "
                             f"{limit}"))
    return out


def _refresh_debt(ref_cycles, end, t_refi):
    """The first ``refresh_debt`` violation, if any: at ``t = k x tREFI`` (the only cycles
    where the debt grows) the ``(k - MAX_POSTPONED)``-th REF must have issued at or before
    ``t``."""
    cycles = sorted(c for c, _ in ref_cycles)
    k = MAX_POSTPONED + 1
    while k * t_refi <= end:
        needed = k - MAX_POSTPONED
        if len(cycles) < needed or cycles[needed - 1] > k * t_refi:
            t = k * t_refi
            issued = sum(1 for c in cycles if c <= t)
            return [Violation(t, None, "refresh_debt",
                              f"cycle {t}: {issued} REF issued by cycle {t}; refresh_debt needs "
                              f"at least floor({t} / {t_refi}) - {MAX_POSTPONED} = {needed}")]
        k += 1
    return []


# -- API --------------------------------------------------------------------------------------


def check_trace(trace, config, *, end=None):
    """Every rule the DRAM command ``trace`` of a ``pim`` block with ``config`` (a
    :class:`~accelgen.generators.pim.PimConfig`) breaks, as a list of :class:`Violation` in
    trace order (an empty list: the trace is legal).

    ``trace``: tuples ``(cycle, cmd, bank, buf, row, col)``, ``cmd`` a DRAM command name or
    code. ``end``: the last cycle of the run, up to which the refresh-rate rules are checked
    (default: the last command's cycle)."""
    checker = _Checker(config)
    cycles = []
    for index, (cycle, cmd, bank, buf, row, col) in enumerate(trace):
        command = _Command(index, int(cycle), _command_name(cmd), _as_int(bank), _as_int(buf),
                           _as_int(row), _as_int(col))
        cycles.append(command.cycle)
        checker.step(command)
    if end is None:
        end = cycles[-1] if cycles else 0
    keyed = [((v.index, 0), v) for v in checker.violations]
    if config.refresh:
        t_refi = config.timing.tREFI
        for v in (_refresh_gaps(checker.ref_cycles, end, t_refi)
                  + _refresh_debt(checker.ref_cycles, end, t_refi)):
            if v.index is not None:
                keyed.append(((v.index, 1), v))
            else:       # before the first command later than the failing cycle
                later = next((i for i, c in enumerate(cycles) if c > v.cycle), len(cycles))
                keyed.append(((later, -1), v))
    return [v for _, v in sorted(keyed, key=lambda kv: kv[0])]


def decode_trace(config, words):
    """Payload words of the ``trace`` stream → tuples ``(cycle, cmd name, bank, buf, row,
    col)`` with the wrapping ``counter_width``-bit cycle stamp unwrapped (the cycle only
    increases, so a stamp below the previous one adds ``2**counter_width``; two commands
    ``2**counter_width`` or more cycles apart cannot be told from closer ones)."""
    words = list(words)
    fields = unpack(config.trace_fields, words)
    wrap = 1 << config.counter_width
    out, offset, previous = [], 0, None
    for i in range(len(words)):
        raw = int(fields["cycle"][i])
        if previous is not None and raw < previous:
            offset += wrap
        previous = raw
        out.append((raw + offset, DRAM_COMMANDS[int(fields["cmd"][i])],
                    int(fields["bank"][i]), int(fields["buf"][i]), int(fields["row"][i]),
                    int(fields["col"][i])))
    return out


def summary(violations):
    """``{rule: count}`` of ``violations``."""
    return dict(Counter(v.rule for v in violations))
