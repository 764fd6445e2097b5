"""Block ``systolic`` with ``abft`` (algorithm-based fault tolerance: a checksum column, a
checksum lane per B-panel and accumulator-memory row, the check at drain that reports
``rsp.err`` 5): config validation, the manifest, Amaranth-simulator runs against the golden
model (fast tier), a deliberately wrong writer that the check must catch, and (``cocotb``)
the emitted Verilog's self-check and upsets injected into it on Verilator.
"""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from accelgen.faults import campaign as camp
from accelgen.faults.campaign import prepare
from accelgen.generators.emit import verilog_text
from accelgen.generators.registry import REGISTRY
from accelgen.generators.systolic import (ABFT_ERROR, ERRORS, OUTPUTS, PRESETS,
                                          SystolicConfig)
from accelgen.hdl.systolic import Systolic
from accelgen.hdl.systolic import accumulator as acc_unit
from accelgen.numerics import ConfigError
from accelgen.sim.golden import systolic as golden
from accelgen.sim.golden.systolic_program import Program, random_command
from accelgen.sim.pysim import run_streams
from accelgen.sim.runner import simulate

from support import SEED
from support import explain as _explain

SYS = REGISTRY["systolic"]
TINY = PRESETS["tiny"]
BOTH = ("os", "ws")


def _config(rows, cols, **kw):
    kw.setdefault("k_max", 3 * rows + 1)
    kw.setdefault("acc_depth", 64)
    return replace(TINY, rows=rows, cols=cols, abft=True, **kw)


# -- config and manifest -----------------------------------------------------------------------

@pytest.mark.parametrize("settings, message", [
    ({"overflow": "saturate"},
     "abft: True is not allowed with overflow='saturate'; abft needs integer modes and "
     "overflow='wrap' (its checksums hold modulo 2**acc_width), expected False"),
    ({"modes": ("bf16",), "acc_width": 32},
     "abft: True is not allowed with float modes; abft needs integer modes and "
     "overflow='wrap' (its checksums hold modulo 2**acc_width), expected False"),
    ({"modes": ("e4m3", "e5m2"), "acc_width": 32, "overflow": "saturate"},
     "abft: True is not allowed with float modes;"),
])
def test_abft_refuses_non_modular_accumulation(settings, message):
    with pytest.raises(ConfigError) as info:
        replace(TINY, abft=True, **settings)
    text = str(info.value)
    assert "\n" not in text and text.startswith(message)
    replace(TINY, abft=False, **settings)       # the same settings without abft are fine


@pytest.mark.parametrize("value", [1, "true", None])
def test_abft_must_be_a_bool(value):
    with pytest.raises(ConfigError) as info:
        SystolicConfig(abft=value)
    assert str(info.value) == f"abft: {value!r} is not allowed; expected true or false"


def test_abft_config_round_trips_and_reports_its_error_code():
    cfg = replace(PRESETS["default"], abft=True)
    assert SystolicConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.digest() != PRESETS["default"].digest()
    assert cfg.errors == {**ERRORS, ABFT_ERROR: "checksum mismatch"}
    assert PRESETS["default"].errors == ERRORS and ABFT_ERROR not in ERRORS
    derived = cfg.derived()
    assert derived["errors"][str(ABFT_ERROR)] == "checksum mismatch"
    assert str(ABFT_ERROR) not in PRESETS["default"].derived()["errors"]
    err = next(f for f in cfg.rsp_fields if f.name == "err")
    assert "5 checksum mismatch" in err.doc and ABFT_ERROR < 1 << err.width
    # one more lane per accumulator row, one checksum element per B-panel row
    plain = PRESETS["default"]
    extra = cfg.cost()["memory_bits"][0] - plain.cost()["memory_bits"][0]
    assert extra == cfg.acc_depth * cfg.acc_width + 2 * cfg.k_max * cfg.abft_operand_width
    assert cfg.cost_features()["pes"] == plain.cost_features()["pes"] + cfg.rows
    assert derived["acc_memory_bits"] == cfg.acc_depth * (cfg.cols + 1) * cfg.acc_width
    assert derived["b_panel_bits"] + derived["acc_memory_bits"] == \
        cfg.cost()["memory_bits"][0]


def test_abft_widths_are_exact_or_modular():
    cfg = _config(4, 4, modes=("s8s8", "u8s8"), acc_width=20, k_max=64)
    # a checksum element: the sum of four s8 elements (b is s8 in both modes)
    assert cfg.abft_operand_width == 8 + 2
    # a * sum_j b_j: 4 * 255 * -128 = -130560 .. 4 * 255 * 127 needs 18 signed bits
    assert cfg.abft_product_width == 18
    # 64 (os) or 4 (ws, rows) such products need 24 and 20 bits: kept modulo 2**20
    assert cfg.abft_os_acc_width == 20 and cfg.abft_ws_sum_width == 20
    wide = replace(cfg, acc_width=32)
    assert (wide.abft_os_acc_width, wide.abft_ws_sum_width) == (24, 20)


def test_abft_adds_hardware_only_when_set():
    plain = replace(TINY, dataflows=BOTH)
    text = verilog_text(Systolic(plain), top="systolic")
    with_abft = verilog_text(Systolic(replace(plain, abft=True)), top="systolic")
    assert "_cs" not in text and "dc_sum" not in text
    assert "pe0_cs" in with_abft and "pe1_cs" in with_abft and "dc_sum" in with_abft


# -- Amaranth simulator against the golden model ---------------------------------------------

def _run(cfg, commands, seed, valid_prob=0.8, ready_prob=0.8):
    p = Program(cfg).run(commands, np.random.default_rng(seed))
    out, _ = run_streams(Systolic(cfg), p.words, {"o": len(p.o), "rsp": len(p.rsp)},
                         seed=seed, valid_prob=valid_prob, ready_prob=ready_prob,
                         max_cycles=4000 + 40 * sum(map(len, [*p.words.values(), p.o])))
    return p, out, [golden.unpack_rsp(cfg, w) for w in out["rsp"]]


ARRAYS = [
    pytest.param(_config(2, 2, dataflows=BOTH), id="2x2-both-s8s8"),
    pytest.param(_config(3, 4, dataflows=("ws",), modes=("s4s4", "u8s8"), requant=True,
                         lut_rows=1, rom_rows=1), id="3x4-ws-int4-u8-lut-table-requant"),
    pytest.param(_config(4, 3, dataflows=("os",), pe_pipeline=0, acc_width=17, requant=True),
                 id="4x3-os-wrap17-nopipe-requant"),
    pytest.param(_config(2, 3, dataflows=BOTH, modes=("s8s8", "s8s4"), pe_pipeline=2,
                         acc_width=16), id="2x3-both-pipe2-wrap16"),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("cfg", ARRAYS)
def test_abft_results_equal_the_golden_model(cfg, seed):
    """Random commands (accumulate chains, preload, output none, both dataflows, random gaps
    and backpressure; narrow accumulators wrap often): every ``o`` word, ``err`` (0: the
    checksums agree without faults) and ``macs`` as the golden model says."""
    rng = np.random.default_rng(seed)
    commands = [random_command(cfg, rng) for _ in range(5)]
    p, out, rsp = _run(cfg, commands, seed)
    assert [(r["err"], r["macs"]) for r in rsp] == [(r.err, r.macs) for r in p.rsp], \
        f"seed {seed}: rsp"
    assert out["o"] == p.o, f"seed {seed}: o words differ"
    assert any(r.err == 0 for r in p.rsp)


@pytest.mark.parametrize("abft", [True, False])
def test_a_wrong_writer_is_reported_only_with_abft(abft, monkeypatch):
    """A writer that adds 1 to every lane it writes (data and checksum lanes alike: with C = 2
    the lane sum is off by one from the checksum): with ``abft`` every command that drains
    rows reports err 5, with its counters intact; commands with output ``none`` report 0.
    Without ``abft`` the same fault is silent."""
    original = acc_unit.apply_overflow
    monkeypatch.setattr(acc_unit, "apply_overflow",
                        lambda value, fmt, overflow: original(value + 1, fmt, overflow))
    cfg = replace(_config(2, 2, dataflows=BOTH), abft=abft)
    rng = np.random.default_rng(5)
    commands = [random_command(cfg, rng) for _ in range(6)]
    commands.append(golden.Command(m=3, k=2, n=3, output="none"))
    p, out, rsp = _run(cfg, commands, 5, valid_prob=1.0, ready_prob=1.0)
    assert out["o"] != p.o                      # the fault is real
    drained = [c.coded(cfg).output != OUTPUTS.index("none") for c in p.commands]
    assert any(drained) and not all(drained)
    want = [ABFT_ERROR if abft and d else 0 for d in drained]
    assert [r["err"] for r in rsp] == want
    assert [r["macs"] for r in rsp] == [r.macs for r in p.rsp]


# -- cocotb tier: the emitted Verilog on Verilator -------------------------------------------

@pytest.mark.cocotb
def test_abft_verilator_self_check(shared_build_root):
    """tiny with ``abft`` and both dataflows: random_gemms, errors, reset_midcommand,
    sequence (every ``rsp.cycles`` equal to the cycle model: the check adds no cycle) and gemm
    bit-exact against the golden model, every ``err`` as expected (0 for every valid
    command)."""
    from test_systolic import SYS_BEATS, _check_systolic
    config = replace(TINY, abft=True, dataflows=BOTH)
    result = simulate(SYS, config, simulator="verilator", seed=SEED, beats=SYS_BEATS,
                      build_root=shared_build_root)
    assert result.passed, _explain(result)
    _check_systolic(result, config)


#: the memories a checksum covers: the accumulator memory and the B-panel banks (not the
#: ``a`` FIFO, whose upsets every column sees alike, nor the output FIFO after the check)
CHECKED_MEMORIES = ("acc_mem", "pl_banks_mem")


def _memory_faults(target, n, seed):
    return [f for f in camp._draw(target.sites, 8 * n, target.cycles, seed)
            if f["site"].words and f["site"].path[-1] in CHECKED_MEMORIES][:n]


@pytest.mark.cocotb
def test_abft_turns_memory_upsets_into_detections(tmp_path):
    """tiny, the harness workload: upsets of the accumulator memory and the B-panel banks
    (data and checksum lanes) are never silent with ``abft`` (a flipped bit changes a row's
    lane sum by ``a * 2**b`` or ``2**b``, nonzero modulo ``2**acc_width`` whenever it
    changes a result; every corrupted row is checked by the command that drains it, or,
    after ``none``, by a later one that accumulates onto it and drains it), while the same
    kind of upsets corrupt results silently without it (most upsets strike rows already
    drained: masked); and a campaign over every bit has fewer silent corruptions with
    ``abft``."""
    outcomes = {}
    for abft in (False, True):
        target = prepare(SYS, replace(TINY, abft=abft), tmp_path / str(abft), beats=120,
                         seed=3)
        faults = _memory_faults(target, 1000, 4)
        assert len(faults) == 1000
        outcomes[abft], applied = target.inject(faults)
        assert all(applied)
        drawn = camp._draw(target.sites, 150, target.cycles, 1)
        outcomes[abft, "all"], _ = target.inject(drawn)
    plain, abft = Counter(outcomes[False]), Counter(outcomes[True])
    assert plain["sdc"] >= 5 and plain["detected"] == 0, plain
    assert abft["sdc"] == 0 and abft["detected"] >= 5, abft
    plain, abft = Counter(outcomes[False, "all"]), Counter(outcomes[True, "all"])
    assert abft["detected"] > 0 and abft["sdc"] < plain["sdc"], (plain, abft)
