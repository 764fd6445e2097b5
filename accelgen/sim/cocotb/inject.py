"""The block-neutral testbench of fault campaigns (:mod:`accelgen.faults.campaign`): one
workload through the emitted RTL, first without a fault, then once per fault with a single
bit flipped in a register or a stored memory word at a given cycle.

``ACCELGEN_INPUTS`` names a JSON document ``{"workload": {"words": {input stream: [hex]},
"expect": {output stream: count}, "timeout": cycles}, "faults": [{"path": [instance, ...,
name], "index": memory word or null, "bit": int (or a list: a multi-bit upset of one word),
"cycle": int}]}``. Every run starts with a
reset and moves the words at full rate through the file-backed streams
(:func:`accelgen.sim.cocotb.bulk.run_bulk`, same generator seed every run). A fault at cycle
``c`` is applied at the falling edge after rising edge ``c`` of the run (cycle 0: the first
edge of the run): the register (or memory word) is read, the bit inverted and the value
deposited, so edge ``c + 1`` computes from the upset state, as after a particle strike.

``ACCELGEN_OUTPUTS`` receives ``{"reference": run, "runs": [run, ...], "after": run}``
(``after``: one more fault-free run at the end, which must equal the reference), each run
``{"words": {output stream: [hex]}, "finished": bool, "applied": bool, "flag": int or None,
"cycles": int}`` (``flag``: a protected block's fault flag at the end of the run). The build must
make every signal writable (``access="all"``); the block instance is ``core.dut`` of the
simulation top.
"""

import json
import re

import cocotb
from cocotb.handle import Deposit
from cocotb.triggers import FallingEdge, Timer

from ...faults.harden import FAULT_FLAG
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
    bits = fault["bit"] if isinstance(fault["bit"], list) else [fault["bit"]]
    upset = word
    for bit in bits:
        upset ^= 1 << int(bit)
    target.value = Deposit(upset)
    applied.append((target, word, upset))


def _read(target):
    value = target.value
    return int(value.to_unsigned()) if hasattr(value, "to_unsigned") else int(value)


def _scrub(fault, applied):
    """After a run: a memory word that still holds the upset value gets its old value back
    (a ROM word would otherwise stay flipped for every later run; a RAM word the run wrote
    since is left alone, the next run writes before it reads). Registers are left to the
    reset before the next run (those without a reset to the next run's data; the fault-free
    run at the end of a batch checks that nothing carried over)."""
    if fault.get("index") is None or not applied:
        return
    target, word, upset = applied[0]
    if _read(target) == upset:
        target.value = Deposit(word)


def _summary(run, applied, flag):
    stamps = [c for name, cycles in run.cycles.items() if name in run.words for c in cycles]
    return {"words": {k: [format(w, "x") for w in v] for k, v in run.words.items()},
            "finished": run.finished, "applied": bool(applied), "flag": flag,
            "cycles": max(stamps) + 1 if stamps else 0}


def _flag(block):
    """The protected block's fault flag (:data:`accelgen.faults.harden.FAULT_FLAG`) after a
    run, or None for a block without one."""
    try:
        return _read(_child(block, FAULT_FLAG))
    except KeyError:
        return None


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
        flag = _flag(block)
        if fault:
            _scrub(fault, applied)
        return _summary(run, applied, flag)

    reference = await one(None)
    runs = []
    for fault in doc["faults"]:
        await reset(dut)
        runs.append(await one(fault))
    after = None
    if runs:
        await reset(dut)
        after = await one(None)
    write_atomic(bench.env.outputs, json.dumps({"reference": reference, "runs": runs,
                                                "after": after}))
    bench.record(faults=len(runs))
    assert reference["finished"], bench.fail("the fault-free run did not finish")
