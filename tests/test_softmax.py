"""Block ``softmax`` in the Amaranth simulator against its golden model (fast tier).

Every run sends rows as ``i`` payload words and compares every ``o`` word with
:func:`accelgen.sim.golden.softmax.words` (which splits rows at ``n_max`` as the hardware
does). Configs: the presets (those with ``n_max = 128`` cut to 16; the full ones are
``slow``), every exponent x reciprocal x Newton x output combination, and a few corner
configs (tiny ``acc_frac``, ``n_max`` 1 and not a power of two, coarse and fine scales).
Seeds are in the test ids and the failure messages.

At the end: the emitted Verilog in cocotb on Verilator and Icarus (``cocotb`` marker) and a
yosys / nextpnr build (``fpga`` marker).
"""

import itertools
import json
import random
import re
from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from accelgen.generators.registry import REGISTRY
from accelgen.generators.softmax import PRESETS, SoftmaxConfig
from accelgen.hdl.common.normalize import leading_zeros, normalize
from accelgen.hdl.softmax import Softmax
from accelgen.numerics import ConfigError
from accelgen.sim.golden import softmax as golden
from accelgen.sim.payload import pack
from accelgen.sim.pysim import run_streams

from support import (SEED, check_selfchecked_build, errors_like_golden,
                     false_manifest_is_caught, needs_icarus, simulate_passing,
                     simulate_preset)

SMALL = replace(PRESETS["tiny"], n_max=8)


def _small(**kw):
    return replace(SMALL, **kw)


def _preset(name, n_max=16):
    cfg = PRESETS[name]
    return replace(cfg, n_max=n_max) if cfg.n_max > n_max else cfg


PRESET_CONFIGS = [pytest.param(_preset(name), id=f"preset-{name}") for name in PRESETS]

# every exponent x reciprocal x Newton x output; mask on, and off once per exponent
MATRIX = [pytest.param(_small(exp=e, recip=r, newton=nt, output=o, mask=o != "s8" or r == "pwl"),
                       id=f"{e}-{r}-{'newton' if nt else 'plain'}-{o}")
          for e, r, nt, o in itertools.product(("table", "pwl", "ibert"), ("table", "pwl"),
                                               (False, True), ("u8", "s8", "log2"))]

# corners: narrow v (acc_frac 2-3, v reaching 2**(A+1)), n_max 1 and not a power of two,
# pwl_frac 0, the extreme reciprocal sizes, wide logits at a fine scale, a coarse i-exp grid
CORNERS = [
    pytest.param(SoftmaxConfig(in_format="s13", in_scale=0.0848, n_max=5, exp="pwl",
                               exp_frac=6, exp_segments=32, pwl_frac=13, recip="table",
                               recip_bits=2, newton=False, output="log2", acc_frac=3),
                 id="pwl-acc3-n5-recip2"),
    pytest.param(SoftmaxConfig(in_format="s8", in_scale=3.6e-4, n_max=2, exp="table",
                               exp_frac=12, recip="pwl", recip_bits=10, newton=True,
                               output="u8"), id="table-vmax-n2-recip10"),
    pytest.param(SoftmaxConfig(in_format="s15", in_scale=0.0606, n_max=1, exp="ibert",
                               recip="pwl", recip_bits=10, pwl_frac=11, newton=False,
                               output="log2", mask=False, acc_frac=2), id="ibert-n1-acc2"),
    pytest.param(SoftmaxConfig(in_format="s12", in_scale=0.00298, n_max=12, exp="pwl",
                               exp_frac=11, exp_segments=32, pwl_frac=0, recip="pwl",
                               recip_bits=10, newton=False, output="s8"), id="pwl-frac0-n12"),
    pytest.param(SoftmaxConfig(in_format="s16", in_scale=2 ** -12, n_max=6, exp="pwl",
                               exp_frac=16, exp_segments=256, recip="pwl", recip_bits=2,
                               newton=True, output="u8", acc_frac=24), id="pwl-f16-acc24"),
    pytest.param(SoftmaxConfig(in_format="s4", in_scale=0.3, n_max=3, exp="ibert",
                               recip="table", newton=True, output="s8"), id="ibert-s4-coarse"),
]


# -- stimulus ----------------------------------------------------------------------------------

def _random_rows(cfg, rng, count):
    """``(x, mask)`` rows of random lengths 1..n_max: normal logits of random spread (most
    rows), uniform codes over the whole format, or a narrow band near the maximum code;
    masks of random density (often none, sometimes nearly all)."""
    f, rows = cfg.in_fmt, []
    for _ in range(count):
        n = int(rng.integers(1, cfg.n_max + 1))
        kind = rng.random()
        if kind < 0.6:
            x = golden.random_rows(cfg, rng, 1, n=n)[0]
        elif kind < 0.8:
            x = rng.integers(f.min, f.max + 1, n)
        else:
            x = rng.integers(max(f.min, f.max - 40), f.max + 1, n)
        density = rng.choice([0.0, 0.0, 0.25, 0.9]) if cfg.mask else 0.0
        rows.append((x.tolist(), (rng.random(n) < density).tolist()))
    return rows


def _directed_rows(cfg):
    """Rows with known structure (each at most ``n_max`` long)."""
    f, n = cfg.in_fmt, cfg.n_max
    ramp = [f.min + (f.max - f.min) * i // max(n - 1, 1) for i in range(n)]
    rows = [
        [0] * n,                                    # all equal: 1/n each
        [f.min] * n,                                # all at the most negative code
        [f.max] * n,                                # all at the largest code
        [f.min] * (n - 1) + [f.max],                # one-hot, the maximum arriving last
        [f.max] + [f.min] * (n - 1),                # one-hot, the maximum first
        ramp,                                       # ascending: K rises on every element
        ramp[::-1],                                 # descending
        [f.min if i % 2 else f.max for i in range(n)],
        [min(max(i - n // 2, f.min), f.max) for i in range(n)],     # one code apart
        [f.max], [f.min], [0],                      # N = 1
    ]
    out = [(x, [False] * len(x)) for x in rows]
    if cfg.mask:
        out += [
            (ramp, [i == n - 1 for i in range(n)]),         # the maximum masked
            (ramp, [i % 2 == 0 for i in range(n)]),
            ([3] * n, [True] * n),                          # all masked
            ([f.max], [True]),                              # N = 1, masked
            (ramp[::-1], [i == 0 for i in range(n)]),       # the first element masked
        ]
    return out


def _words(cfg, rows, *, lasts=None):
    """``i`` payload words of rows (``last`` at each row's end unless ``lasts`` is given)."""
    xs = [v for x, _ in rows for v in x]
    masks = [v for _, mask in rows for v in mask]
    if lasts is None:
        lasts = [i == len(x) - 1 for x, _ in rows for i in range(len(x))]
    values = {"x": xs, "last": lasts}
    if cfg.mask:
        values["mask"] = masks
    return pack(cfg.input_fields, values)


def _check(cfg, words, seed, *, valid_prob=0.5, ready_prob=0.5):
    want = golden.words(cfg, words)
    out, cycles = run_streams(Softmax(cfg), {"i": words}, {"o": len(want)}, seed=seed,
                              valid_prob=valid_prob, ready_prob=ready_prob,
                              max_cycles=500 + 12 * len(words))
    got = out["o"]
    if got != want:
        bad = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
        pytest.fail(f"seed {seed}: {len(got)} words for {len(want)} expected; first "
                    f"difference at word {bad}")
    return cycles


# -- random and directed rows ------------------------------------------------------------------

@pytest.mark.parametrize("seed, valid_prob, ready_prob", [(1, 0.5, 0.5), (2, 0.9, 0.3)])
@pytest.mark.parametrize("cfg", PRESET_CONFIGS + MATRIX + CORNERS)
def test_random_rows(cfg, seed, valid_prob, ready_prob):
    """Random rows back to back with random input gaps and output backpressure (seed 2: a
    slow reader, so pass 1 keeps running into unread rows)."""
    rows = _random_rows(cfg, np.random.default_rng(seed), 40)
    _check(cfg, _words(cfg, rows), seed, valid_prob=valid_prob, ready_prob=ready_prob)


def _random_config(rng):
    """A valid config with every field drawn (rejected draws are redrawn)."""
    while True:
        exp = rng.choice(["table", "pwl", "ibert"])
        kw = dict(in_format=f"s{rng.randint(4, 16)}", in_scale=2.0 ** rng.uniform(-12, -1.5),
                  n_max=rng.choice([1, 2, 3, 5, 8, 12]), exp=exp,
                  exp_frac=rng.randint(4, 12 if exp == "table" else 16),
                  exp_segments=2 ** rng.randint(1, 8), pwl_frac=rng.randint(0, 16),
                  recip=rng.choice(["table", "pwl"]), recip_bits=rng.randint(2, 10),
                  newton=rng.random() < 0.5, output=rng.choice(["u8", "s8", "log2"]),
                  mask=rng.random() < 0.5, acc_frac=rng.choice([0, 0, rng.randint(1, 24)]),
                  out_levels=rng.choice([256, 255]))
        try:
            return SoftmaxConfig(**kw)
        except ConfigError:
            continue


@pytest.mark.parametrize("seed", range(24))
def test_random_configs(seed):
    """Random configs (every field drawn), random rows with gaps and backpressure."""
    cfg = _random_config(random.Random(seed))
    rows = _random_rows(cfg, np.random.default_rng(seed), 16)
    try:
        _check(cfg, _words(cfg, rows), seed)
    except BaseException:
        print(f"config of seed {seed}: {cfg}")
        raise


@pytest.mark.parametrize("cfg", PRESET_CONFIGS)
def test_random_rows_full_rate(cfg):
    """No gaps, no backpressure, and then a reader 10x slower than the writer (pass 1 fills
    both banks and must wait)."""
    words = _words(cfg, _random_rows(cfg, np.random.default_rng(2), 30))
    _check(cfg, words, 2, valid_prob=1.0, ready_prob=1.0)
    _check(cfg, words, 3, valid_prob=1.0, ready_prob=0.1)


@pytest.mark.parametrize("cfg", PRESET_CONFIGS + MATRIX[::5] + CORNERS)
def test_directed_rows(cfg):
    _check(cfg, _words(cfg, _directed_rows(cfg)), 4)


@pytest.mark.parametrize("cfg", PRESET_CONFIGS + CORNERS[:3])
def test_rows_longer_than_n_max_are_split(cfg):
    """``last`` only after 2 n_max + 3 elements (and once after exactly n_max): the n_max-th
    element ends each row and its output carries ``last``."""
    rng = np.random.default_rng(5)
    f, n = cfg.in_fmt, cfg.n_max
    lengths = [2 * n + 3, n, 1, n + 1]
    xs = [rng.integers(max(f.min, -60), min(f.max, 60) + 1, size).tolist() for size in lengths]
    rows = [(x, (rng.random(len(x)) < 0.2).tolist()) for x in xs]
    words = _words(cfg, rows)
    out = golden.unpack_outputs(cfg, golden.words(cfg, words))
    assert out["last"].sum() == sum(-(-size // n) for size in lengths)    # the model splits
    _check(cfg, words, 5)


def test_unfinished_row_waits():
    """A row without its end produces nothing; its end then releases it."""
    cfg = SMALL
    rows = [([1, 2, 3], [False] * 3), ([4, 5], [False, False])]
    words = _words(cfg, rows)
    want = golden.words(cfg, words)
    out, _ = run_streams(Softmax(cfg), {"i": words[:4]}, {"o": 3}, settle=60)
    assert out["o"] == want[:3]


def test_reset_midstream():
    """A reset with rows in both banks, the reciprocal and the output pipeline; the rows
    after it come out exactly (nothing of the old rows leaks through)."""
    cfg = _preset("default")
    rng = np.random.default_rng(6)
    first = _words(cfg, _random_rows(cfg, rng, 12))
    second = _words(cfg, _random_rows(cfg, rng, 10))
    want = golden.words(cfg, second)
    for at in (17, 60):
        out, _ = run_streams(Softmax(cfg), {"i": first}, {"o": 10 ** 6}, seed=at,
                             valid_prob=0.8, ready_prob=0.6,
                             reset_at=(at, {"i": second}, {"o": len(want)}))
        assert out["o"] == want, f"reset at {at}"


def test_one_edge_reset_at_every_phase():
    """A reset of one clock edge, at each of ``latency + 8`` consecutive cycles of a stream of
    one- and two-element rows (a row end in almost every stage): the rows after it come out
    exactly. The pipelines reset only their control tags (data registers have no reset, for
    the iCE40 DSPs); a tag left out, such as ``row_end``, sends a phantom row on."""
    cfg = _preset("tiny")
    rng = np.random.default_rng(11)
    first = _words(cfg, [(x, np.zeros(len(x), bool)) for x in
                         (rng.integers(-40, 40, int(rng.integers(1, 3))) for _ in range(40))])
    second = _words(cfg, _random_rows(cfg, rng, 4))
    want = golden.words(cfg, second)
    for at in range(6, 6 + cfg.latency + 8):
        out, _ = run_streams(Softmax(cfg), {"i": first}, {"o": 10 ** 6},
                             reset_at=(at, {"i": second}, {"o": len(want)}))
        assert out["o"] == want, f"reset at {at}"


# -- timing ------------------------------------------------------------------------------------

def _timing(cfg, words, *, max_cycles=5000):
    """Drive ``words`` at full rate with ``o.ready`` high; returns the numbers of the clock
    edges that take each ``i`` beat and each ``o`` beat. A beat taken at edge ``a`` whose
    output moves at edge ``b`` has ``o.valid`` high ``b - a`` edges after ``a``, ``a``
    counted: the latency."""
    dut = Softmax(cfg)
    n_out = len(golden.words(cfg, words))
    taken, given = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        pending, cycle = list(words), 0
        while (pending or len(given) < n_out) and cycle < max_cycles:
            if pending:
                ctx.set(dut.i.payload.as_value(), pending[0])
            ctx.set(dut.i.valid, bool(pending))
            _, _, ready, valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            cycle += 1
            if pending and ready:
                pending.pop(0)
                taken.append(cycle)
            if valid:
                given.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return taken, given, dut.latency


@pytest.mark.parametrize("cfg", PRESET_CONFIGS + MATRIX[::3] + CORNERS)
def test_latency(cfg):
    """One-element row into an empty block: ``o.valid`` rises ``config.latency`` edges after
    the edge that takes the beat (that edge counted), for every pipeline variant."""
    taken, given, latency = _timing(cfg, _words(cfg, [([0], [False])]))
    assert given[0] - taken[0] == cfg.latency == latency


def _row_overhead(cfg, n):
    """Documented extra cycles per back-to-back row of ``n`` elements (see ``Softmax``)."""
    return max(0, -(-(cfg.latency - 5 - n) // 2))


FULL_PRESETS = [pytest.param(PRESETS[name], id=f"full-{name}") for name in PRESETS]


@pytest.mark.parametrize("cfg", PRESET_CONFIGS + FULL_PRESETS + CORNERS[3:5])
def test_throughput_full_rows(cfg):
    """Rows of n_max elements back to back, no gaps, no backpressure: one element per cycle
    in and out, plus the documented per-row overhead (none once n_max >= latency - 5, so
    every preset but ``tiny`` streams without a gap)."""
    rows, rng = 12, np.random.default_rng(7)
    words = _words(cfg, [(x.tolist(), [False] * cfg.n_max)
                         for x in golden.random_rows(cfg, rng, rows)])
    taken, given, _ = _timing(cfg, words)
    elements = rows * cfg.n_max
    assert len(taken) == len(given) == elements
    bound = elements + rows * _row_overhead(cfg, cfg.n_max)
    assert taken[-1] - taken[0] + 1 <= bound, (taken[-1] - taken[0] + 1, bound)
    assert given[-1] - given[0] + 1 <= bound, (given[-1] - given[0] + 1, bound)
    assert given[-1] - taken[-1] == cfg.latency + cfg.n_max - 1


@pytest.mark.parametrize("n", [1, 3])
def test_throughput_short_rows(n):
    """Rows shorter than ``latency - 5`` cost the documented overhead and no more."""
    cfg = PRESETS["tiny"]
    rows = 16
    words = _words(cfg, [([i - n] * n, [False] * n) for i in range(rows)])
    taken, given, _ = _timing(cfg, words)
    assert len(given) == rows * n
    assert taken[-1] - taken[0] + 1 <= rows * (n + _row_overhead(cfg, n))


# -- the leading-zero helper -------------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 9])
def test_leading_zeros_exhaustive(width):
    value = Signal(width)
    count, zero = leading_zeros(value)
    m = Module()
    c, z, n = Signal(len(count)), Signal(), Signal(width)
    m.d.comb += [c.eq(count), z.eq(zero), n.eq(normalize(value, count))]
    bad = []

    async def bench(ctx):
        for x in range(1 << width):
            ctx.set(value, x)
            got = (ctx.get(z), ctx.get(c) if x else None, ctx.get(n))
            want = (int(x == 0), width - x.bit_length() if x else None,
                    x << (width - x.bit_length()) if x else 0)
            if got != want:
                bad.append((x, got, want))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad


# -- full-size presets (slow) ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PRESETS if PRESETS[n].n_max > 16])
def test_full_preset_random_rows(name):
    cfg = PRESETS[name]
    rng = np.random.default_rng(8)
    rows = _random_rows(cfg, rng, 16) + _directed_rows(cfg)
    _check(cfg, _words(cfg, rows), 8)
    _check(cfg, _words(cfg, rows), 9, valid_prob=1.0, ready_prob=1.0)


# -- cocotb: the emitted Verilog on Verilator (and Icarus where installed) -------------------

SPEC = REGISTRY["softmax"]
BEATS = 150


def _check_cocotb(result, config):
    cases = result.result["testcases"]
    for name in ("random_rows", "directed_rows", "reset_midstream"):
        assert cases[name]["mismatches"] == 0
    directed = cases["directed_rows"]["cases"]
    assert any("split twice" in c for c in directed) and any("N=1" in c for c in directed)
    assert config.mask == any("all masked" in c for c in directed)
    tp = cases["throughput"]
    assert tp["end_to_end"] >= tp["bound"] > 0
    if config.n_max >= 64:
        assert tp["end_to_end"] > 0.9
    assert cases["reset_midstream"]["in_flight"] > 0 and cases["reset_midstream"]["stale"] == 0


@pytest.mark.cocotb
@pytest.mark.parametrize("preset", list(SPEC.presets))
def test_verilator_preset(preset, tmp_path):
    """random_rows, directed_rows, throughput, reset_midstream on one Verilator build."""
    result = simulate_preset(SPEC, preset, tmp_path, simulator="verilator", beats=BEATS)
    _check_cocotb(result, SPEC.presets[preset])


@pytest.mark.cocotb
@needs_icarus
def test_icarus_tiny(tmp_path):
    result = simulate_preset(SPEC, "tiny", tmp_path, simulator="icarus", beats=60)
    _check_cocotb(result, SPEC.presets["tiny"])


@pytest.mark.cocotb
def test_user_inputs_and_cli(tmp_path, monkeypatch, capsys):
    """Rows with lengths and a mask through simulate() and ``accelgen sim --inputs
    --outputs``: y is (rows, n) with the masked code past each row's end, equals the golden
    model, and the recorded errors (with row sums) are the golden model's."""
    from accelgen.cli import main
    config = SPEC.presets["tiny"]
    assert config.mask and config.output == "u8"
    rng = np.random.default_rng(SEED)
    n = config.n_max
    x = golden.random_rows(config, rng, 7)
    lengths = np.array([n, 1, 3, n, 5, 2, n - 1])
    mask = rng.random(x.shape) < 0.3
    mask[3] = True                                       # a row with every element masked
    np.savez(tmp_path / "in.npz", x=x, lengths=lengths, mask=mask)
    result = simulate_passing(SPEC, config, preset="tiny", inputs=tmp_path / "in.npz",
                              outputs=tmp_path / "out.npz",
                              build_root=tmp_path / "build" / "sim", testcases=["user_inputs"])
    user = result.result["testcases"]["user_inputs"]
    assert (user["check"], user["rows"], user["elements"]) == ("passed", 7, int(lengths.sum()))
    want = golden.errors(config, x=x, lengths=lengths, mask=mask)
    errors_like_golden(user["errors"], want)
    assert user["errors"]["row_sum_max_dev"] == pytest.approx(want["row_sum_max_dev"])
    with np.load(tmp_path / "out.npz") as out:
        assert out["y"].shape == x.shape
        np.testing.assert_array_equal(out["y"], golden.softmax(config, x, lengths, mask))
        assert (out["y"][1, 1:] == golden.masked_code(config)).all()

    monkeypatch.chdir(tmp_path)
    argv = ["sim", "softmax", "--preset", "tiny", "--inputs", "in.npz", "--outputs", "o2.npz"]
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["testcases"] == {"user_inputs": True}
    assert data["user_inputs"]["errors"]["row_sum_bound"] == n * 2 ** -8
    assert main(argv + ["--no-check"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^error vs float64: max \d+\.\d\d LSB, mean \d+\.\d\d LSB, bias "
                     r"-?\d+\.\d\d LSB; row sums within \d\.\d{4} of 1", text, re.M), text
    assert "check skipped" in text


@pytest.mark.cocotb
def test_testbench_catches_wrong_rtl(tmp_path):
    """Verilog without the Newton step under a manifest that claims one: the scoreboards
    fail with the seed in the message; the true pairing passes."""
    real = replace(SPEC.presets["tiny"], newton=False, recip_bits=2)
    false_manifest_is_caught(SPEC, real, replace(real, newton=True), tmp_path,
                             ["random_rows", "directed_rows"], "mismatches in random rows")


# -- FPGA: yosys / nextpnr builds ------------------------------------------------------------
# (the self-check harness in the Amaranth simulator, for every one-stream block:
# tests/test_fpga.py)

@pytest.mark.fpga
def test_build_default_ulx3s(tmp_path):
    from accelgen.fpga.flow import build
    r = build(SPEC, SPEC.presets["default"], "ulx3s-85f", tmp_path, preset="default",
              beats=400, seed=2, quick=True)
    check_selfchecked_build(r)
    assert r.resources["BRAM"][0] > 0
