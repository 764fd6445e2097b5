"""Network operations on block ``systolic``: a :class:`~accelgen.sim.golden.ops.GemmOp` as a
sequence of GEMM commands with the requantizing output stage (the block's registry entry
names this module as its ``model_ops``).

Numbers
    Each column's real scale ``s`` becomes the dyadic ``mult / 2**shift``
    (:func:`dyadic_scale`: ``mult`` of the config's ``mult_bits`` bits, rounded to nearest,
    relative error at most ``2**-mult_bits``), applied with the config's ``rounding``; the
    result saturates to ``s8``/``u8`` after the zero point, as the block's output stage does.
    ``C`` (bias and zero-point terms) is preloaded into the accumulator memory. ``u8``
    operands run in mode ``u8s8`` when the config builds it, else as ``s8`` codes ``a - 128``
    with ``128 * colsum(B)`` added to ``C`` (exact).

Tiling
    One command per (column group, M tile, N tile, K chunk). Columns whose ``(mult, shift)``
    agree form a group (per-tensor scales: one group; per-channel scales: up to one group per
    column, since the output stage has one multiplier per command). ``K`` is cut into chunks
    of at most ``k_max`` (the first preloads ``C``, the others ``accumulate``, the last sends
    ``requant`` results, the others ``none``); a command that keeps its rows (preload,
    accumulate, none) may hold at most ``acc_depth`` rows, ``NB * M``. Among the dataflows the
    config builds and M tiles of powers of two, the plan takes the one with the fewest cycles
    by the block's cycle model (:mod:`accelgen.sim.golden.systolic_cycles`).
"""

import numpy as np

from ...approx import dyadic
from ...generators.systolic import ceil_div
from ...numerics import ConfigError
from .ops import Plan
from .systolic import Command, command_format, error_code, unpack_rows, unpack_rsp
from .systolic_cycles import command_cycles
from .systolic_program import Program

__all__ = ["KINDS", "configure", "plan", "dyadic_scale"]

KINDS = ("gemm",)
MAX_SHIFT = 63
COUNTERS = ("cycles", "busy", "stall_a", "stall_b", "stall_out", "macs")


def dyadic_scale(scale, mult_bits):
    """``(mult, shift)``: ``mult / 2**shift`` nearest to ``scale`` with ``mult`` of at most
    ``mult_bits`` bits (at least ``2**(mult_bits-1)`` unless the shift would pass 63, where
    ``mult`` loses its low bits). :class:`ConfigError` when ``scale`` needs a multiplier wider
    than ``mult_bits`` at shift 0 (a scale of ``2**mult_bits`` or more)."""
    if not float(scale) > 0:
        raise ConfigError(f"scale: {float(scale)!r} is not allowed; the requantizer takes "
                          f"positive scales")
    mult, shift = dyadic(float(scale), mult_bits)
    if mult >> mult_bits:
        raise ConfigError(f"scale: {float(scale)!r} is not allowed with mult_bits {mult_bits}; "
                          f"the requantizer's multiplier takes scales below 2**{mult_bits}")
    if shift > MAX_SHIFT:
        mult, shift = int(round(float(scale) * 2.0 ** MAX_SHIFT)), MAX_SHIFT
    return mult, shift


def configure(config, op):
    """The config ``op`` runs on: ``config`` itself, if it can (integer modes with the
    ``requant`` stage and a mode for the operand formats); :class:`ConfigError` saying what
    is missing otherwise."""
    if config.is_float:
        raise ConfigError(f"hw: a systolic config with float modes {list(config.modes)} cannot "
                          f"run an int8 GEMM; expected integer modes such as ['s8s8']")
    if not config.requant:
        raise ConfigError("hw: systolic requant = false cannot run a quantized GEMM; expected "
                          "requant = true (the output stage that requantizes to 8 bits)")
    _mode(config, op)
    return config


def _mode(config, op):
    """``(mode name, a offset)``: the mode that takes the operand formats, and what is
    subtracted from ``a`` codes (128 when ``u8`` runs as ``s8``)."""
    name = f"{op.a_format}{op.b_format}"
    if name in config.modes:
        return name, 0
    if op.a_format == "u8" and f"s8{op.b_format}" in config.modes:
        return f"s8{op.b_format}", 128
    raise ConfigError(f"hw: systolic modes {list(config.modes)} have no mode for {op.a_format} x "
                      f"{op.b_format} operands; expected {name!r} (or 's8{op.b_format}')")


def _groups(mults, shifts):
    """Columns with equal ``(mult, shift)``, in order of their first column."""
    groups = {}
    for j, key in enumerate(zip(mults.tolist(), shifts.tolist())):
        groups.setdefault(key, []).append(j)
    return [(key, np.array(cols)) for key, cols in groups.items()]


def _commands(config, m, k, n, flow, m_tile, nb_tile, preload, **requant):
    """``[(command, rows, columns, ks)]`` of one column group: slices of the group's M x K x
    N problem and the command that computes each."""
    fmt = command_format(config)
    k_chunk = min(config.k_max, fmt.dim_max)
    n_tile = min(nb_tile * config.cols, fmt.dim_max)
    out = []
    for m0 in range(0, m, m_tile):
        rows = slice(m0, min(m, m0 + m_tile))
        for n0 in range(0, n, n_tile):
            cols = slice(n0, min(n, n0 + n_tile))
            chunks = list(range(0, k, k_chunk))
            for i, k0 in enumerate(chunks):
                ks = slice(k0, min(k, k0 + k_chunk))
                last = i == len(chunks) - 1
                cmd = Command(m=rows.stop - rows.start, k=ks.stop - ks.start,
                              n=cols.stop - cols.start, dataflow=flow,
                              preload=preload and i == 0, accumulate=i > 0,
                              output="requant" if last else "none", **requant)
                out.append((cmd, rows, cols, ks))
    return out


def _tilings(config, m, n, resident):
    """Candidate ``(m_tile, nb_tile)``: M tiles of powers of two from ``rows`` (a smaller
    tile leaves PE rows idle) and M itself, within the command's ``m`` field; with resident
    rows ``m_tile * nb_tile <= acc_depth``."""
    dim = command_format(config).dim_max
    nb = ceil_div(n, config.cols)
    tiles = {min(m, dim)} | {t for t in (1 << i for i in range(17))
                             if config.rows <= t < min(m, dim)}
    for m_tile in sorted(tiles):
        if resident:
            if m_tile > config.acc_depth:
                continue
            yield m_tile, max(1, min(nb, config.acc_depth // m_tile))
        else:
            yield m_tile, nb


def _best(config, m, k, n, preload, requant, memo):
    """The dataflow and tiling of one column group with the fewest modelled cycles
    (``memo``: cycles of the command shapes seen, which repeat across tiles and groups)."""
    resident = preload or k > config.k_max

    def cycles_of(cmd):
        key = (cmd.m, cmd.k, cmd.n, cmd.dataflow, cmd.preload, cmd.accumulate, cmd.output)
        if key not in memo:
            memo[key] = (error_code(config, cmd.coded(config)),
                         command_cycles(config, cmd).cycles)
        return memo[key]

    best = None
    for flow in config.dataflows:
        for m_tile, nb_tile in _tilings(config, m, n, resident):
            cmds = _commands(config, m, k, n, flow, m_tile, nb_tile, preload, **requant)
            costs = [cycles_of(c) for c, *_ in cmds]
            if any(err for err, _ in costs):
                continue
            cycles = sum(c for _, c in costs)
            if best is None or cycles < best[0]:
                best = (cycles, cmds, flow, m_tile, nb_tile)
    if best is None:
        raise ConfigError(f"hw: no tiling of a {m}x{k}x{n} GEMM fits systolic acc_depth "
                          f"{config.acc_depth} and k_max {config.k_max}")
    return best


def plan(config, op):
    """The :class:`~accelgen.sim.golden.ops.Plan` of GEMM ``op`` on ``config`` (see the module
    docstring); its result is the golden model's, command by command."""
    mode, offset = _mode(config, op)
    m, k, n = op.shape
    a = np.asarray(op.a, np.int64) - offset
    b = np.asarray(op.b, np.int64)
    c = np.zeros((m, n), np.int64) if op.c is None else np.asarray(op.c, np.int64).copy()
    if offset:
        c += offset * b.sum(axis=0)
    preload = bool(offset) or op.c is not None
    params = [dyadic_scale(s, config.mult_bits) for s in np.asarray(op.scale, float)]
    mults = np.array([p[0] for p in params])
    shifts = np.array([p[1] for p in params])
    lo, hi = -(1 << (config.acc_width - 1)), (1 << (config.acc_width - 1)) - 1
    if preload and (c.min() < lo or c.max() > hi):
        raise ConfigError(f"hw: the GEMM's bias and zero-point terms reach "
                          f"{int(max(-c.min(), c.max()))}, beyond systolic acc_width "
                          f"{config.acc_width}")
    program = Program(config)
    placed, model_cycles, notes, memo = [], 0, [], {}
    groups = _groups(mults, shifts)
    for (mult, shift), cols in groups:
        requant = dict(mode=mode, mult=mult, shift=shift, zero_point=int(op.zero_point),
                       relu=bool(op.relu), out_signed=bool(op.out_signed))
        cycles, cmds, flow, m_tile, nb_tile = _best(config, m, k, len(cols), preload, requant,
                                                     memo)
        model_cycles += cycles
        for cmd, rows, cs, ks in cmds:
            init = c[rows][:, cols[cs]] if cmd.preload else None
            program.add(cmd, (a[rows, ks], b[ks][:, cols[cs]], init))
            placed.append((cmd, rows, cols[cs]))
        if len(notes) < 3:
            notes.append(f"{len(cols)} columns: {flow}, M tiles of {m_tile}, "
                         f"{min(len(cols), nb_tile * config.cols)} columns per command, "
                         f"K chunks of {min(config.k_max, command_format(config).dim_max)}, "
                         f"{len(cmds)} commands, mult {mult} / 2**{shift}")
    if len(groups) > 3:
        notes.append(f"... {len(groups)} column groups in all (per-channel scales)")
    owners = np.array(program.owner, dtype=np.int64)
    counts = np.bincount(owners, minlength=len(program.commands)) if owners.size \
        else np.zeros(len(program.commands), np.int64)

    def decode(words):
        o, rsp = list(words.get("o", ())), list(words.get("rsp", ()))
        if len(o) != len(program.o) or len(rsp) != len(program.commands):
            raise ValueError(f"the RTL sent {len(o)} o and {len(rsp)} rsp words; expected "
                             f"{len(program.o)} and {len(program.commands)}")
        y = np.zeros((m, n), np.int64)
        start = 0
        for (cmd, rows, cols), count in zip(placed, counts):
            part = unpack_rows(config, cmd, o[start:start + count])
            start += count
            if part is not None:
                y[rows, cols] = part
        totals = dict.fromkeys(COUNTERS, 0)
        for word in rsp:
            fields = unpack_rsp(config, word)
            if fields["err"]:
                raise ValueError(f"a command answered err {fields['err']}")
            for name in COUNTERS:
                totals[name] += fields[name]
        return y, totals

    result, _ = decode({"o": program.o, "rsp": [0] * len(program.commands)})
    return Plan(words={name: list(w) for name, w in program.words.items()},
                expect={"o": len(program.o), "rsp": len(program.commands)}, result=result,
                decode=decode, out_scale=None, out_zero_point=int(op.zero_point),
                commands=len(program.commands), model_cycles=model_cycles, notes=notes)
