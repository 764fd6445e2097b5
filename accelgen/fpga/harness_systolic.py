"""Self-checking harness of block ``systolic``: a fixed command program from a small ROM,
endless pseudo-random ``a``/``b``/``c`` operand streams, random backpressure on ``o`` and
``rsp``, and CRC-32 signatures of both outputs, all checked against the golden model's
:meth:`~accelgen.sim.golden.systolic.Model.words` run on the same streams at elaboration time.

::

      command ROM ─► [reg] ── cmd ─┐
      xorshift32 x ceil(Wa/32) ─► [reg] ── a ──┤            ┌─ o ──► [reg] ─► CRC-32 + count
      xorshift32 x ceil(Wb/32) ─► [reg] ── b ──┼─► systolic ┤
      xorshift32 x ceil(Wc/32) ─► [reg] ── c ──┘            └─ rsp ► [reg] ─► CRC-32 + count
           (random gaps on every input)                        (err, macs only; random
                                                                backpressure on both)
      a/b/c beats taken ─► counters        ─► all equal the golden model's values → passed

Why endless operand streams work
    How many ``a``, ``b`` and ``c`` beats a command consumes is defined by the command (and an
    erroneous command consumes none), and every bit pattern is a legal operand word (element
    bits above a mode's format, elements past ``M``/``K`` and lanes past ``N`` are ignored).
    So the harness offers an endless xorshift32 word stream on each operand port
    (:class:`~accelgen.fpga.harness.LaneBank`, one generator per 32 bits) and the golden model
    pulls the same sequences, command by command. The counts of beats taken are checked too:
    a block that takes one beat too many or too few fails even if no result shows it.

Command program (:func:`plan`, seeded by ``seed``; ``max_dim = 2 * max(R, C) + 1`` so tiles
come in full and partial blocks and ``K`` spans several ``R``-blocks), built as a
:class:`~accelgen.sim.golden.systolic_program.Program` at payload level
(:meth:`~accelgen.sim.golden.systolic_program.Program.add_words` on the endless streams)
    1. the clearing command
       (:func:`~accelgen.sim.golden.systolic_program.flush_command`): output ``none``, no
       ``accumulate``, ``K = 1``, rows covering the whole accumulator memory. The memory is
       not cleared by reset, so without it a re-run (button) would see what the previous run
       left; after it, every memory row is a function of the stimulus.
    2. in random order: for every built dataflow, one command each of plain ``raw``,
       ``accumulate``, ``preload``, output ``none`` and (when built) ``requant``, drawn by
       :func:`~accelgen.sim.golden.systolic_program.random_command` with that field forced,
       and a *widening pair* (``N`` ending inside a column block, then the same rows
       accumulated with ``N`` rounded up to whole blocks: the lanes past the first ``N`` are
       read back);
       one command with a zero dimension (err 1) and one with the first output code that
       names no output (err 4);
    3. random valid commands until the streams carry ``beats`` payload beats (``a + b + c +
       o``) in all.

Signatures
    ``o``: CRC-32 over the whole payload (``c`` lanes and ``last``), as
    :class:`~accelgen.fpga.harness.SelfCheckHarness` does. ``rsp``: CRC-32 over ``err`` and
    ``macs`` only (``err | macs << 3``): the other counters measure timing, which depends on
    the gaps and backpressure. ``o`` and ``rsp`` are independent streams whose interleaving
    depends on timing, hence two signatures.

Verdict
    Idle = every command sent, one ``rsp`` beat per command taken, nothing in flight on ``o``
    or ``rsp``; after :attr:`SystolicHarness.quiet_cycles` idle cycles (which would catch a
    late extra ``o`` beat), ``passed`` iff both signatures and the ``o``, ``rsp``, ``a``,
    ``b``, ``c`` beat counts equal the model's. A run that is not over after
    :attr:`~accelgen.fpga.harness.Harness.timeout` cycles (a hang, a missing ``rsp``) fails.

Cost (yosys, board top against the block alone): the harness adds about 0.9k LUT4 and 0.4k
FF on tiny (iCE40 and ECP5), 1.4k LUT4 and 0.7k FF on default and 2.0k LUT4 and 1.2k FF on
8x8 (ECP5), mostly the one-cycle CRC-32 update over the ``o`` word (one XOR tree of about
``(32 + W_o) / 2`` inputs per signature bit) and the ``c`` stimulus generators
(``C * acc_width / 32`` of them). The critical path stays in the block.
"""

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
from amaranth.hdl import Cat, Signal, unsigned
from amaranth.lib.memory import Memory

from ..generators.systolic import OUTPUTS, ceil_div
from ..sim.golden import systolic as golden
from ..sim.golden.systolic_program import OPERANDS, Program, flush_command, random_command
from ..sim.payload import payload_width
from .harness import Harness, LaneBank, SignatureSink, Workload, field_mask, lane_seeds, \
    lane_words, lanes, pack_fields, \
    signature, source_register

__all__ = ["Plan", "plan", "rsp_check_word", "SystolicHarness"]

#: ``ctrl`` bit fields of the random decisions (``!= 0``: 3/4 of cycles)
DECISIONS = {"cmd": (0, 2), "a": (5, 7), "b": (10, 12), "c": (15, 17), "o": (20, 22),
             "rsp": (25, 27)}
MAX_COMMANDS = 1024


@dataclass
class Plan(Program):
    """One self-check run as the golden model sees it: the
    :class:`~accelgen.sim.golden.systolic_program.Program` (``commands``, ``words``: the ROM
    contents on ``cmd`` and the operand words the block takes, ``o``, ``rsp``, ``consumed``,
    ``beats``) and the seeds of its streams.

    Members
    -------
    seeds : dict
        ``a``, ``b``, ``c`` → xorshift32 seeds of that stream's generators; ``ctrl`` → seed of
        the flow-control generator.
    """
    seeds: dict = field(default_factory=dict)


def operand_widths(config):
    """``a``, ``b``, ``c`` → payload width."""
    return {"a": payload_width(config.a_fields), "b": payload_width(config.b_fields),
            "c": payload_width(config.c_fields)}


def _seeds(config, seed):
    widths = operand_widths(config)
    counts = [lanes(widths[name]) for name in OPERANDS]
    flat = lane_seeds(seed, sum(counts) + 1)
    out, at = {}, 0
    for name, n in zip(OPERANDS, counts):
        out[name], at = tuple(flat[at:at + n]), at + n
    out["ctrl"] = flat[-1]
    return out


def _valid(config, rng, max_dim, make):
    """``make(random command)`` redrawn until valid (a forced field may make it err 3)."""
    for _ in range(100):
        cmds = make(random_command(config, rng, max_dim=max_dim))
        try:
            if all(golden.error_code(config, c) == 0 for c in cmds):
                return cmds
        except ValueError:      # a forced field does not fit its payload field
            pass
    return []


def _widen(config, cmd):
    """``cmd`` with ``N`` not a multiple of ``C``, then the same rows again with ``N``
    rounded up to whole column blocks, accumulating: the second command reads the lanes the
    first left past its ``N`` (which must hold ``ovf(init + 0)``, whatever the ignored ``b``
    lanes carried)."""
    nb = ceil_div(cmd.n, config.cols)
    first = replace(cmd, n=(nb - 1) * config.cols + 1 + cmd.n % (config.cols - 1),
                    accumulate=False, preload=False)
    return [first, replace(first, n=nb * config.cols, accumulate=True, output="raw")]


def _coverage(config, rng, max_dim):
    """Step 2 of the program (see the module docstring), shuffled (a widening pair stays
    together)."""
    variants = [{"output": "raw", "accumulate": False, "preload": False},
                {"accumulate": True, "preload": False},
                {"preload": True},
                {"output": "none"}]
    if config.requant:
        variants.append({"output": "requant"})
    units = []
    for flow in config.dataflows:
        for forced in variants:
            units.append(_valid(config, rng, max_dim,
                                lambda c, f=flow, v=forced: [replace(c, dataflow=f, **v)]))
        if config.cols > 1:
            units.append(_valid(config, rng, max_dim,
                                lambda c, f=flow: _widen(config, replace(c, dataflow=f))))
    base = random_command(config, rng, max_dim=max_dim)
    units += [[replace(base, m=0)], [replace(base, output=len(OUTPUTS))]]
    return [cmd for i in rng.permutation(len(units)) for cmd in units[i]]


def plan(config, *, beats, seed):
    """The :class:`Plan` of a run with ``seed`` that carries at least ``beats`` payload beats
    (after the clearing and coverage commands, random commands are added until it does, at
    most :data:`MAX_COMMANDS` commands)."""
    rng = np.random.default_rng(seed)
    max_dim = 2 * max(config.rows, config.cols) + 1
    seeds = _seeds(config, seed)
    widths = operand_widths(config)
    streams = [lane_words(seeds[name], widths[name]) for name in OPERANDS]
    fixed = [flush_command(config), *_coverage(config, rng, max_dim)]
    randoms = (random_command(config, rng, max_dim=max_dim) for _ in itertools.count())
    p = Plan(config, seeds=seeds)
    for i, cmd in enumerate(itertools.chain(fixed, randoms)):
        p.add_words(cmd, *streams)
        if i + 1 >= len(fixed) and p.beats >= beats or len(p.commands) >= MAX_COMMANDS:
            break
    return p


def rsp_check_word(config, err, macs):
    """The bits of an ``rsp`` beat that enter its signature: ``err | macs << W_err`` (``W_err``
    the width of the ``err`` field)."""
    return err | macs << golden.command_format(config).err_width


def workload(config, *, beats, seed):
    """:class:`~accelgen.fpga.harness.Workload` of :func:`plan`: the command and operand
    words; ``o`` entirely a result, ``rsp`` its ``err`` and ``macs`` (the cycle and stall
    counters depend on timing, not on the computation)."""
    p = plan(config, beats=beats, seed=seed)
    fields = config.rsp_fields
    rsp = [pack_fields(fields, {"err": r.err, "macs": r.macs}) for r in p.rsp]
    rows_cols = config.rows + config.cols
    return Workload(words={name: list(p.words[name]) for name in p.words},
                    golden={"o": list(p.o), "rsp": rsp},
                    checked={"o": (1 << payload_width(config.o_fields)) - 1,
                             "rsp": field_mask(fields, ("err", "macs"))},
                    timeout=16 * p.beats + 64 * len(p.commands) * (rows_cols + 4) + 1024)


class SystolicHarness(Harness):
    """Command ROM and pseudo-random operands → ``systolic`` → CRC-32 signatures of ``o`` and
    ``rsp``, checked against the golden model (see the module docstring).

    Parameters
    ----------
    spec : GeneratorSpec
    config : SystolicConfig
    beats : int
        Payload beats (``a + b + c + o``) the program carries at least (1 to 2**20, default
        1000; the clearing and coverage commands are always sent).
    seed : int
        Seed of the command program, the operand streams and the flow control.
    corrupt_expected : bool
        Flip bit 0 of the expected ``o`` signature, so a correct block must *fail*.

    Members
    -------
    done, passed, failed : Out(1)
        See :class:`~accelgen.fpga.harness.Harness`.

    Attributes
    ----------
    plan : Plan
    expected_signature, expected_count : int
        Expected ``o`` signature (corrupted when ``corrupt_expected``) and ``o`` beats;
        ``model_signature`` is the golden model's true ``o`` signature.
    sig, count : Signal
        Running ``o`` signature and ``o`` beats taken (``out``; ``rsp`` has its own
        :class:`~accelgen.fpga.harness.SignatureSink`).
    sent : Signal
        Commands sent.
    taken : dict
        ``a``/``b``/``c`` → Signal counting the beats the block took.

    Timing
    ------
    Every stream runs at 3/4 of the cycles at best (independent random gaps and
    backpressure). The block's inputs and outputs are registered, the command ROM is read
    asynchronously into the ``cmd`` register, and the harness' decisions come from
    flip-flops; the wide ``o`` signature update is one XOR tree per bit from registers to
    registers.
    """

    DEFAULT_BEATS = 1000

    @classmethod
    def workload(cls, spec, config, *, beats, seed):
        return workload(config, beats=beats, seed=seed)

    def __init__(self, spec, config, *, beats=DEFAULT_BEATS, seed=1, corrupt_expected=False):
        self.check_beats(beats)
        self.spec, self.config, self.beats, self.seed = spec, config, beats, seed
        self.plan = p = plan(config, beats=beats, seed=seed)
        self.block = spec.build(config)
        rows_cols = config.rows + config.cols
        self.quiet_cycles = 4 * rows_cols + 16
        super().__init__(timeout=16 * p.beats + 64 * len(p.commands) * (rows_cols + 4)
                         + 4 * self.quiet_cycles + 1024, ctrl_seed=p.seeds["ctrl"])
        self.o_width = payload_width(config.o_fields)
        rsp_fields = golden.command_format(config).rsp
        self.rsp_width = rsp_fields["err"].width + rsp_fields["macs"].width
        self.model_signature = signature(p.o, self.o_width)
        self.expected_signature = self.model_signature ^ (1 if corrupt_expected else 0)
        self.expected_count = len(p.o)
        widths = operand_widths(config)
        self.stimulus = {name: LaneBank(widths[name], p.seeds[name], f"stim_{name}")
                         for name in OPERANDS}
        self.out = SignatureSink(self.o_width, self.timeout, "o")
        self.rsp = SignatureSink(self.rsp_width, self.timeout, "rsp")
        self.sig, self.count = self.out.sig, self.out.count
        self.sent = Signal(range(len(p.commands) + 1))
        self.taken = {name: Signal(range(self.timeout + 1), name=f"{name}_taken")
                      for name in OPERANDS}
        rsp_sig = signature([rsp_check_word(config, r.err, r.macs) for r in p.rsp],
                            self.rsp_width)
        self.checks = {"o signature": (self.out.sig, self.expected_signature),
                       "o beats": (self.out.count, self.expected_count),
                       "rsp signature": (self.rsp.sig, rsp_sig),
                       "rsp beats": (self.rsp.count, len(p.rsp)),
                       **{f"{name} beats": (self.taken[name], p.consumed[name])
                          for name in OPERANDS}}

    def elaborate_streams(self, m, running):
        block, p = self.block, self.plan
        ok = dict(zip(DECISIONS, self.flow_control(m, running, tuple(DECISIONS.values()))))

        n = len(p.commands)
        m.submodules.rom = rom = Memory(shape=unsigned(len(block.cmd.payload.as_value())),
                                        depth=n, init=p.cmd_words)
        rd = rom.read_port(domain="comb")
        m.d.comb += rd.addr.eq(self.sent)
        more = Signal(init=1)   # registered "sent < commands"
        cvalid = source_register(m, block.cmd, offer=running & more & ok["cmd"], word=rd.data,
                                 load=[self.sent.eq(self.sent + 1), more.eq(self.sent != n - 1)],
                                 name="cmd")
        for name, bank in self.stimulus.items():
            port = getattr(block, name)
            source_register(m, port, offer=running & ok[name], word=bank.word,
                            load=bank.step(), name=name)
            with m.If(port.valid & port.ready):
                m.d.sync += self.taken[name].eq(self.taken[name] + 1)

        self.out.attach(m, block.o, take_ok=ok["o"], running=running)
        self.rsp.attach(m, block.rsp, take_ok=ok["rsp"], running=running,
                           select=lambda payload: Cat(payload.err, payload.macs))
        self.verdict(m, ~more & ~cvalid & ~block.o.valid & ~self.out.busy & ~block.rsp.valid
                     & ~self.rsp.busy & (self.rsp.count == n))
