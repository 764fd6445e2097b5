"""Block ``systolic``: an R x C systolic GEMM engine with its tiling controller.

::

                 b ──► B-panel buffer (2 banks x k_max rows of C operands)
                          │ os: one row per step        │ ws: R rows per weight tile
                          ▼ (skewed by column)          ▼ (shadow-weight chain, no skew)
    a ──► a FIFO ──► [feeder] ──► ┌────┬────┬────┐
        (R operands  skewed by    │ PE │ PE │ PE │──► a, tags move right
         per beat)   row          ├────┼────┼────┤
                                  │ PE │ PE │ PE │    os: b and results move down
                                  ├────┼────┼────┤    ws: partial sums move down
                                  │ PE │ PE │ PE │
                                  └────┴────┴────┘
            os and ws: bottom edge ─┐
                        ┌───────────┘
                        └─► de-skew (column j delayed C-1-j) ─► one result row
                                     │
                    read-modify-write: row = ovf((overwrite ? 0 : mem) + row)
                                     │
                           accumulator memory (acc_depth rows of C lanes)
                                     │ drain in row order
                          (requantizer) ─► output FIFO ─► o ;  rsp (err + counters)

The array is free-running: it never stalls. The feeder issues one *step* (an ``a`` beat, a
B-panel row in ``os``, and tags) per cycle or a bubble (zeros), and it only issues a step whose
results will find room: rows are retired into the accumulator memory, which is the elastic
buffer in front of the (backpressured) output. Its ring of ``acc_depth`` rows is the credit.

Output-stationary PE: ``acc`` sums exactly over the K steps of a tile; the step tagged
``last`` captures ``acc + p`` into ``out`` and clears ``acc`` (the clear is the register's
synchronous reset, so the next tile's first product needs no bubble). A second register per
PE, ``ch``, forms a result chain that moves one row *down* per cycle, with the capture wave:
row ``i`` puts its result into the chain ``i + 1`` cycles after its capture, just behind row
``i - 1``'s, so a tile's rows leave the bottom edge one per cycle, in order. The next tile's
capture may follow R cycles later (the feeder enforces it; it only matters for K < R, where
one row per cycle into the accumulator memory is the bound anyway).

Weight-stationary PE: a shadow weight register is loaded by shifting R B-panel rows down each
column (``wload``) while the previous tile computes; the step tagged ``swap`` (first row of a
weight tile) copies shadow to active as it passes. Partial sums move down and are exact
(``ws_sum_width``); the accumulator memory applies the overflow rule once per K-block.

With both dataflows the PE shares its multiplier, operand register and sum register and muxes
their sources by the command's dataflow.

Units (each a component with explicit ports; :class:`Systolic` in :mod:`.top` wires them)
    :mod:`.control`      ``Control``: command register and checks, PRELOAD/RUN sequencing,
                         counters, response; broadcasts the command as the ``task`` interface.
    :mod:`.feeder`       ``AIntake`` (the ``a`` FIFO) and ``Feeder`` (issues steps, ring credit).
    :mod:`.panel`        ``PanelBuffer`` (two B-panel banks) and ``WeightLoader`` (ws).
    :mod:`.pe`           ``PE`` and ``Array`` (skew, PEs, de-skew); ``standalone_pe``.
    :mod:`.accumulator`  ``Accumulator``: the memory with ``Preloader``, ``Writer`` and
                         ``Drain`` (requantizer, output FIFO).
    Loop counters are :class:`accelgen.hdl.common.loopnest.LoopNest` instances.

Numeric semantics, stream formats, errors and counters are defined in
:mod:`accelgen.generators.systolic` and :mod:`accelgen.sim.golden.systolic`.

ABFT (``abft``): one more PE column, right of column C-1, multiplies the same ``a`` by each
B-panel row's checksum element (formed as the row is written into the panel, stored beside
it); its sums leave the bottom edge one cycle after column C-1's and are not de-skewed (the
writer gives the data lanes that cycle instead). The accumulator memory holds them in a
checksum lane per row, and the drain checks each row it reads against it::

    B-panel row [b0 .. bC-1 | sum b] ──► PE columns 0..C-1 ──► row ──┐
                                    └──► checksum column ──► row_cs ─┴► memory row + lane
                         drain: sum(lanes) == lane (mod 2**acc_width)? else rsp.err 5

Float modes: the feeder and the panel decode each element once into ``Cat(sig, exp, sign,
nan, inf)`` (``operand_width`` bits), so the PEs hold decoded operands; a PE rounds the
significand product to FP32 and adds it with an IEEE binary32 adder (``s`` and ``out`` hold
FP32 codes; the os clear writes +0). Bubbles and ws elements past K enter as the *null*
operand (NaN and inf flags both set, which no element decodes to), and a product with a null
operand is +0 whatever the other operand is: a stationary weight of inf or NaN, or one left
over from a ws command when the next runs os, never makes a bubble's ``0 * inf = NaN``. The
writer adds rows in FP32; output ``requant`` is the FP32-to-``out_format`` converter.
"""

from .pe import standalone_pe
from .top import Systolic

__all__ = ["Systolic", "standalone_pe"]
