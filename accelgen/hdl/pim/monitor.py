"""An independent monitor of the DRAM command stream, built only inside a proof
(:func:`accelgen.hdl.common.formal.active`): it asserts every timing rule of the rule table
(:mod:`accelgen.generators.pim`) on the commands the controller drives to the bank model,
without looking at the timing engine that schedules them.

It reads the rules as the trace checker :mod:`accelgen.sim.golden.pim_check` does and keeps
its own state, so a wrong counter in :class:`~accelgen.hdl.pim.timing.TimingEngine` (a wrong
load, a wrong scope, a tFAW slot freed early) breaks one of its properties:

::

    dram (valid, cmd, bank, buf) ──► decode: which banks / buffers / groups each command
                                     class touches (ACT_AB, WR_AB, MAC_AB: every bank;
                                     PRE / PRE_AB: only the buffers it closes; REF: the
                                     REF waits and tRFC only)
                 ├─► since[rule key][scope]  count UP from 1 after a `before` command in the
                 │                           scope, saturate at the latency: `after` needs
                 │                           since >= latency
                 ├─► faw_age[0..3]           age of the four most recent activations (an
                 │                           ACT_AB is four): ACT needs age[3] >= tFAW,
                 │                           ACT_AB age[0] >= tFAW
                 ├─► since_ref (tRFC)         no command while < tRFC
                 ├─► refresh_gap              cycles since reset or the last REF <= 9 x tREFI
                 └─► refresh_debt             REFs owed (one per tREFI from reset) minus
                                              REFs issued <= 8

Timing of a count: a ``before`` command in cycle ``t`` makes ``since`` read 1 in cycle
``t + 1`` and the latency ``L`` from cycle ``t + L`` on, the first cycle the rule lets
``after`` issue. Before any ``before`` command the count reads ``L`` (no constraint).
Registers: one count of ``ceil(log2(L + 1))`` bits per rule key (scope, before, latency)
and scope instance, four tFAW ages, the tRFC count and, with refresh, the gap count, the
tREFI phase and the refresh balance.
"""

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal

from ...generators.pim import DRAM_COMMANDS, MAX_POSTPONED, RULES
from ..common import formal

__all__ = ["TimingMonitor", "CLASS_COMMANDS"]

#: the DRAM commands that count as each rule class (an all-bank command is that command on
#: every bank at once)
CLASS_COMMANDS = {"ACT": ("ACT", "ACT_AB"), "PRE": ("PRE", "PRE_AB"), "RD": ("RD",),
                  "WR": ("WR", "WR_AB"), "MAC": ("MAC", "MAC_AB")}
#: how a property's name says which commands a rule relates
_SCOPE_WORDS = {"buffer": "same row buffer", "bank": "same bank", "group": "same bank group",
                "channel": "any banks"}
#: most activations (an ACT_AB weighs four) in one tFAW window
_FAW_LIMIT = 4


class TimingMonitor(Elaboratable):
    """Timing properties (family ``timing``) of the command stream ``valid`` / ``payload``
    (a view with ``cmd``, ``bank`` and ``buf``), for a channel built with ``config``. Build
    it only inside a proof: it is all registers and assertions.

    Members
    -------
    config : PimConfig
    valid : Signal
        A command issues this cycle.
    payload : View
        The command (``dram_fields``).
    open : list (banks) of list (row_buffers) of Signal, out
        The monitor's own open-buffer table, as the commands so far left it (ACT / ACT_AB
        open a buffer, PRE / PRE_AB close it, REF changes nothing); a PRE or PRE_AB checks
        and restarts buffer timing only where it closes a buffer.
    """

    def __init__(self, config, valid, payload):
        self.config, self.valid, self.payload = config, valid, payload
        self.open = [[Signal(name=f"mon_open_b{b}_u{u}") for u in range(config.row_buffers)]
                     for b in range(config.banks)]

    # -- decoding -----------------------------------------------------------------------------

    def _is(self, *names):
        """A command named in ``names`` issues this cycle."""
        codes = [self.payload.cmd == DRAM_COMMANDS.index(n) for n in names]
        return self.valid & Cat(codes).any()

    def _bank_hit(self, cls, b, is_open):
        """A command of class ``cls`` touches bank ``b`` this cycle; a PRE only where the
        buffer it names is open (a PRE of a closed buffer is a no-op for the array)."""
        single, *every = CLASS_COMMANDS[cls]
        hit = self._is(*every) | (self._is(single) & (self.payload.bank == b))
        if cls == "PRE":
            hit = hit & Cat(is_open[b][u] & (self.payload.buf == u)
                            for u in range(self.config.row_buffers)).any()
        return hit

    def _hits(self, cls, is_open):
        """``{scope: {instance: hit}}`` of class ``cls`` this cycle: instances are ``(b, u)``
        (buffer), ``b`` (bank), group index (group) and ``0`` (channel)."""
        cfg = self.config
        bank = {b: self._bank_hit(cls, b, is_open) for b in range(cfg.banks)}
        buffer = {(b, u): bank[b] & (self.payload.buf == u)
                  for b in range(cfg.banks) for u in range(cfg.row_buffers)}
        group = {g: Cat(bank[b] for b in range(cfg.banks) if cfg.group(b) == g).any()
                 for g in range(cfg.bank_groups)}
        return {"buffer": buffer, "bank": bank, "group": group,
                "channel": {0: self._is(*CLASS_COMMANDS[cls])}}

    # -- state --------------------------------------------------------------------------------

    def _open_table(self, m):
        """Update :attr:`open` from the command stream."""
        is_open = self.open
        act = self._hits("ACT", is_open)["buffer"]
        pre = self._hits("PRE", is_open)["buffer"]
        for (b, u), opened in act.items():
            m.d.sync += is_open[b][u].eq(opened | (is_open[b][u] & ~pre[b, u]))
        return is_open

    @staticmethod
    def _since(m, name, start, latency):
        """A count of the cycles since ``start`` was last high, from 1 in the cycle after it,
        saturating at ``latency`` (its value before any start)."""
        since = Signal(range(latency + 1), init=latency, name=name)
        m.d.sync += since.eq(Mux(start, 1, Mux(since == latency, latency, since + 1)))
        return since

    # -- properties ---------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        t = self.config.timing
        is_open = self._open_table(m)
        hits = {cls: self._hits(cls, is_open) for cls in CLASS_COMMANDS}
        counts = {}
        for rule in RULES:
            key = (rule.scope, rule.before, rule.latency)
            if key not in counts:
                counts[key] = {
                    inst: self._since(m, f"mon_{rule.before}_{rule.latency}_{rule.scope}"
                                         f"{_suffix(inst)}", start, getattr(t, rule.latency))
                    for inst, start in hits[rule.before][rule.scope].items()}
            self._rule(m, rule, hits[rule.after][rule.scope], counts[key])
        self._refresh_waits(m, counts)
        self._faw(m)
        self._rfc_and_gap(m)
        return m

    def _rule(self, m, rule, after_hits, counts):
        """``after`` never issues in a scope instance whose count is below the latency."""
        latency = getattr(self.config.timing, rule.latency)
        early = Cat(after_hits[inst] & (counts[inst] < latency) for inst in counts).any()
        formal.check(m, f"{rule.latency}: {rule.after} {latency}+ cycles after {rule.before} "
                        f"({_SCOPE_WORDS[rule.scope]})", "timing", ~early)

    def _refresh_waits(self, m, counts):
        """A REF waits as an ACT to every bank would: ``tRP`` after the PRE that closed each
        buffer, ``tRC`` after each bank's latest ACT."""
        t = self.config.timing
        ref = self._is("REF")
        for rule_key, latency in ((("buffer", "PRE", "tRP"), "tRP"),
                                  (("bank", "ACT", "tRC"), "tRC")):
            need = getattr(t, latency)
            early = Cat(c < need for c in counts[rule_key].values()).any()
            formal.check(m, f"{latency}: REF {need}+ cycles after {rule_key[1]} (every "
                            f"{rule_key[0]})", "timing", ~(ref & early))

    def _faw(self, m):
        """At most four activations in any tFAW window: the ages (cycles since, saturating
        at tFAW) of the four most recent ones, newest first; an ACT needs the fourth newest
        tFAW old, an ACT_AB (four activations) the newest."""
        t_faw = self.config.timing.tFAW
        ages = [Signal(range(t_faw + 1), init=t_faw, name=f"mon_faw_age{i}")
                for i in range(_FAW_LIMIT)]
        act, act_ab = self._is("ACT"), self._is("ACT_AB")
        for i, age in enumerate(ages):
            older = Mux(age == t_faw, t_faw, age + 1)
            shifted = 1 if i == 0 else Mux(ages[i - 1] == t_faw, t_faw, ages[i - 1] + 1)
            m.d.sync += age.eq(Mux(act_ab, 1, Mux(act, shifted, older)))
        early = (act & (ages[-1] < t_faw)) | (act_ab & (ages[0] < t_faw))
        formal.check(m, f"tFAW: no more than {_FAW_LIMIT} ACT in any {t_faw} cycles (ACT_AB "
                        f"counts {_FAW_LIMIT})", "timing", ~early)

    def _rfc_and_gap(self, m):
        """No command within ``tRFC`` of a REF; with refresh, never more than ``(MAX_POSTPONED
        + 1) x tREFI`` cycles from reset to the first REF or between two REFs (checked in
        every cycle, so also from the last REF to now); without it, no REF at all."""
        cfg, t = self.config, self.config.timing
        ref = self._is("REF")
        any_command = self.valid & (self.payload.cmd != DRAM_COMMANDS.index("NOP"))
        since_ref = self._since(m, "mon_since_ref_tRFC", ref, t.tRFC)
        formal.check(m, f"tRFC: no command within {t.tRFC} cycles of a REF", "timing",
                     ~(any_command & (since_ref < t.tRFC)))
        if not cfg.refresh:
            formal.check(m, "REF only when built with refresh", "timing", ~ref)
            return
        limit = (MAX_POSTPONED + 1) * t.tREFI
        gap = Signal(range(limit + 2), name="mon_refresh_gap")
        m.d.sync += gap.eq(Mux(ref, 1, Mux(gap > limit, gap, gap + 1)))
        formal.check(m, f"refresh: no more than {MAX_POSTPONED + 1} x tREFI = {limit} cycles "
                        f"from reset or a REF to the next REF", "timing", gap <= limit)
        self._debt(m, ref)

    def _debt(self, m, ref):
        """pim_check's ``refresh_debt``: at every cycle ``t`` (counted from the cycle after
        reset), ``floor(t / tREFI)`` (one REF owed per tREFI) minus the REFs issued at cycles
        ``<= t`` is at most ``MAX_POSTPONED``. ``balance`` holds the owed count minus the REFs
        of the cycles before ``t``, kept within ``-(MAX_POSTPONED + 1)`` (a controller that
        refreshed that far ahead would be flagged wrongly; this one issues a REF only when
        one is owed) and ``MAX_POSTPONED + 1`` (already a violation)."""
        t_refi = self.config.timing.tREFI
        phase = Signal(range(t_refi), name="mon_refi_phase")        # t mod tREFI
        m.d.sync += phase.eq(Mux(phase == t_refi - 1, 0, phase + 1))
        bound = MAX_POSTPONED + 1
        balance = Signal(range(-bound, bound + 1), name="mon_refresh_balance")
        after = balance - ref + (phase == t_refi - 1)                # balance at t + 1
        m.d.sync += balance.eq(Mux(after > bound, bound, Mux(after < -bound, -bound, after)))
        formal.check(m, f"refresh: REFs owed (one per tREFI = {t_refi} cycles) minus REFs "
                        f"issued never above {MAX_POSTPONED}", "timing",
                     balance - ref <= MAX_POSTPONED)

def _suffix(inst):
    """Signal-name suffix of a scope instance."""
    if isinstance(inst, tuple):
        return f"_b{inst[0]}_u{inst[1]}"
    return f"_{inst}"

