"""``accelgen faults``: a single-event-upset campaign on a block's emitted RTL.

1. The block's self-check workload (its harness's :meth:`workload`: stimulus words and the
   golden model's answers) is emitted and built for Verilator with every signal writable
   (the emitted Verilog itself is the one ``accelgen emit`` writes, unchanged).
2. A fault-free reference run must equal the golden model on every checked bit.
3. ``N`` faults are drawn (seeded): a site with probability proportional to its bits (every
   flip-flop bit and every stored memory bit equally likely to be struck), a bit (and word),
   and a cycle uniform over the reference run. Each runs after a reset
   (:mod:`accelgen.sim.cocotb.inject`).
4. Each run is classified against the reference run, which equals the golden model:

   ``detected``  a protection's fault flag is set after the run
                 (:mod:`accelgen.faults.harden`), or an ``err`` or ``fault`` field of an
                 output carries a bit the reference's does not (the block reported a problem);
   ``hang``      the expected outputs did not all arrive within the workload's timeout;
   ``sdc``       silent data corruption: a checked output bit differs, more or fewer words
                 arrived, and no error was reported;
   ``masked``    every checked output bit equals the reference's.

Rates carry Wilson 95 % confidence intervals. The vulnerability map counts SDCs per register
(per bit struck) and per submodule.
"""

import hashlib
import json
import math
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..numerics import ConfigError
from ..outputs import locked, make_directory, write_atomic
from ..tools import ToolError
from .sites import flip_sites

__all__ = ["run_campaign", "prepare", "Target", "CampaignReport", "OUTCOMES", "wilson",
           "check_campaign", "check_beats", "select_vulnerable", "INJECT_MODULE",
           "MAX_FAULTS"]

OUTCOMES = ("masked", "sdc", "detected", "hang")
INJECT_MODULE = "accelgen.sim.cocotb.inject"
MAX_FAULTS = 1_000_000
MAX_BEATS = 100_000
BATCH = 2000            #: faults per simulator process
DEFAULT_BEATS = 200     #: payload beats of the workload


def check_campaign(n):
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FAULTS:
        raise ConfigError(f"--campaign: {n!r} is not allowed; expected a number of faults from "
                          f"1 to {MAX_FAULTS}")
    return n


def check_beats(beats):
    if isinstance(beats, bool) or not isinstance(beats, int) or not 1 <= beats <= MAX_BEATS:
        raise ConfigError(f"--beats: {beats!r} is not allowed; expected a number of payload "
                          f"beats from 1 to {MAX_BEATS}")
    return beats


def wilson(k, n, z=1.96):
    """Wilson score interval ``(low, high)`` of ``k`` successes in ``n`` trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return (max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale))


@dataclass
class CampaignReport:
    """What :func:`run_campaign` measured.

    Members
    -------
    counts : dict
        ``{outcome: runs}``.
    rates : dict
        ``{outcome: [rate, low, high]}`` (Wilson 95 %).
    bits : int
        Flip-flop and memory bits the faults were drawn from (``ff_bits`` + ``memory_bits``).
    registers : list of dict
        Per site: ``name``, ``unit``, ``bits``, ``kind``, ``faults``, ``sdc``, ``hang``,
        ``detected``; sorted by SDCs, most first.
    units : list of dict
        The same per submodule.
    """
    block: str
    preset: str
    faults: int
    seed: int
    cycles: int
    bits: int
    ff_bits: int
    memory_bits: int
    counts: dict = field(default_factory=dict)
    rates: dict = field(default_factory=dict)
    registers: list = field(default_factory=list)
    units: list = field(default_factory=list)
    directory: str = ""
    seconds: float = 0.0
    protection: str = "none"
    hardened: dict = None

    def to_dict(self):
        return asdict(self)


def _draw(sites, n, cycles, seed):
    """``n`` faults: site by bits, then bit, word and cycle, from ``random.Random(seed)``."""
    rng = random.Random(seed)
    weights = [s.bits for s in sites]
    out = []
    for site in rng.choices(sites, weights=weights, k=n):
        out.append({"site": site, "path": list(site.path),
                    "index": rng.randrange(site.words) if site.words else None,
                    "bit": rng.randrange(site.width), "cycle": rng.randrange(cycles)})
    return out


#: names of the output fields that report an error (a block's own checks)
ERROR_FIELDS = ("err", "fault")


def _err_masks(manifest):
    """``{output stream: payload bits of its fields named in ERROR_FIELDS}`` (a block's error
    report), from the manifest."""
    out = {}
    for name, stream in manifest["streams"].items():
        mask = sum(((1 << f["width"]) - 1) << f["offset"] for f in stream.get("fields", ())
                   if f["name"] in ERROR_FIELDS)
        if stream["dir"] == "out" and mask:
            out[name] = mask
    return out


def _classify(run, reference, checked, err_masks):
    """One of :data:`OUTCOMES`, in this order of precedence: a detection (the fault flag, or
    an ``err`` bit in a word where the reference's same word has none, or in a word the
    reference does not have) over a hang over a corruption."""
    words = {k: [int(w, 16) for w in v] for k, v in run["words"].items()}
    ref = {k: [int(w, 16) for w in v] for k, v in reference["words"].items()}
    if run.get("flag"):
        return "detected"
    for name, mask in err_masks.items():
        want = ref.get(name, [])
        for i, w in enumerate(words.get(name, ())):
            if w & mask & ~(want[i] if i < len(want) else 0):
                return "detected"
    if not run["finished"]:
        return "hang"
    for name, mask in checked.items():
        got, want = words.get(name, []), ref.get(name, [])
        if len(got) != len(want) or any((a ^ b) & mask for a, b in zip(got, want)):
            return "sdc"
    return "masked"


def _golden_check(reference, workload):
    ref = {k: [int(w, 16) for w in v] for k, v in reference["words"].items()}
    for name, golden in workload.golden.items():
        mask = workload.checked[name]
        got = ref.get(name, [])
        bad = [i for i, (a, b) in enumerate(zip(got, golden)) if (a ^ b) & mask]
        if len(got) != len(golden) or bad:
            return (f"the fault-free RTL run differs from the golden model on {name} "
                    f"({len(got)} words for {len(golden)}"
                    f"{f', first difference at word {bad[0]}' if bad else ''})")
    return None


def _simulate(manifest, doc, work, simulator, progress):
    from ..sim.runner import run_emitted
    inputs, outputs = work / "faults.json", work / "outcome.json"
    write_atomic(inputs, json.dumps(doc))
    outputs.unlink(missing_ok=True)
    sim = run_emitted(manifest, simulator=simulator, testcases=["campaign"], inputs=inputs,
                      outputs=outputs, progress=progress, test_module=INJECT_MODULE,
                      access="all")
    if not outputs.exists():
        raise ToolError(simulator, sim.log, "the fault-injection testbench wrote no outcome")
    result = json.loads(outputs.read_text())
    if not sim.passed:
        raise ToolError(simulator, sim.log, "the fault-free run did not finish")
    return result


@dataclass
class Target:
    """A block config ready for injection: its build, flip sites, workload and the
    fault-free reference run (equal to the golden model on every checked bit)."""
    spec: object
    config: object
    manifest: Path
    sites: list
    workload: object
    job: dict
    reference: dict
    err_masks: dict
    work: Path
    simulator: str
    hardened: dict = None

    @property
    def cycles(self):
        """Cycles of the reference run (first input to last output)."""
        return max(1, int(self.reference.get("cycles", 0)))

    def inject(self, faults, progress=None):
        """Outcome (one of :data:`OUTCOMES`) of each fault (``{"path", "index", "bit",
        "cycle"}``), and whether each was applied (its cycle came before the run ended)."""
        outcomes, applied = [], []
        for at in range(0, len(faults), BATCH):
            batch = faults[at:at + BATCH]
            if progress is not None:
                progress(f"{self.spec.name}: faults {at + 1}-{at + len(batch)} of "
                         f"{len(faults)}")
            doc = {"workload": self.job, "faults": [
                {k: f[k] for k in ("path", "index", "bit", "cycle")} for f in batch]}
            result = _simulate(self.manifest, doc, self.work, self.simulator, progress)
            outcomes += [_classify(run, self.reference, self.workload.checked,
                                   self.err_masks) for run in result["runs"]]
            applied += [run["applied"] for run in result["runs"]]
            # a fault-free run after the batch: what one run left behind (registers without
            # a reset, memory words) must not change the next
            after = result.get("after")
            if after is not None and _classify(after, self.reference, self.workload.checked,
                                               self.err_masks) != "masked":
                raise ToolError(self.simulator, self.work / "outcome.json",
                                "a fault-free run after the faulty runs differs from the "
                                "reference: state carried over between runs")
        return outcomes, applied


def _tag(protection):
    if protection is None or not protection.active:
        return "inject"
    parts = [protection.registers or "", protection.memories or ""]
    if protection.only is not None:
        digest = hashlib.sha256("\n".join(sorted(protection.only)).encode()).hexdigest()[:8]
        parts.append(f"only{len(protection.only)}-{digest}")
    return "inject-" + "-".join(p for p in parts if p)


def prepare(spec, config, out_dir, *, beats=DEFAULT_BEATS, seed=1, simulator="verilator",
            protection=None, progress=None):
    """Emit (and, with ``protection``, harden) and build ``config`` for injection under
    ``out_dir``, and run the fault-free reference; :class:`ToolError` when it disagrees with
    the golden model."""
    from ..generators.emit import emit
    from .harden import harden
    check_beats(beats)
    out_dir = make_directory("-o", out_dir)
    say = progress or (lambda message: None)
    build = out_dir / f"{spec.name}-{config.digest()}-{simulator}-{_tag(protection)}"
    make_directory("-o", build)
    hardened = None
    with locked(build):
        emitted = emit(spec, config, build, top=spec.name)
        verilog_path = Path(emitted.manifest_path).with_suffix(".v")
        if protection is not None and protection.active:
            say(f"{spec.name}: hardening ({protection.describe()})")
            (build / "harden").mkdir(exist_ok=True)
            hardened = harden(verilog_path, spec.name, protection,
                              build / "harden" / verilog_path.name)
            write_atomic(verilog_path, (build / "harden" / verilog_path.name).read_text())
    verilog = verilog_path.read_text()
    sites = flip_sites(verilog, spec.name)
    workload = spec.harness_class().workload(spec, config, beats=beats, seed=seed)
    job = {"words": {k: [format(int(w), "x") for w in v] for k, v in workload.words.items()},
           "expect": workload.expect, "timeout": int(workload.timeout)}
    work = Path(tempfile.mkdtemp(prefix="campaign-", dir=build))
    say(f"{spec.name}: fault-free reference run ({len(sites)} registers and memories, "
        f"{sum(s.bits for s in sites)} bits)")
    first = _simulate(emitted.manifest_path, {"workload": job, "faults": []}, work,
                      simulator, progress)
    reference = first["reference"]
    if reference.get("flag"):
        raise ToolError(simulator, work / "outcome.json",
                        "the protected block raised its fault flag without a fault")
    problem = _golden_check(reference, workload)
    if problem:
        raise ToolError(simulator, work / "outcome.json", problem)
    return Target(spec, config, Path(emitted.manifest_path), sites, workload, job, reference,
                  _err_masks(json.loads(Path(emitted.manifest_path).read_text())), work,
                  simulator, hardened)


def run_campaign(spec, config, out_dir, *, preset=None, faults=1000, seed=1,
                 beats=DEFAULT_BEATS, simulator="verilator", protection=None, progress=None):
    """Run a campaign of ``faults`` single-bit upsets on ``config`` (see the module
    docstring); builds and files go under ``out_dir``. Returns a :class:`CampaignReport`;
    raises :class:`ToolError` when a build fails or the fault-free run disagrees with the
    golden model."""
    import time
    check_campaign(faults)
    start = time.monotonic()
    target = prepare(spec, config, out_dir, beats=beats, seed=seed, simulator=simulator,
                     protection=protection, progress=progress)
    drawn = _draw(target.sites, faults, target.cycles, seed)
    outcomes, applied = target.inject(drawn, progress)
    if not all(applied):
        raise ToolError(simulator, target.work / "outcome.json",
                        f"{applied.count(False)} faults struck after their run had ended")
    sites = target.sites
    report = CampaignReport(block=spec.name, preset=preset or "", faults=faults, seed=seed,
                            cycles=target.cycles, bits=sum(s.bits for s in sites),
                            ff_bits=sum(s.bits for s in sites if not s.words),
                            memory_bits=sum(s.bits for s in sites if s.words),
                            directory=str(out_dir),
                            protection=protection.describe() if protection else "none",
                            hardened=target.hardened)
    report.counts = {o: outcomes.count(o) for o in OUTCOMES}
    report.rates = {o: [c / faults, *wilson(c, faults)] for o, c in report.counts.items()}
    report.registers, report.units = _vulnerability(drawn, outcomes)
    report.seconds = round(time.monotonic() - start, 1)
    write_atomic(Path(out_dir) / "campaign.json", json.dumps(report.to_dict(), indent=2))
    return report


def select_vulnerable(report, coverage=0.9):
    """The registers (not memories) a selective protection covers: the most vulnerable ones
    of ``report`` (most silent corruptions and hangs first) until they account for
    ``coverage`` of all the registers' corruptions and hangs."""
    rows = sorted((r for r in report.registers if r["kind"] == "register"
                   and r["sdc"] + r["hang"]), key=lambda r: (-(r["sdc"] + r["hang"]), r["name"]))
    total = sum(r["sdc"] + r["hang"] for r in rows)
    chosen, covered = [], 0
    for row in rows:
        if covered >= coverage * total:
            break
        chosen.append(row["name"])
        covered += row["sdc"] + row["hang"]
    return tuple(chosen)


def _vulnerability(drawn, outcomes):
    per_site, per_unit = {}, {}
    for fault, outcome in zip(drawn, outcomes):
        site = fault["site"]
        for table, key, extra in ((per_site, site.name, {"unit": site.unit, "bits": site.bits,
                                                         "kind": "memory" if site.words
                                                         else "register"}),
                                  (per_unit, site.unit, {})):
            row = table.setdefault(key, {"name": key, **extra, "faults": 0, "sdc": 0,
                                         "detected": 0, "hang": 0})
            row["faults"] += 1
            if outcome != "masked":
                row[outcome] += 1
    return sorted(per_site.values(), key=_worst_first), sorted(per_unit.values(),
                                                                key=_worst_first)


def _worst_first(row):
    return (-row["sdc"], -row["hang"], row["name"])
