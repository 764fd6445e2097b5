"""The analytic cycle model of block ``pim``: when the controller issues each DRAM command of a
program, and the counters it reports, as a pure function of the config (timing preset,
geometry) and the program. Refresh is not modelled cycle by cycle (it depends on the cycle
count since reset); :func:`refresh_budget` bounds what it adds.

The controller is in-order (:mod:`accelgen.generators.pim`): instruction ``i`` enters the issue
stage at cycle ``s_i`` (``s_0`` = 0, the cycle the program's first instruction is there); its
commands ``c_1 .. c_n`` issue at ``t_1 = E(c_1, s_i)``, ``t_j = E(c_j, t_(j-1) + 1)``, where
``E(c, t)`` is the first cycle from ``t`` on that every rule of
:data:`~accelgen.generators.pim.RULES`, the tFAW window and ``tRFC`` allow ``c``; then ``s_(i+1)
= t_n + 1``. An instruction without commands (an error, a PRE of a closed buffer) takes one
cycle: ``s_(i+1) = s_i + 1``. SYNC and EOC complete at ``q = max(s_i, Q, R)``, ``Q`` the cycle
from which no rule constrains any command any more (every timing counter expired) and ``R``
= last read + :data:`~accelgen.generators.pim.READ_LATENCY` + 1 (its ``o`` beat delivered);
then ``s_(i+1) = q + 1``. ``cycles`` of a program = EOC's ``q`` - the cycle of its first DRAM
command (0 if it has none). This holds with every host stream at full rate (``cmd`` valid,
``o``/``rsp`` ready) and refresh off; gaps and backpressure only delay commands.

Closed forms checked against :func:`schedule` in the tests:
:meth:`~accelgen.generators.pim.PimTiming.epoch_cycles` (one all-bank epoch) and
:func:`mac_efficiency`.
"""

from dataclasses import dataclass, field

import numpy as np

from ...generators.pim import READ_LATENCY, RULES

__all__ = ["Scheduler", "Timeline", "Schedule", "schedule", "mac_efficiency", "refresh_budget",
           "KIND"]

CLASSES = ("ACT", "PRE", "RD", "WR", "MAC")
#: DRAM command → the rule class it belongs to (None: it touches no bank array)
KIND = {"ACT": "ACT", "ACT_AB": "ACT", "PRE": "PRE", "PRE_AB": "PRE", "RD": "RD", "WR": "WR",
        "WR_AB": "WR", "MAC": "MAC", "MAC_AB": "MAC"}
ALL_BANK = {"ACT_AB", "PRE_AB", "WR_AB", "MAC_AB"}
READS = {"RD", "RD_MAC", "RD_AF"}


class Scheduler:
    """The timing state of one channel: for every bank, row buffer and command class the first
    cycle the rules allow it (:attr:`ready`), the tFAW window, the ``tRFC`` blackout, the open
    buffers (which banks a PRE_AB closes).

    :meth:`earliest` gives the first cycle a command may issue; :meth:`issue` records it."""

    def __init__(self, config, open_buffers=None):
        self.config = config
        t = config.timing
        self.ready = np.zeros((config.banks, config.row_buffers, len(CLASSES)), np.int64)
        self.faw = [-(1 << 40)] * 4          # expiry cycle of the last four ACT weights
        self.ref_end = 0
        self.last = -1
        self.last_read = None
        # the buffers open when the program starts (a program may begin where the last one
        # left rows open; every timing counter has expired by then: it ended with EOC)
        self.open = np.zeros((config.banks, config.row_buffers), bool) \
            if open_buffers is None else np.array(open_buffers, bool)
        self.issued = []
        groups = np.array([config.group(b) for b in range(config.banks)])
        self._same_group = groups[:, None] == groups[None, :]
        self._rules = {}
        for rule in RULES:
            self._rules.setdefault(rule.before, []).append(
                (rule.scope, CLASSES.index(rule.after), getattr(t, rule.latency)))

    def targets(self, c):
        """Banks command ``c`` touches."""
        if c.cmd in ALL_BANK:
            banks = np.arange(self.config.banks)
            return banks[self.open[:, c.buf]] if c.cmd == "PRE_AB" else banks
        return np.array([c.bank])

    def earliest(self, c, not_before=0):
        """First cycle from ``not_before`` on that ``c`` may issue."""
        t = max(not_before, self.last + 1, self.ref_end)
        kind = KIND.get(c.cmd)
        if kind is not None:
            banks = self.targets(c)
            if len(banks):
                t = max(t, int(self.ready[banks, c.buf, CLASSES.index(kind)].max()))
        if c.cmd == "REF":
            t = max(t, int(self.ready[:, :, CLASSES.index("ACT")].max()))
        if kind == "ACT":
            t = max(t, sorted(self.faw)[self._weight(c) - 1])
        return t

    @staticmethod
    def _weight(c):
        return 4 if c.cmd == "ACT_AB" else 1

    def issue(self, c, t):
        """Record ``c`` issued at cycle ``t`` (``t >= earliest(c)``)."""
        tm = self.config.timing
        kind = KIND.get(c.cmd)
        if kind is not None:
            banks = self.targets(c)
            for scope, after, latency in self._rules.get(kind, ()):
                until = t + latency
                for b in banks:
                    if scope == "buffer":
                        sel = (b, c.buf, after)
                    elif scope == "bank":
                        sel = (b, slice(None), after)
                    elif scope == "group":
                        sel = (self._same_group[b], slice(None), after)
                    else:
                        sel = (slice(None), slice(None), after)
                    self.ready[sel] = np.maximum(self.ready[sel], until)
            if kind == "ACT":
                self.faw = sorted(self.faw)
                for i in range(self._weight(c)):
                    self.faw[i] = t + tm.tFAW
                self.open[banks, c.buf] = True
            elif kind == "PRE":
                self.open[banks, c.buf] = False
        if c.cmd == "REF":
            self.ref_end = t + tm.tRFC
        if c.cmd in READS:
            self.last_read = t
        self.last = t
        self.issued.append((t, c))

    @property
    def quiet(self):
        """First cycle from which no rule constrains any command (``Q``)."""
        return max(int(self.ready.max()), max(self.faw), self.ref_end, self.last + 1)

    @property
    def drained(self):
        """First cycle after the last read's ``o`` beat (``R``)."""
        return 0 if self.last_read is None else self.last_read + READ_LATENCY + 1


@dataclass
class Schedule:
    """What :func:`schedule` computes.

    Members
    -------
    trace : list of (cycle, Command)
        Every DRAM command with its issue cycle (cycle 0 = the first instruction's slot).
    programs : list of dict
        Per EOC: ``cycles``, ``stall_timing`` (cycles an instruction waited for a rule, SYNC
        and EOC waiting included), ``start`` and ``end`` (first command, EOC completion).
    end : int
        The cycle after the last instruction.
    """
    trace: list = field(default_factory=list)
    programs: list = field(default_factory=list)
    end: int = 0


class Timeline:
    """A program being scheduled one instruction at a time: the :class:`Scheduler`, the slot
    cycle ``s`` of the next instruction, and the programs completed so far (:func:`schedule`
    runs a whole program; the GEMV compiler asks it when a command would issue)."""

    def __init__(self, config, open_buffers=None):
        self.sched = Scheduler(config, open_buffers)
        self.s = 0
        self.start = None
        self.stall = 0
        self.programs = []

    def add(self, ins, step):
        """Schedule instruction ``ins`` whose golden-model :class:`Step` is ``step``; returns
        the issue cycles of its commands."""
        sched, times = self.sched, []
        if step.commands:
            t = self.s
            for c in step.commands:
                issue = sched.earliest(c, t)
                if self.start is not None:      # waits before the program's first command
                    self.stall += issue - t     # are not the program's
                else:
                    self.start = issue
                sched.issue(c, issue)
                times.append(issue)
                t = issue + 1
            self.s = t
        elif ins.name in ("SYNC", "EOC") and not step.err:
            done = max(self.s, sched.quiet, sched.drained)
            if self.start is not None:
                self.stall += done - self.s
            if ins.name == "EOC":
                self.programs.append({"cycles": 0 if self.start is None else done - self.start,
                                      "stall_timing": self.stall, "start": self.start,
                                      "end": done})
                self.start, self.stall = None, 0
            self.s = done + 1
        else:
            self.s += 1
        return times

    def earliest(self, command):
        """When ``command`` would issue as the next instruction's first command."""
        return self.sched.earliest(command, self.s)


def schedule(config, instrs, steps, open_buffers=None):
    """Issue cycles of the commands of ``instrs`` (run by the golden model into ``steps``,
    :meth:`~accelgen.sim.golden.pim.Model.program`) and each program's counters;
    ``open_buffers`` (``banks x row_buffers`` bools, the model's ``open`` before the program)
    when it starts with rows open (default: all closed, as after a reset)."""
    line = Timeline(config, open_buffers)
    for ins, step in zip(instrs, steps):
        line.add(ins, step)
    return Schedule(trace=line.sched.issued, programs=line.programs, end=line.s)


def mac_efficiency(config, macs, cycles):
    """``macs x tCCD_L / (banks x lanes x cycles)``: the fraction of the channel's peak
    in-bank MAC rate a run reached."""
    if not cycles:
        return 0.0
    return macs * config.timing.tCCD_L / (config.banks * config.lanes * cycles)


def refresh_budget(config, cycles):
    """Most cycles refresh can add to a run of ``cycles`` cycles (refresh off): at most
    ``ceil((cycles + budget) / tREFI) + 1`` REF, each costing its ``tRFC`` plus a forced
    close and re-open (``tRTP``/``tWR``/``tRAS`` to close, ``tRP`` to refresh, and per
    re-opened buffer ``max(tRRD_L, tFAW / 4)`` + ``tRCD_MAC``), iterated to a fixed point."""
    t = config.timing
    per = (t.tRFC + max(t.tRTP, t.tWR, t.tRAS) + t.tRP + t.tRC
           + config.banks * config.row_buffers * max(t.tRRD_L, -(-t.tFAW // 4)) + t.tRCD_MAC)
    budget = 0
    for _ in range(8):
        refs = -(-(cycles + budget) // t.tREFI) + 1
        budget = refs * per
    return budget
