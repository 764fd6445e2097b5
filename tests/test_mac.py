"""Block ``mac``: config validation, golden model against a loop reference written from the
spec, and RTL (Amaranth simulator) against the golden model with and without backpressure."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelgen.generators.mac import PRESETS, MACConfig
from accelgen.hdl.mac import MAC
from accelgen.numerics import ConfigError
from accelgen.sim.golden import mac as golden
from accelgen.sim.payload import payload_width
from accelgen.sim.pysim import run_stream

# -- config validation ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 0}, "lanes: 0 is not allowed; expected an integer from 1 to 64"),
    ({"lanes": "4"}, "lanes: '4' is not allowed; expected an integer from 1 to 64"),
    ({"multiplier": "fusd"}, "multiplier: 'fusd' is not allowed; expected one of 'plain', "
                             "'fused' (did you mean 'fused'?)"),
    ({"reduction": "sum"}, "reduction: 'sum' is not allowed; expected one of 'together', "
                           "'apart'"),
    ({"overflow": "clamp"}, "overflow: 'clamp' is not allowed; expected one of 'wrap', "
                            "'saturate'"),
    ({"pipeline": 6}, "pipeline: 6 is not allowed; expected an integer from 0 to 5"),
    ({"acc_width": 15}, "acc_width: 15 is not allowed; expected an integer from 16 to 48"),
    ({"modes": ()}, "modes: () is not allowed; expected a non-empty list of precision modes "
                    "such as ['s8s8', 's8s4']"),
    ({"modes": ("s8s8", "s8s8")}, "modes: ['s8s8', 's8s8'] lists a mode twice; each mode once"),
    ({"modes": ("s8s3",)}, "modes: 's8s3' has a 3-bit operand; operand widths must be one of "
                           "2, 4, 8"),
    ({"modes": ("q8s8",)}, "modes: 'q8s8' is not a precision mode; expected the formats of a "
                           "and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'"),
])
def test_invalid_config_message(kwargs, message):
    with pytest.raises(ConfigError) as info:
        MACConfig(**kwargs)
    assert str(info.value) == message


def test_from_dict_unknown_key_names_closest():
    with pytest.raises(ConfigError, match=r"^lane: unknown setting; allowed are modes, lanes, "
                                          r".*\(did you mean 'lanes'\?\)$"):
        MACConfig.from_dict({"lane": 2})


def test_modes_accept_comma_string_and_round_trip():
    cfg = MACConfig(modes="s8s8, s4s4", multiplier="fused")
    assert cfg.modes == ("s8s8", "s4s4")
    assert MACConfig.from_dict(cfg.to_dict()) == cfg
    assert MACConfig.from_dict(cfg.to_dict()).digest() == cfg.digest()


def test_presets_required_and_published_figures():
    assert {"tiny", "default"} <= set(PRESETS)
    fused = PRESETS["default"]
    # Bit Fusion figures for a lane with 8-bit maxima (from the issue / numerics.md).
    per_lane = {m: fused.products_per_lane(m) for m in fused.modes}
    assert per_lane == {"s8s8": 1, "u8s8": 1, "s8s4": 2, "s4s4": 4, "s8s2": 4, "s4s2": 8,
                        "s2s2": 16}
    assert fused.macs_per_cycle["s2s2"] == 16 * fused.lanes
    assert all(v == PRESETS["plain_mixed"].lanes
               for v in PRESETS["plain_mixed"].macs_per_cycle.values())


# -- golden model against a loop reference --------------------------------------------------


def _loop_reference(cfg, a, b, mode, clear, last):
    """Straight from the MACConfig docstring, in plain Python integers."""
    lo, hi = -(1 << (cfg.acc_width - 1)), (1 << (cfg.acc_width - 1)) - 1
    accs, err, out = [0] * cfg.accumulators, False, []
    for t in range(len(mode)):
        code = int(mode[t])
        ok = code < len(cfg.modes)
        lane_sums = [0] * cfg.lanes
        if ok:
            n = cfg.products_per_lane(code)
            for lane in range(cfg.lanes):
                lane_sums[lane] = sum(int(a[t, lane, k]) * int(b[t, lane, k]) for k in range(n))
        sums = [sum(lane_sums)] if cfg.reduction == "together" else lane_sums
        for i, s in enumerate(sums):
            v = (0 if clear[t] else accs[i]) + s
            if cfg.overflow == "saturate":
                v = min(hi, max(lo, v))
            else:
                v = ((v - lo) % (1 << cfg.acc_width)) + lo
            accs[i] = v
        err = (False if clear[t] else err) or not ok
        if last[t]:
            out.append((list(accs), err))
    return out


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("acc_width", [None, 17])
def test_golden_matches_loop_reference(preset, acc_width):
    cfg = PRESETS[preset]
    if acc_width:   # narrow accumulator: overflow policy matters on every few beats
        cfg = replace(cfg, acc_width=acc_width)
    rng = np.random.default_rng(7)
    args = golden.random_inputs(cfg, rng, 200, last_every=8)
    got = golden.mac(cfg, **args)
    want = _loop_reference(cfg, **args)
    assert got["acc"].tolist() == [w[0] for w in want]
    assert got["err"].tolist() == [w[1] for w in want]


def test_golden_directed_saturate_and_wrap():
    cfg = MACConfig(modes=("s8s8",), acc_width=16, overflow="saturate")
    a = np.full((3, 1, 1), -128)
    out = golden.mac(cfg, a, a, last=[True, True, True])
    assert out["acc"][:, 0].tolist() == [16384, 32767, 32767]
    out = golden.mac(replace(cfg, overflow="wrap"), a, a, last=[True, True, True])
    assert out["acc"][:, 0].tolist() == [16384, -32768, -16384]


def test_golden_invalid_mode_sets_err_until_clear():
    cfg = MACConfig(modes=("s8s8", "s8s4", "s4s4"), multiplier="fused")
    a = np.zeros((3, 1, 4), np.int64)
    a[:, 0, 0] = 3
    b = a.copy()
    out = golden.mac(cfg, a, b, mode=[3, 0, 0], clear=[True, False, True],
                     last=[False, True, True])
    assert out["acc"][:, 0].tolist() == [9, 9]
    assert out["err"].tolist() == [True, False]


def test_pack_unpack_round_trip_and_width():
    for cfg in PRESETS.values():
        args = golden.random_inputs(cfg, np.random.default_rng(3), 20)
        words = golden.pack_inputs(cfg, **args)
        assert max(words).bit_length() <= payload_width(cfg.input_fields)
        back = golden.unpack_inputs(cfg, words)
        assert golden.mac(cfg, **back)["acc"].tolist() == golden.mac(cfg, **args)["acc"].tolist()


# -- RTL against the golden model ------------------------------------------------------------


def _random_words(cfg, rng, beats):
    width = payload_width(cfg.input_fields)
    return [int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1)
            for _ in range(beats)]


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("gaps", [False, True], ids=["streaming", "backpressure"])
def test_rtl_matches_golden(preset, gaps):
    cfg = PRESETS[preset]
    seed = 11
    rng = np.random.default_rng(seed)
    words = golden.pack_inputs(cfg, **golden.random_inputs(cfg, rng, 120))
    words += _random_words(cfg, rng, 60)     # raw bits: unused slots, invalid mode codes
    expected = golden.words(cfg, words)
    prob = (0.6, 0.5) if gaps else (1.0, 1.0)
    got = run_stream(MAC(cfg), words, len(expected), seed=seed, valid_prob=prob[0],
                     ready_prob=prob[1])
    assert got == expected, f"preset {preset}, seed {seed}"


@pytest.mark.parametrize("pipeline", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_rtl_pipeline_and_overflow_variants(pipeline, overflow):
    cfg = replace(PRESETS["w4a8"], lanes=2, pipeline=pipeline, overflow=overflow, acc_width=18)
    rng = np.random.default_rng(pipeline)
    words = golden.pack_inputs(cfg, **golden.random_inputs(cfg, rng, 100, last_every=10))
    expected = golden.words(cfg, words)
    got = run_stream(MAC(cfg), words, len(expected), seed=pipeline, valid_prob=0.8,
                     ready_prob=0.7)
    assert got == expected


def _measure(cfg, beats):
    """(cycles the input stayed ready over ``beats`` back-to-back beats, cycles from the
    ``last`` beat's acceptance to ``o.valid``)."""
    dut = MAC(cfg)
    lasts = [False] * (beats - 1) + [True]
    words = golden.pack_inputs(cfg, **{**golden.random_inputs(cfg, np.random.default_rng(0),
                                                               beats), "last": lasts})
    result = {}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        accepted = cycles = 0
        for word in words:
            ctx.set(dut.i.payload.as_value(), word)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycles += 1
                if ready:
                    accepted += 1
                    break
        ctx.set(dut.i.valid, 0)
        result["beats_per_cycle"] = accepted / cycles
        latency = 0
        while not ctx.get(dut.o.valid):
            await ctx.tick()
            latency += 1
        result["latency"] = latency + 1   # the acceptance edge itself is cycle 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run_until(1e-8 * (4 * beats + 50))
    return result


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_rtl_latency_and_throughput_as_declared(preset):
    cfg = PRESETS[preset]
    measured = _measure(cfg, 16)
    assert measured == {"beats_per_cycle": 1.0, "latency": cfg.latency}


@pytest.mark.parametrize("multiplier", ["plain", "fused"])
@pytest.mark.parametrize("pipeline", [0, 1, 2, 3, 4, 5])
def test_rtl_latency_every_pipeline_depth(multiplier, pipeline):
    cfg = MACConfig(modes=("s8s8", "s4s4"), lanes=2, multiplier=multiplier, pipeline=pipeline,
                    reduction="apart")
    assert _measure(cfg, 8) == {"beats_per_cycle": 1.0, "latency": 1 + pipeline}


# Unsigned and mixed-sign operands of every width, where the fused bricks' per-slice
# signedness matters most; no preset carries these.
UNSIGNED_MIX = MACConfig(modes=("u8u8", "s8u4", "u4u4", "u2s2", "u4s8", "s2u8"), lanes=2,
                         multiplier="fused", reduction="apart", acc_width=24, pipeline=2)


@pytest.mark.parametrize("multiplier", ["plain", "fused"])
def test_rtl_unsigned_and_mixed_sign_modes(multiplier):
    cfg = replace(UNSIGNED_MIX, multiplier=multiplier)
    rng = np.random.default_rng(5)
    words = golden.pack_inputs(cfg, **golden.random_inputs(cfg, rng, 150))
    words += _random_words(cfg, rng, 50)
    expected = golden.words(cfg, words)
    got = run_stream(MAC(cfg), words, len(expected), seed=5, valid_prob=0.7, ready_prob=0.7)
    assert got == expected


def test_one_mode_build_has_no_mode_hardware():
    from amaranth.back import rtlil
    one = MACConfig(modes=("s8s8",), multiplier="fused")
    two = MACConfig(modes=("s8s8", "s4s4"), multiplier="fused")
    assert "mode" not in [f.name for f in one.input_fields]
    assert "mode" in [f.name for f in two.input_fields]
    text_one, text_two = rtlil.convert(MAC(one)), rtlil.convert(MAC(two))
    # a one-mode build has fixed brick wiring: no mode signal, register or case selection
    assert "mode" not in text_one
    assert "mode" in text_two
