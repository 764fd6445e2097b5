"""Self-checking harnesses: wrap a registry block so a board needs only a clock, a reset and
four LEDs (passed, failed, done, heartbeat) to tell whether the block computes what its golden
model says.

This module holds the pieces every harness is built from (each with its Python twin):
:class:`LaneBank` (xorshift32 stimulus of any width), :func:`source_register` (an input
register with random gaps), :class:`SignatureSink` (an output register with random
backpressure, CRC-32 and beat counter) and :class:`Harness` (verdict ports, flow-control PRNG,
drain-then-compare verdict), plus :class:`SelfCheckHarness` for blocks with one ``i`` and one
``o`` stream. A block with several streams has a harness module of its own; each block's
registry entry names its harness (``GeneratorSpec.harness``). The description below is
:class:`SelfCheckHarness`'s; the others differ only in their streams.

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
    as well as operands. A registry entry may name one-bit fields to make rarer
    (``GeneratorSpec.harness_rare``, e.g. a row-end ``last`` flag: rows of ~16 elements
    rather than ~2); each such bit is ANDed with extra generator bits beyond ``W``
    (:func:`rare_taps`).

Flow control
    A separate free-running xorshift32 ``ctrl`` decides each cycle whether the empty input
    register takes the next beat (``ctrl[1:0] != 0``, 3/4 of cycles) and whether the output
    register hands its beat to the signature (``ctrl[9:8] != 0``, 3/4 of cycles); both bits
    are registered one cycle ahead. The block sees bubbles and backpressure; the order and
    values of its ``o`` beats must not depend on them, which is its stream contract.

Signature
    CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0xFFFFFFFF, no final XOR) over
    the bits of every ``o`` payload word, LSB first, ``W_o`` bits per beat (so wide payloads are
    folded with CRC strength: any error burst of up to 32 bits is caught, other errors escape
    with a chance of about 2**-32). Feeding bits LSB first is what the reflected CRC-32 of
    zlib does byte by byte, so for words of whole bytes the signature is
    ``bitreverse32(zlib.crc32(little-endian bytes) ^ 0xFFFFFFFF)`` (tests check this).
    Hardware applies, once per beat, the GF(2) matrix that :func:`crc_masks` derives by
    running the bit-serial definition :func:`_crc_bits` symbolically; the Python model applies
    the same matrix. The update is linear, ``new = A·sig ^ B·word``, so the hardware splits it
    in two pipeline stages: the word's term ``B·word`` into a register as the beat leaves the
    output register, then ``A·sig ^`` that term into the signature a cycle later (the XOR
    tree of a wide word and the signature in one cycle had limited a board build to 115 MHz).

Verdict
    After all ``beats`` inputs were accepted and the block stayed quiet (no beat in either
    register or on its way into the signature, ``o.valid`` low) for ``2 * latency + 16``
    cycles (plus one, as the quiet test is registered), ``done`` rises and exactly one of
    ``passed`` (every check: signature and output-beat count both equal the expected ones) or
    ``failed`` rises. A run that has not finished after :attr:`Harness.timeout` cycles raises
    ``done`` and ``failed``. The verdict is sticky until reset.
"""

import itertools
import math
from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..numerics import ConfigError
from ..generators.base import field_offsets
from ..sim.payload import payload_width

__all__ = ["Workload", "field_mask", "pack_fields", "stream_workload", "MASK32", "CRC_POLY",
           "CRC_INIT", "xorshift32", "lane_seeds", "lanes", "lane_words",
           "stimulus_words", "rare_taps", "shape_word", "shape_value", "harness_taps",
           "crc_masks", "crc_update", "crc_next", "crc_state_term", "crc_word_term",
           "crc_serial", "signature",
           "expected", "LaneBank", "source_register", "SignatureSink", "check_beats", "Harness",
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


def lanes(width):
    """xorshift32 generators for a ``width``-bit payload (one per 32 bits)."""
    return max(1, math.ceil(width / 32))


def lane_words(seeds, width):
    """Endless ``width``-bit words from xorshift32 generators started at ``seeds``: word ``t``
    is ``state_0 | state_1 << 32 | ...`` truncated to ``width``, every generator stepping once
    per word (the Python twin of :class:`LaneBank`)."""
    states, mask = list(seeds), (1 << width) - 1
    while True:
        yield sum(s << (32 * k) for k, s in enumerate(states)) & mask
        states = [xorshift32(s) for s in states]


def rare_taps(fields, rare):
    """Where the stimulus makes one-bit fields rarer: ``(taps, raw_width)``. ``rare`` maps a
    field name to ``n``; that field's bit is ANDed with ``n - 1`` extra random bits placed
    after the payload (so it is set with probability ``2**-n``), e.g. ``{"last": 4}`` gives
    rows of about 16 elements instead of 2. ``taps``: ``[(bit, [extra bits])]``;
    ``raw_width``: payload width plus the extra bits (what the generators produce)."""
    offsets = field_offsets(fields)
    taps, raw_width = [], payload_width(fields)
    for name, n in rare.items():
        if name in offsets and n > 1:
            taps.append((offsets[name][0], list(range(raw_width, raw_width + n - 1))))
            raw_width += n - 1
    return taps, raw_width


def shape_word(raw, taps, width):
    """Python twin of :func:`shape_value`: the payload word made from a raw generator word."""
    word = raw
    for bit, extra in taps:
        keep = (raw >> bit) & 1
        for e in extra:
            keep &= (raw >> e) & 1
        word = (word & ~(1 << bit)) | (keep << bit)
    return word & ((1 << width) - 1)


def shape_value(raw, taps, width):
    """The ``width``-bit payload from raw generator bits ``raw`` (an Amaranth value): each
    tapped bit becomes the AND of itself and its extra bits (see :func:`rare_taps`)."""
    bits = [raw[k] for k in range(width)]
    for bit, extra in taps:
        bits[bit] = Cat(raw[bit], *(raw[e] for e in extra)).all()
    return Cat(*bits)


def stimulus_words(width, beats, seed, taps=(), raw_width=None):
    """The ``i`` payload words :class:`SelfCheckHarness` sends, in order (see the module
    docstring; ``taps``/``raw_width`` from :func:`rare_taps`)."""
    raw_width = raw_width or width
    n = lanes(raw_width)
    raw = itertools.islice(lane_words(lane_seeds(seed, n + 1)[:n], raw_width), beats)
    return [shape_word(w, taps, width) for w in raw]


def harness_taps(spec, config):
    """:func:`rare_taps` of the fields the block's registry entry makes rare
    (``spec.harness_rare``: ``{field: n}``; none by default)."""
    return rare_taps(config.input_fields, spec.harness_rare or {})


def _crc_bits(state, data):
    """Bit-serial CRC-32 definition over GF(2) elements: ``state`` is 32 elements (bit 0
    first), ``data`` the message bits in order. Elements only meet ``^`` and ``0``, so the same
    code runs on bits (0/1) and on bit sets (ints whose bits name variables). Per bit: shift
    left, and XOR every bit of :data:`CRC_POLY` (its ``x**0`` term included) in when the bit
    shifted out differs from the data bit."""
    s = list(state)
    for d in data:
        fb = s[31] ^ d
        s = [(s[k - 1] if k else 0) ^ (fb if (CRC_POLY >> k) & 1 else 0) for k in range(32)]
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
    return crc_state_term(crc, width) ^ crc_word_term(word, width)


def crc_state_term(crc, width):
    """``A·crc``: the old signature's share of the next one (the word's share is
    :func:`crc_word_term`; their XOR is :func:`crc_next`)."""
    return _xor_rows(crc, [mk & MASK32 for mk in crc_masks(width)])


def crc_word_term(word, width):
    """``B·word``: the ``width``-bit word's share of the next signature."""
    return _xor_rows(word, [mk >> 32 for mk in crc_masks(width)])


def _xor_rows(inputs, rows):
    """The 32 bits ``XOR of inputs[j] for every bit j set in row`` (0 for an empty row)."""
    return Cat(*(Cat(*(inputs[j] for j in range(row.bit_length()) if (row >> j) & 1)).xor()
                 if row else Const(0, 1) for row in rows))


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
    taps, raw_width = harness_taps(spec, config)
    in_words = stimulus_words(payload_width(config.input_fields), beats, seed, taps, raw_width)
    out_words = list(spec.golden_model().words(config, in_words))
    return signature(out_words, payload_width(config.output_fields)), len(out_words), in_words


# -- hardware: the pieces every harness is built from -------------------------------------------

class LaneBank:
    """``ceil(width / 32)`` xorshift32 generators seeded with ``seeds``: an endless stream of
    ``width``-bit words in hardware (:attr:`word`, :meth:`step`); :func:`lane_words` is its
    Python twin. Word ``t`` is ``state_0 | state_1 << 32 | ...`` truncated to ``width``,
    all generators stepping once per word."""

    def __init__(self, width, seeds, name):
        if len(seeds) != lanes(width):
            raise ValueError(f"seeds: {len(seeds)} given; a {width}-bit word needs "
                             f"{lanes(width)}")
        self.width, self.seeds = width, tuple(seeds)
        self.states = [Signal(32, name=f"{name}{k}", init=s) for k, s in enumerate(seeds)]

    @property
    def word(self):
        return Cat(*self.states)[:self.width]

    def step(self):
        """Statements that advance every generator (put them under the load condition)."""
        return [s.eq(xorshift32(s)) for s in self.states]


def source_register(m, stream, *, offer, word, load=(), name):
    """Drive block input ``stream`` from a one-entry register that loads ``word`` when ``offer``
    is high and the register is empty or being emptied (so ``valid`` never drops before
    ``ready``); ``load`` are statements executed with each load. Returns the register's
    ``valid``."""
    valid = Signal(name=f"{name}_valid")
    payload = Signal(len(word), name=f"{name}_payload")
    m.d.comb += [stream.valid.eq(valid), stream.payload.eq(payload)]
    with m.If(~valid | stream.ready):
        m.d.sync += valid.eq(offer)
        with m.If(offer):
            m.d.sync += [payload.eq(word), *load]
    return valid


class SignatureSink:
    """Output register with backpressure in front of a CRC-32 signature and a beat counter.

    :meth:`attach` takes a beat of block output ``stream`` into the register whenever it
    is empty or being emptied, keeping ``select(payload)`` (``width`` bits: the fields the
    check covers); the register hands its beat to the signature when ``take_ok`` (a
    registered random bit) allows: ``count`` counts it in that cycle, the beat's term
    (:func:`crc_word_term`) goes into a register (``pending``) and into ``sig`` one cycle
    later. ``busy`` (``valid | pending``) is low once every beat taken is in ``sig``. ``sig``,
    ``count``, ``valid`` and ``pending`` exist from construction so tests and
    :func:`simulate` can name them."""

    def __init__(self, width, count_limit, name):
        self.width = width
        self.sig = Signal(32, init=CRC_INIT, name=f"{name}_sig")
        self.count = Signal(range(count_limit + 1), name=f"{name}_count")
        self.valid = Signal(name=f"{name}_valid")
        self.pending = Signal(name=f"{name}_pending")
        self.name = name

    @property
    def busy(self):
        """The output register holds a beat, or a taken beat is not in ``sig`` yet."""
        return self.valid | self.pending

    def attach(self, m, stream, *, take_ok, running, select=None):
        payload = Signal(self.width, name=f"{self.name}_payload")
        take = Signal(name=f"{self.name}_take")
        word = stream.payload.as_value() if select is None else select(stream.payload)
        m.d.comb += [take.eq(running & self.valid & take_ok),
                     stream.ready.eq(~self.valid | take)]
        with m.If(stream.valid & stream.ready):
            m.d.sync += [self.valid.eq(1), payload.eq(word)]
        with m.Elif(take):
            m.d.sync += self.valid.eq(0)
        term = Signal(32, name=f"{self.name}_term")
        m.d.sync += self.pending.eq(take)
        with m.If(take):
            m.d.sync += [term.eq(crc_word_term(payload, self.width)),
                         self.count.eq(self.count + 1)]
        with m.If(self.pending):
            m.d.sync += self.sig.eq(crc_state_term(self.sig, self.width) ^ term)


def check_beats(beats):
    """:class:`ConfigError` unless ``beats`` is an integer from 1 to 2**20."""
    if not isinstance(beats, int) or isinstance(beats, bool) or not 1 <= beats <= 1 << 20:
        raise ConfigError(f"--beats: {beats!r} is not allowed; expected an integer "
                          f"from 1 to {1 << 20}")
    return beats


@dataclass
class Workload:
    """A self-check run's stimulus as stream words, and what the golden model says comes out
    (what fault campaigns replay; :meth:`Harness.workload`).

    Members
    -------
    words : dict
        ``{input stream: [payload int]}`` in order.
    golden : dict
        ``{output stream: [payload int]}`` the golden model expects; only the bits of
        ``checked`` are defined (a cycle counter, a trace: bits the golden model does not fix).
    checked : dict
        ``{output stream: int}``: the payload bits that are results; an output stream absent
        here is not a result (it is recorded, not compared).
    timeout : int
        Cycles a run may take at full rate before it counts as hung.
    """
    words: dict
    golden: dict
    checked: dict
    timeout: int

    @property
    def expect(self):
        """``{output stream: count}`` of the result streams."""
        return {name: len(words) for name, words in self.golden.items()}


def field_mask(fields, names):
    """The payload bits of the fields ``names`` (fields packed LSB first)."""
    offsets = field_offsets(fields)
    return sum(((1 << offsets[n][1]) - 1) << offsets[n][0] for n in names)


def pack_fields(fields, values):
    """``values`` (``{field: int}``) packed LSB first; each masked to its field's width."""
    offsets = field_offsets(fields)
    return sum((int(v) & ((1 << offsets[n][1]) - 1)) << offsets[n][0]
               for n, v in values.items())


class Harness(wiring.Component):
    """What every self-checking harness shares: the verdict ports, the cycle counter, the
    flow-control PRNG and the drain-then-compare verdict. A subclass sets :attr:`checks` and
    :attr:`quiet_cycles` before calling ``super().__init__(timeout=..., ctrl_seed=...)`` and
    implements :meth:`elaborate_streams`.

    Members
    -------
    done : Out(1)
        The run is over (drained or timed out); sticky.
    passed : Out(1)
        ``done`` and every check matches.
    failed : Out(1)
        ``done`` and a mismatch or a timeout.

    Attributes
    ----------
    checks : dict
        ``name → (Signal, expected int)``: what must hold when the run is over (running
        signatures and beat counters against the golden model's values).
    cycles : Signal
        Cycles since reset, frozen at ``done``.
    timeout : int
        Cycles after which the run fails (read at elaboration).
    quiet_cycles : int
        Idle cycles that end the run.
    """

    def check_beats(self, beats):
        """:func:`check_beats` for a harness under construction (a harness that is never built
        must not warn that it was created but never used)."""
        try:
            return check_beats(beats)
        except ConfigError:
            self._MustUse__silence = True
            raise

    def __init__(self, *, timeout, ctrl_seed):
        self.timeout, self.ctrl_seed = timeout, ctrl_seed
        super().__init__({"done": Out(1), "passed": Out(1), "failed": Out(1)})
        self.cycles = Signal(range(timeout + 1))

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.block
        self.elaborate_streams(m, ~self.done)
        return m

    def flow_control(self, m, running, fields):
        """One registered random decision per ``(lo, hi)`` bit field of a free-running
        xorshift32 (``field != 0``: 3/4 of cycles for two bits). The decisions are bits of the
        next state, registered, so the block's handshakes see flip-flops, not the PRNG's XOR
        logic. Also counts :attr:`cycles`."""
        ctrl = Signal(32, init=self.ctrl_seed)
        bits = [Signal(name=f"ctrl_ok{k}") for k in range(len(fields))]
        with m.If(running):
            nxt = xorshift32(ctrl)
            m.d.sync += [ctrl.eq(nxt), self.cycles.eq(self.cycles + 1)]
            m.d.sync += [b.eq(nxt[lo:hi] != 0) for b, (lo, hi) in zip(bits, fields)]
        return bits

    def verdict(self, m, idle):
        """``done`` once ``idle`` held for :attr:`quiet_cycles` (or at the timeout); compare
        every check once, then freeze. Every input of the decision is registered first (one
        cycle late is harmless against the drain), so the verdict never limits the clock."""
        idle_q, match, timed_out = Signal(), Signal(), Signal()
        m.d.sync += [
            idle_q.eq(idle),
            match.eq(Cat(*(sig == value for sig, value in self.checks.values())).all()),
            timed_out.eq(self.cycles >= self.timeout),
        ]
        quiet = Signal(range(self.quiet_cycles + 1))
        with m.If(~self.done):
            with m.If(~idle_q):
                m.d.sync += quiet.eq(0)
            with m.Elif(quiet < self.quiet_cycles):
                m.d.sync += quiet.eq(quiet + 1)
            with m.Else():
                m.d.sync += [self.done.eq(1), self.passed.eq(match), self.failed.eq(~match)]
            with m.If(timed_out):
                m.d.sync += [self.done.eq(1), self.passed.eq(0), self.failed.eq(1)]

    def expected_values(self):
        """``{check name: expected value}``."""
        return {name: value for name, (_, value) in self.checks.items()}


def stream_workload(spec, config, *, beats, seed):
    """:class:`Workload` of a one-stream block: the harness's ``i`` words, and the golden
    model's ``o`` words for them (every bit a result)."""
    _, count, in_words = expected(spec, config, beats=beats, seed=seed)
    out_words = list(spec.golden_model().words(config, in_words))
    width = payload_width(config.output_fields)
    return Workload(words={"i": in_words}, golden={"o": out_words},
                    checked={"o": (1 << width) - 1},
                    timeout=8 * (len(in_words) + count) + 64 * config.latency + 1024)


class SelfCheckHarness(Harness):
    """Pseudo-random stimulus → one-input, one-output block (``i``/``o``, a golden model with
    ``words(config, in_words)``) → CRC-32 signature, checked against values
    computed by the golden model at elaboration time. See the module docstring for the
    algorithms.

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
    done, passed, failed : Out(1)
        See :class:`Harness`.

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
    block's (e.g. a pipeline's stall enable: ``o.ready`` → every pipeline register's
    enable).
    """

    DEFAULT_BEATS = 256

    @classmethod
    def workload(cls, spec, config, *, beats, seed):
        """This harness's run as a :class:`Workload` (:func:`stream_workload`)."""
        return stream_workload(spec, config, beats=beats, seed=seed)

    def __init__(self, spec, config, *, beats=DEFAULT_BEATS, seed=1, corrupt_expected=False):
        self.check_beats(beats)
        self.spec, self.config, self.beats, self.seed = spec, config, beats, seed
        self.in_width = payload_width(config.input_fields)
        self.out_width = payload_width(config.output_fields)
        self.model_signature, self.expected_count, _ = expected(spec, config, beats=beats,
                                                                seed=seed)
        self.expected_signature = self.model_signature ^ (1 if corrupt_expected else 0)
        self.block = spec.build(config)
        self.quiet_cycles = 2 * getattr(self.block, "latency", 0) + 16
        self.taps, raw_width = harness_taps(spec, config)
        seeds = lane_seeds(seed, lanes(raw_width) + 1)
        super().__init__(timeout=16 * (beats + self.expected_count) + 4 * self.quiet_cycles
                         + 1024, ctrl_seed=seeds[-1])
        self.stimulus = LaneBank(raw_width, seeds[:-1], "stim")
        self.out = SignatureSink(self.out_width, self.timeout, "o")
        self.sig, self.count = self.out.sig, self.out.count
        self.sent = Signal(range(beats + 1))
        self.checks = {"signature": (self.sig, self.expected_signature),
                       "output beats": (self.count, self.expected_count)}

    def elaborate_streams(self, m, running):
        block = self.block
        offer_ok, take_ok = self.flow_control(m, running, (VALID_BITS, READY_BITS))
        more = Signal(init=1)   # registered "sent < beats": keeps a comparator off the enable
        ivalid = source_register(
            m, block.i, offer=running & more & offer_ok,
            word=shape_value(self.stimulus.word, self.taps, self.in_width), name="i",
            load=[self.sent.eq(self.sent + 1), more.eq(self.sent != self.beats - 1),
                  *self.stimulus.step()])
        self.out.attach(m, block.o, take_ok=take_ok, running=running)
        self.verdict(m, ~more & ~ivalid & ~block.o.valid & ~self.out.busy)


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate`: the verdict bits, the cycle at which ``done`` rose (or the
    cycles simulated when it never did), the final signature and output-beat count, and
    ``observed``: every check's final value (``{name: int}``, the names of
    :attr:`Harness.checks`)."""
    done: bool
    passed: bool
    failed: bool
    cycles: int
    signature: int
    count: int
    observed: dict = field(default_factory=dict)


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
                      signature=ctx.get(harness.sig), count=ctx.get(harness.count),
                      observed={name: ctx.get(sig)
                                for name, (sig, _) in harness.checks.items()})

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return SimResult(**result)
