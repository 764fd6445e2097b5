"""The controller's timing engine: the rule table
(:data:`accelgen.generators.pim.RULES`, each ``(scope, before, after, latency)``) compiled at
elaboration into one down-counter per bank, row buffer and command class, plus the tFAW window
and the ``tRFC`` blackout.

::

    issue (kind, target banks, buffer) ──► for every (bank b, buffer u, class F):
                                           cnt[b][u][F] <= max(cnt - 1, L - 1)
                                           where L = the largest latency of the rules
                                           (scope, kind, F, L) whose scope relates (b, u)
                                           to a target; 0 when none does
    ready(F, banks, u) = every cnt[b][u][F] of those banks is 0

A command issued in cycle ``t`` with a rule of latency ``L`` on a following command lets that
command issue from cycle ``t + L`` on: the counter reads ``L - 1`` in cycle ``t + 1`` and 0 in
cycle ``t + L``. Counter widths follow the largest latency, so the engine holds
``banks x row_buffers x 5`` counters of ``ceil(log2(max latency))`` bits.
"""

from amaranth.hdl import Array, Cat, Const, Elaboratable, Module, Mux, Signal

from ...generators.pim import RULES
from ..common import formal

__all__ = ["TimingEngine", "CLASSES"]

CLASSES = ("ACT", "PRE", "RD", "WR", "MAC")
#: the planted timing bug (``accelgen prove pim --mutant trcd-rd-short``): caught by the
#: ``timing`` properties of :mod:`accelgen.hdl.pim.monitor`
MUTANT = "trcd-rd-short"


class TimingEngine(Elaboratable):
    """Counters of the rule table.

    Members
    -------
    issue : Signal, in
        A command issues this cycle.
    kind : Signal(range(len(CLASSES) + 1)), in
        Its rule class (index into :data:`CLASSES`; ``len(CLASSES)`` for a command without
        one: REF and the commands that touch no array).
    targets : Signal(banks), in
        The banks it touches (one-hot for a single-bank command).
    buf : Signal, in
        Its row buffer.
    weight4 : Signal, in
        An all-bank ACT (counts four in the tFAW window).
    refresh : Signal, in
        The command is a REF (starts the ``tRFC`` blackout).
    zero : list (banks) of list (row_buffers) of list (classes) of Signal, out
        ``cnt[b][u][F] == 0``.
    faw_free : Signal(range(5)), out
        tFAW slots free this cycle.
    blackout : Signal, out
        Inside ``tRFC`` of a REF: no command may issue.
    quiet : Signal, out
        Every counter, the window and the blackout expired.
    """

    def __init__(self, config):
        self.config = config
        cfg = config
        self.issue = Signal()
        self.kind = Signal(range(len(CLASSES) + 1))
        self.targets = Signal(cfg.banks)
        self.buf = Signal(range(max(2, cfg.row_buffers)))
        self.weight4 = Signal()
        self.refresh = Signal()
        self.faw_free = Signal(range(5))
        self.blackout = Signal()
        self.quiet = Signal()
        self.zero = [[[Signal(name=f"ready_b{b}_u{u}_{c}") for c in CLASSES]
                      for u in range(cfg.row_buffers)] for b in range(cfg.banks)]

    def _load(self, b, u, after):
        """The latency an issue this cycle sets for (b, u, after) (0: none)."""
        cfg, t = self.config, self.config.timing
        terms = []
        group = [x for x in range(cfg.banks) if cfg.group(x) == cfg.group(b)]
        # largest latency first: the first rule that hits gives the load (a priority chain of
        # constants, not a tree of comparators)
        for rule in sorted(RULES, key=lambda r: -getattr(t, r.latency)):
            if rule.after != after:
                continue
            if rule.scope == "buffer":
                related = self.targets[b] & (self.buf == u)
            elif rule.scope == "bank":
                related = self.targets[b]
            elif rule.scope == "group":
                related = self.targets.any() if len(group) == cfg.banks else \
                    sum(self.targets[x] for x in group) != 0
            else:
                related = self.targets.any()
            hit = self.issue & (self.kind == CLASSES.index(rule.before)) & related
            terms.append((hit, getattr(t, rule.latency) - _planted(rule)))
        load = 0
        for hit, latency in reversed(terms):
            load = Mux(hit, latency, load)
        return load

    def elaborate(self, platform):
        m = Module()
        cfg, t = self.config, self.config.timing
        longest = max(getattr(t, r.latency) for r in RULES)
        zeros = []
        for b in range(cfg.banks):
            for u in range(cfg.row_buffers):
                for f, cls in enumerate(CLASSES):
                    cnt = Signal(range(longest), name=f"cnt_b{b}_u{u}_{cls}")
                    load = Signal(range(longest + 1), name=f"load_b{b}_u{u}_{cls}")
                    m.d.comb += load.eq(self._load(b, u, cls))
                    dec = Mux(cnt == 0, 0, cnt - 1)
                    m.d.sync += cnt.eq(Mux(load > cnt, load - 1, dec))
                    m.d.comb += self.zero[b][u][f].eq(cnt == 0)
                    zeros.append(cnt == 0)

        # tFAW: four slots, each counting down from tFAW - 1 after an ACT took it
        slots = [Signal(range(t.tFAW), name=f"faw{i}") for i in range(4)]
        free = [s == 0 for s in slots]
        m.d.comb += self.faw_free.eq(sum(free))
        is_act = self.issue & (self.kind == CLASSES.index("ACT"))
        for i, s in enumerate(slots):
            # a weight-1 ACT takes the first free slot; an all-bank ACT takes all four
            first_free = free[i] & ~_any(free[:i])
            take = is_act & (self.weight4 | first_free)
            m.d.sync += s.eq(Mux(take, t.tFAW - 1, Mux(s == 0, 0, s - 1)))

        blackout = Signal(range(t.tRFC), name="rfc")
        m.d.sync += blackout.eq(Mux(self.issue & self.refresh, t.tRFC - 1,
                                    Mux(blackout == 0, 0, blackout - 1)))
        m.d.comb += self.blackout.eq(blackout != 0)
        m.d.comb += self.quiet.eq(_all(zeros) & _all(free) & (blackout == 0))
        return m

    def ready(self, cls, banks_mask, buf):
        """Value: every counter of class ``cls`` on the banks of ``banks_mask`` (a Value of
        ``banks`` bits) in buffer ``buf`` (a Value) is 0."""
        cfg = self.config
        f = CLASSES.index(cls)
        ok = []
        for b in range(cfg.banks):
            per_buf = Array(self.zero[b][u][f] for u in range(cfg.row_buffers))
            ok.append(~banks_mask[b] | per_buf[buf] if cfg.row_buffers > 1
                      else ~banks_mask[b] | self.zero[b][0][f])
        return _all(ok)

    def all_ready(self, cls):
        """Every counter of class ``cls`` on every bank and buffer is 0 (a REF waits so)."""
        f = CLASSES.index(cls)
        return _all(self.zero[b][u][f] for b in range(self.config.banks)
                    for u in range(self.config.row_buffers))


def _planted(rule):
    """1 for the rule the proof's mutant ``trcd-rd-short`` shortens (ACT → RD loads
    ``tRCD_RD - 1``: an RD may issue one cycle early), else 0 (always outside a proof)."""
    return int(rule.latency == "tRCD_RD" and formal.mutant(MUTANT))


def _any(values):
    """OR of one-bit values (one reduction cell, not a chain of ``|``: deep chains exhaust
    Python's recursion limit on wide configs)."""
    values = list(values)
    return Cat(values).any() if values else Const(0)


def _all(values):
    values = list(values)
    return Cat(values).all() if values else Const(1)
