"""Mod-3 residue arithmetic (:mod:`accelgen.hdl.common.arith`) and the ``mac`` block's residue
check (``acc_check="residue"``). The reference is Python's ``%`` on the value a field's bits
mean; the check's detection is measured by a fault campaign."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from accelgen.generators.mac import PRESETS, MACConfig
from accelgen.generators.registry import REGISTRY
from accelgen.hdl.common.arith import add3, mul3, residue3, sub3
from accelgen.numerics import ConfigError
from accelgen.sim.payload import payload_width


def _evaluate(shape, make, values):
    """Drive ``x`` of ``shape`` with each of ``values``; ``make(m, x)`` builds the value read."""
    m = Module()
    x = Signal(shape)
    out = Signal(4)
    m.d.comb += out.eq(make(m, x))
    got = []

    async def bench(ctx):
        for v in values:
            ctx.set(x, v)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 7, 8])
@pytest.mark.parametrize("is_signed", [False, True])
def test_residue3_is_the_value_mod_3(width, is_signed):
    shape = signed(width) if is_signed else unsigned(width)
    values = range(-(1 << (width - 1)), 1 << (width - 1)) if is_signed else range(1 << width)
    got = _evaluate(shape, residue3, values)
    assert got == [v % 3 for v in values]


def test_residue3_of_a_wide_value():
    values = [0, 1, -1, 2**47 - 1, -2**47, 123456789012, -98765432109]
    assert _evaluate(signed(48), residue3, values) == [v % 3 for v in values]


@pytest.mark.parametrize("op, ref", [(add3, lambda x, y: (x + y) % 3),
                                     (sub3, lambda x, y: (x - y) % 3),
                                     (lambda m, x, y: mul3(x, y), lambda x, y: x * y % 3)])
def test_residue_operators(op, ref):
    pairs = [(x, y) for x in range(3) for y in range(3)]
    got = _evaluate(unsigned(4), lambda m, v: op(m, v[:2], v[2:]), [x | y << 2 for x, y in pairs])
    assert got == [ref(x, y) for x, y in pairs]


def test_acc_check_choices():
    assert MACConfig(acc_check="residue").acc_check == "residue"
    with pytest.raises(ConfigError, match=r"^acc_check: 'parity' is not allowed"):
        MACConfig(acc_check="parity")
    with pytest.raises(ConfigError, match=r"^acc_check: 'residue' is not allowed with accumulate "
                                          r"'fp32'"):
        MACConfig(modes=("e4m3",), acc_check="residue")


def test_fault_field_only_with_the_check():
    names = [f.name for f in PRESETS["tiny"].output_fields]
    assert "fault" not in names
    checked = MACConfig(**{**PRESETS["w4a8"].to_dict(), "acc_check": "residue"})
    assert [f.name for f in checked.output_fields][-2:] == ["err", "fault"]
    assert checked.latency == PRESETS["w4a8"].latency


@pytest.mark.cocotb
def test_residue_check_turns_corruptions_into_detections(tmp_path):
    """mac tiny, the same 1000 upsets (one seed) with and without the check: the check
    reports most of them (every accumulator flip that reaches an output) and the silent
    corruptions fall."""
    from accelgen.faults.campaign import run_campaign
    spec = REGISTRY["mac"]
    plain = run_campaign(spec, PRESETS["tiny"], tmp_path / "plain", faults=1000, seed=3)
    checked_config = MACConfig(**{**PRESETS["tiny"].to_dict(), "acc_check": "residue"})
    checked = run_campaign(spec, checked_config, tmp_path / "checked", faults=1000, seed=3)
    # without the check only the err flag's own upsets are reported (it reads 1 afterwards)
    assert {r["name"] for r in plain.registers if r["detected"]} == {"err"}
    assert checked.counts["detected"] > plain.counts["detected"] + 100
    assert checked.counts["sdc"] * 5 < plain.counts["sdc"]
    acc = next(r for r in checked.registers if r["name"] == "acc0")
    assert acc["sdc"] == 0 and acc["detected"] > 0


#: residue-checked configs whose accumulators overflow often (small ``acc_width``), so the
#: residue's overflow correction is exercised: saturating fused lanes apart (odd width), wrapping
#: fused lanes together over seven modes (odd) and plain lanes (even), at pipeline 7 and less
CHECKED = {
    "w4a8-saturate": MACConfig(**{**PRESETS["w4a8"].to_dict(), "acc_check": "residue",
                                  "overflow": "saturate", "acc_width": 17}),
    "default-wrap": MACConfig(**{**PRESETS["default"].to_dict(), "acc_check": "residue",
                                 "overflow": "wrap", "acc_width": 17}),
    "plain-mixed": MACConfig(**{**PRESETS["plain_mixed"].to_dict(), "acc_check": "residue",
                                "acc_width": 18}),
    # the residues ride stages that are left out below pipeline 7
    "w4a8-pipeline0": MACConfig(**{**PRESETS["w4a8"].to_dict(), "acc_check": "residue",
                                   "acc_width": 17, "pipeline": 0}),
    "default-pipeline3": MACConfig(**{**PRESETS["default"].to_dict(), "acc_check": "residue",
                                      "acc_width": 17, "pipeline": 3}),
}


@pytest.mark.parametrize("name", sorted(CHECKED))
def test_checked_mac_equals_golden_and_stays_silent(name):
    """Amaranth simulation with gaps and backpressure: every output word equals the golden
    model's, whose ``fault`` bit is 0 (the check never fires without a fault), and the
    accumulators did overflow."""
    from accelgen.hdl.mac import MAC
    from accelgen.sim.golden import mac as golden
    from accelgen.sim.pysim import run_stream
    cfg = CHECKED[name]
    args = golden.random_inputs(cfg, np.random.default_rng(5), 160, last_every=40)
    # drift: every product of a group takes the group's sign (b -> ~b = -b - 1 keeps b in its
    # format), so sums grow past the accumulator, upwards in even groups, downwards in odd
    direction = np.where(np.cumsum(args["clear"]) % 2, -1, 1)[:, None, None]
    b = args["b"].astype(np.int64)
    args["b"] = np.where(args["a"] * b * direction < 0, ~b, b)
    wide = MACConfig(**{**cfg.to_dict(), "acc_width": 48})
    assert (golden.mac(cfg, **args)["acc"] != golden.mac(wide, **args)["acc"]).any(), \
        "no accumulator overflowed"
    words = golden.pack_inputs(cfg, **args)
    # raw bits: invalid mode codes (which add 0 and predict 0) and garbage in unused slots
    rng = np.random.default_rng(6)
    width = payload_width(cfg.input_fields)
    words += [int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1)
              for _ in range(60)]
    expected = golden.words(cfg, words)
    got = run_stream(MAC(cfg), words, len(expected), seed=2, valid_prob=0.8, ready_prob=0.7)
    assert got == expected
