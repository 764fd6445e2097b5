"""Config validation against hostile input (fast tier): booleans that are only ``True`` or
``False``, canonical format and mode spellings, every field checked whatever the back-end,
bounded real scales, and one-line messages that name the setting for any wrong type.

Every config that validates must also elaborate; configs large enough to make that slow are
skipped (more than 8 lanes, more than 16 PEs, or a memory/FIFO deeper than 1024 entries).
"""

import dataclasses
import itertools
import json
import math
import re
import typing

import numpy as np
import pytest
from amaranth.back import rtlil

from accelgen.cli import main
from accelgen.generators.activation import SCALE_MAX, SCALE_MIN, ActivationConfig
from accelgen.generators.base import Config, check_bool, check_real
from accelgen.generators.mac import MACConfig
from accelgen.generators.registry import REGISTRY
from accelgen.generators.systolic import SystolicConfig
from accelgen.hdl.activation import Activation
from accelgen.numerics import ConfigError, IntFormat
from accelgen.sim.golden import activation as golden
from accelgen.sim.pysim import run_streams

#: the end of MACConfig's "not a precision mode" message
FLOAT_MODES_HINT = ("; or one or two of e4m3, e5m2, e3m2, e2m3, e2m1, bf16, fp16, p4, p8, p16, "
                    "mxe4m3, mxe5m2, mxe3m2, mxe2m3, mxe2m1, mxi8 (e.g. 'e4m3', 'e4m3e5m2')")

#: every registered block's config class (the property test below covers each field)
CONFIGS = {name: spec.config_cls for name, spec in REGISTRY.items()}


def _message(cls, data):
    with pytest.raises(ConfigError) as info:
        cls.from_dict(data)
    return str(info.value)


def _run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. booleans are True or False only --------------------------------------------------------

@pytest.mark.parametrize("cls, field, value", [
    (ActivationConfig, "dsp", 1), (ActivationConfig, "dsp", 0), (ActivationConfig, "dsp", 1.0),
    (ActivationConfig, "dsp", 0.0), (ActivationConfig, "dsp", "true"),
    (ActivationConfig, "dsp", None), (SystolicConfig, "requant", 1),
    (SystolicConfig, "requant", 0.0), (SystolicConfig, "requant", "false"),
])
def test_booleans_refuse_numbers_and_strings(cls, field, value):
    assert _message(cls, {field: value}) == (f"{field}: {value!r} is not allowed; expected true "
                                             f"or false")


def test_a_boolean_setting_has_one_digest_per_value():
    assert ActivationConfig(dsp=True).digest() == ActivationConfig.from_dict({"dsp": True}).digest()
    assert ActivationConfig(dsp=False).digest() != ActivationConfig(dsp=True).digest()
    assert check_bool("x", False) is False
    with pytest.raises(ConfigError, match=r"^x: 1 is not allowed; expected true or false$"):
        check_bool("x", 1)


def test_check_real():
    assert check_real("r", 3, 1, 4) == 3.0 and isinstance(check_real("r", 3, 1, 4), float)
    for bad in (True, float("nan"), float("inf"), "2", None, 0.5, 5):
        with pytest.raises(ConfigError, match=r"^r: .* is not allowed; expected a real number "
                                              r"from 1 to 4$"):
            check_real("r", bad, 1, 4)


# -- 2. canonical format and mode spellings ----------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("s08", "fmt: 's08' is not allowed; expected 's8' (widths are written without leading "
            "zeros)"),
    ("u016", "fmt: 'u016' is not allowed; expected 'u16' (widths are written without leading "
             "zeros)"),
    ("s0", "fmt: 's0' is not allowed; an integer format is 1 to 62 bits wide, e.g. 's8' or "
           "'u4'"),
    ("s63", "fmt: 's63' is not allowed; an integer format is 1 to 62 bits wide, e.g. 's8' or "
            "'u4'"),
    ("s" + "9" * 5000, None),       # no int() of 5000 digits (Python refuses > 4300)
    *[(t, "fmt: {!r} is not an integer format; expected 's' or 'u' followed by a width, e.g. "
          "'s8' or 'u4'") for t in ("s8\n", " s8", "s 8", "s+8", "S8", "s\u0668", "s-8", "")],
])
def test_format_names_are_canonical(text, message):
    with pytest.raises(ConfigError) as info:
        IntFormat.parse(text, param="fmt")
    if message is not None:
        assert str(info.value) == message.format(text)
    assert str(info.value).startswith("fmt: ") and "\n" not in str(info.value)


def test_canonical_formats_still_parse():
    assert [IntFormat.parse(t) for t in ("s1", "u8", "s16", "u62")] == [
        IntFormat(1, True), IntFormat(8, False), IntFormat(16, True), IntFormat(62, False)]


@pytest.mark.parametrize("cls, data, message", [
    (ActivationConfig, {"in_format": "s08"}, "in_format: 's08' is not allowed; expected 's8' "
     "(widths are written without leading zeros)"),
    (ActivationConfig, {"out_format": "u08"}, "out_format: 'u08' is not allowed; expected 'u8' "
     "(widths are written without leading zeros)"),
    (ActivationConfig, {"in_format": "s99"}, "in_format: 's99' is not allowed; expected a "
     "format of 2 to 16 bits, e.g. 's8' or 'u16'"),
    (ActivationConfig, {"in_format": "s17"}, "in_format: 's17' is not allowed; expected a "
     "format of 2 to 16 bits, e.g. 's8' or 'u16'"),
    (MACConfig, {"modes": ["s08s8"]}, "modes: 's08s8' is not a precision mode; expected the "
     "formats of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'"
     + FLOAT_MODES_HINT),
    (MACConfig, {"modes": ["s8s08"]}, "modes: 's8s08' is not a precision mode; expected the "
     "formats of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'"
     + FLOAT_MODES_HINT),
    (MACConfig, {"modes": ["s8s8\n"]}, "modes: 's8s8\\n' is not a precision mode; expected "
     "the formats of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'"
     + FLOAT_MODES_HINT),
    (SystolicConfig, {"modes": ["s08s8"]}, "modes: 's08s8' is not a precision mode; expected "
     "the formats of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'"
     + FLOAT_MODES_HINT),
])
def test_non_canonical_names_in_configs(cls, data, message):
    assert _message(cls, data) == message


# -- 3. every field is checked whatever the back-end -------------------------------------------

@pytest.mark.parametrize("backend", ["table", "pwl", "ibert"])
@pytest.mark.parametrize("data, message", [
    ({"segments": 1000000000}, "segments: 1000000000 is not allowed; expected an integer from 2 "
     "to 256"),
    ({"segments": 1}, "segments: 1 is not allowed; expected an integer from 2 to 256"),
    ({"segments": "16"}, "segments: '16' is not allowed; expected an integer from 2 to 256"),
    ({"pwl_frac": 25}, "pwl_frac: 25 is not allowed; expected an integer from 0 to 24"),
    ({"mult_bits": 7}, "mult_bits: 7 is not allowed; expected an integer from 8 to 24"),
    ({"spacing": "even"}, "spacing: 'even' is not allowed; expected one of 'uniform', "
     "'nonuniform'"),
    ({"dsp": 1}, "dsp: 1 is not allowed; expected true or false"),
])
def test_unused_settings_are_checked_with_every_backend(backend, data, message):
    assert _message(ActivationConfig, {"backend": backend, **data}) == message


@pytest.mark.parametrize("function", ["gelu", "exp"])
@pytest.mark.parametrize("backend", ["table", "pwl", "ibert"])
@pytest.mark.parametrize("spacing", ["uniform", "nonuniform"])
def test_defaults_are_valid_for_every_backend(function, backend, spacing):
    ActivationConfig(function=function, backend=backend, spacing=spacing)


@pytest.mark.parametrize("data, message", [
    ({"backend": "pwl", "spacing": "nonuniform", "segments": 128}, "segments: 128 is not "
     "allowed; nonuniform spacing needs from 2 to 64 segments"),
    ({"backend": "pwl", "spacing": "uniform", "segments": 8, "in_format": "s2"}, "segments: 8 "
     "is not allowed; uniform spacing needs a power of two from 2 to 4 (in_format 's2' has 4 "
     "codes)"),
    ({"backend": "pwl", "spacing": "nonuniform", "segments": 5, "in_format": "u2"}, "segments: 5 "
     "is not allowed; nonuniform spacing needs from 2 to 4 segments (in_format 'u2' has 4 "
     "codes)"),
])
def test_pwl_narrows_segments_and_says_why(data, message):
    assert _message(ActivationConfig, data) == message


def test_pwl_only_settings_pass_with_other_backends():
    # unused, in the generic range, but not what pwl would take: fine for table and ibert
    for backend in ("table", "ibert"):
        ActivationConfig(backend=backend, spacing="uniform", segments=200)


# -- 4. real scales: a documented finite range, narrowed by ibert ------------------------------

@pytest.mark.parametrize("field", ["in_scale", "out_scale"])
@pytest.mark.parametrize("value", [1e-300, 5e-324, 1e300, 0, -0.03125, 2.0 ** -127, 2.0 ** 127,
                                   10 ** 40, float("nan"), float("inf"), -float("inf"), True,
                                   "0.03125", None, [0.03125]])
@pytest.mark.parametrize("backend", ["table", "pwl", "ibert"])
def test_scales_outside_the_range(field, value, backend):
    assert _message(ActivationConfig, {"backend": backend, field: value}) == (
        f"{field}: {value!r} is not allowed; expected a real number from 2**-126 to 2**126 (the "
        f"real value of one LSB), e.g. 0.03125")


def test_scale_range_constants():
    assert (SCALE_MIN, SCALE_MAX) == (2.0 ** -126, 2.0 ** 126)
    assert ActivationConfig(in_scale=1).in_scale == 1.0          # an int is taken as a float
    assert ActivationConfig(in_scale=1).digest() == ActivationConfig(in_scale=1.0).digest()


@pytest.mark.parametrize("data, message", [
    ({"function": "gelu", "in_scale": 2.0 ** -32}, "in_scale: 2.3283064365386963e-10 is too "
     "fine for backend 'ibert' with function 'gelu'; the i-GELU polynomial would exceed 62 "
     "bits (use an in_scale of at least 2**-29)"),
    ({"function": "gelu", "in_scale": 2.0}, "in_scale: 2.0 is too coarse for i-GELU; expected "
     "at most 1.25086"),
    ({"function": "exp", "in_scale": 2.0 ** 32}, "in_scale: 4294967296.0 is too coarse for "
     "i-exp; expected less than 0.6931 (ln 2 must be more than one input code)"),
    ({"function": "gelu", "in_scale": 2.0 ** -20, "out_scale": 2.0 ** 32}, "out_scale: "
     "4294967296.0 is not allowed with backend 'ibert' and in_scale 9.5367431640625e-07; the "
     "output shift would be 84 bits, at most 62 are allowed (use a smaller out_scale)"),
    ({"function": "exp", "in_scale": 2.0 ** -32}, "in_scale: 2.3283064365386963e-10 is too "
     "fine for backend 'ibert' with mult_bits 16; the scaled polynomial would exceed 62 bits "
     "(use a coarser in_scale or fewer mult_bits)"),
])
def test_ibert_narrows_the_scales_naming_both_settings(data, message):
    assert _message(ActivationConfig, {"backend": "ibert", **data}) == message


# Each back-end at the ends of the scale range (and inside it), on 6-bit formats so that the RTL
# runs over every input code. A config either validates, then it elaborates, its golden model
# matches the RTL and ``accelgen show --errors`` reports finite errors, or it is refused with a
# message naming a scale (the ibert back-end narrows the range).
_ENDS = (SCALE_MIN, SCALE_MAX)
_BACKENDS = {
    "table": dict(function="gelu", backend="table", in_format="s6", out_format="s6"),
    "table_recip": dict(function="reciprocal", backend="table", in_format="u6",
                        out_format="u6"),
    "pwl_uniform": dict(function="gelu", backend="pwl", spacing="uniform", segments=8,
                        in_format="s6", out_format="s6"),
    "pwl_nonuniform": dict(function="tanh", backend="pwl", spacing="nonuniform", segments=8,
                           in_format="s6", out_format="s6"),
    "pwl_rsqrt": dict(function="rsqrt", backend="pwl", spacing="nonuniform", segments=8,
                      in_format="u6", out_format="u6"),
    "ibert_gelu": dict(function="gelu", backend="ibert", in_format="s6", out_format="s16"),
    "ibert_exp": dict(function="exp", backend="ibert", in_format="s6", out_format="u16"),
}
# ibert narrows both scales; these are near the ends of its ranges (out_scale's depends on
# in_scale and mult_bits)
_IBERT_IN = {"ibert_gelu": (2.0 ** -29.5, 1.25), "ibert_exp": (2.0 ** -20, 0.69)}
_IBERT_OUT = (2.0 ** -32, 2.0 ** 32)


def _variants(name):
    """``(in_scale, out_scale, mult_bits)`` to try."""
    if name not in _IBERT_IN:
        return list(itertools.product(_ENDS, _ENDS + (1 / 16,), (16,)))
    return list(itertools.product(_ENDS + _IBERT_IN[name], _ENDS + _IBERT_OUT + (1 / 16,),
                                  (8, 24)))


@pytest.mark.parametrize("name", sorted(_BACKENDS))
def test_every_backend_at_the_ends_of_the_scale_range(name, capsys):
    built = set()
    for in_scale, out_scale, mult_bits in _variants(name):
        data = {**_BACKENDS[name], "in_scale": in_scale, "out_scale": out_scale,
                "mult_bits": mult_bits}
        sets = sum((["--set", f"{k}={json.dumps(v)}"] for k, v in data.items()), [])
        try:
            cfg = ActivationConfig.from_dict(data)
        except ConfigError as err:
            text = str(err)
            assert name in _IBERT_IN, f"{name}: {text}"
            # the message names the scale and what narrows it (the other scale, the back-end)
            assert text.startswith(("in_scale: ", "out_scale: ")), text
            assert ("in_scale " in text if text.startswith("out_scale") else
                    any(w in text for w in ("'ibert'", "i-GELU", "i-exp"))), text
            code, _, stderr = _run_cli(capsys, "show", "activation", "--preset", "tiny", *sets)
            assert (code, stderr) == (2, f"accelgen: error: {err}\n")
            continue
        built |= {("in", in_scale), ("out", out_scale)}
        rtlil.convert(Activation(cfg))
        x = np.array(list(cfg.codes), np.int64).reshape(-1, 1)
        words = golden.pack_inputs(cfg, x, np.zeros(len(x), bool))
        expected = golden.words(cfg, words)
        got, _ = run_streams(Activation(cfg), {"i": words}, {"o": len(words)},
                             max_cycles=50 * len(words) + 200)
        assert got["o"] == expected, f"{name}: {data}"
        code, out, _ = _run_cli(capsys, "show", "activation", "--preset", "tiny", "--errors",
                                "--json", *sets)
        assert code == 0, f"{name}: {data}"
        stats = json.loads(out)["errors"]["stats"]
        assert math.isfinite(stats["max_abs"]) and math.isfinite(stats["mean"])
    # both ends of each (narrowed) range build
    ins, outs = (_IBERT_IN[name], _IBERT_OUT) if name in _IBERT_IN else (_ENDS, _ENDS)
    assert built >= {("in", ins[0]), ("in", ins[1]), ("out", outs[0]), ("out", outs[1])}
    if name not in _IBERT_IN:
        assert len(built) == 5      # every pair


# -- 5. wrong types and list entries name the setting ------------------------------------------

@pytest.mark.parametrize("cls, data, message", [
    (MACConfig, {"modes": [{"a": 1}]}, "modes: {'a': 1} is not a precision mode; expected the "
     "formats of a and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'"
     + FLOAT_MODES_HINT),
    (SystolicConfig, {"modes": [{"a": 1}]}, "modes: [{'a': 1}] is not allowed; expected a "
     "non-empty list of names such as ['s8s8', 's4s4']"),
    (SystolicConfig, {"dataflows": ["os", {}]}, "dataflows: ['os', {}] is not allowed; "
     "expected a non-empty list of names such as ['os', 'ws']"),
    (MACConfig, {"modes": ["s99999999999s8"]}, "modes: 's99999999999s8' has a 99999999999-bit "
     "operand; operand widths must be one of 2, 4, 8"),
    (SystolicConfig, {"modes": ["s8s99999999999"]}, "modes: 's8s99999999999' has a "
     "99999999999-bit operand; operand widths must be one of 2, 4, 8"),
    (MACConfig, {"modes": [f"{a}{b}" for a in ("s8", "u8", "s4", "u4", "s2", "u2")
                           for b in ("s8", "u8", "s4")]},
     "modes: ['s8s8', 's8u8', 's8s4', 'u8s8', 'u8u8', 'u8s4', 's4s8', 's4u8', 's4s4', 'u4s8', "
     "'u4u8', 'u4s4', 's2s8', 's2u8', 's2s4', 'u2s8', 'u2u8', 'u2s4'] lists 18 modes; at most "
     "16 are allowed"),
    (SystolicConfig, {"modes": ["s8s8", "u8s8", "s4s4", "s8s4", "u4s4", "s4s8", "u8u8", "u4u4",
                                "s8u8"]},
     "modes: ['s8s8', 'u8s8', 's4s4', 's8s4', 'u4s4', 's4s8', 'u8u8', 'u4u4', 's8u8'] lists 9 "
     "modes; at most 8 are allowed"),
    (ActivationConfig, {"lanes": [1]}, "lanes: [1] is not allowed; expected an integer from 1 "
     "to 16"),
    (ActivationConfig, {"in_format": None}, "in_format: None is not an integer format; "
     "expected 's' or 'u' followed by a width, e.g. 's8' or 'u4'"),
    (SystolicConfig, {"rows": "4"}, "rows: '4' is not allowed; expected an integer from 1 to 32"),
    (MACConfig, {"multiplier": {}}, "multiplier: {} is not allowed; expected one of 'plain', "
     "'fused'"),
])
def test_wrong_types_name_the_setting(cls, data, message):
    assert _message(cls, data) == message


def test_cli_inline_table_in_a_list(capsys):
    for block in ("mac", "systolic"):
        code, _, err = _run_cli(capsys, "show", block, "--set", "modes=[{a=1}]")
        assert code == 2 and err.startswith("accelgen: error: modes: "), err
        assert err.count("\n") == 1 and "unhashable" not in err


# -- 6. property: hostile values for every field -----------------------------------------------

HOSTILE = [None, True, False, 1.0, -1, 0, 1, 2, 16, 10 ** 30, float("nan"), float("inf"), "",
           "x", "s08", " s8", "s8s8", [], {}, [{}], [1], ["s8s8"], ["os", "os"], 5e-324, 1e300,
           2.0 ** -32, 2.0 ** 32, 2.0 ** -126, 2.0 ** 126]


def _slow_to_elaborate(cfg):
    d = cfg.to_dict()
    return (d.get("lanes", 1) > 8 or d.get("rows", 1) * d.get("cols", 1) > 16
            or max(d.get(k, 0) for k in ("k_max", "acc_depth", "a_depth", "n_max")) > 1024)


_ELABORATED = set()


@pytest.mark.parametrize("block, field", [
    (block, f.name) for block, cls in CONFIGS.items() for f in dataclasses.fields(cls)])
def test_hostile_values_build_or_name_the_field(block, field):
    cls, built = CONFIGS[block], []
    for value in HOSTILE:
        try:
            cfg = cls.from_dict({field: value})
        except ConfigError as err:
            text = str(err)
            assert text.startswith(f"{field}: ") and "\n" not in text, (field, value, text)
            continue
        built.append(value)
        assert cls.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
        if _slow_to_elaborate(cfg) or cfg.digest() in _ELABORATED:
            continue
        rtlil.convert(REGISTRY[block].build(cfg))
        _ELABORATED.add(cfg.digest())
    # None, dicts (but for a nested config's table of settings), NaN and infinities never pass
    hint = typing.get_type_hints(cls)[field]
    nested = isinstance(hint, type) and issubclass(hint, Config)
    assert not any(v is None or isinstance(v, dict) and not nested
                   or isinstance(v, float) and not math.isfinite(v) for v in built), built


# -- softmax ----------------------------------------------------------------------------------

SOFTMAX = REGISTRY["softmax"]


@pytest.mark.parametrize("field", ["newton", "mask"])
@pytest.mark.parametrize("value", [1, 0, 1.0, 0.0, "true"])
def test_softmax_booleans_refuse_numbers(field, value):
    with pytest.raises(ConfigError, match=rf"^{field}: {re.escape(repr(value))} is not allowed; "
                                          r"expected true or false$"):
        dataclasses.replace(SOFTMAX.presets["tiny"], **{field: value})


def test_softmax_exp_frac_limit_names_the_exponent():
    with pytest.raises(ConfigError, match=r"^exp_frac: 14 is not allowed with exp 'table'; "
                                          r"expected 4 to 12 \(a table of 2\*\*exp_frac entries; "
                                          r"exp 'pwl' takes up to 16\)$"):
        dataclasses.replace(SOFTMAX.presets["tiny"], exp="table", exp_frac=14)
    dataclasses.replace(SOFTMAX.presets["tiny"], exp="pwl", exp_frac=14)


def test_softmax_ibert_refuses_scales_its_product_cannot_hold():
    """Below about 3.4e-7 the i-exp product z * mult no longer fits 63 bits: the golden model
    overflowed there (OverflowError at 2**-40; 7 log2 steps of error at 2**-24)."""
    base = SOFTMAX.presets["ibert"]
    ok = dataclasses.replace(base, in_scale=2.0 ** -21)
    assert SOFTMAX.golden_model().errors(ok, rows=20)["max_abs"] < 1
    for scale in (2.0 ** -22, 2.0 ** -24, 2.0 ** -40):
        with pytest.raises(ConfigError, match=r"^in_scale: .* is too fine for exp 'ibert'; the "
                                              r"i-exp product z \* mult would exceed 63 bits "
                                              r"\(use an in_scale of at least 3\.37e-07\)$"):
            dataclasses.replace(base, in_scale=scale)
