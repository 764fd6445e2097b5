"""The analytic cycle model of block ``systolic``: the ``cycles`` counter of a command's
``rsp``, as a pure function of the config and the command, with every stream at full rate
(``cmd``, ``a``, ``b``, ``c`` valid whenever the block takes them, ``o`` and ``rsp`` always
ready). Gaps and backpressure only delay a command.

Cycle 0 is the cycle in which the command is accepted; ``cycles`` is the cycle of its ``rsp``
(the counter counts the cycles in between). With ``NB = ceil(N/C)``, ``p = pe_pipeline``:

* **Check.** ``start`` is high in cycle ``s = 2 + NB * resident`` (CHECK counts the rows of a
  command that keeps them, ``accumulate``/``preload``/output ``none``, one column block per
  cycle). The units run from ``t0 = s + 1``; a ``preload`` first takes its ``NB*M`` ``c``
  beats in cycles ``s + 1 ..`` and runs from ``t0 = s + NB*M + 2``.
* **Operands.** ``a`` beats enter the ``a`` FIFO from ``t0`` and reach the feeder 2 cycles
  later: the first step issues no sooner than ``t0 + 2``; the FIFO stays ahead after that.
  Panel ``nb`` (K rows of ``b``) is written from cycle ``P(nb)``, one row per cycle, into bank
  ``nb % 2``: ``P(0) = t0``, ``P(1) = P(0) + K``, ``P(nb) = max(P(nb-1) + K, X(nb-2) + 1)``
  with ``X`` the cycle the panel's reader releases its bank. Row ``k`` may be read from
  ``P(nb) + k + 1`` on.
* **os.** Tile ``(nb, mb)`` issues K steps back to back from ``F = max(previous step + 1,
  P(nb) + 1)``; its last step ``L = max(F + K - 1, L_prev + R, credit)`` (the result chain
  takes one tile every R cycles; the ring must have room for the tile's ``rv`` rows). Row
  ``i`` of the tile reaches the writer in ``L + R + C + p + 2 + i``. ``X(nb)`` = the panel's
  last ``L``.
* **ws.** Weight tile ``(nb, kb)`` (rows ``kb*R ..`` of the panel, ``ch`` of them) starts
  loading in ``W = max(P(nb) + kb*R + ch, swap_prev + R + 3)``, is ready in ``W + R + 2``
  (each row enters the array two cycles after its read: the panel's read data is
  registered); its first (``swap``) step issues at ``max(previous step + 1, W + R + 2)``, then
  M steps back to back (a step of the first K-block waits for a row of ring credit). Each
  step's row reaches the writer ``R + C + p + 1`` cycles after it; ``X(nb)`` = the panel's
  last ``W + R - 1``.
* **Results.** A row reaching the writer in ``w`` is final (if it is) in ``w + 4``; the drain
  reads final rows in order, one per cycle, ``d = max(d_prev + 1, w + 4)``; the ring credit
  of a row comes back in ``d + 1``. Its ``o`` word leaves in ``d + 4 + q`` (``q`` =
  :attr:`~accelgen.generators.systolic.SystolicConfig.requant_latency` for output
  ``requant``, else 0).
* **End.** The command ends in cycle ``E``, the first with everything done: the last row
  written (``w_kept + 4``; ``w_any + 2`` counting os padding rows) and, unless the output is
  ``none``, the last ``o`` word sent (``d_last + 5 + q``); ``rsp`` is valid in ``E + 1``:
  ``cycles = E + 1``.

An erroneous command reports 0. The tests hold the model to the RTL's counter for every shape
of the small-GEMM grid (M, N in 1..64, K in 1..256 on 4x4, 8x8 and 16x16, both dataflows) and
for random command sequences.
"""

from dataclasses import dataclass

from ...generators.systolic import OUTPUTS, ceil_div
from .systolic import Command, _beat_counts, error_code

__all__ = ["CycleReport", "command_cycles", "gemm_cycles", "tile_floor", "scalesim_cycles",
           "scalesim_files"]

REQUANT, NONE = OUTPUTS.index("requant"), OUTPUTS.index("none")
FIFO_LATENCY = 2        #: ``a`` beat taken -> on the feeder's input (SyncFIFOBuffered)
WRITE_FINAL = 4         #: row at the writer -> counted final (read, W1, W2, W3/write, count)
DRAIN_TO_O = 4          #: drain read -> ``o`` transfer (D1, D2, output FIFO: 2)


@dataclass(frozen=True)
class CycleReport:
    """What the model says about one command.

    Members
    -------
    cycles : int
        The ``rsp`` counter (0 for an erroneous command).
    steps : int
        Array steps (= the ``busy`` counter = ``a`` beats).
    macs : int
        ``M*K*N`` (0 for an erroneous command).
    utilization : float
        ``macs / (R*C*cycles)``.
    first_step, last_step : int
        Cycles of the first and last step issue (None when erroneous).
    err : int
        The command's ``rsp.err``.
    """

    cycles: int
    steps: int
    macs: int
    utilization: float
    first_step: object
    last_step: object
    err: int


class _Results:
    """Rows on their way from the array to ``o``: drain reads and ring credit."""

    def __init__(self, depth):
        self.depth = depth
        self.claimed = 0
        self.drains = []        # drain read cycle of each final row, in order
        self.w_kept = self.w_any = 0

    def room(self, t, rows):
        """First cycle >= t in which the ring has ``rows`` more rows of credit."""
        short = self.claimed + rows - self.depth
        self.claimed += rows
        return t if short <= 0 else max(t, self.drains[short - 1] + 1)

    def row(self, w, *, kept=True, final=True):
        """A row reaches the writer in cycle ``w``."""
        self.w_any = max(self.w_any, w)
        if kept:
            self.w_kept = max(self.w_kept, w)
        if kept and final:
            ready = w + WRITE_FINAL
            self.drains.append(max(self.drains[-1] + 1, ready) if self.drains else ready)


def _panel_start(starts, releases, nb, k):
    if nb == 0:
        return starts[0]
    start = starts[nb - 1] + k
    return max(start, releases[nb - 2] + 1) if nb >= 2 else start


def _os(cfg, c, t0, res):
    R, C, K, M = cfg.rows, cfg.cols, c.k, c.m
    NB, MB = ceil_div(c.n, C), ceil_div(M, R)
    to_writer = R + C + cfg.pe_pipeline + 2
    starts, releases = [t0], []
    cursor, last, first = t0 + FIFO_LATENCY, None, None
    for nb in range(NB):
        if nb:
            starts.append(_panel_start(starts, releases, nb, K))
        for mb in range(MB):
            rv = min(R, M - mb * R)
            f = max(cursor, starts[nb] + 1)
            first = f if first is None else first
            t = f + K - 1 if last is None else max(f + K - 1, last + R)
            last = res.room(t, rv)
            cursor = last + 1
            for i in range(R):
                res.row(last + to_writer + i, kept=i < rv)
        releases.append(last)
    return first, last


def _ws(cfg, c, t0, res):
    R, C, K, M = cfg.rows, cfg.cols, c.k, c.m
    NB, KB = ceil_div(c.n, C), ceil_div(K, R)
    to_writer = R + C + cfg.pe_pipeline + 1
    starts, releases = [t0], []
    cursor, swap, first, step = t0 + FIFO_LATENCY, None, None, None
    for nb in range(NB):
        if nb:
            starts.append(_panel_start(starts, releases, nb, K))
        for kb in range(KB):
            rows = min(R, K - kb * R)
            load = starts[nb] + kb * R + rows
            if swap is not None:
                load = max(load, swap + R + 3)
            step = max(cursor, load + R + 2)
            for m in range(M):
                if kb == 0:
                    step = res.room(step, 1)
                if m == 0:      # the swap step, as issued: the next load counts from it
                    swap = step
                res.row(step + to_writer, final=kb == KB - 1)
                step += 1
            first = swap if first is None else first
            cursor, step = step, step - 1
        releases.append(load + R - 1)
    return first, step


def command_cycles(config, cmd):
    """:class:`CycleReport` of ``cmd`` (a :class:`~accelgen.sim.golden.systolic.Command`)
    run alone at full rate on ``config`` (see the module docstring)."""
    c = cmd.coded(config)
    err = error_code(config, c)
    flow = config.dataflows[c.dataflow] if not err else None
    if err:
        return CycleReport(0, 0, 0, 0.0, None, None, err)
    nb = ceil_div(c.n, config.cols)
    resident = bool(c.accumulate or c.preload or c.output == NONE)
    start = 2 + nb * resident
    t0 = start + 1 + ((nb * c.m + 1) if c.preload else 0)
    res = _Results(config.acc_depth)
    first, last = (_os if flow == "os" else _ws)(config, c, t0, res)
    end = max(res.w_kept + WRITE_FINAL, res.w_any + 2)
    if c.output != NONE:
        q = config.requant_latency if c.output == REQUANT else 0
        end = max(end, res.drains[-1] + DRAIN_TO_O + 1 + q)
    cycles = end + 1
    macs = c.m * c.k * c.n
    return CycleReport(cycles=cycles, steps=_beat_counts(config, c)[0], macs=macs,
                       utilization=macs / (config.rows * config.cols * cycles),
                       first_step=first, last_step=last, err=0)


def gemm_cycles(config, m, k, n, dataflow=None, **flags):
    """``cycles`` of one GEMM command ``m x k x n`` (``flags``: the other
    :class:`~accelgen.sim.golden.systolic.Command` fields) at full rate; 0 if it is an
    error."""
    return command_cycles(config, Command(m=m, k=k, n=n, dataflow=dataflow, **flags)).cycles


def tile_floor(config, k, dataflow="os"):
    """The cycles one full tile (``R x K x C`` in os, ``M = R`` rows of one weight tile in
    ws) cannot go below on an idle block, phase by phase: ``{"check", "operands", "steps",
    "skew", "drain", "total"}``. ``skew`` is the array's fill and result path (row skew,
    column skew, result chain, de-skew), ``drain`` the writer, the drain and the ``o``
    word."""
    R, C, p = config.rows, config.cols, config.pe_pipeline
    phases = {"check": 3, "operands": FIFO_LATENCY}
    if dataflow == "os":
        phases.update(steps=k, skew=R + C + p + 1 + R - 1)
    else:
        phases.update(operands=max(FIFO_LATENCY, min(k, R) + R + 2), steps=R,
                      skew=R + C + p)
    phases["drain"] = WRITE_FINAL + DRAIN_TO_O + 2
    phases["total"] = sum(phases.values())
    return phases


# -- SCALE-Sim, for comparison ---------------------------------------------------------------

def scalesim_cycles(config, m, k, n, dataflow="os"):
    """SCALE-Sim's published analytical runtime of an ``m x k x n`` GEMM on an R x C array
    (Samajdar et al., "A Systematic Methodology for Characterizing Scalability of DNN
    Accelerators using SCALE-Sim", ISPASS 2020, eq. 4): ``(2R + C + T - 2) * ceil(S_R/R) *
    ceil(S_C/C)`` with, for os, ``S_R = M`` (output rows), ``S_C = N``, ``T = K``; for ws,
    ``S_R = K``, ``S_C = N``, ``T = M``. It counts compute only (no operand loading, no
    overlap of one fold's drain with the next fold's fill, no command overhead)."""
    R, C = config.rows, config.cols
    s_r, s_c, t = (m, n, k) if dataflow == "os" else (k, n, m)
    return (2 * R + C + t - 2) * ceil_div(s_r, R) * ceil_div(s_c, C)


def scalesim_files(config, shapes, dataflow="os", *, run_name="accelgen"):
    """``(config text, topology text)``: a SCALE-Sim v2 ``.cfg`` for ``config``'s array and a
    GEMM topology ``.csv`` (``Layer name,M,N,K``) of ``shapes`` (``(m, k, n)`` tuples), so a
    user can run ``python3 -m scalesim.scale -c accelgen.cfg -t gemms.csv -i gemm`` on the
    same GEMMs. The SRAMs are sized so that the run is compute-bound, like the model above."""
    cfg = "\n".join([
        "[general]", f"run_name = {run_name}_{config.rows}x{config.cols}_{dataflow}", "",
        "[architecture_presets]", f"ArrayHeight:    {config.rows}",
        f"ArrayWidth:     {config.cols}", "IfmapSramSzkB:   4096", "FilterSramSzkB:  4096",
        "OfmapSramSzkB:   4096", "IfmapOffset:    0", "FilterOffset:   10000000",
        "OfmapOffset:    20000000", "Bandwidth : 1024", f"Dataflow : {dataflow}",
        "MemoryBanks:   1", "", "[run_presets]", "InterfaceBandwidth: CALC", ""])
    rows = ["Layer name,M,N,K,"] + [f"gemm_{m}x{k}x{n},{m},{n},{k}," for m, k, n in shapes]
    return cfg, "\n".join(rows) + "\n"
