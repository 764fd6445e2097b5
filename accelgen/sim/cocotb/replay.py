"""The block-neutral testbench of :func:`accelgen.sim.runner.run_words`: it streams given
payload words through any block's emitted RTL and writes back what came out, so a caller that
computed the words (a network operation's plan, :mod:`accelgen.sim.golden.ops`) can decode and
check them itself.

``ACCELGEN_INPUTS`` names a JSON list of jobs, ``{"words": {input stream: [hex payload]},
"expect": {output stream: count}, "timeout": cycles}``; each runs after a reset, at full rate
(valid and ready always high), through the file-backed streams
(:func:`accelgen.sim.cocotb.bulk.run_bulk`). ``ACCELGEN_OUTPUTS`` receives one ``{"words":
{output stream: [hex payload]}, "cycles": last output cycle + 1, "finished": bool}`` per job.
The testcase fails when a job does not finish within its timeout or sends more words than
expected (it does not look at the values: that is the caller's check).
"""

import json

import cocotb

from ...outputs import write_atomic
from .bench import BenchBase, reset
from .bulk import run_bulk

TESTCASES = ("replay",)
SETTLE = 32     #: cycles watched after the expected words, for spurious ones


def _last_cycle(run):
    stamps = [c for name, cycles in run.cycles.items() if name in run.words for c in cycles]
    return max(stamps) + 1 if stamps else 0


@cocotb.test()
async def replay(dut):
    """Every job of ``ACCELGEN_INPUTS`` through the RTL, outputs to ``ACCELGEN_OUTPUTS``."""
    bench = await BenchBase.start(dut, "replay")
    jobs = json.loads(bench.env.inputs.read_text())
    results, problems = [], []
    for index, job in enumerate(jobs):
        if index:
            await reset(dut)
        words = {k: [int(w, 16) for w in v] for k, v in job["words"].items()}
        run = await run_bulk(bench, words, job["expect"], timeout=job["timeout"],
                             settle=SETTLE, seed=index)
        results.append({"words": {k: [format(w, "x") for w in v] for k, v in run.words.items()},
                        "cycles": _last_cycle(run), "finished": run.finished})
        extra = {k: len(v) - job["expect"].get(k, 0) for k, v in run.words.items()
                 if len(v) > job["expect"].get(k, 0)}
        if not run.finished:
            problems.append(f"job {index}: not finished in {job['timeout']} cycles "
                            f"(got { {k: len(v) for k, v in run.words.items()} }, expected "
                            f"{job['expect']})")
        elif extra:
            problems.append(f"job {index}: spurious output words {extra}")
    write_atomic(bench.env.outputs, json.dumps(results))
    bench.record(jobs=len(jobs), problems=problems)
    assert not problems, bench.fail("; ".join(problems[:3]))
