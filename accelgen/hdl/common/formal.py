"""Formal properties as reusable Amaranth helpers: stream contract, bounded counter, FIFO
occupancy, and planted bugs (mutants) that show each property can fail.

The helpers add ``Assert``/``Assume`` statements only while a proof is being elaborated
(inside :func:`proving`); otherwise they add nothing, so the Verilog that ``accelgen emit``
writes is the same with or without them. A block's hardware calls :func:`counter` and
:func:`occupancy` where its counters and FIFOs are updated; the proof harness
(:mod:`accelgen.formal.harness`) applies :func:`stream_rules` to every stream port. Checking
hardware with registers of its own (a monitor) is built only when :func:`active` says so.

Each property has a name that is unique within one proof. Its ``Assert`` carries the name in
its source location (``accelgen-property/<name>``), which the SymbiYosys summary prints for a
failed assertion; that is how :mod:`accelgen.formal.prove` maps a counterexample back to the
property.

Every assertion holds vacuously in a cycle with the synchronous reset high: properties are
about the running block, and the harness assumes reset in the first cycle.
"""

import contextlib
import contextvars
from dataclasses import dataclass, field

from amaranth.hdl import Assert, Assume, Cat, Cover, ResetSignal, Signal

__all__ = ["FAMILIES", "Proof", "proving", "active", "mutant", "check", "assume", "cover",
           "stream_rules", "counter", "occupancy", "SRC_PREFIX", "COVER_PREFIX"]

#: property families: what each one states
FAMILIES = {
    "stream": "valid held high with a stable payload until ready",
    "reset": "no output valid after reset before any input",
    "beats": "output beats never outnumber input beats; in flight within the capacity",
    "counter": "a counter's next value stays within its documented range (no wrap)",
    "fifo": "a FIFO or credit counter never overflows or underflows",
    "timing": "no command issues before its timing constraint expires; refresh within its "
              "interval bound",
}
#: source-location prefix of an accelgen property's Assert (what SymbiYosys reports)
SRC_PREFIX = "accelgen-property/"
#: the same for a reachability goal's Cover
COVER_PREFIX = "accelgen-cover/"


@dataclass
class Proof:
    """The properties one proof elaborates.

    Members
    -------
    disabled : frozenset of str
        Names of properties left out (the induction loop drops the ones that are not
        inductive and proves the rest).
    mutant : str or None
        The planted bug that :func:`mutant` reports active.
    family : str or None
        When given, only this family's properties are checked (a mutant is shown to the family
        that must catch it); the others are left out like disabled ones.
    properties : dict
        ``{name: family}`` of every property met during elaboration, disabled ones included.
    """
    disabled: frozenset = frozenset()
    mutant: str = None
    family: str = None
    properties: dict = field(default_factory=dict)

    def register(self, name, family):
        if family not in FAMILIES:
            raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
        unique, n = name, 2
        while unique in self.properties:
            unique, n = f"{name} #{n}", n + 1
        self.properties[unique] = family
        return unique

    def checks(self, name):
        """Whether property ``name`` (registered) goes into the design."""
        return name not in self.disabled and self.family in (None, self.properties[name])


_ACTIVE = contextvars.ContextVar("accelgen_formal_proof", default=None)


@contextlib.contextmanager
def proving(*, disabled=(), mutant=None, family=None):
    """Elaborate with the properties on (and ``mutant`` planted); yields the :class:`Proof`."""
    proof = Proof(disabled=frozenset(disabled), mutant=mutant, family=family)
    token = _ACTIVE.set(proof)
    try:
        yield proof
    finally:
        _ACTIVE.reset(token)


def active():
    """Whether a proof is being elaborated. Hardware that exists only to be checked (a
    monitor with registers of its own) is built only then, so the emitted Verilog stays the
    same with or without it."""
    return _ACTIVE.get() is not None


def mutant(name):
    """Whether the proof being elaborated plants the bug ``name`` (never outside a proof).
    Hardware uses it to plant a bug at the site it names, e.g. an off-by-one initial credit."""
    proof = _ACTIVE.get()
    return proof is not None and proof.mutant == name


def check(m, name, family, test):
    """Assert ``test`` (outside reset) as property ``name`` of ``family``; a no-op outside a
    proof. Returns the unique name given, or None."""
    proof = _ACTIVE.get()
    if proof is None:
        return None
    unique = proof.register(name, family)
    if proof.checks(unique):
        statement = Assert(ResetSignal() | test)
        # SymbiYosys names a failed assertion by its source location: make it the name
        statement.src_loc = (SRC_PREFIX + unique, 0)
        m.d.comb += statement
    return unique


def cover(m, name, test):
    """A reachability goal ``name``: a state where ``test`` holds (outside reset). The
    proof's cover run reports the first cycle it can happen, which says whether the bounded
    check's depth reaches it; a no-op outside a proof."""
    if _ACTIVE.get() is not None:
        statement = Cover(~ResetSignal() & test)
        statement.src_loc = (COVER_PREFIX + name, 0)
        m.d.comb += statement


def assume(m, test):
    """Assume ``test`` (outside reset) about the environment; a no-op outside a proof."""
    if _ACTIVE.get() is not None:
        m.d.comb += Assume(ResetSignal() | test)


def stream_rules(m, name, stream, *, produced):
    """The ready/valid rules on ``stream`` (an ``amaranth.lib.stream`` interface): once
    ``valid`` is high it stays high, with the same payload, until the cycle ``ready`` takes
    the beat. Asserted when the design drives the stream (``produced``), assumed of the
    environment otherwise. Returns the register that is high when the previous cycle
    stalled (valid and not ready)."""
    stalled = Signal(name=f"{name}_stalled_before")
    payload = Cat(stream.payload)
    held = Signal(len(payload), name=f"{name}_payload_before")
    m.d.sync += [stalled.eq(stream.valid & ~stream.ready), held.eq(payload)]
    valid_kept = ~stalled | stream.valid
    payload_kept = ~stalled | (payload == held)
    if produced:
        check(m, f"{name}: valid stays high until ready", "stream", valid_kept)
        check(m, f"{name}: payload stable until ready", "stream", payload_kept)
    else:
        assume(m, valid_kept & payload_kept)
    return stalled


def counter(m, name, next_value, *, lo=0, hi, family="counter"):
    """Assert that ``next_value``, the update of a counter written at full width (before it
    is truncated to the register, e.g. ``credit - claim + back``), stays within
    ``lo..hi``: the counter never wraps. Pass the update the register takes in cycles
    without a restart (other cycles load a constant)."""
    return check(m, f"{name}: next value within {lo}..{hi}", family,
                 (next_value >= lo) & (next_value <= hi))


def occupancy(m, name, level, *, push, pop, depth):
    """A FIFO of ``depth`` entries holding ``level`` never overflows (a push when full
    without a pop) or underflows (a pop when empty)."""
    return counter(m, name, level + push - pop, lo=0, hi=depth, family="fifo")
