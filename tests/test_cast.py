"""Block ``cast``: config validation, the golden model against the reference packages (every
BF16 code, FP32 rounding boundaries), the RTL against the golden model (Amaranth simulator,
exhaustive where it fits), cocotb on every preset, and FPGA builds."""

from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest
import universal_dtypes

from accelgen.formats import FLOAT_FORMATS, POSIT_FORMATS, PositFormat
from accelgen.generators.cast import PRESETS, TARGETS, CastConfig
from accelgen.generators.registry import REGISTRY
from accelgen.hdl.cast import Cast
from accelgen.numerics import ConfigError
from accelgen.sim.cocotb.tb_cast import boundary_codes
from accelgen.sim.golden import cast as golden
from accelgen.sim.golden.elements import code_values
from accelgen.sim.payload import payload_width
from accelgen.sim.pysim import run_stream

from support import SEED, check_selfchecked_build, simulate_passing

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")

SPEC = REGISTRY["cast"]
BF16_CODES = np.arange(1 << 16)


@pytest.mark.parametrize("kwargs, message", [
    ({"source": "fp64"}, "source: 'fp64' is not allowed; expected one of 'fp32', 'bf16'"),
    ({"target": "e4m4"}, "target: 'e4m4' is not allowed; expected one of 'e4m3', 'e5m2', "
                         "'e3m2', 'e2m3', 'e2m1', 'bf16', 'fp16', 'p4', 'p8', 'p16' (did you "
                         "mean 'e4m3'?)"),
    ({"target": "bf16"}, "target: 'bf16' is not allowed; expected a format other than the "
                         "source 'bf16'"),
    ({"saturate": 1}, "saturate: 1 is not allowed; expected true or false"),
    ({"target": "p8", "saturate": False}, "saturate: False is not allowed with posit target "
     "'p8'; posits never overflow (beyond maxpos rounds to maxpos), expected true"),
    ({"lanes": 65}, "lanes: 65 is not allowed; expected an integer from 1 to 64"),
    ({"pipeline": 3}, "pipeline: 3 is not allowed; expected an integer from 0 to 2"),
])
def test_invalid_config_message(kwargs, message):
    with pytest.raises(ConfigError) as info:
        CastConfig(**kwargs)
    assert str(info.value) == message


# -- golden model against the reference packages --------------------------------------------

def _same(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (np.isnan(x) & np.isnan(y)) | ((x == y) & (np.signbit(x) == np.signbit(y)))


def _ml_dtype(name):
    fmt = FLOAT_FORMATS[name]
    return np.dtype(getattr(ml_dtypes, fmt.ml_dtype, None) or fmt.ml_dtype)


def _float_reference(name, values, saturate):
    """ml_dtypes' cast of float32 ``values`` (one rounding from float32), clipped first when
    saturating; NaN into FP6/FP4 is +0 by the block's definition (ml_dtypes gives -0)."""
    dtype = _ml_dtype(name)
    fmt = FLOAT_FORMATS[name]
    if saturate:
        top = float(ml_dtypes.finfo(dtype).max)
        values = np.where(np.isnan(values), values, np.clip(values, -top, top))
    with np.errstate(over="ignore", invalid="ignore"):
        want = values.astype(np.float32).astype(dtype).astype(np.float64)
    if not fmt.has_nan:
        want = np.where(np.isnan(values), 0.0, want)
    return want


@pytest.mark.parametrize("saturate", [True, False])
@pytest.mark.parametrize("target", [t for t in TARGETS if t in FLOAT_FORMATS and t != "bf16"])
def test_every_bf16_code_into_floats(target, saturate):
    cfg = CastConfig(source="bf16", target=target, saturate=saturate)
    values = code_values(FLOAT_FORMATS["bf16"], BF16_CODES)
    got = code_values(FLOAT_FORMATS[target], golden.cast_codes(cfg, BF16_CODES))
    want = _float_reference(target, values, saturate)
    bad = np.flatnonzero(~_same(got, want))
    assert not bad.size, f"bf16 codes {BF16_CODES[bad[:4]]}: {got[bad[:4]]} != {want[bad[:4]]}"


def _posit5_midpoint_reference(values):
    """posit(4,1) by the standard's rounding, built independently: the rounding boundary
    between adjacent posit(4,1) codes c and c+1 is the posit(5,1) value of code 2c+1 (the bit
    string cut one bit later); ties to the even code; clamped to minpos/maxpos; 0 -> 0."""
    p4, p5 = POSIT_FORMATS["p4"], PositFormat("p5", 5, 1)
    ladder = code_values(p4, np.arange(1, 8))                   # positive codes 1..7
    mids = code_values(p5, 2 * np.arange(1, 7) + 1)             # between codes c and c+1
    out = []
    for v in values:
        if np.isnan(v) or np.isinf(v):
            out.append(8)
            continue
        if v == 0:
            out.append(0)
            continue
        a = abs(v)
        c = 1
        for j, mid in enumerate(mids):                           # mid between j+1 and j+2
            if a > mid or (a == mid and (j + 2) % 2 == 0):
                c = j + 2
        assert ladder[c - 1] > 0
        out.append((-c) & 15 if v < 0 else c)
    return np.array(out, np.int64)


@pytest.mark.parametrize("target", ["p4", "p8", "p16"])
@pytest.mark.parametrize("source", ["bf16", "fp32"])
def test_posits_against_references(source, target):
    """posit(8,0) and posit(16,1): universal-dtypes' casts from float32; posit(4,1): the
    midpoint construction above. BF16: every code; FP32: random codes and the boundaries."""
    cfg = CastConfig(source=source, target=target)
    if source == "bf16":
        codes = BF16_CODES
        values32 = (codes.astype(np.uint32) << 16).view(np.float32)
    else:
        rng = np.random.default_rng(4)
        codes = np.concatenate([rng.integers(0, 1 << 32, 20000), boundary_codes(cfg)])
        values32 = codes.astype(np.uint32).view(np.float32)
    got = golden.cast_codes(cfg, codes)
    if target == "p4":
        want = _posit5_midpoint_reference(values32.astype(np.float64))
    else:
        ref = {"p8": universal_dtypes.posit8e0, "p16": universal_dtypes.posit16e1}[target]
        with np.errstate(all="ignore"):
            want = values32.astype(ref).view(np.uint8 if target == "p8" else np.uint16)
    bad = np.flatnonzero(got != np.asarray(want, np.int64))
    assert not bad.size, f"codes {codes[bad[:4]]}: {got[bad[:4]]} != {np.asarray(want)[bad[:4]]}"


@pytest.mark.parametrize("saturate", [True, False])
@pytest.mark.parametrize("target", ["e4m3", "e5m2", "e2m1", "bf16", "fp16"])
def test_fp32_rounding_boundaries_into_floats(target, saturate):
    """Every exponent with significands at the tie, one below and one above, plus random
    codes: FP32 to the target in one rounding, as ml_dtypes casts float32."""
    cfg = CastConfig(source="fp32", target=target, saturate=saturate)
    rng = np.random.default_rng(6)
    codes = np.concatenate([boundary_codes(cfg), rng.integers(0, 1 << 32, 20000)])
    values = codes.astype(np.uint32).view(np.float32).astype(np.float64)
    got = code_values(FLOAT_FORMATS[target], golden.cast_codes(cfg, codes))
    want = _float_reference(target, values, saturate)
    bad = np.flatnonzero(~_same(got, want))
    assert not bad.size, f"fp32 codes {codes[bad[:4]]}: {got[bad[:4]]} != {want[bad[:4]]}"


def test_values_interface_refuses_inexact_values():
    cfg = PRESETS["default"]
    with pytest.raises(ValueError, match=r"^x: 0.1 is not a value of format bf16"):
        golden.cast(cfg, np.full((1, 4), 0.1))
    with pytest.raises(ValueError, match=r"^x: shape \(3,\) is not allowed"):
        golden.cast(cfg, np.ones(3))
    out = golden.cast(cfg, np.array([[1.0, -0.0, np.inf, np.nan]]))
    assert out["y"].tolist() == [[0x38, 0x80, 0x7E, 0x7F]]


# -- RTL against the golden model -------------------------------------------------------------

def _raw_words(cfg, rng, count):
    width = payload_width(cfg.input_fields)
    return [int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1)
            for _ in range(count)]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_rtl_matches_golden(preset):
    """Random values, then raw random words (every code possible), gaps and backpressure."""
    cfg = PRESETS[preset]
    rng = np.random.default_rng(SEED)
    words = golden.pack_inputs(cfg, **golden.random_inputs(cfg, rng, 150))
    words += _raw_words(cfg, rng, 150)
    want = golden.words(cfg, words)
    assert run_stream(Cast(cfg), words, len(want), seed=3, valid_prob=0.7,
                      ready_prob=0.7) == want


@pytest.mark.parametrize("target", ["e4m3", "p8", "e2m1"])
def test_rtl_every_bf16_code(target):
    """All 65,536 BF16 codes through the RTL (16 lanes per beat), non-saturating for FP8."""
    cfg = CastConfig(source="bf16", target=target, saturate=target != "e4m3", lanes=16,
                     pipeline=2)
    codes = np.random.default_rng(1).permutation(BF16_CODES).reshape(-1, 16)
    words = [sum(int(c) << (16 * lane) for lane, c in enumerate(row)) for row in codes]
    want = golden.words(cfg, words)
    assert run_stream(Cast(cfg), words, len(want), seed=1) == want


@pytest.mark.parametrize("pipeline", [0, 1, 2])
def test_rtl_latency_and_throughput(pipeline):
    """Back-to-back beats come out one per cycle, ``1 + pipeline`` cycles after they went in."""
    from amaranth.sim import Simulator
    cfg = CastConfig(source="fp32", target="p8", lanes=2, pipeline=pipeline)
    dut = Cast(cfg)
    words = _raw_words(cfg, np.random.default_rng(2), 12)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for n, word in enumerate(words + [None] * 6):
            ctx.set(dut.i.valid, word is not None)
            if word is not None:
                ctx.set(dut.i.payload.as_value(), word)
            _, _, o_valid, o_payload = await ctx.tick().sample(dut.o.valid,
                                                               dut.o.payload.as_value())
            if o_valid:
                seen.append((n, o_payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # a beat accepted at edge k is valid after edge k + latency - 1, which the sample taken
    # at the next edge (loop step k + latency) sees
    assert [n for n, _ in seen] == [k + cfg.latency for k in range(len(words))]
    assert [v for _, v in seen] == golden.words(cfg, words)


# -- cocotb and FPGA ----------------------------------------------------------------------------

@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_verilator_preset(preset, tmp_path):
    config = SPEC.presets[preset]
    np.savez(tmp_path / "in.npz", **golden.random_inputs(config, np.random.default_rng(1), 30))
    result = simulate_passing(SPEC, config, preset=preset, simulator="verilator", beats=120,
                              testcases=SPEC.testcases, inputs=tmp_path / "in.npz",
                              outputs=tmp_path / "out.npz", build_root=tmp_path / "build")
    assert set(result.testcases) == set(SPEC.testcases)
    with np.load(tmp_path / "in.npz") as given, np.load(tmp_path / "out.npz") as out:
        assert np.array_equal(out["y"], golden.cast(config, given["x"])["y"])


@pytest.mark.fpga
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_build_default(tmp_path, board):
    from accelgen.fpga.flow import build
    r = build(SPEC, SPEC.presets["default"], board, tmp_path, preset="default")
    check_selfchecked_build(r)


def test_presets_cover_every_target_kind():
    kinds = {type(p.target_format).__name__ for p in PRESETS.values()}
    assert kinds == {"FloatFormat", "PositFormat"}
    assert {"tiny", "default"} <= set(PRESETS)
    assert replace(PRESETS["default"], lanes=2).latency == 2
