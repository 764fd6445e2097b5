"""The analytic cycle model of block ``systolic`` (:mod:`accelgen.sim.golden.systolic_cycles`)
against the RTL's own ``cycles`` counter.

Fast tier: the Amaranth simulator at full rate on small arrays (every dimension across its
block edges, every command flag, a tight ring, no PE pipeline, the requant stage, 1-wide
arrays) and random command sequences with errors. The cocotb tier holds the model to the
emitted Verilog on the issue-13 grid (4x4, 8x8, 16x16, both dataflows; see
``test_systolic.py``). Every expected number here comes from the RTL or from a formula written
out by hand, never from the model itself.
"""

import itertools
from dataclasses import replace

import numpy as np
import pytest

from accelgen.generators.systolic import PRESETS
from accelgen.hdl.systolic import Systolic
from accelgen.sim.golden import systolic as golden
from accelgen.sim.golden.systolic_cycles import (command_cycles, gemm_cycles, scalesim_cycles,
                                                 scalesim_files, tile_floor)
from accelgen.sim.golden.systolic_program import Program, random_command
from accelgen.sim.pysim import run_streams

BOTH = ("os", "ws")


def _config(rows, cols, **kw):
    kw.setdefault("k_max", 16)
    kw.setdefault("acc_depth", 64)
    kw.setdefault("dataflows", BOTH)
    return replace(PRESETS["tiny"], rows=rows, cols=cols, **kw)


def _rtl_cycles(cfg, commands, seed=0):
    """``rsp.cycles`` of each command, run back to back at full rate in the Amaranth
    simulator (results checked against the golden model on the way)."""
    p = Program(cfg, None).run(commands, np.random.default_rng(seed))
    out, _ = run_streams(Systolic(cfg), p.words, {"o": len(p.o), "rsp": len(p.rsp)},
                         seed=seed, valid_prob=1.0, ready_prob=1.0,
                         max_cycles=4000 + 40 * sum(map(len, [*p.words.values(), p.o])))
    assert out["o"] == p.o, "o words differ from the golden model"
    return [golden.unpack_rsp(cfg, w)["cycles"] for w in out["rsp"]]


def _check(cfg, shapes, flows=BOTH, **flags):
    for flow in flows:
        commands = [golden.Command(m=m, k=k, n=n, dataflow=flow, **flags) for m, k, n in shapes]
        got = _rtl_cycles(cfg, commands)
        want = [command_cycles(cfg, c).cycles for c in commands]
        bad = [(c.m, c.k, c.n, g, w) for c, g, w in zip(commands, got, want) if g != w]
        assert not bad, f"{flow} {flags}: (m, k, n, rtl, model) {bad[:8]} ({len(bad)} of " \
                        f"{len(commands)})"


def _fits(cfg, shapes):
    """Shapes whose rows fit the memory (commands that keep their rows)."""
    return [s for s in shapes if -(-s[2] // cfg.cols) * s[0] <= cfg.acc_depth]


# dimensions below, at and across one and two blocks of a 2..4-row array; K up to k_max
DIMS = [1, 2, 3, 5, 8]
KS = [1, 2, 3, 5, 9, 16]
SHAPES = list(itertools.product(DIMS, KS, DIMS))


@pytest.mark.parametrize("rows, cols", [(2, 2), (3, 2), (2, 3), (4, 4)])
def test_model_equals_rtl_on_every_shape(rows, cols):
    _check(_config(rows, cols), SHAPES)


@pytest.mark.parametrize("rows, cols", [(1, 1), (1, 3), (3, 1)])
def test_model_equals_rtl_on_one_wide_arrays(rows, cols):
    _check(_config(rows, cols), list(itertools.product([1, 2, 4], [1, 2, 5], [1, 2, 4])))


@pytest.mark.parametrize("flags", [{"preload": True}, {"accumulate": True},
                                   {"output": "none"}], ids=lambda f: next(iter(f)))
def test_model_equals_rtl_for_commands_that_keep_rows(flags):
    cfg = _config(2, 3)
    _check(cfg, _fits(cfg, SHAPES[::2]), **flags)


def test_model_equals_rtl_through_the_requantizer():
    cfg = _config(2, 3, requant=True)
    _check(cfg, SHAPES[::2], output="requant")


@pytest.mark.parametrize("kw", [{"acc_depth": 2}, {"acc_depth": 4, "rows": 3, "cols": 3},
                                {"pe_pipeline": 0}, {"pe_pipeline": 2}, {"a_depth": 3}],
                         ids=["ring2", "ring4-3x3", "nopipe", "pipe2", "afifo3"])
def test_model_equals_rtl_with_tight_rings_and_pipelines(kw):
    """A ring of 2 or 4 rows stalls the feeder for credit all the time; the model must know
    when the drain gives each row back."""
    kw = dict(kw)
    cfg = _config(kw.pop("rows", 2), kw.pop("cols", 2), **kw)
    shapes = [s for s in SHAPES[::2] if not (s[1] > cfg.rows and s[0] > cfg.acc_depth)]
    _check(cfg, shapes)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_model_equals_rtl_for_random_command_sequences(seed):
    """Random commands back to back (every flag, mode and output, errors among them): each
    command's counter is the model's, whatever ran before it."""
    cfg = _config(3, 2, requant=True, modes=("s8s8", "s4s4"))
    rng = np.random.default_rng(seed)
    commands = [random_command(cfg, rng, allow_errors=True) for _ in range(12)]
    got = _rtl_cycles(cfg, commands, seed)
    want = [command_cycles(cfg, c).cycles for c in commands]
    assert got == want
    assert any(w == 0 for w in want) and any(w > 0 for w in want)


# -- closed forms written out by hand ----------------------------------------------------------

def test_small_gemm_has_no_drain_penalty():
    """os tiles with R <= K < 2R-1 go back to back: M=N=64, K=16 on 16x16 issues its 16 tiles
    of 16 steps without a gap (the old result chain spaced them 2R-1 = 31 cycles)."""
    cfg = PRESETS["16x16"]
    r = command_cycles(cfg, golden.Command(m=64, k=16, n=64))
    assert r.last_step - r.first_step + 1 == 16 * 16
    # K < R: one tile per R cycles (one result row per cycle into the memory)
    r = command_cycles(cfg, golden.Command(m=64, k=4, n=64))
    assert r.last_step - r.first_step == 15 * 16 + 3


def test_one_tile_floor_by_phase():
    """16^3 on 16x16, os: 3 cycles of command check, 2 of the a FIFO, K=16 steps, the array
    (15 rows + 15 columns of skew, product and capture registers, the result chain to the
    bottom edge: R + C + p + 1 + R - 1 = 49) and 10 of writer, drain and o."""
    cfg = PRESETS["16x16"]
    floor = tile_floor(cfg, 16)
    assert floor == {"check": 3, "operands": 2, "steps": 16, "skew": 49, "drain": 10,
                     "total": 80}
    assert gemm_cycles(cfg, 16, 16, 16) == 80


def test_scalesim_formula():
    """ISPASS 2020 eq. 4: (2R + C + T - 2) * ceil(S_R/R) * ceil(S_C/C)."""
    cfg = PRESETS["16x16"]
    assert scalesim_cycles(cfg, 256, 256, 256, "os") == (32 + 16 + 256 - 2) * 16 * 16
    assert scalesim_cycles(cfg, 128, 768, 768, "ws") == (32 + 16 + 128 - 2) * 48 * 48
    assert scalesim_cycles(cfg, 17, 31, 1, "os") == (32 + 16 + 31 - 2) * 2 * 1
    text, topo = scalesim_files(cfg, [(17, 31, 1)], "ws")
    assert "ArrayHeight:    16" in text and "Dataflow : ws" in text
    assert topo.splitlines() == ["Layer name,M,N,K,", "gemm_17x31x1,17,1,31,"]


def test_errors_report_zero_cycles():
    cfg = _config(2, 2)
    r = command_cycles(cfg, golden.Command(m=1, k=cfg.k_max + 1, n=1))
    assert (r.cycles, r.err, r.first_step) == (0, 2, None)


def _handshake_cycles(cfg, commands, ready=lambda cycle: True):
    """Cycles of every ``o`` and ``rsp`` transfer of ``commands`` run with inputs at full rate
    and ``o.ready`` from ``ready(cycle)`` (``rsp.ready`` always high)."""
    from amaranth.sim import Simulator
    p = Program(cfg, None).run(commands, np.random.default_rng(0))
    dut = Systolic(cfg)
    seen = {"o": [], "rsp": []}

    async def bench(ctx):
        pending = {name: list(words) for name, words in p.words.items()}
        ctx.set(dut.rsp.ready, 1)
        for cycle in range(3000):
            for name, words in pending.items():
                port = getattr(dut, name)
                if words:
                    ctx.set(port.payload.as_value(), words[0])
                ctx.set(port.valid, int(bool(words)))
            ctx.set(dut.o.ready, int(ready(cycle)))
            sampled = [getattr(dut, n).ready for n in pending] + \
                [dut.o.valid, dut.o.ready, dut.rsp.valid]
            values = (await ctx.tick().sample(*sampled))[2:]
            for name, took in zip(pending, values):
                if took and pending[name]:
                    pending[name].pop(0)
            o_valid, o_ready, rsp_valid = values[len(pending):]
            if o_valid and o_ready:
                seen["o"].append(cycle)
            if rsp_valid:
                seen["rsp"].append(cycle)
                if len(seen["rsp"]) == len(p.rsp):
                    return

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("shape, stall", [((1, 1, 1), False), ((1, 3, 5), False),
                                          ((3, 2, 3), True)],
                         ids=["one-row", "rows-apart", "o-stalled"])
def test_rsp_comes_after_the_last_o_word(shape, stall):
    """A command responds only once its last ``o`` word has left: the drain is done when the
    output FIFO is empty, its inner memory included (a lone last word sits there for a cycle
    before the output register shows it; the drain once counted that cycle as empty and
    raised ``rsp`` together with the word)."""
    cfg = _config(2, 2)
    m, k, n = shape
    seen = _handshake_cycles(cfg, [golden.Command(m=m, k=k, n=n)],
                             ready=(lambda c: c % 2 == 0) if stall else (lambda c: True))
    assert len(seen["o"]) == m * -(-n // 2) and len(seen["rsp"]) == 1
    assert seen["rsp"][0] > seen["o"][-1], seen
