"""Helpers shared by the block test files and the generic ones (imported as ``support``; pytest
puts ``tests/`` on ``sys.path``). Nothing here is a test.

- cocotb tier: the seed every run uses, the failure message that names it, the Icarus skip
  mark, runs that must pass (any testcases; a preset's default testcases), the recorded
  error statistics against the golden model's, and the "true pairing passes, false manifest
  fails" check.
- fpga tier: the resource keys of a synthesis report and the checks every built bitstream
  with a self-check harness must pass.
- primitive benches: a Verilog module ``bench`` (with the designs and models it instantiates)
  built and run by Verilator or Icarus, for the vendor-primitive wrappers' equivalence tests.
"""

import shutil
import subprocess

import pytest

from accelgen.generators.pim import PROOF_TIMING as SHORT_PIM_TIMING  # noqa: F401
from accelgen.tools import icarus_available, tool_env, which

#: seed of every cocotb run in the tests (printed in each failure message)
SEED = 20240601

needs_icarus = pytest.mark.skipif(not icarus_available(),
                                  reason="iverilog not installed (apt-get install -y iverilog)")


def explain(result, seed=SEED):
    """Failure message of a :class:`~accelgen.sim.runner.SimResult`: what failed, the seed and
    the log to read."""
    return f"failed {result.failed}; seed {seed}; log {result.log}"


def simulate_passing(spec, config, **kwargs):
    """:func:`~accelgen.sim.runner.simulate` that must pass (seed :data:`SEED` unless given);
    returns the result."""
    from accelgen.sim.runner import simulate
    kwargs.setdefault("seed", SEED)
    result = simulate(spec, config, **kwargs)
    assert result.passed, explain(result, kwargs["seed"])
    return result


def simulate_preset(spec, preset, build_root, **kwargs):
    """Every default testcase of ``spec``'s ``preset`` in one simulator run (seed
    :data:`SEED`), which must pass; returns the result."""
    from accelgen.sim.runner import default_testcases
    result = simulate_passing(spec, spec.presets[preset], preset=preset, build_root=build_root,
                              **kwargs)
    assert list(result.testcases) == default_testcases(spec)
    return result


def errors_like_golden(recorded, want):
    """The error statistics a testbench recorded are the golden model's (``want``)."""
    for key in ("max_abs", "mean_abs", "mean"):
        assert recorded[key] == pytest.approx(want[key], abs=1e-12), key


def false_manifest_is_caught(spec, real, claimed, tmp_path, cases, message, *, beats=100,
                             ok_cases=None):
    """Emit ``real`` and ``claimed`` (same ports, other behaviour); the true pairing passes
    ``ok_cases`` (default ``cases``); ``real``'s Verilog under ``claimed``'s manifest fails
    every one of ``cases`` without a rebuild, with the seed and ``message`` in the log.

    Returns ``(manifest path of the build, the true manifest's text)``: the build directory
    then holds ``claimed``'s manifest, for further tampering."""
    from accelgen.generators.emit import emit
    from accelgen.sim.runner import run_emitted
    build = emit(spec, real, tmp_path / "dut", top=spec.name).manifest_path
    liar = emit(spec, claimed, tmp_path / "liar", top=spec.name).manifest_path
    honest = build.read_text()
    ok = run_emitted(build, seed=SEED, beats=beats, testcases=list(ok_cases or cases))
    assert ok.passed, explain(ok)
    shutil.copy(liar, build)
    wrong = run_emitted(build, seed=SEED, beats=beats, testcases=list(cases))
    assert not wrong.built
    assert wrong.testcases == {name: False for name in cases}
    log = wrong.log.read_text()
    assert f"seed={SEED}" in log and message in log
    return build, honest


#: what :func:`accelgen.fpga.flow.synth` reports for every family
RESOURCE_KEYS = {"LUT4", "carry", "FF", "DSP", "BRAM", "cells"}


def check_selfchecked_build(r):
    """A :func:`accelgen.fpga.flow.build` result of a one-stream block: the harness passed in
    simulation, a non-empty bitstream, six pins (clock, button, four LEDs: no stream pins) and
    timing met."""
    assert r.selfcheck_passed and r.selfcheck_cycles > 0
    assert r.bitstream.exists() and r.bitstream.stat().st_size > 0
    assert r.resources["IO"][0] == 6
    assert r.fmax_mhz > r.target_mhz > 0


def accepted_words(harness, ports):
    """Simulate ``harness`` to ``done``; the payload words each of the block's ``ports`` took,
    in order (values sampled at the clock edge: a transfer is valid & ready just before it)."""
    from amaranth.sim import Simulator
    streams = [getattr(harness.block, name) for name in ports]
    seen = {name: [] for name in ports}

    async def bench(ctx):
        while not ctx.get(harness.done):
            _, _, *values = await ctx.tick().sample(
                *(v for st in streams for v in (st.valid, st.ready, st.payload.as_value())))
            for k, name in enumerate(ports):
                valid, ready, payload = values[3 * k:3 * k + 3]
                if valid and ready:
                    seen[name].append(payload)

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def run_bench(simulator, tmp_path, sources):
    """Build the Verilog ``sources`` (top module ``bench``) with ``simulator`` ("verilator":
    ``--binary --timing``; "icarus": ``iverilog -g2005``) in ``tmp_path``, run it and return
    what it printed. A build that fails fails the test, with the tool's output."""
    if simulator == "verilator":
        build = subprocess.run(
            [which("verilator"), "--binary", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--timing",
             "-CFLAGS", "-std=c++20 -O1", "--top-module", "bench", "-Mdir", str(tmp_path / "obj"),
             "-o", "bench", "-j", "2", *map(str, sources)],
            cwd=tmp_path, env=tool_env(), capture_output=True, text=True, check=False)
        binary = [str(tmp_path / "obj" / "bench")]
    else:
        build = subprocess.run(["iverilog", "-g2005", "-s", "bench", "-o",
                                str(tmp_path / "a.vvp"), *map(str, sources)],
                               capture_output=True, text=True, check=False)
        binary = ["vvp", "-n", str(tmp_path / "a.vvp")]
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return subprocess.run(binary, capture_output=True, text=True, check=False).stdout

