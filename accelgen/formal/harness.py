"""The proof harness: a registry block inside the properties every stream block owes.

::

      free inputs (any value, any cycle)                         free ready
            │  assumed: a well-behaved producer                     │
            ▼                                                       ▼
      ── in streams ──►  block (+ its counter / FIFO assertions) ──► out streams ──►
                                                                      │ asserted:
                                                                      │ stream rules,
                                                                      │ reset rule, beats

* **Reset** is assumed high in the first cycle; registers start from their reset values.
* **Inputs**: every input stream's producer keeps ``valid`` and the payload until ``ready``
  (assumed: the block owes nothing to a producer that breaks the protocol); otherwise the
  payloads are free, so every command, including invalid ones, is explored.
* **Outputs**: every output stream keeps ``valid`` and its payload until ``ready``
  (``stream``), and raises no ``valid`` after reset before some input offered a beat
  (``reset``); ``ready`` is free (any backpressure).
* **Beats** (the block's :class:`~accelgen.generators.base.ProofContract`): for each
  declared pair, the beats inside the block (counted input beats taken minus output beats
  delivered) stay within ``0..capacity``: no beat created, duplicated or lost to an overflow.
* The block's own :func:`~accelgen.hdl.common.formal.counter` and
  :func:`~accelgen.hdl.common.formal.occupancy` assertions come with its hardware.

Port mutants (``port-*``) put a planted bug between the block's first output stream and the
checks, as a block with that bug would present it: ``port-drop-valid`` (valid falls before
``ready``), ``port-payload`` (a payload bit flips while stalled), ``port-spurious-valid``
(valid rises with nothing offered), ``port-duplicate`` (a delivered beat is offered again).
The bug strikes in the cycles a free input ``mutate`` chooses.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal
from amaranth.hdl import Assume
from amaranth.lib import stream, wiring

from ..hdl.common import formal

__all__ = ["ProofHarness", "PORT_MUTANTS", "stream_ports"]

#: port mutants and the family that must catch each
PORT_MUTANTS = {
    "port-drop-valid": "stream",
    "port-payload": "stream",
    "port-spurious-valid": "reset",
    "port-duplicate": "beats",
}


def stream_ports(component):
    """``[(name, interface, produced)]`` of the component's stream ports, in signature order:
    ``produced`` when the component drives ``valid`` and the payload."""
    out = []
    for name, member in component.signature.members.items():
        if not member.is_signature:
            continue
        sig = member.signature
        plain = sig.flip() if isinstance(sig, wiring.FlippedSignature) else sig
        if isinstance(plain, stream.Signature):
            out.append((name, getattr(component, name), member.flow == wiring.Out))
    return out


class _Observed:
    """What the checks see of an output stream: its own signals, or a mutant's."""

    def __init__(self, valid, ready, payload):
        self.valid, self.ready, self.payload = valid, ready, payload


class ProofHarness(Elaboratable):
    """``block`` (the component, built inside :func:`~accelgen.hdl.common.formal.proving`)
    with the stream, reset and beats properties; ``ports`` lists the free inputs and the
    outputs for conversion.

    Members
    -------
    block : wiring.Component
    mutate : Signal
        Free input: the cycles in which a port mutant strikes.
    """

    def __init__(self, block, contract, config, *, mutant=None):
        self.block, self.contract, self.config, self.mutant = block, contract, config, mutant
        self.mutate = Signal(name="mutate")

    @property
    def ports(self):
        # a struct payload is a View of its Signal
        return [self.mutate] + [value if isinstance(value, Signal) else value.as_value()
                                for _, _, value in self.block.signature.flatten(self.block)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.block
        first = Signal(init=1, reset_less=True, name="first_cycle")
        m.d.sync += first.eq(0)
        with m.If(first):
            m.d.comb += Assume(ResetSignal())
        ports = stream_ports(self.block)
        if not any(produced for _, _, produced in ports):
            raise ValueError("the block has no output stream to prove")
        offered = Signal(name="input_offered")      # some input stream had valid high
        any_valid = Const(0, 1)
        for name, port, produced in ports:
            if not produced:
                formal.stream_rules(m, name, port, produced=False)
                any_valid = any_valid | port.valid
        m.d.sync += offered.eq(offered | any_valid)
        observed = {}
        for index, (name, port, produced) in enumerate(ports):
            if not produced:
                continue
            seen = port
            if self.mutant in PORT_MUTANTS and index == _first_output(ports):
                seen = self._mutated(m, port)
            observed[name] = seen
            formal.stream_rules(m, name, seen, produced=True)
            formal.check(m, f"{name}: no valid after reset before an input", "reset",
                         ~seen.valid | offered | any_valid)
            formal.cover(m, f"{name}: a beat delivered", seen.valid & seen.ready)
        inputs = {name: port for name, port, produced in ports if not produced}
        for pair in self.contract.beats:
            self._beats(m, pair, inputs[pair.source], observed[pair.sink])
        return m

    def _mutated(self, m, port):
        """The output stream as a block with :attr:`mutant` would drive it."""
        payload = Cat(port.payload)
        strike = self.mutate
        if self.mutant == "port-drop-valid":
            return _Observed(port.valid & ~strike, port.ready, payload)
        if self.mutant == "port-payload":
            return _Observed(port.valid, port.ready, payload ^ strike)
        if self.mutant == "port-spurious-valid":
            return _Observed(port.valid | strike, port.ready, payload)
        # port-duplicate: a delivered beat offered again while the block offers none
        again = Signal(name="mutant_again")
        last = Signal(len(payload), name="mutant_last_payload")
        repeat = again & ~port.valid
        m.d.sync += [again.eq(Mux(repeat, ~port.ready, port.valid & port.ready & strike)),
                     last.eq(Mux(port.valid & port.ready, payload, last))]
        return _Observed(port.valid | repeat, port.ready, Mux(repeat, last, payload))

    def _beats(self, m, pair, source, sink):
        capacity = pair.capacity(self.config)
        taken = source.valid & source.ready
        if pair.counted is not None:
            taken = taken & getattr(source.payload, pair.counted)
        delivered = sink.valid & sink.ready
        inside = Signal(range(-1, capacity + 2), name=f"beats_{pair.source}_{pair.sink}")
        update = inside + taken - delivered
        m.d.sync += inside.eq(update)
        formal.counter(m, f"beats {pair.source} -> {pair.sink} inside the block", update,
                       lo=0, hi=capacity, family="beats")


def _first_output(ports):
    return next(i for i, (_, _, produced) in enumerate(ports) if produced)
