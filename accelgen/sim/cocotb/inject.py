"""The block-neutral testbench of fault campaigns (:mod:`accelgen.faults.campaign`): one
workload through the emitted RTL, first without a fault, then once per fault with a single
bit flipped in a register or a stored memory word at a given cycle.

``ACCELGEN_INPUTS`` names a JSON document ``{"workload": {"words": {input stream: [hex]},
"expect": {output stream: count}, "timeout": cycles}, "faults": [{"path": [instance, ...,
name], "index": memory word or null, "bit": int, "cycle": int}]}``. Every run starts with a
reset and moves the words at full rate through the file-backed streams
(:func:`accelgen.sim.cocotb.bulk.run_bulk`, same generator seed every run). A fault at cycle
``c`` is applied at the falling edge after rising edge ``c`` of the run (cycle 0: the first
edge of the run): the register (or memory word) is read, the bit inverted and the value
deposited, so edge ``c + 1`` computes from the upset state, as after a particle strike.

``ACCELGEN_OUTPUTS`` receives ``{"reference": run, "runs": [run, ...]}``, each run
``{"words": {output stream: [hex]}, "finished": bool, "applied": bool}``. The build must
make every signal writable (``access="all"``); the block instance is ``core.dut`` of the
simulation top.
"""

import json
import re

import cocotb
from cocotb.handle import Deposit
from cocotb.triggers import FallingEdge, Timer

from ...outputs import write_atomic
from .bench import PERIOD_NS, BenchBase, reset
from .bulk import run_bulk

TESTCASES = ("campaign",)
SETTLE = 16     #: cycles watched after the expected words, for spurious ones
_RUN_SEED = 1   #: the bulk streams' gap generator seed (full rate: unused, but fixed)


def _plain(name):
    """A simulator's name of a Verilog identifier as written in the source: Verilator writes
    the characters of escaped identifiers (``\\$signal$12``) as ``__0XX`` hex codes."""
    name = re.sub(r"__0([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name)
    return name.strip().lstrip("\\")


def _child(handle, name):
    child = handle._get(name)
    if child is not None:
        return child
    wanted = _plain(name)
    for key, child in handle._items():
        if isinstance(key, str) and _plain(key) == wanted:
            return child
    raise KeyError(f"{handle._path} has no child {name!r}")


def _target(block, fault):
    handle = block
    for name in fault["path"]:
        handle = _child(handle, name)
    if fault.get("index") is not None:
        handle = handle[int(fault["index"])]
    return handle


async def _flip(dut, block, fault, applied):
    """Wait for the fault's cycle, then invert its bit (see the module docstring)."""
    await FallingEdge(dut.clk)                  # the edge where the bulk run starts
    await Timer((int(fault["cycle"]) + 1) * PERIOD_NS, unit="ns")
    target = _target(block, fault)
    word = _read(target)
    upset = word ^ (1 << int(fault["bit"]))
    target.value = Deposit(upset)
    applied.append((target, word, upset))


def _read(target):
    value = target.value
    return int(value.to_unsigned()) if hasattr(value, "to_unsigned") else int(value)


def _scrub(fault, applied):
    """After a run: a memory word that still holds the upset value gets its old value back
    (a ROM word would otherwise stay flipped for every later run; a RAM word the run wrote
    since is left alone, the next run writes before it reads). Registers need nothing: the
    reset before the next run sets them."""
    if fault.get("index") is None or not applied:
        return
    target, word, upset = applied[0]
    if _read(target) == upset:
        target.value = Deposit(word)


def _summary(run, applied):
    stamps = [c for name, cycles in run.cycles.items() if name in run.words for c in cycles]
    return {"words": {k: [format(w, "x") for w in v] for k, v in run.words.items()},
            "finished": run.finished, "applied": bool(applied),
            "cycles": max(stamps) + 1 if stamps else 0}


@cocotb.test()
async def campaign(dut):
    """The reference run, then one run per fault of ``ACCELGEN_INPUTS``."""
    bench = await BenchBase.start(dut, "campaign")
    doc = json.loads(bench.env.inputs.read_text())
    job = doc["workload"]
    words = {k: [int(w, 16) for w in v] for k, v in job["words"].items()}
    block = dut["core"]["dut"]

    async def one(fault):
        applied = []
        flipper = cocotb.start_soon(_flip(dut, block, fault, applied)) if fault else None
        run = await run_bulk(bench, words, job["expect"], timeout=job["timeout"],
                             settle=SETTLE, seed=_RUN_SEED)
        if flipper is not None and not flipper.done():
            flipper.cancel()
        if fault:
            _scrub(fault, applied)
        return _summary(run, applied)

    reference = await one(None)
    runs = []
    for fault in doc["faults"]:
        await reset(dut)
        runs.append(await one(fault))
    write_atomic(bench.env.outputs, json.dumps({"reference": reference, "runs": runs}))
    bench.record(faults=len(runs))
    assert reference["finished"], bench.fail("the fault-free run did not finish")
