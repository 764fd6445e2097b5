"""Requantization: :func:`accelgen.numerics.requantize` against a definition written with
Fractions, and the :class:`Requantizer` RTL (Amaranth simulator) against ``requantize``:
exhaustive on a small configuration, random on a wide one."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.sim import Simulator

from accelgen.hdl.common.requant import Requantizer
from accelgen.numerics import ConfigError, Rounding, requantize

# -- numerics.requantize against a definition (Fractions, no shifts) -------------------------


def _round_definition(q, mode):
    """``q`` (a Fraction) rounded to an integer, each rule written out from its definition."""
    lower = math.floor(q)
    frac = q - lower                                  # in [0, 1)
    if mode is Rounding.FLOOR:
        return lower
    if mode is Rounding.TOWARD_ZERO:
        return lower if q >= 0 else -math.floor(-q)
    if frac != Fraction(1, 2):                        # not a tie: every nearest mode agrees
        return lower + (frac > Fraction(1, 2))
    if mode is Rounding.HALF_UP:
        return lower + 1
    if mode is Rounding.HALF_AWAY:
        return lower + 1 if q > 0 else lower
    return lower if lower % 2 == 0 else lower + 1     # HALF_EVEN


def _requantize_definition(acc, mult, shift, zero_point, relu, out_signed, mode):
    r = _round_definition(Fraction(acc * mult, 2 ** shift), mode)
    if relu:
        r = max(r, 0)
    lo, hi = (-128, 127) if out_signed else (0, 255)
    return min(hi, max(lo, r + zero_point))


def _random_case(rng):
    acc_width = rng.randint(1, 46)
    mult_bits = rng.randint(1, 62 - acc_width)
    acc = rng.randint(-(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1)
    mult = rng.randint(0, (1 << mult_bits) - 1)
    mag = abs(acc * mult).bit_length()
    # Mostly shifts that leave a few significant bits (results inside the 8-bit range).
    shift = rng.randint(0, 63) if rng.random() < 0.3 else min(63, max(0, mag - rng.randint(0, 10)))
    return acc, mult, shift, rng.randint(-256, 255), rng.random() < 0.5, rng.random() < 0.5


def _edge_cases():
    cases = []
    for shift in (1, 2, 5, 17, 40, 61):
        for k in (-4, -3, -2, -1, 0, 1, 2, 3):        # ties: (2k + 1) / 2
            for mult in (1, 3):
                if shift - 1 >= 0 and abs((2 * k + 1) << (shift - 1)) < (1 << 61):
                    acc = ((2 * k + 1) << (shift - 1))
                    cases.append((acc * mult, 1, shift, 0, False, True))
                    cases.append((acc, mult, shift, 0, False, True))
    big = (1 << 45) - 1
    for shift in (0, 1, 62, 63):
        for acc in (-(1 << 45), -big, -1, 0, 1, big, 3 << 40):
            for mult in (0, 1, (1 << 16) - 1):
                cases.append((acc, mult, shift, 0, False, True))
    for relu in (False, True):
        for out_signed in (False, True):
            for zp in (-256, -129, -1, 0, 1, 128, 255):
                for acc in (-(1 << 30), -1000, -129, -1, 0, 1, 200, 1000, 1 << 30):
                    cases.append((acc, 1, 0, zp, relu, out_signed))     # saturation both ends
                    cases.append((acc, 5, 3, zp, relu, out_signed))
    return cases


@pytest.mark.parametrize("mode", list(Rounding))
def test_requantize_matches_definition(mode):
    rng = random.Random(f"requantize-{mode.value}")
    cases = [_random_case(rng) for _ in range(3000)] + _edge_cases()
    bad = []
    for case in cases:
        got = requantize(case[0], *case[1:], mode).item()
        want = _requantize_definition(*case, mode)
        if got != want:
            bad.append((case, got, want))
    assert not bad, f"{mode.value}: first mismatches ((acc, mult, shift, zp, relu, " \
                    f"out_signed), numpy, definition) {bad[:5]}"
    # The edge cases reach every output extreme.
    outs = {_requantize_definition(*case, mode) for case in cases}
    assert {-128, 0, 127, 255} <= outs


def test_requantize_known_values():
    # 3 * 5 / 4 = 3.75 -> 4; relu; zero point; -2.5 ties by mode.
    assert requantize([3], 5, 2, 0, False, True, "floor").tolist() == [3]
    assert requantize([3], 5, 2, 0, False, True, "half_up").tolist() == [4]
    ties = {m: requantize([-5], 1, 1, 0, False, True, m).item() for m in Rounding}
    assert ties == {Rounding.FLOOR: -3, Rounding.HALF_UP: -2, Rounding.HALF_AWAY: -3,
                    Rounding.HALF_EVEN: -2, Rounding.TOWARD_ZERO: -2}
    assert requantize([-5], 1, 1, 10, True, True, "floor").tolist() == [10]
    assert requantize([-5], 1, 1, 10, True, False, "floor").tolist() == [10]
    assert requantize([1000], 1, 0, -3, False, True, "floor").tolist() == [127]
    assert requantize([1000], 1, 0, -3, False, False, "floor").tolist() == [255]
    assert requantize([-1000], 1, 0, 3, False, False, "floor").tolist() == [0]
    assert requantize([-1], 1, 63, 0, False, True, "floor").tolist() == [-1]
    assert requantize([-1], 1, 63, 0, False, True, "half_up").tolist() == [0]
    with pytest.raises(ConfigError, match=r"^shift: 64 is not allowed; expected 0 to 63$"):
        requantize([1], 1, 64, 0, False, True, "floor")


# -- RTL in the Amaranth simulator --------------------------------------------------------------


def _pack(values, width):
    return sum((int(v) & ((1 << width) - 1)) << (width * i) for i, v in enumerate(values))


def _unpack9(value, lanes):
    """Signed 9-bit fields of a packed ``y``, lane 0 first."""
    raw = np.frombuffer(value.to_bytes((9 * lanes + 7) // 8, "little"), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")[:9 * lanes].reshape(lanes, 9).astype(np.int64)
    fields = bits @ (1 << np.arange(9))
    return np.where(fields >= 256, fields - 512, fields)


def _simulate(dut, stimulus):
    """Run one stimulus per cycle; ``stimulus[i]`` is ``(acc lanes, mult, shift, zero_point,
    relu, out_signed)``. Returns ``y`` during cycle ``i + dut.latency`` for each ``i`` (an
    ``(n, lanes)`` array), and the raw ``y`` of every cycle (a list of packed ints)."""
    acc, y = Value.cast(dut.acc), Value.cast(dut.y)
    trace = []

    async def testbench(ctx):
        packed = None
        for i in range(len(stimulus) + dut.latency):
            if i < len(stimulus):
                lanes, mult, shift, zp, relu, out_signed = stimulus[i]
                if packed is None or lanes is not packed[0]:
                    packed = (lanes, _pack(lanes, dut.acc_width))
                ctx.set(acc, packed[1])
                ctx.set(dut.mult, mult)
                ctx.set(dut.shift, shift)
                ctx.set(dut.zero_point, zp)
                ctx.set(dut.relu, relu)
                ctx.set(dut.out_signed, out_signed)
            trace.append(ctx.get(y))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    out = np.array([_unpack9(v, dut.lanes) for v in trace[dut.latency:]])
    return out, trace


def _expected(stimulus, mode):
    return np.array([requantize(lanes, mult, shift, zp, relu, out_signed, mode)
                     for lanes, mult, shift, zp, relu, out_signed in stimulus])


def _mismatches(stimulus, got, mode):
    """Mismatching values of a simulation against ``requantize`` in rounding ``mode``:
    ``(count, first few (cycle, lane, acc, params, rtl, model))``."""
    want = _expected(stimulus, mode)
    cycles, lanes = np.nonzero(got != want)
    first = [(int(c), int(ln), int(stimulus[c][0][ln]), stimulus[c][1:], int(got[c, ln]),
              int(want[c, ln])) for c, ln in zip(cycles[:5], lanes[:5])]
    return len(cycles), first


def _check_against_every_mode(stimulus, got, mode):
    """The RTL matches ``mode`` everywhere, and every other mode somewhere differs (so the
    comparison can fail)."""
    count, first = _mismatches(stimulus, got, mode)
    assert count == 0, f"{mode.value}: {count} mismatches, first (cycle, lane, acc, " \
                       f"(mult, shift, zp, relu, out_signed), rtl, model) {first}"
    for other in Rounding:
        if other is not mode:
            assert _mismatches(stimulus, got, other)[0] > 0, (mode, other)


SMALL_SHIFTS = list(range(14)) + [40, 63]
SMALL_ZPS = (-256, -37, 0, 100, 255)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(Rounding))
def test_rtl_exhaustive_small(mode):
    """acc_width 8 (all 256 accumulators in one cycle) x mult_bits 4 (all 16) x shifts
    0..13, 40, 63 x relu x out_signed; the zero point takes turns over five values from one
    (mult, shift) pair to the next, so each one meets about 50 pairs."""
    dut = Requantizer(lanes=256, acc_width=8, mult_bits=4, rounding=mode)
    accs = np.arange(-128, 128)
    pairs = [(mult, shift) for mult in range(16) for shift in SMALL_SHIFTS]
    stimulus = [(accs, mult, shift, SMALL_ZPS[n % len(SMALL_ZPS)], relu, out_signed)
                for n, (mult, shift) in enumerate(pairs)
                for relu in (0, 1) for out_signed in (0, 1)]
    got, _ = _simulate(dut, stimulus)
    _check_against_every_mode(stimulus, got, mode)
    # Every output extreme is reached.
    assert {-128, 0, 127, 255} <= set(np.unique(got).tolist())


def _wide_stimulus(rng, n, lanes, acc_width, mult_bits):
    lo, hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    stimulus = []
    for i in range(n):
        relu, out_signed, zp = rng.randrange(2), rng.randrange(2), rng.randint(-256, 255)
        kind = i % 4
        if kind == 0:        # uniform everything (mostly saturated results)
            mult = rng.randrange(1 << mult_bits)
            shift = rng.randrange(64)
            accs = [rng.randint(lo, hi) for _ in range(lanes)]
        elif kind == 1:      # ties: mult = 2**j, acc * mult = (2k + 1) * 2**(shift - 1)
            shift = rng.randint(1, acc_width - 1)
            j = rng.randint(0, min(mult_bits - 1, shift - 1))
            mult = 1 << j
            top = max(0, acc_width - 2 - (shift - 1 - j))
            accs = [(2 * rng.randint(-(1 << top), (1 << top) - 1) + 1) << (shift - 1 - j)
                    for _ in range(lanes)]
        else:                # products whose rounded value lands near the 8-bit range
            mult = rng.randrange(1 << rng.randint(0, mult_bits))
            shift = rng.randrange(64)
            accs = []
            for _ in range(lanes):
                target = rng.randint(-700, 700) * (1 << shift) + rng.randrange(1 << shift)
                accs.append(min(hi, max(lo, round(target / max(mult, 1)))))
        stimulus.append((np.array(accs, dtype=np.int64), mult, shift, zp, relu, out_signed))
    return stimulus


@pytest.mark.parametrize("mode", list(Rounding))
def test_rtl_random_wide(mode):
    dut = Requantizer(lanes=64, acc_width=32, mult_bits=16, rounding=mode)
    rng = random.Random(f"wide-{mode.value}")
    stimulus = _wide_stimulus(rng, 400, dut.lanes, dut.acc_width, dut.mult_bits)
    got, _ = _simulate(dut, stimulus)
    _check_against_every_mode(stimulus, got, mode)
    values = set(np.unique(got).tolist())
    assert {-128, 0, 127, 255} <= values and len(values) > 300


@pytest.mark.parametrize("round_stage, shift_stage, latency",
                         [(True, None, 5), (False, None, 3), (True, False, 4), (False, True, 4)])
def test_latency_exact_and_parameters_travel_with_data(round_stage, shift_stage, latency):
    dut = Requantizer(lanes=2, acc_width=8, mult_bits=4, rounding="half_up",
                      round_stage=round_stage, shift_stage=shift_stage)
    assert dut.latency == latency
    zero = np.array([0, 0])
    idle = (zero, 1, 0, 0, 0, 1)
    # Cycle 4: an impulse; cycle 5: new parameters with zero data; the rest idle.
    stimulus = [idle] * 4 + [(np.array([5, -7]), 3, 1, 0, 0, 1),
                             (zero, 15, 9, 100, 1, 0)] + [idle] * 4
    got, trace = _simulate(dut, stimulus)
    assert got.tolist() == [[0, 0]] * 4 + [[8, -10], [100, 100]] + [[0, 0]] * 4
    raw = [_unpack9(v, 2).tolist() for v in trace]
    assert raw[4 + latency] == [8, -10] and raw[5 + latency] == [100, 100]
    assert all(v == [0, 0] for n, v in enumerate(raw) if n not in (4 + latency, 5 + latency))
    # The check is sensitive to the alignment: one cycle early or late mismatches.
    want = _expected(stimulus, Rounding.HALF_UP)
    full = np.array(raw)
    for wrong in (latency - 1, latency + 1):
        assert (full[wrong:wrong + len(stimulus)] != want[:len(full) - wrong]).any()


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 0}, "lanes: 0 is not allowed; expected an integer from 1 to 1024"),
    ({"acc_width": 63}, "acc_width: 63 is not allowed; expected an integer from 1 to 62"),
    ({"mult_bits": 31}, "mult_bits: 31 is not allowed with acc_width 32; expected "
                        "acc_width + mult_bits <= 62"),
    ({"shift_bits": 7}, "shift_bits: 7 is not allowed; expected an integer from 1 to 6"),
    ({"rounding": "nearest"}, "rounding: 'nearest' is not allowed; expected one of 'floor', "
                              "'half_up', 'half_away', 'half_even', 'toward_zero'"),
])
def test_invalid_parameters(kwargs, message):
    args = dict(lanes=4, acc_width=32, mult_bits=16, rounding="floor") | kwargs
    with pytest.raises(ConfigError) as info:
        Requantizer(**args)
    assert str(info.value) == message


def test_converts_to_verilog():
    text = verilog.convert(Requantizer(lanes=2, acc_width=32, mult_bits=16,
                                       rounding="half_even"), emit_src=False)
    assert "module top(mult, shift, zero_point, relu, out_signed, clk, rst, y, acc);" in text
    assert "output [17:0] y;" in text and "input [63:0] acc;" in text


@pytest.mark.parametrize("acc_width, mult_bits", [(19, 2), (34, 17), (35, 10), (46, 16)])
def test_wide_products_split_at_every_slice_boundary(acc_width, mult_bits):
    """Products wider than one 18x18 multiply are summed from 17-bit slices of ``acc`` in a
    stage of their own, their operands and products registered (latency 7): exact whether
    the top slice is 1, 17 or 12 bits wide."""
    dut = Requantizer(lanes=16, acc_width=acc_width, mult_bits=mult_bits, rounding="half_even")
    assert dut.latency == 7
    rng = random.Random(f"split-{acc_width}-{mult_bits}")
    stimulus = _wide_stimulus(rng, 120, dut.lanes, acc_width, mult_bits)
    got, _ = _simulate(dut, stimulus)
    count, first = _mismatches(stimulus, got, Rounding.HALF_EVEN)
    assert count == 0, first


def test_wide_latency_exact_and_parameters_travel_with_data():
    dut = Requantizer(lanes=2, acc_width=32, mult_bits=16, rounding="half_up")
    assert dut.latency == 7
    zero = np.array([0, 0])
    idle = (zero, 1, 0, 0, 0, 1)
    # -7 * 2**20 * 3 / 2**21 = -10.5: half_up gives -10
    stimulus = [idle] * 4 + [(np.array([5, -7 << 20]), 3, 21, 0, 0, 1),
                             (zero, 15, 9, 100, 1, 0)] + [idle] * 4
    got, trace = _simulate(dut, stimulus)
    assert got.tolist() == [[0, 0]] * 4 + [[0, -10], [100, 100]] + [[0, 0]] * 4
    raw = [_unpack9(v, 2).tolist() for v in trace]
    assert raw[4 + 7] == [0, -10] and raw[5 + 7] == [100, 100]
