"""``accelgen prove``: the property helpers, the proof harness, the SymbiYosys flow and its
mutation tests.

Fast tier: the helpers add nothing to the emitted hardware outside a proof, a proof
elaborates the properties each block owes, the SymbiYosys summary parser, bad input.
``formal`` tier: every block's tiny preset proves; every planted bug is caught by its property
family with a counterexample trace; a beats capacity one below the pipeline's fails on the
real design.
"""

import dataclasses
import re

import pytest

from accelgen.cli import main
from accelgen.formal import prove as prove_mod
from accelgen.formal.harness import PORT_MUTANTS, stream_ports
from accelgen.formal.prove import elaborate, mutants_of, prove
from accelgen.generators.base import Beats, ProofContract
from accelgen.generators.pim import RULES as PIM_RULES
from accelgen.generators.registry import REGISTRY
from accelgen.hdl.common import formal

from support import SHORT_PIM_TIMING as SHORT

BLOCKS = list(REGISTRY)


def _families(properties):
    return {family for family in properties.values()}


# -- fast tier ---------------------------------------------------------------------------------

@pytest.mark.parametrize("block", BLOCKS)
def test_no_property_outside_a_proof(block):
    """The emitted hardware carries no assertion: the helpers are inert outside a proof."""
    from amaranth.back import rtlil
    spec = REGISTRY[block]
    text = rtlil.convert(spec.build(spec.presets["tiny"]))
    assert "$check" not in text and "$assert" not in text


@pytest.mark.parametrize("block", BLOCKS)
def test_a_proof_elaborates_the_properties_each_block_owes(block):
    spec = REGISTRY[block]
    config = spec.presets["tiny"]
    text, properties = elaborate(spec, config)
    component = spec.build(config)
    component._MustUse__silence = True          # built only to read its ports
    ports = stream_ports(component)
    outputs = [name for name, _, produced in ports if produced]
    assert text.count('FLAVOR "assert"') == len(properties)
    # reset in the first cycle; one per input stream: its producer keeps the protocol
    assert text.count('FLAVOR "assume"') == 1 + len(ports) - len(outputs)
    for name in outputs:
        assert f"{name}: valid stays high until ready" in properties
        assert f"{name}: payload stable until ready" in properties
        assert f"{name}: no valid after reset before an input" in properties
    for pair in spec.proof.beats:
        assert properties[f"beats {pair.source} -> {pair.sink} inside the block: next value "
                          f"within 0..{pair.capacity(config)}"] == "beats"
    # blocks with internal FIFOs or credits assert them
    if block in ("systolic", "pim", "mac"):
        assert "fifo" in _families(properties)


def test_disabled_properties_are_registered_but_not_asserted():
    spec = REGISTRY["activation"]
    _, properties = elaborate(spec, spec.presets["tiny"])
    name = next(iter(properties))
    text, again = elaborate(spec, spec.presets["tiny"], disabled={name})
    assert again == properties
    assert text.count('FLAVOR "assert"') == len(properties) - 1
    assert formal.SRC_PREFIX + name not in text


def test_proof_names_are_unique_and_families_checked():
    proof = formal.Proof()
    assert proof.register("x", "stream") == "x"
    assert proof.register("x", "stream") == "x #2"
    assert proof.register("x", "fifo") == "x #3"
    with pytest.raises(ValueError, match="family 'nope'"):
        proof.register("y", "nope")
    assert not formal.mutant("port-payload")
    with formal.proving(mutant="port-payload"):
        assert formal.mutant("port-payload") and not formal.mutant("other")
    assert not formal.mutant("port-payload")


def test_every_block_offers_the_port_mutants_and_its_own():
    for spec in REGISTRY.values():
        offered = set(mutants_of(spec))
        assert set(PORT_MUTANTS) - {"port-duplicate"} <= offered
        # a duplicated beat is caught by the beats count: offered where the block has one
        assert ("port-duplicate" in offered) == bool(spec.proof.beats)
    assert mutants_of(REGISTRY["systolic"])["credit-off-by-one"] == "fifo"
    families = {family for spec in REGISTRY.values() for family in mutants_of(spec).values()}
    assert families >= set(formal.FAMILIES) - {"counter"}


SBY_FAIL = """\
SBY  2:36:40 [proof] engine_0.basecase: ##   0:00:01  Assert failed in proof: x
SBY  2:36:40 [proof] summary: engine_0 (smtbmc yices) returned FAIL for basecase
SBY  2:36:40 [proof] summary: counterexample trace: proof/engine_0/trace.vcd
SBY  2:36:40 [proof] summary:   failed assertion proof.block._witness_.check_7 at \
accelgen-property/o: valid stays high until ready:0
SBY  2:36:40 [proof] DONE (FAIL, rc=2)
"""


def _fake_sby(monkeypatch, text):
    """SymbiYosys stands in: every run prints ``text`` and exits 2."""
    class Done:
        returncode, stdout, stderr = 2, text, ""
    monkeypatch.setattr(prove_mod, "which", lambda tool: "/bin/true")
    monkeypatch.setattr(prove_mod.subprocess, "run", lambda *a, **k: Done())


def test_sby_summary_is_read_back_to_property_names(tmp_path, monkeypatch):
    """The parser against a summary in SymbiYosys's format (as yowasp-sby 0.70 prints it)."""
    _fake_sby(monkeypatch, SBY_FAIL)
    status, steps, failed, traces, log = prove_mod._run_sby(tmp_path, "prove", 5, 60)
    assert status == "FAIL" and steps == {"basecase": "fail"}
    assert failed == {"basecase": ["o: valid stays high until ready"]}
    assert traces["basecase"] == str(tmp_path / "proof/engine_0/trace.vcd")
    assert "mode prove" in (tmp_path / "proof.sby").read_text()


SBY_AT = """\
SBY  2:36:40 [proof] summary:   failed assertion proof.block._witness_.check_7 at \
accelgen-property/tFAW: no more than 4 ACT at cycle 5:0
SBY  2:36:40 [proof] DONE (FAIL, rc=2)
"""


def test_a_property_name_with_at_is_read_back(tmp_path, monkeypatch):
    """A property's name may hold the word "at" (the first " at " ends the cell path)."""
    _fake_sby(monkeypatch, SBY_AT)
    _, _, failed, _, _ = prove_mod._run_sby(tmp_path, "bmc", 5, 60)
    assert failed == {"basecase": ["tFAW: no more than 4 ACT at cycle 5"]}


SBY_COVER = """\
SBY  3:38:54 [c] engine_0: ##   0:00:00  Reached cover statement in step 5 at proof: x
SBY  3:38:54 [c] summary: engine_0 (smtbmc yices) returned FAIL
SBY  3:38:54 [c] summary: cover trace: c/engine_0/trace0.vcd
SBY  3:38:54 [c] summary:   reached cover statement proof._witness_.check_10 at \
accelgen-cover/o: a beat delivered:0 step 5
SBY  3:38:54 [c] summary: unreached cover statements:
SBY  3:38:54 [c] summary:   proof._witness_.check_13 at accelgen-cover/rsp: a beat delivered:0
SBY  3:38:54 [c] DONE (FAIL, rc=2)
"""


def test_cover_summary_is_read_back():
    assert prove_mod._covers(SBY_COVER) == {"o: a beat delivered": 5,
                                            "rsp: a beat delivered": None}


def refused(capsys, argv, message, tmp_path):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    assert err.strip() == f"accelgen: error: {message}"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--depth", "0"], "--depth: 0 is not allowed; expected an integer from 1 to 200 (cycles)"),
    (["--depth", "201"], "--depth: 201 is not allowed; expected an integer from 1 to 200 "
                         "(cycles)"),
    (["--timeout", "0"], "--timeout: 0 is not allowed; expected seconds, more than 0 and at "
                         "most 86400"),
    (["--timeout", "nan"], "--timeout: nan is not allowed; expected seconds, more than 0 and "
                           "at most 86400"),
    (["--mutant", "credit-off-by-one"], "--mutant: 'credit-off-by-one' is not a mutant of "
     "activation; allowed are port-drop-valid, port-payload, port-spurious-valid, "
     "port-duplicate"),
    (["--depth", "8", "--induction-depth", "9"], "--induction-depth: 9 is not allowed; "
     "expected at most the bounded check's depth (8)"),
    (["--mutant", "port-payload", "--induction-depth", "3"], "--induction-depth: not used "
     "with --mutant (a mutant runs the bounded check only)"),
    (["-o", ""], "-o: '' is not allowed; expected a directory (use . for the current one)"),
    (["--set", "lanes=0"], None),
])
def test_prove_bad_input(capsys, tmp_path, argv, message):
    out = tmp_path / "out"
    if message is None:
        code = main(["prove", "activation", "--preset", "tiny", "-o", str(out), *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("accelgen: error: lanes") and not out.exists()
        return
    code = main(["prove", "activation", "--preset", "tiny", "-o", str(out), *argv])
    _, err = capsys.readouterr()
    assert code == 2 and err.strip() == f"accelgen: error: {message}", err
    assert not out.exists()


# -- formal tier -------------------------------------------------------------------------------

@pytest.mark.formal
@pytest.mark.parametrize("block", BLOCKS)
def test_tiny_preset_proves(block, tmp_path):
    """Every block's tiny preset; pim with the short timings (the preset's are far beyond the
    depth, and its timing monitor's wide counters would only slow the proof down)."""
    spec = REGISTRY[block]
    config = spec.presets["tiny"]
    if block == "pim":
        config = dataclasses.replace(config, timing=SHORT)
    report = prove(spec, config, tmp_path / "p", preset="tiny")
    statuses = {p.name: p.status for p in report.properties}
    assert report.passed, statuses
    assert set(statuses.values()) <= {"proven", "bounded"}, statuses
    assert report.counterexample is None
    # the cover run names every output stream, and at the default depth the bounded check
    # reaches a delivered beat on each (measured: systolic rsp 3, o 21; pim rsp 3, o 12;
    # softmax o 19, its 1 + latency)
    component = spec.build(config)
    component._MustUse__silence = True
    outputs = {f"{name}: a beat delivered" for name, _, produced in stream_ports(component)
               if produced}
    assert set(report.reach) == outputs
    assert all(step is not None and step < report.depth for step in report.reach.values())
    if block == "pim":
        # every timing property holds to the depth; all but the refresh counts (to 9 x tREFI,
        # which no invariant ties to the refresh manager) and tRC (measured: not 10-inductive
        # once tRC exceeds tRAS + tRP, so that it binds on its own) close by k-induction
        timing = {p.name: p.status for p in report.properties if p.family == "timing"}
        assert len(timing) == len(PIM_RULES) + 7, timing
        not_proven = {name for name, status in timing.items() if status != "proven"}
        assert {n.split(":")[0] for n in not_proven} <= {"refresh", "tRC"}, not_proven
        assert len(not_proven) <= 4, not_proven


@pytest.mark.formal
def test_induction_drops_what_is_not_inductive_and_proves_the_rest(tmp_path):
    """activation tiny: the stream and reset rules close by induction at depth 12; the beats
    count does not (the count is a register of the harness that no invariant ties to the
    pipeline's valid bits), so it is proven to depth 12 only; the second induction closes."""
    spec = REGISTRY["activation"]
    report = prove(spec, spec.presets["tiny"], tmp_path / "p", preset="tiny")
    statuses = {p.family: p.status for p in report.properties}
    assert statuses == {"stream": "proven", "reset": "proven", "beats": "bounded"}
    assert report.rounds == 4          # the bounded check, the cover run, two inductions


MUTATIONS = [("activation", m) for m in PORT_MUTANTS] + [
    ("mac", "port-duplicate"), ("systolic", "port-payload"), ("systolic", "credit-off-by-one")]


@pytest.mark.formal
@pytest.mark.parametrize("block, mutant", MUTATIONS)
def test_planted_bug_is_caught_with_a_trace(block, mutant, tmp_path, capsys):
    spec = REGISTRY[block]
    out = tmp_path / "p"
    code = main(["prove", block, "--preset", "tiny", "--mutant", mutant, "-o", str(out)])
    # (a mutant's bounded check runs with its family's properties only)
    text = capsys.readouterr().out
    family = mutants_of(spec)[mutant]
    assert code == 0, text
    assert re.search(rf"mutant {mutant} \(its family: {family}\): caught by .*{family}", text)
    vcd = re.search(r"counterexample \(VCD\): (\S+)", text).group(1)
    assert vcd.startswith(str(out)) and "$enddefinitions" in open(vcd).read()


@pytest.mark.formal
def test_a_capacity_below_the_pipeline_fails_on_the_real_design(tmp_path):
    """The beats check is tight: activation tiny holds ``latency`` beats when ``o`` stalls,
    so a contract of ``latency - 1`` must fail with a trace (no planted bug)."""
    spec = REGISTRY["activation"]
    tight = ProofContract(depth=12, beats=(Beats("i", "o", lambda cfg: cfg.latency - 1),))
    report = prove(dataclasses.replace(spec, proof=tight), spec.presets["tiny"], tmp_path / "p",
                   preset="tiny")
    assert not report.passed
    assert {p.family for p in report.properties if p.status == "failed"} == {"beats"}
    assert report.counterexample and report.counterexample.endswith(".vcd")


@pytest.mark.formal
@pytest.mark.parametrize("block", ["activation", "cast"])
def test_first_output_beat_is_reachable_at_the_documented_latency(block, tmp_path):
    """The cover run's first cycle with an ``o`` beat: reset in cycle 0, the first input
    taken in cycle 1, its result ``latency`` cycles later (the blocks' documented timing)."""
    spec = REGISTRY[block]
    config = spec.presets["tiny"]
    report = prove(spec, config, tmp_path / "p", preset="tiny")
    assert report.reach == {"o: a beat delivered": 1 + config.latency}
