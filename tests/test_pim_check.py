"""Planted-bug tests of the independent DRAM trace checker of block ``pim``
(:mod:`accelgen.sim.golden.pim_check`): hand-written legal traces built from the timing values
must pass, and each rule must fire, alone, on a minimal trace that breaks it by one cycle or
one state, and not on its corrected twin. No simulation."""

from dataclasses import fields, replace

import pytest

from accelgen.generators.pim import DRAM_COMMANDS, MAX_POSTPONED, PRESETS, PimTiming
from accelgen.sim.golden.pim_check import (REFRESH_RULES, STATE_RULES, TIMING_RULES, Violation,
                                           check_trace, decode_trace, summary)
from accelgen.sim.payload import pack

AIM = replace(PRESETS["gddr6-aim"], refresh=False)       # tCCD 2/2, tRRD 6/8
GD = replace(PRESETS["gddr6"], refresh=False)            # tCCD 2/4, tRRD 7/9
GD_REF = PRESETS["gddr6"]
#: tFAW longer than tRC, so an ACT_AB's weight 4 can bind alone
WIDE_FAW = replace(GD, timing=replace(GD.timing, tFAW=100))
SINGLE = PRESETS["tiny"]
#: tiny with two row buffers
DUAL = replace(PRESETS["tiny"], row_buffers=2)
#: a GB narrower than a row, so the two column limits differ
SMALL_GB = replace(GD, gb_columns=GD.columns // 4)


def op(cycle, name, bank=0, buf=0, row=0, col=0):
    return (cycle, name, bank, buf, row, col)


class Builder:
    """A trace written command by command; ``at(earliest, ...)`` issues at ``earliest`` or
    one cycle after the previous command, whichever is later, and returns the cycle."""

    def __init__(self):
        self.trace = []

    @property
    def last(self):
        return self.trace[-1][0] if self.trace else 0

    def at(self, earliest, name, bank=0, buf=0, row=0, col=0):
        cycle = max(earliest, self.last + 1)
        self.trace.append(op(cycle, name, bank, buf, row, col))
        return cycle


def legal_trace(cfg, *, with_ref=True):
    """Every DRAM command kind, each at a cycle its rules allow (the binding rule exact where
    it is the latest one): GB and bias writes, a single-bank epoch in two groups, an all-bank
    epoch (and, with two buffers, an overlapped one in buffer 1), then REF and one more
    epoch."""
    t = cfg.timing
    other, mate, last = cfg.banks_per_group, 1, cfg.banks - 1   # group 1, group 0, last bank
    b = Builder()
    b.at(1, "WR_GB", col=0)
    b.at(2, "WR_GB", col=cfg.gb_columns - 1)
    b.at(3, "WR_BIAS", bank=0)
    b.at(4, "WR_BIAS", bank=last)
    b.at(5, "NOP")
    # single-bank epoch: bank 0 and its group mate, and a bank of group 1
    a0 = b.at(10, "ACT", bank=0, row=1)
    a1 = b.at(a0 + t.tRRD_S, "ACT", bank=other, row=2)
    a2 = b.at(max(a0 + t.tRRD_L, a1 + t.tRRD_S), "ACT", bank=mate, row=cfg.rows - 1)
    wr = b.at(a0 + t.tRCD_WR, "WR", bank=0, col=0)
    rd = b.at(max(a0 + t.tRCD_RD, wr + t.tCCD_L), "RD", bank=0, col=1)
    mac0 = b.at(max(a0 + t.tRCD_MAC, rd + t.tCCD_L), "MAC", bank=0, col=2)
    mac1 = b.at(max(a1 + t.tRCD_MAC, mac0 + t.tCCD_S), "MAC", bank=other, col=cfg.columns - 1)
    mac2 = b.at(max(a2 + t.tRCD_MAC, mac1 + t.tCCD_S, mac0 + t.tCCD_L), "MAC", bank=mate, col=3)
    b.at(max(a0 + t.tRAS, wr + t.tWR, rd + t.tRTP, mac0 + t.tRTP), "PRE", bank=0)
    b.at(max(a1 + t.tRAS, mac1 + t.tRTP), "PRE", bank=other)
    p2 = b.at(max(a2 + t.tRAS, mac2 + t.tRTP), "PRE", bank=mate)
    # all-bank epoch in buffer 0 (ACT_AB weighs 4: no other activation in its tFAW window)
    x = b.at(max(p2 + t.tRP, a2 + t.tRC, a2 + t.tFAW), "ACT_AB", buf=0, row=2)
    wab = b.at(x + t.tRCD_WR, "WR_AB", buf=0, col=0)
    mab = b.at(max(x + t.tRCD_MAC, wab + t.tCCD_L), "MAC_AB", buf=0, col=1)
    mab = b.at(mab + t.tCCD_L, "MAC_AB", buf=0, col=cfg.columns - 1)
    rd = b.at(max(x + t.tRCD_RD, mab + t.tCCD_L), "RD", bank=last, buf=0, col=0)
    b.at(rd + 1, "AF")
    b.at(rd + 2, "RD_MAC")
    b.at(rd + 3, "RD_AF")
    last_act, column = x, rd
    if cfg.row_buffers == 2:
        # overlapped: buffer 1 opens another row while buffer 0 still holds row 2
        y = b.at(max(x + t.tRC, x + t.tFAW), "ACT_AB", buf=1, row=3)
        column = b.at(max(y + t.tRCD_MAC, column + t.tCCD_L), "MAC_AB", buf=1, col=0)
        last_act = y
    pre = b.at(max(x + t.tRAS, wab + t.tWR, mab + t.tRTP, rd + t.tRTP), "PRE_AB", buf=0)
    if cfg.row_buffers == 2:
        pre = b.at(max(last_act + t.tRAS, column + t.tRTP), "PRE_AB", buf=1)
    if with_ref:
        ref = b.at(max(pre + t.tRP, last_act + t.tRC), "REF")
        b.at(ref + t.tRFC, "WR_GB", col=1)
        act = b.at(ref + t.tRFC, "ACT", bank=last, row=0)
        b.at(act + t.tRAS, "PRE", bank=last)
    cycles = [c for c, *_ in b.trace]
    assert cycles == sorted(set(cycles))
    return b.trace


# -- legal traces -------------------------------------------------------------------------------

LEGAL_CONFIGS = {"gddr6-aim": PRESETS["gddr6-aim"], "tiny": DUAL,
                 "hbm2": PRESETS["hbm2"], "gddr6": PRESETS["gddr6"],
                 "hbm2-pim": PRESETS["hbm2-pim"], "tiny-single-buffer": SINGLE}


@pytest.mark.parametrize("name", LEGAL_CONFIGS)
def test_legal_trace_passes(name):
    cfg = LEGAL_CONFIGS[name]
    trace = legal_trace(cfg)
    assert {c for _, c, *_ in trace} == set(DRAM_COMMANDS)
    assert check_trace(trace, cfg) == []
    # the same by command code
    assert check_trace([(c, DRAM_COMMANDS.index(n), *rest) for c, n, *rest in trace], cfg) == []


@pytest.mark.parametrize("name", LEGAL_CONFIGS)
def test_legal_trace_without_refresh(name):
    cfg = replace(LEGAL_CONFIGS[name], refresh=False)
    trace = legal_trace(cfg, with_ref=False)
    assert check_trace(trace, cfg) == []
    # with REF while refresh is not built: exactly that is wrong
    assert summary(check_trace(legal_trace(cfg), cfg)) == {"refresh_off": 1}


def test_dual_buffer_config_is_dual():
    assert DUAL.row_buffers == 2 and SINGLE.row_buffers == 1
    kinds = [(n, buf) for _, n, _, buf, *_ in legal_trace(DUAL)]
    assert ("ACT_AB", 1) in kinds and ("PRE_AB", 1) in kinds
    assert ("ACT_AB", 1) not in [(n, buf) for _, n, _, buf, *_ in legal_trace(SINGLE)]


def test_empty_trace():
    assert check_trace([], GD) == []
    assert check_trace([op(3, "NOP"), op(3, "NOP")], GD) == []


# -- timing rules: met exactly, and one cycle short ---------------------------------------------
# each builder(cfg, d) returns a trace whose last command is d cycles off the exact distance


def _rcd(column):
    def build(cfg, d):
        t = cfg.timing
        latency = getattr(t, {"RD": "tRCD_RD", "WR": "tRCD_WR", "MAC": "tRCD_MAC"}[column])
        return [op(10, "ACT", bank=3, row=1), op(10 + latency + d, column, bank=3, col=5)]
    return build


def _tras(cfg, d):
    return [op(10, "ACT", row=1), op(10 + cfg.timing.tRAS + d, "PRE")]


def _trp(cfg, d):
    t = cfg.timing
    pre = 10 + max(t.tRAS, t.tRC)
    return [op(10, "ACT", row=1), op(pre, "PRE"), op(pre + t.tRP + d, "ACT", row=2)]


def _trc(cfg, d):
    # the other buffer of the same bank
    return [op(10, "ACT", buf=0, row=1), op(10 + cfg.timing.tRC + d, "ACT", buf=1, row=2)]


def _trtp(column):
    def build(cfg, d):
        t = cfg.timing
        c = 10 + max(t.tRAS, t.tRCD_RD, t.tRCD_MAC)
        return [op(10, "ACT", row=1), op(c, column, col=0), op(c + t.tRTP + d, "PRE")]
    return build


def _twr(cfg, d):
    t = cfg.timing
    c = 10 + max(t.tRAS, t.tRCD_WR)
    return [op(10, "ACT", row=1), op(c, "WR", col=0), op(c + t.tWR + d, "PRE")]


def _ccd(latency, second_bank):
    def build(cfg, d):
        t = cfg.timing
        c = 10 + max(t.tRRD_L, t.tRRD_S) + t.tRCD_RD
        return [op(10, "ACT", bank=0, row=1),
                op(10 + max(t.tRRD_L, t.tRRD_S), "ACT", bank=second_bank, row=1),
                op(c, "RD", bank=0, col=0),
                op(c + getattr(t, latency) + d, "MAC", bank=second_bank, col=1)]
    return build


def _rrd(latency, second_bank):
    def build(cfg, d):
        return [op(10, "ACT", bank=0, row=1),
                op(10 + getattr(cfg.timing, latency) + d, "ACT", bank=second_bank, row=1)]
    return build


def _faw(cfg, d):
    # four ACT, one per group, tRRD_S apart; the fifth tFAW after the first
    t = cfg.timing
    trace = [op(10 + i * t.tRRD_S, "ACT", bank=i * cfg.banks_per_group, row=1)
             for i in range(4)]
    return trace + [op(10 + t.tFAW + d, "ACT", bank=1, row=2)]


def _faw_ab_then_act(cfg, d):
    return [op(10, "ACT_AB", buf=0, row=1), op(10 + cfg.timing.tFAW + d, "ACT", buf=1, row=2)]


def _faw_act_then_ab(cfg, d):
    return [op(10, "ACT", bank=5, buf=0, row=1),
            op(10 + cfg.timing.tFAW + d, "ACT_AB", buf=1, row=2)]


def _faw_ab_then_ab(cfg, d):
    return [op(10, "ACT_AB", buf=0, row=1), op(10 + cfg.timing.tFAW + d, "ACT_AB", buf=1, row=2)]


def _trfc(follower):
    def build(cfg, d):
        return [op(10, "REF"), op(10 + cfg.timing.tRFC + d, follower)]
    return build


def _ref_trp(cfg, d):
    t = cfg.timing
    pre = 10 + max(t.tRAS, t.tRC)
    return [op(10, "ACT", bank=2, row=1), op(pre, "PRE", bank=2), op(pre + t.tRP + d, "REF")]


def _ref_trc(cfg, d):
    t = cfg.timing
    return [op(10, "ACT", bank=2, row=1), op(10 + t.tRAS, "PRE", bank=2),
            op(10 + t.tRC + d, "REF")]


def _pre_ab_tras(cfg, d):
    return [op(10, "ACT", bank=6, row=1), op(10 + cfg.timing.tRAS + d, "PRE_AB")]


def _pre_ab_twr(cfg, d):
    t = cfg.timing
    c = 10 + max(t.tRAS, t.tRCD_WR)
    return [op(10, "ACT_AB", row=1), op(c, "WR", bank=5, col=0), op(c + t.tWR + d, "PRE_AB")]


def _pre_ab_twr_all_bank(cfg, d):
    t = cfg.timing
    c = 10 + max(t.tRAS, t.tRCD_WR)
    return [op(10, "ACT_AB", row=1), op(c, "WR_AB", col=0), op(c + t.tWR + d, "PRE_AB")]


def _pre_ab_trtp(cfg, d):
    t = cfg.timing
    c = 10 + max(t.tRAS, t.tRCD_MAC)
    return [op(10, "ACT_AB", row=1), op(c, "MAC", bank=cfg.banks - 1, col=0),
            op(c + t.tRTP + d, "PRE_AB")]


def _ref_trp_buffer_1(cfg, d):
    t = cfg.timing
    pre = 10 + max(t.tRAS, t.tRC)
    return [op(10, "ACT", bank=2, buf=1, row=1), op(pre, "PRE_AB", buf=1),
            op(pre + t.tRP + d, "REF")]


def _pre_ab_trp(cfg, d):
    t = cfg.timing
    pre = 10 + max(t.tRAS, t.tRC)
    return [op(10, "ACT", bank=4, row=1), op(pre, "PRE_AB"),
            op(pre + t.tRP + d, "ACT", bank=4, row=2)]


def _mac_ab_tccd_l(cfg, d):
    t = cfg.timing
    c = 10 + t.tRCD_MAC
    return [op(10, "ACT_AB", row=1), op(c, "MAC", bank=9, col=0),
            op(c + t.tCCD_L + d, "MAC_AB", col=1)]


def _wr_ab_trcd(cfg, d):
    return [op(10, "ACT_AB", row=1), op(10 + cfg.timing.tRCD_WR + d, "WR_AB", col=1)]


#: (case id, config, rule, builder); GD has tCCD_L > tCCD_S and tRRD_L > tRRD_S
TIMING_CASES = [
    ("tRCD_RD", GD, "tRCD_RD", _rcd("RD")),
    ("tRCD_WR", GD, "tRCD_WR", _rcd("WR")),
    ("tRCD_MAC", AIM, "tRCD_MAC", _rcd("MAC")),
    ("tRCD_WR-all-bank", GD, "tRCD_WR", _wr_ab_trcd),
    ("tRAS", GD, "tRAS", _tras),
    ("tRP", GD, "tRP", _trp),
    ("tRC", GD, "tRC", _trc),
    ("tRTP-RD", GD, "tRTP", _trtp("RD")),
    ("tRTP-MAC", AIM, "tRTP", _trtp("MAC")),
    ("tWR", GD, "tWR", _twr),
    ("tCCD_S", GD, "tCCD_S", _ccd("tCCD_S", second_bank=GD.banks_per_group)),
    ("tCCD_L", GD, "tCCD_L", _ccd("tCCD_L", second_bank=1)),
    ("tCCD_L-all-bank", GD, "tCCD_L", _mac_ab_tccd_l),
    ("tRRD_S", GD, "tRRD_S", _rrd("tRRD_S", second_bank=GD.banks_per_group)),
    ("tRRD_L", GD, "tRRD_L", _rrd("tRRD_L", second_bank=1)),
    ("tFAW", GD, "tFAW", _faw),
    ("tFAW-ACT_AB-then-ACT", WIDE_FAW, "tFAW", _faw_ab_then_act),
    ("tFAW-ACT-then-ACT_AB", WIDE_FAW, "tFAW", _faw_act_then_ab),
    ("tFAW-ACT_AB-then-ACT_AB", WIDE_FAW, "tFAW", _faw_ab_then_ab),
    ("tRFC-WR_GB", GD_REF, "tRFC", _trfc("WR_GB")),
    ("tRFC-REF", GD_REF, "tRFC", _trfc("REF")),
    ("tRFC-ACT", GD_REF, "tRFC", _trfc("ACT")),
    ("tRFC-RD_AF", GD_REF, "tRFC", _trfc("RD_AF")),
    ("tRP-before-REF", GD_REF, "tRP", _ref_trp),
    ("tRC-before-REF", PRESETS["gddr6-aim"], "tRC", _ref_trc),
    ("tRAS-PRE_AB", GD, "tRAS", _pre_ab_tras),
    ("tWR-PRE_AB", GD, "tWR", _pre_ab_twr),
    ("tRP-after-PRE_AB", GD, "tRP", _pre_ab_trp),
    ("tWR-WR_AB-PRE_AB", GD, "tWR", _pre_ab_twr_all_bank),
    ("tRTP-PRE_AB", GD, "tRTP", _pre_ab_trtp),
    ("tRP-PRE_AB-before-REF", GD_REF, "tRP", _ref_trp_buffer_1),
]
TIMING_IDS = [c[0] for c in TIMING_CASES]


def test_every_timing_name_has_a_case():
    names = {f.name for f in fields(PimTiming)}
    assert names - {"tREFI"} == set(TIMING_RULES) == {c[2] for c in TIMING_CASES}
    # tREFI: test_refresh_gap_* / test_refresh_debt_*


def test_long_and_short_timings_differ():
    t = GD.timing
    assert t.tCCD_L - 1 >= t.tCCD_S and t.tRRD_L - 1 >= t.tRRD_S
    assert GD.group(0) == GD.group(1) != GD.group(GD.banks_per_group)
    assert 4 * t.tRRD_S <= t.tFAW - 1                    # _faw: tFAW binds, not tRRD_S
    assert WIDE_FAW.timing.tFAW > WIDE_FAW.timing.tRC    # ACT_AB cases: tFAW binds, not tRC
    aim = PRESETS["gddr6-aim"].timing
    assert aim.tRC - aim.tRAS - 1 >= aim.tRP             # _ref_trc: tRC binds, not tRP


@pytest.mark.parametrize("case", TIMING_CASES, ids=TIMING_IDS)
def test_timing_met_exactly(case):
    _, cfg, _, build = case
    assert check_trace(build(cfg, 0), cfg) == []
    assert check_trace(build(cfg, 1), cfg) == []


@pytest.mark.parametrize("case", TIMING_CASES, ids=TIMING_IDS)
def test_timing_one_cycle_short(case):
    _, cfg, rule, build = case
    trace = build(cfg, -1)
    found = check_trace(trace, cfg)
    assert summary(found) == {rule: 1}
    (v,) = found
    need = getattr(cfg.timing, rule)
    assert v.index == len(trace) - 1 and v.cycle == trace[-1][0]
    assert f"{rule} needs {need}" in v.message and v.message.startswith(f"cycle {v.cycle}: ")
    if rule != "tFAW":
        assert f"is {need - 1} cycles after" in v.message


def test_message_names_commands_and_distances():
    cfg = AIM
    (v,) = check_trace([op(85, "ACT", bank=3, row=1), op(140, "MAC", bank=3, col=0)], cfg)
    assert v == Violation(140, 1, "tRCD_MAC", v.message)
    assert v.message.startswith("cycle 140: MAC bank 3 buf 0")
    assert "is 55 cycles after ACT bank 3 buf 0 row 1 at 85; tRCD_MAC needs 56" in v.message


def test_tightest_predecessor_is_named():
    t = GD.timing
    trace = [op(10, "ACT", bank=0, row=1), op(10 + t.tRRD_L, "ACT", bank=1, row=1),
             op(200, "RD", bank=0), op(201, "RD", bank=1), op(202, "RD", bank=0)]
    found = check_trace(trace, GD)
    assert summary(found) == {"tCCD_L": 2, "tCCD_S": 2}
    assert [v.index for v in found] == [3, 3, 4, 4]
    assert "after RD bank 1 buf 0 col 0 at 201" in found[2].message


def test_buffer_rules_are_per_buffer():
    # dual buffers: tRCD, tRAS and tRP count per buffer; only tRC spans the bank
    t = GD.timing
    a1 = 10 + t.tRC
    mac = a1 + 1
    pre0 = mac + t.tRTP
    pre1 = a1 + t.tRAS
    act = max(pre0 + t.tRP, a1 + t.tRC)
    assert pre0 - a1 < t.tRAS and act - pre1 < t.tRP          # would break across buffers
    trace = [op(10, "ACT", buf=0, row=1), op(a1, "ACT", buf=1, row=2),
             op(mac, "MAC", buf=0, col=0), op(pre0, "PRE", buf=0), op(pre1, "PRE", buf=1),
             op(act, "ACT", buf=0, row=3)]
    assert check_trace(trace, GD) == []
    trace[-1] = op(a1 + t.tRC - 1, "ACT", buf=0, row=3)
    assert summary(check_trace(trace, GD)) == {"tRC": 1}


def test_faw_window_is_strict_and_weighted():
    t = WIDE_FAW.timing
    # ACT_AB alone weighs exactly 4: legal; a second ACT inside the window is not
    assert check_trace([op(10, "ACT_AB", row=1)], WIDE_FAW) == []
    found = check_trace([op(10, "ACT_AB", row=1), op(10 + t.tFAW - 1, "ACT", buf=1, row=2)],
                        WIDE_FAW)
    assert summary(found) == {"tFAW": 1}
    assert "5 activations" in found[0].message and "ACT_AB buf 0 row 1 at 10" in found[0].message
    # four single ACT in one window are fine, the fifth is not
    spaced = [op(10 + 10 * i, "ACT", bank=4 * i, row=1) for i in range(4)]
    assert check_trace(spaced, WIDE_FAW) == []
    assert summary(check_trace(spaced + [op(50, "ACT", bank=1, row=1)], WIDE_FAW)) == \
        {"tFAW": 1}
    # the fifth is measured from the fourth-latest, not the latest
    assert check_trace(spaced + [op(110, "ACT", bank=1, row=1)], WIDE_FAW) == []


# -- state rules: minimal trace and corrected twin ----------------------------------------------


def _state_cases():
    t = GD.timing
    ras, rc = t.tRAS, t.tRC
    reopen = max(10 + rc, 10 + ras + t.tRP)
    closed_pre = [op(10, "ACT", row=1), op(10 + ras, "PRE")]
    return [
        ("range-row", GD, "range", [op(10, "ACT", row=GD.rows)], [op(10, "ACT", row=GD.rows - 1)]),
        ("range-bank", GD, "range", [op(10, "ACT", bank=GD.banks, row=1)],
         [op(10, "ACT", bank=GD.banks - 1, row=1)]),
        ("range-buf", replace(GD, row_buffers=1), "range", [op(10, "ACT", buf=1, row=1)],
         [op(10, "ACT", buf=0, row=1)]),
        ("range-col", GD, "range",
         [op(10, "ACT", row=1), op(10 + t.tRCD_RD, "RD", col=GD.columns)],
         [op(10, "ACT", row=1), op(10 + t.tRCD_RD, "RD", col=GD.columns - 1)]),
        ("range-gb", SMALL_GB, "range", [op(10, "WR_GB", col=SMALL_GB.gb_columns)],
         [op(10, "WR_GB", col=SMALL_GB.gb_columns - 1)]),
        ("range-col-not-gb", SMALL_GB, "range",
         [op(10, "ACT", row=1), op(10 + t.tRCD_RD, "MAC", col=SMALL_GB.columns)],
         [op(10, "ACT", row=1), op(10 + t.tRCD_RD, "MAC", col=SMALL_GB.gb_columns)]),
        ("range-bias-bank", GD, "range", [op(10, "WR_BIAS", bank=GD.banks)],
         [op(10, "WR_BIAS", bank=GD.banks - 1)]),
        ("act_open", GD, "act_open", [op(10, "ACT", row=1), op(reopen, "ACT", row=2)],
         closed_pre + [op(reopen, "ACT", row=2)]),
        ("act_open-all-bank", GD, "act_open",
         [op(10, "ACT", bank=7, row=1), op(10 + rc, "ACT_AB", row=2)],
         [op(10, "ACT", bank=7, row=1), op(10 + rc, "ACT_AB", buf=1, row=2)]),
        ("act_twin", GD, "act_twin",
         [op(10, "ACT", buf=0, row=1), op(10 + rc, "ACT", buf=1, row=1)],
         [op(10, "ACT", buf=0, row=1), op(10 + rc, "ACT", buf=1, row=2)]),
        ("act_twin-all-bank", GD, "act_twin",
         [op(10, "ACT", bank=3, buf=1, row=4), op(10 + rc, "ACT_AB", buf=0, row=4)],
         [op(10, "ACT", bank=3, buf=1, row=4), op(10 + rc, "ACT_AB", buf=0, row=5)]),
        ("closed_row", GD, "closed_row", [op(10 + t.tRCD_MAC, "MAC", col=0)],
         [op(10, "ACT", row=1), op(10 + t.tRCD_MAC, "MAC", col=0)]),
        ("closed_row-other-buffer", GD, "closed_row",
         [op(10, "ACT", buf=0, row=1), op(10 + t.tRCD_RD, "RD", buf=1)],
         [op(10, "ACT", buf=0, row=1), op(10 + t.tRCD_RD, "RD", buf=0)]),
        ("abk_rows-mismatch", GD, "abk_rows",
         [op(10, "ACT_AB", row=1), op(10 + rc, "PRE", bank=3), op(10 + rc + t.tRP, "ACT",
                                                                  bank=3, row=2),
          op(10 + rc + t.tRP + t.tRCD_MAC, "MAC_AB", col=0)],
         [op(10, "ACT_AB", row=1), op(10 + rc, "PRE", bank=3), op(10 + rc + t.tRP, "ACT",
                                                                  bank=3, row=1),
          op(10 + rc + t.tRP + t.tRCD_MAC, "MAC_AB", col=0)]),
        ("abk_rows-closed-bank", GD, "abk_rows",
         [op(10, "ACT_AB", row=1), op(10 + rc, "PRE", bank=3),
          op(10 + rc + t.tWR, "WR_AB", col=0)],
         [op(10, "ACT_AB", row=1), op(10 + rc + t.tWR, "WR_AB", col=0)]),
        ("abk_rows-all-closed", GD, "abk_rows", [op(10, "WR_AB", col=0)],
         [op(10, "ACT_AB", row=1), op(10 + t.tRCD_WR, "WR_AB", col=0)]),
        ("pre_closed", GD, "pre_closed", [op(10, "PRE")], closed_pre),
        ("pre_closed-all-bank", GD, "pre_closed", [op(10, "ACT", row=1), op(10 + ras, "PRE_AB",
                                                                           buf=1)],
         [op(10, "ACT", row=1), op(10 + ras, "PRE_AB", buf=0)]),
        ("ref_open", GD_REF, "ref_open", [op(10, "ACT", row=1), op(reopen, "REF")],
         closed_pre + [op(reopen, "REF")]),
        ("refresh_off", GD, "refresh_off", [op(10, "WR_GB"), op(20, "REF")],
         [op(10, "WR_GB"), op(20, "AF")]),
        ("bus-same-cycle", GD, "bus", [op(10, "WR_GB"), op(10, "WR_BIAS")],
         [op(10, "WR_GB"), op(11, "WR_BIAS")]),
        ("bus-backwards", GD, "bus", [op(10, "WR_GB"), op(12, "AF"), op(11, "RD_MAC")],
         [op(10, "WR_GB"), op(11, "AF"), op(12, "RD_MAC")]),
    ]


STATE_CASES = _state_cases()


def test_every_state_rule_has_a_case():
    assert {c[2] for c in STATE_CASES} == set(STATE_RULES)


@pytest.mark.parametrize("case", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_state_rule_fires(case):
    _, cfg, rule, bad, _ = case
    found = check_trace(bad, cfg)
    assert summary(found) == {rule: 1}
    assert found[0].index == len(bad) - 1 and found[0].cycle == bad[-1][0]


@pytest.mark.parametrize("case", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_state_rule_corrected_twin_passes(case):
    _, cfg, _, _, good = case
    assert check_trace(good, cfg) == []


def test_refresh_off_is_the_only_complaint_with_refresh_built():
    trace = [op(10, "REF"), op(10 + GD.timing.tRFC, "WR_GB")]
    assert check_trace(trace, GD_REF) == []


# -- state after a violation ---------------------------------------------------------------------


def test_illegal_act_still_opens_the_row():
    t = GD.timing
    trace = [op(10, "ACT", row=1), op(10 + t.tRC, "ACT", row=2),
             op(10 + t.tRC + t.tRCD_RD, "RD"),
             op(10 + t.tRC + t.tRAS, "PRE"), op(10 + t.tRC + t.tRAS + 1, "PRE")]
    found = check_trace(trace, GD)
    # only the re-activation and the second PRE are wrong; the RD sees the row open, the first
    # PRE's tRAS counts from the illegal ACT
    assert [(v.index, v.rule) for v in found] == [(1, "act_open"), (4, "pre_closed")]
    # the illegal ACT replaced the row: the other buffer may not open row 2, but may open row 1
    twin = [op(10, "ACT", buf=0, row=1), op(10 + t.tRC, "ACT", buf=0, row=2)]
    found = check_trace(twin + [op(10 + 2 * t.tRC, "ACT", buf=1, row=2)], GD)
    assert [(v.index, v.rule) for v in found] == [(1, "act_open"), (2, "act_twin")]
    found = check_trace(twin + [op(10 + 2 * t.tRC, "ACT", buf=1, row=1)], GD)
    assert [(v.index, v.rule) for v in found] == [(1, "act_open")]


def test_pre_on_closed_buffer_does_not_restart_trp():
    t = GD.timing
    pre = 10 + t.tRAS
    act = max(10 + t.tRC, pre + t.tRP)
    trace = [op(10, "ACT", row=1), op(pre, "PRE"), op(act - 1, "PRE"), op(act, "ACT", row=2)]
    assert [(v.index, v.rule) for v in check_trace(trace, GD)] == [(2, "pre_closed")]


def test_out_of_range_bank_still_counts_on_the_channel():
    t = GD.timing
    trace = [op(10, "ACT", bank=GD.banks, row=1), op(10 + t.tRRD_S - 1, "ACT", bank=0, row=1)]
    assert [(v.index, v.rule) for v in check_trace(trace, GD)] == [(0, "range"), (1, "tRRD_S")]


def test_ref_with_open_buffers_keeps_them_open():
    t = GD_REF.timing
    ref = 10 + t.tRC
    trace = [op(10, "ACT", row=1), op(ref, "REF"), op(ref + t.tRFC, "RD", col=0),
             op(ref + t.tRFC + t.tRTP, "PRE")]
    assert [(v.index, v.rule) for v in check_trace(trace, GD_REF)] == [(1, "ref_open")]


def test_all_violations_in_trace_order():
    t = GD_REF.timing
    refi = t.tREFI
    trace = [op(10, "PRE"),                                   # pre_closed
             op(20, "RD"),                                    # closed_row
             op(9 * refi + 5, "WR_GB", col=GD.gb_columns),    # range, after the debt point
             op(9 * refi + 5, "AF")]                          # bus
    found = check_trace(trace, GD_REF)
    assert [(v.rule, v.index) for v in found] == [
        ("pre_closed", 0), ("closed_row", 1), ("refresh_debt", None), ("range", 2),
        ("bus", 3), ("refresh_gap", None)]
    assert found[2].cycle == 9 * refi and found[-1].cycle == 9 * refi + 5


# -- refresh rate (tREFI) --------------------------------------------------------------------


def test_refresh_every_trefi_passes():
    cfg = PRESETS["gddr6-aim"]
    refi = cfg.timing.tREFI
    trace = [op(k * refi, "REF") for k in range(1, 21)]
    assert check_trace(trace, cfg) == []
    assert check_trace(trace, cfg, end=20 * refi + 8 * refi) == []
    # with epochs in between
    trace = []
    for k in range(1, 21):
        trace += [op(k * refi, "REF"), op(k * refi + 300, "ACT_AB", row=k % cfg.rows),
                  op(k * refi + 1000, "PRE_AB")]
    assert check_trace(trace, cfg) == []


def test_refresh_first_gap():
    cfg = GD_REF
    refi = cfg.timing.tREFI
    assert check_trace([op(9 * refi, "REF")], cfg) == []
    found = check_trace([op(9 * refi + 1, "REF")], cfg)
    # a late first REF also leaves the debt at 9 x tREFI unpaid
    assert summary(found) == {"refresh_gap": 1, "refresh_debt": 1}
    gap = [v for v in found if v.rule == "refresh_gap"][0]
    assert gap.cycle == 9 * refi + 1 and gap.index == 0
    assert f"{9 * refi + 1} cycles after reset" in gap.message


def test_refresh_gap_between_refs():
    cfg = GD_REF
    t = cfg.timing
    # two REF pulled in early, so only the gap (not the debt) can fail
    first, second = t.tREFI, t.tREFI + t.tRFC
    for d, expected in ((0, {}), (1, {"refresh_gap": 1})):
        trace = [op(first, "REF"), op(second, "REF"),
                 op(second + 9 * t.tREFI + d, "REF")]
        found = check_trace(trace, cfg)
        assert summary(found) == expected
    assert found[0].index == 2 and found[0].cycle == second + 9 * t.tREFI + 1
    assert f"is {9 * t.tREFI + 1} cycles after the REF at {second}" in found[0].message


def test_refresh_gap_to_end():
    cfg = GD_REF
    t = cfg.timing
    trace = [op(t.tREFI, "REF"), op(t.tREFI + t.tRFC, "REF")]
    end = t.tREFI + t.tRFC + 9 * t.tREFI
    assert check_trace(trace, cfg, end=end) == []
    found = check_trace(trace, cfg, end=end + 1)
    assert summary(found) == {"refresh_gap": 1}
    assert found[0].index is None and found[0].cycle == end + 1


def test_no_refresh_at_all():
    cfg = GD_REF
    refi = cfg.timing.tREFI
    assert check_trace([op(10, "WR_GB")], cfg, end=9 * refi - 1) == []
    # the ninth REF owed (first due at 9 x tREFI) is one too many postponed
    assert summary(check_trace([op(10, "WR_GB")], cfg, end=9 * refi)) == {"refresh_debt": 1}
    found = check_trace([op(10, "WR_GB")], cfg, end=9 * refi + 1)
    assert summary(found) == {"refresh_debt": 1, "refresh_gap": 1}
    # built without refresh: no refresh-rate rule at all
    assert check_trace([op(10, "WR_GB")], GD, end=100 * refi) == []


def test_refresh_debt():
    cfg = GD_REF
    refi = cfg.timing.tREFI
    # a REF every 2 x tREFI: gaps are fine, but the debt grows by one every 2 x tREFI
    every_other = [op(2 * i * refi, "REF") for i in range(1, 9)]           # 8 REF by 16 tREFI
    n = 2 * MAX_POSTPONED + 1                                              # 9 owed at 17 tREFI
    assert check_trace(every_other + [op(n * refi, "REF")], cfg) == []
    found = check_trace(every_other + [op(n * refi + 1, "REF")], cfg)
    assert summary(found) == {"refresh_debt": 1}
    assert found[0].cycle == n * refi and found[0].index is None
    assert "8 REF issued" in found[0].message and "= 9" in found[0].message
    # reported once, at the first failing cycle, however long the debt lasts
    found = check_trace(every_other, cfg, end=30 * refi)
    assert [v.cycle for v in found if v.rule == "refresh_debt"] == [n * refi]


def test_refresh_rules_constants():
    assert MAX_POSTPONED == 8
    assert set(REFRESH_RULES) == {"refresh_gap", "refresh_debt"}


# -- decode_trace -----------------------------------------------------------------------------


def test_decode_trace_round_trip_with_wrapping_cycles():
    cfg = DUAL
    wrap = 1 << cfg.counter_width
    trace = [op(5, "ACT", bank=3, buf=1, row=cfg.rows - 1),
             op(wrap - 3, "MAC", bank=2, buf=1, col=cfg.columns - 1),
             op(wrap, "WR_GB", col=cfg.gb_columns - 1),
             op(wrap + 7, "PRE_AB", buf=1),
             op(2 * wrap + 1, "REF"),
             op(3 * wrap - 1, "NOP"),
             op(3 * wrap + 2, "RD_AF")]
    columns = list(zip(*trace))
    words = pack(cfg.trace_fields, {
        "cycle": [c % wrap for c in columns[0]],
        "cmd": [DRAM_COMMANDS.index(n) for n in columns[1]],
        "bank": columns[2], "buf": columns[3], "row": columns[4], "col": columns[5]})
    decoded = decode_trace(cfg, words)
    assert decoded == trace
    assert all(type(x) is int for row in decoded for x in (row[0], *row[2:]))
    assert decode_trace(cfg, []) == []
    # an equal stamp is the same cycle (a bus error to report), not a wrap
    same = pack(cfg.trace_fields, {"cycle": [7, 7], "cmd": [DRAM_COMMANDS.index("AF")] * 2})
    assert [c for c, *_ in decode_trace(cfg, same)] == [7, 7]
    assert summary(check_trace(decode_trace(cfg, same), cfg)) == {"bus": 1}


def test_check_accepts_decoded_trace():
    cfg = PRESETS["hbm2"]
    trace = legal_trace(cfg)
    columns = list(zip(*trace))
    wrap = 1 << cfg.counter_width
    words = pack(cfg.trace_fields, {
        "cycle": [c % wrap for c in columns[0]],
        "cmd": [DRAM_COMMANDS.index(n) for n in columns[1]],
        "bank": columns[2], "buf": columns[3], "row": columns[4], "col": columns[5]})
    assert decode_trace(cfg, words) == trace
    assert check_trace(decode_trace(cfg, words), cfg) == []


def test_unknown_command_is_an_error():
    with pytest.raises(ValueError, match="unknown DRAM command"):
        check_trace([op(1, "ACT16")], GD)
    with pytest.raises(ValueError, match="not defined"):
        check_trace([op(1, len(DRAM_COMMANDS))], GD)


def test_summary_counts():
    vs = [Violation(1, 0, "tRP", "a"), Violation(2, 1, "tRP", "b"), Violation(3, 2, "bus", "c")]
    assert summary(vs) == {"tRP": 2, "bus": 1}
    assert summary([]) == {}
