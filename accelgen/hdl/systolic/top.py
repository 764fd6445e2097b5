"""The ``systolic`` block's public component: its units, wired together.

::

    cmd ──► Control ──► rsp
              │ task: start, preloading, run, params, ws (to every unit)

    a ──► AIntake ──► Feeder ──► a_ops, tags ──┐
                       ▲  │                    ▼
             bank_full │  │ panel_addr_next  Array ──► rows ──► Accumulator ──► o
                       │  ▼                    ▲ ▲                 ▲    │
    b ──────────► PanelBuffer ── row (os) ─────┘ │                 c    │ drain_issue: ring
                       ▲  │                      │                      ▼ credit to the Feeder
                       │  ▼ row                  │
                    WeightLoader ── w_top (ws) ──┘

    Feeder ◄─► WeightLoader: swap_issued, w_ready.  Feeder, Accumulator ──► Control: done
    flags; Feeder ──► Control: events (for the counters).

Every connection is made here, between ports; no unit reads another's internals, so the
order in which the units are added does not matter.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..common.stream import stream_signature
from .accumulator import Accumulator
from .control import Control
from .feeder import AIntake, Feeder
from .panel import PanelBuffer, WeightLoader
from .pe import Array

__all__ = ["Systolic"]


class Systolic(wiring.Component):
    """Systolic GEMM engine.

    Parameters
    ----------
    config : SystolicConfig

    Members
    -------
    cmd : In(stream.Signature(...))
        GEMM commands (``SystolicConfig.cmd_fields``); one is executed at a time.
    a : In(stream.Signature(...))
        Operand A, R elements per beat, in the order the command's dataflow defines.
    b : In(stream.Signature(...))
        Operand B, C elements per beat: the rows of each C-column panel.
    c : In(stream.Signature(...))
        Initial accumulators of a ``preload`` command, one result row (C lanes) per beat.
    o : Out(stream.Signature(...))
        Result rows (``c``: C lanes of ``s<acc_width>``; ``last`` on a command's final row).
    rsp : Out(stream.Signature(...))
        One beat per command: ``err`` and the performance counters.

    Timing
    ------
    The array performs one step (R x C MACs) per cycle while ``a`` delivers one beat per cycle
    and the B panel of the current column block is loaded; panel ``nb + 1`` loads while panel
    ``nb`` computes. Every stream tolerates arbitrary gaps and backpressure. ``a`` and ``b``
    beats are only taken while a command that needs them runs.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "cmd": In(stream_signature(config.cmd_fields)),
            "a": In(stream_signature(config.a_fields)),
            "b": In(stream_signature(config.b_fields)),
            "c": In(stream_signature(config.c_fields)),
            "o": Out(stream_signature(config.o_fields)),
            "rsp": Out(stream_signature(config.rsp_fields)),
        })

    def elaborate(self, platform):
        cfg, m = self.config, Module()
        R, C = cfg.rows, cfg.cols
        m.submodules.control = ctl = Control(cfg)
        m.submodules.panel = panel = PanelBuffer(cfg)
        m.submodules.a_in = a_in = AIntake(cfg)
        m.submodules.feeder = fd = Feeder(cfg)
        m.submodules.array = arr = Array(cfg)
        m.submodules.accumulator = acc = Accumulator(cfg)
        units = [panel, a_in, fd, acc]
        if "ws" in cfg.dataflows:
            m.submodules.weights = wl = WeightLoader(cfg)
            units.append(wl)

        wiring.connect(m, ctl.task, *(unit.task for unit in units))
        wiring.connect(m, wiring.flipped(self.cmd), ctl.cmd)
        wiring.connect(m, ctl.rsp, wiring.flipped(self.rsp))
        wiring.connect(m, wiring.flipped(self.a), a_in.a)
        wiring.connect(m, wiring.flipped(self.b), panel.b)
        wiring.connect(m, wiring.flipped(self.c), acc.c)
        wiring.connect(m, acc.o, wiring.flipped(self.o))

        # issue
        wiring.connect(m, a_in.steps, fd.a)
        wiring.connect(m, fd.events, ctl.events)
        m.d.comb += [
            fd.bank_full.eq(panel.bank_full),
            fd.fill_bank.eq(panel.fill_bank),
            fd.fill_rows.eq(panel.fill_rows),
            fd.fill_take.eq(panel.fill_take),
            fd.fill_last.eq(panel.fill_last),
            fd.a_valid_next.eq(a_in.valid_next),
            panel.os_addr_next.eq(fd.panel_addr_next),
            panel.os_release.eq(fd.panel_release),
            arr.ws_mode.eq(ctl.task.ws),
            *(arr.a[i].eq(fd.a_ops[i]) for i in range(R)),
        ]
        if "os" in cfg.dataflows:
            # the panel row read for a step arrives together with the feeder's F1 registers
            m.d.comb += [arr.last.eq(fd.last), *(arr.b[j].eq(panel.row[j]) for j in range(C))]
        if "ws" in cfg.dataflows:
            m.d.comb += [
                arr.swap.eq(fd.swap),
                arr.v.eq(fd.valid),
                wl.bank_full.eq(panel.bank_full),
                wl.fill_bank.eq(panel.fill_bank),
                wl.fill_rows.eq(panel.fill_rows),
                wl.fill_take.eq(panel.fill_take),
                wl.fill_restart.eq(panel.fill_restart),
                panel.ws_addr.eq(wl.panel_addr),
                panel.ws_release.eq(wl.panel_release),
                *(wl.panel_row[j].eq(panel.row[j]) for j in range(C)),
                *(arr.w_top[j].eq(wl.w_top[j]) for j in range(C)),
                arr.wload.eq(wl.wload),
                fd.w_ready.eq(wl.w_ready),
                fd.w_ready_next.eq(wl.w_ready_next),
                fd.w_bank_ready.eq(wl.bank_ready),
                wl.swap_issued.eq(fd.swap_issued),
            ]

        # results, and the ring credit they give back to the feeder
        m.d.comb += [
            *(acc.row[j].eq(arr.row[j]) for j in range(C)),
            acc.row_valid.eq(arr.row_valid),
            fd.credit.eq(acc.drain_issue),
        ]

        # completion
        m.d.comb += [
            ctl.preload_done.eq(acc.preload_done),
            ctl.feed_done.eq(fd.done),
            ctl.write_done.eq(acc.write_done),
            ctl.write_idle.eq(acc.write_idle),
            ctl.drain_done.eq(acc.drain_done),
        ]

        # abft: the checksum column's operands, its lane, and the drain's verdict
        if cfg.abft:
            m.d.comb += [acc.row_cs.eq(arr.row_cs), ctl.check_fail.eq(acc.check_fail)]
            if "os" in cfg.dataflows:
                m.d.comb += arr.b_cs.eq(panel.row_cs)
            if "ws" in cfg.dataflows:
                m.d.comb += [wl.panel_row_cs.eq(panel.row_cs), arr.w_top_cs.eq(wl.w_top_cs)]
        return m
