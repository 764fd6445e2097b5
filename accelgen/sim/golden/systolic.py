"""Bit-exact numpy model of block ``systolic``. The module docstring of
:mod:`accelgen.generators.systolic` is the specification; this module is its executable form.

Two levels, one state:

* element level: a :class:`Command` (one ``cmd`` beat, with names or raw codes) and matrices
  ``a`` (M x K) and ``b`` (K x N) go into :meth:`Model.run`, which returns the result matrix
  and every payload word the hardware consumes (``a``/``b``) and sends (``o``).
  :func:`gemm` wraps one command for ``accelgen sim --inputs``;
  :func:`check_arrays` vets such inputs before a simulation;
* payload level: :meth:`Model.words` takes a raw ``cmd`` word and iterators of raw ``a``/``b``
  words, the form the cocotb testbench and the FPGA self-check use. Any word is legal there:
  element bits above the mode's format, elements past ``M``/``K`` and lanes past ``N`` are
  ignored, and codes that are not built set ``err``.

A :class:`Model` holds the accumulator memory (``acc_depth`` x ``cols`` int64, zeros at the
start, never cleared: a reset of the hardware keeps it), so commands must be run in order; an
``accumulate`` command sees whatever earlier commands of any shape left in its rows, including
lanes past their ``N``.

Numerics (all in int64, exact: products have at most 18 bits, ``acc_width <= 48``)
    Row ``r = nb*M + m`` of a command lives at address ``r mod acc_depth``; ``init`` is that
    row if ``accumulate`` else zeros (all C lanes). ``os``: ``row = ovf(init + sum over all
    K products)``; ``ws``: ``row = init``, then ``row = ovf(row + sum of the products of
    K-block kb)`` for each block of ``rows`` products. ``ovf`` is the config's ``overflow``
    into ``s<acc_width>`` (:func:`accelgen.numerics.apply_overflow`). Lanes past ``N`` hold
    ``ovf(init)``. The whole row is written back; rows go out in order of ``r`` with lanes past
    ``N`` sent as 0. ``requant`` sends :func:`accelgen.numerics.requantize` of the stored row,
    sign-extended into the ``s<acc_width>`` lane.

Float modes: operand matrices are element values (exact in the mode's formats, NaN and inf
    allowed) or, at the payload level, codes; the memory holds FP32 codes (0 is +0). Products
    are formed exactly in float64 and rounded to FP32 by one cast; sums are numpy float32
    additions in the order the spec gives (IEEE binary32, round to nearest even, no flush
    to zero); every NaN is stored as ``FP32_NAN``. Results ``y`` are FP32 codes (``raw``) or
    ``out_format`` codes (``requant``, :func:`accelgen.sim.golden.cast.convert`).

Errors (``rsp.err``), checked in this order, the first that matches wins:
    ``1`` ``m``, ``k`` or ``n`` is 0;
    ``4`` unsupported: an output code past ``OUTPUTS`` (3, the ``output`` field being 2 bits
    wide), output ``requant`` without the requant stage, a mode code past the built modes (a
    dataflow code cannot be: its field has exactly the built codes);
    ``2`` ``k > k_max``;
    ``3`` ``NB*M > acc_depth`` with ``accumulate``, ``preload`` or output ``none``, or
    ``ws`` with ``K > rows`` and ``M > acc_depth``.
    That order is :data:`~accelgen.generators.systolic.ERROR_PRECEDENCE`. Code 4 must precede
    code 3, which depends on the output and dataflow codes; an empty dimension is reported
    first whatever the codes say. An erroneous command consumes no ``a``/``b``/``c`` beat,
    sends no ``o`` beat, leaves the memory as it was, and counts 0 MACs.
"""

import copy
import dataclasses
import functools
from dataclasses import dataclass, field, replace

import numpy as np

from ...generators.base import check_limit
from ...generators.systolic import ERRORS, OUTPUTS, ceil_div
from ...formats import FP32
from ...numerics import ConfigError, IntFormat, apply_overflow, requantize, wrap
from ..payload import pack, unpack
from .cast import convert
from .elements import FP32_NAN, code_values, fp32_codes, to_codes

__all__ = ["ARGUMENTS", "Command", "CommandFormat", "command_format", "Result", "Model",
           "pack_command", "unpack_command", "a_words", "b_words", "unpack_rows", "unpack_rsp",
           "error_code", "gemm", "check_arrays", "float_arrays", "check_run_options", "parse_gemm"]

#: names of :func:`gemm`'s array arguments (``--inputs FILE.npz`` uses these names)
ARGUMENTS = ("a", "b", "c")
#: the arrays an inputs file must hold (the rest of :data:`ARGUMENTS` is optional)
REQUIRED = ("a", "b")

#: ``output`` codes: indices into :data:`~accelgen.generators.systolic.OUTPUTS`; the codes
#: past those that the field can hold (:attr:`CommandFormat.output_codes`) give err 4
RAW, REQUANT, NONE = (OUTPUTS.index(name) for name in ("raw", "requant", "none"))


# -- the command format, read from the config's payload fields -------------------------------


@dataclass(frozen=True)
class CommandFormat:
    """The ``cmd`` and ``rsp`` formats of one config as this model uses them, every value read
    from the config's field lists (:attr:`~accelgen.generators.systolic.SystolicConfig.cmd_fields`
    and ``rsp_fields``), so no width is restated here. :func:`command_format` builds it.

    Members
    -------
    fields : dict
        ``cmd`` field name → :class:`~accelgen.generators.base.Field`, as a build of the config
        *with* the requant stage has them: the requant parameters of a :class:`Command` are
        checked against the fields they would have even where the stage is not built.
    requant_params : tuple of str
        The ``cmd`` fields only the requant stage has (``mult``, ``shift``, ``zero_point``,
        ``relu``, ``out_signed``), in field order; they are sent only when the config has
        ``requant``.
    rsp : dict
        ``rsp`` field name → Field (``err``, then the counters).
    """
    fields: dict
    requant_params: tuple
    rsp: dict

    def range(self, name):
        """``(lo, hi)`` of the integers ``cmd`` field ``name`` holds (two's complement when
        the field is signed)."""
        f = self.fields[name]
        return (-(1 << (f.width - 1)), (1 << (f.width - 1)) - 1) if f.signed \
            else (0, (1 << f.width) - 1)

    def format(self, name):
        """:class:`~accelgen.numerics.IntFormat` of ``cmd`` field ``name``."""
        f = self.fields[name]
        return IntFormat(f.width, f.signed)

    def codes(self, name):
        """How many codes field ``name`` (``output``, ``dataflow``, ``mode``) can hold: 1 when
        the config has no such field (a one-dataflow or one-mode build sends code 0)."""
        return 1 << self.fields[name].width if name in self.fields else 1

    @property
    def dim_max(self):
        """Largest ``m``, ``k`` or ``n`` a command can hold."""
        return min(self.range(name)[1] for name in ("m", "k", "n"))

    @property
    def output_codes(self):
        """Codes of the ``output`` field; those from ``len(OUTPUTS)`` on give err 4."""
        return self.codes("output")

    @property
    def err_width(self):
        return self.rsp["err"].width

    @property
    def counters(self):
        """The ``rsp`` fields after ``err``, in field order."""
        return tuple(name for name in self.rsp if name != "err")


def _requant_twin(config):
    """``config`` with the requant stage built, read for its ``cmd`` field layout only (its
    validation is skipped: ``acc_width + mult_bits`` may be too wide for a build of it)."""
    if config.requant:
        return config
    twin = copy.copy(config)
    object.__setattr__(twin, "requant", True)
    return twin


@functools.lru_cache(maxsize=64)
def command_format(config):
    """The :class:`CommandFormat` of ``config``."""
    plain = {f.name for f in replace(config, requant=False).cmd_fields}
    fields = {f.name: f for f in _requant_twin(config).cmd_fields}
    return CommandFormat(fields=fields,
                         requant_params=tuple(name for name in fields if name not in plain),
                         rsp={f.name: f for f in config.rsp_fields})


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One ``cmd`` beat at element level.

    ``output``, ``dataflow`` and ``mode`` take a name (``"raw"``, ``"os"``, ``"s8s8"``) or a raw
    integer code, so codes the config does not build can be expressed (they give ``err`` 4);
    ``None`` for ``dataflow``/``mode`` is code 0 (the config's first). A name must be one the
    config builds, and a code must fit the payload field (a one-dataflow build has no
    ``dataflow`` field, so only code 0), else :class:`ValueError`; so must ``m``, ``k``, ``n``
    and the requant parameters (``mult``, ``shift``, ``zero_point``: the ranges of their
    fields, :meth:`CommandFormat.range`). The requant parameters are sent only when the config
    has ``requant``.
    """
    m: int
    k: int
    n: int
    accumulate: bool = False
    preload: bool = False
    output: object = "raw"
    dataflow: object = None
    mode: object = None
    mult: int = 1
    shift: int = 0
    zero_point: int = 0
    relu: bool = False
    out_signed: bool = True
    scale: int = 0

    def coded(self, config):
        """This command validated against ``config``, with integer codes for ``output``,
        ``dataflow`` and ``mode``, Python ints and bools elsewhere (what
        :func:`unpack_command` returns for its packed word: without the requant stage the
        requant parameters, which have no fields then, are checked and set to their
        defaults)."""
        fmt = command_format(config)
        named = {"output": (OUTPUTS, ""),
                 "dataflow": (config.dataflows, " (one dataflow built: no dataflow field)"),
                 "mode": (config.modes,
                          f" (codes {len(config.modes)} and up name no built mode: err 4)")}
        coded = {}
        for name in _DEFAULTS:          # checked in field order: the first bad one is named
            value = getattr(self, name)
            if name in _FLAGS and name in fmt.fields:
                coded[name] = _check_bool(name, value)
            elif name in named:
                names, note = named[name]
                coded[name] = _code(name, value, names, fmt.codes(name), note)
            elif name in fmt.fields:
                coded[name] = _check_int(name, value, *fmt.range(name))
            else:               # a requant parameter of the other number kind
                kind = "a float" if config.is_float else "an integer"
                if isinstance(value, bool) != isinstance(_DEFAULTS[name], bool) \
                        or value != _DEFAULTS[name]:
                    raise ValueError(f"{name}: {value!r} is not allowed in {kind} build (no "
                                     f"such field); expected {_DEFAULTS[name]}")
                coded[name] = _DEFAULTS[name]
        if not config.requant:
            coded.update({name: _DEFAULTS[name] for name in fmt.requant_params})
        return Command(**coded)


#: default of every :class:`Command` attribute; the one-bit flags are the bool ones
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Command)}
_FLAGS = tuple(name for name, value in _DEFAULTS.items() if isinstance(value, bool))


def _check_int(name, value, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        raise ValueError(f"{name}: {value!r} is not allowed; expected an integer from {lo} "
                         f"to {hi}")
    return int(value)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_, int, np.integer)) or value not in (0, 1):
        raise ValueError(f"{name}: {value!r} is not allowed; expected true or false")
    return bool(value)


def _code(name, value, names, codes, note):
    """Integer code of a name in ``names`` or of a raw code below ``codes``."""
    if value is None and name != "output":
        return 0
    if isinstance(value, str):
        if value not in names:
            listed = ", ".join(repr(v) for v in names)
            raise ValueError(f"{name}: {value!r} is not allowed; expected one of {listed} or a "
                             f"code from 0 to {codes - 1}")
        return names.index(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not 0 <= value < codes:
        raise ValueError(f"{name}: {value!r} is not allowed; expected a name or a code from 0 "
                         f"to {codes - 1}{note if codes > len(names) or codes == 1 else ''}")
    return int(value)


def _coded(config, cmd):
    if not isinstance(cmd, Command):
        raise ValueError(f"cmd: {cmd!r} is not allowed; expected a Command")
    return cmd.coded(config)


def error_code(config, cmd):
    """``rsp.err`` of ``cmd`` (0 when it runs); the checks run in the order of
    :data:`~accelgen.generators.systolic.ERROR_PRECEDENCE` (see the module docstring)."""
    c = _coded(config, cmd)
    if 0 in (c.m, c.k, c.n):
        return 1
    if (c.output >= len(OUTPUTS) or (c.output == REQUANT and not config.requant)
            or c.dataflow >= len(config.dataflows) or c.mode >= len(config.modes)):
        return 4
    if c.k > config.k_max:
        return 2
    keeps_rows = c.accumulate or c.preload or c.output == NONE
    if keeps_rows and ceil_div(c.n, config.cols) * c.m > config.acc_depth:
        return 3
    if _flow(config, c) == "ws" and c.k > config.rows and c.m > config.acc_depth:
        return 3
    return 0


def _flow(config, c):
    return config.dataflows[c.dataflow]


def pack_command(config, cmd):
    """``cmd`` payload word (fields :attr:`SystolicConfig.cmd_fields`); the requant parameters
    only when the config has the requant stage (there are no fields for them otherwise)."""
    c = _coded(config, cmd)
    values = {f.name: [int(getattr(c, f.name))] for f in config.cmd_fields}
    return pack(config.cmd_fields, values)[0]


def unpack_command(config, word):
    """:class:`Command` of a ``cmd`` payload word, with raw integer codes (fields the config
    does not have take their defaults)."""
    fields = {k: int(v[0]) for k, v in unpack(config.cmd_fields, [word]).items()}
    for name in _FLAGS:
        if name in fields:
            fields[name] = bool(fields[name])
    fields.setdefault("dataflow", 0)
    fields.setdefault("mode", 0)
    return Command(**fields)


def unpack_rsp(config, word):
    """``rsp`` payload word → ``{"err": int, "cycles": int, ..., "macs": int}``."""
    return {k: int(v[0]) for k, v in unpack(config.rsp_fields, [word]).items()}


# -- operand streams --------------------------------------------------------------------------


def _integers(name, values):
    """``values`` as int64; floats are refused rather than truncated."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: dtype {arr.dtype} is not allowed; expected integers")
    return arr.astype(np.int64)


def _numbers(name, values):
    """``values`` as an array of numbers (float builds take element values)."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iubf":
        raise ValueError(f"{name}: dtype {arr.dtype} is not allowed; expected numbers")
    return arr


def _checked(name, values, shape, fmt, where):
    """``values`` as an int64 array of ``shape`` inside ``fmt`` (``where`` ends the message)."""
    arr = _integers(name, values)
    if arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape} is not allowed; expected {shape}")
    if arr.size and (arr.min() < fmt.min or arr.max() > fmt.max):
        raise ValueError(f"{name}: values outside {fmt.name} [{fmt.min}, {fmt.max}] are not "
                         f"allowed {where}")
    return arr


def _float_matrix(name, values, shape):
    """``values`` as an array of numbers of ``shape`` (float builds take element values)."""
    arr = _numbers(name, values)
    if arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape} is not allowed; expected {shape}")
    return arr


def _matrix(name, values, shape, fmt, mode_name):
    """An operand matrix as int64: integer values, or the codes of a float mode's exact
    element values (NaN, inf, -0.0 included)."""
    if isinstance(fmt, IntFormat):
        return _checked(name, values, shape, fmt, f"in mode {mode_name!r}")
    return to_codes(fmt, _float_matrix(name, values, shape),
                    param=f"{name} (in mode {mode_name!r})")


def _accumulators(config, name, values, shape):
    """Preload values as int64: ``s<acc_width>`` integers, or FP32 codes of exact FP32
    values (float builds)."""
    if config.is_float:
        return fp32_codes(_float_matrix(name, values, shape), param=name)
    fmt = IntFormat(config.acc_width, True)
    return _checked(name, values, shape, fmt, f"(the accumulator lanes are {fmt.name})")


def _slots_to_words(values, width):
    """Rows of unsigned slot values (each below ``2**width``) → one Python int per row, slot
    ``i`` at bits ``i*width``."""
    beats, slots = values.shape
    bits = (values[..., None] >> np.arange(width)) & 1
    packed = np.packbits(bits.reshape(beats, slots * width).astype(np.uint8), axis=1,
                         bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _words_to_slots(words, slots, width):
    """Inverse of :func:`_slots_to_words`: unsigned slot values ``(len(words), slots)``; bits
    above ``slots*width`` are dropped."""
    total = slots * width
    nbytes = (total + 7) // 8
    mask = (1 << total) - 1
    raw = b"".join((int(w) & mask).to_bytes(nbytes, "little") for w in words)
    bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(words), nbytes), axis=1,
                         bitorder="little")[:, :total]
    weights = np.int64(1) << np.arange(width, dtype=np.int64)
    return (bits.reshape(len(words), slots, width).astype(np.int64) * weights).sum(axis=2)


def _beat_counts(config, c):
    """(``a`` beats, ``b`` beats) a valid command consumes."""
    nb = ceil_div(c.n, config.cols)
    if _flow(config, c) == "os":
        a = nb * ceil_div(c.m, config.rows) * c.k
    else:
        a = nb * ceil_div(c.k, config.rows) * c.m
    return a, nb * c.k


def _a_beats(config, c, a_blocks):
    """Element segments ``(beats, rows)`` of the ``a`` stream from A per column block
    ``(NB, M, K)``, in stream order, zero padded."""
    R = config.rows
    nb, m, k = a_blocks.shape
    if _flow(config, c) == "os":       # for nb, mb, k: column segment A[mb*R : mb*R+R, k]
        mb = ceil_div(m, R)
        pad = np.zeros((nb, mb * R, k), np.int64)
        pad[:, :m] = a_blocks
        return pad.reshape(nb, mb, R, k).transpose(0, 1, 3, 2).reshape(-1, R)
    kb = ceil_div(k, R)                # for nb, kb, m: row segment A[m, kb*R : kb*R+R]
    pad = np.zeros((nb, m, kb * R), np.int64)
    pad[:, :, :k] = a_blocks
    return pad.reshape(nb, m, kb, R).transpose(0, 2, 1, 3).reshape(-1, R)


def _a_blocks(config, c, beats):
    """Inverse of :func:`_a_beats`: A per column block ``(NB, M, K)``; padding dropped."""
    R = config.rows
    nb = ceil_div(c.n, config.cols)
    if _flow(config, c) == "os":
        mb = ceil_div(c.m, R)
        full = beats.reshape(nb, mb, c.k, R).transpose(0, 1, 3, 2).reshape(nb, mb * R, c.k)
        return full[:, :c.m]
    kb = ceil_div(c.k, R)
    full = beats.reshape(nb, kb, c.m, R).transpose(0, 2, 1, 3).reshape(nb, c.m, kb * R)
    return full[:, :, :c.k]


def _b_blocks(config, b):
    """B ``(K, N)`` → per column block ``(NB, K, C)``, zero padded past ``N``; also the ``b``
    stream order (for nb, for k: ``B[k, nb*C : nb*C+C]``)."""
    C = config.cols
    k, n = b.shape
    nb = ceil_div(n, C)
    pad = np.zeros((k, nb * C), np.int64)
    pad[:, :n] = b
    return pad.reshape(k, nb, C).transpose(1, 0, 2)


def _encode(values, fmt, slot_width):
    """Element values of ``fmt`` → beat words: the low ``fmt.width`` bits of each element in a
    ``slot_width`` slot, the bits above zero."""
    return _slots_to_words(values & ((1 << fmt.width) - 1), slot_width)


def _decode(words, slots, fmt, slot_width):
    """Beat words → element values: the low ``fmt.width`` bits of each slot read as ``fmt``
    (the bits above are ignored); float formats: the codes."""
    values = _words_to_slots(words, slots, slot_width)
    if not isinstance(fmt, IntFormat):
        return values & ((1 << fmt.width) - 1)
    return wrap(values, fmt)


def _mode(config, c):
    return config.mode_formats[c.mode]


def a_words(config, cmd, a):
    """``a`` payload words for matrix ``a`` (M x K, in the mode's ``a`` format) in the order of
    ``cmd.dataflow``, A repeated once per column block, padding elements zero. ``[]`` for an
    erroneous command (the hardware consumes none)."""
    c = _coded(config, cmd)
    if error_code(config, c):
        return []
    fmt = _mode(config, c).a
    a = _matrix("a", a, (c.m, c.k), fmt, config.modes[c.mode])
    nb = ceil_div(c.n, config.cols)
    return _encode(_a_beats(config, c, np.broadcast_to(a, (nb, c.m, c.k))), fmt, config.a_width)


def b_words(config, cmd, b):
    """``b`` payload words for matrix ``b`` (K x N, in the mode's ``b`` format): for each
    column block, for each ``k``, the row segment; lanes past ``N`` zero. ``[]`` for an
    erroneous command."""
    c = _coded(config, cmd)
    if error_code(config, c):
        return []
    fmt = _mode(config, c).b
    b = _matrix("b", b, (c.k, c.n), fmt, config.modes[c.mode])
    return _encode(_b_blocks(config, b).reshape(-1, config.cols), fmt, config.b_width)


# -- result stream ----------------------------------------------------------------------------


def _pack_rows(config, rows, *, last=True):
    """Rows ``(count, C)`` of ``s<acc_width>`` values → ``o`` words with ``last`` on the final
    one (``c`` words when not ``last``)."""
    if not len(rows):
        return []
    lanes = _slots_to_words(rows & ((1 << config.acc_width) - 1), config.acc_width)
    if not last:
        return pack(config.c_fields, {"c": lanes})
    flags = [0] * (len(lanes) - 1) + [1]
    return pack(config.o_fields, {"c": lanes, "last": flags})


def unpack_rows(config, cmd, o_words):
    """The ``o`` words of one command → its M x N result matrix (int64): accumulators for
    ``raw``, the requantized values for ``requant``; ``None`` for output ``none`` or an erroneous
    command (which send nothing).

    Raises :class:`ValueError` unless there is exactly one word per result row (``NB*M``),
    ``last`` is set on the final row only and the lanes past ``N`` are 0.
    """
    c = _coded(config, cmd)
    o_words = list(o_words)
    sends = error_code(config, c) == 0 and c.output != NONE
    want = ceil_div(c.n, config.cols) * c.m if sends else 0
    if len(o_words) != want:
        raise ValueError(f"o_words: {len(o_words)} words is not allowed; expected {want} for "
                         f"this command (m={c.m}, n={c.n}, output {c.output}, "
                         f"err {error_code(config, c)})")
    if not sends:
        return None
    fields = unpack(config.o_fields, o_words)
    last = np.flatnonzero(fields["last"])
    if last.tolist() != [want - 1]:
        raise ValueError(f"o_words: last is set on rows {last.tolist()}; expected it on row "
                         f"{want - 1} only")
    rows = _words_to_slots(fields["c"], config.cols, config.acc_width)
    if not config.is_float:
        rows = wrap(rows, IntFormat(config.acc_width, True))
    y = _rows_to_matrix(config, c, rows)
    cols = _row_columns(config, c)
    stray = np.argwhere((cols >= c.n) & (rows != 0))
    if stray.size:
        r, j = stray[0]
        raise ValueError(f"o_words: row {r} lane {j} (past n={c.n}) holds {rows[r, j]}; "
                         f"expected 0")
    return y


def _row_columns(config, c):
    """Matrix column of each (row ``r``, lane ``j``) of a command: ``nb*C + j``."""
    nb_of_row = np.arange(ceil_div(c.n, config.cols) * c.m) // c.m
    return nb_of_row[:, None] * config.cols + np.arange(config.cols)


def _rows_to_matrix(config, c, rows):
    """Rows in ``r = nb*M + m`` order ``(NB*M, C)`` → the M x N matrix."""
    nb = ceil_div(c.n, config.cols)
    return rows.reshape(nb, c.m, config.cols).transpose(1, 0, 2).reshape(c.m, -1)[:, :c.n]


# -- the engine -------------------------------------------------------------------------------


def _accumulate(config, flow, init, a_blocks, b_blocks, mode):
    """Accumulator rows ``(NB, M, C)`` from ``init`` (same shape), A per column block
    ``(NB, M, K)`` and B per column block ``(NB, K, C)`` (zero past ``N``), with the overflow
    steps of ``flow``; float modes (``mode`` the :class:`~accelgen.generators.mac.Mode`):
    FP32 codes in and out, see :func:`_accumulate_fp32`."""
    if config.is_float:
        return _accumulate_fp32(config, flow, init, a_blocks, b_blocks, mode)
    acc_fmt = IntFormat(config.acc_width, True)
    if flow == "os":    # the PE sums all K products exactly; one overflow step into memory
        return apply_overflow(init + np.matmul(a_blocks, b_blocks), acc_fmt, config.overflow)
    row = init          # ws: one overflow step per K-block of `rows` products
    for k0 in range(0, a_blocks.shape[2], config.rows):
        k1 = k0 + config.rows
        part = np.matmul(a_blocks[:, :, k0:k1], b_blocks[:, k0:k1])
        row = apply_overflow(row + part, acc_fmt, config.overflow)
    return row


def _fp32(codes):
    return np.asarray(codes, np.int64).astype(np.uint32).view(np.float32)


def _fp32_codes(values):
    """FP32 codes of float32 ``values``, every NaN as :data:`FP32_NAN` (the hardware's)."""
    codes = values.view(np.uint32).astype(np.int64)
    return np.where(np.isnan(values), FP32_NAN, codes)


def _accumulate_fp32(config, flow, init, a_blocks, b_blocks, mode):
    """Float modes: the sums of the module docstring of
    :mod:`accelgen.generators.systolic` with numpy doing the IEEE arithmetic: products of
    element values in float64 are exact (at most 22 significand bits, exponents far inside
    float64's range), so one cast to float32 rounds each to FP32 (nearest even, subnormals,
    overflow to inf); float32 additions are IEEE binary32 additions."""
    a = code_values(mode.a, a_blocks)                        # (NB, M, K)
    b = code_values(mode.b, b_blocks)                        # (NB, K, C)
    with np.errstate(all="ignore"):
        products = (a[:, :, :, None] * b[:, None, :, :]).astype(np.float32)   # (NB, M, K, C)
        row = _fp32(init)
        k_total = a_blocks.shape[2]
        step = k_total if flow == "os" else config.rows
        for k0 in range(0, k_total, step):
            part = np.zeros(row.shape, np.float32)           # +0: the PE's cleared sum
            for k in range(k0, min(k_total, k0 + step)):
                part = part + products[:, :, k]
            row = row + part
    return _fp32_codes(row)


def _convert_rows(config, rows, scale, relu):
    """Float output ``requant``: ``out_format`` codes of ``relu(x) * 2**scale`` for FP32
    codes ``rows`` (the ``cast`` block's conversion, :func:`accelgen.sim.golden.cast.convert`)."""
    out = np.zeros(rows.shape, np.int64)
    for index, code in np.ndenumerate(rows):
        d = FP32.decode(int(code))
        if relu and d.sign and not d.nan:
            d = replace(d, sign=0, sig=0, inf=False)
        out[index] = convert(replace(d, exp=d.exp + scale), config.out_target,
                             saturate=config.out_saturate)
    return out


@dataclass
class Result:
    """What one command does at element level.

    ``y``: M x N int64 result (accumulators for ``raw``, requantized values for ``requant``),
    ``None`` for output ``none`` or an error; ``err``: ``rsp.err``; ``macs``: the ``rsp.macs``
    counter (``M*K*N`` mod ``2**counter_width``, 0 on error); ``o_words``: the ``o`` payload
    words the hardware sends; ``a_words``/``b_words``/``c_words``: the beats it consumes.
    """
    y: object
    err: int
    macs: int
    o_words: list = field(default_factory=list)
    a_words: list = field(default_factory=list)
    b_words: list = field(default_factory=list)
    c_words: list = field(default_factory=list)


class Model:
    """Stateful model of one ``systolic`` block: holds the accumulator memory
    (:attr:`memory`, ``acc_depth`` x ``cols`` int64, zeros at start; like the hardware's it
    survives a reset); run commands in order with :meth:`run` or :meth:`words`."""

    def __init__(self, config):
        self.config = config
        self.memory = np.zeros((config.acc_depth, config.cols), np.int64)

    def run(self, cmd, a=None, b=None, c=None):
        """Element level: run :class:`Command` ``cmd`` on ``a`` (M x K) and ``b`` (K x N),
        integer arrays in the mode's formats (float modes: element values), and with
        ``preload`` on ``c`` (M x N, in ``s<acc_width>``; float modes: FP32 values); none is
        looked at when the command is an error. Returns a :class:`Result`."""
        cfg, c_init = self.config, c
        c = _coded(cfg, cmd)
        err = error_code(cfg, c)
        if err:
            return Result(None, err, 0)
        fmt = _mode(cfg, c)
        a = _matrix("a", _required("a", a), (c.m, c.k), fmt.a, cfg.modes[c.mode])
        b = _matrix("b", _required("b", b), (c.k, c.n), fmt.b, cfg.modes[c.mode])
        c_words = []
        if c.preload:
            values = _accumulators(cfg, "c", _required("c", c_init), (c.m, c.n))
            rows = self._preload(c, values)
            c_words = _pack_rows(cfg, rows, last=False)
        nb = ceil_div(c.n, cfg.cols)
        a_blocks = np.broadcast_to(a, (nb, c.m, c.k))
        b_blocks = _b_blocks(cfg, b)
        y, o_words = self._execute(c, a_blocks, b_blocks)
        return Result(y, 0, self._macs(c), o_words,
                      _encode(_a_beats(cfg, c, a_blocks), fmt.a, cfg.a_width),
                      _encode(b_blocks.reshape(-1, cfg.cols), fmt.b, cfg.b_width), c_words)

    def words(self, cmd_word, a_iter, b_iter, c_iter=()):
        """Payload level: run the raw ``cmd`` word ``cmd_word``, pulling exactly the beats it
        consumes from the iterables of ``a``, ``b`` and ``c`` words (none on error; pass
        iterators to share them across commands). Returns ``(o_words, err, macs)`` as the
        hardware must send them. Raises :class:`ValueError` if an iterable runs out."""
        cfg = self.config
        c = unpack_command(cfg, cmd_word).coded(cfg)
        err = error_code(cfg, c)
        if err:
            return [], err, 0
        n_a, n_b = _beat_counts(cfg, c)
        nb = ceil_div(c.n, cfg.cols)
        if c.preload:
            words = _pull("c_iter", c_iter, nb * c.m)
            lanes = unpack(cfg.c_fields, words)["c"]
            rows = _words_to_slots(lanes, cfg.cols, cfg.acc_width)
            if not cfg.is_float:
                rows = np.where(rows >= 1 << (cfg.acc_width - 1), rows - (1 << cfg.acc_width),
                                rows)
            rows = np.where(_row_columns(cfg, c) < c.n, rows, 0)
            self._write_rows(c, rows)
        fmt = _mode(cfg, c)
        a_beats = _decode(_pull("a_iter", a_iter, n_a), cfg.rows, fmt.a, cfg.a_width)
        b_beats = _decode(_pull("b_iter", b_iter, n_b), cfg.cols, fmt.b, cfg.b_width)
        nb = ceil_div(c.n, cfg.cols)
        b_blocks = b_beats.reshape(nb, c.k, cfg.cols)
        b_blocks = np.where(_row_columns(cfg, replace(c, m=1))[:, None, :] < c.n, b_blocks, 0)
        _, o_words = self._execute(c, _a_blocks(cfg, c, a_beats), b_blocks)
        return o_words, 0, self._macs(c)

    def _macs(self, c):
        return (c.m * c.k * c.n) % (1 << self.config.counter_width)

    def _execute(self, c, a_blocks, b_blocks):
        """Run valid command ``c`` on per-column-block operands: update the memory and return
        ``(y, o_words)``."""
        cfg = self.config
        nb = a_blocks.shape[0]
        count = nb * c.m
        addr = np.arange(count) % cfg.acc_depth
        if c.accumulate or c.preload:   # error 3 guarantees distinct addresses
            init = self.memory[addr]
        else:
            init = np.zeros((count, cfg.cols), np.int64)
        acc = _accumulate(cfg, _flow(cfg, c), init.reshape(nb, c.m, cfg.cols), a_blocks,
                          b_blocks, _mode(cfg, c)).reshape(count, cfg.cols)
        # rows are written in order of r: the last acc_depth rows are each address's last write
        tail = max(0, count - cfg.acc_depth)
        self.memory[addr[tail:]] = acc[tail:]
        if c.output == NONE:
            return None, []
        if c.output == RAW:
            out = acc
        elif cfg.is_float:
            out = _convert_rows(cfg, acc, c.scale, c.relu)
        else:
            out = requantize(acc, c.mult, c.shift, c.zero_point, c.relu, c.out_signed,
                             cfg.rounding)
        out = np.where(_row_columns(cfg, c) < c.n, out, 0)
        return _rows_to_matrix(cfg, c, out), _pack_rows(cfg, out)

    def _preload(self, c, values):
        """Write ``values`` (M x N) into the rows of command ``c`` (lanes past ``N`` zero), as
        a ``preload`` command does first; returns those rows (``NB*M`` x C, order of ``r``)."""
        cfg = self.config
        nb = ceil_div(c.n, cfg.cols)
        pad = np.zeros((c.m, nb * cfg.cols), np.int64)
        pad[:, :c.n] = values
        rows = pad.reshape(c.m, nb, cfg.cols).transpose(1, 0, 2).reshape(-1, cfg.cols)
        self._write_rows(c, rows)
        return rows

    def _write_rows(self, c, rows):
        nb = ceil_div(c.n, self.config.cols)
        self.memory[np.arange(nb * c.m) % self.config.acc_depth] = rows


def _required(name, value):
    if value is None:
        raise ValueError(f"{name}: None is not allowed; expected an integer matrix")
    return value


def _pull(name, iterable, count):
    it = iter(iterable)
    beats = []
    for _ in range(count):
        try:
            beats.append(next(it))
        except StopIteration:
            raise ValueError(f"{name}: ran out after {len(beats)} beats; the command consumes "
                             f"{count}") from None
    return beats


# -- conveniences -----------------------------------------------------------------------------


def gemm(config, a, b, c=None, *, dataflow=None, mode=None, **requant):
    """``a . b`` as one command on a fresh :class:`Model`: the M x N int64 result.

    ``a`` (M x K) and ``b`` (K x N) are integer arrays in ``mode``'s formats (default: the first
    mode); ``dataflow`` defaults to the first built one. With ``c`` (M x N, in ``s<acc_width>``)
    the command preloads the accumulators with ``c`` (``preload``): ``a . b + c``. Any of ``mult``,
    ``shift``, ``zero_point``, ``relu``, ``out_signed`` selects output ``requant``. Raises
    :class:`ValueError` when the command would be an error in this config.
    """
    cmd = _gemm_command(config, a, b, c, dataflow, mode, requant)
    return Model(config).run(cmd, a, b, c).y


def _gemm_command(config, a, b, c, dataflow, mode, requant):
    """The one command :func:`gemm` runs; checks names, dtypes, shapes and that the command is
    not an error (not the values)."""
    params = command_format(config).requant_params
    unknown = sorted(set(requant) - set(params))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown argument; allowed are {', '.join(params)}")
    numbers = _numbers if config.is_float else _integers
    a, b = numbers("a", _required("a", a)), numbers("b", _required("b", b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"a, b: shapes {a.shape} and {b.shape} are not allowed; expected "
                         f"(M, K) and (K, N)")
    (m, k), n = a.shape, b.shape[1]
    if c is not None:
        c = numbers("c", c)
        if c.shape != (m, n):
            raise ValueError(f"c: shape {c.shape} is not allowed; expected {(m, n)}")
    cmd = Command(m, k, n, preload=c is not None, output="requant" if requant else "raw",
                  dataflow=dataflow, mode=mode, **requant)
    err = error_code(config, cmd)
    if err:
        raise ValueError(f"a, b: a ({m} x {k}) . ({k} x {n}) product is not allowed here; it is "
                         f"err {err} ({ERRORS[err]})")
    return cmd


def check_arrays(config, *, strict=True, **arrays):
    """Raise :class:`ValueError` unless :func:`gemm` (first mode and dataflow) can take
    ``arrays`` (``a``, ``b`` and optionally ``c``, see :data:`ARGUMENTS`): names, integer dtypes,
    shapes and a command that is not an error; with ``strict`` also values inside their formats
    (``a``/``b`` in the first mode's, ``c`` in ``s<acc_width>``)."""
    unknown = sorted(set(arrays) - set(ARGUMENTS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown array; allowed are {', '.join(ARGUMENTS)}")
    if strict:
        gemm(config, arrays.get("a"), arrays.get("b"), arrays.get("c"))
    else:
        _gemm_command(config, arrays.get("a"), arrays.get("b"), arrays.get("c"), None, None, {})


def float_arrays(config):
    """Float builds take element values: ``a``, ``b`` (exact values of the mode's formats) and
    ``c`` (exact FP32 values)."""
    return ARGUMENTS if config.is_float else ()


def parse_gemm(text):
    """``"MxKxN"`` (or a 3-sequence) → ``(m, k, n)`` of positive ints; :class:`ConfigError`
    naming ``--gemm`` otherwise."""
    if isinstance(text, str):
        parts = text.strip().lower().split("x")
    else:
        parts = list(text) if isinstance(text, (list, tuple)) else [text]
    try:
        dims = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        shown = text if isinstance(text, str) else "x".join(map(str, parts))
        raise ConfigError(f"--gemm: {shown!r} is not allowed; expected MxKxN, three positive "
                          f"integers, e.g. 64x64x64")
    return dims


def _refuse(option, text, flow, cmd, config):
    """:class:`ConfigError` for a command that is an error of ``config``, or None."""
    try:
        err = error_code(config, cmd)
    except ValueError:
        err = None
    if err == 0:
        return None
    why = "" if err is None else f" (err {err}: {ERRORS[err]})"
    limits = (f"M and N from 1 to {command_format(config).dim_max}, K from 1 to "
              f"k_max={config.k_max}"
              + (f", and in ws M <= acc_depth={config.acc_depth} when K > rows={config.rows}"
                 if "ws" in config.dataflows else ""))
    return ConfigError(f"{option}: {text} is not allowed in {flow}{why}; allowed are {limits}")


def check_run_options(config, options, arrays=None, *, allow_large=False):
    """The ``accelgen sim`` options of this block, checked against ``config`` before anything
    is built: ``gemm`` (``"MxKxN"``: the shape of the ``gemm`` testcase, a valid command of
    ``config``) and ``dataflow`` (one the config builds; of ``gemm`` and of the inputs'
    command). With the user's ``arrays``, their command must be valid in that dataflow too.
    A GEMM takes at least ``M*K*N / (rows*cols)`` cycles; past
    :data:`~accelgen.generators.base.LIMITS` ``sim_cycles`` it is refused unless
    ``allow_large``. Returns ``{"gemm": "MxKxN", "dataflow": ...}`` (given keys only); raises
    :class:`ConfigError` naming ``--gemm``/``--dataflow``/``--inputs``."""
    out = {}
    flow = options.get("dataflow")
    if flow is not None:
        if flow not in config.dataflows:
            raise ConfigError(f"--dataflow: {flow!r} is not allowed; allowed are "
                              f"{', '.join(repr(d) for d in config.dataflows)} (the dataflows "
                              f"this config builds)")
        out["dataflow"] = flow
    flow = flow if flow is not None else config.dataflows[0]
    if options.get("gemm") is not None:
        if arrays is not None:
            raise ConfigError("--gemm: not allowed together with --inputs; --gemm runs random "
                              "operands of a shape, --inputs runs your arrays")
        m, k, n = parse_gemm(options["gemm"])
        text = f"{m}x{k}x{n}"
        problem = _refuse("--gemm", repr(text), flow, Command(m, k, n, dataflow=flow), config)
        if problem:
            raise problem
        check_limit("sim_cycles", m * k * n // (config.rows * config.cols),
                    f"--gemm: {text} takes at least M*K*N/(rows*cols)", allow_large)
        out["gemm"] = text
    if arrays is not None and "dataflow" in out:
        (m, k), n = np.shape(arrays["a"]), np.shape(arrays["b"])[1]
        cmd = Command(m, k, n, preload="c" in arrays, dataflow=flow)
        err = error_code(config, cmd)
        if err:
            raise ConfigError(f"--inputs: a ({m} x {k}) . ({k} x {n}) product is not allowed "
                              f"in {flow}; it is err {err} ({ERRORS[err]})")
    return out


def model_report(config, options):
    """``accelgen show systolic --gemm MxKxN [--dataflow]``: the analytic cycle model
    (:mod:`accelgen.sim.golden.systolic_cycles`) of that GEMM as one command at full rate, next
    to the floor of one tile and SCALE-Sim's analytical formula. ``options`` are checked
    (:func:`check_run_options`). Returns ``(data, lines)``."""
    from .systolic_cycles import command_cycles, scalesim_cycles, tile_floor
    if "gemm" not in options:
        raise ConfigError("--dataflow: allowed in accelgen show only together with --gemm "
                          "(it picks the dataflow of that GEMM)")
    m, k, n = parse_gemm(options["gemm"])
    flow = options.get("dataflow", config.dataflows[0])
    r = command_cycles(config, Command(m, k, n, dataflow=flow))
    floor = tile_floor(config, min(k, config.k_max), flow)
    data = {"gemm": options["gemm"], "dataflow": flow, "cycles": r.cycles, "steps": r.steps,
            "macs": r.macs, "utilization": r.utilization, "first_step": r.first_step,
            "last_step": r.last_step, "scalesim_cycles": scalesim_cycles(config, m, k, n, flow),
            "tile_floor": floor}
    lines = [f"cycle model: {options['gemm']} in {flow} at full rate (no simulation)",
             f"  cycles       {r.cycles}  (rsp.cycles, command accepted to rsp)",
             f"  utilization  {100 * r.utilization:.1f} %  (M*K*N / (R*C*cycles))",
             f"  steps        {r.steps}  (first at cycle {r.first_step}, last at "
             f"{r.last_step})",
             f"  SCALE-Sim    {data['scalesim_cycles']}  (analytical, ISPASS 2020 eq. 4; "
             f"compute only)",
             "  one tile     " + ", ".join(f"{key} {value}" for key, value in floor.items())]
    return data, lines


#: registry-facing name (see :class:`accelgen.generators.registry.GeneratorSpec`)
run = gemm
