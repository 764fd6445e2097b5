"""accelgen estimate: features, a fit that must recover a known power law from a sweep store,
the shipped model's predictions, and bad input."""

import json
import math

import pytest

from accelgen.cli import main
from accelgen.explore import estimate as est
from accelgen.explore.store import STORE_NAME, Store, record_key
from accelgen.generators.registry import REGISTRY

MAC = REGISTRY["mac"]


def test_features_of_a_config():
    config = MAC.resolve("tiny", values={"lanes": 4, "modes": ["s8s8", "s4s4"]})
    f = est.features(config)
    assert f["log:lanes"] == math.log2(5)
    assert f["len:modes"] == 2 and f["modes~s4s4"] == 1 and "modes~s2s2" not in f
    assert f["multiplier=plain"] == 1 and "multiplier=fused" not in f
    assert f["log:cost.peak_macs_per_cycle"] == math.log2(1 + config.peak_macs_per_cycle)


def _law(lanes, pipeline):
    """A resource count that is a power law of two settings (what the model can express)."""
    return 3 * (1 + lanes) ** 1.5 * (1 + pipeline) ** 0.5 - 1


def _synthetic_store(path):
    with Store(path / STORE_NAME) as store:
        for lanes in (1, 2, 3, 4, 6, 8):
            for pipeline in (0, 1, 2, 3):
                config = MAC.resolve("tiny", values={"lanes": lanes, "pipeline": pipeline})
                value = _law(lanes, pipeline)
                record = {"metric": "resources", "status": "ok",
                          "values": {"lut4": value, "ff": 2 * value}, "reason": "",
                          "log": "", "host": "h", "seconds": 1.0, "tools": {}}
                key = record_key("mac", config.to_dict(), "resources", {"family": "ecp5"}, {})
                store.put(key, block="mac", digest=config.digest(), config=config.to_dict(),
                          context={"family": "ecp5"}, record=record)


def test_fit_recovers_a_power_law_and_predicts_it(tmp_path, capsys):
    _synthetic_store(tmp_path)
    model = tmp_path / "model.json"
    assert main(["estimate", "--fit", str(tmp_path), "-o", str(model), "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)["fitted"]["mac"]["ecp5"]
    assert fitted["lut4"]["points"] == 6 and fitted["lut4"]["mape"] < 2.0
    # a point between the fitted ones
    assert main(["estimate", "mac", "--preset", "tiny", "--set", "lanes=5", "--set",
                 "pipeline=2", "--model", str(model), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["estimates"]["lut4"]["value"] == pytest.approx(_law(5, 2), rel=0.03)
    assert out["estimates"]["ff"]["value"] == pytest.approx(2 * _law(5, 2), rel=0.03)
    assert out["notes"] == []
    # outside the fitted range: said so
    assert main(["estimate", "mac", "--preset", "tiny", "--set", "lanes=32", "--model",
                 str(model)]) == 0
    assert "note: lanes = 32 is outside the fitted 1..8 (extrapolating)" in \
        capsys.readouterr().out
    # the refit keeps the shipped blocks it did not refit
    shipped = est.load_model()
    written = json.loads(model.read_text())
    assert set(shipped["models"]) <= set(written["models"])


@pytest.mark.parametrize("name", list(REGISTRY))
def test_shipped_model_predicts_every_block(name):
    spec = REGISTRY[name]
    estimates, notes = est.predict(est.load_model(), name, spec.presets["default"], "ecp5")
    assert {"lut4", "ff", "fmax_mhz"} <= set(estimates)
    assert all(e["value"] >= 0 for e in estimates.values())
    assert estimates["lut4"]["holdout_mape"] is not None


BAD = [
    (["estimate"], "estimate: expected a block"),
    (["estimate", "mac", "--fit", "x"], "estimate: 'mac' is not allowed with --fit"),
    (["estimate", "--fit", "nowhere"], "--fit: 'nowhere' is not allowed"),
    (["estimate", "mac", "--family", "ice41"], "--family: the model has no fit for mac on "
                                               "'ice41'"),
    (["estimate", "mac", "--model", "nope.json"], "--model: 'nope.json' is not allowed"),
    (["estimate", "mac", "-o", "m.json"], "-o: allowed with --fit only"),
    (["estimate", "mac", "--set", "lanes=0"], "lanes: 0 is not allowed"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"accelgen: error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def test_bad_files_are_one_line_and_left_alone(tmp_path, capsys):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "text.sqlite").write_text("not a database at all, just text" * 10)
    import sqlite3
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = [(["estimate", "mac", "--model", str(tmp_path / "list.json")],
              "--model: ", "(not a model"),
             (["estimate", "--fit", str(tmp_path / "text.sqlite"), "-o",
               str(tmp_path / "m.json")], "--fit: ", "expected a sweep store"),
             (["estimate", "--fit", str(tmp_path / "other.sqlite"), "-o",
               str(tmp_path / "m.json")], "--fit: ", "lacks the sweep tables")]
    for argv, start, part in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"accelgen: error: {start}") and part in err, err
        assert err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


#: configs near the shipped model's training sweeps but on none of their grid points
OFF_GRID = [("mac", "default", {"lanes": 3, "pipeline": 2, "modes": ["s8s8", "s4s4"]}),
            ("activation", "default", {"function": "silu", "segments": 16, "lanes": 3}),
            ("softmax", "default", {"n_max": 64, "exp_segments": 16}),
            ("cast", "default", {"source": "fp32", "target": "e5m2", "lanes": 3}),
            ("pim", "tiny", {"banks": 4, "columns": 24}),
            ("systolic", "tiny", {"rows": 3, "cols": 6})]


@pytest.mark.fpga
@pytest.mark.parametrize("block, preset, values", OFF_GRID, ids=[b for b, _, _ in OFF_GRID])
def test_shipped_model_against_synthesis(block, preset, values, tmp_path):
    """The shipped model's LUT4 and FF estimates of a config it was not fitted to, against
    yosys: within half. (Off the training grid the boosted trees, which hold a setting's
    effect only at the values they saw, miss by more than their held-out error: lanes=3
    between 2 and 4 was 25-35 % over on LUT4 for mac and activation when this was written,
    the ridge blocks 2-10 %.)"""
    from accelgen.fpga.flow import synth
    spec = REGISTRY[block]
    config = spec.resolve(preset, values=values)
    estimates, _ = est.predict(est.load_model(), block, config, "ecp5")
    report = synth(spec, config, "ecp5", tmp_path)
    for target, key in (("lut4", "LUT4"), ("ff", "FF")):
        actual, guess = report.resources[key], estimates[target]["value"]
        assert abs(guess - actual) <= 0.5 * actual, (target, guess, actual)
