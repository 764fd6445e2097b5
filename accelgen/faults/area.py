"""What a protection costs: ECP5 synthesis (yosys ``synth_ecp5``) of the block unprotected,
protected, and in lock-step duplication (the reference point of the field: two copies of the
block on the same inputs, their outputs compared), with LUT4, flip-flop and block-RAM counts
and the overhead of each over the unprotected block.

The unprotected and protected netlists are the generic ones (no family primitives: the same
Verilog the fault campaign simulates), so their difference is the protection's alone.
"""

import json
from pathlib import Path

from ..fpga.family import check_family
from ..outputs import make_directory
from .harden import harden

__all__ = ["area_report", "lockstep_wrapper", "overhead"]

_COUNTED = ("LUT4", "FF", "BRAM", "carry")


def lockstep_wrapper(manifest, top):
    """``(module name, Verilog)``: two instances of ``top`` on the same inputs; the first's
    outputs leave, and ``lockstep_mismatch`` is high while any output differs."""
    name = f"{top}_lockstep"
    ports = manifest["ports"]
    decls, a_conn, b_conn, diffs = [], [], [], []
    for p in ports:
        width = int(p["width"])
        vec = f"[{width - 1}:0] " if width > 1 else ""
        pname = p["name"]
        if p["dir"] == "in":
            decls.append(f"  input {vec}{pname};")
            a_conn.append(f"    .{pname}({pname})")
            b_conn.append(f"    .{pname}({pname})")
        else:
            decls += [f"  output {vec}{pname};", f"  wire {vec}{pname}_b;"]
            a_conn.append(f"    .{pname}({pname})")
            b_conn.append(f"    .{pname}({pname}_b)")
            diffs.append(f"({pname} != {pname}_b)")
    names = [p["name"] for p in ports] + ["lockstep_mismatch"]
    text = "\n".join([
        f"module {name}({', '.join(names)});", *decls,
        "  output lockstep_mismatch;",
        f"  assign lockstep_mismatch = {' | '.join(diffs) or chr(48)};",
        # keep_hierarchy: synthesis must not merge the two copies into one
        f"  (* keep_hierarchy *) {top} a (", ",\n".join(a_conn), "  );",
        f"  (* keep_hierarchy *) {top} b (", ",\n".join(b_conn), "  );",
        "endmodule", ""])
    return name, text


def overhead(resources, base):
    """``{resource: percent over base}`` of the counted resources (None where base is 0)."""
    return {k: (round(100 * (resources[k] - base[k]) / base[k], 1) if base[k] else None)
            for k in _COUNTED if k in base}


def area_report(spec, config, out_dir, protections, family="ecp5", configs=None):
    """``{"unprotected": resources, "lockstep": resources, <protection>: resources, ...,
    "overhead": {variant: {resource: %}}}`` for the :class:`~accelgen.faults.harden.
    Protection` values of ``protections`` (``{label: Protection}``) and of ``configs``
    (``{label: (config, Protection or None)}``: a block's own protections, config settings,
    each emitted and then hardened by its protection if it has one)."""
    from ..fpga.flow import synth_file
    from ..generators.emit import emit
    fam = check_family(family)
    out_dir = make_directory("-o", out_dir)
    top = spec.name
    base_dir = make_directory("-o", out_dir / "unprotected")
    emitted = emit(spec, config, base_dir, top=top)
    verilog = Path(emitted.manifest_path).with_suffix(".v")
    results = {}
    results["unprotected"], _ = synth_file(verilog.name, top, fam, base_dir)
    manifest = json.loads(Path(emitted.manifest_path).read_text())
    lock_dir = make_directory("-o", out_dir / "lockstep")
    name, text = lockstep_wrapper(manifest, top)
    (lock_dir / f"{name}.v").write_text(verilog.read_text() + "\n" + text)
    results["lockstep"], _ = synth_file(f"{name}.v", name, fam, lock_dir)
    for label, protection in protections.items():
        work = make_directory("-o", out_dir / label.replace(" ", "_"))
        harden(verilog, top, protection, work / f"{top}.v")
        results[label], _ = synth_file(f"{top}.v", top, fam, work)
    for label, (variant, protection) in (configs or {}).items():
        work = make_directory("-o", out_dir / label.replace(" ", "_"))
        source = make_directory("-o", work / "emitted")
        emitted = Path(emit(spec, variant, source, top=top).manifest_path).with_suffix(".v")
        if protection is not None:
            harden(emitted, top, protection, work / f"{top}.v")
        else:
            (work / f"{top}.v").write_text(emitted.read_text())
        results[label], _ = synth_file(f"{top}.v", top, fam, work)
    base = results["unprotected"]
    out = {label: {k: r[k] for k in _COUNTED if k in r} for label, r in results.items()}
    out["overhead"] = {label: overhead(r, base) for label, r in results.items()
                       if label != "unprotected"}
    return out
