"""Golden model of block ``systolic`` against a reference written from the spec (the module
docstring of :mod:`accelgen.generators.systolic`) in plain Python integers, plus hand-computed
cases. No Amaranth: these tests pin the model the RTL is later held to."""

import dataclasses
import itertools
import json
import math
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from accelgen.formats import FLOAT_FORMATS, FP32, round_to_float
from accelgen.generators.base import field_offsets
from accelgen.generators.cast import CastConfig
from accelgen.generators.systolic import COUNTERS, ERRORS, OUTPUTS, PRESETS, SystolicConfig
from accelgen.sim.golden import cast as cast_golden
from accelgen.sim.golden import systolic as golden
from accelgen.sim.golden import systolic_program as prog
from accelgen.sim.golden.systolic import Command, Model
from accelgen.sim.golden.elements import FP32_NAN, code_values, fp32_value, to_codes
from accelgen.sim.golden.systolic_program import Program, flush_command

DEFAULT = PRESETS["default"]
TWO_FLOWS = replace(PRESETS["tiny"], dataflows=("os", "ws"))

# -- reference: the spec in Python ints --------------------------------------------------------


def _fmt_range(name):
    """(min, max, width) of an operand format spelled ``s8``/``u4``."""
    width = int(name[1:])
    return ((-(1 << (width - 1)), (1 << (width - 1)) - 1, width) if name[0] == "s"
            else (0, (1 << width) - 1, width))


def _formats(cfg, mode):
    name = cfg.modes[0] if mode is None else mode if isinstance(mode, str) else cfg.modes[mode]
    return _fmt_range(name[:2]), _fmt_range(name[2:])     # systolic widths are 4 or 8


def _round(x, shift, rounding):
    q = Fraction(x, 1 << shift)
    if rounding == "floor":
        return math.floor(q)
    if rounding == "half_up":
        return math.floor(q + Fraction(1, 2))
    if rounding == "half_away":
        return (1 if q >= 0 else -1) * math.floor(abs(q) + Fraction(1, 2))
    if rounding == "half_even":
        return round(q)             # Fraction rounds ties to even
    return math.trunc(q)            # toward_zero


def _requant(cfg, cmd, acc):
    q = _round(acc * cmd.mult, cmd.shift, cfg.rounding)
    if cmd.relu:
        q = max(q, 0)
    lo, hi = (-128, 127) if cmd.out_signed else (0, 255)
    return min(hi, max(lo, q + cmd.zero_point))


def _code(value, names):
    return 0 if value is None else names.index(value) if isinstance(value, str) else value


def ref_error(cfg, cmd):
    """Error code, precedence 1, 4, 2, 3 as the golden docstring defines."""
    out, mode = _code(cmd.output, OUTPUTS), _code(cmd.mode, cfg.modes)
    if 0 in (cmd.m, cmd.k, cmd.n):
        return 1
    if out == 3 or (out == 1 and not cfg.requant) or mode >= len(cfg.modes):
        return 4
    if cmd.k > cfg.k_max:
        return 2
    nb = -(-cmd.n // cfg.cols)
    if (cmd.accumulate or cmd.preload or out == 2) and nb * cmd.m > cfg.acc_depth:
        return 3
    flow = cfg.dataflows[_code(cmd.dataflow, cfg.dataflows)]
    if flow == "ws" and cmd.k > cfg.rows and cmd.m > cfg.acc_depth:
        return 3
    return 0


def _ref_float_sum(a_codes, b_codes, cfg, mode):
    """``P``: FP32 products of the codes, added in order to +0 (defined further down)."""
    fmt = cfg.mode_formats[cfg.mode_code(0 if mode is None else mode)]
    total = 0
    for x, y in zip(a_codes, b_codes):
        total = _ref_add(total, _ref_mul(_element(fmt.a, int(x)), _element(fmt.b, int(y))))
    return total


def _ref_convert(cfg, cmd, code):
    """Float output requant: relu, the exact power of two, the cast block's conversion."""
    d = FP32.decode(int(code))
    if cmd.relu and d.sign and not d.nan:
        d = replace(d, sign=0, sig=0, inf=False)
    return cast_golden.convert(replace(d, exp=d.exp + cmd.scale), cfg.out_target,
                               saturate=cfg.out_saturate)


class Reference:
    """Accumulator memory as lists; one command at a time, row by row, lane by lane."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.mem = [[0] * cfg.cols for _ in range(cfg.acc_depth)]

    def ovf(self, v):
        w = self.cfg.acc_width
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        if self.cfg.overflow == "saturate":
            return min(hi, max(lo, v))
        return (v - lo) % (1 << w) + lo

    def run(self, cmd, a, b, c=None):
        """(y as M x N lists or None, output rows in r order with lanes past N zero).
        ``preload`` writes ``c`` (lanes past N as 0) into the rows, then accumulates."""
        cfg = self.cfg
        R, C, D = cfg.rows, cfg.cols, cfg.acc_depth
        M, K, N = cmd.m, cmd.k, cmd.n
        flow = cfg.dataflows[_code(cmd.dataflow, cfg.dataflows)]
        output = OUTPUTS[_code(cmd.output, OUTPUTS)]
        a, b = [[int(x) for x in r] for r in a], [[int(x) for x in r] for r in b]
        y = [[None] * N for _ in range(M)]
        sent = []
        for nb in range(-(-N // C)):
            for m in range(M):
                addr = (nb * M + m) % D
                if cmd.preload:
                    self.mem[addr] = [int(c[m][nb * C + j]) if nb * C + j < N else 0
                                      for j in range(C)]
                init = list(self.mem[addr]) if cmd.accumulate or cmd.preload else [0] * C
                row = []
                for j in range(C):
                    col = nb * C + j

                    def P(k0, k1, m=m, col=col):
                        if cfg.is_float:        # B is +0 past N: inf or NaN in A gives NaN
                            return _ref_float_sum([a[m][k] for k in range(k0, k1)],
                                                  [b[k][col] if col < N else 0
                                                   for k in range(k0, k1)], cfg, cmd.mode)
                        return sum(a[m][k] * b[k][col] for k in range(k0, k1)) if col < N else 0
                    add = _ref_add if cfg.is_float else (lambda x, y: self.ovf(x + y))
                    if flow == "os":
                        v = add(init[j], P(0, K))
                    else:
                        v = init[j]
                        for k0 in range(0, K, R):
                            v = add(v, P(k0, min(K, k0 + R)))
                    row.append(v)
                self.mem[addr] = row
                convert = _ref_convert if cfg.is_float else _requant
                out = [convert(cfg, cmd, v) if output == "requant" else v for v in row]
                out = [v if nb * C + j < N else 0 for j, v in enumerate(out)]
                sent.append(out)
                for j in range(C):
                    if nb * C + j < N:
                        y[m][nb * C + j] = out[j]
        if output == "none":
            return None, []
        return y, sent


def ref_o_words(cfg, rows):
    w, mask = cfg.acc_width, (1 << cfg.acc_width) - 1
    words = [sum((v & mask) << (j * w) for j, v in enumerate(row)) for row in rows]
    if words:
        words[-1] |= 1 << (cfg.cols * w)
    return words


def _pack_slots(values, slot, width):
    return sum((int(v) & ((1 << width) - 1)) << (i * slot) for i, v in enumerate(values))


def _widths(cfg, mode):
    """Element widths of ``a`` and ``b`` in ``mode`` (name or code)."""
    fmt = cfg.mode_formats[cfg.mode_code(0 if mode is None else mode)]
    return fmt.a.width, fmt.b.width


def ref_a_words(cfg, cmd, a):
    """The ``a`` beat order of the spec, written out."""
    R, wa = cfg.rows, _widths(cfg, cmd.mode)[0]
    M, K = cmd.m, cmd.k
    flow = cfg.dataflows[_code(cmd.dataflow, cfg.dataflows)]
    words = []
    for _nb in range(-(-cmd.n // cfg.cols)):
        if flow == "os":
            for mb in range(-(-M // R)):
                for k in range(K):
                    seg = [a[mb * R + i][k] if mb * R + i < M else 0 for i in range(R)]
                    words.append(_pack_slots(seg, cfg.a_width, wa))
        else:
            for kb in range(-(-K // R)):
                for m in range(M):
                    seg = [a[m][kb * R + i] if kb * R + i < K else 0 for i in range(R)]
                    words.append(_pack_slots(seg, cfg.a_width, wa))
    return words


def ref_b_words(cfg, cmd, b):
    C, wb = cfg.cols, _widths(cfg, cmd.mode)[1]
    return [_pack_slots([b[k][nb * C + j] if nb * C + j < cmd.n else 0 for j in range(C)],
                        cfg.b_width, wb)
            for nb in range(-(-cmd.n // C)) for k in range(cmd.k)]


def _operands(cfg, rng, cmd):
    if cfg.is_float:                # element values (the model's input), NaN and inf included
        return prog.random_operands(cfg, rng, cmd.m, cmd.k, cmd.n, cmd.mode or 0)
    (alo, ahi, _), (blo, bhi, _) = _formats(cfg, cmd.mode)
    return (rng.integers(alo, ahi + 1, size=(cmd.m, cmd.k)),
            rng.integers(blo, bhi + 1, size=(cmd.k, cmd.n)))


def _initial(cfg, rng, cmd):
    """A random ``c`` for a ``preload`` command (None otherwise)."""
    if not cmd.preload:
        return None
    if cfg.is_float:
        return prog.random_fp32(rng, (cmd.m, cmd.n))
    half = 1 << (cfg.acc_width - 1)
    return rng.integers(-half, half, size=(cmd.m, cmd.n))


def _check_against_reference(cfg, model, ref, cmd, a, b, c=None):
    res = model.run(cmd, a, b, c)
    err = ref_error(cfg, cmd)
    assert res.err == err, cmd
    if err:
        assert (res.y, res.macs, res.o_words, res.a_words, res.b_words) == (None, 0, [], [], [])
    else:
        if cfg.is_float:        # the reference works on codes
            fmt = cfg.mode_formats[cfg.mode_code(cmd.mode or 0)]
            a, b = to_codes(fmt.a, a, param="a"), to_codes(fmt.b, b, param="b")
            c = None if c is None else golden.fp32_codes(c, param="c")
        y, rows = ref.run(cmd, a, b, c)
        assert (None if res.y is None else res.y.tolist()) == y, cmd
        assert res.o_words == ref_o_words(cfg, rows), cmd
        assert res.macs == cmd.m * cmd.k * cmd.n
        assert res.a_words == ref_a_words(cfg, cmd, a.tolist()), cmd
        assert res.b_words == ref_b_words(cfg, cmd, b.tolist()), cmd
    assert model.memory.tolist() == ref.mem, cmd
    return res


# -- golden against the reference ---------------------------------------------------------------

VARIANTS = {
    **{name: cfg for name, cfg in PRESETS.items()},
    "tiny-ws-only": replace(PRESETS["tiny"], dataflows=("ws",)),
    "tiny-two-flows": TWO_FLOWS,
    "default-sat17": replace(DEFAULT, acc_width=17, overflow="saturate"),
    "default-wrap17": replace(DEFAULT, acc_width=17, overflow="wrap"),
    "default-3modes-floor": replace(DEFAULT, modes=("s8s8", "u8s8", "s4s4"), rounding="floor"),
    "small-memory": replace(TWO_FLOWS, acc_depth=2, overflow="saturate", acc_width=18),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_random_command_sequences_match_reference(variant):
    """Commands of random shapes, modes, dataflows and outputs on one memory, a quarter of
    them errors: results, sent words, consumed words and memory after every command."""
    cfg = VARIANTS[variant]
    rng = np.random.default_rng(sum(map(ord, variant)))
    model, ref = Model(cfg), Reference(cfg)
    count = 12 if cfg.rows >= 16 else 30 if cfg.rows >= 8 else 80
    flows, accumulated, preloaded = set(), 0, 0
    for _ in range(count):
        cmd = prog.random_command(cfg, rng, allow_errors=True)
        a = b = c = None
        if ref_error(cfg, cmd) == 0:
            a, b = _operands(cfg, rng, cmd)
            c = _initial(cfg, rng, cmd)
            flows.add(cmd.dataflow)
            accumulated += cmd.accumulate
            preloaded += cmd.preload
        _check_against_reference(cfg, model, ref, cmd, a, b, c)
    assert flows == set(cfg.dataflows) and accumulated and preloaded


@pytest.mark.parametrize("cfg", [TWO_FLOWS, DEFAULT], ids=["tiny-two-flows", "default"])
@pytest.mark.parametrize("flow", ["os", "ws"])
def test_shapes_not_multiples_of_the_array(cfg, flow):
    """Every M, K, N from 1 to 3*rows+1 (tiny) or the edges around multiples of 4 (default)."""
    R = cfg.rows
    dims = range(1, 3 * R + 2) if R == 2 else (1, R - 1, R, R + 1, 2 * R + 1, 3 * R + 1)
    rng = np.random.default_rng(R)
    model, ref = Model(cfg), Reference(cfg)
    for m in dims:
        for k in dims:
            for n in dims:
                cmd = Command(m, k, n, dataflow=flow, accumulate=bool((m + k + n) % 2))
                _check_against_reference(cfg, model, ref, cmd, *_operands(cfg, rng, cmd))


@pytest.mark.parametrize("mode", DEFAULT.modes)
@pytest.mark.parametrize("flow", ["os", "ws"])
def test_modes_extreme_operands(mode, flow):
    """int4 and u8 operands at their extremes (every product at a corner of its range)."""
    (alo, ahi, _), (blo, bhi, _) = _formats(DEFAULT, mode)
    rng = np.random.default_rng(3)
    model, ref = Model(DEFAULT), Reference(DEFAULT)
    for m, k, n in [(5, 13, 7), (4, 4, 4), (1, 9, 13)]:
        cmd = Command(m, k, n, mode=mode, dataflow=flow)
        a = rng.choice([alo, ahi], size=(m, k))
        b = rng.choice([blo, bhi], size=(k, n))
        _check_against_reference(DEFAULT, model, ref, cmd, a, b)


def test_modes_hand_values():
    cases = {"u8s8": (255, -128, -32640), "s4s4": (-8, -8, 64), "s8s4": (-128, 7, -896),
             "s8s8": (-128, -128, 16384)}
    for mode, (x, w, product) in cases.items():
        y = Model(DEFAULT).run(Command(1, 13, 1, mode=mode), np.full((1, 13), x),
                               np.full((13, 1), w)).y
        assert y.tolist() == [[13 * product]], mode


# -- overflow: os has one step, ws one per K-block -------------------------------------------


def _narrow(overflow):
    return SystolicConfig(rows=2, cols=1, dataflows=("os", "ws"), acc_width=16,
                          overflow=overflow, k_max=4, acc_depth=2)


def test_saturate_os_once_ws_per_block():
    """Products 16384, 16384 | -16256, -16256 (K-blocks of rows=2): os saturates the exact sum
    256 once (no clamp); ws clamps block 0's 32768 to 32767, then adds -32512."""
    a, b = [[-128, -128, 127, 127]], [[-128]] * 4
    cfg = _narrow("saturate")
    assert Model(cfg).run(Command(1, 4, 1, dataflow="os"), a, b).y.tolist() == [[256]]
    assert Model(cfg).run(Command(1, 4, 1, dataflow="ws"), a, b).y.tolist() == [[255]]
    wrap = _narrow("wrap")        # wrapping is modular: both dataflows agree
    assert Model(wrap).run(Command(1, 4, 1, dataflow="os"), a, b).y.tolist() == [[256]]
    assert Model(wrap).run(Command(1, 4, 1, dataflow="ws"), a, b).y.tolist() == [[256]]


def test_saturate_and_wrap_of_the_memory_row():
    """Accumulating onto a full row: saturate sticks at the rail, wrap goes round."""
    a, b = [[-128, -128]], [[-128], [-128]]       # 32768 per command: past s16 max
    for overflow, want in [("saturate", [32767, 32767]), ("wrap", [-32768, 0])]:
        model = Model(_narrow(overflow))
        got = [model.run(Command(1, 2, 1, accumulate=i > 0), a, b).y[0, 0] for i in range(2)]
        assert got == want, overflow


# -- accumulator memory ------------------------------------------------------------------------


@pytest.mark.parametrize("flow", ["os", "ws"])
def test_accumulate_chain_of_three_shapes(flow):
    """raw 5x6x7, then none 3x2x2 (rewrites rows 0-2 with zeros past n), then accumulate 5x3x7
    on what both left."""
    cfg, rng = DEFAULT, np.random.default_rng(5)
    model, ref = Model(cfg), Reference(cfg)
    for cmd in [Command(5, 6, 7, dataflow=flow), Command(3, 2, 2, output="none", dataflow=flow),
                Command(5, 3, 7, accumulate=True, dataflow=flow)]:
        _check_against_reference(cfg, model, ref, cmd, *_operands(cfg, rng, cmd))


def test_accumulate_hand_values_and_lanes_past_n():
    cfg = DEFAULT                                   # 4 columns
    model = Model(cfg)
    model.run(Command(1, 1, 4), [[2]], [[1, 2, 3, 4]])     # row 0 = 2, 4, 6, 8
    res = model.run(Command(1, 1, 1, accumulate=True), [[5]], [[5]])
    assert res.y.tolist() == [[27]]
    assert model.memory[0].tolist() == [27, 4, 6, 8]        # lanes past n keep init
    lane_mask = (1 << cfg.acc_width) - 1
    assert [(res.o_words[0] >> (j * cfg.acc_width)) & lane_mask for j in range(4)] == \
        [27, 0, 0, 0]                                       # ... but are sent as 0
    model.run(Command(1, 1, 1), [[1]], [[1]])               # overwrite: zeros past n
    assert model.memory[0].tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("flow", ["os", "ws"])
def test_output_none_then_accumulate_is_the_concatenated_product(flow):
    cfg, rng = DEFAULT, np.random.default_rng(9)
    m, k1, k2, n = 6, 5, 7, 9
    a1, b1 = _operands(cfg, rng, Command(m, k1, n))
    a2, b2 = _operands(cfg, rng, Command(m, k2, n))
    model = Model(cfg)
    first = model.run(Command(m, k1, n, output="none", dataflow=flow), a1, b1)
    assert (first.y, first.o_words, first.macs) == (None, [], m * k1 * n)
    y = model.run(Command(m, k2, n, accumulate=True, dataflow=flow), a2, b2).y
    a, b = np.hstack([a1, a2]).tolist(), np.vstack([b1, b2]).tolist()
    want = [[sum(a[i][x] * b[x][j] for x in range(k1 + k2)) for j in range(n)] for i in range(m)]
    assert y.tolist() == want


def test_rows_beyond_the_memory_wrap_around():
    """os, no accumulate: NB*M > acc_depth is allowed; row r lands at r mod acc_depth and the
    later row wins."""
    cfg = replace(PRESETS["tiny"], acc_depth=2)      # 2x2 array, 2 memory rows
    a = [[1], [2], [3]]                               # M=3, K=1
    b = [[1, 10, 100]]                                # N=3: NB=2, rows r=0..5
    res = Model(cfg).run(Command(3, 1, 3), a, b)
    assert res.y.tolist() == [[1, 10, 100], [2, 20, 200], [3, 30, 300]]
    model = Model(cfg)
    model.run(Command(3, 1, 3), a, b)
    # r=4 (nb=1, m=1) -> address 0 holds [200, 0]; r=5 (nb=1, m=2) -> address 1 holds [300, 0]
    assert model.memory.tolist() == [[200, 0], [300, 0]]


def test_model_memory_survives_and_starts_at_zero():
    model = Model(DEFAULT)
    assert model.memory.shape == (64, 4) and not model.memory.any()
    model.run(Command(2, 1, 1, output="none"), [[3], [4]], [[5]])
    res = model.run(Command(2, 1, 1, accumulate=True), [[0], [1]], [[1]])
    assert res.y.tolist() == [[15], [21]]


# -- requantization ----------------------------------------------------------------------------


@pytest.mark.parametrize("acc, mult, shift, zp, relu, signed, want", [
    (1000, 3, 4, 0, False, True, 127),      # 187.5 -> 188, saturated to s8
    (1000, 3, 4, 0, False, False, 188),     # fits u8: the lane holds 188, not -68
    (1000, 3, 4, 100, False, False, 255),   # 288 saturated to u8
    (1000, 1, 4, -10, False, True, 53),     # 62.5 -> 63 (half_up), - 10
    (-1000, 1, 4, 5, False, True, -57),     # -62.5 -> -62 (ties toward +inf), + 5
    (-1000, 1, 4, 5, True, True, 5),        # relu before the zero point
    (-1000, 1, 4, 5, False, False, 0),      # u8 floor
    (-1000, 1, 0, 0, False, True, -128),    # shift 0 keeps acc
])
def test_requant_hand_values(acc, mult, shift, zp, relu, signed, want):
    cmd = Command(1, 1, 1, output="requant", mult=mult, shift=shift, zero_point=zp, relu=relu,
                  out_signed=signed)
    res = Model(DEFAULT).run(cmd, [[125 if acc > 0 else -125]], [[8]])
    assert res.y.tolist() == [[want]]
    lane = res.o_words[0] & ((1 << DEFAULT.acc_width) - 1)
    assert lane == want & ((1 << DEFAULT.acc_width) - 1)     # sign-extended into s32
    assert res.o_words[0] >> (DEFAULT.cols * DEFAULT.acc_width) == 1        # last


def test_requant_of_the_stored_accumulator():
    """Requant reads the overflowed row, not the exact sum: 65536 saturates to 32767 in s16
    (32767 / 512 -> 64, where 65536 / 512 would be 128) or wraps to 0."""
    cfg = replace(_narrow("saturate"), requant=True, mult_bits=8)
    a, b = [[-128, -128, -128, -128]], [[-128]] * 4             # exact 65536
    cmd = Command(1, 4, 1, output="requant", mult=1, shift=9, out_signed=False)
    assert Model(cfg).run(cmd, a, b).y.tolist() == [[64]]      # 32767 / 512 = 63.998 -> 64
    cfg = replace(cfg, overflow="wrap")                         # 65536 wraps to 0
    assert Model(cfg).run(cmd, a, b).y.tolist() == [[0]]


@pytest.mark.parametrize("rounding", ["floor", "half_up", "half_away", "half_even",
                                      "toward_zero"])
def test_requant_roundings_match_reference(rounding):
    cfg = replace(DEFAULT, rounding=rounding)
    rng = np.random.default_rng(len(rounding))
    model, ref = Model(cfg), Reference(cfg)
    for _ in range(25):
        cmd = replace(prog.random_command(cfg, rng), output="requant",
                      shift=int(rng.integers(0, 20)), mult=int(rng.integers(0, 8)))
        if ref_error(cfg, cmd) == 0:
            _check_against_reference(cfg, model, ref, cmd, *_operands(cfg, rng, cmd),
                                     _initial(cfg, rng, cmd))


# -- payload level -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_payload_round_trip(variant):
    """Model.words on the packed command and the consumed words sends what Model.run sends,
    and pulls exactly the beats it needs."""
    cfg = VARIANTS[variant]
    rng = np.random.default_rng(1)
    run, words = Model(cfg), Model(cfg)
    for _ in range(8 if cfg.rows >= 16 else 25):
        cmd = prog.random_command(cfg, rng, allow_errors=True)
        a = b = c = None
        if ref_error(cfg, cmd) == 0:
            a, b = _operands(cfg, rng, cmd)
            c = _initial(cfg, rng, cmd)
        res = run.run(cmd, a, b, c)
        word = golden.pack_command(cfg, cmd)
        assert word < 1 << sum(f.width for f in cfg.cmd_fields)
        assert golden.unpack_command(cfg, word) == cmd.coded(cfg)
        a_it, b_it = iter(res.a_words + ["next a"]), iter(res.b_words + ["next b"])
        c_it = iter(res.c_words + ["next c"])
        assert words.words(word, a_it, b_it, c_it) == (res.o_words, res.err, res.macs)
        assert (next(a_it), next(b_it), next(c_it)) == ("next a", "next b", "next c")
        assert np.array_equal(run.memory, words.memory)
        y = golden.unpack_rows(cfg, cmd, res.o_words)
        assert (y is None and res.y is None) or y.tolist() == res.y.tolist()


def _used_bits(cfg, cmd, make, shape, fmt):
    """Bits of each beat that carry an element: the words of a matrix of all ones bits."""
    lo, hi, _ = fmt
    return make(cfg, cmd, np.full(shape, -1 if lo < 0 else hi))


@pytest.mark.parametrize("mode", ["s4s4", "s8s4", "u8s8"])
@pytest.mark.parametrize("flow", ["os", "ws"])
def test_garbage_in_unused_bits_is_ignored(mode, flow):
    """Random bits above each 4-bit element in its 8-bit slot, in padding elements past M or K
    and in lanes past N change nothing."""
    cfg, rng = DEFAULT, np.random.default_rng(2)
    cmd = Command(5, 6, 7, mode=mode, dataflow=flow)
    a, b = _operands(cfg, rng, cmd)
    clean_model = Model(cfg)
    clean = clean_model.run(cmd, a, b)
    width_a, width_b = cfg.rows * cfg.a_width, cfg.cols * cfg.b_width
    fmt_a, fmt_b = _formats(cfg, mode)
    used_a = _used_bits(cfg, cmd, golden.a_words, (5, 6), fmt_a)
    used_b = _used_bits(cfg, cmd, golden.b_words, (6, 7), fmt_b)
    dirty_a = [w | (int.from_bytes(rng.bytes(8), "little") % (1 << width_a) & ~u)
               for w, u in zip(clean.a_words, used_a)]
    dirty_b = [w | (int.from_bytes(rng.bytes(8), "little") % (1 << width_b) & ~u)
               for w, u in zip(clean.b_words, used_b)]
    assert dirty_a != clean.a_words and dirty_b != clean.b_words   # the test does dirty them
    model = Model(cfg)
    got = model.words(golden.pack_command(cfg, cmd), iter(dirty_a), iter(dirty_b))
    assert got == (clean.o_words, 0, 5 * 6 * 7)
    assert np.array_equal(model.memory, clean_model.memory)   # lanes past N too


def test_payload_reads_each_column_blocks_own_a_beats():
    """A is streamed once per column block; the hardware uses the copy it receives."""
    cfg = PRESETS["tiny"]                             # 2x2, s8s8
    cmd = Command(1, 1, 4)                            # NB=2, one a beat per block
    model = Model(cfg)
    o, err, _ = model.words(golden.pack_command(cfg, cmd), iter([1, 2]), iter([0x0101, 0x0101]))
    assert err == 0 and golden.unpack_rows(cfg, cmd, o).tolist() == [[1, 1, 2, 2]]


# -- errors ------------------------------------------------------------------------------------

THREE_MODES = replace(DEFAULT, modes=("s8s8", "u8s8", "s4s4"))


@pytest.mark.parametrize("cfg, cmd, err", [
    (DEFAULT, Command(0, 4, 4), 1),
    (DEFAULT, Command(4, 0, 4), 1),
    (DEFAULT, Command(4, 4, 0), 1),
    (DEFAULT, Command(4, 65, 4), 2),                                  # k_max 64
    (DEFAULT, Command(65, 4, 1, accumulate=True), 3),                 # acc_depth 64
    (DEFAULT, Command(33, 4, 5, output="none"), 3),                   # NB*M = 66
    (DEFAULT, Command(65, 5, 1, dataflow="ws"), 3),                   # ws, K > R, M > depth
    (DEFAULT, Command(4, 4, 4, output=3), 4),
    (PRESETS["tiny"], Command(2, 2, 2, output="requant"), 4),         # no requant stage
    (THREE_MODES, Command(2, 2, 2, mode=3), 4),
    # precedence: 1 before 4 before 2 before 3
    (DEFAULT, Command(0, 4, 4, output=3), 1),
    (DEFAULT, Command(0, 65, 4), 1),
    (THREE_MODES, Command(4, 100, 4, mode=3), 4),
    (DEFAULT, Command(65, 4, 1, accumulate=True, output=3), 4),
    (PRESETS["tiny"], Command(17, 4, 1, output="requant", accumulate=True), 4),
    (DEFAULT, Command(65, 65, 1, accumulate=True), 2),
])
def test_error_codes_consume_nothing_and_keep_memory(cfg, cmd, err):
    assert golden.error_code(cfg, cmd) == err == ref_error(cfg, cmd)
    model = Model(cfg)
    model.run(Command(2, 2, 2), [[1, 2], [3, 4]], [[5, 6], [7, 8]])
    before = model.memory.copy()
    res = model.run(cmd)                              # operands not needed on error
    assert (res.err, res.y, res.macs, res.o_words, res.a_words, res.b_words) == \
        (err, None, 0, [], [], [])
    a_it, b_it = iter(["a beat"]), iter(["b beat"])
    assert model.words(golden.pack_command(cfg, cmd), a_it, b_it) == ([], err, 0)
    assert (next(a_it), next(b_it)) == ("a beat", "b beat")
    assert np.array_equal(model.memory, before)
    assert golden.a_words(cfg, cmd, None) == [] and golden.unpack_rows(cfg, cmd, []) is None


@pytest.mark.parametrize("cmd", [
    Command(65, 4, 4),                      # os, no accumulate: rows wrap around the memory
    Command(65, 4, 1, dataflow="ws"),       # ws with K <= R keeps no partial sums
    Command(64, 5, 1, dataflow="ws", accumulate=True),
    Command(32, 4, 8, output="none"),       # NB*M = 64 exactly
])
def test_error_3_boundaries_run(cmd):
    rng = np.random.default_rng(4)
    _check_against_reference(DEFAULT, Model(DEFAULT), Reference(DEFAULT), cmd,
                             *_operands(DEFAULT, rng, cmd))


@pytest.mark.parametrize("cfg", list(VARIANTS.values()), ids=sorted(VARIANTS))
def test_random_command_valid_unless_asked(cfg):
    rng = np.random.default_rng(0)
    seen = {golden.error_code(cfg, prog.random_command(cfg, rng)) for _ in range(200)}
    assert seen == {0}
    seen = {golden.error_code(cfg, prog.random_command(cfg, rng, allow_errors=True))
            for _ in range(600)}
    expressible = {0, 1, 2, 3, 4} - (set() if cfg.k_max < (1 << cfg.dim_bits) - 1 else {2})
    assert seen == expressible


# -- input checks and the other conveniences ------------------------------------------------


@pytest.mark.parametrize("cfg, call, message", [
    (DEFAULT, lambda m: m.run(Command(2, 2, 2), [[1, 2]], [[1, 2], [3, 4]]),
     r"^a: shape \(1, 2\) is not allowed; expected \(2, 2\)$"),
    (DEFAULT, lambda m: m.run(Command(1, 1, 1, mode="s4s4"), [[8]], [[1]]),
     r"^a: values outside s4 \[-8, 7\] are not allowed in mode 's4s4'$"),
    (DEFAULT, lambda m: m.run(Command(1, 1, 1), [[1.5]], [[1]]),
     r"^a: dtype float64 is not allowed; expected integers$"),
    (DEFAULT, lambda m: m.run(Command(1, 1, 1, mode="s2s2"), [[1]], [[1]]),
     r"^mode: 's2s2' is not allowed; expected one of 's8s8', 'u8s8', 's4s4', 's8s4' or a "
     r"code from 0 to 3$"),
    (DEFAULT, lambda m: m.run(Command(1 << 16, 1, 1)),
     r"^m: 65536 is not allowed; expected an integer from 0 to 65535$"),
    (PRESETS["tiny"], lambda m: m.run(Command(1, 1, 1, dataflow=1)),
     r"^dataflow: 1 is not allowed; expected a name or a code from 0 to 0 \(one dataflow "
     r"built: no dataflow field\)$"),
    (PRESETS["tiny"], lambda m: m.run(Command(1, 1, 1, dataflow="ws")),
     r"^dataflow: 'ws' is not allowed; expected one of 'os' or a code from 0 to 0$"),
    (DEFAULT, lambda m: m.run(Command(1, 1, 1, output="requant", shift=64)),
     r"^shift: 64 is not allowed; expected an integer from 0 to 63$"),
    (DEFAULT, lambda m: m.run(Command(1, 1, 1, output=4)),
     r"^output: 4 is not allowed; expected a name or a code from 0 to 3$"),
    (DEFAULT, lambda m: m.run(Command(1, 1, 1)),
     r"^a: None is not allowed; expected an integer matrix$"),
    (DEFAULT, lambda m: m.words(golden.pack_command(DEFAULT, Command(1, 3, 1)), [1, 2], [1]),
     r"^a_iter: ran out after 2 beats; the command consumes 3$"),
])
def test_input_errors_are_one_line_value_errors(cfg, call, message):
    with pytest.raises(ValueError, match=message):
        call(Model(cfg))


def test_unpack_rows_checks_last_count_and_lanes_past_n():
    cfg = DEFAULT
    cmd = Command(3, 2, 5)                                  # NB=2: 6 rows
    res = Model(cfg).run(cmd, *_operands(cfg, np.random.default_rng(0), cmd))
    assert golden.unpack_rows(cfg, cmd, res.o_words).tolist() == res.y.tolist()
    last = 1 << (cfg.cols * cfg.acc_width)
    with pytest.raises(ValueError, match=r"^o_words: 5 words is not allowed; expected 6"):
        golden.unpack_rows(cfg, cmd, res.o_words[:5])
    with pytest.raises(ValueError, match=r"^o_words: last is set on rows \[\]; expected it on "
                                         r"row 5 only$"):
        golden.unpack_rows(cfg, cmd, res.o_words[:5] + [res.o_words[5] ^ last])
    with pytest.raises(ValueError, match=r"^o_words: last is set on rows \[2, 5\]"):
        golden.unpack_rows(cfg, cmd, res.o_words[:2] + [res.o_words[2] | last]
                           + res.o_words[3:])
    stray = res.o_words[:4] + [res.o_words[4] | 1 << (3 * cfg.acc_width)] + res.o_words[5:]
    with pytest.raises(ValueError, match=r"^o_words: row 4 lane 3 \(past n=5\) holds 1; "):
        golden.unpack_rows(cfg, cmd, stray)
    assert golden.unpack_rows(cfg, replace(cmd, output="none"), []) is None


def test_requant_parameters_have_no_fields_without_the_stage():
    cfg = PRESETS["tiny"]
    cmd = Command(1, 1, 1, mult=5, shift=3, zero_point=-2, relu=True, out_signed=False)
    assert golden.pack_command(cfg, cmd) == golden.pack_command(cfg, Command(1, 1, 1))
    assert golden.unpack_command(cfg, golden.pack_command(cfg, cmd)) == cmd.coded(cfg)
    assert cmd.coded(cfg) == Command(1, 1, 1, output=0, dataflow=0, mode=0)
    packed = golden.pack_command(DEFAULT, cmd)
    assert golden.unpack_command(DEFAULT, packed) == replace(cmd, output=0, dataflow=0, mode=0)


def test_unpack_rsp_fields():
    cfg = DEFAULT
    w = cfg.counter_width
    word = 3 | (10 << 3) | (7 << (3 + w)) | (99 << (3 + 5 * w))
    assert golden.unpack_rsp(cfg, word) == {"err": 3, "cycles": 10, "busy": 7, "stall_a": 0,
                                            "stall_b": 0, "stall_out": 0, "macs": 99}


def test_gemm():
    cfg = DEFAULT
    a, b = [[1, 2], [3, 4]], [[5, 6], [7, 8]]
    assert golden.gemm(cfg, a, b).tolist() == [[19, 22], [43, 50]]
    assert golden.gemm(cfg, a, b, [[1, -1], [0, 100]], dataflow="ws").tolist() == \
        [[20, 21], [43, 150]]
    assert golden.gemm(cfg, a, b, mult=1, shift=1).tolist() == [[10, 11], [22, 25]]
    assert golden.gemm(cfg, [[-8]], [[7]], mode="s4s4").tolist() == [[-56]]
    with pytest.raises(ValueError, match=r"^a, b: a \(1 x 65\) \. \(65 x 1\) product is not "
                                         r"allowed here; it is err 2 \(k beyond k_max\)$"):
        golden.gemm(cfg, np.ones((1, 65), int), np.ones((65, 1), int))
    with pytest.raises(ValueError, match=r"^c: values outside s32"):
        golden.gemm(cfg, a, b, [[1 << 31, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"^mul: unknown argument"):
        golden.gemm(cfg, a, b, mul=3)
    assert golden.ARGUMENTS == ("a", "b", "c")


def test_check_arrays():
    cfg = DEFAULT
    a, b = np.ones((2, 3), int), np.ones((3, 4), int)
    golden.check_arrays(cfg, a=a, b=b, c=np.zeros((2, 4), int))
    golden.check_arrays(cfg, strict=False, a=a * 1000, b=b)          # values not checked
    with pytest.raises(ValueError, match=r"^a: values outside s8 \[-128, 127\]"):
        golden.check_arrays(cfg, a=a * 1000, b=b)
    with pytest.raises(ValueError, match=r"^c: shape \(4, 2\) is not allowed; expected "
                                         r"\(2, 4\)$"):
        golden.check_arrays(cfg, strict=False, a=a, b=b, c=np.zeros((4, 2), int))
    with pytest.raises(ValueError, match=r"^b: None is not allowed"):
        golden.check_arrays(cfg, a=a)
    with pytest.raises(ValueError, match=r"^d: unknown array; allowed are a, b, c$"):
        golden.check_arrays(cfg, a=a, b=b, d=a)
    with pytest.raises(ValueError, match=r"err 3 \(results beyond the accumulator memory\)$"):
        golden.check_arrays(cfg, strict=False, a=np.ones((65, 1), int), b=np.ones((1, 1), int),
                            c=np.zeros((65, 1), int))


def test_random_operands_cover_the_formats():
    rng = np.random.default_rng(0)
    for mode in DEFAULT.modes:
        a, b = prog.random_operands(DEFAULT, rng, 40, 50, 30, mode)
        (alo, ahi, _), (blo, bhi, _) = _formats(DEFAULT, mode)
        assert a.shape == (40, 50) and b.shape == (50, 30)
        assert (a.min(), a.max(), b.min(), b.max()) == (alo, ahi, blo, bhi), mode


# -- the command format: every constant read from the config's fields --------------------------

LAYOUTS = {**{name: cfg for name, cfg in PRESETS.items()},
           **{f"{name}-requant-{not cfg.requant}": replace(cfg, requant=not cfg.requant)
              for name, cfg in PRESETS.items()},
           "narrow": replace(DEFAULT, dim_bits=5, k_max=31, mult_bits=3, counter_width=20,
                             modes=("s8s8", "u8s8", "s4s4"))}


def _field_range(f):
    return ((-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed
            else (0, (1 << f.width) - 1))


@pytest.mark.parametrize("variant", sorted(LAYOUTS))
def test_golden_constants_are_the_config_field_layout(variant):
    """Every width, range and code count the golden model uses is that of the config's
    ``cmd_fields``/``rsp_fields``: each field takes its extreme values through pack and unpack
    (at its place in the word) and refuses one past them, and the derived constants equal the
    field list."""
    cfg = LAYOUTS[variant]
    fmt = golden.command_format(cfg)
    fields = {f.name: f for f in cfg.cmd_fields}
    offsets = field_offsets(cfg.cmd_fields)
    twin = {f.name: f for f in replace(cfg, requant=True).cmd_fields} if \
        cfg.acc_width + cfg.mult_bits <= 62 else fields
    plain = [f.name for f in replace(cfg, requant=False).cmd_fields]
    assert fmt.requant_params == tuple(n for n in twin if n not in plain)
    assert set(fmt.requant_params) <= set(fields) if cfg.requant \
        else not set(fmt.requant_params) & set(fields)
    assert set(fmt.requant_params) <= {f.name for f in dataclasses.fields(Command)}
    for name, f in twin.items():        # requant parameters checked even without the stage
        assert (fmt.fields[name].width, fmt.fields[name].signed) == (f.width, f.signed), name
    base = Command(1, 1, 1)
    for name, f in fields.items():
        lo, hi = _field_range(f)
        assert fmt.range(name) == (lo, hi), name
        offset, width, _ = offsets[name]
        for value in (lo, hi):
            word = golden.pack_command(cfg, replace(base, **{name: value}))
            assert (word >> offset) & ((1 << width) - 1) == value & ((1 << width) - 1), name
            assert getattr(golden.unpack_command(cfg, word), name) == value, name
        for value in (lo - 1, hi + 1):
            with pytest.raises(ValueError, match=rf"^{name}: "):
                golden.pack_command(cfg, replace(base, **{name: value}))
    if not cfg.is_float:
        assert fmt.format("zero_point") == golden.IntFormat(twin["zero_point"].width,
                                                            twin["zero_point"].signed)
    assert fmt.dim_max == (1 << fields["m"].width) - 1 == (1 << fields["n"].width) - 1
    assert fmt.output_codes == 1 << fields["output"].width
    assert [golden.error_code(cfg, replace(base, output=o))
            for o in range(len(OUTPUTS), fmt.output_codes)] == \
        [4] * (fmt.output_codes - len(OUTPUTS))
    assert (golden.RAW, golden.REQUANT, golden.NONE) == tuple(
        OUTPUTS.index(o) for o in ("raw", "requant", "none"))
    for name in ("dataflow", "mode"):
        assert fmt.codes(name) == (1 << fields[name].width if name in fields else 1)
    rsp = {f.name: f for f in cfg.rsp_fields}
    assert fmt.err_width == rsp["err"].width and max(ERRORS) < 1 << fmt.err_width
    assert fmt.counters == tuple(n for n in rsp if n != "err") == COUNTERS
    word = sum(((1 << f.width) - 1) << offset
               for f, (offset, _, _) in zip(cfg.rsp_fields,
                                            field_offsets(cfg.rsp_fields).values()))
    assert golden.unpack_rsp(cfg, word) == {n: (1 << f.width) - 1 for n, f in rsp.items()}


# -- the program layer --------------------------------------------------------------------------

#: outside every ``s<acc_width>`` (acc_width <= 48): a row the flush did not write keeps it
UNWRITTEN = 1 << 60
FLUSHES = {**{name: cfg for name, cfg in PRESETS.items()},
           "two-flows": TWO_FLOWS,
           # m too narrow for acc_depth: N grows past C, and past dim_max (N = 15, NB = 8)
           "narrow-m": replace(PRESETS["tiny"], dim_bits=4, k_max=15, acc_depth=64),
           "narrow-m-8x8": replace(PRESETS["8x8"], dim_bits=6, k_max=63),
           "deep-one-row": replace(PRESETS["tiny"], rows=1, cols=1, acc_depth=4096)}


@pytest.mark.parametrize("variant", sorted(FLUSHES))
def test_flush_overwrites_every_accumulator_row(variant):
    """The flush command writes every lane of every one of the ``acc_depth`` rows, at element
    level (random operands) and at payload level (any operand words, as the harness sends)."""
    cfg = FLUSHES[variant]
    cmd = flush_command(cfg)
    c = cmd.coded(cfg)
    assert golden.error_code(cfg, cmd) == 0, c
    assert (c.output, c.accumulate, c.preload, c.k) == (golden.NONE, False, False, 1), c
    element, payload = Model(cfg), Model(cfg)
    for model in (element, payload):
        model.memory[:] = UNWRITTEN
    p = Program(cfg, element).run([cmd], np.random.default_rng(0))
    ones = {n: itertools.repeat((1 << sum(f.width for f in fields)) - 1)
            for n, fields in (("a", cfg.a_fields), ("b", cfg.b_fields), ("c", cfg.c_fields))}
    q = Program(cfg, payload)
    q.add_words(cmd, ones["a"], ones["b"], ones["c"])
    for prog_, model in ((p, element), (q, payload)):
        assert prog_.o == [] and prog_.rsp[0].err == 0
        missed = sorted({int(r) for r in np.argwhere(model.memory == UNWRITTEN)[:, 0]})
        assert model.memory.shape == (cfg.acc_depth, cfg.cols)
        assert not missed, f"{c} leaves {len(missed)} of {cfg.acc_depth} rows, e.g. {missed[:4]}"


def test_flush_with_narrow_fields_covers_every_readable_row():
    """When no command of the config reaches all ``acc_depth`` rows (``m`` and ``n`` 4 bits,
    C = 4: NB*M <= 60 < 64), the flush writes every row an ``accumulate`` command can read."""
    cfg = replace(PRESETS["tiny"], cols=4, dim_bits=4, k_max=15, acc_depth=64)
    model = Model(cfg)
    model.memory[:] = UNWRITTEN
    Program(cfg, model).run([flush_command(cfg)], np.random.default_rng(0))
    readable = {r for m in range(1, 16) for n in range(1, 16)
                if golden.error_code(cfg, Command(m, 1, n, accumulate=True)) == 0
                for r in range(-(-n // cfg.cols) * m)}
    written = {r for r in range(cfg.acc_depth) if (model.memory[r] != UNWRITTEN).all()}
    assert readable == written == set(range(60))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_program_element_and_payload_levels_agree(variant):
    """A program with random (and erroneous) commands, junk in half the valid ones, replayed
    at payload level from its own words: the same ``o`` and ``rsp``, every word taken (so the
    junk is only in ignored bits and the beat counts are exact)."""
    cfg = VARIANTS[variant]
    rng = np.random.default_rng(7)
    commands = [flush_command(cfg)] + [prog.random_command(cfg, rng, allow_errors=True)
                                       for _ in range(6 if cfg.rows >= 8 else 20)]
    p = Program(cfg).run(commands, rng, junk=0.5)
    assert p.junk and p.rsp[0].err == 0
    q = Program(cfg)
    streams = [iter(p.words[n]) for n in prog.OPERANDS]
    for cmd in commands:
        q.add_words(cmd, *streams)
    assert (q.o, q.rsp, q.words, q.owner) == (p.o, p.rsp, p.words, p.owner)
    assert sum(r.a_beats for r in p.rsp) == len(p.words["a"])
    assert not [r for r in p.rsp if r.err and (r.a_beats or r.macs)]


def test_junk_sets_ignored_bits_only():
    """``add_junk`` changes words (the kinds are not empty) and only where the hardware must
    ignore them; a mask on a used bit is caught by the program's own check."""
    cfg = replace(DEFAULT, modes=("s4s4",))
    cmd = Command(5, 6, 7, preload=True, dataflow="os")   # M, K, N past full blocks
    rng = np.random.default_rng(3)
    clean = Program(cfg).run([cmd], rng)
    junked = prog.add_junk(cfg, rng, cmd, clean.words)
    for name in prog.OPERANDS:
        assert junked[name] != clean.words[name], name
    assert Program(cfg).run([cmd], rng, junk=1.0).junk == [0]
    spoiled = {**junked, "a": [w | 1 for w in junked["a"]]}       # bit 0 of element 0: used
    o_words, _, _ = Model(cfg).words(clean.cmd_words[0], *(iter(spoiled[n])
                                                          for n in prog.OPERANDS))
    assert o_words != clean.o


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_directed_error_commands(variant):
    cfg = VARIANTS[variant]
    directed = prog.error_commands(cfg)
    assert [golden.error_code(cfg, cmd) for cmd, _ in directed] == [e for _, e in directed]
    expressible = {1, 3, 4} | ({2} if cfg.k_max < golden.command_format(cfg).dim_max else set())
    assert {e for _, e in directed} == expressible


def test_program_layer_imports_no_amaranth_or_cocotb():
    code = ("import json, sys, accelgen.sim.golden.systolic_program; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert not set(json.loads(out.stdout)) & {"amaranth", "cocotb", "cocotb_tools"}


# -- float modes: the spec in Fractions (IEEE binary32 by hand, not numpy) ---------------------


_NAN = "nan"


def _element(fmt, code):
    """Reference form of a code of ``fmt``: a Fraction, ``("inf", sign)``, ``_NAN``, or
    ``("zero", sign)`` for a zero (its sign matters in IEEE sums)."""
    d = fmt.decode(code)
    if d.nan:
        return _NAN
    if d.inf:
        return ("inf", d.sign)
    if d.sig == 0:
        return ("zero", d.sign)
    return (-1) ** d.sign * Fraction(d.sig) * Fraction(2) ** d.exp


def _sign(x):
    if isinstance(x, tuple):
        return x[1]
    return int(x < 0)


def _round32(value, zero_sign):
    """FP32 code nearest to the exact nonzero-or-zero Fraction ``value`` (RNE), through
    :func:`accelgen.formats.round_to_float` (checked against ml_dtypes)."""
    if value == 0:
        return zero_sign << 31
    sign, mag = int(value < 0), abs(value)
    exp = -(mag.denominator.bit_length() - 1)           # denominators are powers of two
    return round_to_float(sign, int(mag * 2 ** -exp), exp, FP32)


def _ref_mul(x, y):
    if _NAN in (x, y):
        return FP32_NAN
    sign = _sign(x) ^ _sign(y)
    inf = [isinstance(v, tuple) and v[0] == "inf" for v in (x, y)]
    zero = [isinstance(v, tuple) and v[0] == "zero" for v in (x, y)]
    if any(inf):
        return FP32_NAN if any(zero) else FP32.inf_code | sign << 31
    if any(zero):
        return sign << 31
    return _round32(x * y, sign)


def _ref_add(cx, cy):
    """IEEE binary32 ``cx + cy`` on codes, by the rules: NaN in, NaN out; inf - inf NaN;
    an exact zero sum is +0 unless both operands are -0."""
    x, y = _element(FP32, cx), _element(FP32, cy)
    if _NAN in (x, y):
        return FP32_NAN
    infs = [v for v in (x, y) if isinstance(v, tuple) and v[0] == "inf"]
    if infs:
        if len({s for _, s in infs}) > 1:
            return FP32_NAN
        return FP32.inf_code | infs[0][1] << 31
    vx = 0 if isinstance(x, tuple) else x
    vy = 0 if isinstance(y, tuple) else y
    both_negative_zero = x == ("zero", 1) and y == ("zero", 1)
    return _round32(vx + vy, 1 if both_negative_zero else 0)


def _ref_float_gemm(cfg, mode, flow, a_codes, b_codes, init):
    """Result codes of one float command by the spec: products rounded to FP32, summed in k
    order from +0 (os: all K; ws: per block of ``rows``), added to ``init``."""
    fmt = cfg.mode_formats[cfg.modes.index(mode)]
    fa, fb = fmt.a, fmt.b
    (m, k), n = a_codes.shape, b_codes.shape[1]
    out = np.zeros((m, n), np.int64)
    step = k if flow == "os" else cfg.rows
    for i in range(m):
        for j in range(n):
            row = int(init[i, j])
            for k0 in range(0, k, step):
                part = 0
                for kk in range(k0, min(k, k0 + step)):
                    p = _ref_mul(_element(fa, int(a_codes[i, kk])),
                                 _element(fb, int(b_codes[kk, j])))
                    part = _ref_add(part, p)
                row = _ref_add(row, part)
            out[i, j] = row
    return out


FLOAT_CFG = SystolicConfig(rows=3, cols=2, modes=("e4m3", "e5m2", "bf16", "e4m3e5m2", "fp16",
                                                   "e2m1"),
                           dataflows=("os", "ws"), k_max=16, acc_depth=32, requant=True)


@pytest.mark.parametrize("flow", ["os", "ws"])
@pytest.mark.parametrize("mode", FLOAT_CFG.modes)
def test_float_modes_match_the_ieee_reference(mode, flow):
    """Random GEMMs (random codes with specials, N(0,1) values that cancel) with a preload
    of random FP32 codes: every result code equals the Fraction reference."""
    cfg = FLOAT_CFG
    rng = np.random.default_rng(sum(map(ord, mode + flow)))
    fmt = cfg.mode_formats[cfg.modes.index(mode)]
    for trial in range(6):
        m, k, n = (int(x) for x in rng.integers(1, 8, 3))
        a = prog.random_elements(fmt.a, rng, (m, k))
        b = prog.random_elements(fmt.b, rng, (k, n))
        c = prog.random_fp32(rng, (m, n)) if trial % 2 else None
        y = golden.gemm(cfg, a, b, c, dataflow=flow, mode=mode)
        init = (golden.fp32_codes(c, param="c") if c is not None
                else np.zeros((m, n), np.int64))
        want = _ref_float_gemm(cfg, mode, flow, to_codes(fmt.a, a, param="a"),
                               to_codes(fmt.b, b, param="b"), init)
        assert np.array_equal(y, want), (mode, flow, trial, np.argwhere(y != want)[:3])


def test_float_hand_values():
    """A few sums worked by hand: exactness, order, cancellation, specials."""
    cfg = replace(FLOAT_CFG, rows=2, cols=2)
    one = 1.0
    # 1*1 + 2^-20 * 1 is not representable in e4m3 operands; use e5m2 in fp32: exact sums
    y = golden.gemm(cfg, [[one, 2.0 ** -16]], [[one], [one]], mode="e5m2")
    assert fp32_value(y)[0, 0] == 1 + 2.0 ** -16
    # order: (448*448 + -448*448) + 2^-9... = exact 2^-18 for e4m3 products (os)
    y = golden.gemm(cfg, [[448.0, -448.0, 2.0 ** -9]], [[448.0], [448.0], [2.0 ** -9]],
                    mode="e4m3")
    assert fp32_value(y)[0, 0] == 2.0 ** -18
    # inf * 0 is NaN; inf + -inf is NaN; inf stays inf
    y = golden.gemm(cfg, [[np.inf, 1.0], [np.inf, -np.inf]], [[0.0, 1.0], [1.0, 1.0]],
                    mode="e5m2")
    assert y[0, 0] == FP32_NAN and y[1, 1] == FP32_NAN and fp32_value(y)[0, 1] == np.inf
    # bf16 products leave FP32: overflow to inf, underflow to zero of the product's sign
    big, tiny = 2.0 ** 127, 2.0 ** -133
    y = golden.gemm(cfg, [[big], [-tiny]], [[big, tiny]], mode="bf16")
    assert fp32_value(y)[0, 0] == np.inf and y[1, 1] == 0       # -0 + +0 sum is +0
    # e4m3 has no inf: 448 * 448 = 200704 exactly
    y = golden.gemm(cfg, [[448.0]], [[448.0]], mode="e4m3")
    assert fp32_value(y)[0, 0] == 200704.0


@pytest.mark.parametrize("target, saturate", [
    *itertools.product(["e4m3", "e5m2", "e2m1", "bf16"], [True, False]),
    ("p8", True), ("p16", True)])           # posits always saturate
def test_float_output_conversion_is_the_cast_block(target, saturate):
    """Output requant = relu, exact 2**scale, then the ``cast`` block's conversion of the
    scaled value (checked here where the scaled value is an FP32 value: cast golden from
    its code)."""
    cfg = replace(FLOAT_CFG, out_format=target, out_saturate=saturate)
    cast_cfg = CastConfig(source="fp32", target=target, saturate=saturate)
    rng = np.random.default_rng(5)
    model = Model(cfg)
    for trial in range(8):
        m, k, n = 3, int(rng.integers(1, 5)), 4
        a = prog.random_elements(FLOAT_FORMATS["e4m3"], rng, (m, k))
        b = prog.random_elements(FLOAT_FORMATS["e4m3"], rng, (k, n))
        scale, relu = int(rng.integers(-12, 13)), bool(trial % 2)
        raw = model.run(Command(m, k, n, output="none", mode="e4m3"), a, b)
        acc = model.memory[np.arange(2 * m) % cfg.acc_depth].reshape(2, m, 2)
        got = model.run(Command(m, 1, n, accumulate=True, output="requant", scale=scale,
                                relu=relu, mode="e4m3"), np.zeros((m, 1)),
                        np.zeros((1, n))).y
        assert raw.err == 0
        acc = acc.transpose(1, 0, 2).reshape(m, 4)
        values = fp32_value(acc)
        with np.errstate(all="ignore"):
            if relu:
                values = np.where(np.signbit(values) & ~np.isnan(values), 0.0, values)
            scaled = values * 2.0 ** scale
        single = scaled.astype(np.float32)
        exact = (single.astype(np.float64) == scaled) | np.isnan(scaled)
        codes = single.view(np.uint32).astype(np.int64)
        want = cast_golden.cast_codes(cast_cfg, codes)
        assert exact.sum() >= 6
        assert np.array_equal(got[exact], want[exact]), (target, trial)


def _ref_to_float(fmt, x, saturate):
    """Code of float format ``fmt`` for the float64 ``x`` by the rounding rules alone, not
    through :mod:`accelgen.formats`: round half to even at the format's spacing (subnormal
    spacing below the normal range, no upper exponent limit), then the overflow rule of the
    spec (inf, NaN for E4M3, the largest value for formats with neither or ``saturate``);
    NaN to the format's NaN or +0; infinities by the same rule. Values and codes come from
    the decode table (checked against ml_dtypes elsewhere)."""
    sign = int(np.signbit(x)) << (fmt.width - 1)
    if np.isnan(x):
        return fmt.nan_code if fmt.has_nan else 0
    top = fmt.max_code | sign
    if saturate or not fmt.has_nan:
        over = top
    else:
        over = (fmt.inf_code | sign) if fmt.has_inf else fmt.nan_code
    if np.isinf(x):
        return over
    mag = abs(x)
    if mag == 0:
        return sign
    exp = max(math.frexp(mag)[1] - 1, fmt.exp_min + fmt.man_bits)   # binade, at least normal
    spacing = 2.0 ** (exp - fmt.man_bits)
    rounded = float(np.round(mag / spacing)) * spacing                # numpy: half to even
    values = code_values(fmt, np.arange(fmt.max_code + 1))
    if rounded > values[-1]:
        return over
    return int(np.flatnonzero(values == rounded)[0]) | sign


@pytest.mark.parametrize("target, saturate", list(itertools.product(
    ["e4m3", "e5m2", "e3m2", "e2m1", "bf16", "fp16"], [True, False])))
def test_float_output_conversion_reference(target, saturate):
    """Output requant against :func:`_ref_to_float` over the whole ``scale`` range (results
    far outside FP32 and far below every subnormal included) and with ``relu``."""
    cfg = replace(FLOAT_CFG, out_format=target, out_saturate=saturate)
    fmt = FLOAT_FORMATS[target]
    rng = np.random.default_rng(sum(map(ord, target)) + saturate)
    model = Model(cfg)
    m, n = 4, 4
    for trial, scale in enumerate([-128, 127, -100, 100, -30, 30, 0,
                                   *rng.integers(-128, 128, 5)]):
        a = prog.random_elements(FLOAT_FORMATS["e5m2"], rng, (m, 3))
        b = prog.random_elements(FLOAT_FORMATS["e5m2"], rng, (3, n))
        model.run(Command(m, 3, n, output="none", mode="e5m2"), a, b)
        acc = model.memory[np.arange(2 * m) % cfg.acc_depth].reshape(2, m, 2)
        acc = acc.transpose(1, 0, 2).reshape(m, n)
        relu = bool(trial % 2)
        got = model.run(Command(m, 1, n, accumulate=True, output="requant", scale=int(scale),
                                relu=relu, mode="e5m2"), np.zeros((m, 1)),
                        np.zeros((1, n))).y
        for (i, j), code in np.ndenumerate(acc):
            x = float(fp32_value(np.array([code]))[0])
            if relu and np.signbit(x) and not np.isnan(x):
                x = 0.0
            want = _ref_to_float(fmt, math.ldexp(x, int(scale)) if np.isfinite(x) else x,
                                 saturate)
            assert got[i, j] == want, (target, saturate, scale, hex(int(code)))


def test_float_config_and_command_errors():
    with pytest.raises(Exception, match="modes: .* mixes integer and float"):
        SystolicConfig(modes=("s8s8", "e4m3"))
    with pytest.raises(Exception, match="modes: 'p8' is not allowed"):
        SystolicConfig(modes=("p8",))
    with pytest.raises(Exception, match="modes: 'mxe4m3' is not allowed"):
        SystolicConfig(modes=("mxe4m3",))
    with pytest.raises(Exception, match="acc_width: 24 is not allowed with float modes"):
        SystolicConfig(modes=("e4m3",), acc_width=24)
    with pytest.raises(Exception, match="acc_width: 32.0 is not allowed with float modes"):
        SystolicConfig(modes=("e4m3",), acc_width=32.0)
    with pytest.raises(Exception, match="modes: .* lists mode 'e4m3' more than once"):
        SystolicConfig(modes=("e4m3", "e4m3e4m3"))
    with pytest.raises(Exception, match="lut_rows: 1 is not allowed with float modes"):
        SystolicConfig(modes=("bf16",), lut_rows=1)
    with pytest.raises(Exception, match="out_format: 'fp32' is not allowed"):
        SystolicConfig(modes=("bf16",), out_format="fp32")
    with pytest.raises(Exception, match="out_saturate: False is not allowed with posit"):
        SystolicConfig(modes=("bf16",), out_format="p8", out_saturate=False)
    with pytest.raises(ValueError, match="mult: 3 is not allowed in a float build"):
        golden.pack_command(FLOAT_CFG, Command(1, 1, 1, output="requant", mult=3))
    with pytest.raises(ValueError, match="out_signed: False is not allowed in a float build"):
        golden.pack_command(FLOAT_CFG, Command(1, 1, 1, output="requant", out_signed=False))
    with pytest.raises(ValueError, match="scale: 2 is not allowed in an integer build"):
        golden.pack_command(DEFAULT, Command(1, 1, 1, output="requant", scale=2))
    with pytest.raises(ValueError, match=r"a \(in mode 'e4m3'\): 0.3 is not a value"):
        golden.gemm(FLOAT_CFG, [[0.3]], [[1.0]], mode="e4m3")
    with pytest.raises(ValueError, match="c: 0.1 is not a value of format fp32"):
        golden.gemm(FLOAT_CFG, [[1.0]], [[1.0]], [[0.1]], mode="e4m3")
