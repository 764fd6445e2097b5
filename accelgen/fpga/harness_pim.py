"""Self-checking harness of block ``pim``: an instruction program in a ROM (directed errors,
a GEMV's weight load, then GEMV runs in every mode the config builds, with and without the
activation step), random gaps on ``cmd`` and random backpressure on ``o`` and ``rsp``, and
CRC-32 signatures of both outputs, checked against the golden model run on the same program
at elaboration time.

::

      program ROM ─► [reg] ── cmd ──► pim channel ─┬─ o ──► [reg] ─► CRC-32 + count
      (random gaps)                   (controller,  └─ rsp ► [reg] ─► CRC-32 + count
                                       bank model)     (eoc, err, index, busy, macs;
                                                        random backpressure on both)
                                                    ─► all equal the golden model's → passed

Program (:func:`plan`, seeded by ``seed``): the directed errors of
:func:`~accelgen.sim.golden.pim_program.error_instrs` (nothing open yet), the weight load of
a GEMV that fills the geometry's first rows
(:func:`~accelgen.sim.golden.pim_gemv.default_shape`, as the testbench's ``gemv``), then GEMV
runs with random ``x`` and bias, alternating the plain and
(with two row buffers) overlapped schedules and the ``relu_requant`` activation, until the ROM
holds at least ``beats`` instructions. The load rewrites every column the runs read, so a
re-run after a reset (the storage survives it) gives the same results.

Signatures: ``o`` over the whole payload; ``rsp`` over ``eoc``, ``err``, ``index``, ``busy``
and ``macs`` (the other counters measure timing, which the gaps, backpressure and refresh
change). The verdict is :class:`~accelgen.fpga.harness.Harness`'s: idle for
:attr:`PimHarness.quiet_cycles`, then every signature and beat count must match.
"""

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Cat, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from ..generators.base import field_offsets
from ..sim.golden.pim import Instr, Model, pack_instr
from ..sim.golden.pim_gemv import compile_gemv, default_shape, gemv_program
from ..sim.golden.pim_program import Expected, error_instrs
from ..sim.payload import payload_width
from .harness import (Harness, SignatureSink, Workload, field_mask, pack_fields, signature,
                      source_register)

__all__ = ["Plan", "plan", "rsp_check_word", "PimHarness", "RSP_CHECKED", "MAX_INSTRUCTIONS"]

DECISIONS = {"cmd": (0, 2), "o": (5, 7), "rsp": (10, 12)}
MAX_INSTRUCTIONS = 1 << 14
#: the rsp fields the signature covers, LSB first
RSP_CHECKED = ("eoc", "err", "index", "busy", "macs")


@dataclass
class Plan:
    """One self-check run: the instructions, and what the golden model expects back.

    Members
    -------
    instrs : list of Instr
    expected : Expected
        ``o`` words and ``rsp`` beats (:class:`~accelgen.sim.golden.pim_program.Expected`).
    shape : tuple
        ``(N, K)`` of the GEMV.
    """
    instrs: list
    expected: object = field(repr=False)
    shape: tuple = ()


def plan(config, *, beats, seed):
    """The :class:`Plan` of a run with ``seed`` holding at least ``beats`` instructions (at
    most :data:`MAX_INSTRUCTIONS`)."""
    rng = np.random.default_rng(seed)
    n, k = default_shape(config)
    w = rng.integers(-128, 128, (n, k))
    x = rng.integers(-128, 128, k)
    g = compile_gemv(config, w, x)
    instrs = [ins for ins, _ in error_instrs(config, Model(config))] + [Instr("EOC")] + g.load
    modes = ["plain", "overlap"] if config.row_buffers == 2 else ["plain"]
    half = 1 << (min(config.bias_width, 20) - 1)
    runs = 0
    while len(instrs) < min(beats, MAX_INSTRUCTIONS) or runs < len(modes) * 2:
        x = rng.integers(-128, 128, k)
        b = rng.integers(-half, half, n)
        act = ("relu_requant", int(rng.integers(0, 12))) if runs % 2 else None
        run, _ = gemv_program(g.layout, x, b, act=act, mode=modes[(runs // 2) % len(modes)])
        if len(instrs) + len(run) > MAX_INSTRUCTIONS and runs >= len(modes) * 2:
            break
        instrs += run
        runs += 1
    return Plan(instrs, Expected(config, instrs), (n, k))


def rsp_check_word(config, rsp):
    """The bits of an ``rsp`` beat (a dict) that enter its signature: the fields of
    :data:`RSP_CHECKED`, packed LSB first at their widths."""
    widths = {f.name: f.width for f in config.rsp_fields}
    word, at = 0, 0
    for name in RSP_CHECKED:
        word |= (rsp[name] & ((1 << widths[name]) - 1)) << at
        at += widths[name]
    return word


def workload(config, *, beats, seed):
    """:class:`~accelgen.fpga.harness.Workload` of :func:`plan`: the instruction words;
    ``o`` a result (its ``kind`` only for the controller alone, whose stub memory reads 0),
    ``rsp`` the fields of :data:`RSP_CHECKED`; the DRAM trace is not compared."""
    p = plan(config, beats=beats, seed=seed)
    exp = p.expected
    o_mask = (field_mask(config.o_fields, ("kind",)) if config.controller_only
              else (1 << payload_width(config.o_fields)) - 1)
    rsp = [pack_fields(config.rsp_fields, {n: r[n] for n in RSP_CHECKED}) for r in exp.rsp]
    refresh = (exp.schedule.end // config.timing.tREFI + 2) * config.forced_refresh_bound
    return Workload(words={"cmd": list(pack_instr(config, p.instrs))},
                    golden={"o": [w & o_mask for w in exp.o], "rsp": rsp},
                    checked={"o": o_mask, "rsp": field_mask(config.rsp_fields, RSP_CHECKED)},
                    timeout=8 * (exp.schedule.end + refresh) + 64 * len(p.instrs) + 4096)


class PimHarness(Harness):
    """Program ROM → ``pim`` channel → CRC-32 signatures of ``o`` and ``rsp`` (see the module
    docstring).

    Parameters
    ----------
    spec : GeneratorSpec
    config : PimConfig
        A whole channel (not ``controller_only``).
    beats : int
        Instructions the program holds at least (default 1000).
    seed : int
    corrupt_expected : bool
        Flip bit 0 of the expected ``o`` signature, so a correct block must *fail*.
    """

    DEFAULT_BEATS = 1000

    @classmethod
    def workload(cls, spec, config, *, beats, seed):
        return workload(config, beats=beats, seed=seed)

    def __init__(self, spec, config, *, beats=DEFAULT_BEATS, seed=1, corrupt_expected=False):
        self.check_beats(beats)
        self.spec, self.config, self.beats, self.seed = spec, config, beats, seed
        self.plan = p = plan(config, beats=beats, seed=seed)
        exp = p.expected
        self.block = spec.build(config)
        self.quiet_cycles = 64
        refresh = (exp.schedule.end // config.timing.tREFI + 2) * config.forced_refresh_bound
        super().__init__(timeout=8 * (exp.schedule.end + refresh) + 64 * len(p.instrs) + 4096,
                         ctrl_seed=seed * 2654435761 % (1 << 32) or 1)
        # the controller alone: a stub memory answers reads with data 0, so only the kinds of
        # the o beats are known (and checked)
        self.o_width = 2 if config.controller_only else payload_width(config.o_fields)
        offsets = field_offsets(config.rsp_fields)
        self.rsp_width = sum(offsets[name][1] for name in RSP_CHECKED)
        o_words = exp.o
        if config.controller_only:
            kind_at = field_offsets(config.o_fields)["kind"][0]
            o_words = [(w >> kind_at) & 3 for w in exp.o]
        self.model_signature = signature(o_words, self.o_width)
        self.expected_signature = self.model_signature ^ (1 if corrupt_expected else 0)
        self.expected_count = len(exp.o)
        self.out = SignatureSink(self.o_width, self.timeout, "o")
        self.rsp = SignatureSink(self.rsp_width, self.timeout, "rsp")
        self.sig, self.count = self.out.sig, self.out.count
        self.sent = Signal(range(len(p.instrs) + 1))
        rsp_sig = signature([rsp_check_word(config, r) for r in exp.rsp], self.rsp_width)
        self.checks = {"o signature": (self.out.sig, self.expected_signature),
                       "o beats": (self.out.count, self.expected_count),
                       "rsp signature": (self.rsp.sig, rsp_sig),
                       "rsp beats": (self.rsp.count, len(exp.rsp))}

    def elaborate_streams(self, m, running):
        block, p = self.block, self.plan
        ok = dict(zip(DECISIONS, self.flow_control(m, running, tuple(DECISIONS.values()))))
        n = len(p.instrs)
        words = pack_instr(self.config, p.instrs)
        m.submodules.rom = rom = Memory(shape=unsigned(len(block.cmd.payload.as_value())),
                                        depth=n, init=words)
        rd = rom.read_port(domain="comb")
        m.d.comb += rd.addr.eq(self.sent)
        more = Signal(init=1)
        cvalid = source_register(m, block.cmd, offer=running & more & ok["cmd"], word=rd.data,
                                 load=[self.sent.eq(self.sent + 1), more.eq(self.sent != n - 1)],
                                 name="cmd")
        if self.config.controller_only:
            self._stub_memory(m, block)
            self.out.attach(m, block.o, take_ok=ok["o"], running=running,
                            select=lambda payload: payload.kind)
        else:
            self.out.attach(m, block.o, take_ok=ok["o"], running=running)
        self.rsp.attach(m, block.rsp, take_ok=ok["rsp"], running=running,
                        select=lambda payload: Cat(*(getattr(payload, f)
                                                     for f in RSP_CHECKED)))
        self.verdict(m, ~more & ~cvalid & ~block.o.valid & ~self.out.busy & ~block.rsp.valid
                     & ~self.rsp.busy & (self.rsp.count == len(p.expected.rsp)))

    def _stub_memory(self, m, block):
        """A delay line standing in for the bank model: every read command comes back
        :data:`~accelgen.hdl.pim.bank.PIPELINE` cycles later as an ``rdata`` beat of data 0 and
        the read's kind."""
        from ..generators.pim import DRAM_COMMANDS, O_KINDS
        from ..hdl.pim.bank import PIPELINE
        cmd = block.dram.payload.cmd
        kinds = {"RD": "column", "RD_MAC": "mac", "RD_AF": "af"}
        valid = [Signal(name=f"stub_v{k}") for k in range(PIPELINE)]
        kind = [Signal(2, name=f"stub_k{k}") for k in range(PIPELINE)]
        is_read = Cat(cmd == DRAM_COMMANDS.index(c) for c in kinds).any()
        code = 0
        for c, k in kinds.items():
            code = Mux(cmd == DRAM_COMMANDS.index(c), O_KINDS.index(k), code)
        m.d.sync += [valid[0].eq(block.dram.valid & is_read), kind[0].eq(code)]
        for k in range(1, PIPELINE):
            m.d.sync += [valid[k].eq(valid[k - 1]), kind[k].eq(kind[k - 1])]
        m.d.comb += [block.rdata.valid.eq(valid[-1]), block.rdata.payload.kind.eq(kind[-1])]
