"""The CLI as a careless and a hostile user meet it: random settings, presets, options and input
files for every block. Whatever comes in, ``accelgen`` either does its job (a valid config
elaborates and emits) or exits 2 with one line on stderr and nothing written — never a
traceback, never a hang. The simulator itself is not started: ``run_emitted`` is replaced by a
stand-in once every check has passed, so the fuzzer covers validation, not RTL.

``prove``, ``sweep``, ``estimate`` and ``run`` get the same treatment further down, each with a
stand-in where its expensive step starts (the solver, the Dask cluster, scikit-learn's fit, an
RTL build or synthesis); their figures are printed (``FUZZ <command>: ...``) and kept in
:data:`FUZZ_FIGURES`, and the bugs they found and that are not fixed yet are listed in
:data:`KNOWN_BUGS` with a strict xfail reproduction each."""

import functools
import json
import math
import shlex
import shutil
import signal
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelgen import cli
from accelgen.generators.registry import REGISTRY

#: a case that runs longer than this is a hang
CASE_SECONDS = 60

HOSTILE = [None, True, False, 0, 1, -1, 2, 3, 7, 8, 16, 33, 65, 1000, 10 ** 9, 2 ** 63,
           1.0, 0.5, -0.0, 1e-300, 5e-324, 1e300, math.inf, -math.inf, math.nan, "", "x",
           "s8", "s08", "u4", "os", "ws", "pwl", "table", "gelu", [], [1], ["s8s8"],
           ["s8s8", "s8s8"], [{}], {}, {"a": 1}, [[1]]]


def toml_value(value):
    """``value`` as TOML text for ``--set key=value`` (None → a bare word TOML cannot read,
    which the CLI takes as a string)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _field_values(spec):
    """Per setting: every value the presets use."""
    out = {}
    for config in spec.presets.values():
        for key, value in config.to_dict().items():
            out.setdefault(key, [])
            if value not in out[key]:
                out[key].append(value)
    return out


FIELDS = {name: _field_values(spec) for name, spec in REGISTRY.items()}
#: keep elaboration quick: configs past these sizes are only validated (show), not emitted
SMALL = {"rows": 4, "cols": 4, "lanes": 4, "n_max": 64, "k_max": 64, "acc_depth": 64}


@st.composite
def settings_argv(draw):
    block = draw(st.sampled_from(sorted(REGISTRY) * 4 + ["mca", ""]))
    spec = REGISTRY.get(block)
    presets = list(spec.presets) if spec else ["default"]
    preset = draw(st.sampled_from(presets + ["tinny"]) if draw(st.booleans()) else
                  st.just("tiny"))
    sets = []
    if spec:
        fields = FIELDS[block]
        own = spec.presets[preset].to_dict() if preset in spec.presets else {}
        for key in draw(st.lists(st.sampled_from(sorted(fields) + ["bogus"]), max_size=4,
                                 unique=True)):
            usual = st.sampled_from(fields.get(key, HOSTILE))
            # the preset's own value too: other presets' values often clash with the rest of
            # this preset (a float mode list on an int8 preset's accumulator width)
            mine = [st.just(own[key])] if own.get(key) is not None else []
            value = draw(st.one_of(usual, usual, *mine, st.sampled_from(HOSTILE)))
            sets.append(f"{key}={toml_value(value)}")
    if draw(st.integers(0, 19)) == 0:
        sets.append(draw(st.sampled_from(["lanes", "=3", "lanes==3", "a.b=1", "lanes=[[[["])))
    return block, preset, sets


def _small(config):
    data = config.to_dict()
    return all(not isinstance(data.get(k), int) or data[k] <= v for k, v in SMALL.items())


class _Simulated(Exception):
    """Raised by the stand-in simulator: every check before the simulation passed."""


def _run(argv, capsys):
    """``(exit status, stdout, stderr)``; a traceback or a hang fails the test."""
    def hang(signum, frame):
        raise TimeoutError(f"accelgen {' '.join(argv)} ran longer than {CASE_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(CASE_SECONDS)
    try:
        code = cli.main(list(argv))
    except _Simulated:
        code = "simulated"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean_refusal(argv, code, out, err, out_dir):
    assert code == 2, (argv, code, err[-2000:])
    assert out == "", argv
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("accelgen: error: "), (argv, err[-2000:])
    assert "Traceback" not in err
    assert out_dir is None or not Path(out_dir).exists(), argv


@pytest.mark.slow
def test_fuzz_show_and_emit(tmp_path_factory, capsys):
    """>= 600 random settings through ``show`` and (every other small valid config)
    ``emit``."""
    seen = {"valid": 0, "refused": 0, "emitted": 0}

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(settings_argv())
    def case(drawn):
        block, preset, sets = drawn
        args = [block, "--preset", preset, *[x for s in sets for x in ("--set", s)]]
        code, out, err = _run(["show", *args, "--json"], capsys)
        if code != 0:
            _assert_clean_refusal(args, code, out, err, None)
            seen["refused"] += 1
            return
        seen["valid"] += 1
        config = REGISTRY[block].config_cls.from_dict(json.loads(out)["config"])
        # every other small valid config is emitted: emission is most of the test's time, and
        # test_quality's random-config tests emit valid configs of every block as well
        if not _small(config) or seen["valid"] % 2:
            return
        out_dir = tmp_path_factory.mktemp("emit") / "o"
        code, out, err = _run(["emit", *args, "-o", str(out_dir)], capsys)
        assert code == 0, (args, err[-2000:])
        assert (out_dir / f"{block}.v").stat().st_size > 0
        seen["emitted"] += 1

    case()
    assert seen["valid"] + seen["refused"] >= 600
    assert seen["valid"] >= 100 and seen["refused"] >= 100 and seen["emitted"] >= 50, seen


def _random_array(draw, names):
    name = draw(st.sampled_from(names + ["junk"]))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    kind = draw(st.sampled_from(["int64", "uint64", "int8", "bool", "float64", "huge"]))
    if kind == "huge":
        arr = np.full(shape, 2 ** 63 + 5, np.uint64)
    else:
        arr = np.asarray(draw(st.integers(-300, 300)) * np.ones(shape)).astype(kind)
    return name, arr


def _valid_inputs(block):
    """A valid inputs file's arrays for the ``tiny`` preset of ``block``: the golden model's
    own encoder accepts them (built from its ``REQUIRED`` names and the shapes the block's
    ``check_arrays`` asks for)."""
    config = REGISTRY[block].presets["tiny"]
    shapes = {"mac": {"a": (3, config.to_dict().get("lanes", 1), 1),
                      "b": (3, config.to_dict().get("lanes", 1), 1)},
              "systolic": {"a": (3, 2), "b": (2, 2)},
              "activation": {"x": (5,)},
              "softmax": {"x": (2, 4)}}.get(block, {})
    return {name: np.ones(shape, np.int64) for name, shape in shapes.items()}


@st.composite
def inputs_case(draw):
    block = draw(st.sampled_from(sorted(REGISTRY)))
    names = list(REGISTRY[block].golden_model().ARGUMENTS)
    arrays = _valid_inputs(block) if draw(st.booleans()) else {}
    arrays.update(_random_array(draw, names) for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))))
    layout = draw(st.sampled_from(["npz"] * 6 + ["text", "directory", "missing"]))
    outputs = draw(st.sampled_from([None, "out.npz", "in.npz", "nodir/out.npz", "."]))
    return block, arrays, layout, outputs


@pytest.mark.slow
def test_fuzz_sim_inputs(tmp_path_factory, capsys, monkeypatch):
    """>= 400 random ``--inputs`` files (names, shapes, dtypes, huge values, not-an-npz,
    directories) and ``--outputs`` targets: refused in one line before any build, or handed
    to the simulator."""
    from accelgen.sim import runner

    def stand_in(*args, **kwargs):
        raise _Simulated
    monkeypatch.setattr(runner, "run_emitted", stand_in)
    seen = {"refused": 0, "simulated": 0}

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(inputs_case())
    def case(drawn):
        block, arrays, layout, outputs = drawn
        root = tmp_path_factory.mktemp("in")
        path = root / "in.npz"
        if layout == "npz":
            np.savez(path, **arrays)
        elif layout == "text":
            path.write_text("a,b\n1,2\n")
        elif layout == "directory":
            path.mkdir()
        argv = ["sim", block, "--preset", "tiny", "--inputs", str(path)]
        if outputs is not None:
            argv += ["--outputs", str(root / outputs)]
        build_root = root / "build"
        monkeypatch.setattr(runner, "DEFAULT_BUILD_ROOT", build_root)
        code, out, err = _run(argv, capsys)
        if code == "simulated":
            seen["simulated"] += 1
            return
        _assert_clean_refusal(argv, code, out, err, build_root)
        assert not (root / "out.npz").exists()
        seen["refused"] += 1

    case()
    assert seen["refused"] >= 100 and seen["simulated"] >= 10, seen


# -- prove, sweep, estimate, run ------------------------------------------------------------------
#
# Same rule, four more commands, each with a stand-in where the expensive step would start
# (the solver, the Dask cluster, scikit-learn's fit, an RTL build or synthesis). Unlike the
# tests above, these collect every problem instead of stopping at the first: a traceback, a
# hang or a dirty exit is counted and its argv kept, the figures line is printed, then the
# test fails listing each problem not in KNOWN_BUGS (hypothesis does not shrink them: the argv,
# with the note on the files it names, is the reproduction).

class _Hang(BaseException):
    """Raised by the per-case alarm; a BaseException, so that no ``except Exception`` in the
    code under test turns a hang into a refusal."""


def _tree(*roots):
    """``{path: (size, mtime)}`` of everything under ``roots`` (directories: size None): two
    snapshots differ when anything was written, created or removed there."""
    out = {}
    for root in roots:
        for path in Path(root).rglob("*"):
            info = path.lstat()
            out[str(path)] = (None if path.is_dir() else info.st_size, info.st_mtime_ns)
    return out


def _written(before, after):
    """What changed between two :func:`_tree` snapshots: ``[(path, (size, mtime)), ...]``."""
    return sorted(set(before.items()) ^ set(after.items()))


class _Tally:
    """The figures of one fuzz test and the problems it found. A problem that matches one of
    :data:`KNOWN_BUGS` is counted like any other but does not fail the test (its own strict
    xfail test does, once it is fixed)."""

    def __init__(self, command, *, known=True):
        self.command = command
        self.known_bugs = KNOWN_BUGS if known else {}
        self.counts = dict.fromkeys(("cases", "refused", "reached", "tracebacks", "hangs",
                                     "dirty"), 0)
        self.detail = {"stand_in": 0, "completed": 0, "skipped": 0}
        self.known = {}
        self.problems = []
        self.note = ""          # what the argv does not show (a file's content), per case
        self.start = time.monotonic()
        self.slowest = []       # (seconds, argv) of the three slowest cases
        self.reasons = {}       # refusals by the option they name

    def _problem(self, kind, argv, what, written=()):
        self.counts[kind] += 1
        for name, matches in self.known_bugs.items():
            if matches(kind, argv, what + self.note, written):
                self.known[name] = self.known.get(name, 0) + 1
                return
        note = f"\n    ({self.note})" if self.note else ""
        self.problems.append(f"{kind}: accelgen {shlex.join(argv)}{note}\n    {what}")

    def run(self, argv, capsys):
        """``(exit status or "simulated", stdout, stderr)``, or None after a traceback or a
        hang (counted)."""
        self.counts["cases"] += 1
        started = time.monotonic()

        def hang(signum, frame):
            raise _Hang
        previous = signal.signal(signal.SIGALRM, hang)
        signal.alarm(CASE_SECONDS)
        try:
            # warnings as the command line shows them (on stderr; pytest would keep them)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                                 ResourceWarning):
                    warnings.filterwarnings("ignore", category=category)
                try:
                    code = cli.main(list(argv))
                except _Simulated:
                    code = "simulated"
                finally:
                    signal.alarm(0)
                    signal.signal(signal.SIGALRM, previous)
        except _Hang:
            capsys.readouterr()
            self._problem("hangs", argv, f"ran longer than {CASE_SECONDS} s")
            return None
        except Exception:
            capsys.readouterr()
            tail = traceback.format_exc().strip().splitlines()[-5:]
            self._problem("tracebacks", argv, "\n    ".join(tail))
            return None
        out, err = capsys.readouterr()
        err += "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n"
                       for w in caught)
        if caught and code in ("simulated", 0):
            self.detail["warned"] = self.detail.get("warned", 0) + 1
        self.slowest = sorted(self.slowest + [(round(time.monotonic() - started, 2),
                                               shlex.join(argv))])[-3:]
        return code, out, err

    def refusal(self, argv, code, out, err, written):
        """Count exit 2 with one ``accelgen: error:`` line, no stdout and nothing written as
        refused, anything else as dirty."""
        lines = err.strip().splitlines()
        why = None
        if code != 2:
            why = f"exit {code}; stderr {err[-600:]!r}"
        elif out:
            why = f"stdout {out[:300]!r}"
        elif len(lines) != 1 or not lines[0].startswith("accelgen: error: ") \
                or len(lines[0]) <= len("accelgen: error: "):
            why = f"stderr {err[-600:]!r}"
        elif written:
            why = f"refused ({lines[0][:200]!r}) but wrote {written[:4]}"
        if why:
            self._problem("dirty", argv, why, written)
        else:
            self.counts["refused"] += 1
            option = lines[0][len("accelgen: error: "):].split(":")[0][:40]
            self.reasons[option] = self.reasons.get(option, 0) + 1

    def reached(self, argv, how, problem=None, written=()):
        """A case that passed every check: ``how`` is ``stand_in`` or ``completed``;
        ``problem`` (a description; ``written``: what it wrote) makes it dirty instead."""
        if problem:
            self._problem("dirty", argv, problem, written)
            return
        self.counts["reached"] += 1
        self.detail[how] += 1

    def finish(self, *, cases, refused, stand_in, completed=0):
        """Print and keep the figures, then fail on any problem not known, or on fewer cases,
        refusals, stand-in calls or finished runs than asked for."""
        c = self.counts
        print(f"\nFUZZ {self.command}: cases={c['cases']} refused={c['refused']} "
              f"reached={c['reached']} tracebacks={c['tracebacks']} hangs={c['hangs']} "
              f"dirty={c['dirty']}")
        FUZZ_FIGURES[self.command] = {**c, **self.detail, "known_bugs": self.known,
                                      "seconds": round(time.monotonic() - self.start, 1),
                                      "slowest": self.slowest, "refusals": self.reasons}
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(
            self.problems[:25])
        assert c["cases"] == sum(c[k] for k in ("refused", "reached", "tracebacks", "hangs",
                                                 "dirty")), c
        assert c["cases"] >= cases and c["refused"] >= refused, FUZZ_FIGURES[self.command]
        assert self.detail["stand_in"] >= stand_in, FUZZ_FIGURES[self.command]
        assert self.detail["completed"] >= completed, FUZZ_FIGURES[self.command]


def _opt(argv, name, value):
    """``--name value`` (or ``--name=value`` for a value argparse would take for an option)
    appended when ``value`` is not None."""
    if value is not None:
        argv += [f"{name}={value}"] if str(value).startswith("-") else [name, str(value)]


def _case_root(tmp_path_factory, monkeypatch, name):
    """A fresh directory holding a file ``file`` and an empty directory ``empty_dir``, made
    the working directory (default output paths land in it)."""
    root = tmp_path_factory.mktemp(name)
    (root / "file").write_text("not a directory\n")
    (root / "empty_dir").mkdir()
    monkeypatch.chdir(root)
    return root


def _stand_in_reached(tally, argv, capsys, root):
    """Run ``argv`` in ``root``: its stdout when it reached the stand-in; None when it was
    refused (tallied, with what it wrote) or failed (tallied by ``tally.run``)."""
    before = _tree(root)
    result = tally.run(argv, capsys)
    if result is None:
        return None
    code, out, err = result
    if code != "simulated":
        tally.refusal(argv, code, out, err, _written(before, _tree(root)))
        return None
    return out


#: -o targets: a new directory (twice as likely), nested new ones, existing ones, a file, a
#: path below a file, an empty name, a name too long for the file system
OUT_DIRS = ["new", "new", "new/deeper", "empty_dir", "file", "file/below", "", "x" * 300]


# -- prove ---------------------------------------------------------------------------------------

#: presets whose proof harness takes more than about half a second to elaborate; a config that
#: passes the checks is elaborated before the solver would start, so valid cases of these
#: (and of configs past SMALL) are skipped, not run
PROVE_COSTLY = {"mac": {"default", "w4a8", "bf16", "mxfp8", "xrnpe"},
                "systolic": {"default", "8x8", "16x16", "fp8", "bf16"},
                "pim": {"default", "gddr6-aim", "gddr6", "hbm2-pim", "hbm2", "s16"}}
DEPTHS = ["0", "-1", "201", "200", "1", "10" * 12, "x", "1.5", "", "1e2", "0x10", " 7", "nan",
          "-0", "+3", "٣"]
TIMEOUTS = ["60", "0", "-1", "-0", "nan", "NaN", "inf", "-inf", "Infinity", "1e-300",
            "86400", "86400.001", "1e308", "1e309", "x", "", "0.5", "5e-324"]
JUNK_MUTANTS = ["", "port", "PORT-PAYLOAD", "port-payload ", "credit-off-by-one", "none",
                "../x", "x" * 300, "port-payload,port-duplicate", "-"]


@st.composite
def prove_case(draw):
    from accelgen.formal.prove import mutants_of
    block, preset, sets = draw(settings_argv())
    spec = REGISTRY.get(block)
    mutants = sorted(mutants_of(spec)) if spec else ["port-payload"]
    # half the cases keep the preset's own settings, so that enough of them pass every check
    sets = sets if draw(st.booleans()) else []
    return {"block": block, "preset": preset, "sets": sets,
            "depth": draw(st.one_of(st.none(), st.none(), st.integers(1, 200).map(str),
                                    st.sampled_from(DEPTHS))),
            "induction": draw(st.one_of(st.none(), st.none(), st.none(), st.none(),
                                        st.integers(1, 200).map(str), st.sampled_from(DEPTHS))),
            "mutant": draw(st.one_of(st.none(), st.none(), st.none(), st.sampled_from(mutants),
                                     st.sampled_from(JUNK_MUTANTS))),
            "timeout": draw(st.one_of(st.none(), st.none(), st.sampled_from(TIMEOUTS))),
            "out": draw(st.sampled_from([None, None, "new"] + OUT_DIRS)),
            "config": draw(st.sampled_from([None] * 12 + ["garbage", "missing", "empty",
                                                          "bogus_key"])),
            "json": draw(st.booleans()), "allow_large": draw(st.integers(0, 9)) == 0}


def _prove_is_costly(block, preset, sets, allow_large):
    """Whether this config resolves and would take long to elaborate."""
    spec = REGISTRY.get(block)
    if spec is None:
        return False
    try:
        config = spec.resolve(preset, sets=sets, allow_large=allow_large)
    except Exception:       # refused (or a bug the CLI run will show): not costly
        return False
    return preset in PROVE_COSTLY.get(block, ()) or not _small(config)


CONFIG_FILES = {"garbage": "[[[ not toml\n", "empty": "", "bogus_key": "bogus = 1\n"}


@pytest.mark.slow
def test_fuzz_prove(tmp_path_factory, capsys, monkeypatch):
    """>= 450 random ``prove`` command lines (blocks, presets, settings, depths, induction
    depths, mutants, timeouts, -o targets, --config files): refused in one line with nothing
    written, or handed to the solver (a stand-in for ``_run_sby``) with the depth and timeout
    asked for, after the harness was elaborated into the -o directory."""
    from accelgen.formal import prove as prove_mod
    calls = []

    def solver(directory, mode, depth, timeout, induction_only=False):
        calls.append((Path(directory), mode, depth, timeout, induction_only))
        raise _Simulated
    monkeypatch.setattr(prove_mod, "_run_sby", solver)
    tally = _Tally("prove")

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(prove_case())
    def case(drawn):
        if _prove_is_costly(drawn["block"], drawn["preset"], drawn["sets"],
                            drawn["allow_large"]):
            tally.detail["skipped"] += 1
            return
        root = _case_root(tmp_path_factory, monkeypatch, "prove")
        argv = ["prove", drawn["block"], "--preset", drawn["preset"],
                *[x for s in drawn["sets"] for x in ("--set", s)]]
        _opt(argv, "--depth", drawn["depth"])
        _opt(argv, "--induction-depth", drawn["induction"])
        _opt(argv, "--mutant", drawn["mutant"])
        _opt(argv, "--timeout", drawn["timeout"])
        _opt(argv, "-o", drawn["out"])
        if drawn["config"] is not None:
            path = root / "c.toml"
            if drawn["config"] != "missing":
                path.write_text(CONFIG_FILES[drawn["config"]])
            argv += ["--config", str(path)]
        argv += ["--json"] * drawn["json"] + ["--allow-large"] * drawn["allow_large"]
        calls.clear()
        out = _stand_in_reached(tally, argv, capsys, root)
        if out is None:
            return
        spec = REGISTRY[drawn["block"]]
        directory, mode, depth, timeout, induction_only = calls[0]
        want_depth = prove_mod._contract(spec).depth if drawn["depth"] is None \
            else int(drawn["depth"])
        want_timeout = 1800 if drawn["timeout"] is None else float(drawn["timeout"])
        want_dir = Path(drawn["out"]) if drawn["out"] is not None else \
            Path("build/prove") / f"{spec.name}_{drawn['preset']}" \
            f"{'_' + drawn['mutant'] if drawn['mutant'] else ''}"
        problem = None
        if drawn["out"] == "":
            problem = EMPTY_OUTPUT
        # the first solver run is the bounded check at --depth
        elif (depth, timeout, induction_only) != (want_depth, want_timeout, False) \
                or mode not in ("bmc", "prove"):
            problem = f"the solver was asked for {(mode, depth, timeout, induction_only)}"
        elif directory.resolve() != (root / want_dir / "round0").resolve() \
                or not (directory / "design.il").stat().st_size:
            problem = f"the solver ran in {directory} (expected {want_dir}/round0)"
        elif out:
            problem = f"stdout before the solver ran: {out[:200]!r}"
        tally.reached(argv, "stand_in", problem)

    case()
    tally.finish(cases=450, refused=250, stand_in=100)


# -- faults --------------------------------------------------------------------------------------

COUNTS = ["1", "10", "1000000", "0", "-1", "1000001", "x", "1.5", "", "nan", "1e3", "+5", "٣"]
PROTECTS = ["tmr", "dmr", "parity", "secded", "TMR", "", "ecc", "tmr,secded", "none"]


@st.composite
def faults_case(draw):
    block, preset, sets = draw(settings_argv())
    # at most one option hostile per case (none in half of them), so that enough cases pass
    # every check; the others absent or valid
    victim = draw(st.sampled_from(["campaign", "beats", "seed", "simulator", "coverage", "top",
                                   "protect", "out"] + [None] * 8))

    def pick(name, valid, bad):
        if name == victim:
            return draw(st.sampled_from(bad))
        return draw(st.sampled_from([None, None] + valid))
    selective = draw(st.integers(0, 4)) == 0
    protect = draw(st.lists(st.sampled_from(PROTECTS[:4]), max_size=2, unique=True))
    if selective and not {"tmr", "dmr"} & set(protect) and victim != "protect":
        protect = [*protect, "tmr"]
    return {"block": block, "preset": preset, "sets": sets if draw(st.booleans()) else [],
            "campaign": pick("campaign", ["1", "10", "5000"], COUNTS[3:]),
            "beats": pick("beats", ["1", "50", "400"], COUNTS[3:]),
            "seed": pick("seed", ["3", "0"], ["-1", str(2 ** 32), "x"]),
            "simulator": pick("simulator", ["verilator"], ["", "spice", "icarus"]),
            "protect": protect if victim != "protect" else
            draw(st.lists(st.sampled_from(PROTECTS), min_size=1, max_size=3)),
            "selective": selective,
            "coverage": pick("coverage", ["0.5", "1"] if selective else [],
                             ["0", "1.5", "nan", "x", "-0.1", "0.5"]),
            "area": draw(st.integers(0, 4)) == 0,
            "top": pick("top", ["5", "1"], ["0", "-3", "10001", "x"]),
            "out": pick("out", ["new", "new/deeper", "empty_dir"], OUT_DIRS[4:]),
            "json": draw(st.booleans())}


@pytest.mark.slow
def test_fuzz_faults(tmp_path_factory, capsys, monkeypatch):
    """>= 450 random ``faults`` command lines (blocks, presets, settings, campaign sizes,
    workloads, seeds, simulators, protections, selective mode, coverage, area, -o): refused
    in one line with nothing written, or handed to the campaign (a stand-in for its build
    and reference run) with the -o directory asked for."""
    from accelgen.faults import campaign
    calls = []

    def stand_in(spec, config, out_dir, **kwargs):
        calls.append((spec.name, Path(out_dir), kwargs))
        raise _Simulated
    monkeypatch.setattr(campaign, "prepare", stand_in)
    tally = _Tally("faults")

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(faults_case())
    def case(drawn):
        root = _case_root(tmp_path_factory, monkeypatch, "faults")
        argv = ["faults", drawn["block"], "--preset", drawn["preset"],
                *[x for s in drawn["sets"] for x in ("--set", s)]]
        for name in ("campaign", "beats", "seed", "simulator", "coverage", "top"):
            _opt(argv, f"--{name}", drawn[name])
        for item in drawn["protect"]:
            _opt(argv, "--protect", item)
        argv += ["--selective"] * drawn["selective"] + ["--area"] * drawn["area"]
        _opt(argv, "-o", drawn["out"])
        argv += ["--json"] * drawn["json"]
        calls.clear()
        out = _stand_in_reached(tally, argv, capsys, root)
        if out is None:
            return
        block, directory, kwargs = calls[0]
        want = Path(drawn["out"]) if drawn["out"] is not None else \
            Path("build/faults") / f"{block}_{drawn['preset']}"
        if drawn["selective"]:
            want = want / "unprotected"
        problem = None
        if drawn["out"] == "":
            problem = EMPTY_OUTPUT
        elif (root / want).resolve() != (root / directory).resolve():
            problem = f"the campaign was handed {directory} (expected {want})"
        elif kwargs.get("simulator") != (drawn["simulator"] or "verilator"):
            problem = f"the campaign was handed simulator {kwargs.get('simulator')!r}"
        elif out:
            problem = f"stdout before the campaign ran: {out[:200]!r}"
        tally.reached(argv, "stand_in", problem)

    case()
    tally.finish(cases=450, refused=200, stand_in=100)


# -- sweep ---------------------------------------------------------------------------------------

#: values of the block's run options (valid ones first)
OPTION_VALUES = {"gemm": ["4x4x4", "8x8x8", "2x3x5", "1x1x1", "0x4x4", "4x4", "x", "-1x2x2",
                          "99999x99999x99999"],
                 "dataflow": ["os", "ws", "is", ""],
                 "gemv": ["8x8", "16x64", "0x8", "8", "x"],
                 "mode": ["plain", "overlap", "both"]}
#: run option values no config takes (malformed): given outside the grid, bad input
MALFORMED_OPTIONS = {"gemm": {"0x4x4", "4x4", "x", "-1x2x2"}, "dataflow": {"is", ""},
                     "gemv": {"0x8", "8", "x"}, "mode": {"both"}}
GRID_JUNK = ["", "3", "[1", "[]", "[[]]", "{a = 1}", "[1, 1]", "[1979-05-27]", "[1,]",
             "[" * 40 + "]" * 40, "[1, 'x']", "[true, 1]", '["a", "a"]', "[nan, nan]",
             "[" + ", ".join(map(str, range(400))) + "]", "[" + "1, " * 3 + "]"]
SWEEP_OPTIONS = {      # (valid values, bad ones)
    "--random": (["2", "5", "1"], ["0", "-1", "100001", "x", "1.5", "9" * 20]),
    "--metrics": (["resources", "errors", "cycles", "fmax", "sim", "util", "throughput",
                   "resources,fmax", "errors,cycles", "resources,resources", " resources "],
                  ["", ",", "foo", "RESOURCES", "resources,,fmax"]),
    "--objectives": (["min:lut4,max:gmacs", "min:lut4", "max:fmax_mhz", "min:err_max",
                      "min:model_cycles"],
                     ["lut4", "min:", ":lut4", "min:lut4,min:lut4", "max:nope", ""]),
    "--family": (["ecp5", "ice40"], ["ECP5", "", "xc7"]),
    "--board": (["icebreaker", "ulx3s-85f"], ["nope", ""]),
    "--target-mhz": (["150", "1", "1000"], ["0", "-1", "nan", "inf", "1000.5", "x", "1e-300"]),
    "--pnr-seed": (["2", "0"], ["-1", str(2 ** 31), "x"]),
    "--seed": (["7", "0"], ["-1", str(2 ** 32), "x"]),
    "--cycles": (["1", "1000000000"], ["0", "-5", "x"]),
    "--workers": (["1", "2"], ["0", "1025", "-1", "x"]),
    "--scheduler": (["ws://127.0.0.1:1"],
                    ["tcp://127.0.0.1:1", "nonsense", "foo://h:1", "tcp://127.0.0.1:99999",
                     "tcp://:1", "inproc://x", "tcp://127.0.0.1", "", "tls://127.0.0.1:1",
                     "tcp://localhost:1", "tcp://[::1]:1"]),
}
SWEEP_TAME_DEFAULT = ("--metrics", "--objectives", "--board", "--scheduler")
#: how often each option is given (out of 20): the family nearly always, since the default
#: metric (resources) needs it
SWEEP_GIVEN = {"--family": 18, "--metrics": 8}
#: sweep directories: the -o targets, and ones holding a store (of this block, of another
#: block, not a store at all)
SWEEP_DIRS = OUT_DIRS + ["new", "new", "same_store", "other_store", "bad_store"]


def _dotted(data, key):
    for part in key.split("."):
        data = data[part]
    return data


@st.composite
def grid_item(draw, block, preset, tame=False):
    """One ``--grid key=[...]``; ``tame``: a key of the config or a run option, its values
    led by the preset's own (so that the grid holds a valid point)."""
    spec = REGISTRY.get(block)
    keys = ["bogus", "", " ", "lanes.x", "=", "rows "]
    base = None
    if spec is not None:
        base = spec.presets.get(preset, spec.presets["default"])
        from accelgen.explore.space import config_keys
        known = config_keys(base.to_dict()) * 3 + [o.name for o in spec.run_options] * 3
        keys = known if tame and known else known + keys
    key = draw(st.sampled_from(keys))
    if not tame and draw(st.integers(0, 9)) == 0:
        return f"{key}={draw(st.sampled_from(GRID_JUNK))}"
    usual = FIELDS.get(block, {}).get(key) or OPTION_VALUES.get(key) or HOSTILE
    if tame or draw(st.integers(0, 2)):     # values the presets use, each once
        values = draw(st.lists(st.sampled_from(usual), min_size=1, max_size=3,
                               unique_by=lambda v: json.dumps(v, sort_keys=True)))
        if tame:
            own = OPTION_VALUES[key][0] if key in OPTION_VALUES else \
                _dotted(base.to_dict(), key)
            values = [own] + [v for v in values if json.dumps(v, sort_keys=True)
                              != json.dumps(own, sort_keys=True)]
    else:
        value = st.sampled_from(usual)
        values = draw(st.lists(st.one_of(value, value, st.sampled_from(HOSTILE)), min_size=1,
                               max_size=4))
    return f"{key}={toml_value(values)}"


@st.composite
def sweep_case(draw):
    block, preset, sets = draw(settings_argv())
    if draw(st.integers(0, 11)) == 0:
        return {"report": draw(st.sampled_from(["same_store", "other_store", "missing", "file",
                                                "bad_store", "empty_dir", None])),
                "objectives": draw(st.sampled_from([None, None, "min:lut4", "lut4"])),
                "extra": draw(st.sampled_from([[], [], ["--family", "ecp5"], ["--strict"],
                                               ["--grid", "lanes=[1]"]])),
                "json": draw(st.booleans()), "block": block}
    # a third of the cases tame (valid option values, no --set, a new directory) but for at
    # most one fault, so that enough of them get past every other check
    tame = draw(st.integers(0, 2)) == 0
    fault = draw(st.sampled_from(list(SWEEP_OPTIONS) + ["-o"] + [None] * 10)) if tame else None
    if tame and (block not in REGISTRY or preset not in REGISTRY[block].presets):
        block, preset = draw(st.sampled_from(sorted(REGISTRY))), "tiny"
    sets = sets if not tame and draw(st.booleans()) else []
    grid = draw(st.lists(grid_item(block, preset, tame), min_size=1, max_size=3,
                         unique_by=lambda item: item.partition("=")[0].strip())) \
        if tame or draw(st.integers(0, 24)) else []
    if draw(st.booleans()):
        grid = grid[:1]
    options = {}
    for name, (valid, bad) in SWEEP_OPTIONS.items():
        if name == fault:
            options[name] = draw(st.sampled_from(bad))
        elif tame:
            # the family (the default metric needs it); metrics, objectives, board and
            # scheduler, which must agree with each other, left at their defaults
            if name == "--family" or name not in SWEEP_TAME_DEFAULT and \
                    draw(st.integers(1, 20)) <= 3:
                options[name] = draw(st.sampled_from(valid))
        elif draw(st.integers(1, 20)) <= SWEEP_GIVEN.get(name, 3):
            options[name] = draw(st.sampled_from(valid if draw(st.booleans()) else bad))
    if tame and fault is None and draw(st.integers(0, 3)) == 0:
        options["--metrics"], options["--family"] = draw(st.sampled_from(
            ["resources,fmax", "sim", "util"])), "ecp5"
    spec = REGISTRY.get(block)
    for option in spec.run_options if spec else ():
        if draw(st.integers(0, 4)) == 0:
            options[f"--{option.name}"] = draw(st.sampled_from(OPTION_VALUES[option.name]))
    return {"report": False, "block": block, "preset": preset, "sets": sets, "grid": grid,
            "options": options,
            "out": draw(st.sampled_from(SWEEP_DIRS[4:] if fault == "-o" else ["new", None]
                                        if tame else [None] + SWEEP_DIRS)),
            "flags": [f for f in ("--retry-failed", "--strict", "--json", "--allow-large")
                      if draw(st.integers(0, 5)) == 0],
            "extra": [] if tame else draw(st.sampled_from([[]] * 15 + [["extra"]]))}


def _store_templates(root):
    """Stores made once, copied into each case (a store's creation syncs to disk: slow)."""
    from accelgen.explore.store import STORE_NAME, Store
    for block in REGISTRY:
        (root / block).mkdir()
        with Store(root / block / STORE_NAME) as store:
            store.set_meta("block", block)
    (root / "bad").mkdir()
    (root / "bad" / STORE_NAME).write_bytes(b"SQLite format 2\0" + bytes(range(256)))
    return root


def _sweep_dirs(root, block, templates):
    """The directories holding a store that ``SWEEP_DIRS`` names, in ``root``: one of
    ``block`` (``same_store``), one of another block, and a file that is not a store."""
    same = block if block in REGISTRY else "mac"
    for name, source in (("same_store", same), ("other_store", "pim" if same != "pim" else
                                                "mac"), ("bad_store", "bad")):
        shutil.copytree(templates / source, root / name)


def _json_lines(out):
    try:
        return all(isinstance(json.loads(line), dict) for line in out.splitlines())
    except ValueError:
        return False


@pytest.mark.slow
def test_fuzz_sweep(tmp_path_factory, capsys, monkeypatch):
    """>= 400 random ``sweep`` command lines (grids of good and bad keys and values, --random,
    metrics, objectives, family, board, seeds, workers, schedulers, run options, sweep
    directories) and ``sweep report`` ones: refused in one line with nothing written, or
    handed to the Dask engine (a stand-in for ``connect``: no cluster starts, no tool
    runs), or finished for real when no point needs a task."""
    from accelgen.explore import engine
    from accelgen.explore import sweep as sweep_mod
    connects = []

    def connect(scheduler=None, workers=None):
        connects.append((scheduler, workers))
        if scheduler is not None:
            engine._probe(scheduler)        # a malformed or dead address is refused here
        raise _Simulated
    monkeypatch.setattr(sweep_mod, "connect", connect)
    monkeypatch.setattr(sweep_mod, "_warm_tools", lambda metrics: None)
    tally = _Tally("sweep")
    templates = _store_templates(tmp_path_factory.mktemp("stores"))

    @settings(max_examples=800, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(sweep_case())
    def case(drawn):
        root = _case_root(tmp_path_factory, monkeypatch, "sweep")
        _sweep_dirs(root, drawn["block"], templates)
        if drawn["report"] is not False:
            argv = ["sweep", "report"]
            if drawn["report"] is not None:
                argv.append(drawn["report"])
            _opt(argv, "--objectives", drawn["objectives"])
            argv += drawn["extra"] + ["--json"] * drawn["json"]
        else:
            argv = ["sweep", drawn["block"], *drawn["extra"], "--preset", drawn["preset"],
                    *[x for s in drawn["sets"] for x in ("--set", s)],
                    *[x for g in drawn["grid"] for x in ("--grid", g)], *drawn["flags"]]
            for name, value in drawn["options"].items():
                _opt(argv, name, value)
            _opt(argv, "-o", drawn["out"])
        before = _tree(root)
        connects.clear()
        result = tally.run(argv, capsys)
        if result is None:
            return
        code, out, err = result
        if drawn["report"] is False and drawn["out"] == "" and code in ("simulated", 0):
            tally.reached(argv, "stand_in", EMPTY_OUTPUT)
        elif code == "simulated":
            scheduler, workers = connects[-1]
            want = drawn["options"].get("--workers")
            problem = None
            if scheduler != drawn["options"].get("--scheduler") or \
                    (scheduler is None and workers != (None if want is None else int(want))):
                problem = f"connect({scheduler!r}, {workers!r}) for {drawn['options']}"
            elif scheduler is None and not (
                    root / (drawn["out"] or f"sweeps/{drawn['block']}") / "results.sqlite"
            ).is_file():
                problem = "the engine was reached without a store in the sweep directory"
            tally.reached(argv, "stand_in", problem)
        elif code == 0:
            problem = None
            swept = {g.partition("=")[0].strip() for g in drawn.get("grid", ())}
            malformed = [f"{name} {value!r}" for name, value in drawn.get("options", {}).items()
                         if value in MALFORMED_OPTIONS.get(name[2:], ()) and name[2:] not in swept]
            if connects:
                problem = "exit 0 after connecting"
            elif malformed:
                problem = f"{MALFORMED} ({malformed[0]})"
            elif not out.strip() or "--json" in argv and not (
                    _json_lines(out.strip()) if drawn["report"] is False else
                    _json_lines(out.replace("\n", " "))):
                problem = f"stdout {out[:300]!r}"
            elif not list(root.glob("**/report.html")):
                problem = "no report.html"
            tally.reached(argv, "completed", problem)
        else:
            tally.refusal(argv, code, out, err, _written(before, _tree(root)))

    case()
    tally.finish(cases=700, refused=400, stand_in=30, completed=50)



# -- estimate ------------------------------------------------------------------------------------

#: hostile JSON values a model file's entries are replaced with
JSON_HOSTILE = [None, "x", "", [], {}, [1], [[]], ["x"], -1, 0, 1, 10 ** 30, 1e308, -1e308,
                True, 0.5, {"a": 1}, [None]]
#: --fit arguments: sweep stores (directories or the file itself) with finished records,
#: with none, of a block accelgen does not know, with a config the block refuses; and
#: things that are not stores
FIT_PATHS = ["good", "good/results.sqlite", "failed_only", "unknown_block", "bad_config",
             "garbage", "plain_sqlite", "wrong_columns", "empty_dir", "missing", "text"]
MODEL_OUTS = ["model.json", "model.json", "sub/model.json", "file/below.json", "empty_dir",
              "file", "", ".", "x" * 250 + ".json"]


@st.composite
def model_file(draw, block):
    """The shipped model with one entry (reached by a random walk from the entry of
    ``block``, or from the top) replaced by a hostile value; or not JSON at all."""
    kind = draw(st.sampled_from(["mutated"] * 6 + ["shipped", "garbage", "empty", "list",
                                                   "nan", "directory", "missing"]))
    if kind != "mutated":
        return kind, None
    model = json.loads(_shipped_model_text())
    node = model
    path = []
    if draw(st.integers(0, 9)) and block in model["models"]:
        node = model["models"][block]
        path = ["models", block]
    parent, key = None, None
    while isinstance(node, (dict, list)) and node and (parent is None or draw(
            st.integers(0, 7))):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        parent, node = node, node[key]
        path.append(key)
    value = draw(st.sampled_from(JSON_HOSTILE))
    if parent is None:
        return "mutated", (path, json.dumps(value), json.dumps(value))
    parent[key] = value
    return "mutated", (path, json.dumps(model), json.dumps(value))


@functools.cache
def _shipped_model_text():
    from importlib import resources
    return resources.files("accelgen.explore").joinpath("estimator.json").read_text()


@st.composite
def estimate_case(draw):
    block, preset, sets = draw(settings_argv())
    if draw(st.integers(0, 4)):       # a prediction
        fit = None
        out = draw(st.sampled_from(MODEL_OUTS)) if draw(st.integers(0, 11)) == 0 else None
    else:                               # a fit
        # a store with finished records first, most of the time
        fit = draw(st.lists(st.sampled_from(FIT_PATHS), min_size=1, max_size=3))
        if draw(st.integers(0, 2)):
            fit[0] = draw(st.sampled_from(FIT_PATHS[:2]))
        out = draw(st.sampled_from(MODEL_OUTS)) if draw(st.booleans()) else None
        if draw(st.integers(0, 5)):
            block = None
    return {"block": block, "preset": preset if draw(st.integers(0, 5)) else None,
            "sets": sets if draw(st.booleans()) else [],
            "family": draw(st.sampled_from([None, None, None, "ecp5", "ice40", "", "ECP5"])),
            "model": draw(model_file(block)) if draw(st.integers(0, 2)) == 0 else None,
            "fit": fit, "out": out, "json": draw(st.booleans())}


def _fit_stores(root):
    """The stores and non-stores ``FIT_PATHS`` names, in ``root``."""
    import sqlite3

    from accelgen.explore.store import STORE_NAME, Store
    mac = REGISTRY["mac"]

    def store(name, records):
        (root / name).mkdir()
        with Store(root / name / STORE_NAME) as st_:
            for i, (block, config, status) in enumerate(records):
                st_.put(f"k{i}", block=block, digest=f"d{i}", config=config,
                        context={"family": "ecp5"},
                        record={"metric": "resources", "status": status, "tools": {},
                                "values": {"lut4": 100 + i, "ff": 50 + i}, "reason": "",
                                "log": "", "host": "", "seconds": 1.0})
    store("good", [("mac", c.to_dict(), "ok") for c in mac.presets.values()])
    store("failed_only", [("mac", mac.presets["tiny"].to_dict(), "failed")])
    store("unknown_block", [("nope", {"lanes": 1}, "ok")])
    store("bad_config", [("mac", {**mac.presets["tiny"].to_dict(), "lanes": -1}, "ok")])
    (root / "garbage").write_bytes(bytes(range(256)) * 4)
    (root / "text").write_text("records, points, meta\n")
    (root / "empty_dir").mkdir(exist_ok=True)
    for name, tables in (("plain_sqlite", "CREATE TABLE t (x)"),
                         ("wrong_columns", "CREATE TABLE records (x); CREATE TABLE points (x);"
                                           " CREATE TABLE meta (x)")):
        with sqlite3.connect(root / name) as db:
            db.executescript(tables)
        db.close()
    return root


@pytest.mark.slow
def test_fuzz_estimate(tmp_path_factory, capsys, monkeypatch):
    """>= 400 random ``estimate`` command lines (blocks, presets, settings, families, model
    files: the shipped one with an entry replaced by a hostile value, or not JSON; --fit
    stores and non-stores; -o targets): refused in one line with nothing written, or a
    prediction printed (it is cheap: the real one runs, and writes nothing), or, with
    --fit, the stores read and handed to the fit (a stand-in for scikit-learn)."""
    from accelgen.explore import estimate as est
    fits = []

    def fit_models(samples, **kwargs):
        fits.append(samples)
        raise _Simulated
    monkeypatch.setattr(est, "fit_models", fit_models)
    stores = _fit_stores(tmp_path_factory.mktemp("fit"))
    tally = _Tally("estimate")

    @settings(max_examples=800, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(estimate_case())
    def case(drawn):
        root = _case_root(tmp_path_factory, monkeypatch, "estimate")
        argv = ["estimate"] + ([drawn["block"]] if drawn["block"] is not None else [])
        _opt(argv, "--preset", drawn["preset"])
        argv += [x for s in drawn["sets"] for x in ("--set", s)]
        _opt(argv, "--family", drawn["family"])
        tally.note = ""
        if drawn["model"] is not None:
            kind, mutated = drawn["model"]
            path = root / "m.json"
            tally.note = f"m.json: {kind}"
            if kind == "mutated":
                tally.note = f"m.json: the shipped model with {mutated[0]} = {mutated[2]}"
                path.write_text(mutated[1])
            elif kind == "shipped":
                path.write_text(_shipped_model_text())
            elif kind in ("garbage", "empty", "list", "nan"):
                path.write_text({"garbage": "{{{", "empty": "", "list": "[]",
                                 "nan": '{"models": NaN}'}[kind])
            elif kind == "directory":
                path.mkdir()
            argv += ["--model", str(path)]
        if drawn["fit"] is not None:
            argv += ["--fit", *[str(stores / p) for p in drawn["fit"]]]
        _opt(argv, "-o", drawn["out"])
        argv += ["--json"] * drawn["json"]
        before = _tree(root, stores)
        fits.clear()
        result = tally.run(argv, capsys)
        if result is None:
            return
        code, out, err = result
        written = _written(before, _tree(root, stores))
        if code == "simulated":
            problem = None
            if drawn["out"] == "":
                problem = EMPTY_OUTPUT
            elif not fits[0] or not all(key[0] in REGISTRY for key in fits[0]):
                problem = f"the fit was handed {list(fits[0])}"
            elif out or written:
                problem = f"before the fit: wrote {written[:4]}, stdout {out[:200]!r}"
            tally.reached(argv, "stand_in", problem, written)
        elif code == 0:
            problem = None
            if written:
                problem = f"a prediction wrote {written[:4]}"
            elif drawn["json"]:
                data = json.loads(out)
                if not data["estimates"] or not all(
                        isinstance(e["value"], float) and e["value"] >= 0
                        for e in data["estimates"].values()):
                    problem = f"estimates {data['estimates']}"
            elif "estimate (" not in out:
                problem = f"stdout {out[:300]!r}"
            tally.reached(argv, "completed", problem, written)
        else:
            tally.refusal(argv, code, out, err, written)

    case()
    tally.finish(cases=700, refused=350, stand_in=20, completed=100)




# -- run -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mlp_example(tmp_path_factory):
    """``python -m accelgen.model.examples mlp``: the digits MLP, its int8 QDQ model and
    inputs, built once per session."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from accelgen.model import examples
    return examples.digits_mlp(tmp_path_factory.mktemp("mlp"))


#: model files: the int8 model (most cases), the float one, and files that are no model
MODELS = ["int8"] * 8 + ["float", "missing", "garbage", "empty", "truncated", "directory",
                         "text"]
#: ways to spoil the inputs file's arrays
INPUT_CHANGES = ["drop_x", "rename_x", "extra", "drop_labels", "labels_float", "labels_2d",
                 "labels_length", "labels_scalar", "labels_huge", "labels_negative", "dtype",
                 "shape", "values"]
X_DTYPES = ["float64", "float16", "int64", "int8", "uint8", "bool", "complex64", "U3"]
X_SHAPES = [(63,), (64, 1), (0,), (1, 1)]
X_VALUES = [math.nan, math.inf, -math.inf, 1e30, -1e30, 3e38, 1e300]
INPUT_LAYOUTS = ["npz"] * 8 + ["compressed", "text", "directory", "missing", "empty",
                                "pickled", "none"]
HW_TOML = ['[systolic]\npreset = "tiny"\n', '[systolic]\npreset = "8x8"\n',
           '[softmax]\npreset = "tiny"\n', '[systolic]\nrows = 2\ncols = 2\n', "",
           '[systolic]\nrows = -1\n', '[systolic]\nrows = "x"\n', '[systolic]\npreset = 3\n',
           "systolic = 3\n", "[mac]\n", "[nope]\n", "garbage [[[\n", b"\xff\xfe[\x00",
           '[systolic]\nrows = 1979-05-27\n', "[systolic]\nbogus = 1\n",
           "[systolic.pe]\nx = 1\n", '[systolic]\npreset = "nope"\n',
           "[systolic]\nrows = 99999999999999999999999\n", '[softmax]\nn_max = 4\n',
           '[systolic]\nk_max = 2\nacc_depth = 2\n', "[activation]\n"]
RUN_OPTIONS = {     # (valid values, bad ones)
    "--hw-preset": (["systolic=8x8", "softmax=default", " systolic = 8x8 ", "systolic=tiny"],
                    ["=x", "systolic", "systolic=", "mac=default", "systolic=nope",
                     "nope=tiny"]),
    "--sim": (["golden", "rtl"], ["", "GOLDEN", "spice"]),
    "--simulator": (["verilator", "icarus"], ["", "spice"]),
    "--reference": (["int8", "qdq"], ["", "float"]),
    "--fmax": (["100", "9999.9", "1e-300"], ["0", "-1", "nan", "inf", "1e308", "10000", "x"]),
    "--seed": (["3", "0"], ["-1", str(2 ** 32), "x"]),
    "--build-root": (["new", "empty_dir"], ["file", "file/below", ""]),
    "-o": (["new", "new/deeper", "empty_dir"], ["file", "file/below", "", "x" * 300]),
}
#: how often each option is given (out of 20)
RUN_GIVEN = {"--sim": 6, "--hw-preset": 4, "-o": 6, "--build-root": 4}
#: what a one-fault case spoils: the model, the inputs file, --hw, or one option
RUN_FAULTS = ["model", "inputs", "layout", "hw"] + list(RUN_OPTIONS)


@st.composite
def run_case(draw):
    """Half the cases wild (anything may be wrong, often several things), half valid but
    for one fault (or none): those get past the other checks to the one being tested."""
    wild = draw(st.booleans())
    fault = None if wild else draw(st.sampled_from(RUN_FAULTS + [None]))
    rows = draw(st.integers(1, 4))
    spoil = {"dtype": draw(st.sampled_from(X_DTYPES)), "shape": draw(st.sampled_from(X_SHAPES)),
             "values": draw(st.sampled_from(X_VALUES))}
    changes = []
    if wild and draw(st.integers(0, 2)) == 0:
        changes = draw(st.lists(st.sampled_from(INPUT_CHANGES), max_size=2))
    elif fault == "inputs":
        changes = [draw(st.sampled_from(INPUT_CHANGES))]
    options = {}
    for name, (valid, bad) in RUN_OPTIONS.items():
        if name == fault or draw(st.integers(1, 20)) <= RUN_GIVEN.get(name, 2):
            options[name] = draw(st.sampled_from(
                bad if name == fault or wild and draw(st.booleans()) else valid))
    if "--hw-preset" in options and draw(st.booleans()):
        options["--hw-preset"] = [options["--hw-preset"],
                                  draw(st.sampled_from(sum(RUN_OPTIONS["--hw-preset"], [])))]
    hw = None
    if wild and draw(st.integers(0, 5)) == 0:
        hw = draw(st.sampled_from(HW_TOML + ["missing", "directory"]))
    elif fault == "hw":
        hw = draw(st.sampled_from(HW_TOML[5:] + ["missing", "directory"]))
    elif draw(st.integers(0, 9)) == 0:
        hw = draw(st.sampled_from(HW_TOML[:5]))
    return {"model": draw(st.sampled_from(MODELS if wild else MODELS[8:]))
            if wild or fault == "model" else "int8",
            "rows": rows, "changes": changes, "spoil": spoil,
            "layout": draw(st.sampled_from(INPUT_LAYOUTS if wild else INPUT_LAYOUTS[8:]))
            if wild or fault == "layout" else "npz",
            "hw": hw, "options": options,
            "flags": [f for f in ("--allow-host", "--measure-fmax", "--json")
                      if draw(st.integers(0, 5)) == 0]}


def _run_inputs(example, rows, changes, spoil):
    """The arrays of an inputs file: ``rows`` of the example's own, then ``changes``."""
    with np.load(example.inputs) as data:
        arrays = {"X": data["X"][:rows], "labels": data["labels"][:rows]}
    for change in changes:
        x = arrays.get("X", np.zeros((rows, 64), np.float32))
        if change == "drop_x":
            arrays.pop("X", None)
        elif change == "rename_x":
            arrays["x"] = arrays.pop("X", x)
        elif change == "extra":
            arrays["junk"] = np.zeros(3)
        elif change == "drop_labels":
            arrays.pop("labels", None)
        elif change == "labels_float":
            arrays["labels"] = np.zeros(rows, np.float64)
        elif change == "labels_2d":
            arrays["labels"] = np.zeros((rows, 1), np.int64)
        elif change == "labels_length":
            arrays["labels"] = np.zeros(rows + 1, np.int64)
        elif change == "labels_scalar":
            arrays["labels"] = np.int64(3)
        elif change == "labels_huge":
            arrays["labels"] = np.full(rows, 2 ** 63 + 5, np.uint64)
        elif change == "labels_negative":
            arrays["labels"] = np.full(rows, -1, np.int64)
        elif change == "dtype":
            arrays["X"] = x.astype(spoil["dtype"])
        elif change == "shape":
            arrays["X"] = np.zeros((rows,) + spoil["shape"], np.float32)
        elif change == "values":
            x = x.astype(np.float64)
            x[0, 0] = spoil["values"]
            arrays["X"] = x
    return arrays


def _run_files(root, example, drawn):
    """Write the case's model, inputs and --hw files into ``root``; their paths."""
    model = root / "model.onnx"
    kind = drawn["model"]
    if kind == "int8":
        model = example.model
    elif kind == "float":
        model = example.float_model
    elif kind == "truncated":
        data = example.model.read_bytes()
        model.write_bytes(data[:len(data) // 2])
    elif kind == "directory":
        model.mkdir()
    elif kind != "missing":
        model.write_bytes({"garbage": bytes(range(256)) * 8, "empty": b"",
                           "text": b"ir_version: 8\ngraph { }\n"}[kind])
    inputs = root / "in.npz"
    layout = drawn["layout"]
    arrays = _run_inputs(example, drawn["rows"], drawn["changes"], drawn["spoil"])
    if layout == "npz":
        np.savez(inputs, **arrays)
    elif layout == "compressed":
        np.savez_compressed(inputs, **arrays)
    elif layout == "pickled":
        np.savez(inputs, X=np.array([{"a": 1}], dtype=object))
    elif layout == "text":
        inputs.write_text("X,labels\n1,2\n")
    elif layout == "empty":
        inputs.write_bytes(b"")
    elif layout == "directory":
        inputs.mkdir()
    hw = None
    if drawn["hw"] is not None:
        hw = root / "hw.toml"
        if drawn["hw"] == "directory":
            hw.mkdir()
        elif drawn["hw"] != "missing":
            text = drawn["hw"]
            hw.write_bytes(text if isinstance(text, bytes) else text.encode())
    return model, (None if layout == "none" else inputs), hw


@pytest.mark.slow
def test_fuzz_run(mlp_example, tmp_path_factory, capsys, monkeypatch):
    """>= 300 random ``run`` command lines (model files, inputs files with wrong names,
    shapes, dtypes, values and labels, --hw files and presets, --sim, --simulator,
    --reference, --fmax, seeds, build roots, -o targets): refused in one line with nothing
    written, or run for real on the golden models (a few rows: fast) to exit 0 with its
    report, or handed to the RTL build (a stand-in for ``emit`` in ``run_words``, after the
    simulator and build root were checked) or to synthesis (``--measure-fmax``: a stand-in
    for ``flow._synth``, after its directory was checked and made)."""
    from accelgen.fpga import flow
    from accelgen.generators import emit as emit_mod
    standins = []

    def emit(spec, config, out_dir, **kwargs):
        standins.append(("rtl", spec.name, Path(out_dir)))
        raise _Simulated

    def synthesize(spec, config, fam, out_dir, **kwargs):
        standins.append(("fmax", spec.name, Path(out_dir)))
        raise _Simulated
    monkeypatch.setattr(emit_mod, "emit", emit)
    monkeypatch.setattr(flow, "_synth", synthesize)
    shared = mlp_example.model.parent
    tally = _Tally("run")

    @settings(max_examples=800, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(run_case())
    def case(drawn):
        root = _case_root(tmp_path_factory, monkeypatch, "run")
        model, inputs, hw = _run_files(root, mlp_example, drawn)
        argv = ["run", str(model)]
        if inputs is not None:
            argv += ["--inputs", str(inputs)]
        if hw is not None:
            argv += ["--hw", str(hw)]
        for name, value in drawn["options"].items():
            for item in value if isinstance(value, list) else [value]:
                _opt(argv, name, item)
        argv += drawn["flags"]
        tally.note = f"rows {drawn['rows']}, changes {drawn['changes']} {drawn['spoil']}, " \
            f"inputs {drawn['layout']}, --hw {drawn['hw']!r}"
        before = _tree(root, shared)
        standins.clear()
        result = tally.run(argv, capsys)
        if result is None:
            return
        code, out, err = result
        options = drawn["options"]
        if code == "simulated":
            what, block, where = standins[-1]
            problem = None
            if what == "rtl" and (options.get("--sim") != "rtl" or not where.is_dir()):
                problem = f"an RTL build for {options} in {where}"
            elif what == "fmax" and "--measure-fmax" not in drawn["flags"]:
                problem = "place and route without --measure-fmax"
            elif out:
                problem = f"stdout before the stand-in: {out[:200]!r}"
            tally.reached(argv, "stand_in", problem)
        elif code == 0:
            problem = None
            out_dir = options.get("-o")
            if options.get("--sim", "golden") != "golden" or "--measure-fmax" in drawn["flags"]:
                problem = "finished without the stand-in"
            elif "--json" in drawn["flags"] and json.loads(out)["batch"] != drawn["rows"]:
                problem = f"batch {json.loads(out)['batch']} of {drawn['rows']} rows"
            elif "--json" not in drawn["flags"] and "cycles:" not in out:
                problem = f"stdout {out[:300]!r}"
            elif out_dir is not None and not (root / out_dir / "outputs.npz").is_file():
                problem = f"no {out_dir}/outputs.npz"
            tally.reached(argv, "completed", problem)
        else:
            tally.refusal(argv, code, out, err, _written(before, _tree(root, shared)))

    case()
    tally.finish(cases=700, refused=400, stand_in=15, completed=40)


# -- known bugs ----------------------------------------------------------------------------------

EMPTY_OUTPUT = "-o '' was taken as no -o (the default path was used; emit, run and prove " \
    "refuse it)"
MALFORMED = "a malformed run option (not swept) made every point invalid instead of a refusal"
#: ``{name: matches(kind, argv, what, written)}``: the problems the fuzzers found that are not
#: fixed yet; each has a strict xfail reproduction in test_known_bug
KNOWN_BUGS = {}


def _stand_in(*args, **kwargs):
    raise _Simulated


def _repro_empty_output_sweep(root, monkeypatch, request):
    from accelgen.explore import sweep as sweep_mod
    monkeypatch.setattr(sweep_mod, "connect", _stand_in)
    monkeypatch.setattr(sweep_mod, "_warm_tools", lambda metrics: None)
    return ["sweep", "mac", "--preset", "tiny", "--grid", "lanes=[1]", "--family", "ecp5",
            "-o", ""]


def _repro_empty_output_fit(root, monkeypatch, request):
    from accelgen.explore import estimate as est
    monkeypatch.setattr(est, "fit_models", _stand_in)
    _fit_stores(root)
    return ["estimate", "--fit", "good", "-o", ""]


def _old_store(root):
    from accelgen.explore.store import STORE_NAME, Store
    (root / "old").mkdir()
    with Store(root / "old" / STORE_NAME) as store:
        store.set_meta("block", "pim")


def _repro_store_sidecars_sweep(root, monkeypatch, request):
    _old_store(root)
    return ["sweep", "mac", "--grid", "lanes=[1]", "--family", "ecp5", "-o", "old"]


def _repro_store_sidecars_report(root, monkeypatch, request):
    _old_store(root)
    return ["sweep", "report", "old", "--objectives", "lut4"]


def _repro_store_sidecars_fit(root, monkeypatch, request):
    _old_store(root)
    return ["estimate", "--fit", "old"]


def _repro_sweep_malformed_option(root, monkeypatch, request):
    from accelgen.explore import sweep as sweep_mod
    monkeypatch.setattr(sweep_mod, "connect", _stand_in)
    monkeypatch.setattr(sweep_mod, "_warm_tools", lambda metrics: None)
    return ["sweep", "systolic", "--preset", "tiny", "--grid", "rows=[2]", "--family", "ecp5",
            "--gemm", "x", "-o", "out"]


def _repro_fit_foreign_sqlite(root, monkeypatch, request):
    import sqlite3
    with sqlite3.connect(root / "wrong_columns") as db:
        db.executescript("CREATE TABLE records (x); CREATE TABLE points (x); "
                         "CREATE TABLE meta (x)")
    db.close()
    return ["estimate", "--fit", "wrong_columns"]


def _model_with(root, path, value):
    model = json.loads(_shipped_model_text())
    node = model
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (root / "m.json").write_text(json.dumps(model))
    return ["estimate", "mac", "--preset", "tiny", "--model", "m.json"]


def _repro_model_coef(root, monkeypatch, request):
    return _model_with(root, ["models", "mac", "ecp5", "targets", "bram", "coef", 0], "x")


def _repro_model_holdout(root, monkeypatch, request):
    return _model_with(root, ["models", "mac", "ecp5", "targets", "bram", "holdout"], [1])


def _repro_model_range(root, monkeypatch, request):
    return _model_with(root, ["models", "mac", "ecp5", "ranges", "log:lanes"], [1])


def _repro_model_log_range(root, monkeypatch, request):
    # a log feature's range read back as the setting's numbers overflowed a float
    return _model_with(root, ["models", "mac", "ecp5", "ranges", "log:lanes"], [1e308, 1e308])


def _repro_run_late_hw_refusal(root, monkeypatch, request):
    example = request.getfixturevalue("mlp_example")
    return ["run", str(example.model), "--inputs", str(example.inputs), "--hw-preset",
            "systolic=tiny"]


def _run_stand_ins(monkeypatch):
    """The RTL build and synthesis of test_fuzz_run, so that a fixed bug does not start
    them."""
    from accelgen.fpga import flow
    from accelgen.generators import emit as emit_mod
    monkeypatch.setattr(emit_mod, "emit", _stand_in)
    monkeypatch.setattr(flow, "_synth", _stand_in)


def _repro_run_late_build_root(root, monkeypatch, request):
    example = request.getfixturevalue("mlp_example")
    _run_stand_ins(monkeypatch)
    return ["run", str(example.model), "--inputs", str(example.inputs), "--sim", "rtl",
            "--build-root", "file"]


def _repro_run_fmax_directory(root, monkeypatch, request):
    example = request.getfixturevalue("mlp_example")
    _run_stand_ins(monkeypatch)
    return ["run", str(example.model), "--inputs", str(example.inputs), "--measure-fmax",
            "--build-root", "file"]


#: one reproduction (a function of the case directory, monkeypatch and the pytest request
#: returning the argv) per known bug; the first argv of each is the one in the report
REPROS = {}
REASONS = {}


#: reproductions of bugs the fuzzers found that are fixed: each must stay a clean refusal
FIXED = {
    "empty-output-ignored": [_repro_empty_output_sweep, _repro_empty_output_fit],
    "store-sidecars": [_repro_store_sidecars_sweep, _repro_store_sidecars_report,
                       _repro_store_sidecars_fit],
    "sweep-malformed-option": [_repro_sweep_malformed_option],
    "fit-foreign-sqlite": [_repro_fit_foreign_sqlite],
    "model-entry-types": [_repro_model_coef, _repro_model_holdout, _repro_model_range],
    "model-log-range-overflow": [_repro_model_log_range],
    "run-late-hw-refusal": [_repro_run_late_hw_refusal],
    "run-late-build-root": [_repro_run_late_build_root],
    "run-fmax-directory-named-o": [_repro_run_fmax_directory],
}


@pytest.mark.slow
def test_every_known_bug_has_a_reproduction():
    assert set(REPROS) == set(KNOWN_BUGS) == set(REASONS)


@pytest.mark.slow
@pytest.mark.parametrize("repro", [
    pytest.param(repro, id=f"{name}-{repro.__name__.removeprefix('_repro_')}",
                 marks=pytest.mark.xfail(strict=True, reason=REASONS[name]))
    for name, repros in REPROS.items() for repro in repros])
def test_known_bug(repro, tmp_path_factory, capsys, monkeypatch, request):
    """The smallest command line of each problem the fuzzers found and KNOWN_BUGS lets
    through: each fails today (strict xfail); once a bug is fixed its test passes, which
    fails the run, so that its KNOWN_BUGS entry is removed with the fix."""
    root = _case_root(tmp_path_factory, monkeypatch, "known")
    argv = repro(root, monkeypatch, request)
    tally = _Tally("known bug", known=False)
    before = _tree(root)
    result = tally.run(argv, capsys)
    if result is not None:
        code, out, err = result
        tally.refusal(argv, code, out, err, _written(before, _tree(root)))
    assert not tally.problems and tally.counts["refused"] == 1, tally.problems


@pytest.mark.slow
@pytest.mark.parametrize("repro", [
    pytest.param(repro, id=f"{name}-{repro.__name__.removeprefix('_repro_')}")
    for name, repros in FIXED.items() for repro in repros])
def test_fixed_bug(repro, tmp_path_factory, capsys, monkeypatch, request):
    """A bug the fuzzers found, fixed: its command line is refused cleanly (exit 2, one
    line, nothing written)."""
    root = _case_root(tmp_path_factory, monkeypatch, "fixed")
    argv = repro(root, monkeypatch, request)
    tally = _Tally("fixed bug", known=False)
    before = _tree(root)
    result = tally.run(argv, capsys)
    assert result is not None
    code, out, err = result
    tally.refusal(argv, code, out, err, _written(before, _tree(root)))
    assert not tally.problems and tally.counts["refused"] == 1, tally.problems


# -- the figures ---------------------------------------------------------------------------------

#: ``{command: {cases, refused, reached, tracebacks, hangs, dirty, stand_in, completed,
#: skipped, warned, known_bugs, seconds, slowest, refusals}}`` of the fuzz tests above that ran
#: in this session (each also prints its ``FUZZ <command>: ...`` line). ``reached`` =
#: ``stand_in`` (the expensive step's stand-in was called) + ``completed`` (a cheap command
#: that ran to exit 0 for real); ``tracebacks`` and ``dirty`` include the ``known_bugs``
#: (counted by name); ``skipped``: valid prove cases too costly to elaborate, not run;
#: ``warned``: successful cases that printed a Python warning; ``refusals``: clean refusals by
#: the option their message names
FUZZ_FIGURES = {}
