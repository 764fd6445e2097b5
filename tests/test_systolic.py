"""Block ``systolic``: the RTL in the Amaranth simulator against its golden model (fast
tier), the emitted Verilog in cocotb (``cocotb``), its FPGA self-check harness (fast tier) and
its synthesis and board builds (``fpga``).

Every Amaranth-simulator run sends a sequence of commands with their ``a``/``b`` beats, with
random gaps and backpressure on every stream, and compares every ``o`` word and the
``err``/``macs`` (and, for valid commands, ``busy``) fields of every ``rsp`` word with a
:class:`accelgen.sim.golden.systolic_program.Program`, which runs the same sequence on the
golden model (so accumulate chains and memory contents left by earlier commands are
covered). Seeds are in the test ids.
"""

import itertools
import random
import re
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from accelgen.fpga import harness as hz
from accelgen.fpga import harness_systolic as hs
from accelgen.generators.base import field_offsets
from accelgen.generators.emit import emit, verilog_text
from accelgen.generators.registry import REGISTRY
from accelgen.generators.systolic import PRESETS, SystolicConfig
from accelgen.hdl.systolic import Systolic
from accelgen.numerics import ConfigError
from accelgen.sim.golden import systolic as golden
from accelgen.sim.golden.elements import fp32_value
from accelgen.sim.golden.systolic_program import Program, random_command
from accelgen.sim.payload import payload_width
from accelgen.sim.pysim import run_streams
from accelgen.sim.runner import build_dir_for, default_testcases, run_emitted, simulate

from support import RESOURCE_KEYS as KEYS
from support import SEED, needs_icarus
from support import accepted_words as _accepted
from support import explain as _explain

TINY = PRESETS["tiny"]
SYS = REGISTRY["systolic"]
SYS_TINY = SYS.presets["tiny"]
MAC = REGISTRY["mac"]          # run options and defaults are compared with a block without them
BOTH = ("os", "ws")


def _config(rows, cols, **kw):
    kw.setdefault("k_max", 3 * rows + 1)
    kw.setdefault("acc_depth", 64)
    return replace(TINY, rows=rows, cols=cols, **kw)


def _run(cfg, commands, seed, *, valid_prob=0.8, ready_prob=0.8, model=None):
    p = Program(cfg, model).run(commands, np.random.default_rng(seed))
    out, cycles = run_streams(Systolic(cfg), p.words, {"o": len(p.o), "rsp": len(p.rsp)},
                              seed=seed, valid_prob=valid_prob, ready_prob=ready_prob,
                              max_cycles=4000 + 40 * sum(map(len, [*p.words.values(), p.o])))
    got_rsp = [golden.unpack_rsp(cfg, w) for w in out["rsp"]]
    assert [(r["err"], r["macs"]) for r in got_rsp] == [(r.err, r.macs) for r in p.rsp], \
        f"seed {seed}: rsp"
    assert [r["busy"] for r in got_rsp if not r["err"]] == \
        [r.a_beats for r in p.rsp if not r.err], f"seed {seed}: busy != steps (a beats)"
    assert out["o"] == p.o, f"seed {seed}: o words differ"
    return got_rsp, cycles


# -- random command sequences: 2x2 and 4x4, both dataflows, int8 and int4 ---------------------

ARRAYS = [
    pytest.param(_config(2, 2, dataflows=BOTH), id="2x2-both-s8s8"),
    pytest.param(_config(2, 2, dataflows=("os",), modes=("s4s4", "u8s8")), id="2x2-os-int4"),
    pytest.param(_config(2, 3, dataflows=("ws",), modes=("s4s4", "s8s4")), id="2x3-ws-int4"),
    pytest.param(_config(4, 4, dataflows=BOTH, modes=("s8s8", "u8s8", "s4s4"), requant=True),
                 id="4x4-both-mixed-requant"),
    pytest.param(_config(4, 4, dataflows=("os",), overflow="saturate", acc_width=18,
                         pe_pipeline=0), id="4x4-os-saturate18-nopipe"),
    pytest.param(_config(3, 4, dataflows=("ws",), overflow="saturate", acc_width=17,
                         requant=True, rounding="half_even"), id="3x4-ws-saturate17"),
    pytest.param(_config(3, 3, dataflows=BOTH, modes=("s8s8", "u8s8"), lut_rows=2,
                         pe_pipeline=2), id="3x3-both-lut-multipliers-pipe2"),
    pytest.param(_config(3, 2, dataflows=BOTH, modes=("s8s8", "u8s8"), lut_rows=1,
                         rom_rows=1), id="3x2-both-table-and-lut-multipliers"),
    pytest.param(_config(2, 3, dataflows=("ws",), modes=("s4s4", "s8s4"), rom_rows=2,
                         pe_pipeline=0), id="2x3-ws-table-multipliers-nopipe"),
    pytest.param(_config(2, 2, dataflows=BOTH, modes=("e4m3", "e5m2", "e4m3e5m2"),
                         acc_width=32, requant=True), id="2x2-both-fp8-convert"),
    pytest.param(_config(2, 3, dataflows=("os",), modes=("bf16", "fp16"), acc_width=32,
                         requant=True, out_format="p8"), id="2x3-os-bf16-fp16-posit-out"),
    pytest.param(_config(3, 2, dataflows=("ws",), modes=("e2m1", "e3m2"), acc_width=32,
                         pe_pipeline=0, requant=True, out_format="e2m1", out_saturate=False),
                 id="3x2-ws-fp4-fp6-nopipe"),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("cfg", ARRAYS)
def test_random_commands(cfg, seed):
    rng = np.random.default_rng(seed)
    commands = [random_command(cfg, rng) for _ in range(4)]
    _run(cfg, commands, seed)


@pytest.mark.parametrize("cfg", ARRAYS[:4])
def test_every_shape_edge(cfg):
    """M, K, N at 1, R (or C), R+1 and 3R+1 in both dataflows, full rate and no gaps."""
    R = cfg.rows
    dims = sorted({1, R, R + 1, 3 * R + 1})
    rng = random.Random(7)
    commands = []
    for flow in cfg.dataflows:
        for _ in range(3):
            commands.append(golden.Command(m=rng.choice(dims), k=rng.choice(dims),
                                           n=rng.choice(dims + [cfg.cols + 1]), dataflow=flow))
    _run(cfg, commands, 3, valid_prob=1.0, ready_prob=1.0)


@pytest.mark.parametrize("flow", BOTH)
def test_float_bubbles_and_padding_add_nothing(flow):
    """Float builds: a bubble (gaps on ``a``) must add +0, not +0 * inf = NaN, and ws
    elements past K (inf junk) must not meet their +0 weights; columns with an inf in B give
    inf (A all ones), not NaN."""
    cfg = _config(2, 2, dataflows=BOTH, modes=("e5m2",), acc_width=32)
    m, k, n = 5, 3, 3
    a = np.ones((m, k))
    b = np.full((k, n), 2.0)
    b[0, 0] = b[2, 1] = np.inf
    cmd = golden.Command(m, k, n, dataflow=flow)
    p = Program(cfg).run([cmd], arrays=[(a, b, None)])
    inf_code = 0x7C                                             # e5m2 +inf
    if flow == "ws":        # a elements past K (slot 1 of each second beat) carry inf
        p.words["a"] = [w | (inf_code << 8) if t % (2 * m) >= m else w
                        for t, w in enumerate(p.words["a"])]
    y = golden.unpack_rows(cfg, cmd, p.o)
    assert np.isinf(fp32_value(y)[:, :2]).all() and (fp32_value(y)[:, 2] == 6).all()
    out, _ = run_streams(Systolic(cfg), p.words, {"o": len(p.o), "rsp": 1}, seed=4,
                         valid_prob=0.4, ready_prob=0.7, max_cycles=3000)
    assert out["o"] == p.o


def test_float_stale_weights_add_nothing_after_a_ws_command():
    """Float builds with both dataflows: a ws command leaves its last weights (inf) in the
    PEs, whose bubbles then multiply them by the null operand (not by +0: NaN); the next os
    command must come out exact."""
    cfg = _config(2, 2, dataflows=BOTH, modes=("e5m2",), acc_width=32)
    ws = golden.Command(2, 2, 2, dataflow="ws")
    os_ = golden.Command(3, 3, 2, dataflow="os")
    inf = np.full((2, 2), np.inf)
    p = Program(cfg).run([ws, os_], arrays=[(np.ones((2, 2)), inf, None),
                                            (np.ones((3, 3)), np.ones((3, 2)), None)])
    assert (fp32_value(golden.unpack_rows(cfg, os_, p.o[2:])) == 3).all()
    out, _ = run_streams(Systolic(cfg), p.words, {"o": len(p.o), "rsp": 2}, seed=5,
                         valid_prob=0.5, ready_prob=0.8, max_cycles=3000)
    assert out["o"] == p.o


def test_accumulate_chain_and_none():
    """K split over three commands: overwrite + none, accumulate + none, accumulate + raw;
    the last one must equal the whole product (checked against numpy directly too)."""
    cfg = _config(2, 2, dataflows=BOTH, acc_depth=32)
    rng = np.random.default_rng(5)
    M, N, ks = 5, 3, (2, 3, 4)
    a = [rng.integers(-128, 128, (M, k)) for k in ks]
    b = [rng.integers(-128, 128, (k, N)) for k in ks]
    cmds = [golden.Command(m=M, k=k, n=N, accumulate=i > 0, output="none" if i < 2 else "raw",
                           dataflow=("os", "ws", "os")[i]) for i, k in enumerate(ks)]
    p = Program(cfg).run(cmds, arrays=[(x, y, None) for x, y in zip(a, b)])
    assert (golden.unpack_rows(cfg, cmds[2], p.o) == sum(x @ y for x, y in zip(a, b))).all()
    out, _ = run_streams(Systolic(cfg), p.words, {"o": len(p.o), "rsp": 3}, seed=5,
                         valid_prob=0.7, ready_prob=0.7, max_cycles=5000)
    assert out["o"] == p.o
    assert [golden.unpack_rsp(cfg, w)["err"] for w in out["rsp"]] == [0, 0, 0]


def test_junk_past_n_is_ignored():
    """Bits the spec says are ignored (b lanes past N here) must not reach the accumulator
    memory: a later accumulate command would read them back."""
    cfg = TINY
    model, C = golden.Model(cfg), golden.Command
    first, second = C(1, 1, 1, output="none"), C(1, 1, 2, accumulate=True)
    r1, r2 = model.run(first, [[3]], [[5]]), model.run(second, [[1]], [[1, 1]])
    junk_b = [w | (7 << cfg.b_width) for w in r1.b_words]      # lane 1 = 7, past N = 1
    out, _ = run_streams(Systolic(cfg), {"cmd": [golden.pack_command(cfg, c) for c in
                                                 (first, second)],
                                         "a": r1.a_words + r2.a_words, "b": junk_b + r2.b_words},
                         {"o": 1, "rsp": 2}, max_cycles=2000)
    assert out["o"] == r2.o_words


def test_preload_junk_past_n_is_ignored():
    """The same for the ``c`` lanes past N of a preload, with N one lane into a second column
    block and every beat back to back: the partial block's first beat is taken in the cycle
    after the full block's last one, and its lane mask must already be the partial one (a
    wider accumulate command reads those lanes back)."""
    cfg = TINY
    C, W = cfg.cols, cfg.acc_width
    model, Cmd = golden.Model(cfg), golden.Command
    m, n = 2, C + 1
    rng = np.random.default_rng(5)
    first = Cmd(m, 1, n, preload=True, output="none")
    second = Cmd(m, 1, 2 * C, accumulate=True)
    r1 = model.run(first, [[1]] * m, [[0] * n], rng.integers(-99, 99, (m, n)))
    r2 = model.run(second, [[1]] * m, [[1] * 2 * C])
    lanes_past_n = sum(((1 << W) - 1) << (j * W) for j in range(n - C, C))
    junk_c = [w | lanes_past_n if i >= m else w for i, w in enumerate(r1.c_words)]
    assert junk_c[m:] != r1.c_words[m:]
    out, _ = run_streams(Systolic(cfg), {
        "cmd": [golden.pack_command(cfg, c) for c in (first, second)],
        "a": r1.a_words + r2.a_words, "b": r1.b_words + r2.b_words, "c": junk_c},
        {"o": len(r2.o_words), "rsp": 2}, max_cycles=2000)
    assert out["o"] == r2.o_words


def test_errors_consume_nothing():
    """Every error code, between valid commands whose results prove that the erroneous ones
    took no a/b beats and left the memory alone (the last command accumulates)."""
    cfg = _config(2, 2, dataflows=("ws",), modes=("s8s8", "s4s4", "u8s8"), acc_depth=16,
                  k_max=8)
    C = golden.Command
    commands = [
        C(m=3, k=3, n=3, output="none"),
        C(m=0, k=3, n=3),                                   # 1: zero dimension
        C(m=3, k=0, n=3, output=3),                         # 1 wins over 4
        C(m=3, k=9, n=3),                                   # 2: k > k_max
        C(m=9, k=2, n=3, output="none"),                    # 3: NB*M = 18 > 16
        C(m=17, k=3, n=1),                                  # 3: ws, K > R, M > acc_depth
        C(m=2, k=2, n=2, output=3),                         # 4: output code 3
        C(m=2, k=2, n=2, output="requant"),                 # 4: no requant stage
        C(m=2, k=2, n=2, mode=3),                           # 4: mode code not built
        C(m=3, k=3, n=3, accumulate=True),
        C(m=17, k=2, n=1),                                  # ws, K <= R: streams, fine
    ]
    got, _ = _run(cfg, commands, 11)
    assert [r["err"] for r in got] == [0, 1, 1, 2, 3, 3, 4, 4, 4, 0, 0]
    for r in got:
        if r["err"]:
            assert all(r[k] == 0 for k in ("cycles", "busy", "macs"))


def test_reset_midcommand():
    """A reset in the middle of a long command, then a correct next sequence (which must not
    depend on the interrupted command's memory rows: it overwrites first)."""
    cfg = _config(2, 2, dataflows=BOTH, k_max=16)
    rng = np.random.default_rng(2)
    first = Program(cfg).run([golden.Command(m=7, k=16, n=5, dataflow="os")], rng)
    second = Program(cfg).run([golden.Command(m=5, k=4, n=3, dataflow="ws", output="none"),
                               golden.Command(m=5, k=7, n=3, dataflow="os", accumulate=True),
                               golden.Command(m=3, k=2, n=3, dataflow="ws", preload=True)], rng)
    for at in (40, 90):
        out, _ = run_streams(Systolic(cfg), first.words, {"o": 10 ** 6},
                             seed=at, valid_prob=0.9, ready_prob=0.9,
                             reset_at=(at, second.words, {"o": len(second.o), "rsp": 3}),
                             max_cycles=4000)
        assert out["o"] == second.o, f"reset at {at}"
        assert [(golden.unpack_rsp(cfg, w)["err"], golden.unpack_rsp(cfg, w)["macs"])
                for w in out["rsp"]] == [(r.err, r.macs) for r in second.rsp]


@pytest.mark.parametrize("cfg", [
    pytest.param(_config(2, 2, dataflows=BOTH, k_max=16), id="2x2-both"),
    pytest.param(_config(3, 2, dataflows=("os",), k_max=16, pe_pipeline=0), id="3x2-os-nopipe"),
    pytest.param(_config(3, 3, dataflows=BOTH, k_max=16, lut_rows=1, rom_rows=1,
                         pe_pipeline=2), id="3x3-both-soft-multipliers-pipe2"),
    pytest.param(_config(2, 2, dataflows=BOTH, k_max=16, modes=("e4m3",), acc_width=32),
                 id="2x2-both-fp8"),
])
def test_reset_clears_the_accumulators(cfg):
    """The PEs' accumulators are not reset: the reset sends a ``last`` wave that clears them.
    A reset at one of 16 cycles of an os GEMM (every third from 12: partial sums sit in the
    PEs, the skew registers and the product registers), then an os GEMM that starts with
    them: exact."""
    rng = np.random.default_rng(5)
    first = Program(cfg).run([golden.Command(m=7, k=16, n=5, dataflow="os")], rng)
    second = Program(cfg).run([golden.Command(m=2 * cfg.rows, k=5, n=cfg.cols,
                                              dataflow="os")], rng)
    for at in range(12, 60, 3):
        out, _ = run_streams(Systolic(cfg), first.words, {"o": 10 ** 6}, seed=at,
                             reset_at=(at, second.words, {"o": len(second.o), "rsp": 1}),
                             max_cycles=2000)
        assert out["o"] == second.o, f"reset at cycle {at}"


# -- counters and utilization ----------------------------------------------------------------

@pytest.mark.parametrize("flow", BOTH)
def test_counters_at_full_rate(flow):
    """No gaps, no backpressure: every step issues back to back once the first panel and
    weights are in (ws: weight tiles of at least 2R+4 rows hide the weight load), so
    busy = number of steps and the overhead is the first panel plus fill and drain."""
    cfg = _config(4, 4, dataflows=(flow,), k_max=32, acc_depth=64)
    M, K, N = 12, 32, 8
    got, _ = _run(cfg, [golden.Command(m=M, k=K, n=N)], 0, valid_prob=1.0, ready_prob=1.0)
    r = got[0]
    steps = (N // 4) * ((M // 4) * K if flow == "os" else (K // 4) * M)
    assert r["busy"] == steps
    assert r["busy"] + r["stall_a"] + r["stall_b"] + r["stall_out"] <= r["cycles"]
    # os: the first step's panel row is in one cycle before the a FIFO (latency 2) has its beat
    assert r["stall_a"] == (flow == "os") and r["stall_out"] == 0
    overhead = r["cycles"] - steps
    assert overhead < K + 3 * (cfg.rows + cfg.cols) + 24, r     # first panel + fill + drain


def test_counters_attribute_stalls():
    """A starved a stream shows up as stall_a, a slow reader of o as stall_out (many short
    tiles against a 2-row accumulator ring)."""
    cfg = _config(2, 2, dataflows=("os",), k_max=8, acc_depth=2)
    cmd = [golden.Command(m=32, k=4, n=4)]
    starved, _ = _run(replace(cfg, acc_depth=64), cmd, 4, valid_prob={"a": 0.3},
                      ready_prob=1.0)
    slow, _ = _run(cfg, cmd, 4, valid_prob=1.0, ready_prob=0.1)
    assert starved[0]["stall_a"] > 200 and starved[0]["stall_out"] == 0
    # stall_a: only the first step's one-cycle wait for the a FIFO (see above)
    assert slow[0]["stall_out"] > 200 and slow[0]["stall_a"] == 1


# -- structure ---------------------------------------------------------------------------------

def _names(cfg):
    return set(re.findall(r"\b(pe\d+_\d+_\w+)", verilog_text(Systolic(cfg), "systolic")))


def test_one_dataflow_builds_have_none_of_the_other():
    os_only = _names(_config(2, 2, dataflows=("os",)))
    ws_only = _names(_config(2, 2, dataflows=("ws",)))
    both = _names(_config(2, 2, dataflows=BOTH))
    ws_parts = ("_w_s", "_swap", "_ps_in", "_ws_mode")
    os_parts = ("_out", "_ch", "_cv", "_emit", "_last", "_b_in")
    assert not [n for n in os_only if any(p in n for p in ws_parts)]
    assert not [n for n in ws_only if any(p in n for p in os_parts)]
    assert [n for n in both if "_w_s" in n] and [n for n in both if "_ch" in n]


def _product_pairs():
    """Operand pairs for the soft multipliers: every pair of signed 7-bit operands, and every
    9-bit operand (the array's widest: u8 extended) against the 9-bit corners, both ways."""
    corners = (-256, -255, -129, -128, -1, 0, 1, 127, 128, 255)
    pairs = [(x, y) for x in range(-64, 64) for y in range(-64, 64)]
    pairs += [(x, y) for x in range(-256, 256) for y in corners]
    return pairs + [(y, x) for x, y in pairs[-5120:]]


def test_lut_product_is_exact():
    """Every pair of signed 7-bit operands, and every 9-bit operand (the array's widest: u8
    extended) against the 9-bit corner values."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator

    from accelgen.hdl.common.arith import lut_product
    m = Module()
    a, b, p = Signal(signed(9)), Signal(signed(9)), Signal(signed(18))
    m.d.comb += p.eq(lut_product(m, a, b, name="t"))
    pairs = _product_pairs()
    bad = []

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a, x)
            ctx.set(b, y)
            if ctx.get(p) != x * y:
                bad.append((x, y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad


def test_rom_product_is_exact():
    """The quarter-square table product one cycle after its operands, as registers ``a`` and
    ``b`` load them: every pair of signed 7-bit operands, and every 9-bit operand against the
    9-bit corner values (the table's first and last words: ``(-256) + (-256)``, ``-256 - 255``)."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator

    from accelgen.hdl.common.arith import rom_product
    m = Module()
    a_next, b_next, a, b = (Signal(signed(9)) for _ in range(4))
    m.d.sync += [a.eq(a_next), b.eq(b_next)]
    p = rom_product(m, a_next, b_next, name="t")
    pairs = _product_pairs()
    bad = []

    async def bench(ctx):
        for x, y in pairs:
            ctx.set(a_next, x)
            ctx.set(b_next, y)
            await ctx.tick()
            if (ctx.get(a), ctx.get(b), ctx.get(p)) != (x, y, x * y):
                bad.append((x, y, ctx.get(p)))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not bad


def test_soft_multiplier_rows_leave_no_multiply_operator():
    """Each LUT or table row removes one ``*`` per PE from the emitted Verilog, and each table
    row adds one table (a read-only memory) per PE."""
    def counts(**rows):
        text = verilog_text(Systolic(_config(3, 2, **rows)), "systolic")
        return len(re.findall(r"\) \* \$signed\(", text)), len(re.findall(r"_rom\b", text))
    base, no_tables = counts()
    assert no_tables == 0
    assert [base - counts(lut_rows=k)[0] for k in (1, 3)] == [2, 6]
    assert [base - counts(rom_rows=k)[0] for k in (1, 3)] == [2, 6]
    assert counts(lut_rows=1, rom_rows=1) == (base - 4, counts(rom_rows=1)[1])


def test_config_errors_name_the_setting():
    cases = {
        "rows": dict(rows=0), "cols": dict(cols=33), "modes": dict(modes=("s2s2",)),
        "dataflows": dict(dataflows=("xs",)), "acc_depth": dict(acc_depth=48),
        "acc_width": dict(acc_width=8), "k_max": dict(k_max=0),
        "mult_bits": dict(requant=True, acc_width=48, mult_bits=32),
        "rounding": dict(rounding="nearest"), "pe_pipeline": dict(pe_pipeline=3),
        "lut_rows": dict(rows=4, lut_rows=5),
        "rom_rows": dict(rows=4, lut_rows=2, rom_rows=3),
    }
    for name, kw in cases.items():
        with pytest.raises(ConfigError, match=rf"^{name}"):
            SystolicConfig(**kw)


# == cocotb tier: the emitted Verilog on Verilator / Icarus =============================

SYS_GOLDEN = SYS.golden_model()
SYS_CASES = default_testcases(SYS)
SYS_BEATS = 160          # random testcases: 8 commands each (ACCELGEN_BEATS // 20)


def _sys_presets():
    return [pytest.param(p, marks=pytest.mark.slow) if p == "16x16" else p
            for p in SYS.presets]


def _check_systolic(result, config):
    """Every scoreboard clean, every expressible error code seen, gemm figures consistent."""
    cases = result.result["testcases"]
    for name in ("random_gemms", "errors", "reset_midcommand", "sequence"):
        assert cases[name]["mismatches"] == 0
    assert cases["sequence"]["errors"] > 0 and cases["sequence"]["commands"] >= 4
    assert cases["random_gemms"]["commands"] >= 4
    assert cases["reset_midcommand"]["sent_before"]["rsp"] == 0
    seen = {int(code) for code in cases["errors"]["err_codes"]}
    assert {1, 4} <= seen and (config.k_max >= (1 << config.dim_bits) - 1 or 2 in seen)
    gemm = cases["gemm"]
    m, k, n = (int(x) for x in gemm["shape"].split("x"))
    assert gemm["check"] == "passed" and gemm["macs"] == m * k * n
    assert gemm["tb_cycles"] == gemm["cycles"]
    assert 0 < gemm["utilization"] <= 1
    assert gemm["utilization"] == pytest.approx(
        m * k * n / (config.rows * config.cols * gemm["cycles"]))
    assert gemm["cycles"] == gemm["model_cycles"]
    # os: the first step's panel row is in one cycle before the a FIFO has its first beat
    assert gemm["busy"] == gemm["a_beats"] and gemm["stall_a"] == (gemm["dataflow"] == "os")


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", _sys_presets())
def test_systolic_verilator_preset(preset, shared_build_root):
    """random_gemms, errors, reset_midcommand, sequence and gemm on one Verilator build per
    preset (16x16 must stay under three minutes including its build; the small-GEMM grid
    below reuses the 8x8 and 16x16 builds)."""
    config = SYS.presets[preset]
    start = time.monotonic()
    result = simulate(SYS, config, preset=preset, simulator="verilator", seed=SEED,
                      beats=SYS_BEATS, build_root=shared_build_root)
    elapsed = time.monotonic() - start
    assert result.passed, _explain(result)
    assert list(result.testcases) == SYS_CASES
    _check_systolic(result, config)
    if preset == "16x16":
        assert elapsed < 180, f"16x16 took {elapsed:.0f} s (build {result.build_seconds:.0f} s)"


#: the small-GEMM grid of issue 13: M, N and K across one, two and many blocks of 4..16
GRID_MN = (1, 2, 4, 8, 16, 17, 32, 64)
GRID_K = (1, 2, 4, 8, 16, 31, 64, 256)
GRID_ARRAYS = {"4x4": replace(PRESETS["default"], k_max=256), "8x8": PRESETS["8x8"],
               "16x16": PRESETS["16x16"]}


@pytest.mark.cocotb
@pytest.mark.parametrize("array", [a if a != "16x16" else pytest.param(a, marks=pytest.mark.slow)
                                   for a in GRID_ARRAYS])
def test_cycle_model_equals_rtl_on_the_small_gemm_grid(array, shared_build_root):
    """Every M x K x N of the grid, both dataflows, back to back at full rate on the emitted
    Verilog (Verilator, file-backed streams): every result exact and every ``rsp.cycles``
    equal to :func:`~accelgen.sim.golden.systolic_cycles.command_cycles` (the ``sequence``
    testcase checks both)."""
    config = GRID_ARRAYS[array]
    # where simulate() builds this config: the preset test's build is reused
    build_dir = build_dir_for(SYS, config, "verilator", build_root=shared_build_root)
    build = emit(SYS, config, build_dir, top="systolic",
                 preset=array if array in SYS.presets else None).manifest_path
    for flow in ("os", "ws"):
        commands = [{"m": m, "k": k, "n": n, "dataflow": flow}
                    for m, k, n in itertools.product(GRID_MN, GRID_K, GRID_MN)]
        result = run_emitted(build, seed=SEED, testcases=["sequence"],
                             options={"commands": commands})
        assert result.passed, _explain(result)
        case = result.result["testcases"]["sequence"]
        assert case["mismatches"] == 0 and case["commands"] == 512 and case["errors"] == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["verilator", pytest.param("icarus", marks=needs_icarus)])
def test_file_backed_streams_with_gaps(simulator, tmp_path):
    """The simulation top's own stream generators with random gaps on every input and
    backpressure on every output (``sequence`` with ``gaps``): results exact, commands slower
    than at full rate (so the gaps happened), and the same on both simulators."""
    config = replace(SYS.presets["tiny"], dataflows=("os", "ws"))
    build = emit(SYS, config, tmp_path / "dut", top="systolic").manifest_path
    result = run_emitted(build, simulator=simulator, seed=SEED, beats=200,
                         testcases=["sequence"], options={"gaps": [0.5, 0.6]})
    assert result.passed, _explain(result)
    case = result.result["testcases"]["sequence"]
    ran = [(got, want) for got, want in zip(case["rsp_cycles"], case["model_cycles"]) if want]
    assert case["mismatches"] == 0 and len(ran) >= 4
    assert all(got >= want for got, want in ran) and sum(g for g, _ in ran) > sum(
        w for _, w in ran)


@pytest.mark.cocotb
@needs_icarus
def test_systolic_icarus_tiny(tmp_path):
    """The same testcases on Icarus, both dataflows (four-state: a combinational output that
    stays X after the reset, as ``cmd.ready`` did under ``-g2012``, fails here)."""
    config = replace(SYS.presets["tiny"], dataflows=("os", "ws"))
    result = simulate(SYS, config, preset="tiny", simulator="icarus", seed=SEED, beats=80,
                      build_root=tmp_path)
    assert result.passed, _explain(result)
    _check_systolic(result, config)


@pytest.mark.cocotb
def test_systolic_testbench_catches_wrong_rtl(tmp_path):
    """Verilog of a saturating 16-bit accumulator with the manifest of a wrapping one: the
    true pairing passes, the false one fails the scoreboard with the seed in the message."""
    real = replace(SYS.presets["tiny"], acc_width=16, overflow="saturate",
                   dataflows=("os", "ws"))
    claimed = replace(real, overflow="wrap")
    build = emit(SYS, real, tmp_path / "dut", top="systolic").manifest_path
    liar = emit(SYS, claimed, tmp_path / "liar", top="systolic").manifest_path
    ok = run_emitted(build, seed=SEED, beats=200, testcases=["random_gemms"])
    assert ok.passed, _explain(ok)
    shutil.copy(liar, build)
    wrong = run_emitted(build, seed=SEED, beats=200, testcases=["random_gemms", "gemm"])
    assert not wrong.built
    assert wrong.testcases["random_gemms"] is False
    log = wrong.log.read_text()
    assert f"seed={SEED}" in log and "mismatches in random GEMM commands" in log
    assert wrong.result["testcases"]["random_gemms"]["mismatches"] > 0


def test_systolic_arguments_refused_before_build(tmp_path):
    config = SYS.presets["tiny"]
    cases = [(dict(options={"gemm": "3x17x5"}), r"--gemm: '3x17x5' is not allowed in os \(err 2"),
             (dict(options={"gemm": "0x1x1"}), "--gemm: '0x1x1' is not allowed; expected MxKxN"),
             (dict(options={"dataflow": "ws"}),
              r"--dataflow: 'ws' is not allowed; allowed are 'os'"),
             (dict(testcases=["latency"]), "--testcase: 'latency' is not allowed for systolic")]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            simulate(SYS, config, build_root=tmp_path / "b", **kwargs)
    with pytest.raises(ConfigError, match="--gemm: not allowed for block mac"):
        simulate(MAC, MAC.presets["tiny"], options={"gemm": "4x4x4"},
                 build_root=tmp_path / "b")
    big = replace(config, dataflows=("os", "ws"))
    np.savez(tmp_path / "in.npz", a=np.ones((17, 3), np.int64), b=np.ones((3, 2), np.int64))
    with pytest.raises(ConfigError, match=r"--inputs: .* not allowed in ws; it is err 3"):
        simulate(SYS, big, inputs=tmp_path / "in.npz", options={"dataflow": "ws"},
                 build_root=tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert default_testcases(SYS) == ["random_gemms", "errors", "reset_midcommand", "sequence",
                                      "gemm"]
    assert default_testcases(SYS, inputs=True)[-1] == "user_inputs"
    assert default_testcases(MAC) == list(MAC.testcases[:-1])


# == the FPGA self-check harness (fast tier) and builds (fpga tier) ======================

@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_systolic_program_covers_the_features(preset):
    cfg = SYS.presets[preset]
    p = hs.plan(cfg, beats=1, seed=3)
    coded = [c.coded(cfg) for c in p.commands]
    first = coded[0]
    assert (first.output, first.accumulate, first.preload, first.k) == (2, False, False, 1)
    assert first.m * -(-first.n // cfg.cols) == cfg.acc_depth     # clears every memory row
    assert sorted(r.err for r in p.rsp if r.err) == [1, 4]
    valid = [c for c, r in zip(coded, p.rsp) if not r.err]
    for flow in range(len(cfg.dataflows)):
        mine = [c for c in valid if c.dataflow == flow]
        assert any(c.accumulate and not c.preload for c in mine), (preset, flow)
        assert any(c.preload for c in mine) and any(c.output == 2 for c in mine)
        assert any(c.output == 0 for c in mine)
        assert any(c.output == 1 for c in mine) == cfg.requant
        assert any(c2.accumulate and (c1.m, c1.k, c1.dataflow) == (c2.m, c2.k, c2.dataflow)
                   and c1.n % cfg.cols and c2.n == -(-c1.n // cfg.cols) * cfg.cols
                   for c1, c2 in zip(mine, mine[1:])), "widening pair"
    assert p.cmd_words == [golden.pack_command(cfg, c) for c in p.commands]
    assert p == hs.plan(cfg, beats=1, seed=3)                        # deterministic


def test_systolic_program_grows_to_the_beat_budget():
    small, big = (hs.plan(SYS_TINY, beats=b, seed=1) for b in (1, 2000))
    assert big.commands[:len(small.commands)] == small.commands
    assert big.beats >= 2000 > small.beats
    assert big.consumed["a"] > 0 and big.consumed["b"] > 0 and big.consumed["c"] > 0


def test_systolic_harness_sends_the_planned_streams():
    """The block takes exactly the ROM's commands and prefixes of the modelled operand
    streams, as many beats as the golden model pulled (holds whatever the block computes)."""
    h = hs.SystolicHarness(SYS, SYS_TINY, beats=150, seed=4)
    seen = _accepted(h, ["cmd", "a", "b", "c"])
    assert seen["cmd"] == h.plan.cmd_words
    for name in hs.OPERANDS:
        width = payload_width(getattr(SYS_TINY, f"{name}_fields"))
        want = list(itertools.islice(hz.lane_words(h.plan.seeds[name], width),
                                     h.plan.consumed[name]))
        assert seen[name] == want == h.plan.words[name], name


@pytest.mark.parametrize("preset", ["tiny", "default", "fp8", "bf16"])
def test_systolic_harness_passes(preset):
    h = hs.SystolicHarness(SYS, SYS.presets[preset], beats=300, seed=2)
    r = hz.simulate(h)
    assert r.done and r.passed and not r.failed, f"seed 2: {r}"
    assert r.cycles < h.timeout // 4
    assert r.observed == h.expected_values()
    assert (r.signature, r.count) == (h.expected_signature, h.expected_count)


def test_systolic_harness_fails_with_corrupted_expectation():
    h = hs.SystolicHarness(SYS, SYS_TINY, beats=300, seed=2, corrupt_expected=True)
    r = hz.simulate(h)
    assert r.done and r.failed and not r.passed, f"seed 2: {r}"
    assert r.signature == h.model_signature != h.expected_signature
    assert {k: v for k, v in r.observed.items() if v != h.expected_values()[k]} == \
        {"o signature": h.model_signature}


class _Mutant(wiring.Component):
    """``block`` with one output stream's payload passed through ``mutate`` (a function of
    the payload ``View``): a broken block the harness must catch."""

    def __init__(self, block, stream, mutate):
        self.inner, self.stream, self.mutate = block, stream, mutate
        super().__init__(block.signature)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self.inner
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(self.inner, name)
            if member.flow == wiring.In:
                m.d.comb += [inner.valid.eq(outer.valid), inner.payload.eq(outer.payload),
                             outer.ready.eq(inner.ready)]
            else:
                payload = self.mutate(inner.payload) if name == self.stream else inner.payload
                m.d.comb += [outer.valid.eq(inner.valid), outer.payload.eq(payload),
                             inner.ready.eq(outer.ready)]
        return m


@pytest.mark.parametrize("stream, mutate, caught", [
    # bit 0 of lane 0 flipped on each command's last row only
    ("o", lambda p: p.as_value() ^ p.last, {"o signature"}),
    # the macs counter one too high (its field is the last)
    ("rsp", lambda p: p.as_value() + (1 << field_offsets(SYS_TINY.rsp_fields)["macs"][0]),
     {"rsp signature"}),
    # a timing counter is not checked: a correct block's counters depend on the flow control
    ("rsp", lambda p: p.as_value() ^ (1 << field_offsets(SYS_TINY.rsp_fields)["cycles"][0]),
     set()),
])
def test_systolic_harness_catches_a_broken_block(stream, mutate, caught):
    h = hs.SystolicHarness(SYS, SYS_TINY, beats=100, seed=5)
    h.block = _Mutant(h.block, stream, mutate)
    r = hz.simulate(h)
    assert r.done and r.failed == bool(caught) != r.passed, f"seed 5: {r}"
    assert {k for k, v in r.observed.items() if v != h.expected_values()[k]} == caught


def test_systolic_harness_beats_validated():
    with pytest.raises(ConfigError, match=r"^--beats: 0 is not allowed; expected an integer "
                                          r"from 1 to 1048576$"):
        hs.SystolicHarness(SYS, SYS_TINY, beats=0)


@pytest.mark.fpga
@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_synth_systolic_tiny(tmp_path, family):
    from accelgen.fpga.flow import synth
    r = synth(SYS, SYS_TINY, family, tmp_path, preset="tiny")
    assert set(r.resources) == KEYS
    assert r.resources["LUT4"] > 0 and r.resources["FF"] > 0 and r.resources["carry"] > 0
    # one multiplier per PE (2x2) in DSPs; the accumulator memory and the B panels in block
    # RAM (iCE40) or, being small, in distributed RAM (ECP5)
    assert r.resources["DSP"] >= SYS_TINY.rows * SYS_TINY.cols
    assert r.resources["BRAM"] + r.resources["cells"].get("TRELLIS_DPR16X4", 0) > 0


@pytest.mark.fpga
def test_table_rows_take_block_rams_instead_of_dsps_on_ecp5(tmp_path):
    """A table row's PEs each take one block RAM (both reads of its table through the RAM's
    two ports) and no DSP."""
    from accelgen.fpga.flow import synth
    base = synth(SYS, SYS_TINY, "ecp5", tmp_path / "dsp", preset="tiny").resources
    rows = synth(SYS, replace(SYS_TINY, rom_rows=1), "ecp5", tmp_path / "rom").resources
    assert base["DSP"] - rows["DSP"] == SYS_TINY.cols
    assert rows["BRAM"] - base["BRAM"] == SYS_TINY.cols


@pytest.mark.fpga
@pytest.mark.parametrize("board, preset", [("icebreaker", "tiny"), ("ulx3s-85f", "default")])
def test_build_systolic(tmp_path, board, preset):
    """The systolic harness on both boards (quick placement keeps the 4x4 build near a
    minute; the CLI's builds are timing-driven)."""
    from accelgen.fpga.flow import build
    cfg = SYS.presets[preset]
    r = build(SYS, cfg, board, tmp_path, preset=preset, beats=300, seed=2, quick=True)
    assert r.selfcheck_passed and r.selfcheck_cycles > 0
    assert set(r.selfcheck_checks) == {"o signature", "o beats", "rsp signature", "rsp beats",
                                       "a beats", "b beats", "c beats"}
    assert r.bitstream.exists() and r.bitstream.stat().st_size > 0
    assert r.resources["IO"][0] == 6        # clock, button, four LEDs: no stream pins
    assert r.resources["DSP"][0] >= (cfg.rows - cfg.lut_rows - cfg.rom_rows) * cfg.cols
    assert r.resources["LUT4"][0] > 0 and r.resources["FF"][0] > 0
    assert r.resources["BRAM"][0] > 0
    assert r.fmax_mhz > r.target_mhz > 0
