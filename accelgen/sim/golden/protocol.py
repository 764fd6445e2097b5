"""The interface every golden model module offers the generic layers (runner, CLI, reports,
FPGA harnesses). A golden model is a plain module; these Protocols name what it must define,
and ``tests/test_contract.py`` checks every registered block against them.

Everything else in a golden model module (``pack_inputs``, ``Model``, ``random_rows``, ...) is
the block's own API, used by its testbench, its harness and its tests.
"""

from typing import Protocol, runtime_checkable

__all__ = ["GoldenModel", "StreamGoldenModel", "ApproxGoldenModel", "RunOptionsGoldenModel"]


@runtime_checkable
class GoldenModel(Protocol):
    """What every block's golden model defines.

    Members
    -------
    ARGUMENTS : tuple of str
        Names of the arrays ``accelgen sim --inputs FILE.npz`` accepts.
    REQUIRED : tuple of str
        The ones it must hold.

    A model may also define ``float_arrays(config)``: the names of the arrays that may hold
    floats for ``config`` (element values of float formats); all others must be integers.
    """
    ARGUMENTS: tuple
    REQUIRED: tuple

    def check_arrays(self, config, *, strict=True, **arrays):
        """Raise ``ValueError`` (message starting with the array's name) unless the block can
        take ``arrays``; ``strict``: also values outside their formats."""


@runtime_checkable
class StreamGoldenModel(GoldenModel, Protocol):
    """A block with one input stream ``i`` and one output stream ``o`` (what the one-stream
    FPGA harness :class:`~accelgen.fpga.harness.SelfCheckHarness` drives)."""

    def words(self, config, in_words):
        """The ``o`` payload integers the hardware sends for ``i`` payload integers
        ``in_words``; every bit pattern is a legal input word."""


@runtime_checkable
class ApproxGoldenModel(GoldenModel, Protocol):
    """A block that approximates a real function (its registry entry has ``error_bounds``)."""

    def errors(self, config):
        """Golden model against float64, in output LSB: a dict with at least ``max_abs``,
        ``mean_abs``, ``mean`` (bias) and ``population`` (a phrase saying over what the
        statistics were taken)."""

    def error_points(self, config):
        """``(x, error, x_label)`` arrays for an error plot."""


@runtime_checkable
class RunOptionsGoldenModel(GoldenModel, Protocol):
    """A block with its own ``accelgen sim`` options (its registry entry has
    ``run_options``)."""

    def check_run_options(self, config, options, arrays=None, *, allow_large=False):
        """The options, checked against ``config`` (and the user's ``arrays``) and, unless
        ``allow_large``, against the simulation limits of
        :data:`accelgen.generators.base.LIMITS`, as the testbench receives them;
        ``ConfigError`` naming the option otherwise."""
