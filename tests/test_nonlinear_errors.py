"""Golden models of the approximators against float64: every preset's declared bound, the
issue's accuracy targets, the sensitivity of those checks, and the pure constants module."""

import dataclasses
import json
import math

import numpy as np
import pytest

from accelgen import approx
from accelgen.cli import main
from accelgen.generators.activation import ERROR_BOUNDS as ACT_BOUNDS, ActivationConfig
from accelgen.generators.registry import REGISTRY
from accelgen.generators.softmax import ERROR_BOUNDS as SM_BOUNDS, SoftmaxConfig
from accelgen.numerics import ConfigError
from accelgen.sim.golden import activation as ga, softmax as gs
from accelgen.sim.reference import softmax_float

ACT = REGISTRY["activation"]
SM = REGISTRY["softmax"]


# -- declared bounds ---------------------------------------------------------------------------

@pytest.mark.parametrize("preset", list(ACT.presets))
def test_activation_preset_within_declared_bound(preset):
    stats = ga.errors(ACT.presets[preset])
    bound = ACT_BOUNDS[preset]
    assert stats["max_abs"] <= bound["max_abs"], stats
    assert stats["code_max"] <= bound["code_max"], stats
    assert stats["inputs"] == 1 << ACT.presets[preset].in_fmt.width


@pytest.mark.parametrize("preset", list(SM.presets))
def test_softmax_preset_within_declared_bound(preset):
    cfg = SM.presets[preset]
    stats = gs.errors(cfg, rows=300, seed=11)
    assert stats["max_abs"] <= SM_BOUNDS[preset]["max_abs"], stats
    assert stats["mean_abs"] <= SM_BOUNDS[preset]["mean_abs"], stats
    if cfg.output != "log2":
        assert stats["row_sum_max_dev"] <= stats["row_sum_bound"], stats


def test_every_preset_declares_a_bound():
    assert set(ACT_BOUNDS) == set(ACT.presets)
    assert set(SM_BOUNDS) == set(SM.presets)


# -- the targets -------------------------------------------------------------------------

def test_softmax_target_int16_logits_rows_of_128():
    """8-bit output from int16 logits at scale 2**-8, rows of 128: max <= 1 LSB, mean <= 0.25
    LSB, row sums within 1 +/- N * 2**-8 (published integer designs: 1.35-1.8 LSB max)."""
    cfg = SM.presets["default"]
    assert (cfg.in_format, cfg.in_scale, cfg.n_max, cfg.output) == ("s16", 2 ** -8, 128, "u8")
    for sigma in (0.5, 2.0, 8.0, 30.0):
        stats = gs.errors(cfg, x=gs.random_rows(cfg, np.random.default_rng(5), 100,
                                                sigma=sigma))
        assert stats["max_abs"] <= 1.0 and stats["mean_abs"] <= 0.25, (sigma, stats)
        assert stats["row_sum_max_dev"] <= 128 * 2 ** -8, (sigma, stats)


@pytest.mark.parametrize("function, scale", [("gelu", 1 / 32), ("silu", 1 / 16)])
def test_int8_gelu_silu_targets(function, scale):
    """int8 in/out: PWL <= 1 LSB max, full table 0 LSB from the correctly rounded code."""
    base = ActivationConfig(function=function, in_scale=scale, out_scale=scale)
    table = ga.errors(dataclasses.replace(base, backend="table"))
    pwl = ga.errors(dataclasses.replace(base, backend="pwl", segments=16,
                                        spacing="nonuniform"))
    assert table["code_max"] == 0 and table["max_abs"] <= 0.5
    assert pwl["max_abs"] <= 1.0 and pwl["code_max"] <= 1


def test_softmax_directed_rows_are_sane():
    """All equal rows give 1/N each; a one-hot row gives ~1 and ~0; all masked gives 0."""
    cfg = dataclasses.replace(SM.presets["default"], n_max=8)
    f = cfg.in_fmt
    y = gs.softmax(cfg, np.full((1, 8), 100))
    assert (y == 32).all()                                   # 256 / 8
    hot = np.full((1, 8), f.min)
    hot[0, 3] = f.max
    assert gs.softmax(cfg, hot).tolist() == [[0, 0, 0, 255, 0, 0, 0, 0]]
    masked = gs.softmax(cfg, np.zeros((1, 8), np.int64), mask=np.ones((1, 8), bool))
    assert (masked == 0).all()
    assert gs.softmax(cfg, np.array([[5]])).tolist() == [[255]]


# -- the checks can fail -------------------------------------------------------------------------

def test_a_coarse_pwl_breaks_the_bound():
    """Four uniform segments cannot hold GELU to 1 LSB: the bound check would catch it."""
    coarse = ActivationConfig(function="gelu", backend="pwl", segments=4, spacing="uniform")
    assert ga.errors(coarse)["max_abs"] > 1.0


def test_a_coarse_softmax_breaks_the_bound():
    """Few accumulator fraction bits and a short reciprocal table exceed the softmax bound."""
    cfg = dataclasses.replace(SM.presets["default"], acc_frac=6, recip_bits=3, newton=False)
    stats = gs.errors(cfg, rows=100)
    assert stats["max_abs"] > 1.0


def test_error_stats_measure_against_float64():
    """A golden model that is off by one code everywhere shows up as a bias of ~1 LSB."""
    cfg = ACT.presets["tiny"]
    x = np.arange(cfg.in_fmt.min, cfg.in_fmt.max + 1)
    ref = ga.float_reference(cfg, x)
    from accelgen.sim.reference import error_stats
    shifted = error_stats(ga.activation(cfg, x) + 1, ref)
    assert 0.9 < shifted["mean"] < 1.1 and shifted["max_abs"] > 1.0


def test_softmax_float_reference():
    p = softmax_float(np.array([0, 256, 512]), 2 ** -8, np.array([True, True, False]))
    e = math.e
    assert p[2] == 0 and abs(p[0] - 1 / (1 + e)) < 1e-15 and abs(p.sum() - 1) < 1e-15


# -- the pure constants ----------------------------------------------------------------------------

def test_floor_div_magic_is_exact():
    for divisor in (1, 3, 7, 178, 710, 1000):
        mult, shift = approx.floor_div_magic(divisor, 17)
        x = np.arange(0, 1 << 17, dtype=np.int64)
        assert np.array_equal((x * mult) >> shift, x // divisor), divisor


def test_dyadic_rounds_into_the_declared_bits():
    for ratio in (1e-7, 0.3, 1.0, 5.5, 2 ** -20 * 3):
        mult, shift = approx.dyadic(ratio, 16)
        assert 1 << 15 <= mult < 1 << 16
        assert abs(mult / 2 ** shift - ratio) <= 2 ** -(shift + 1) * 1.0000001


def test_pwl_fit_on_a_line_is_exact():
    targets = [3.25 * i - 7 for i in range(64)]
    pwl = approx.make_pwl(targets, -32, 4, "uniform", 8)
    assert [approx.pwl_eval(pwl, x) for x in range(-32, 32)] == \
           [int(math.floor(t + 0.5)) for t in targets]


def test_curvature_bases_put_segments_where_the_function_bends():
    cfg = ActivationConfig(function="gelu", backend="pwl", segments=16, spacing="nonuniform")
    bases = cfg.pwl.bases
    assert bases[0] == -128 and list(bases) == sorted(set(bases))
    widths = np.diff(list(bases) + [128])
    # GELU bends most near 0 and is nearly linear far from it: inner segments are narrower
    assert widths[len(widths) // 2] < widths[0] and widths[len(widths) // 2] < widths[-1]


def test_tables_are_reproducible():
    a = SoftmaxConfig()
    b = SoftmaxConfig.from_dict(json.loads(json.dumps(a.to_dict())))
    assert a.pow2_pwl == b.pow2_pwl and a.recip_table == b.recip_table


# -- config validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"function": "gleu"}, "function: 'gleu' is not allowed; expected one of 'gelu', 'silu', "
     "'sigmoid', 'tanh', 'exp', 'reciprocal', 'rsqrt' (did you mean 'gelu'?)"),
    ({"backend": "table", "in_format": "s12"}, "in_format: 's12' is not allowed with backend "
     "'table'; a full table takes inputs of at most 10 bits (use backend 'pwl' or 'ibert')"),
    ({"backend": "pwl", "spacing": "uniform", "segments": 12}, "segments: 12 is not allowed; "
     "uniform spacing needs a power of two from 2 to 256"),
    ({"backend": "ibert", "function": "silu"}, "backend: 'ibert' is not allowed for function "
     "'silu'; I-BERT defines integer polynomials for gelu, exp"),
    ({"in_scale": 0}, "in_scale: 0 is not allowed; expected a real number from 2**-126 to "
     "2**126 (the real value of one LSB), e.g. 0.03125"),
    ({"backend": "ibert", "in_scale": 4.0}, "in_scale: 4.0 is too coarse for i-GELU; expected "
     "at most 1.25086"),
    ({"out_zero_point": 200}, "out_zero_point: 200 is not allowed; expected an integer from "
     "-128 to 127"),
    ({"dsp": "yes"}, "dsp: 'yes' is not allowed; expected true or false"),
])
def test_activation_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ActivationConfig(**kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize("kwargs, message", [
    ({"in_format": "u8"}, "in_format: 'u8' is not allowed; logits are signed, e.g. 's8' or "
     "'s16'"),
    ({"n_max": 0}, "n_max: 0 is not allowed; expected an integer from 1 to 4096"),
    ({"exp": "ibert", "in_scale": 1.0}, "in_scale: 1.0 is too coarse for i-exp; expected less "
     "than 0.6931 (ln 2 must be more than one input code)"),
    ({"exp_segments": 3}, "exp_segments: 3 is not allowed; expected a power of two from 2 to "
     "256"),
    ({"output": "u4"}, "output: 'u4' is not allowed; expected one of 'u8', 's8', 'log2'"),
    ({"out_levels": 254}, "out_levels: 254 is not allowed; expected 256 (scale 1/256) or 255 "
     "(scale 1/255)"),
    ({"out_levels": 255.0}, "out_levels: 255.0 is not allowed; expected 256 (scale 1/256) or "
     "255 (scale 1/255)"),
    ({"output": "log2", "out_levels": 255}, "out_levels: 255 is not allowed with output "
     "'log2' (its codes are -log2 steps); expected 256"),
])
def test_softmax_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as err:
        SoftmaxConfig(**kwargs)
    assert str(err.value) == message


# -- CLI -----------------------------------------------------------------------------------------

def test_show_errors_json_and_plot(tmp_path, capsys):
    png = tmp_path / "gelu.png"
    assert main(["show", "activation", "--preset", "default", "--errors", "--plot", str(png),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["errors"]["within_bound"] is True
    assert data["errors"]["bound"] == ACT_BOUNDS["default"]
    assert data["errors"]["stats"]["max_abs"] <= 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_out_levels_255_codes_are_probability_times_255():
    """The u8 code of a row is the probability * ``out_levels`` rounded (worked by hand, on
    rows whose exact values are not near a rounding tie): seven equal logits are 1/7 each,
    255/7 = 36.43 -> 36 but 256/7 = 36.57 -> 37; four equal ones 63.75 -> 64; one alone
    255 (256 clamps to 255); s8 subtracts 128."""
    from accelgen.sim.golden.softmax import softmax
    cfg = dataclasses.replace(SM.presets["default"], out_levels=255)
    assert softmax(cfg, np.array([[5] * 7])).tolist() == [[36] * 7]
    assert softmax(dataclasses.replace(cfg, out_levels=256), np.array([[5] * 7])).tolist() \
        == [[37] * 7]
    assert softmax(cfg, np.array([[-3, -3, -3, -3]])).tolist() == [[64] * 4]
    assert softmax(cfg, np.array([[7]])).tolist() == [[255]]
    s8 = dataclasses.replace(cfg, output="s8")
    assert softmax(s8, np.array([[5] * 7])).tolist() == [[36 - 128] * 7]


def test_show_errors_text_for_softmax(capsys):
    assert main(["show", "softmax", "--preset", "tiny", "--errors"]) == 0
    out = capsys.readouterr().out
    assert "max |error|" in out and "(declared bound 1: PASS)" in out
    assert "max |row sum - 1|" in out


def test_show_errors_of_a_modified_config_has_no_bound(capsys):
    assert main(["show", "softmax", "--preset", "tiny", "--set", "n_max=4", "--errors",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["errors"]["bound"] is None and data["errors"]["within_bound"] is None


@pytest.mark.parametrize("argv, message", [
    (["show", "systolic", "--errors"], "accelgen: error: --errors: not allowed for block "
     "'systolic'; it computes exactly (no approximation error); blocks with error reports are "
     "mac, activation, softmax"),
    (["show", "softmax", "--plot", "/nonexistent/x.png"], "accelgen: error: --plot: "
     "'/nonexistent/x.png' is not allowed; its directory does not exist"),
])
def test_show_errors_bad_input(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == message
