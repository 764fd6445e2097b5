"""Programs of block ``systolic``: command sequences with the payload words of their ``cmd``,
``a``, ``b`` and ``c`` streams and the ``o`` and ``rsp`` words the golden model expects back.
The cocotb testbench (:mod:`accelgen.sim.cocotb.tb_systolic`), the FPGA self-check harness
(:mod:`accelgen.fpga.harness_systolic`) and the Amaranth-simulator tests all build their
stimulus here. numpy, the config and the golden model only (no Amaranth, no cocotb).

::

    commands ──► Program.add / run       (element level: random or given matrices, encoded
         │                                by the golden model; optional junk in ignored bits)
         ├─────► Program.add_words       (payload level: operand words pulled from iterators,
         │                                exactly as many as each command consumes)
         ▼
    golden Model (one accumulator memory, commands in order)
         ▼
    Program.words {cmd, a, b, c}   Program.o (+ owner)   Program.rsp (err, macs, a_beats)

A :class:`Program` runs its commands on one golden :class:`~accelgen.sim.golden.systolic.Model`
in order, so accumulate chains see what earlier commands left in the memory. Sequences that
go to hardware whose memory is unknown (it survives a reset; Icarus starts it as X) start with
:func:`flush_command`.

Generation: every function takes a :class:`numpy.random.Generator` that the caller seeds
(explicit seeds, printed by the callers in their failure messages):
:func:`random_command` (valid commands, or with ``allow_errors`` some erroneous ones),
:func:`error_commands` (one directed command per error the config can express),
:func:`random_operands` / :func:`command_operands` (matrices in the mode's formats),
:func:`add_junk` (random bits wherever the spec says the hardware ignores them).
"""

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from ...generators.systolic import OUTPUTS, ceil_div
from .elements import code_values, quantize
from .systolic import (REQUANT, Command, Model, command_format, error_code, pack_command)

__all__ = ["INPUTS", "OPERANDS", "JUNK_KINDS", "Expected", "Program", "flush_command",
           "error_commands", "random_command", "random_operands", "command_operands",
           "add_junk"]

INPUTS = ("cmd", "a", "b", "c")       #: the input streams, in the order of :attr:`words`
OPERANDS = ("a", "b", "c")            #: the operand streams
#: Bits the spec says the hardware ignores: ``a`` elements past M (os) / K (ws), the bits of
#: ``a``/``b`` elements above the command mode's format, ``b`` and ``c`` lanes past N.
JUNK_KINDS = ("a_padding", "a_high_bits", "b_high_bits", "b_lanes", "c_lanes")


class Expected(NamedTuple):
    """What one command's ``rsp`` beat must hold, as far as it does not depend on timing.

    Members
    -------
    err : int
        ``rsp.err``.
    macs : int
        ``rsp.macs`` (``M*K*N`` wrapped to ``counter_width``; 0 on error).
    a_beats : int
        ``a`` beats the command consumes = the steps it issues = ``rsp.busy`` (before
        wrapping to ``counter_width``).
    """
    err: int
    macs: int
    a_beats: int


class _Taking:
    """Iterator over ``iterable`` that appends every item it hands out to ``taken``."""

    def __init__(self, iterable, taken):
        self.it, self.taken = iter(iterable), taken

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.it)
        self.taken.append(item)
        return item


@dataclass
class Program:
    """A command sequence at payload level with the golden model's answers.

    Members
    -------
    config : SystolicConfig
    model : Model
        The golden model the commands run on, in order (a fresh one by default; pass a shared
        one to continue a sequence). Not part of equality.
    commands : list of Command
    words : dict
        ``{"cmd"|"a"|"b"|"c": [payload ints]}`` in stream order.
    o : list of int
        Expected ``o`` words; ``owner[i]`` is the index of the command that sends ``o[i]``.
    rsp : list of Expected
        One per command.
    junk : list of int
        Indices of the commands whose ignored bits carry random junk.
    """
    config: object
    model: object = field(default=None, compare=False, repr=False)
    commands: list = field(default_factory=list)
    words: dict = field(default_factory=lambda: {name: [] for name in INPUTS})
    o: list = field(default_factory=list)
    owner: list = field(default_factory=list)
    rsp: list = field(default_factory=list)
    junk: list = field(default_factory=list)

    def __post_init__(self):
        if self.model is None:
            self.model = Model(self.config)
        elif self.model.config != self.config:
            raise ValueError("model: its config is not allowed; expected the program's config")

    # -- building ---------------------------------------------------------------------------

    def add(self, cmd, operands=None, *, rng=None, junk=()):
        """Element level: run ``cmd`` on ``operands`` = ``(a, b, c or None)`` (matrices as
        :meth:`Model.run` takes them) or, when None, on :func:`command_operands` drawn from
        ``rng``; an erroneous command takes none. ``junk`` (kinds of :data:`JUNK_KINDS`) fills
        the ignored bits of a valid command's words with random bits from ``rng``, checked
        against :meth:`Model.words` on a copy of the memory: a junk mask that touched a used
        bit raises :class:`RuntimeError` here (a stimulus error, not a hardware mismatch).
        Returns the command's :class:`Expected`."""
        cfg, model = self.config, self.model
        c = cmd.coded(cfg)
        word = pack_command(cfg, cmd)
        if error_code(cfg, c):
            res = model.run(cmd)
            return self._append(cmd, {"cmd": [word]}, res.o_words, res.err, res.macs)
        a, b, init = command_operands(cfg, rng, c) if operands is None else operands
        before = model.memory.copy() if junk else None
        res = model.run(cmd, a, b, init)
        words = {"cmd": [word], "a": res.a_words, "b": res.b_words, "c": res.c_words}
        if junk:
            words = add_junk(cfg, rng, c, words, junk)
            check = Model(cfg)
            check.memory[:] = before
            o_words, _, _ = check.words(word, iter(words["a"]), iter(words["b"]),
                                        iter(words["c"]))
            if o_words != res.o_words:
                raise RuntimeError(f"program error: junk bits {tuple(junk)} changed the golden "
                                   f"result of command #{len(self.commands)} {c}")
            self.junk.append(len(self.commands))
        return self._append(cmd, words, res.o_words, res.err, res.macs)

    def run(self, commands, rng=None, *, arrays=None, junk=0.0, kinds=JUNK_KINDS):
        """:meth:`add` each of ``commands``: operands ``arrays[i]`` (``(a, b, c or None)``, used
        for the valid commands) or random from ``rng``; with probability ``junk`` (drawn from
        ``rng``) per valid command, junk of ``kinds``. Returns the program."""
        for index, cmd in enumerate(commands):
            valid = error_code(self.config, cmd) == 0
            operands = arrays[index] if arrays is not None and valid else None
            dirty = valid and junk and rng.random() < junk
            self.add(cmd, operands, rng=rng, junk=kinds if dirty else ())
        return self

    def add_words(self, cmd, a, b, c=()):
        """Payload level: run ``cmd`` on operand words pulled from the iterators ``a``, ``b``
        and ``c`` (any words are legal: the hardware ignores what the command does not use),
        exactly as many as it consumes (none on error); the words taken join :attr:`words`.
        Returns the command's :class:`Expected`."""
        word = pack_command(self.config, cmd)
        taken = {name: [] for name in OPERANDS}
        o_words, err, macs = self.model.words(word, _Taking(a, taken["a"]),
                                              _Taking(b, taken["b"]), _Taking(c, taken["c"]))
        return self._append(cmd, {"cmd": [word], **taken}, o_words, err, macs)

    def _append(self, cmd, words, o_words, err, macs):
        index = len(self.commands)
        self.commands.append(cmd)
        for name in INPUTS:
            self.words[name] += words.get(name, [])
        self.o += o_words
        self.owner += [index] * len(o_words)
        expected = Expected(err, macs, len(words.get("a", [])))
        self.rsp.append(expected)
        return expected

    # -- reading ----------------------------------------------------------------------------

    @property
    def cmd_words(self):
        return self.words["cmd"]

    @property
    def consumed(self):
        """``a``, ``b``, ``c`` → beats the program consumes."""
        return {name: len(self.words[name]) for name in OPERANDS}

    @property
    def beats(self):
        """Payload beats on ``a``, ``b``, ``c`` and ``o`` in all."""
        return sum(self.consumed.values()) + len(self.o)

    @property
    def total_words(self):
        """Words on all six streams."""
        return sum(len(w) for w in self.words.values()) + len(self.o) + len(self.rsp)


# -- commands -----------------------------------------------------------------------------------


def flush_command(config):
    """The command that clears the accumulator memory: output ``none``, no ``accumulate``,
    ``K = 1``, rows ``r < NB*M`` with ``NB*M = acc_depth``, so it writes every lane of every
    row with values the golden model knows (the memory survives a reset, and a later
    ``accumulate`` command would otherwise read what an earlier run left).

    ``NB`` (column blocks, ``N = NB*C``) doubles from 1 until ``M = acc_depth / NB`` fits the
    ``m`` field (``acc_depth`` is a power of two). Where the ``m`` and ``n`` fields are too
    narrow for any ``NB*M = acc_depth``, it writes the rows ``0 .. max(NB*M) - 1``, the most
    any command can reach: every row an ``accumulate`` command can read (``NB*M <=
    acc_depth``, ``N`` and ``M`` within their fields)."""
    dim_max, depth, C = command_format(config).dim_max, config.acc_depth, config.cols
    nb_max = ceil_div(dim_max, C)           # column blocks of the widest n

    def rows(nb):
        return nb * min(dim_max, depth // nb)

    nb = 1
    while rows(nb) < depth and 2 * nb <= nb_max:
        nb *= 2
    if rows(nb) < depth:        # every nb below this one reaches fewer rows
        nb = max(range(nb, nb_max + 1), key=rows)
    return Command(m=min(dim_max, depth // nb), k=1, n=min(nb * C, dim_max), output="none")


def error_commands(config):
    """``[(command, err)]``: one directed command per kind of error ``config`` can express."""
    C = Command
    dim_max = command_format(config).dim_max
    bad_output = len(OUTPUTS)               # the first code that names no output
    out = [(C(0, 3, 3), 1), (C(3, 0, 3), 1), (C(3, 3, 0), 1), (C(0, 3, 3, output=bad_output), 1)]
    if config.k_max < dim_max:
        out.append((C(2, config.k_max + 1, 2), 2))
    if config.acc_depth + 1 <= dim_max:
        out.append((C(config.acc_depth + 1, 1, 1, accumulate=True), 3))
        out.append((C(config.acc_depth + 1, 2, config.cols, preload=True), 3))
        if "ws" in config.dataflows and config.k_max > config.rows:
            out.append((C(config.acc_depth + 1, config.rows + 1, 1, dataflow="ws"), 3))
    if 2 * config.cols <= dim_max:
        out.append((C(config.acc_depth // 2 + 1, 1, 2 * config.cols, output="none"), 3))
    out.append((C(2, 2, 2, output=bad_output), 4))
    if not config.requant:
        out.append((C(2, 2, 2, output="requant"), 4))
    if len(config.modes) < command_format(config).codes("mode"):
        out.append((C(2, 2, 2, mode=len(config.modes)), 4))
    return out


def random_command(config, rng, *, max_dim=None, allow_errors=False):
    """A random :class:`Command`: dimensions from 1 to ``max_dim`` (default ``3*rows+1`` for
    ``m`` and ``k``, ``3*cols+1`` for ``n``; ``k`` also at most ``k_max``), every built mode,
    dataflow and output, ``accumulate`` about a third of the time, random requant parameters
    (within their fields) when the stage is built; always valid (shapes are drawn so error 3
    cannot happen). With ``allow_errors`` about a quarter of the commands have an error of a
    random kind this config can express."""
    if isinstance(max_dim, bool) or max_dim is not None and (
            not isinstance(max_dim, (int, np.integer)) or not 1 <= max_dim <= 1 << 24):
        raise ValueError(f"max_dim: {max_dim!r} is not allowed; expected an integer from 1 to "
                         f"{1 << 24}")
    cfg, fmt = config, command_format(config)
    dim_max = fmt.dim_max
    m_hi = min(max_dim or 3 * cfg.rows + 1, dim_max)
    k_hi = min(max_dim or 3 * cfg.rows + 1, cfg.k_max)
    n_hi = min(max_dim or 3 * cfg.cols + 1, dim_max)
    outputs = [o for o in OUTPUTS if o != "requant" or cfg.requant]
    output = str(rng.choice(outputs))
    accumulate = bool(rng.random() < 1 / 3)
    preload = bool(rng.random() < 1 / 6)
    flow = str(rng.choice(cfg.dataflows))
    k = int(rng.integers(1, k_hi + 1))
    keeps_rows = accumulate or preload or output == "none"
    if keeps_rows:      # NB*M <= acc_depth needs NB <= acc_depth
        n_hi = min(n_hi, cfg.acc_depth * cfg.cols)
    n = int(rng.integers(1, n_hi + 1))
    if keeps_rows:
        m_hi = min(m_hi, cfg.acc_depth // ceil_div(n, cfg.cols))
    if flow == "ws" and k > cfg.rows:
        m_hi = min(m_hi, cfg.acc_depth)
    cmd = Command(int(rng.integers(1, m_hi + 1)), k, n, accumulate=accumulate, preload=preload,
                  output=output, dataflow=flow, mode=str(rng.choice(cfg.modes)))
    if cfg.requant and cfg.is_float:
        # mostly small scales (results near the target's range), sometimes the extremes
        lo, hi = fmt.range("scale")
        scale = int(rng.integers(lo, hi + 1)) if rng.random() < 0.2 else \
            int(rng.integers(-12, 13))
        cmd = replace(cmd, scale=scale, relu=bool(rng.random() < 0.5))
    elif cfg.requant:
        mult_hi, shift_hi = fmt.range("mult")[1], fmt.range("shift")[1]
        zp_lo, zp_hi = fmt.range("zero_point")
        mult = int(rng.integers(0, mult_hi + 1))
        # a shift near the product's magnitude keeps most results off the s8/u8 rails
        shift = min(shift_hi, mult.bit_length() + int(rng.integers(0, 24)))
        cmd = replace(cmd, mult=mult, shift=shift, zero_point=int(rng.integers(zp_lo, zp_hi + 1)),
                      relu=bool(rng.random() < 0.5), out_signed=bool(rng.random() < 0.5))
    if allow_errors and rng.random() < 0.25:
        cmd = _spoil(cfg, rng, cmd)
    return cmd


def _spoil(config, rng, cmd):
    """``cmd`` turned into an error of a random kind ``config`` can express (error 3 by
    enlarging ``m``, error 4 by an unsupported output or mode code)."""
    fmt = command_format(config)
    dim_max = fmt.dim_max
    kinds = {"zero": lambda: replace(cmd, **{str(rng.choice(["m", "k", "n"])): 0}),
             "output3": lambda: replace(cmd, output=len(OUTPUTS))}
    if config.k_max < dim_max:
        kinds["k_max"] = lambda: replace(
            cmd, k=int(rng.integers(config.k_max + 1, min(dim_max, 2 * config.k_max + 8) + 1)))
    n1 = min(cmd.n, config.cols)                  # one column block: needs M > acc_depth
    if config.acc_depth + 1 <= dim_max:
        kinds["memory"] = lambda: replace(cmd, m=config.acc_depth + 1, n=n1,
                                          accumulate=True)
    if not config.requant:
        kinds["requant"] = lambda: replace(cmd, output=REQUANT)
    if len(config.modes) < fmt.codes("mode"):
        kinds["mode"] = lambda: replace(cmd, mode=int(rng.integers(len(config.modes),
                                                                   fmt.codes("mode"))))
    return kinds[str(rng.choice(sorted(kinds)))]()


# -- operands -----------------------------------------------------------------------------------


def random_operands(config, rng, m, k, n, mode):
    """Random ``a`` (m x k) and ``b`` (k x n), uniform over ``mode``'s (name or code) formats;
    float modes: element values (:func:`random_elements`)."""
    fmt = config.mode_formats[config.mode_code(mode)]
    if config.is_float:
        return random_elements(fmt.a, rng, (m, k)), random_elements(fmt.b, rng, (k, n))
    return (rng.integers(fmt.a.min, fmt.a.max + 1, size=(m, k)),
            rng.integers(fmt.b.min, fmt.b.max + 1, size=(k, n)))


def random_elements(fmt, rng, shape):
    """float64 values of float format ``fmt``: half the time of uniformly random codes (every
    binade, subnormals, both zeros; NaN and inf codes kept at a tenth of their share, so most
    sums stay finite), else N(0, 1) samples rounded to the format (sums that cancel)."""
    if rng.random() < 0.5:
        return code_values(fmt, quantize(fmt, rng.normal(size=shape)))
    codes = rng.integers(0, 1 << fmt.width, size=shape)
    special = np.isnan(code_values(fmt, codes)) | np.isinf(code_values(fmt, codes))
    redraw = special & (rng.random(shape) < 0.9)
    codes[redraw] = quantize(fmt, rng.normal(size=shape))[redraw]
    return code_values(fmt, codes)


def random_fp32(rng, shape):
    """float64 values of FP32: N(0, 16) float32 samples, a tenth of them random 32-bit codes
    (NaNs with payloads, infinities, subnormals)."""
    values = (4 * rng.normal(size=shape)).astype(np.float32)
    codes = rng.integers(0, 1 << 32, size=shape, dtype=np.uint64).astype(np.uint32)
    values = np.where(rng.random(shape) < 0.1, codes.view(np.float32), values)
    return values.astype(np.float64)


def command_operands(config, rng, cmd):
    """``(a, b, c)`` for valid command ``cmd``: :func:`random_operands` in its mode and, for a
    ``preload``, initial accumulators ``c`` (M x N) uniform over ``s<acc_width>`` (else
    None)."""
    c = cmd.coded(config)
    a, b = random_operands(config, rng, c.m, c.k, c.n, c.mode)
    init = None
    if c.preload and config.is_float:
        init = random_fp32(rng, (c.m, c.n))
    elif c.preload:
        half = 1 << (config.acc_width - 1)
        init = rng.integers(-half, half, size=(c.m, c.n))
    return a, b, init


def _random_bits(rng, width):
    return int.from_bytes(rng.bytes((width + 7) // 8), "little") & ((1 << width) - 1)


def _slots(count, width, used_width, used_slots, *, pad=True, high=True):
    """Mask of the ignored bits of a ``count``-slot word: (``pad``) whole slots from
    ``used_slots`` on, and (``high``) the bits above ``used_width`` in the used ones."""
    above = ((1 << width) - 1) ^ ((1 << used_width) - 1) if high else 0
    whole = (1 << width) - 1 if pad else 0
    mask = 0
    for i in range(count):
        mask |= (whole if i >= used_slots else above) << (i * width)
    return mask


def add_junk(config, rng, cmd, words, kinds=JUNK_KINDS):
    """``words`` (``{"a"|"b"|"c": [...]}``) of valid command ``cmd`` with random bits from
    ``rng`` wherever the spec says the hardware ignores them, for each of ``kinds`` (see
    :data:`JUNK_KINDS`); other keys are copied."""
    c = cmd.coded(config)
    R, C = config.rows, config.cols
    fmt = config.mode_formats[c.mode]
    out = dict(words)
    os_flow = config.dataflows[c.dataflow] == "os"
    a_words = []
    for t, w in enumerate(words["a"]):
        if os_flow:
            used = min(R, c.m - ((t // c.k) % ceil_div(c.m, R)) * R)
        else:
            used = min(R, c.k - ((t // c.m) % ceil_div(c.k, R)) * R)
        mask = _slots(R, config.a_width, fmt.a.width, used, pad="a_padding" in kinds,
                      high="a_high_bits" in kinds)
        a_words.append(w | (_random_bits(rng, R * config.a_width) & mask))
    out["a"] = a_words
    out["b"] = [w | (_random_bits(rng, C * config.b_width)
                     & _slots(C, config.b_width, fmt.b.width, min(C, c.n - (t // c.k) * C),
                              pad="b_lanes" in kinds, high="b_high_bits" in kinds))
                for t, w in enumerate(words["b"])]
    out["c"] = [w | (_random_bits(rng, C * config.acc_width)
                     & _slots(C, config.acc_width, config.acc_width, min(C, c.n - (t // c.m) * C),
                              pad="c_lanes" in kinds, high=False))
                for t, w in enumerate(words["c"])]
    return out
