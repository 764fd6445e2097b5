"""Run a whole stream program through the file-backed streams of the simulation top
(:mod:`accelgen.sim.bulk`): the words go to files, the simulator moves them at its own speed,
and Python looks again only when every expected output word has come back.

Use it for long programs whose check is the words themselves (a GEMM's results, a network
layer); protocol and backpressure tests keep driving the ports cycle by cycle with
:mod:`accelgen.sim.cocotb.streams`. Both see the same ports, so one build serves both.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

from ..bulk import PROB_ONE, input_file, log_file, output_file, word_bytes
from .bench import PERIOD_NS

__all__ = ["BulkRun", "run_bulk"]


@dataclass
class BulkRun:
    """What a bulk run moved.

    Members
    -------
    words : {output stream: [payload int]}
        Every word each output stream sent, in order (also any beyond the expected count).
    cycles : {stream: [int]}
        The cycle of each transfer of the output streams and of the input streams asked for
        (``log``; cycle 0: the first cycle of the run).
    consumed : {input stream: int}
        How many words each input stream delivered.
    finished : bool
        Every output stream sent its expected count within the timeout.
    sim_cycles : int
        Cycles simulated from the start of the run to its end (including ``settle``).
    seconds : float
        Wall time of the simulation part.
    """

    words: dict = field(default_factory=dict)
    cycles: dict = field(default_factory=dict)
    consumed: dict = field(default_factory=dict)
    finished: bool = False
    sim_cycles: int = 0
    seconds: float = 0.0

    @property
    def cycles_per_second(self):
        return self.sim_cycles / self.seconds if self.seconds else None


def _prob(value, name):
    p = value.get(name, 1.0) if isinstance(value, dict) else value
    return max(0, min(PROB_ONE, round(p * PROB_ONE)))


def _read_lines(path):
    return path.read_text().split() if path.exists() else []


async def run_bulk(bench, words, expect, *, timeout, valid_prob=1.0, ready_prob=1.0,
                   settle=0, seed=None, log=()):
    """Send ``words`` (``{input stream: [payload int]}``), wait until each output stream of
    ``expect`` (``{name: count}``) has sent that many words or ``timeout`` cycles pass, go on
    for ``settle`` cycles (to catch spurious words), and return a :class:`BulkRun`.

    ``valid_prob``/``ready_prob``: a probability, or ``{stream: probability}`` (missing: 1),
    of offering a held word / being ready in a cycle (resolution 1/256); the gaps come from
    the simulator's generators seeded with ``seed`` (default: drawn from ``bench.rng``).
    Input streams not in ``words`` send nothing; those named in ``log`` record the cycle of
    each transfer. The run leaves every stream idle."""
    dut = bench.dut
    streams = bench.manifest["streams"]
    workdir = Path.cwd()
    for name, s in streams.items():
        if s["dir"] == "in":
            size = word_bytes(s["width"])
            (workdir / input_file(name)).write_bytes(
                b"".join(int(w).to_bytes(size, "big") for w in words.get(name, ())))
            getattr(dut, f"bulk_valid_{name}").value = _prob(valid_prob, name)
            getattr(dut, f"bulk_log_{name}").value = int(name in log)
        else:
            getattr(dut, f"bulk_ready_{name}").value = _prob(ready_prob, name)
            getattr(dut, f"bulk_expect_{name}").value = int(expect.get(name, 0))
    dut.bulk_seed.value = bench.rng.getrandbits(32) if seed is None else seed & 0xFFFFFFFF
    await FallingEdge(dut.clk)
    dut.bulk_run.value = 1
    wall = time.perf_counter()
    await FallingEdge(dut.clk)                   # past cycle 0, where the files open
    if str(dut.bulk_done.value) != "1":
        # a Timer, not ClockCycles: counting edges would call back into Python every cycle
        await First(RisingEdge(dut.bulk_done), Timer(timeout * PERIOD_NS, unit="ns"))
    finished = str(dut.bulk_done.value) == "1"
    if settle:
        await Timer(settle * PERIOD_NS, unit="ns")
    await FallingEdge(dut.clk)
    sim_cycles = int(dut.bulk_cycle.value)
    dut.bulk_run.value = 0
    await RisingEdge(dut.clk)                    # the files close
    seconds = time.perf_counter() - wall
    await FallingEdge(dut.clk)
    run = BulkRun(finished=finished, sim_cycles=sim_cycles, seconds=seconds)
    for name, s in streams.items():
        if s["dir"] == "in":
            run.consumed[name] = int(getattr(dut, f"bulk_count_{name}").value)
            if name in log:
                run.cycles[name] = [int(x) for x in _read_lines(workdir / log_file(name))]
        else:
            fields = _read_lines(workdir / output_file(name))
            run.cycles[name] = [int(x) for x in fields[0::2]]
            run.words[name] = [int(x, 16) for x in fields[1::2]]
    return run
