"""Boards the FPGA flow can build for, and the top level that puts a self-checking harness on
one.

Pins, I/O standards and the clock constraint come from the amaranth-boards platform
definitions; each build writes them as a ``.pcf`` (iCE40) or ``.lpf`` (ECP5) file into its
build directory, so no hand-kept constraint file can drift from the board definition. What a
board's FPGA family needs from the flow (tools, synthesis pass, file arguments) is in its
:class:`~accelgen.fpga.family.Family` record, named by :attr:`Board.family`.

Board top::

    clk ─► platform "sync" domain (power-on reset from the platform)
    button ─► 2-FF synchronizer ─► register ─► harness reset (press to run the check again;
                                               ECP5: through a DCCA, on a global network)
    harness.passed ─► LED, harness.failed ─► LED, harness.done ─► LED, heartbeat ─► LED

=============  ===============  =========  =========================  ========================
board          FPGA             clock      LEDs                       rerun button
=============  ===============  =========  =========================  ========================
icebreaker     iCE40UP5K-SG48   12 MHz     green=passed, red=failed,  user button (pin 10)
                                           PMOD2 LED2=done, LED3=beat
ulx3s-85f      LFE5U-85F-6      25 MHz     D0=passed, D1=failed,      F1 ("fire 1")
               CABGA381                    D6=done, D7=heartbeat
=============  ===============  =========  =========================  ========================
"""

import importlib
from dataclasses import dataclass

from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Instance,
                          Module, ResetSignal, Signal)
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from ..generators.base import close_matches
from ..numerics import ConfigError
from .family import FAMILIES

__all__ = ["Board", "BOARDS", "get_board", "BoardTop"]


@dataclass(frozen=True)
class Board:
    """One buildable board.

    Members
    -------
    name : str
        CLI name (``--board``).
    family : str
        Name of its :class:`~accelgen.fpga.family.Family` (``"ice40"`` or ``"ecp5"``): tools,
        synthesis pass and file arguments.
    device : str
        FPGA part and package, for reports.
    platform : str
        ``"module:Class"`` of the amaranth-boards platform (imported on use).
    nextpnr_args : tuple of str
        Device and package arguments of nextpnr (the platform templates' values, fixed here so
        the flow can run nextpnr itself with its own log and error handling).
    leds : dict
        Harness output or ``"heartbeat"`` → ``(resource name, index)``.
    button : tuple
        ``(resource name, index)`` of the button that re-runs the self-check.
    extra_resources : str or None
        Platform attribute listing optional resources to add (the iCEBreaker's snap-off PMOD
        with its LEDs).
    """
    name: str
    family: str
    device: str
    platform: str
    nextpnr_args: tuple
    leds: dict
    button: tuple
    extra_resources: str = None

    def make_platform(self):
        """A fresh amaranth-boards platform (platforms can prepare one design only)."""
        module, _, cls = self.platform.partition(":")
        platform = getattr(importlib.import_module(module), cls)()
        if self.extra_resources:
            platform.add_resources(getattr(platform, self.extra_resources))
        return platform


BOARDS = {
    "icebreaker": Board(
        name="icebreaker", family="ice40", device="iCE40UP5K-SG48",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        nextpnr_args=("--up5k", "--package", "sg48"),
        leds={"passed": ("led_g", 0), "failed": ("led_r", 0), "done": ("led", 2),
              "heartbeat": ("led", 3)},
        button=("button", 0), extra_resources="break_off_pmod"),
    "ulx3s-85f": Board(
        name="ulx3s-85f", family="ecp5", device="LFE5U-85F-6 CABGA381",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        nextpnr_args=("--85k", "--package", "CABGA381", "--speed", "6"),
        leds={"passed": ("led", 0), "failed": ("led", 1), "done": ("led", 6),
              "heartbeat": ("led", 7)},
        button=("button_fire", 0)),
}


def get_board(name):
    """The :class:`Board` called ``name``; :class:`ConfigError` naming the allowed boards."""
    if name not in BOARDS:
        raise ConfigError(f"--board: {name!r} is not a known board; allowed are "
                          f"{', '.join(BOARDS)}{close_matches(name, BOARDS)}")
    return BOARDS[name]


class BoardTop(Elaboratable):
    """Top level for ``board``: the harness in the platform's ``sync`` domain, its verdict on
    LEDs, the board's button as a synchronized re-run (reset) of the harness.

    Members
    -------
    harness : Harness
        Any :class:`~accelgen.fpga.harness.Harness` (``done``/``passed``/``failed``).
    board : Board

    Timing
    ------
    The heartbeat LED toggles every ``2**22`` cycles (~0.35 s at 12 MHz, ~0.17 s at 25 MHz),
    showing the bitstream is loaded and clocked even before ``done``. A run of 256 beats takes
    a few hundred cycles, so the verdict LEDs light within microseconds of configuration.
    """

    def __init__(self, harness, board):
        self.harness, self.board = harness, board

    def elaborate(self, platform):
        m = Module()
        rerun = Signal()
        m.submodules.button = button = io.Buffer("i", platform.request(*self.board.button,
                                                                         dir="-"))
        m.submodules.button_sync = FFSynchronizer(button.i, rerun)
        # The harness gets its own domain whose reset is one flip-flop (power-on reset or the
        # button), so no reset OR-gate sits in front of the harness' enable logic and the
        # timing report measures the block, not the reset tree.
        rst_q = Signal(init=1)
        m.d.sync += rst_q.eq(rerun)
        m.domains.check = ClockDomain("check", local=True)
        m.d.comb += [ClockSignal("check").eq(ClockSignal("sync")),
                     ResetSignal("check").eq(self._global(m, rst_q))]
        m.submodules.harness = DomainRenamer("check")(self.harness)

        beat = Signal(23)
        m.d.sync += beat.eq(beat + 1)
        values = {"passed": self.harness.passed, "failed": self.harness.failed,
                  "done": self.harness.done, "heartbeat": beat[-1]}
        for role, (resource, index) in self.board.leds.items():
            led = io.Buffer("o", platform.request(resource, index, dir="-"))
            m.submodules[f"led_{role}"] = led
            m.d.comb += led.o.eq(values[role])
        return m

    def _global(self, m, rst_q):
        """``rst_q`` through the family's global buffer, if it needs one (see
        :attr:`~accelgen.fpga.family.Family.reset_buffer`): a reset reaches flip-flops all
        over the device, and over the fabric's routing that was an 18.5 ns route on a
        design that filled an ECP5-85F."""
        buffer = FAMILIES[self.board.family].reset_buffer
        if buffer is None:
            return rst_q
        cell, i, o, constants = buffer
        rst_g = Signal(name="rst_global")
        m.submodules.rst_buffer = Instance(cell, **{f"i_{i}": rst_q, f"o_{o}": rst_g},
                                           **{f"i_{k}": v for k, v in constants.items()})
        return rst_g
