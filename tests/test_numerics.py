"""accelgen.numerics against scalar definitions, and every Amaranth twin against its numpy twin
exhaustively for input widths up to 12 bits."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from accelgen import numerics as nx
from accelgen.hdl.common import numerics as hx
from accelgen.numerics import ConfigError, IntFormat, Overflow, Rounding


# -- numpy functions against definitions written from the spec (Fractions, no shifts) -------

def _round_reference(x, shift, mode):
    q = Fraction(x, 2 ** shift)
    if mode is Rounding.FLOOR:
        return math.floor(q)
    if mode is Rounding.HALF_UP:
        return math.floor(q + Fraction(1, 2))
    if mode is Rounding.HALF_AWAY:
        return int(math.copysign(math.floor(abs(q) + Fraction(1, 2)), q))
    if mode is Rounding.HALF_EVEN:
        return round(q)          # Python rounds Fractions half to even
    return math.trunc(q)


@pytest.mark.parametrize("mode", list(Rounding))
def test_round_shift_matches_definition(mode):
    xs = np.arange(-300, 301)
    for shift in range(0, 7):
        got = nx.round_shift(xs, shift, mode)
        want = [_round_reference(int(x), shift, mode) for x in xs]
        assert got.tolist() == want, (mode, shift)


def test_round_shift_ties_differ_by_mode():
    ties = np.array([-5, -3, -1, 1, 3, 5])          # x / 2 = -2.5 -1.5 -0.5 0.5 1.5 2.5
    assert nx.round_shift(ties, 1, "floor").tolist() == [-3, -2, -1, 0, 1, 2]
    assert nx.round_shift(ties, 1, "half_up").tolist() == [-2, -1, 0, 1, 2, 3]
    assert nx.round_shift(ties, 1, "half_away").tolist() == [-3, -2, -1, 1, 2, 3]
    assert nx.round_shift(ties, 1, "half_even").tolist() == [-2, -2, 0, 0, 2, 2]
    assert nx.round_shift(ties, 1, "toward_zero").tolist() == [-2, -1, 0, 0, 1, 2]


def test_wrap_and_saturate_definitions():
    s4, u4 = IntFormat(4, True), IntFormat(4, False)
    xs = np.arange(-40, 41)
    assert nx.wrap(xs, s4).tolist() == [((int(x) + 8) % 16) - 8 for x in xs]
    assert nx.wrap(xs, u4).tolist() == [int(x) % 16 for x in xs]
    assert nx.saturate(xs, s4).tolist() == [min(7, max(-8, int(x))) for x in xs]
    assert nx.saturate(xs, u4).tolist() == [min(15, max(0, int(x))) for x in xs]
    assert nx.apply_overflow([100], s4, "wrap").tolist() == [4]
    assert nx.apply_overflow([100], s4, Overflow.SATURATE).tolist() == [7]


def test_format_parse_and_range():
    assert IntFormat.parse("s8") == IntFormat(8, True)
    assert (IntFormat.parse("u4").min, IntFormat.parse("u4").max) == (0, 15)
    assert (IntFormat.parse("s2").min, IntFormat.parse("s2").max) == (-2, 1)
    with pytest.raises(ConfigError, match=r"^fmt: 'x8' is not an integer format; expected 's' "
                                          r"or 'u' followed by a width, e.g. 's8' or 'u4'$"):
        IntFormat.parse("x8", param="fmt")


# -- Amaranth twins, exhaustive ---------------------------------------------------------------

TARGETS = [IntFormat(w, s) for w in (1, 2, 3, 5, 8, 12) for s in (True, False)]


def _twin_outputs(m, inp, width):
    """{key: (output signal, numpy function of the input array)} for one input shape."""
    outs = {}
    for fmt in TARGETS:
        for name, hw, sw in (("wrap", hx.wrap, nx.wrap), ("sat", hx.saturate, nx.saturate)):
            sig = Signal(signed(fmt.width) if fmt.signed else unsigned(fmt.width),
                         name=f"{name}_{fmt.name}")
            m.d.comb += sig.eq(hw(inp, fmt))
            outs[sig.name] = (sig, lambda x, sw=sw, fmt=fmt: sw(x, fmt))
    for shift, mode in itertools.product(sorted({0, 1, 2, 3, width - 1, width}), Rounding):
        if shift < 0:
            continue
        expr = hx.round_shift(inp, shift, mode)
        sig = Signal(signed(width + 2), name=f"rs{shift}_{mode.value}")
        m.d.comb += sig.eq(expr)
        outs[sig.name] = (sig, lambda x, s=shift, mo=mode: nx.round_shift(x, s, mo))
    return outs


@pytest.mark.parametrize("is_signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("width", range(1, 13))
def test_twins_exhaustive(width, is_signed):
    fmt = IntFormat(width, is_signed)
    m = Module()
    inp = Signal(signed(width) if is_signed else unsigned(width))
    outs = _twin_outputs(m, inp, width)
    xs = np.arange(fmt.min, fmt.max + 1)
    got = {key: [] for key in outs}

    async def testbench(ctx):
        for x in xs:
            ctx.set(inp, int(x))
            for key, (sig, _) in outs.items():
                got[key].append(ctx.get(sig))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    for key, (_, model) in outs.items():
        want = model(xs).tolist()
        bad = [(int(x), g, w) for x, g, w in zip(xs, got[key], want) if g != w]
        assert not bad, f"{key} on {fmt.name}: first mismatches (x, rtl, numpy) {bad[:5]}"
