"""Regression tests for the CLI's hardened edges: each case once ended in a traceback, a
two-line error, a file written on error, or a runaway. Now: exit 2 with one line on stderr
naming the setting, the value and what is allowed, and nothing written."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from accelgen.cli import main
from accelgen.outputs import ALLOWED_DIRECTORY


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv, message=None):
    """Run ``argv``; assert exit 2 with one ``accelgen: error:`` line (``message`` exactly
    when given, else containing nothing of a traceback); returns that line."""
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("accelgen: error: "), err
    if message is not None:
        assert lines[0] == f"accelgen: error: {message}"
    return lines[0]


# -- --config and --set values -----------------------------------------------------------------

def test_toml_dates_huge_integers_and_deep_nesting(capsys, tmp_path):
    dates = tmp_path / "d.toml"
    dates.write_text("bogus = 1979-05-27T07:32:00Z\n")
    refused(capsys, "show", "mac", "--config", dates, message="bogus: a date-time value is "
            "not allowed; expected numbers, strings, booleans, lists or tables")
    huge = tmp_path / "h.toml"
    huge.write_text("lanes = 1" + "0" * 5000 + "\n")
    refused(capsys, "show", "mac", "--config", huge, message=f"--config: {str(huge)!r} holds "
            "an integer of more than 4300 digits, which is not allowed; expected at most 64 "
            "bits")
    deep = tmp_path / "n.toml"
    deep.write_text("lanes = " + "[" * 3000 + "]" * 3000 + "\n")
    refused(capsys, "show", "mac", "--config", deep, message=f"--config: {str(deep)!r} nests "
            "values more than 16 levels deep, which is not allowed")
    refused(capsys, "show", "mac", "--set", "lanes=" + "[" * 3000 + "]" * 3000,
            message="--set: lanes=... nests values more than 16 levels deep, which is not "
                    "allowed")
    refused(capsys, "show", "mac", "--set", "lanes=1" + "0" * 5000,
            message="--set: lanes=... holds an integer of more than 4300 digits, which is not "
                    "allowed; expected at most 64 bits")
    refused(capsys, "show", "mac", "--set", "lanes=1979-05-27",
            message="lanes: a date value is not allowed; expected numbers, strings, booleans, "
                    "lists or tables")
    refused(capsys, "show", "mac", "--set", "lanes=" + "1" * 30,
            message="lanes: an integer of 97 bits is not allowed; expected at most 64 bits")


def test_config_empty_directory_and_unreadable(capsys, tmp_path):
    refused(capsys, "show", "mac", "--config", "",
            message="--config: '' is not allowed; expected the path of a TOML file")
    refused(capsys, "show", "mac", "--config", tmp_path,
            message=f"--config: {str(tmp_path)!r} is not a readable file")


# -- -o and --top --------------------------------------------------------------------------------

def test_output_directory_that_cannot_be_made(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    refused(capsys, "emit", "mac", "--preset", "tiny", "-o", blocker / "x",
            message=f"-o: {str(blocker / 'x')!r} is not allowed; the directory cannot be "
                    f"created (Not a directory); {ALLOWED_DIRECTORY}")
    refused(capsys, "emit", "mac", "--preset", "tiny", "-o", "",
            message="-o: '' is not allowed; expected a directory (use . for the current one)")
    long_name = tmp_path / ("d" * 300)
    line = refused(capsys, "emit", "mac", "--preset", "tiny", "-o", long_name)
    assert line.endswith(f"the directory cannot be created (File name too long); "
                         f"{ALLOWED_DIRECTORY}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert blocker.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_directory_not_writable(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    line = refused(capsys, "emit", "mac", "--preset", "tiny", "-o", ro / "x")
    assert "(Permission denied)" in line


@pytest.mark.parametrize("top, why", [
    ("module", "it is a Verilog keyword"), ("always", "it is a Verilog keyword"),
    ("wire", "it is a Verilog keyword"), ("logic", "it is a Verilog keyword"),
    ("clk", "it is the name of a port"), ("rst", "it is the name of a port")])
def test_top_refuses_keywords_and_port_names(capsys, tmp_path, top, why):
    refused(capsys, "emit", "mac", "--preset", "tiny", "--top", top, "-o", tmp_path / "o",
            message=f"--top: {top!r} is not allowed; {why}; expected another Verilog "
                    f"identifier")
    assert not (tmp_path / "o").exists()


def test_long_top_refused_before_the_directory_is_made(capsys, tmp_path):
    refused(capsys, "emit", "mac", "--preset", "tiny", "--top", "t" * 260, "-o", tmp_path / "o",
            message="--top: a name of 260 characters is not allowed; expected at most 200")
    assert not (tmp_path / "o").exists()


# -- emission: the .v/.json pair ----------------------------------------------------------------

def test_manifest_names_its_verilog_and_stale_temporaries_are_removed(capsys, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = out / f".mac.v.{dead}.abc123.tmp"
    stale.write_text("left by a killed run")
    live = out / f".mac.v.{os.getpid()}.def456.tmp"
    live.write_text("a live writer's")
    assert run(capsys, "emit", "mac", "--preset", "tiny", "-o", out)[0] == 0
    import hashlib
    manifest = json.loads((out / "mac.json").read_text())
    assert manifest["verilog_sha256"] == hashlib.sha256((out / "mac.v").read_bytes()).hexdigest()
    assert not stale.exists() and live.exists()


def test_interrupt_between_the_renames_never_pairs_old_and_new(tmp_path, monkeypatch):
    """A failure after the Verilog is renamed leaves no manifest beside it (the old one is
    removed first), never an old manifest beside new Verilog."""
    from accelgen import outputs as emit_module
    (tmp_path / "x.v").write_text("old v")
    (tmp_path / "x.json").write_text("old json")
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt
        return real_replace(src, dst)
    monkeypatch.setattr(emit_module.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        emit_module.write_pair(tmp_path / "x.v", "new v", tmp_path / "x.json", "new json")
    assert (tmp_path / "x.v").read_text() == "new v"
    assert not (tmp_path / "x.json").exists()
    assert not list(tmp_path.glob(".*.tmp"))


# -- show --plot -----------------------------------------------------------------------------

def test_plot_onto_a_directory_or_missing_directory(capsys, tmp_path):
    refused(capsys, "show", "activation", "--preset", "tiny", "--plot", tmp_path,
            message=f"--plot: {str(tmp_path)!r} is not allowed; expected the name of a PNG "
                    f"file to write")
    missing = tmp_path / "no" / "p.png"
    refused(capsys, "show", "activation", "--preset", "tiny", "--plot", missing,
            message=f"--plot: {str(missing)!r} is not allowed; its directory does not exist")
    assert sorted(tmp_path.iterdir()) == []


# -- sim --inputs / --outputs ------------------------------------------------------------------

@pytest.fixture
def npz(tmp_path):
    def make(name="in.npz", **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path
    return make


def test_inputs_checked_before_any_build(capsys, tmp_path, npz, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one = np.ones((2, 1, 1), np.int64)
    big = npz("big.npz", a=np.full((2, 1, 1), 2 ** 63 + 5, np.uint64), b=one)
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", big, "--no-check",
            message=f"--inputs: array 'a' holds {2 ** 63 + 5}, which is not allowed; expected "
                    f"values below 2**63")
    lone = npz("lone.npz", a=one)
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", lone,
            message=f"--inputs: {str(lone)!r} has no array 'b'; it needs a, b (optional: "
                    f"mode, clear, last, scale_a, scale_b)")
    text = tmp_path / "t.npz"
    text.write_text("a,b\n1,2\n")
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", text,
            message=f"--inputs: {str(text)!r} is not allowed; expected an .npz file (a zip "
                    f"archive of .npy arrays, as numpy.savez writes)")
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", tmp_path,
            message=f"--inputs: {str(tmp_path)!r} is a directory; expected an .npz file")
    objects = npz("obj.npz", a=np.array([object()], dtype=object), b=one)
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", objects,
            message="--inputs: array 'a' has dtype object, which is not allowed; expected "
                    "integers or booleans")
    good = npz("good.npz", a=one, b=one)
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", good, "--outputs", good,
            message=f"--outputs: {str(good)!r} is not allowed; it is the --inputs file, which "
                    f"would be overwritten")
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", good, "--outputs", tmp_path,
            message=f"--outputs: {str(tmp_path)!r} is not allowed; expected the name of an "
                    f".npz file to write")
    assert not (tmp_path / "build").exists()


def test_inputs_too_large_refused_from_the_header(capsys, tmp_path, monkeypatch):
    """A small compressed file that would decompress into more than the limit is refused
    from its headers, before it is loaded."""
    from accelgen.sim import inputs
    monkeypatch.setattr(inputs, "MAX_INPUT_ELEMENTS", 1000)
    path = tmp_path / "z.npz"
    np.savez_compressed(path, a=np.zeros((1001, 1, 1), np.int64), b=np.zeros((1, 1, 1), np.int64))
    assert path.stat().st_size < 10_000
    loaded = []
    monkeypatch.setattr(np, "load", lambda *a, **k: loaded.append(a) or None)
    refused(capsys, "sim", "mac", "--preset", "tiny", "--inputs", path,
            message=f"--inputs: {str(path)!r} holds 1002 elements, which is not allowed; "
                    f"expected at most 1000")
    assert not loaded


# -- runaways: bounded before they start ----------------------------------------------------

def test_simulation_cost_bounded(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(capsys, "sim", "systolic", "--preset", "tiny", "--gemm", "65535x16x65535",
            message="--gemm: 65535x16x65535 takes at least M*K*N/(rows*cols) = 17179344900 "
                    "sim cycles is not allowed; expected at most 50000000 (--allow-large lifts "
                    "the limit)")
    refused(capsys, "sim", "mac", "--preset", "tiny", "--cycles", "100000000",
            message="--cycles: 6 testcases of about 4 x 100000000 cycles = 2400000000 sim "
                    "cycles is not allowed; expected at most 50000000 (--allow-large lifts the "
                    "limit)")
    assert not (tmp_path / "build").exists()


# -- messages ----------------------------------------------------------------------------------

def test_argparse_errors_name_the_subcommand_once(capsys, tmp_path):
    refused(capsys, "emit", "mac", message="emit: the following arguments are required: "
                                           "-o/--output")
    refused(capsys, "frobnicate", message="argument command: invalid choice: 'frobnicate' "
            "(choose from 'list', 'show', 'emit', 'sim', 'synth', 'build', 'sweep', "
            "'estimate', 'run', 'prove', 'faults')")


def test_broken_pipe_is_quiet(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m accelgen.cli show systolic --preset tiny "
                          f"| head -c 10", shell=True, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_sigterm_ends_the_command_with_status_130(tmp_path):
    """SIGTERM during a command: exit 130, one line, no traceback."""
    proc = subprocess.Popen([sys.executable, "-c",
                             "import time, sys\nfrom accelgen import cli\n"
                             "cli.cmd_list = lambda args: time.sleep(30)\n"
                             "sys.exit(cli.main(['list']))"],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            start_new_session=True)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip() == "accelgen: interrupted"


def test_show_leaves_no_unused_elaboratable_warning():
    proc = subprocess.run([sys.executable, "-W", "error::Warning", "-m", "accelgen.cli", "show",
                           "mac", "--preset", "tiny"], capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    assert proc.returncode == 0 and "UnusedElaboratable" not in proc.stderr, proc.stderr


def test_memory_bits_bounded_before_elaboration(capsys, tmp_path):
    """``acc_depth=65536, cols=32, acc_width=48`` once elaborated for over ten minutes into
    12 GB; now refused at once, and ``--allow-large`` lets a config past the limit through
    (checked with ``show``, which does not elaborate)."""
    settings = ["--set", "acc_depth=65536", "--set", "cols=32", "--set", "acc_width=48"]
    refused(capsys, "emit", "systolic", "--preset", "tiny", *settings, "-o", tmp_path / "o",
            message="acc_depth x cols x acc_width + 2 x k_max x cols x b_width = 100671488 "
                    "memory bits is not allowed; expected at most 4194304 (--allow-large lifts "
                    "the limit)")
    assert not (tmp_path / "o").exists()
    code, out, err = run(capsys, "show", "systolic", "--preset", "tiny", *settings,
                         "--allow-large", "--json")
    assert code == 0 and json.loads(out)["config"]["acc_depth"] == 65536
