"""The PIM channel's timing monitor (:mod:`accelgen.hdl.pim.monitor`): an independent check of
the DRAM command stream against the rule table, elaborated only inside a proof.

Fast tier: the monitor leaves no trace in the emitted hardware; every rule has its property;
in the Amaranth simulator its assertions fire on exactly the hand-made traces that the trace
checker :mod:`accelgen.sim.golden.pim_check` finds a timing violation in; the SymbiYosys
summary parser reads a property name holding the word "at".
``formal`` tier: ``tiny`` with short timings (every latency 1 to 5 cycles) proves with the
timing properties; the planted ``trcd-rd-short`` bug in the timing engine is caught by the
``timing`` family with a counterexample trace.
"""

import dataclasses
import re

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from accelgen.cli import main
from accelgen.formal.prove import elaborate
from accelgen.generators.emit import emit
from accelgen.generators.pim import DRAM_COMMANDS, RULES, PimTiming
from accelgen.generators.registry import REGISTRY
from accelgen.hdl.common import formal
from accelgen.hdl.common.stream import payload_layout
from accelgen.hdl.pim.monitor import TimingMonitor
from accelgen.sim.golden.pim_check import TIMING_RULES, check_trace

from support import SHORT_PIM_TIMING as SHORT

SPEC = REGISTRY["pim"]
#: SHORT: pim's PROOF_TIMING (every rule binds within a few cycles)
SHORT_SET = [f"--set=timing.{name}={getattr(SHORT, name)}" for name in SHORT.names]
#: the bounded check's depth of the mutant test (pim's default)
DEPTH = 16


def short_tiny(**changes):
    return dataclasses.replace(SPEC.presets["tiny"], **({"timing": SHORT} | changes))


# -- fast tier ---------------------------------------------------------------------------------

def test_monitor_only_inside_a_proof(tmp_path):
    """Emitted Verilog holds none of the monitor's registers; a proof's design does."""
    config = short_tiny()
    emit(SPEC, config, tmp_path)
    verilog = (tmp_path / "pim.v").read_text()
    assert "mon_" not in verilog and "timing_monitor" not in verilog
    text, _ = elaborate(SPEC, config)
    assert "mon_faw_age0" in text and "mon_refresh_gap" in text


def test_every_rule_has_a_timing_property():
    _, properties = elaborate(SPEC, short_tiny())
    timing = [name for name, family in properties.items() if family == "timing"]
    for rule in RULES:
        latency = getattr(SHORT, rule.latency)
        assert any(n.startswith(f"{rule.latency}: {rule.after} {latency}+ cycles after "
                                f"{rule.before} ") for n in timing), rule
    for prefix in ("tFAW:", "tRFC:", "refresh:", "tRP: REF", "tRC: REF"):
        assert any(n.startswith(prefix) for n in timing), prefix
    _, without = elaborate(SPEC, short_tiny(refresh=False))
    assert "REF only when built with refresh" in without
    assert not any(n.startswith("refresh:") for n in without)


#: a timing where only tFAW (5) and the tRFC blackout (3) exceed one cycle
FAW_ONLY = PimTiming(tRCD_RD=1, tRCD_WR=1, tRCD_MAC=1, tRAS=1, tRP=1, tRC=1, tRTP=1, tWR=1,
                     tCCD_S=1, tCCD_L=1, tRRD_S=1, tRRD_L=1, tFAW=5, tREFI=100, tRFC=3)

#: the timing most traces below were written for: SHORT's column and row timings with a
#: tRC that tRAS + tRP already covers, tRRD_S of one command per cycle and a tFAW of 5
FEW = dataclasses.replace(SHORT, tRC=5, tRRD_S=1, tRRD_L=2, tFAW=5)

#: (timing, [(cycle, cmd, bank, buf)], the rule the trace breaks or None)
TRACES = [
    (SHORT, [(1, "ACT", 1, 0), (5, "PRE", 1, 0), (8, "ACT", 1, 0)], "tRC"),
    (SHORT, [(1, "ACT", 1, 0), (5, "PRE", 1, 0), (9, "ACT", 1, 0)], None),
    (SHORT, [(1, "ACT", 0, 0), (2, "ACT", 2, 0)], "tRRD_S"),
    (SHORT, [(1, "ACT", 0, 0), (3, "ACT", 2, 0)], None),
    (FEW, [(1, "ACT", 0, 0), (4, "RD", 0, 0)], None),
    (FEW, [(1, "ACT", 0, 0), (3, "RD", 0, 0)], "tRCD_RD"),
    (FEW, [(1, "ACT_AB", 0, 0), (4, "MAC", 3, 0)], None),
    (FEW, [(1, "ACT_AB", 0, 0), (3, "MAC_AB", 0, 0)], "tRCD_MAC"),
    (FEW, [(1, "ACT", 1, 0), (5, "PRE_AB", 0, 0), (7, "ACT", 1, 0)], None),
    (FEW, [(1, "ACT", 1, 0), (4, "PRE_AB", 0, 0)], "tRAS"),
    (FEW, [(1, "ACT", 1, 0), (5, "PRE", 1, 0), (6, "ACT", 1, 0)], "tRP"),
    # a PRE of a closed buffer closes nothing: no tRP after it
    (FEW, [(1, "PRE", 2, 0), (2, "ACT", 2, 0)], None),
    (FEW, [(1, "ACT", 0, 0), (4, "WR", 0, 0), (6, "PRE", 0, 0)], "tWR"),
    (FEW, [(1, "ACT_AB", 0, 0), (4, "RD", 0, 0), (6, "RD", 1, 0)], "tCCD_L"),
    (FEW, [(1, "ACT_AB", 0, 0), (4, "RD", 0, 0), (6, "RD", 2, 0)], None),
    (FEW, [(1, "ACT_AB", 0, 0), (4, "RD", 0, 0), (5, "WR", 2, 0)], "tCCD_S"),
    (FEW, [(1, "ACT", 0, 0), (2, "ACT", 1, 0)], "tRRD_L"),
    (FEW, [(1, "ACT", 0, 0), (2, "ACT", 2, 0)], None),
    (FEW, [(1, "ACT", 0, 0), (5, "PRE", 0, 0), (7, "REF", 0, 0), (9, "WR_GB", 0, 0)],
     "tRFC"),
    (FEW, [(1, "ACT", 0, 0), (5, "PRE", 0, 0), (7, "REF", 0, 0), (10, "WR_GB", 0, 0)],
     None),
    (FEW, [(1, "ACT", 3, 0), (5, "PRE", 3, 0), (6, "REF", 0, 0)], "tRP"),
    (FAW_ONLY, [(1, "ACT", 0, 0), (2, "ACT", 1, 0), (3, "ACT", 2, 0), (4, "ACT", 3, 0),
                (5, "PRE", 0, 0), (6, "ACT", 0, 0)], None),
    (FAW_ONLY, [(1, "ACT", 0, 0), (2, "ACT", 1, 0), (3, "ACT", 2, 0), (4, "ACT", 3, 0),
                (5, "ACT", 0, 0)], "tFAW"),
    (FAW_ONLY, [(1, "ACT", 0, 0), (5, "ACT_AB", 0, 0)], "tFAW"),
    (FAW_ONLY, [(1, "ACT", 0, 0), (6, "ACT_AB", 0, 0)], None),
]


def _monitored(config, disabled):
    """``(module, valid, payload)``: the monitor on a command register that ``valid`` and
    ``payload`` load every cycle, so the command it sees changes at the clock edge, as the
    controller's does (a testbench's input would change after it, while the comb assertions
    of the simulator already watch the updated counts)."""
    valid, payload = Signal(), Signal(payload_layout(config.dram_fields))
    valid_r, payload_r = Signal(), Signal(payload_layout(config.dram_fields))
    m = Module()
    m.d.sync += [valid_r.eq(valid), payload_r.eq(payload)]
    with formal.proving(disabled=disabled) as proof:
        m.submodules.monitor = TimingMonitor(config, valid_r, payload_r)
        sim = Simulator(m)
    return sim, valid, payload, list(proof.properties)


def _simulate(config, trace, *, only=None):
    """Run the monitor on ``trace`` (one command in each listed cycle, nothing between) in
    the Amaranth simulator; ``only``: the one property left enabled. True when an
    assertion fired."""
    names = _monitored(config, ())[3]
    disabled = [n for n in names if only is not None and not n.startswith(only)]
    sim, valid, payload, _ = _monitored(config, disabled)
    sim.add_clock(1e-6)
    by_cycle = {cycle: (cmd, bank, buf) for cycle, cmd, bank, buf in trace}

    async def drive(ctx):
        for cycle in range(max(by_cycle) + 3):
            cmd, bank, buf = by_cycle.get(cycle, ("NOP", 0, 0))
            ctx.set(valid, cmd != "NOP")
            ctx.set(payload.cmd, DRAM_COMMANDS.index(cmd))
            ctx.set(payload.bank, bank)
            ctx.set(payload.buf, buf)
            await ctx.tick()
    sim.add_testbench(drive)
    try:
        sim.run()
    except AssertionError:
        return True
    return False


@pytest.mark.parametrize("timing, trace, broken", TRACES)
def test_monitor_agrees_with_the_trace_checker(timing, trace, broken):
    """The monitor fires on a trace exactly when pim_check finds a timing violation, and
    then through the property of the rule pim_check names."""
    config = short_tiny(timing=timing)
    found = {v.rule for v in check_trace([(c, n, b, u, 0, 0) for c, n, b, u in trace], config)
             if v.rule in TIMING_RULES}
    assert found == ({broken} if broken else set()), found
    assert _simulate(config, trace) == (broken is not None)
    if broken is not None:
        assert _simulate(config, trace, only=f"{broken}:")


#: a timing with a short refresh interval: the refresh rules bind within a few hundred cycles
REFRESH = dataclasses.replace(FAW_ONLY, tREFI=16)


@pytest.mark.parametrize("refs, broken", [
    ([16 * k for k in range(1, 12)], None),          # one REF per tREFI
    ([9 * 16], "refresh_debt"),                      # the gap holds, the owed REFs pile up
    ([8 * 16] + [9 * 16 + 3 * k for k in range(1, 9)], None),   # postponed, caught up
])
def test_monitor_refresh_debt_agrees_with_the_trace_checker(refs, broken):
    """pim_check's refresh_debt, on traces of REFs alone up to cycle 11 x tREFI + 2."""
    config = short_tiny(timing=REFRESH)
    end = 11 * REFRESH.tREFI + 2
    trace = [(c, "REF", 0, 0) for c in refs]
    found = {v.rule for v in check_trace([(c, n, b, u, 0, 0) for c, n, b, u in trace], config,
                                         end=end) if v.rule != "refresh_gap"}
    assert found == ({broken} if broken else set()), found
    assert _simulate(config, trace + [(end, "NOP", 0, 0)], only="refresh: REFs owed") == \
        (broken is not None)



# -- formal tier -------------------------------------------------------------------------------

@pytest.mark.formal
def test_planted_timing_bug_is_caught_with_a_trace(tmp_path, capsys):
    out = tmp_path / "p"
    code = main(["prove", "pim", "--preset", "tiny", *SHORT_SET, "--depth", str(DEPTH),
                 "--mutant", "trcd-rd-short", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "mutant trcd-rd-short (its family: timing): caught by timing" in text
    failed = re.findall(r"^(.*\S)\s+timing\s+failed\s*$", text, re.M)
    assert [name.strip() for name in failed] == [
        f"tRCD_RD: RD {SHORT.tRCD_RD}+ cycles after ACT (same row buffer)"], text
    vcd = re.search(r"counterexample \(VCD\): (\S+)", text).group(1)
    assert vcd.startswith(str(out)) and "$enddefinitions" in open(vcd).read()


def test_every_family_but_counter_has_a_mutant_that_must_fail_it():
    """The timing family is shown to fail too: some block plants a bug for each family."""
    from accelgen.formal.harness import PORT_MUTANTS
    planted = set(PORT_MUTANTS.values()) | {family for spec in REGISTRY.values()
                                            for family in spec.proof.mutants.values()}
    assert planted >= set(formal.FAMILIES) - {"counter"}
    assert SPEC.proof.mutants == {"trcd-rd-short": "timing"}
