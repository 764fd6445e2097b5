"""The simulation top with file-backed streams (:mod:`accelgen.sim.bulk`), as text: one per
block, every port of the block under its own name, the controls of every stream, and Verilog
that Icarus and Verilator accept (the cocotb tier runs it: ``test_systolic.py`` sends the
small-GEMM grid and gapped sequences through it, every simulation build uses it)."""

import json
import re
import subprocess

import pytest

from accelgen.generators.emit import emit
from accelgen.generators.registry import REGISTRY
from accelgen.sim.bulk import bench_top, bench_wrapper, word_bytes
from accelgen.tools import tool_env, which

from support import needs_icarus

CASES = [(name, preset) for name, spec in REGISTRY.items() for preset in ("tiny", "default")]


def _manifest(tmp_path, name, preset):
    spec = REGISTRY[name]
    out = emit(spec, spec.presets[preset], tmp_path / f"{name}-{preset}", top=name)
    return out.manifest_path, json.loads(out.manifest_path.read_text())


@pytest.mark.parametrize("name, preset", CASES)
def test_every_port_and_stream_control(name, preset, tmp_path):
    _, manifest = _manifest(tmp_path, name, preset)
    module, text = bench_wrapper(manifest)
    assert module == bench_top(name) and f"module {module}(" in text
    header = re.search(r"module \w+\((.*?)\);", text, re.S).group(1)
    ports = {p.strip() for p in header.split(",")}
    assert {p["name"] for p in manifest["ports"]} <= ports
    for stream, s in manifest["streams"].items():
        assert f"bulk_count_{stream}" in ports
        if s["dir"] == "in":
            assert {f"bulk_valid_{stream}", f"bulk_log_{stream}"} <= ports
            assert f"[{8 * word_bytes(s['width']) - 1}:0] {stream}_tmp" in text
        else:
            assert {f"bulk_ready_{stream}", f"bulk_expect_{stream}"} <= ports
    assert "None" not in text        # a stream without ready is handled, not printed


def test_word_bytes():
    assert [word_bytes(w) for w in (1, 8, 9, 52, 513)] == [1, 1, 2, 7, 65]


@needs_icarus
@pytest.mark.parametrize("name", list(REGISTRY))
def test_icarus_compiles_the_simulation_top(name, tmp_path):
    path, manifest = _manifest(tmp_path, name, "tiny")
    module, text = bench_wrapper(manifest)
    wrapper = path.parent / f"{module}.v"
    wrapper.write_text(text)
    run = subprocess.run([which("iverilog"), "-g2005", "-o", str(tmp_path / "sim.vvp"), "-s",
                          module, str(path.parent / manifest["verilog"]), str(wrapper)],
                         capture_output=True, text=True, env=tool_env())
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("name", list(REGISTRY))
def test_the_block_resets_through_a_flip_flop_below_the_public_top(name, tmp_path):
    """The simulation top passes its ports to ``<top>_bench_core``, which registers ``rst``
    for the block: the simulator then evaluates the block's next-state logic once per cycle
    (see :mod:`accelgen.sim.bulk`); ``reset()`` in the cocotb bench accounts for the edge."""
    _, manifest = _manifest(tmp_path, name, "tiny")
    module, text = bench_wrapper(manifest)
    top, core = text.split(f"module {module}_core(")
    assert f"{module}_core core (" in top and "always" not in top
    assert "always @(posedge clk) rst_q <= rst;" in core
    assert re.search(rf"\b{name} dut \(.*\.rst\(rst_q\)", core, re.S)
