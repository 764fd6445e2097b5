"""The ``pim`` block's public component: a PIM channel (controller + bank model), or the
controller alone (``controller_only``) with its DRAM command port and read-data input.

::

    cmd ──► Controller ──► o, rsp            (trace: every DRAM command, with its cycle)
               │ dram ▲ rdata
               ▼      │
             BankModel                        (not built with controller_only: dram and
                                               rdata are ports of the component)
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...generators.pim import READ_LATENCY
from ..common.stream import stream_signature
from .bank import PIPELINE, BankModel
from .controller import Controller, always_ready

__all__ = ["Pim"]


class Pim(wiring.Component):
    """One PIM channel.

    Parameters
    ----------
    config : PimConfig

    Members
    -------
    cmd : In(stream.Signature(...))
        Host instructions (``PimConfig.cmd_fields``).
    o : Out(stream.Signature(...))
        Results (``o_fields``).
    rsp : Out(stream.Signature(...))
        Error and EOC beats (``rsp_fields``).
    trace : Out(stream.Signature(..., always_ready=True))
        With ``trace``: one beat per DRAM command (``trace_fields``).
    dram : Out(stream.Signature(..., always_ready=True))
        With ``controller_only``: the DRAM command port (``dram_fields``); ``valid`` marks a
        command, which the memory must take.
    rdata : In(stream.Signature(..., always_ready=True))
        With ``controller_only``: read data, in command order (``rdata_fields``).

    Timing
    ------
    ``read_latency``: cycles from a read command's issue to its ``o`` beat (an empty result
    FIFO, ``o.ready`` high). Every host stream tolerates gaps and backpressure; the ``dram``
    port has none (DRAM commands are never refused).
    """

    read_latency = READ_LATENCY

    def __init__(self, config):
        self.config = config
        ports = {"cmd": In(stream_signature(config.cmd_fields)),
                 "o": Out(stream_signature(config.o_fields)),
                 "rsp": Out(stream_signature(config.rsp_fields))}
        if config.trace:
            ports["trace"] = Out(always_ready(config.trace_fields))
        if config.controller_only:
            ports["dram"] = Out(always_ready(config.dram_fields))
            ports["rdata"] = In(always_ready(config.rdata_fields))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        m.submodules.controller = ctl = Controller(cfg)
        wiring.connect(m, wiring.flipped(self.cmd), ctl.cmd)
        wiring.connect(m, ctl.o, wiring.flipped(self.o))
        wiring.connect(m, ctl.rsp, wiring.flipped(self.rsp))
        if cfg.trace:
            wiring.connect(m, ctl.trace, wiring.flipped(self.trace))
        if cfg.controller_only:
            wiring.connect(m, ctl.dram, wiring.flipped(self.dram))
            wiring.connect(m, wiring.flipped(self.rdata), ctl.rdata)
        else:
            m.submodules.banks = banks = BankModel(cfg)
            assert PIPELINE < READ_LATENCY
            wiring.connect(m, ctl.dram, banks.dram)
            wiring.connect(m, banks.rdata, ctl.rdata)
        return m
