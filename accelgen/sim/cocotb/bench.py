"""What every ``tb_<block>`` testbench shares: its parameters from the environment, seeded
RNGs per testcase, the result JSON and the reset sequence (see :mod:`accelgen.sim.runner`
for the ``ACCELGEN_*`` variables)."""

import json
import os
import random
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np

from cocotb.triggers import FallingEdge

from accelgen.generators.registry import REGISTRY
from accelgen.sim.cocotb.manifest import Manifest

__all__ = ["PERIOD_NS", "RESET_CYCLES", "env_int", "env_text", "BenchBase", "reset",
           "assert_clean"]

PERIOD_NS = 10
RESET_CYCLES = 3
SHOW_MISMATCHES = 5


def env_int(name, default):
    text = os.environ.get(name, "")
    return int(text) if text.strip() else default


def env_text(name):
    return os.environ.get(name, "").strip()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Fraction):
        return float(value)
    raise TypeError(f"not JSON serializable: {value!r}")


class BenchBase:
    """Manifest, config, seeds and the result entry of one testcase.

    Members
    -------
    manifest : Manifest
    spec : GeneratorSpec of the manifest's generator
    config : the block's Config, rebuilt from ``manifest["config"]`` (nothing else states it)
    seed, beats : int
        ``ACCELGEN_SEED`` (default 0) and ``ACCELGEN_BEATS`` (default 200).
    rng : random.Random
        Valid/ready gaps (stream drivers) and junk bits.
    nprng : numpy.random.Generator
        Operands and commands.
    counter : CycleCounter
        Set where the clock starts.
    result : dict
        This testcase's entry of the result JSON.

    Each testcase gets its own RNG streams, derived from the seed and its name, so its results
    do not depend on which other testcases run.
    """

    def __init__(self, dut, testcase, *, generator=None):
        self.dut = dut
        self.testcase = testcase
        self.manifest = Manifest.load(os.environ["ACCELGEN_MANIFEST"])
        if generator is not None and self.manifest["generator"] != generator:
            raise ValueError(f"tb_{generator}: manifest of {self.manifest['generator']!r}")
        self.spec = REGISTRY[self.manifest["generator"]]
        self.config = self.spec.config_cls.from_dict(self.manifest.config)
        self.seed = env_int("ACCELGEN_SEED", 0)
        self.beats = max(1, env_int("ACCELGEN_BEATS", 200))
        stream = zlib.crc32(testcase.encode())
        self.rng = random.Random(self.seed * 1_000_003 + stream)
        self.nprng = np.random.default_rng([self.seed, stream])
        self.counter = None
        self.result = {}

    def fail(self, message):
        """Assertion text that names the seed and how to reproduce."""
        return (f"[{self.testcase}, seed={self.seed}, preset={self.manifest['preset']}, "
                f"digest={self.manifest['digest']}] {message} (reproduce with "
                f"ACCELGEN_SEED={self.seed} ACCELGEN_BEATS={self.beats})")

    def record(self, **values):
        """Add ``values`` to this testcase's entry of the result JSON (written at once, so a
        failing assertion afterwards still leaves its numbers behind)."""
        self.result.update(values)
        path = os.environ.get("ACCELGEN_RESULT")
        if not path:
            return
        path = Path(path)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc.setdefault("seed", self.seed)
        doc.setdefault("beats", self.beats)
        doc.setdefault("clock_period_ns", PERIOD_NS)
        doc.setdefault("testcases", {})[self.testcase] = self.result
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
        os.replace(tmp, path)


def assert_clean(bench, mismatches, what):
    """Record the mismatch count and fail with the first few, naming the seed."""
    bench.record(mismatches=len(mismatches))
    shown = "; ".join(mismatches[:SHOW_MISMATCHES])
    more = f" (+{len(mismatches) - SHOW_MISMATCHES} more)" if len(mismatches) > SHOW_MISMATCHES \
        else ""
    assert not mismatches, bench.fail(f"{len(mismatches)} mismatches in {what}: {shown}{more}")


async def reset(dut, cycles=RESET_CYCLES):
    """Hold the synchronous ``rst`` for ``cycles`` rising edges, driving from falling edges
    like the stream drivers do. Returns just after a falling edge with ``rst`` low."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
