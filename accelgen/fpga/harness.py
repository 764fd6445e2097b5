"""Self-checking harness: wraps any registry block so a board needs only a clock, a reset and
four LEDs (passed, failed, done, heartbeat) to tell whether the block computes what its golden
model says.

::

      xorshift32 bank (one per 32 payload bits)        ctrl xorshift32 (free running)
              │ word k of the stimulus                     │ bits 0-1: offer a beat?
              ▼                                            │ bits 8-9: take a result?
      [input register] ── i ──► block ── o ──► [output register] ──► CRC-32 signature
         (valid gaps)                             (backpressure)       + beat counter
                                                                            │
                          expected signature and count (elaboration time) ─►  ==  → passed

Stimulus
    ``n = ceil(W / 32)`` xorshift32 generators (``x ^= x << 13; x ^= x >> 17; x ^= x << 5``,
    mod 2**32), seeded by :func:`lane_seeds` from ``seed``. Beat ``t`` of the ``i`` stream is
    ``state_0 | state_1 << 32 | ...`` truncated to the payload width ``W``, all generators
    stepping once per accepted beat. Every bit pattern is a legal payload (the golden model's
    ``words`` contract), so the stimulus covers control fields (``clear``, ``last``, ``mode``)
    as well as operands.

Flow control
    A separate free-running xorshift32 ``ctrl`` decides each cycle whether the empty input
    register takes the next beat (``ctrl[1:0] != 0``, 3/4 of cycles) and whether the output
    register hands its beat to the signature (``ctrl[9:8] != 0``, 3/4 of cycles); both bits
    are registered one cycle ahead. The block sees bubbles and backpressure; the order and
    values of its ``o`` beats must not depend on them, which is its stream contract.

Signature
    CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0xFFFFFFFF, no final XOR) over
    the bits of every ``o`` payload word, LSB first, ``W_o`` bits per beat (so wide payloads are
    folded with CRC strength: any error burst of up to 32 bits and any odd number of flipped
    bits is caught). Hardware updates it in one cycle per beat with the GF(2) matrix that
    :func:`crc_masks` derives by running the bit-serial definition :func:`_crc_bits`
    symbolically; the Python model applies the same matrix.

Verdict
    After all ``beats`` inputs were accepted and the block stayed quiet (no beat in either
    register, ``o.valid`` low) for ``2 * latency + 16`` cycles (plus one, as the quiet test
    is registered), ``done`` rises and exactly one
    of ``passed`` (signature and output-beat count both equal the expected ones) or ``failed``
    rises. A run that has not finished after :attr:`SelfCheckHarness.timeout` cycles raises
    ``done`` and ``failed``. The verdict is sticky until reset.
"""

import math
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..numerics import ConfigError
from ..sim.payload import payload_width

__all__ = ["MASK32", "CRC_POLY", "CRC_INIT", "xorshift32", "lane_seeds", "stimulus_words",
           "crc_masks", "crc_update", "crc_next", "crc_serial", "signature", "expected",
           "SelfCheckHarness", "SimResult", "simulate"]

MASK32 = 0xFFFF_FFFF
CRC_POLY = 0x04C1_1DB7
CRC_INIT = 0xFFFF_FFFF
VALID_BITS = (0, 2)   # ctrl[0:2] != 0 → offer the next input beat
READY_BITS = (8, 10)  # ctrl[8:10] != 0 → take the output register's beat


# -- the twins' shared definitions -----------------------------------------------------------

def xorshift32(x):
    """One xorshift32 step (Marsaglia, shifts 13/17/5). Works unchanged on a Python int and on
    an Amaranth ``Value``: masking after the left shifts keeps both to 32 bits, so hardware and
    model are the same expression."""
    x = (x ^ (x << 13)) & MASK32
    x = x ^ (x >> 17)
    return (x ^ (x << 5)) & MASK32


def lane_seeds(seed, count):
    """``count`` distinct non-zero xorshift32 states for seed ``seed``; the last one seeds the
    flow-control generator. Seeds go through a few xorshift steps so nearby seeds do not give
    nearby streams."""
    out = []
    for k in range(count):
        x = ((seed & MASK32) * 0x9E37_79B9 + (k + 1) * 0x85EB_CA6B) & MASK32 or 0x1234_5678
        for _ in range(4):
            x = xorshift32(x)
        out.append(x)
    return out


def _generators(width):
    """Stimulus generators for a ``width``-bit payload (one per 32 bits)."""
    return max(1, math.ceil(width / 32))


def stimulus_words(width, beats, seed):
    """The ``i`` payload words the harness sends, in order (see the module docstring)."""
    n = _generators(width)
    states = lane_seeds(seed, n + 1)[:n]
    out = []
    for _ in range(beats):
        out.append(sum(s << (32 * k) for k, s in enumerate(states)) & ((1 << width) - 1))
        states = [xorshift32(s) for s in states]
    return out


def _crc_bits(state, data):
    """Bit-serial CRC-32 definition over GF(2) elements: ``state`` is 32 elements (bit 0
    first), ``data`` the message bits in order. Elements only meet ``^`` and ``0``, so the same
    code runs on bits (0/1) and on bit sets (ints whose bits name variables)."""
    s = list(state)
    for d in data:
        fb = s[31] ^ d
        s = [fb] + [s[k - 1] ^ (fb if (CRC_POLY >> k) & 1 else 0) for k in range(1, 32)]
    return s


def crc_masks(width):
    """For each of the 32 signature bits, the set of inputs it is the XOR of, as an int over
    ``state | word << 32`` (bits 0-31: old signature, bits 32..: the ``width``-bit word)."""
    state = [1 << k for k in range(32)]
    data = [1 << (32 + k) for k in range(width)]
    return _crc_bits(state, data)


def crc_update(masks, crc, word):
    """New signature after one ``o`` word, by the matrix the hardware uses."""
    x = crc | (word << 32)
    return sum(((m & x).bit_count() & 1) << k for k, m in enumerate(masks))


def crc_next(crc, word, width):
    """Hardware twin of :func:`crc_update`: the new signature as an Amaranth ``Value`` of the
    32-bit ``crc`` and ``width``-bit ``word``; each bit is one XOR tree (a single cycle)."""
    inputs = Cat(crc, word)
    return Cat(*(Cat(*(inputs[j] for j in range(32 + width) if (mk >> j) & 1)).xor()
                 if mk else Const(0, 1) for mk in crc_masks(width)))


def crc_serial(crc, word, width):
    """Reference: the bit-serial definition on concrete bits (tests check it against
    :func:`crc_update`)."""
    bits = _crc_bits([(crc >> k) & 1 for k in range(32)],
                     [(word >> k) & 1 for k in range(width)])
    return sum(b << k for k, b in enumerate(bits))


def signature(words, width):
    """CRC-32 signature of a list of ``width``-bit output words."""
    masks, crc = crc_masks(width), CRC_INIT
    for w in words:
        crc = crc_update(masks, crc, w)
    return crc


def expected(spec, config, *, beats, seed):
    """``(signature, output beat count, input words)`` the harness must see, by the golden
    model."""
    in_words = stimulus_words(payload_width(config.input_fields), beats, seed)
    out_words = list(spec.golden_model().words(config, in_words))
    return signature(out_words, payload_width(config.output_fields)), len(out_words), in_words


# -- hardware ---------------------------------------------------------------------------------

class SelfCheckHarness(wiring.Component):
    """Pseudo-random stimulus → block → CRC-32 signature, checked against values computed by
    the golden model at elaboration time. See the module docstring for the algorithms.

    Parameters
    ----------
    spec : GeneratorSpec
    config : the block's Config
    beats : int
        Input beats to send (1 to 2**20).
    seed : int
        Stimulus seed (any int; only its low 32 bits matter).
    corrupt_expected : bool
        Flip bit 0 of the expected signature, so a correct block must *fail* (proves the check
        can fail).

    Members
    -------
    done : Out(1)
        The run is over (drained or timed out); sticky.
    passed : Out(1)
        ``done`` and signature and output-beat count match.
    failed : Out(1)
        ``done`` and a mismatch or a timeout.

    Attributes
    ----------
    expected_signature, expected_count : int
        What the hardware compares against (``expected_signature`` already corrupted when
        ``corrupt_expected``); ``model_signature`` is the golden model's true value.
    sig, count, cycles, sent : Signal
        Running signature, output beats taken, cycles since reset (frozen at ``done``), input
        beats sent: for simulation and debugging.
    timeout : int
        Cycles after which the run fails.

    Timing
    ------
    One beat per cycle at best on each side; with the default 3/4 offer and take rates a run
    lasts about ``beats * 4/3`` cycles plus the drain (tiny, 256 beats: 379 cycles). The
    block's input and output payloads are registered and the harness' own decisions (gaps,
    backpressure, drain, compare) come from flip-flops, so nextpnr's critical path is the
    block's (for ``mac``: its stall enable, ``o.ready`` → every pipeline register's enable).
    """

    def __init__(self, spec, config, *, beats=256, seed=1, corrupt_expected=False):
        if not isinstance(beats, int) or isinstance(beats, bool) or not 1 <= beats <= 1 << 20:
            self._MustUse__silence = True   # never built: no "created but never used" warning
            raise ConfigError(f"--beats: {beats!r} is not allowed; expected an integer "
                              f"from 1 to {1 << 20}")
        self.spec, self.config, self.beats, self.seed = spec, config, beats, seed
        self.in_width = payload_width(config.input_fields)
        self.out_width = payload_width(config.output_fields)
        self.model_signature, self.expected_count, _ = expected(spec, config, beats=beats,
                                                                seed=seed)
        self.expected_signature = self.model_signature ^ (1 if corrupt_expected else 0)
        self.block = spec.build(config)
        latency = getattr(self.block, "latency", 0)
        self.quiet_cycles = 2 * latency + 16
        self.timeout = 16 * (beats + self.expected_count) + 4 * self.quiet_cycles + 1024
        super().__init__({"done": Out(1), "passed": Out(1), "failed": Out(1)})
        self.sig = Signal(32, init=CRC_INIT)
        self.count = Signal(range(2 * max(beats, self.expected_count) + 2))
        self.cycles = Signal(range(self.timeout + 1))
        self.sent = Signal(range(beats + 1))

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self.block
        running = ~self.done

        ctrl = Signal(32, init=lane_seeds(self.seed, _generators(self.in_width) + 1)[-1])
        # The gap and backpressure decisions are registered bits of the next state, so the
        # block's handshake sees flip-flops, not the PRNG's XOR logic.
        offer_ok, take_ok = Signal(), Signal()
        with m.If(running):
            nxt = xorshift32(ctrl)
            m.d.sync += [ctrl.eq(nxt), self.cycles.eq(self.cycles + 1),
                         offer_ok.eq(nxt[VALID_BITS[0]:VALID_BITS[1]] != 0),
                         take_ok.eq(nxt[READY_BITS[0]:READY_BITS[1]] != 0)]

        self._source(m, block, offer_ok, running)
        take = self._sink(m, block, take_ok, running)
        self._verdict(m, block, take)
        return m

    def _source(self, m, block, offer_ok, running):
        """Stimulus generators and the input register (a one-entry pipeline register: loads
        only when empty or being emptied, so ``valid`` never drops before ``ready``)."""
        n = _generators(self.in_width)
        states = [Signal(32, name=f"stim{k}", init=s)
                  for k, s in enumerate(lane_seeds(self.seed, n + 1)[:n])]
        ivalid = Signal()
        ipayload = Signal(self.in_width)
        more = Signal(init=1)   # registered "sent < beats": keeps a comparator off the enable
        m.d.comb += [block.i.valid.eq(ivalid), block.i.payload.eq(ipayload)]
        offer = running & more & offer_ok
        with m.If(~ivalid | block.i.ready):
            m.d.sync += ivalid.eq(offer)
            with m.If(offer):
                m.d.sync += [ipayload.eq(Cat(*states)[:self.in_width]),
                             self.sent.eq(self.sent + 1),
                             more.eq(self.sent != self.beats - 1)]
                m.d.sync += [s.eq(xorshift32(s)) for s in states]
        self._ivalid, self._more = ivalid, more

    def _sink(self, m, block, take_ok, running):
        """Output register with random backpressure, then the signature. Returns the ``take``
        strobe (the output register's beat enters the signature this cycle)."""
        ovalid = Signal()
        opayload = Signal(self.out_width)
        take = Signal()
        m.d.comb += [take.eq(running & ovalid & take_ok),
                     block.o.ready.eq(~ovalid | take)]
        with m.If(block.o.valid & block.o.ready):
            m.d.sync += [ovalid.eq(1), opayload.eq(block.o.payload)]
        with m.Elif(take):
            m.d.sync += ovalid.eq(0)

        with m.If(take):
            m.d.sync += [self.sig.eq(crc_next(self.sig, opayload, self.out_width)),
                         self.count.eq(self.count + 1)]
        self._ovalid = ovalid
        return take

    def _verdict(self, m, block, take):
        """``done`` after the drain (or the timeout); compare once, then freeze. Every input
        of the decision is registered first (one cycle late is harmless against a drain of
        ``quiet_cycles``), so the verdict logic never limits the clock."""
        idle, match, timed_out = Signal(), Signal(), Signal()
        m.d.sync += [
            idle.eq(~self._more & ~self._ivalid & ~block.o.valid & ~self._ovalid),
            match.eq((self.sig == self.expected_signature)
                     & (self.count == self.expected_count)),
            timed_out.eq(self.cycles >= self.timeout),
        ]
        quiet = Signal(range(self.quiet_cycles + 1))
        with m.If(~self.done):
            with m.If(~idle):
                m.d.sync += quiet.eq(0)
            with m.Elif(quiet < self.quiet_cycles):
                m.d.sync += quiet.eq(quiet + 1)
            with m.Else():
                m.d.sync += [self.done.eq(1), self.passed.eq(match), self.failed.eq(~match)]
            with m.If(timed_out):
                m.d.sync += [self.done.eq(1), self.passed.eq(0), self.failed.eq(1)]


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate`: the verdict bits, the cycle at which ``done`` rose (or the
    cycles simulated when it never did), the final signature and output-beat count."""
    done: bool
    passed: bool
    failed: bool
    cycles: int
    signature: int
    count: int


def simulate(harness, *, max_cycles=None):
    """Run ``harness`` in the Amaranth simulator until ``done`` (or ``max_cycles``, default
    ``harness.timeout + 64``) and return a :class:`SimResult`."""
    from amaranth.sim import Simulator

    max_cycles = max_cycles or harness.timeout + 64
    result = {}

    async def bench(ctx):
        cycles = 0
        while cycles < max_cycles and not ctx.get(harness.done):
            await ctx.tick()
            cycles += 1
        result.update(done=bool(ctx.get(harness.done)), passed=bool(ctx.get(harness.passed)),
                      failed=bool(ctx.get(harness.failed)), cycles=cycles,
                      signature=ctx.get(harness.sig), count=ctx.get(harness.count))

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return SimResult(**result)
