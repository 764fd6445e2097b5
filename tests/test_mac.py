"""Block ``mac``: config validation, golden model against a loop reference written from the
spec, and RTL (Amaranth simulator) against the golden model with and without backpressure
(fast tier); the emitted Verilog in cocotb on Verilator and Icarus (``cocotb`` marker) and
the manifest's packing against the golden model's; yosys / nextpnr builds (``fpga`` marker)."""

import json
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from accelgen.fpga.family import FAMILIES
from accelgen.fpga.harness import expected as harness_expected
from accelgen.generators.emit import emit
from accelgen.generators.mac import PRESETS, MACConfig
from accelgen.generators.registry import REGISTRY
from accelgen.hdl.mac import MAC
from accelgen.numerics import ConfigError
from accelgen.sim.cocotb.manifest import Manifest
from accelgen.sim.golden import mac as golden
from accelgen.sim.golden import elements as golden_elements, mac_errors
from accelgen.sim.payload import payload_width
from accelgen.sim.pysim import run_stream
from accelgen.sim.runner import run_emitted, simulate

from support import (RESOURCE_KEYS, SEED, check_selfchecked_build, explain,
                     false_manifest_is_caught, needs_icarus, simulate_passing)

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
    ({"pipeline": 8}, "pipeline: 8 is not allowed; expected an integer from 0 to 7"),
    ({"acc_width": 15}, "acc_width: 15 is not allowed; expected an integer from 16 to 48"),
    ({"modes": ()}, "modes: () is not allowed; expected a non-empty list of precision modes "
                    "such as ['s8s8', 's8s4'] or ['e4m3', 'bf16']"),
    ({"modes": ("s8s8", "s8s8")}, "modes: ['s8s8', 's8s8'] lists a mode twice; each mode once"),
    ({"modes": ("s8s3",)}, "modes: 's8s3' has a 3-bit operand; operand widths must be one of "
                           "2, 4, 8"),
    ({"modes": ("q8s8",)}, "modes: 'q8s8' is not a precision mode; expected the formats of a "
                           "and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'; or one or "
                           "two of e4m3, e5m2, e3m2, e2m3, e2m1, bf16, fp16, p4, p8, p16, "
                           "mxe4m3, mxe5m2, mxe3m2, mxe2m3, mxe2m1, mxi8 (e.g. 'e4m3', "
                           "'e4m3e5m2')"),
    ({"modes": ("fp32",)}, "modes: 'fp32' is not a precision mode; expected the formats of a "
                           "and b run together, e.g. 's8s8', 'u8s8', 's8s4', 's2s2'; or one or "
                           "two of e4m3, e5m2, e3m2, e2m3, e2m1, bf16, fp16, p4, p8, p16, "
                           "mxe4m3, mxe5m2, mxe3m2, mxe2m3, mxe2m1, mxi8 (e.g. 'e4m3', "
                           "'e4m3e5m2')"),
    ({"modes": ("e4m3",), "accumulate": "int"},
     "accumulate: 'int' cannot carry mode 'e4m3'; expected 'exact' or 'fp32' when a mode is "
     "not an integer mode"),
    ({"modes": ("e4m3",), "accumulate": "kulisch"},
     "accumulate: 'kulisch' is not allowed; expected one of 'int', 'exact', 'fp32'"),
    ({"modes": ("e4m3",), "acc_width": 40},
     "acc_width: 40 is not allowed; expected an integer from 32 to 32"),
    ({"modes": ("e4m3",), "accumulate": "exact", "acc_width": 36},
     "acc_width: 36 is not allowed; expected an integer from 37 to 101"),
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


@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if not PRESETS[p].element_lane))
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


@pytest.mark.parametrize("preset", ["default", "bf16", "mxfp8"])
def test_one_edge_reset_at_every_phase(preset):
    """A reset of one clock edge at each of ``latency + 6`` consecutive cycles of a stream:
    the beats after it come out exactly, from a cleared accumulator. The pipelines reset only
    the control fields (data registers have no reset, for the iCE40 DSPs); a control field
    left out, such as the fp32 accumulator's ``add``, writes a stale sum after the reset."""
    from accelgen.sim.pysim import run_streams
    cfg = PRESETS[preset]
    rng = np.random.default_rng(3)
    first = golden.pack_inputs(cfg, **golden.random_inputs(cfg, rng, 40))
    # the first group after the reset does not clear: it adds to the reset accumulator
    args = golden.random_inputs(cfg, rng, 12)
    args["clear"] = np.asarray(args["clear"]).copy()
    args["clear"][0] = False
    second = golden.pack_inputs(cfg, **args)
    want = golden.words(cfg, second)
    for at in range(4, 4 + cfg.latency + 6):
        out, _ = run_streams(MAC(cfg), {"i": first}, {"o": 10 ** 6},
                             reset_at=(at, {"i": second}, {"o": len(want)}))
        assert out["o"] == want, f"preset {preset}, reset at {at}"


@pytest.mark.parametrize("pipeline", [0, 1, 2, 3, 4, 5, 6, 7])
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
@pytest.mark.parametrize("pipeline", [0, 1, 2, 3, 4, 5, 6, 7])
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


@pytest.mark.parametrize("sa, sb", [(False, False), (True, False), (False, True),
                                    (True, True), ("signal", "signal"), ("signal", True),
                                    (False, "signal")])
def test_fused_brick_every_operand_pair(sa, sb):
    """The 2-bit x 2-bit brick of the fused multiplier against plain integer products, for
    sign flags that are constants (every mode agrees) or signals (the mode decides)."""
    from amaranth.hdl import Module, Signal

    from accelgen.hdl.mac import _brick
    m = Module()
    a2, b2 = Signal(2), Signal(2)
    flags = {n: Signal(name=n) if f == "signal" else f for n, f in (("sa", sa), ("sb", sb))}
    prod = _brick(m, a2, flags["sa"], b2, flags["sb"], name="brick")
    cases = [(a, b, fa, fb) for a in range(4) for b in range(4)
             for fa in ((0, 1) if sa == "signal" else (int(sa),))
             for fb in ((0, 1) if sb == "signal" else (int(sb),))]
    got = []

    async def bench(ctx):
        for a, b, fa, fb in cases:
            ctx.set(a2, a)
            ctx.set(b2, b)
            for name, value in (("sa", fa), ("sb", fb)):
                if isinstance(flags[name], Signal):
                    ctx.set(flags[name], value)
            got.append(ctx.get(prod))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = [(a - 4 * (fa and a >= 2)) * (b - 4 * (fb and b >= 2)) for a, b, fa, fb in cases]
    assert got == want


# -- cocotb: the emitted Verilog on Verilator (and Icarus where installed) -------------------
# Each test runs all of its testcases against one build: a Verilator build costs 10-17 s, a
# simulation of a few hundred beats per testcase well under a second. Every simulate() call
# gets a ``tmp_path`` build root (pytest-xdist workers must not share build directories).

SPEC = REGISTRY["mac"]
BEATS = 150



# -- element lanes (float, posit and integer modes with exact / fp32 accumulation) ---------
# The reference below is written from the MACConfig docstring with Python Fractions: exact
# products, exact sums, and its own round-to-nearest-even into FP32.

def _f32_code(x):
    """FP32 code nearest to the Fraction ``x`` (ties to even; overflow to inf; a negative
    value that rounds to zero gives -0)."""
    sign = 0x80000000 if x < 0 else 0
    ax = abs(x)
    if ax >= Fraction(2 ** 128 - 2 ** 103):
        return sign | 0x7F800000
    if ax == 0:
        return sign
    e = ax.numerator.bit_length() - ax.denominator.bit_length()
    if Fraction(2) ** e > ax:
        e -= 1
    lsb = Fraction(2) ** max(e - 23, -149)
    q = math.floor(ax / lsb)
    rest = ax / lsb - q
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and q % 2):
        q += 1
    return sign | int(np.float32(float(q * lsb)).view(np.uint32))


def _element(v):
    """A user element value as a Fraction, or "nan" / "+inf" / "-inf"."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return Fraction(v)


def _product(x, y):
    """``(exact value or 0, nan, +inf, -inf)`` of one product, as the docstring says."""
    if "nan" in (x, y):
        return 0, True, False, False
    specials = [v for v in (x, y) if isinstance(v, str)]
    if specials:
        if 0 in (x, y):
            return 0, True, False, False
        negative = sum(1 for v in (x, y) if (v == "-inf") or (not isinstance(v, str) and v < 0))
        return 0, False, negative % 2 == 0, negative % 2 == 1
    return x * y, False, False, False


def _special_code(nan, pos, neg):
    if nan or (pos and neg):
        return 0x7FC00000
    return 0x7F800000 if pos else 0xFF800000


def _float_reference(cfg, a, b, mode, clear, last, scale_a=None, scale_b=None):
    unit = Fraction(2) ** cfg.product_exp
    half = 1 << (cfg.acc_width - 1)
    exact = [0] * cfg.accumulators
    flags = [[False] * 3 for _ in range(cfg.accumulators)]
    fp32 = [0] * cfg.accumulators
    block = None              # fp32: [sums, flags, beats, replaces] of the running block
    err, out = False, []
    for t in range(len(mode)):
        code = int(mode[t])
        ok = code < len(cfg.modes)
        n = cfg.products_per_lane(code) if ok else 0
        lanes = []
        for lane in range(cfg.lanes):
            prods = [_product(_element(a[t, lane, k]), _element(b[t, lane, k])) for k in range(n)]
            lanes.append((sum(p[0] for p in prods),
                          *[any(p[i] for p in prods) for i in (1, 2, 3)]))
        if cfg.reduction == "together":
            lanes = [(sum(x[0] for x in lanes), *[any(x[i] for x in lanes) for i in (1, 2, 3)])]
        if cfg.accumulate == "exact":
            for i, (total, nan, pos, neg) in enumerate(lanes):
                units = total / unit
                assert units.denominator == 1
                v = (0 if clear[t] else exact[i]) + int(units)
                if cfg.overflow == "saturate":
                    v = min(half - 1, max(-half, v))
                else:
                    v = (v + half) % (2 * half) - half
                exact[i] = v
                old = [False] * 3 if clear[t] else flags[i]
                flags[i] = [o or f for o, f in zip(old, (nan, pos, neg))]
        else:
            # MX: a block ends at last, at a beat that is not MX, or when it is full
            if block is None or clear[t]:
                block = [[0] * len(lanes), [[False] * 3 for _ in lanes], 0, bool(clear[t])]
            block[0] = [x + lane[0] for x, lane in zip(block[0], lanes)]
            block[1] = [[o or f for o, f in zip(old, lane[1:])]
                        for old, lane in zip(block[1], lanes)]
            block[2] += 1
            mx = ok and cfg.modes[code].startswith("mx")
            if last[t] or not mx or block[2] == cfg.block // (cfg.lanes * n):
                scale, scale_nan = Fraction(1), False
                if mx:
                    scale_nan = 255 in (int(scale_a[t]), int(scale_b[t]))
                    scale = Fraction(2) ** (int(scale_a[t]) + int(scale_b[t]) - 254)
                for i, (total, (nan, pos, neg)) in enumerate(zip(*block[:2])):
                    nan = nan or scale_nan
                    s32 = (_special_code(nan, pos, neg) if (nan or pos or neg)
                           else _f32_code(total * scale))
                    if block[3]:
                        fp32[i] = s32
                    else:
                        with np.errstate(all="ignore"):
                            r = (np.uint32(fp32[i]).view(np.float32)
                                 + np.uint32(s32).view(np.float32))
                        fp32[i] = 0x7FC00000 if np.isnan(r) else int(np.float32(r).view(np.uint32))
                block = None
        err = (False if clear[t] else err) or not ok
        if last[t]:
            if cfg.accumulate == "exact":
                accs = [_special_code(*f) if any(f) else _f32_code(v * unit)
                        for v, f in zip(exact, flags)]
            else:
                accs = list(fp32)
            out.append((accs, err))
    return out


ELEMENT_CONFIGS = {
    "every-format-exact": MACConfig(
        modes=("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "p4", "p8", "s8s8", "u8s8", "s4s4"),
        lanes=2, multiplier="fused", accumulate="exact", reduction="apart", pipeline=2),
    "every-format-fp32": MACConfig(
        modes=("bf16", "fp16", "p16", "e4m3e5m2", "e5m2e4m3", "e4m3", "e2m1", "s8s8"),
        lanes=2, multiplier="fused", accumulate="fp32", pipeline=1),
    "fp16-bf16-exact": MACConfig(modes=("fp16", "bf16"), lanes=2, multiplier="plain",
                                 accumulate="exact", pipeline=5),
    "narrow-saturate": MACConfig(modes=("e2m1", "p4"), lanes=3, multiplier="fused",
                                 accumulate="exact", acc_width=20, overflow="saturate",
                                 pipeline=0),
    "narrow-wrap": MACConfig(modes=("e2m1", "p4"), lanes=3, multiplier="fused",
                             accumulate="exact", acc_width=20, overflow="wrap", pipeline=4),
    # every MX element type, blocks of 8 beats (4 for MXFP4), with a plain mode between
    "mx-every-type": MACConfig(modes=("mxe4m3", "mxe5m2", "mxe3m2", "mxe2m3", "mxe2m1", "mxi8",
                                      "e4m3", "mxe4m3mxe5m2"),
                               lanes=2, multiplier="fused", block=16, pipeline=2),
    "mx-wide-lanes": MACConfig(modes=("mxe4m3", "mxe2m1"), lanes=4, multiplier="fused",
                               block=8, pipeline=0),
}
ELEMENT_CASES = {**ELEMENT_CONFIGS, **{p: c for p, c in PRESETS.items() if c.element_lane}}


@pytest.mark.parametrize("name", sorted(ELEMENT_CASES))
def test_golden_element_lanes_match_fraction_reference(name):
    """Random codes of every built format (NaN, inf, zeros, subnormals at their code
    frequencies), random clear/last, unbuilt mode codes."""
    cfg = ELEMENT_CASES[name]
    rng = np.random.default_rng(17)
    args = golden.random_inputs(cfg, rng, 160, last_every=6)
    if cfg.mode_bits and (1 << cfg.mode_bits) > len(cfg.modes):
        args["mode"][::23] = len(cfg.modes)          # an unbuilt code adds 0 and sets err
    got = golden.mac(cfg, **args)
    want = _float_reference(cfg, **args)
    assert got["acc"].tolist() == [w[0] for w in want], name
    assert got["err"].tolist() == [w[1] for w in want], name


def test_golden_element_directed_semantics():
    """The declared specials and orderings, on values a reader can check by hand."""
    exact = MACConfig(modes=("e4m3", "e5m2"), lanes=2, multiplier="fused", accumulate="exact")
    fp32 = replace(exact, accumulate="fp32", acc_width="auto")
    f32 = lambda r: golden_elements.fp32_value(r["acc"][:, 0]).tolist()   # noqa: E731
    one = lambda *x: np.array(x, np.float64).reshape(1, 2, 1)              # noqa: E731
    # inf * 0 is NaN; inf + -inf is NaN; inf * finite is inf (E5M2 has inf, E4M3 has none)
    mode = [1]
    assert math.isnan(f32(golden.mac(exact, one(np.inf, 1), one(0, 1), mode=mode))[0])
    assert math.isnan(f32(golden.mac(exact, one(np.inf, -np.inf), one(1, 1), mode=mode))[0])
    assert f32(golden.mac(exact, one(np.inf, 3), one(-2, 1), mode=mode)) == [-np.inf]
    # exact: 2**15 + 2**-9 - 2**15 survives; fp32 rounds the beat first, so it does too here,
    # but across beats FP32 addition loses it: (2**24 + 1) - 2**24 = 0 vs 1
    a = np.array([[[256.0], [1.0]], [[256.0], [0.0]]])          # beats x lanes x 1
    b = np.array([[[256.0], [1.0]], [[-256.0], [0.0]]])
    b_e5m2 = [1, 1]
    assert f32(golden.mac(exact, a, b, mode=b_e5m2)) == [1.0]
    assert f32(golden.mac(fp32, a, b, mode=b_e5m2)) == [1.0]   # 65537 is exact in FP32
    big = np.array([[[4096.0], [1.0]], [[4096.0], [0.0]]])
    neg = np.array([[[4096.0], [1.0]], [[-4096.0], [0.0]]])
    assert f32(golden.mac(exact, big, neg, mode=b_e5m2)) == [1.0]
    assert f32(golden.mac(fp32, big, neg, mode=b_e5m2)) == [0.0]  # 2**24 + 1 rounds to 2**24


@pytest.mark.parametrize("bad, message", [
    ({"a": np.full((2, 2, 1), 0.3)}, r"^a \(in mode 'e4m3'\): 0.3 is not a value of format e4m3"),
    ({"a": np.full((2, 2, 1), np.nan), "mode": [2, 2]},
     r"^a \(in mode 's8s8'\): nan is not allowed in integer format s8; expected integers"),
    ({"a": np.full((2, 2, 1), 1.5), "mode": [2, 2]},
     r"^a \(in mode 's8s8'\): 1.5 is not allowed in integer format s8; expected integers"),
    ({"b": np.full((2, 2, 1), np.inf)}, r"^b \(in mode 'e4m3'\): inf is not allowed in format "
                                        r"e4m3 \(it has none"),
])
def test_golden_element_inputs_refused_with_the_array_named(bad, message):
    cfg = MACConfig(modes=("e4m3", "e5m2", "s8s8"), lanes=2, multiplier="fused",
                    accumulate="exact")
    args = {"a": np.ones((2, 2, 1)), "b": np.ones((2, 2, 1)), **bad}
    with pytest.raises(ValueError, match=message):
        golden.mac(cfg, **args)


@pytest.mark.parametrize("name", sorted(ELEMENT_CONFIGS))
def test_rtl_element_lanes_match_golden(name):
    """Valid beats of every mode, then raw random words (any code, unbuilt modes), with
    random bubbles and backpressure."""
    cfg = ELEMENT_CONFIGS[name]
    rng = np.random.default_rng(23)
    words = golden.pack_inputs(cfg, **golden.random_inputs(cfg, rng, 120, last_every=5))
    words += _random_words(cfg, rng, 60)
    expected = golden.words(cfg, words)
    got = run_stream(MAC(cfg), words, len(expected), seed=23, valid_prob=0.7, ready_prob=0.6)
    assert got == expected, name


@pytest.mark.parametrize("accumulate", ["exact", "fp32"])
@pytest.mark.parametrize("pipeline", [0, 3, 5])
def test_rtl_element_latency_every_depth(accumulate, pipeline):
    cfg = MACConfig(modes=("e4m3", "e2m1"), lanes=2, multiplier="fused", pipeline=pipeline,
                    accumulate=accumulate)
    want = 2 + pipeline + (accumulate == "exact")      # exact: the rounder's own stage
    assert cfg.latency == want
    assert _measure(cfg, 8) == {"beats_per_cycle": 1.0, "latency": want}


def test_xrnpe_scaling_published():
    """A 16-bit lane: 1 x 16-bit, 2 x 8-bit, 4 x 4-bit products per cycle (XR-NPE)."""
    cfg = PRESETS["xrnpe"]
    assert cfg.lane_width == 16
    assert {m: cfg.products_per_lane(m) for m in cfg.modes} == {
        "s8s8": 2, "e4m3": 2, "e5m2": 2, "e2m1": 4, "bf16": 1, "p8": 2, "p16": 1}
    assert cfg.macs_per_cycle["e2m1"] == 4 * cfg.lanes

def _write_inputs(path, config, seed, beats):
    args = golden.random_inputs(config, np.random.default_rng(seed), beats)
    np.savez(path, **args)
    return args


def _check_figures(result, config):
    """Measured throughput and latency equal the config's derived values."""
    cases = result.result["testcases"]
    assert cases["throughput"]["macs_per_cycle"] == config.macs_per_cycle
    assert cases["latency"]["measured"] == [config.latency] * len(cases["latency"]["measured"])
    for name in ("random_traffic", "random_words", "reset_midstream"):
        assert cases[name]["mismatches"] == 0
    assert cases["reset_midstream"]["in_flight"] > 0 and cases["reset_midstream"]["stale"] == 0
    (label, text), = cases["throughput"]["summary"]
    assert label.startswith("MACs/cycle") and text == ", ".join(
        f"{m} {float(v):g}" for m, v in config.macs_per_cycle.items())


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_verilator_preset(preset, tmp_path):
    """All testcases on one Verilator build, including a user-inputs npz round trip."""
    config = SPEC.presets[preset]
    args = _write_inputs(tmp_path / "in.npz", config, SEED, 40)
    result = simulate_passing(SPEC, config, preset=preset, simulator="verilator", beats=BEATS,
                              testcases=SPEC.testcases, inputs=tmp_path / "in.npz",
                              outputs=tmp_path / "out.npz", build_root=tmp_path / "build")
    assert set(result.testcases) == set(SPEC.testcases)
    _check_figures(result, config)
    with np.load(tmp_path / "out.npz") as out:
        want = golden.run(config, **args)
        np.testing.assert_array_equal(out["acc"], want["acc"])
        np.testing.assert_array_equal(out["err"], want["err"])
    user = result.result["testcases"]["user_inputs"]
    assert user["check"] == "passed" and user["beats"] == 40 and user["throughput"] == 1.0


@pytest.mark.cocotb
@pytest.mark.slow
def test_verilator_wide_products_random_1e5(tmp_path):
    """10**5 random BF16 and posit16 products through the emitted Verilog (and every pair of
    the 8-bit and 4-bit modes), each against the golden model."""
    config = SPEC.presets["xrnpe"]
    result = simulate_passing(SPEC, config, preset="xrnpe", simulator="verilator", beats=2000,
                              testcases=["every_product"], build_root=tmp_path)
    products = result.result["testcases"]["every_product"]["products"]
    assert products["bf16"] == products["p16"] == "random pairs: 100000"
    assert products["e4m3"] == "every pair: 65536" and products["e2m1"] == "every pair: 256"


@pytest.mark.cocotb
def test_verilator_build_reused_and_check_skipped(tmp_path):
    """A second call on the same config reuses the build; ``check=False`` reports skipped."""
    config = SPEC.presets["tiny"]
    _write_inputs(tmp_path / "in.npz", config, SEED, 10)
    kwargs = dict(simulator="verilator", build_root=tmp_path, inputs=tmp_path / "in.npz",
                  testcases=["user_inputs"])
    first = simulate(SPEC, config, seed=1, outputs=tmp_path / "a.npz", **kwargs)
    second = simulate(SPEC, config, seed=2, outputs=tmp_path / "b.npz", check=False, **kwargs)
    assert first.passed and second.passed, explain(second)
    assert first.built and not second.built
    assert first.build_dir == second.build_dir and first.run_dir != second.run_dir
    assert second.result["testcases"]["user_inputs"]["check"] == "skipped"
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        np.testing.assert_array_equal(a["acc"], b["acc"])


@pytest.mark.cocotb
@needs_icarus
@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_icarus_preset(preset, tmp_path):
    config = SPEC.presets[preset]
    result = simulate_passing(SPEC, config, preset=preset, simulator="icarus", beats=60,
                              testcases=SPEC.testcases, build_root=tmp_path,
                              waves=preset == "tiny")
    _check_figures(result, config)
    if preset == "tiny":
        assert result.waves is not None and result.waves.stat().st_size > 0


def _rewrite_manifest(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.cocotb
def test_testbench_catches_wrong_rtl_and_wrong_figures(tmp_path):
    """Verilog of a saturating accumulator with the manifest of a wrapping one must fail the
    scoreboard; wrong declared MACs/cycle or latency must fail their testcases. One build."""
    real = MACConfig(modes=("s8s8",), lanes=4, acc_width=16, overflow="saturate", pipeline=0)
    claimed = replace(real, overflow="wrap")   # 16-bit sums of 4 products overflow often
    # The true pairing passes, so every failure is caused by the manifest alone.
    build, honest = false_manifest_is_caught(
        SPEC, real, claimed, tmp_path, ["random_traffic"], "mismatches in random traffic",
        ok_cases=["random_traffic", "throughput", "latency"])

    build.write_text(honest)
    _rewrite_manifest(build, lambda m: (m["derived"]["macs_per_cycle"].update(s8s8=5),
                                        m["derived"].update(latency=2)))
    wrong_figures = run_emitted(build, seed=SEED, beats=50,
                                testcases=["throughput", "latency", "random_words"])
    assert wrong_figures.testcases == {"throughput": False, "latency": False,
                                       "random_words": True}
    log = wrong_figures.log.read_text()
    assert "manifest declares 5" in log and "manifest declares 2" in log
    assert wrong_figures.result["testcases"]["throughput"]["macs_per_cycle"] == {"s8s8": 4.0}


@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_manifest_packing_matches_golden_payloads(preset, tmp_path):
    """The manifest-only packer agrees with the config-based one, both directions."""
    config = SPEC.presets[preset]
    manifest = Manifest.load(emit(SPEC, config, tmp_path, top="mac").manifest_path)
    args = golden.random_inputs(config, np.random.default_rng(SEED), 20)
    words = golden.pack_inputs(config, **args)
    fields = manifest.unpack_many("i", words)
    assert [manifest.pack("i", {k: v[n] for k, v in fields.items()})
            for n in range(len(words))] == words
    out_words = golden.words(config, words)
    acc = golden.unpack_outputs(config, out_words)["acc"]
    decoded = manifest.unpack_many("o", out_words)
    for n in range(config.accumulators):
        assert decoded[f"acc{n}"] == acc[:, n].tolist()
    with pytest.raises(KeyError, match="unknown payload fields"):
        manifest.pack("i", {"bogus": 1})


# -- FPGA: the self-check harness and yosys / nextpnr builds ----------------------------------
# (the harness passing and failing in the Amaranth simulator, for every one-stream block:
# tests/test_fpga.py)

@pytest.mark.parametrize("seed", [1, 2])
def test_harness_last_bits_make_some_beats_emit(seed):
    """The harness' random ``last`` bits (at the beats and seeds the generic harness test
    simulates): some beats emit an accumulator, some do not."""
    _, count, _ = harness_expected(SPEC, SPEC.presets["tiny"], beats=200, seed=seed)
    assert 0 < count < 200


@pytest.mark.fpga
def test_synth_tiny_ice40(tmp_path):
    from accelgen.fpga.flow import synth
    r = synth(SPEC, SPEC.presets["tiny"], "ice40", tmp_path, preset="tiny")
    assert set(r.resources) == RESOURCE_KEYS
    assert r.resources["LUT4"] > 0 and r.resources["FF"] > 0
    # synth_ice40 -dsp maps the 8x8 multiplier into one SB_MAC16
    assert r.resources["DSP"] == 1
    assert r.json.exists() and r.log.exists()


@pytest.mark.fpga
def test_synth_tiny_ecp5(tmp_path):
    from accelgen.fpga.flow import synth
    r = synth(SPEC, SPEC.presets["tiny"], "ecp5", tmp_path, preset="tiny")
    assert set(r.resources) == RESOURCE_KEYS
    assert r.resources["LUT4"] > 0
    # yosys infers one MULT18X18D for the plain s8 x s8 multiplier
    assert r.resources["DSP"] == 1
    assert r.resources["carry"] > 0       # the 24-bit accumulator's CCU2C chain


@pytest.mark.fpga
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_build_tiny(tmp_path, board):
    from accelgen.fpga.flow import build
    lines = []
    r = build(SPEC, SPEC.presets["tiny"], board, tmp_path, preset="tiny",
              progress=lines.append)
    check_selfchecked_build(r)
    assert r.resources["DSP"][0] == 1
    assert r.resources["LUT4"][0] > 0 and r.resources["FF"][0] > 0
    assert any("yosys" in ln for ln in lines) and any("nextpnr" in ln for ln in lines)
    assert (tmp_path / FAMILIES[r.family].constraints("top")).exists()


@pytest.mark.fpga
def test_build_fp8_icebreaker(tmp_path):
    """The FP8 preset (E4M3/E5M2, exact accumulation) verified, self-checked and built for the
    iCEBreaker with timing met at 12 MHz (the two-stage rounder: 9.6 MHz before it)."""
    from accelgen.fpga.flow import build
    r = build(SPEC, SPEC.presets["fp8"], "icebreaker", tmp_path, preset="fp8", beats=200)
    check_selfchecked_build(r)
    assert r.resources["DSP"][0] == 0          # iCE40: the small significand products in LUTs


# -- accuracy report (accelgen show mac --errors) ----------------------------------------------

@pytest.mark.parametrize("preset", sorted(p for p in PRESETS if p in
                                          REGISTRY["mac"].error_bounds))
def test_error_report_within_declared_bound(preset):
    cfg = PRESETS[preset]
    stats = golden.errors(cfg, trials=60)
    assert set(stats["per_mode"]) == set(cfg.modes)
    assert stats["max_abs"] <= REGISTRY["mac"].error_bounds[preset]["max_abs"]


def test_error_report_measures_fp32_accumulation():
    """The report can see error: FP32 accumulation of BF16 products loses bits that the
    exact sum keeps (same workload, same seed)."""
    fp32 = MACConfig(modes=("bf16",), lanes=2, accumulate="fp32")
    exact = replace(fp32, accumulate="exact", acc_width="auto")
    lossy, kept = golden.errors(fp32, trials=80), golden.errors(exact, trials=80)
    assert lossy["max_abs"] > 1 and lossy["per_mode"]["bf16"]["max_rel"] > 0
    assert kept["max_abs"] <= 0.5


def test_error_workload_exact_values_are_exact():
    """The workload's float64 truth equals a Fraction sum of its own elements (MX scales
    included)."""
    cfg = PRESETS["mxfp8"]
    args, exact, length = mac_errors.workload(cfg, 0, np.random.default_rng(2), 5)
    assert length == 32
    for trial in range(5):
        a, b = args["a"][trial], args["b"][trial]
        scale = Fraction(2) ** (int(args["scale_a"][trial]) + int(args["scale_b"][trial]) - 254)
        total = sum(Fraction(x) * Fraction(y) for x, y in zip(a.ravel(), b.ravel())) * scale
        assert Fraction(exact[trial][0]) == total


# -- derived settings follow --set ---------------------------------------------------------------

@pytest.mark.parametrize("block, preset", [(b, p) for b in REGISTRY
                                           for p in REGISTRY[b].presets])
def test_every_preset_resolves_to_itself(block, preset):
    """What every command line does first: a preset with no settings resolves to the preset
    (re-deriving must never trip over a preset's explicit settings, as fp8's ``exact`` with
    its 81-bit accumulator once did)."""
    spec = REGISTRY[block]
    assert spec.resolve(preset) == spec.presets[preset]


def test_set_modes_rederives_accumulation_and_width():
    """The default preset holds the derived accumulation (int, 32 bits): new float modes on
    the command line re-derive them (fp32, 32); an explicit accumulate re-derives the width;
    a preset's own non-derived width stays and is checked."""
    spec = REGISTRY["mac"]
    cfg = spec.resolve("default", sets=['modes=["s8s8","e4m3","bf16"]'])
    assert (cfg.accumulate, cfg.acc_width) == ("fp32", 32)
    cfg = spec.resolve("default", sets=['modes=["e4m3"]', "accumulate=exact"])
    assert (cfg.accumulate, cfg.acc_width) == ("exact", cfg.product_width + 16)
    assert spec.resolve("default").acc_width == 32           # untouched presets stay
    with pytest.raises(ConfigError, match=r"^acc_width: 24 is not allowed; expected an "
                                          r"integer from 32 to 32"):
        spec.resolve("tiny", sets=['modes=["e4m3"]'])
