"""The accelgen CLI: list/show/emit, config resolution, and bad input (one line, exit 2,
nothing written)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from accelgen.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list(capsys):
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    data = json.loads(out)
    assert {"tiny", "default"} <= set(data["mac"]["presets"])


def test_show_json_reports_derived_values_and_layout(capsys):
    code, out, _ = run(capsys, "show", "mac", "--preset", "tiny", "--set", "pipeline=2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["config"]["pipeline"] == 2
    assert data["derived"]["latency"] == 3
    assert (data["streams"]["i"]["dir"], data["streams"]["o"]["dir"]) == ("in", "out")
    fields = {f["name"]: f for f in data["streams"]["i"]["fields"]}
    assert (fields["a"]["offset"], fields["a"]["width"]) == (0, 8)
    assert (fields["b"]["offset"], fields["b"]["width"]) == (8, 8)


def test_show_gemm_answers_from_the_cycle_model(capsys):
    """``show systolic --gemm`` prints the model's cycles without simulating; the one-tile
    16x16x16 on 16x16 is 80 cycles (see test_systolic_cycles.py for the RTL's word on it)."""
    code, out, _ = run(capsys, "show", "systolic", "--preset", "16x16", "--gemm", "16x16x16",
                       "--json")
    assert code == 0
    model = json.loads(out)["model"]
    assert (model["cycles"], model["steps"], model["dataflow"]) == (80, 16, "os")
    assert model["scalesim_cycles"] == 2 * 16 + 16 + 16 - 2
    code, out, _ = run(capsys, "show", "systolic", "--gemm", "8x300x8", "--dataflow", "ws",
                       "--allow-large")
    assert code == 2
    code, out, _ = run(capsys, "show", "systolic", "--gemm", "8x64x8", "--dataflow", "ws")
    assert code == 0 and "cycle model: 8x64x8 in ws" in out


@pytest.mark.parametrize("argv, message", [
    (["show", "mac", "--gemm", "4x4x4"], "--gemm: not allowed for block mac; it applies to "
                                         "systolic"),
    (["show", "systolic", "--dataflow", "ws"], "--dataflow: allowed in accelgen show only "
                                               "together with --gemm"),
    (["show", "systolic", "--gemm", "4x4"], "--gemm: '4x4' is not allowed; expected MxKxN"),
    (["show", "pim", "--mode", "overlap"], "--mode: allowed in accelgen show only together "
                                           "with --gemv"),
    (["show", "pim", "--preset", "tiny", "--gemv", "64x64"], "--gemv: 64x64 is not allowed"),
    (["show", "pim", "--gemv", "8x8x8"], "--gemv: '8x8x8' is not allowed; expected NxK")])
def test_show_model_options_refused_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_config_file_then_set_override(capsys, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('lanes = 3\nmodes = ["s8s8", "s4s4"]\nmultiplier = "fused"\n')
    code, out, _ = run(capsys, "show", "mac", "--preset", "tiny", "--config", str(toml),
                       "--set", "lanes=2", "--json")
    assert code == 0
    cfg = json.loads(out)["config"]
    assert (cfg["lanes"], cfg["modes"], cfg["acc_width"]) == (2, ["s8s8", "s4s4"], 24)


def test_emit_is_byte_identical(capsys, tmp_path):
    for d in ("one", "two"):
        assert run(capsys, "emit", "mac", "--preset", "w4a8", "-o", str(tmp_path / d))[0] == 0
    for name in ("mac.v", "mac.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    manifest = json.loads((tmp_path / "one" / "mac.json").read_text())
    assert manifest["generator"] == "mac" and manifest["preset"] == "w4a8"
    assert manifest["derived"]["macs_per_cycle"] == {"s8s8": 4, "s8s4": 8, "s8s2": 16}
    assert {p["name"] for p in manifest["ports"]} == {
        "clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid",
        "o__ready"}
    assert manifest["tools"]["amaranth"].startswith("0.5")
    assert not list((tmp_path / "one").glob(".*tmp"))    # atomic writes leave no temp files


BAD = [
    (["emit", "mca", "-o", "{out}"], "block: 'mca' is not a known block; allowed are mac, "
                                     "systolic, activation, softmax, cast, pim (did you mean "
                                     "'mac'?)"),
    (["emit", "mac", "--preset", "tinny", "-o", "{out}"],
     "--preset: 'tinny' is not a preset of mac; allowed are tiny, default, int8, w4a8, "
     "plain_mixed, fp8, fp4, bf16, mxfp8, xrnpe (did you mean 'tiny'?)"),
    (["emit", "mac", "--set", "lanes=0", "-o", "{out}"],
     "lanes: 0 is not allowed; expected an integer from 1 to 64"),
    (["emit", "mac", "--set", "lane=2", "-o", "{out}"], "lane: unknown setting; allowed are "
     "modes, lanes, multiplier, reduction, accumulate, acc_width, overflow, pipeline, block, "
     "acc_check (did you mean 'lanes'?)"),
    (["emit", "mac", "--set", "lanes", "-o", "{out}"],
     "--set: 'lanes' is not allowed; expected key=value, e.g. --set lanes=4"),
    (["emit", "mac", "--set", "modes=['s8s8','s8s9']", "-o", "{out}"],
     "modes: 's8s9' has a 9-bit operand; operand widths must be one of 2, 4, 8"),
    (["emit", "mac", "--config", "{bad_toml}", "-o", "{out}"], None),
    (["emit", "mac", "--config", "{missing}", "-o", "{out}"], None),
    (["synth", "mac", "--family", "ice41", "-o", "{out}"], None),
    (["build", "mac", "--board", "icebraker", "-o", "{out}"], None),
    (["sim", "mac", "--sim", "modelsim"], None),
    (["sim", "mac", "--inputs", "{missing}"], None),
    (["sim", "mac", "--cycles", "0"], "--cycles: 0 is not allowed; expected at least 1"),
    (["frobnicate"], None),
    (["emit", "mac", "--top", "../escape", "-o", "{out}"], "--top: '../escape' is not "
     "allowed; expected a Verilog identifier (letters, digits and _, not starting with a digit)"),
    (["emit", "mac", "--top", "bad name", "-o", "{out}"], None),
    (["sim", "mac", "--seed", "-1"], "--seed: -1 is not allowed; expected 0 to 2**32 - 1"),
    (["sim", "mac", "--inputs", "{float_npz}"], None),
    (["sim", "mac", "--preset", "tiny", "--inputs", "{mode_npz}"], None),
    (["sim", "mac", "--preset", "tiny", "--inputs", "{good_npz}", "--outputs", "{out}/x/o.npz"],
     None),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a[:4]) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(capsys, tmp_path, argv, message):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("lanes = = 3\n")
    out_dir = tmp_path / "out"
    one = np.ones((2, 1, 1), np.int64)
    np.savez(tmp_path / "float.npz", a=one * 1.5, b=one)
    np.savez(tmp_path / "mode.npz", a=one, b=one, mode=[0, 1])    # tiny has no mode field
    np.savez(tmp_path / "good.npz", a=one, b=one)
    subs = {"out": str(out_dir), "bad_toml": str(bad_toml), "missing": str(tmp_path / "no.x"),
            "float_npz": str(tmp_path / "float.npz"), "mode_npz": str(tmp_path / "mode.npz"),
            "good_npz": str(tmp_path / "good.npz")}
    code, out, err = run(capsys, *[a.format(**subs) for a in argv])
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("accelgen: error: ")
    if message:
        assert err.strip() == f"accelgen: error: {message}"
    assert not out_dir.exists()


def test_emit_refuses_a_file_as_output_directory(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep")
    code, out, err = run(capsys, "emit", "mac", "-o", str(target))
    assert code == 2 and out == ""
    assert err.strip() == (f"accelgen: error: -o: {str(target)!r} is not allowed; it exists and "
                           f"is not a directory (expected a directory, or a path where one can "
                           f"be created)")
    assert target.read_text() == "keep"


def test_console_script_exit_status(tmp_path):
    exe = [sys.executable, "-m", "accelgen.cli"]
    bad = subprocess.run([*exe, "emit", "mac", "--set", "lanes=100", "-o", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip() == ("accelgen: error: lanes: 100 is not allowed; expected an "
                                  "integer from 1 to 64")


@pytest.mark.fpga
@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_build_main_job_end_to_end(capsys, tmp_path, board):
    """The README's main job on the tiny preset: cocotb proof, harness, P&R, bitstream."""
    out = tmp_path / "b"
    code, text, err = run(capsys, "build", "mac", "--preset", "tiny", "--board", board,
                          "-o", str(out))
    assert code == 0, err
    assert re.search(r"cocotb vs golden model\s+PASS", text), text
    assert re.search(r"harness self-check \(sim\)\s+PASS", text), text
    assert "Fmax (MHz)" in text and "LUT4" in text
    if board == "ulx3s-85f":    # the harness reset's DCCA puts it on a global network
        assert re.search(r"routing clock net check_rst using global \d+",
                         (out / "top.tim").read_text())
    code, text, err = run(capsys, "build", "mac", "--preset", "tiny", "--board", board,
                          "-o", str(out), "--skip-sim", "--json")
    data = json.loads(text)
    assert code == 0 and data["verification"] is None
    assert data["build"]["fmax_mhz"] > 0 and data["build"]["selfcheck_passed"]
    assert (out / data["build"]["bitstream"].split("/")[-1]).stat().st_size > 0


# -- sim systolic: --gemm, --dataflow ---------------------------------------------------------

SYS_BAD = [
    (["sim", "systolic", "--gemm", "12x0x3"],
     "--gemm: '12x0x3' is not allowed; expected MxKxN, three positive integers, e.g. 64x64x64"),
    (["sim", "systolic", "--gemm", "abc"],
     "--gemm: 'abc' is not allowed; expected MxKxN, three positive integers, e.g. 64x64x64"),
    (["sim", "systolic", "--preset", "tiny", "--gemm", "4x4x4", "--dataflow", "ws"],
     "--dataflow: 'ws' is not allowed; allowed are 'os' (the dataflows this config builds)"),
    (["sim", "systolic", "--preset", "tiny", "--gemm", "4x17x4"],
     "--gemm: '4x17x4' is not allowed in os (err 2: k beyond k_max); allowed are M and N from "
     "1 to 65535, K from 1 to k_max=16"),
    (["sim", "systolic", "--preset", "8x8", "--gemm", "600x100x4", "--dataflow", "ws"],
     "--gemm: '600x100x4' is not allowed in ws (err 3: results beyond the accumulator "
     "memory); allowed are M and N from 1 to 65535, K from 1 to k_max=256, and in ws M <= "
     "acc_depth=256 when K > rows=8"),
    (["sim", "systolic", "--gemm", "70000x1x1"], None),
    (["sim", "mac", "--gemm", "4x4x4"],
     "--gemm: not allowed for block mac; it applies to systolic"),
    (["sim", "mac", "--dataflow", "os"],
     "--dataflow: not allowed for block mac; it applies to systolic"),
    (["sim", "systolic", "--gemm", "4x4x4", "--inputs", "{good_npz}"], None),
    (["sim", "systolic", "--preset", "tiny", "--set", "dataflows=['os','ws']", "--dataflow",
      "ws", "--inputs", "{tall_npz}"],
     "--inputs: a (17 x 3) . (3 x 2) product is not allowed in ws; it is err 3 (results "
     "beyond the accumulator memory)"),
]


@pytest.mark.parametrize("argv, message", SYS_BAD, ids=[" ".join(a[1:6]) for a, _ in SYS_BAD])
def test_sim_gemm_bad_input_exit_2_nothing_built(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "good.npz", a=np.ones((3, 3), np.int64), b=np.ones((3, 2), np.int64))
    np.savez(tmp_path / "tall.npz", a=np.ones((17, 3), np.int64), b=np.ones((3, 2), np.int64))
    subs = {"good_npz": str(tmp_path / "good.npz"), "tall_npz": str(tmp_path / "tall.npz")}
    code, out, err = run(capsys, *[a.format(**subs) for a in argv])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    if message:
        assert err.strip() == f"accelgen: error: {message}"
    assert not (tmp_path / "build").exists()


@pytest.mark.cocotb
def test_sim_systolic_gemm_and_inputs_end_to_end(capsys, tmp_path, monkeypatch):
    """``--gemm 5x7x3 --dataflow ws --json``, the text table, and an ``--inputs`` round trip
    with a preload ``c``, on one build of tiny with both dataflows."""
    monkeypatch.chdir(tmp_path)
    base = ["sim", "systolic", "--preset", "tiny", "--set", "dataflows=['os','ws']"]
    code, out, err = run(capsys, *base, "--gemm", "5x7x3", "--dataflow", "ws", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["passed"] and data["testcases"] == {"gemm": True}
    gemm = data["gemm"]
    assert (gemm["shape"], gemm["dataflow"], gemm["macs"]) == ("5x7x3", "ws", 105)
    assert 0 < gemm["utilization"] <= 1 and gemm["check"] == "passed"
    assert gemm["utilization"] == pytest.approx(105 / (4 * gemm["cycles"]))

    code, out, err = run(capsys, *base, "--gemm", "8x8x8")
    assert code == 0, err
    assert re.search(r"shape\s+8x8x8", out) and re.search(r"dataflow\s+os", out), out
    assert re.search(r"utilization\s+\d+\.\d %", out) and re.search(r"check\s+PASS", out), out

    rng = np.random.default_rng(3)
    a, b = rng.integers(-128, 128, (5, 9)), rng.integers(-128, 128, (9, 5))
    c = rng.integers(-(1 << 20), 1 << 20, (5, 5))     # preload: NB*M = 3*5 <= acc_depth 16
    np.savez(tmp_path / "in.npz", a=a, b=b, c=c)
    code, out, err = run(capsys, *base, "--dataflow", "ws", "--inputs", "in.npz",
                         "--outputs", "out.npz", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["testcases"] == {"user_inputs": True}
    ui = data["user_inputs"]
    assert ui["check"] == "passed" and ui["preload"] and ui["shape"] == "5x9x5"
    with np.load(tmp_path / "out.npz") as got:
        np.testing.assert_array_equal(got["y"], a @ b + c)
        assert int(got["err"]) == 0 and int(got["macs"]) == 5 * 9 * 5
