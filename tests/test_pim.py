"""Block ``pim``: config and presets, the golden model against numpy and hand-computed values,
the GEMV layout and compiler, the analytic cycle model against pim.md's epoch numbers, and the
RTL (Amaranth simulator) against the golden model, the cycle model and the independent timing
checker: random programs, GEMV programs, gaps and backpressure, reset, errors, refresh."""

import dataclasses

import numpy as np
import pytest

from accelgen.generators.base import resolve_config
from accelgen.generators.pim import PRESETS, TIMINGS, PimConfig
from accelgen.numerics import ConfigError
from accelgen.sim.golden.pim import Instr, Model, pack_column, result_values
from accelgen.sim.golden.pim_check import check_trace, decode_trace
from accelgen.sim.golden.pim_cycles import mac_efficiency, schedule
from accelgen.sim.golden.pim_gemv import (compile_gemv, gather, golden_y, layout, place,
                                          read_y)
from accelgen.sim.golden.pim_program import (TIMING_COUNTERS, Expected, error_instrs,
                                             random_program, timing_probe)
from accelgen.sim.payload import unpack

from support import needs_icarus

SEED = 20240601


def no_refresh(name, **changes):
    """Preset ``name`` (``"tiny2"``: tiny with two row buffers) with refresh off."""
    if name == "tiny2":
        name, changes = "tiny", {"row_buffers": 2, **changes}
    return dataclasses.replace(PRESETS[name], refresh=False, **changes)


# -- config --------------------------------------------------------------------------------------


def test_every_preset_is_valid_and_round_trips():
    for name, cfg in PRESETS.items():
        assert PimConfig.from_dict(cfg.to_dict()) == cfg, name
    assert {"tiny", "default", "gddr6-aim", "hbm2-pim", "gddr6", "hbm2"} <= set(PRESETS)


def test_aim_epoch_cycles_are_pim_md_numbers():
    # pim.md: 100 / 114 / 130 / 162 / 226 cycles for 1 / 8 / 16 / 32 / 64 columns
    t = TIMINGS["gddr6-aim"]
    assert [t.epoch_cycles(c) for c in (1, 8, 16, 32, 64)] == [100, 114, 130, 162, 226]


@pytest.mark.parametrize("sets, message", [
    (["timing.tRCX=3"], "timing.tRCX: unknown setting; allowed are tRCD_RD"),
    (["timing.tRP=-1"], "timing.tRP: -1 is not allowed; expected an integer from 1 to 65535"),
    (["timing.tREFI=300"], "timing.tREFI: 300 is not allowed with tRFC 210"),
    (["bank_groups=3"], "bank_groups: 3 is not allowed with banks 8; expected a divisor"),
    (["formats=['s8','s16']", "column_bytes=3"], "column_bytes: 3 is not allowed with format"),
    (["formats=['s16']"], "formats: ['s16'] is not allowed; expected a list holding 's8'"),
    (["row_buffers=3"], "row_buffers: 3 is not allowed; expected an integer from 1 to 2"),
])
def test_bad_settings_name_the_parameter(sets, message):
    with pytest.raises(ConfigError) as err:
        resolve_config(PimConfig, PRESETS["default"], sets=sets)
    assert str(err.value).startswith(message)


def test_set_changes_one_timing_value():
    cfg = resolve_config(PimConfig, PRESETS["gddr6-aim"], sets=["timing.tRCD_MAC=40"])
    assert cfg.timing.tRCD_MAC == 40 and cfg.timing.tRP == 32


# -- golden model: hand-computed values ------------------------------------------------------------


def test_mac_bias_and_af_by_hand():
    cfg = no_refresh("tiny")                     # 2 s8 lanes per column
    m = Model(cfg)
    prog = [Instr("WR_GB", col=0, data=pack_column(cfg, [5, 6])),
            Instr("WR_GB", col=1, data=pack_column(cfg, [-7, 2])),
            Instr("WR_BIAS", bank=1, data=100),
            Instr("ACT_AB", row=2),
            Instr("WR_SBK", bank=1, col=3, data=pack_column(cfg, [3, -4])),
            Instr("WR_SBK", bank=1, col=4, data=pack_column(cfg, [10, 1])),
            Instr("MAC_ABK", col=3, count=2, gb=0, init=1),
            Instr("RD_MAC")]
    steps = m.program(prog)
    # bank 1: 100 + (3*5 - 4*6) + (10*-7 + 1*2) = 100 - 9 - 68 = 23; other banks: 0 + 0
    assert list(result_values(cfg, unpack(cfg.o_fields, steps[-1].o_words)["data"][0])) \
        == [0, 23, 0, 0]
    m.acc[:] = [1000, -5000, 8, -8]
    for func, want in ((0, [1000, -5000, 8, -8]), (1, [1000, 0, 8, 0]),
                       # 1000/16 = 62.5 -> 63; -5000/16 = -312.5 -> -312 -> -128 (s8);
                       # 8/16 = 0.5 -> 1 (half up); -8/16 = -0.5 -> 0
                       (2, [63, -128, 1, 0]), (3, [63, 0, 1, 0])):
        m.run(Instr("AF", func=func, shift=4))
        assert list(m.af) == want, func


def test_s16_columns_by_hand():
    cfg = no_refresh("s16")
    m = Model(cfg)
    x = [300, -2, 1000, 0]
    w = [-400, 7, 32767, -32768]
    m.program([Instr("WR_GB", col=0, data=pack_column(cfg, x, "s16")),
               Instr("ACT", bank=5, row=1),
               Instr("WR_SBK", bank=5, col=0, data=pack_column(cfg, w, "s16")),
               Instr("MAC_SBK", bank=5, count=1, fmt=1, init=1)])
    assert m.acc[5] == -400 * 300 - 14 + 32767 * 1000
    assert m.acc[4] == 0


def test_directed_errors_in_the_golden_model():
    for name in ("tiny", "default", "s16"):
        cfg = no_refresh(name)
        for ins, err in error_instrs(cfg, Model(cfg)):
            assert Model(cfg).run(ins).err == err, (name, str(ins))


def test_erroneous_instruction_changes_nothing():
    cfg = no_refresh("tiny")
    rng = np.random.default_rng(SEED)
    model = Model(cfg)
    random_program(cfg, rng, 200, error_rate=0, model=model)
    for ins in random_program(cfg, rng, 300, error_rate=0.5):
        before = [a.copy() for a in (model.storage, model.open, model.open_row, model.gb,
                                     model.bias, model.acc, model.af)]
        step = model.run(ins)
        if step.err:
            after = (model.storage, model.open, model.open_row, model.gb, model.bias,
                     model.acc, model.af)
            assert all(np.array_equal(a, b) for a, b in zip(before, after)), str(ins)
            assert not step.commands and not step.o_words


# -- GEMV: layout and golden model against numpy ------------------------------------------------


SHAPES = [(1, 1), (1, 5), (3, 2), (4, 16), (17, 33), (64, 64), (100, 260), (513, 1000)]


@pytest.mark.parametrize("n, k", SHAPES)
def test_golden_gemv_is_numpy_matmul(n, k):
    cfg = no_refresh("gddr6-aim", rows=256)
    rng = np.random.default_rng(SEED + n + k)
    w = rng.integers(-128, 128, (n, k))
    x = rng.integers(-128, 128, k)
    b = rng.integers(-(1 << 20), 1 << 20, n)
    for bias, act, mode in ((None, None, "plain"), (b, None, "overlap"),
                            (b, ("relu_requant", 7), "plain"), (None, ("relu", 0), "overlap")):
        g = compile_gemv(cfg, w, x, bias, act=act, mode=mode)
        m = Model(cfg)
        m.program(g.load)
        steps = m.program(g.run)
        y = read_y(g, [o for s in steps for o in s.o_words])
        want = w.astype(np.int64) @ x + (0 if bias is None else bias)
        if act is not None:
            want = golden_y(cfg, w, x, bias, act)
        assert np.array_equal(y, want), (n, k, mode, act)


def test_layout_round_trip_and_capacity():
    rng = np.random.default_rng(SEED)
    for name, n, k in (("tiny", 9, 16), ("tiny", 4, 3), ("default", 40, 256),
                       ("gddr6-aim", 33, 4096)):
        cfg = no_refresh(name, rows=64, gb_columns=128)
        w = rng.integers(-128, 128, (n, k))
        lay = layout(cfg, n, k)
        assert lay.rows_per_tile == (2 if k == 4096 else 1)
        assert np.array_equal(gather(lay, place(lay, w)), w)
    with pytest.raises(ConfigError, match=r"--gemv: 2000x256 is not allowed; it needs 16 rows"):
        layout(PRESETS["gddr6-aim"], 2000, 256)
    with pytest.raises(ConfigError, match=r"K=20 needs 10 GB columns"):
        layout(PRESETS["tiny"], 4, 20)


# -- cycle model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gddr6-aim", "gddr6", "hbm2-pim", "hbm2"])
def test_model_epoch_is_the_closed_form(name):
    cfg = no_refresh(name)
    for c in range(1, cfg.columns + 1):
        prog = [Instr("ACT_AB", row=1), Instr("MAC_ABK", count=c), Instr("PRE_AB"),
                Instr("EOC")]
        sched = schedule(cfg, prog, Model(cfg).program(prog))
        assert sched.programs[0]["cycles"] == cfg.timing.epoch_cycles(c), c


def test_plain_mode_reaches_the_published_efficiency_and_overlap_hides_the_row_switch():
    cfg = no_refresh("gddr6-aim", rows=64)
    rng = np.random.default_rng(SEED)
    n, k = 1024, 2048                   # 64-column rows, one tile per row: 64 epochs
    w, x = rng.integers(-128, 128, (n, k)), rng.integers(-128, 128, k)
    eff = {}
    for mode in ("plain", "overlap"):
        g = compile_gemv(cfg, w, x, mode=mode)
        m = Model(cfg)
        m.program(g.load)
        steps = m.program(g.run)
        cycles = schedule(cfg, g.run, steps).programs[0]["cycles"]
        eff[mode] = mac_efficiency(cfg, sum(s.macs for s in steps), cycles)
    # plain: 128 MAC-bus cycles of every 226-cycle epoch (57 %), overlapped >= 90 %
    assert 0.55 < eff["plain"] <= 128 / 226
    assert eff["overlap"] >= 0.95


# -- RTL in the Amaranth simulator -----------------------------------------------------------------


def run_rtl(config, instrs, *, seed=SEED, valid_prob=1.0, ready_prob=1.0, reset_at=None,
            max_cycles=200_000):
    """Run ``instrs`` on the ``pim`` RTL; returns ``(Expected, outputs)`` with the trace
    decoded."""
    from accelgen.hdl.pim import Pim
    from accelgen.sim.pysim import run_streams
    exp = Expected(config, instrs)
    outs, _ = run_streams(Pim(config), {"cmd": exp.cmd_words},
                          {"o": len(exp.o), "rsp": len(exp.rsp)}, seed=seed,
                          valid_prob=valid_prob, ready_prob=ready_prob, reset_at=reset_at,
                          max_cycles=max_cycles, monitors=("trace",))
    outs["trace"] = decode_trace(config, outs["trace"])
    return exp, outs


def rsp_dicts(config, words):
    fields = unpack(config.rsp_fields, words)
    return [{k: int(v[i]) for k, v in fields.items()} for i in range(len(words))]


def relative(trace):
    t0 = trace[0][0] if trace else 0
    return [(t - t0, *rest) for t, *rest in trace]


def assert_exact(config, exp, outs):
    """Full rate, refresh off: everything equal, cycle for cycle."""
    assert outs["o"] == exp.o
    assert rsp_dicts(config, outs["rsp"]) == exp.rsp
    assert relative(outs["trace"]) == relative(exp.trace)
    assert check_trace(outs["trace"], config) == []


def assert_same_work(config, exp, outs):
    """With gaps and backpressure: the same results, responses (but timing counters) and
    command sequence, and a legal trace."""
    assert outs["o"] == exp.o
    got = rsp_dicts(config, outs["rsp"])
    drop = set(TIMING_COUNTERS)
    assert [{k: v for k, v in r.items() if k not in drop} for r in got] == \
        [{k: v for k, v in r.items() if k not in drop} for r in exp.rsp]
    assert [c[1:] for c in outs["trace"]] == [c[1:] for c in exp.trace]
    assert check_trace(outs["trace"], config) == []


@pytest.mark.parametrize("name", ["tiny", "tiny2", "default"])
def test_rtl_random_programs_cycle_exact(name):
    cfg = no_refresh(name)
    rng = np.random.default_rng(SEED)
    exp, outs = run_rtl(cfg, random_program(cfg, rng, 150 if name == "default" else 300))
    assert_exact(cfg, exp, outs)
    assert any(r["err"] for r in exp.rsp) and sum(r["eoc"] for r in exp.rsp) > 3


@pytest.mark.parametrize("name", ["tiny", "tiny2"])
def test_rtl_random_programs_with_gaps_and_backpressure(name):
    cfg = no_refresh(name)
    for seed in range(3):
        rng = np.random.default_rng(SEED + seed)
        exp, outs = run_rtl(cfg, random_program(cfg, rng, 250), seed=seed, valid_prob=0.6,
                            ready_prob=0.5)
        assert_same_work(cfg, exp, outs)


def test_rtl_directed_errors_send_error_beats_and_change_nothing():
    cfg = no_refresh("tiny")
    rng = np.random.default_rng(SEED)
    prog = []
    for ins, _ in error_instrs(cfg, Model(cfg)):
        prog.append(ins)
    prog += random_program(cfg, rng, 80, error_rate=0)
    exp, outs = run_rtl(cfg, prog)
    assert [r["err"] for r in exp.rsp][:len(error_instrs(cfg, Model(cfg)))] == \
        [e for _, e in error_instrs(cfg, Model(cfg))]
    assert_exact(cfg, exp, outs)


@pytest.mark.parametrize("name, mode", [
    ("tiny", "plain"), ("tiny2", "overlap"),
    pytest.param("default", "plain", marks=pytest.mark.slow),
    pytest.param("default", "overlap", marks=pytest.mark.slow)])
def test_rtl_gemv_bit_exact_and_cycle_exact(name, mode):
    cfg = no_refresh(name)
    rng = np.random.default_rng(SEED)
    n, k = (40, 128) if name == "default" else (9, 16)
    w, x = rng.integers(-128, 128, (n, k)), rng.integers(-128, 128, k)
    b = rng.integers(-1000, 1000, n)
    g = compile_gemv(cfg, w, x, b, act=("relu_requant", 6), mode=mode)
    exp, outs = run_rtl(cfg, g.load + g.run)
    assert_exact(cfg, exp, outs)
    loads = sum(1 for s in g.load if s.name == "WR_SBK")
    assert np.array_equal(read_y(g, outs["o"]), golden_y(cfg, w, x, b, ("relu_requant", 6)))
    assert loads > 0


@pytest.mark.parametrize("columns", [1, 8, 16, 32, 64])
def test_rtl_epoch_cycles_equal_pim_md(columns):
    """RTL cycles of one all-bank epoch with AiM timing are pim.md's numbers (the controller
    alone: the timing is all its own)."""
    want = {1: 100, 8: 114, 16: 130, 32: 162, 64: 226}[columns]
    cfg = no_refresh("gddr6-aim", controller_only=True)
    exp, outs = run_controller(cfg, [Instr("ACT_AB", row=3), Instr("MAC_ABK", count=columns),
                                     Instr("PRE_AB"), Instr("EOC")])
    assert rsp_dicts(cfg, outs["rsp"])[0]["cycles"] == want
    assert relative(outs["trace"]) == relative(exp.trace)


def test_rtl_read_latency_is_the_published_one():
    """An RD_MAC alone: EOC completes READ_LATENCY + 1 cycles after it (its o beat taken)."""
    from accelgen.generators.pim import READ_LATENCY
    cfg = no_refresh("tiny")
    exp, outs = run_rtl(cfg, [Instr("RD_MAC"), Instr("EOC"),
                              Instr("WR_GB"), Instr("RD_AF"), Instr("EOC")])
    # the second program starts at its WR_GB, one cycle before its read
    assert [r["cycles"] for r in rsp_dicts(cfg, outs["rsp"])] == [READ_LATENCY + 1,
                                                                  1 + READ_LATENCY + 1]
    assert_exact(cfg, exp, outs)


def test_refresh_interval_must_leave_room_for_a_forced_refresh():
    cfg = PRESETS["tiny"]
    bound = cfg.forced_refresh_bound
    with pytest.raises(ConfigError, match=rf"timing.tREFI: {bound} is not allowed"):
        dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, tREFI=bound))
    dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, tREFI=bound + 1))


def run_controller(config, instrs):
    """The controller alone with no memory behind it (programs without reads)."""
    from accelgen.hdl.pim import Pim
    from accelgen.sim.pysim import run_streams
    exp = Expected(config, instrs)
    assert not exp.o
    outs, _ = run_streams(Pim(config), {"cmd": exp.cmd_words}, {"rsp": len(exp.rsp)},
                          monitors=("trace",))
    outs["trace"] = decode_trace(config, outs["trace"])
    return exp, outs


def test_rtl_reset_in_the_middle_of_a_program():
    cfg = no_refresh("tiny2")
    rng = np.random.default_rng(SEED)
    first = random_program(cfg, rng, 120)
    w, x = rng.integers(-128, 128, (6, 13)), rng.integers(-128, 128, 13)
    g = compile_gemv(cfg, w, x, mode="overlap")
    from accelgen.hdl.pim import Pim
    from accelgen.sim.golden.pim import pack_instr
    from accelgen.sim.pysim import run_streams
    exp = Expected(cfg, g.load + g.run)
    outs, _ = run_streams(Pim(cfg), {"cmd": pack_instr(cfg, first)}, {"o": 10 ** 6, "rsp": 0},
                          reset_at=(400, {"cmd": exp.cmd_words},
                                    {"o": len(exp.o), "rsp": len(exp.rsp)}),
                          monitors=("trace",))
    assert np.array_equal(read_y(g, outs["o"]), golden_y(cfg, w, x))
    assert rsp_dicts(cfg, outs["rsp"])[-1]["eoc"] == 1


@pytest.mark.slow
def test_rtl_refresh_interrupting_gemv_stays_exact_and_legal():
    """Refresh on with a short tREFI: over >= 20 tREFI every REF is legal, none starves, and
    the GEMV (plain: boundary refreshes; overlap: forced close / re-open) stays bit-exact."""
    base = no_refresh("tiny2", rows=64)
    timing = dataclasses.replace(base.timing, tREFI=450, tRFC=40)
    cfg = dataclasses.replace(base, timing=timing, refresh=True)
    rng = np.random.default_rng(SEED)
    # 64 rows of one tile each: the overlapped run goes 64 epochs without closing every buffer
    w, x = rng.integers(-128, 128, (256, 16)), rng.integers(-128, 128, 16)
    for mode in ("plain", "overlap"):
        g = compile_gemv(cfg, w, x, mode=mode)
        prog = g.load + g.run * 2
        exp, outs = run_rtl(cfg, prog)
        end = outs["trace"][-1][0]
        assert end >= 20 * timing.tREFI
        assert check_trace(outs["trace"], cfg, end=end) == []
        refs = [t for t, c, *_ in outs["trace"] if c == "REF"]
        assert len(refs) >= end // timing.tREFI - 8
        closes = sum(c == "PRE_AB" for _, c, *_ in outs["trace"])
        planned = sum(c == "PRE_AB" for _, c, *_ in exp.trace)
        # overlap keeps a buffer open from one row to the next: refreshes are forced (the
        # manager closes and re-opens); plain reaches an epoch boundary every row
        assert (closes > planned) == (mode == "overlap"), (closes, planned)
        ys = [read_y(g, outs["o"][i * len(g.readout):(i + 1) * len(g.readout)])
              for i in range(2)]
        for y in ys:
            assert np.array_equal(y, golden_y(cfg, w, x)), mode


# -- mutation: a controller with one timing value shortened by one is caught ---------------------


def probe_config(name):
    """Preset ``name``'s timing on a small geometry :func:`timing_probe` can use."""
    return no_refresh(name, banks=8, bank_groups=4, rows=4, columns=16, column_bytes=2,
                      gb_columns=16, row_buffers=2)


def probe_trace(config, exp):
    from accelgen.hdl.pim import Pim
    from accelgen.sim.pysim import run_streams
    outs, _ = run_streams(Pim(config), {"cmd": exp.cmd_words},
                          {"o": len(exp.o), "rsp": len(exp.rsp)}, monitors=("trace",))
    return decode_trace(config, outs["trace"])


def redundant(timing, name):
    """Whether shortening ``name`` by one cannot change any schedule: another rule always
    spaces the same commands at least as far (or the value is 1, the command bus's own
    spacing)."""
    t = timing
    return (getattr(t, name) == 1 or name == "tCCD_L" and t.tCCD_L <= t.tCCD_S
            or name == "tRRD_L" and t.tRRD_L <= t.tRRD_S
            or name == "tFAW" and t.tFAW <= 4 * t.tRRD_S)


PAIRWISE = ("tRCD_RD", "tRCD_WR", "tRCD_MAC", "tRAS", "tRP", "tRC", "tRTP", "tWR", "tCCD_S",
            "tCCD_L", "tRRD_S", "tRRD_L", "tFAW")


def check_mutants(name):
    true = probe_config(name)
    exp = Expected(true, timing_probe(true))
    base = probe_trace(true, exp)
    assert check_trace(base, true) == [] and relative(base) == relative(exp.trace)
    for value in PAIRWISE:
        t = getattr(true.timing, value)
        if t == 1:
            continue                    # nothing shorter than the command bus's one cycle
        mutant = dataclasses.replace(true, timing=dataclasses.replace(true.timing,
                                                                      **{value: t - 1}))
        trace = probe_trace(mutant, exp)
        fired = {v.rule for v in check_trace(trace, true)}
        if redundant(true.timing, value):
            assert trace == base, (name, value)
        else:
            assert value in fired, (name, value, fired)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gddr6-aim", "gddr6", "hbm2-pim", "hbm2"])
def test_mutants_are_caught(name):
    check_mutants(name)


@pytest.mark.slow
def test_refresh_mutants_are_caught():
    """tRFC shortened by one, and tREFI ten times too long (a shorter tREFI only refreshes
    more often, which is legal): the checker fires. tREFI is scaled down to just above the
    forced-refresh bound so ten intervals fit a fast test."""
    base = probe_config("gddr6-aim")
    timing = dataclasses.replace(base.timing, tREFI=base.forced_refresh_bound + 1)
    true = dataclasses.replace(base, timing=timing, refresh=True)
    filler = [Instr("WR_GB", col=c % true.gb_columns) for c in range(12 * timing.tREFI)]
    exp = Expected(true, filler + [Instr("EOC")])
    trace = probe_trace(true, exp)
    end = trace[-1][0]
    assert check_trace(trace, true, end=end) == []
    assert sum(c == "REF" for _, c, *_ in trace) >= end // timing.tREFI - 1
    for value, changed in (("tRFC", timing.tRFC - 1), ("tREFI", 10 * timing.tREFI)):
        mutant = dataclasses.replace(true, timing=dataclasses.replace(timing, **{value: changed}))
        fired = {v.rule for v in check_trace(probe_trace(mutant, exp), true, end=end)}
        assert fired & ({"tRFC"} if value == "tRFC" else {"refresh_gap", "refresh_debt"}), \
            (value, fired)


# -- CLI: bad input is one line, exit 2, nothing written ------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["sim", "pim", "--set", "timing.tRCX=3"], "timing.tRCX: unknown setting; allowed are "
                                               "tRCD_RD, tRCD_WR, tRCD_MAC"),
    (["sim", "pim", "--set", "timing.tRP=-2"], "timing.tRP: -2 is not allowed; expected an "
                                               "integer from 1 to 65535"),
    (["sim", "pim", "--gemv", "5000x256"], "--gemv: 5000x256 is not allowed; it needs 625 "
                                           "rows per bank and the geometry has rows=8"),
    (["sim", "pim", "--gemv", "16x5000"], "--gemv: 16x5000 is not allowed; K=5000 needs 625 GB "
                                          "columns"),
    (["sim", "pim", "--gemv", "0x16"], "--gemv: '0x16' is not allowed; expected NxK"),
    (["sim", "pim", "--preset", "tiny", "--mode", "overlap"], "--mode: 'overlap' is not "
                                                              "allowed with row_buffers=1"),
    (["sim", "pim", "--inputs", "{big}"], "--inputs: w: 300x16 is not allowed; it needs 75 rows "
                                          "per bank and the geometry has rows=4"),
    (["sim", "pim", "--inputs", "{wide}"], "--inputs: w: values from 300 to 300 are not "
                                           "allowed; expected -128 to 127"),
    (["sim", "mac", "--gemv", "4x4"], "--gemv: not allowed for block mac; it applies to pim"),
])
def test_cli_bad_input(capsys, tmp_path, argv, message):
    from accelgen.cli import main
    rng = np.random.default_rng(SEED)
    np.savez(tmp_path / "big.npz", w=rng.integers(-9, 9, (300, 16)), x=rng.integers(-9, 9, 16))
    np.savez(tmp_path / "wide.npz", w=np.full((4, 4), 300), x=np.ones(4, np.int64))
    args = [a.format(big=tmp_path / "big.npz", wide=tmp_path / "wide.npz") for a in argv]
    if "--preset" not in args and args[1] == "pim" and "{big}" in argv[-1]:
        args += ["--preset", "tiny"]
    out_dir = tmp_path / "out"
    code = main(args + ["--outputs", str(out_dir / "y.npz")] if "--inputs" in args else args)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and err.startswith("accelgen: error: "), err
    assert err.strip().startswith(f"accelgen: error: {message}"), err
    assert not out_dir.exists()


# -- FPGA self-check harness (fast tier) ----------------------------------------------------------


@pytest.mark.parametrize("controller_only", [False, True])
def test_pim_harness_passes_and_fails_with_a_corrupted_expectation(controller_only):
    from accelgen.fpga import harness as hz
    from accelgen.fpga.harness_pim import PimHarness
    from accelgen.generators.registry import REGISTRY
    spec = REGISTRY["pim"]
    cfg = dataclasses.replace(PRESETS["tiny"], controller_only=controller_only)
    h = PimHarness(spec, cfg, beats=200, seed=3)
    names = {i.name for i in h.plan.instrs}
    assert {"WR_SBK", "MAC_ABK", "RD_MAC", "AF", "RD_AF", "WR_BIAS", "EOC"} <= names
    assert sorted({r["err"] for r in h.plan.expected.rsp} - {0}) == [1, 2, 3, 4, 5]
    r = hz.simulate(h)
    assert r.done and r.passed and not r.failed, f"seed 3: {r}"
    bad = hz.simulate(PimHarness(spec, cfg, beats=200, seed=3, corrupt_expected=True))
    assert bad.done and bad.failed and not bad.passed


# -- cocotb tier ----------------------------------------------------------------------------------


def _pim_cases():
    from accelgen.generators.registry import REGISTRY
    from accelgen.sim.runner import default_testcases
    return default_testcases(REGISTRY["pim"])


def _check_pim(result, config):
    cases = result.result["testcases"]
    for name, case in cases.items():
        assert not case.get("violations"), (name, case.get("violations"))
    gemv = cases["gemv"]
    assert gemv["timing_violations"] == 0 and gemv["check"].startswith("passed")
    if not config.refresh:
        assert gemv["cycles"] == gemv["model_cycles"]
    else:
        refresh = cases["refresh"]
        assert refresh["refreshes"] >= refresh["cycles"] // config.timing.tREFI - 8
        assert refresh["longest_gap"] <= 9 * config.timing.tREFI


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(PRESETS))
def test_pim_verilator_preset(preset, tmp_path):
    from accelgen.generators.registry import REGISTRY
    from accelgen.sim.runner import simulate
    from support import explain
    config = PRESETS[preset]
    result = simulate(REGISTRY["pim"], config, preset=preset, seed=SEED, beats=200,
                      build_root=tmp_path)
    assert result.passed, explain(result)
    assert list(result.testcases) == _pim_cases()
    _check_pim(result, config)


@pytest.mark.cocotb
@needs_icarus
def test_pim_icarus_tiny(tmp_path):
    from accelgen.generators.registry import REGISTRY
    from accelgen.sim.runner import simulate
    from support import explain
    result = simulate(REGISTRY["pim"], PRESETS["tiny"], preset="tiny", simulator="icarus",
                      seed=SEED, beats=120, build_root=tmp_path)
    assert result.passed, explain(result)
    _check_pim(result, PRESETS["tiny"])


@pytest.mark.cocotb
@pytest.mark.parametrize("mode", ["plain", "overlap"])
def test_pim_controller_alone_gemv_cycles_are_the_model(mode, tmp_path):
    """GEMV 1024x1024 with bias and AiM timing on the controller alone (Verilator): every
    command at the cycle the analytic model says (the testbench compares the whole trace),
    the cycles it reports are the model's, and the MAC efficiency is the published plain
    figure (128 of every 226 cycles) or >= 90 % overlapped."""
    from accelgen.generators.registry import REGISTRY
    from accelgen.sim.runner import simulate
    from support import explain
    cfg = no_refresh("gddr6-aim", controller_only=True, rows=64)
    result = simulate(REGISTRY["pim"], cfg, preset="gddr6-aim", seed=SEED, testcases=["gemv"],
                      options={"gemv": "1024x1024", "mode": mode}, build_root=tmp_path)
    assert result.passed, explain(result)
    gemv = result.result["testcases"]["gemv"]
    assert gemv["cycles"] == gemv["model_cycles"] and gemv["timing_violations"] == 0
    # accelgen show pim --gemv (the model alone, zero data) gives the RTL's figures
    shown, _ = REGISTRY["pim"].model_report(cfg, {"gemv": "1024x1024", "mode": mode})
    assert (shown["cycles"], shown["macs"]) == (gemv["cycles"], gemv["macs"])
    assert shown["mac_efficiency"] == gemv["mac_efficiency"]
    if mode == "plain":
        assert 0.56 < gemv["mac_efficiency"] <= 128 / 226
    else:
        assert gemv["mac_efficiency"] >= 0.95


@pytest.mark.cocotb
def test_pim_testbench_catches_a_controller_that_breaks_a_rule(tmp_path):
    """Verilog of a controller built with tRCD_MAC one cycle short, under the manifest of the
    true timing: the testbench's timing checker fails it (the true pairing passes)."""
    from accelgen.generators.registry import REGISTRY
    from support import false_manifest_is_caught
    true = no_refresh("tiny")
    short = dataclasses.replace(true, timing=dataclasses.replace(true.timing, tRCD_MAC=55))
    false_manifest_is_caught(REGISTRY["pim"], short, true, tmp_path, ["gemv"], "tRCD_MAC",
                             beats=60)


@pytest.mark.cocotb
def test_cli_sim_pim_gemv_json_and_inputs(tmp_path):
    import json
    import subprocess
    import sys
    run = [sys.executable, "-m", "accelgen.cli", "sim", "pim", "--preset", "tiny"]
    done = subprocess.run(run + ["--gemv", "8x16", "--json"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    gemv = report["gemv"]
    assert gemv["timing_violations"] == 0 and gemv["check"] == "passed"
    assert gemv["cycles"] >= gemv["model_cycles"] and gemv["mac_efficiency"] > 0
    rng = np.random.default_rng(SEED)
    w, x, b = rng.integers(-128, 128, (7, 15)), rng.integers(-128, 128, 15), \
        rng.integers(-1000, 1000, 7)
    np.savez(tmp_path / "w.npz", w=w, x=x, b=b)
    done = subprocess.run(run + ["--inputs", "w.npz", "--outputs", "y.npz"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "y.npz") as out:
        assert np.array_equal(out["y"], w @ x + b)


# -- fpga tier ------------------------------------------------------------------------------------


@pytest.mark.fpga
def test_synth_pim_default_ecp5(tmp_path):
    """The ULX3S channel in yosys: one s8 multiplier per lane and bank in DSP blocks, the
    row storage in block RAM, within the ECP5-85F (its full build with place and route,
    ~20 minutes, is in benchmarks/pim.py)."""
    from accelgen.fpga.flow import synth
    from accelgen.generators.registry import REGISTRY
    cfg = PRESETS["default"]
    r = synth(REGISTRY["pim"], cfg, "ecp5", tmp_path, preset="default")
    assert r.resources["DSP"] >= cfg.banks * cfg.lanes
    assert r.resources["BRAM"] > 0 and 0 < r.resources["LUT4"] < 84_000


@pytest.mark.fpga
@pytest.mark.parametrize("board, preset", [("icebreaker", "tiny")])
def test_build_pim(tmp_path, board, preset):
    from accelgen.fpga.flow import build
    from accelgen.generators.registry import REGISTRY
    r = build(REGISTRY["pim"], PRESETS[preset], board, tmp_path, preset=preset, beats=200,
              seed=2, quick=True)
    assert r.selfcheck_passed and r.bitstream.exists() and r.bitstream.stat().st_size > 0
    assert set(r.selfcheck_checks) == {"o signature", "o beats", "rsp signature", "rsp beats"}
    assert r.resources["BRAM"][0] > 0 and r.resources["DSP"][0] > 0
    assert r.fmax_mhz > r.target_mhz > 0


@pytest.mark.slow
def test_golden_gemv_4096x1024_is_numpy_matmul():
    """The ISA-level golden model (weights loaded by the load program, the compiled GEMV run
    instruction by instruction) at 4096 x 1024 with bias and activation, both modes."""
    cfg = no_refresh("gddr6-aim", rows=128)
    rng = np.random.default_rng(SEED)
    w, x = rng.integers(-128, 128, (4096, 1024)), rng.integers(-128, 128, 1024)
    b = rng.integers(-(1 << 20), 1 << 20, 4096)
    for mode, act in (("plain", None), ("overlap", ("relu_requant", 10))):
        g = compile_gemv(cfg, w, x, b, act=act, mode=mode)
        m = Model(cfg)
        m.program(g.load)
        y = read_y(g, [o for s in m.program(g.run) for o in s.o_words])
        want = w @ x + b if act is None else golden_y(cfg, w, x, b, act)
        assert np.array_equal(y, want), mode


def test_rtl_program_starting_with_rows_open_is_cycle_exact():
    """A program that begins where the previous one left rows open (no reset between): the
    cycle model starts from the golden model's open buffers, so a PRE_AB waits for the rows
    the previous program opened (found by the cocotb controller-alone run: tWR of a row the
    model thought closed)."""
    cfg = no_refresh("tiny2")
    first = [Instr("ACT", bank=1, row=2), Instr("EOC")]
    second = [Instr("WR_SBK", bank=1, col=3), Instr("PRE_AB"), Instr("EOC")]
    model = Model(cfg)
    model.program(first)
    exp_second = Expected(cfg, second, model)
    assert exp_second.schedule.programs[0]["cycles"] == cfg.timing.tWR + cfg.timing.tRP
    exp, outs = run_rtl(cfg, first + second)
    assert_exact(cfg, exp, outs)
    assert rsp_dicts(cfg, outs["rsp"])[1]["cycles"] == cfg.timing.tWR + cfg.timing.tRP
