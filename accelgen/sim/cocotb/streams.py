"""cocotb 2.x drivers and monitors for Amaranth-named ready/valid stream ports.

Amaranth flattens a stream member ``i`` of a component into the Verilog ports ``i__payload``,
``i__valid`` and ``i__ready``. :class:`StreamSource` drives such a stream into the DUT,
:class:`StreamSink` takes one out of it; both work on whole payload integers (pack fields with
:mod:`accelgen.sim.cocotb.manifest`), insert seeded random gaps, and record the clock cycle of
every handshake so testbenches can measure latency and throughput exactly.

Timing model (why the drivers act on the falling edge)
    A transfer happens at a rising edge where ``valid`` and ``ready`` are both 1. The drivers
    change their outputs just after each *falling* edge, then wait for ``ReadOnly`` to read the
    settled values, including a ``ready`` that depends combinationally on ``valid`` or a
    ``valid`` that depends on ``ready``. Nothing changes between that read and the next rising
    edge, so what the driver sees is exactly what the flip-flops see; the result is the same on
    Verilator and Icarus, with no reliance on scheduling order around the rising edge.

    ::

        clk      ‾‾‾|___|‾‾‾|___|‾‾‾
                     ^ drive  ^ next edge: transfer if valid & ready (read in ReadOnly)

    Cycle numbers come from :class:`CycleCounter`: the *n*-th rising edge after time 0 is cycle
    *n*; a handshake is tagged with the cycle of the edge that completes it. A source holds
    ``valid`` and its payload until the transfer (AXI-style), and only decides on a gap while
    it holds nothing.
"""

import random
from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, ReadOnly
from cocotb.utils import get_sim_steps, get_sim_time

__all__ = ["CycleCounter", "StreamSource", "StreamSink", "StreamMonitor", "bit",
           "stream_ports"]


def bit(handle):
    """Value of a 1-bit signal as a bool; X/Z (Icarus before reset) reads as False."""
    return str(handle.value) == "1"


def stream_ports(dut, name):
    """``(payload, valid, ready)`` handles of the Amaranth stream ``name`` of ``dut``."""
    return (getattr(dut, f"{name}__payload"), getattr(dut, f"{name}__valid"),
            getattr(dut, f"{name}__ready"))


class CycleCounter:
    """Cycle numbers derived from simulation time (no coroutine, so it cannot drift or race).

    Parameters
    ----------
    period, unit
        Clock period, as given to ``cocotb.clock.Clock``.
    origin : int, optional
        Simulation time in steps of a rising edge; default: now. Create the counter right
        where the clock is started high (cocotb may start a test a step after a round time).

    Members
    -------
    now : int (property)
        Rising edges are numbered from the origin (cycle 0). Between the falling edge before
        rising edge ``k`` and that edge, ``now`` is ``k``; at a rising edge, its own number.
        Stream drivers read it in the ``ReadOnly`` phase after a falling edge, so a transfer
        is tagged with the number of the rising edge that completes it.
    """

    def __init__(self, period, unit="ns", *, origin=None):
        self.period = get_sim_steps(period, unit)
        self.origin = get_sim_time("step") if origin is None else origin

    @property
    def now(self):
        k, rem = divmod(get_sim_time("step") - self.origin, self.period)
        return int(k) + (1 if rem else 0)


class _Driver:
    """Common state: port handles, seeded RNG, background task."""

    def __init__(self, dut, name, clk, counter, rng, seed):
        self.name = name
        self.clk = clk
        self.payload, self.valid, self.ready = stream_ports(dut, name)
        self.counter = counter
        self.rng = rng if rng is not None else random.Random(seed)
        self._task = None

    def start(self):
        if self._task is None or self._task.done():
            self._task = cocotb.start_soon(self._run())
        return self

    def stop(self):
        """Cancel the background task; the port is left as is (call before a reset and drive
        ``valid``/``ready`` to 0 yourself, or create a new driver)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None


class StreamSource(_Driver):
    """Drives payload words into the DUT's ``<name>`` stream (DUT input).

    Parameters
    ----------
    dut, name, clk
        DUT handle, stream name (``"i"`` for ``i__payload``/``i__valid``/``i__ready``), clock.
    counter : CycleCounter
    valid_prob : float
        Chance per idle cycle that the next queued word is offered; 1.0 gives back-to-back
        beats (one transfer per cycle while ``ready`` stays 1).
    rng : random.Random, optional
        Source of gap decisions; default ``random.Random(seed)``.

    Members
    -------
    accepted : list of (cycle, word)
        Every transfer so far, in order.
    pending : int (property)
        Words queued or on the port but not yet transferred.
    """

    def __init__(self, dut, name, clk, counter, *, valid_prob=1.0, rng=None, seed=0):
        super().__init__(dut, name, clk, counter, rng, seed)
        self.valid_prob = valid_prob
        self.accepted = []
        self._queue = deque()
        self._holding = False
        self._idle = Event()
        self._idle.set()
        self.valid.value = 0

    @property
    def pending(self):
        return len(self._queue) + int(self._holding)

    def send(self, words):
        """Queue ``words`` (payload integers) and start driving; returns at once."""
        self._queue.extend(int(w) for w in words)
        if self._queue:
            self._idle.clear()
        return self.start()

    async def wait_idle(self, timeout_cycles=None):
        """Wait until every queued word is transferred; False if ``timeout_cycles`` ran out.
        Returns just after a falling edge, where the caller may drive signals."""
        if self.pending == 0:
            return True
        if timeout_cycles is None:
            await self._idle.wait()
            await FallingEdge(self.clk)
            return True
        await First(self._idle.wait(), ClockCycles(self.clk, timeout_cycles))
        await FallingEdge(self.clk)   # leave the read-only phase, so the caller may drive
        return self.pending == 0

    async def _run(self):
        while True:
            await FallingEdge(self.clk)
            if not self._holding:
                if self._queue and self.rng.random() < self.valid_prob:
                    self.payload.value = self._queue[0]
                    self.valid.value = 1
                    self._holding = True
                else:
                    self.valid.value = 0
            await ReadOnly()
            if self._holding and bit(self.ready):
                self.accepted.append((self.counter.now, self._queue.popleft()))
                self._holding = False
                if not self._queue:
                    self._idle.set()


class StreamSink(_Driver):
    """Takes payload words out of the DUT's ``<name>`` stream (DUT output).

    Parameters
    ----------
    dut, name, clk, counter
        As for :class:`StreamSource` (``"o"`` for ``o__payload``/``o__valid``/``o__ready``).
    ready_prob : float
        Chance per cycle that ``ready`` is 1 (random backpressure); 1.0 never stalls.

    Members
    -------
    received : list of (cycle, word)
        Every transfer so far, in order.
    words : list of int (property)
    first_valid : int or None
        Cycle in which ``valid`` was first seen high (whether or not ``ready`` was).
    """

    def __init__(self, dut, name, clk, counter, *, ready_prob=1.0, rng=None, seed=0):
        super().__init__(dut, name, clk, counter, rng, seed)
        self.ready_prob = ready_prob
        self.received = []
        self.first_valid = None
        self._target = None
        self._got = Event()
        self.ready.value = 0

    @property
    def words(self):
        return [w for _, w in self.received]

    async def expect(self, count, timeout_cycles):
        """Wait until ``count`` words in total were received; False on timeout (the caller
        fails the test with its seed, instead of hanging). Returns just after a falling edge."""
        self.start()
        if len(self.received) >= count:
            return True
        self._target = count
        self._got.clear()
        await First(self._got.wait(), ClockCycles(self.clk, timeout_cycles))
        self._target = None
        await FallingEdge(self.clk)   # leave the read-only phase, so the caller may drive
        return len(self.received) >= count

    async def _run(self):
        while True:
            await FallingEdge(self.clk)
            take = self.ready_prob >= 1.0 or self.rng.random() < self.ready_prob
            self.ready.value = int(take)
            await ReadOnly()
            if bit(self.valid):
                if self.first_valid is None:
                    self.first_valid = self.counter.now
                if take:
                    self.received.append((self.counter.now, self.payload.value.to_unsigned()))
                    if self._target is not None and len(self.received) >= self._target:
                        self._got.set()


class StreamMonitor:
    """Records every beat of the DUT's output ``<name>`` that has no ``ready`` (a monitor
    stream of ``<name>__valid`` and ``<name>__payload`` only, whose receiver takes every
    beat), sampled like the sinks: in ``ReadOnly`` after each falling edge.

    Members
    -------
    received : list of (cycle, word)
    words : list of int (property)
    """

    def __init__(self, dut, name, clk, counter):
        self.name, self.clk, self.counter = name, clk, counter
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.received = []
        self._task = None

    @property
    def words(self):
        return [w for _, w in self.received]

    def start(self):
        if self._task is None or self._task.done():
            self._task = cocotb.start_soon(self._run())
        return self

    def stop(self):
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def _run(self):
        while True:
            await FallingEdge(self.clk)
            await ReadOnly()
            if bit(self.valid):
                self.received.append((self.counter.now, self.payload.value.to_unsigned()))
