"""Reading the tools' reports: yosys ``stat -json`` cell counts, nextpnr's utilisation table,
logic counts and Fmax, and the one-line reason a tool failed.

The parsers are the same for every family; what each family calls its cells and bels, and how
its packer reports logic, comes from its :class:`~accelgen.fpga.family.Family` record.

::

    yosys stat -json ─► resources_from_stat ─► {LUT4, carry, FF, DSP, BRAM, cells}
    nextpnr log ──────► parse_nextpnr_log ───► {LUT4, carry, FF, DSP, BRAM, IO: (used, of),
                          │                     cells}, Fmax
                          └► fmax_from_log, untimed_mac16
    failed tool's log ─► failure_detail ─────► "ERROR: ... (does not fit: ICESTORM_LC 6673/5280)"

Fmax and iCE40 DSPs: nextpnr-ice40 names the constant net on the clock pin of an SB_MAC16
that yosys left combinational ``$PACKER_...`` and lists it as a clock of its own. Paths
through such a DSP are timed against that pseudo-clock, not the design's, so the design's
Fmax is optimistic; :func:`fmax_from_log` never reports the pseudo-clock and
:func:`untimed_mac16` says whether the log has one.
"""

import json
import re

from .family import check_family

__all__ = ["resources_from_stat", "parse_nextpnr_log", "fmax_from_log", "untimed_mac16",
           "unclocked_mac16", "failure_detail"]

#: one row of nextpnr's "Device utilisation" table: bel type, used, available
UTIL_ROW = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz\s+\((PASS|FAIL) at "
                   r"([\d.]+) MHz\)")
#: nextpnr-ice40 names the constant net on a combinational SB_MAC16's clock pin a clock
_PSEUDO_CLOCK = "$PACKER_"
#: that pseudo-clock as a clock of the timing report: its own Fmax line, or only the end of
#: a cross-domain ``Max delay`` (it often has no interior paths)
_PSEUDO_CLOCK_TIMED = re.compile(r"(?:posedge |negedge |clock\s+')" + re.escape(_PSEUDO_CLOCK))


def resources_from_stat(stat, family):
    """yosys ``stat -json`` output (dict) for ``family`` (a name) → ``{LUT4, carry, FF, DSP,
    BRAM, cells}``: cell counts per resource key, and ``cells`` every cell type → count."""
    fam = check_family(family)
    design = stat.get("design") or next(iter(stat["modules"].values()))
    # Amaranth's $scopeinfo cells only carry hierarchy names; they are not hardware.
    cells = {t: n for t, n in design.get("num_cells_by_type", {}).items()
             if not t.startswith("$scopeinfo")}
    out = {}
    for key, types in fam.cells.items():
        if key in fam.prefix_cells:
            out[key] = sum(n for t, n in cells.items() if t.startswith(types))
        else:
            out[key] = sum(cells.get(t, 0) for t in types)
    out["cells"] = cells
    return out


def parse_nextpnr_log(text, family, *, clock_hint="", synth_cells=None):
    """nextpnr log text for ``family`` (a name) → ``(resources, fmax_mhz)``.

    ``DSP``/``BRAM``/``IO`` are ``(used, available)`` summed over the family's bel types in
    the last "Device utilisation" table; ``LUT4``/``carry``/``FF`` come from the family's
    :attr:`~accelgen.fpga.family.Family.logic` reader (``synth_cells``: yosys' cell counts,
    which iCE40 needs for carries); ``cells`` holds the table's own rows (bel type → (used,
    available)). Fmax is :func:`fmax_from_log` with ``clock_hint``.
    """
    fam = check_family(family)
    blocks = text.split("Device utilisation:")
    rows = {}
    if len(blocks) > 1:
        table = blocks[-1].split("\n\n")[0]
        rows = {m[1]: (int(m[2]), int(m[3])) for m in UTIL_ROW.finditer(table)}
    out = {}
    for key, types in fam.bels.items():
        out[key] = (sum(rows.get(t, (0, 0))[0] for t in types),
                    sum(rows.get(t, (0, 0))[1] for t in types))
    out.update(fam.logic(text, rows, synth_cells or {}))
    out["cells"] = rows
    return out, fmax_from_log(text, clock_hint)


def untimed_mac16(text):
    """Whether a nextpnr log times a ``$PACKER_...`` pseudo-clock: paths into and out of such
    SB_MAC16s are not checked against the design's clock, so its Fmax is optimistic."""
    return _PSEUDO_CLOCK_TIMED.search(text) is not None


def unclocked_mac16(netlist):
    """How many ``SB_MAC16`` cells of a yosys JSON netlist (its text, or the parsed dict)
    have no clock: no register
    in use, the ``CLK`` pin left open or tied to a constant. nextpnr-ice40 times neither kind
    against the design's clock (a constant one becomes the ``$PACKER_...`` pseudo-clock of
    :func:`untimed_mac16`; an open one leaves the DSP's pins as unclocked start and end
    points), so paths through them are missing from the design's Fmax."""
    if isinstance(netlist, str):
        if '"SB_MAC16"' not in netlist:      # other families' netlists: no parse
            return 0
        netlist = json.loads(netlist)
    count = 0
    for module in netlist.get("modules", {}).values():
        for cell in module.get("cells", {}).values():
            if cell.get("type") == "SB_MAC16":
                clk = cell.get("connections", {}).get("CLK", [])
                count += not clk or not all(isinstance(bit, int) for bit in clk)
    return count


def fmax_from_log(text, clock_hint):
    """Post-route Fmax (MHz) in a nextpnr log of the clock whose name contains
    ``clock_hint``, else of the first clock listed, never of a ``$PACKER_...`` pseudo-clock;
    0.0 when the log reports none."""
    found = {}
    for m in _FMAX.finditer(text):
        if m[1].startswith(_PSEUDO_CLOCK):
            continue
        found[m[1]] = float(m[2])   # later (post-route) lines overwrite earlier estimates
    if not found:
        return 0.0
    for name, mhz in found.items():
        if clock_hint and clock_hint in name:
            return mhz
    return next(iter(found.values()))


def failure_detail(text, returncode):
    """One line for the user from a failed tool's log ``text``: its first ``ERROR:`` line
    (shortened past 160 characters; else the exit status) and, when the design did not fit,
    which utilisation rows overflowed."""
    errors = [ln.strip() for ln in text.splitlines() if ln.lstrip().startswith("ERROR:")]
    detail = errors[0] if errors else f"exit status {returncode}"
    if len(detail) > 160:
        detail = detail[:100] + " ... " + detail[-50:]
    over = [f"{m[1]} {m[2]}/{m[3]}" for m in UTIL_ROW.finditer(text) if int(m[2]) > int(m[3])]
    if over:
        detail += f" (does not fit: {', '.join(dict.fromkeys(over))} used)"
    return detail
