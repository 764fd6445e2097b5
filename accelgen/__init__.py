"""accelgen: parametric generators of verified, synthesizable Verilog for AI-accelerator blocks.

Start at :mod:`accelgen.generators.registry` (what can be built), :mod:`accelgen.cli` (the
``accelgen`` command) or the README.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("accelgen")
except _metadata.PackageNotFoundError:   # running from a source tree without installing
    __version__ = "0+unknown"
