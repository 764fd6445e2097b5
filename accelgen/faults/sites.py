"""Where a single-event upset can strike: every flip-flop bit and every stored memory bit of
an emitted block, read off the Verilog that ``accelgen emit`` writes.

Amaranth's Verilog back end writes each register as ``always @(posedge clk) NAME <= ...;``,
each memory (a ROM too) as ``reg [W-1:0] NAME [D-1:0];`` and each submodule as an instance
``\\<module> <instance> (``. Those three shapes are all this reader needs, so it takes no
yosys run. A site's ``path`` is the instance path from the block's top module to the
register, which is also its name in the simulator's hierarchy under the block instance.
"""

import re
from dataclasses import dataclass

__all__ = ["Site", "flip_sites", "modules_of"]

_IDENT = r"(?:\\\S+|[A-Za-z_][\w$]*)"
_MODULE = re.compile(rf"^module ({_IDENT})\s*\(.*?^endmodule", re.M | re.S)
_REG = re.compile(rf"^\s*reg\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?({_IDENT})\s*"
                  rf"(?:\[(\d+):(\d+)\])?\s*(?:=[^;]*)?;", re.M)
_ALWAYS = re.compile(r"always @\(posedge clk\)")
_BLOCK_WORD = re.compile(r"\b(?:begin|end)\b")
#: a non-blocking assignment at the start of a line: its target (and any index)
_TARGET = re.compile(rf"^\s*(?:if \([^\n]*\)\s*)?({_IDENT})\s*(?:\[[^\]\n]*\]\s*)*<=", re.M)
_INSTANCE = re.compile(rf"^\s*({_IDENT})\s+({_IDENT})\s*\($", re.M)


@dataclass(frozen=True)
class Site:
    """One register or memory of the block.

    Members
    -------
    path : tuple of str
        Instance names from the block's top module down, then the register's name.
    width : int
        Bits of the register, or of one memory word.
    words : int
        Memory words; 0 for a register.
    """
    path: tuple
    width: int
    words: int = 0

    @property
    def bits(self):
        """Bits an upset can hit."""
        return self.width * max(1, self.words)

    @property
    def name(self):
        """Dotted instance path and name (a flattened netlist's names read the same)."""
        return ".".join(_plain(p) for p in self.path)

    @property
    def unit(self):
        """The submodule holding it (``"top"`` for the block's own module)."""
        name = self.name
        return name.rsplit(".", 1)[0] if "." in name else "top"


def _plain(ident):
    return ident[1:] if ident.startswith("\\") else ident


def modules_of(verilog):
    """``{module name: text}`` of a Verilog file."""
    return {_plain(m.group(1)): m.group(0) for m in _MODULE.finditer(verilog)}


def _clocked_bodies(text):
    """The statements of every ``always @(posedge clk)`` block of a module: one statement,
    or everything between its ``begin`` and the matching ``end``."""
    for m in _ALWAYS.finditer(text):
        rest = text[m.end():]
        head = rest.lstrip()
        if not head.startswith("begin"):
            yield rest[:rest.index(";") + 1]
            continue
        depth, at = 0, 0
        for word in _BLOCK_WORD.finditer(rest):
            depth += 1 if word.group(0) == "begin" else -1
            if depth == 0:
                at = word.end()
                break
        yield rest[:at]


def _own_sites(text):
    """``[(name, width, words)]`` of the registers and memories one module clocks."""
    decls = {}
    for m in _REG.finditer(text):
        hi, lo, name, a, b = m.groups()
        width = int(hi) - int(lo) + 1 if hi is not None else 1
        words = abs(int(a) - int(b)) + 1 if a is not None else 0
        decls[name] = (width, words)
    out, seen = [], set()
    for body in _clocked_bodies(text):
        for m in _TARGET.finditer("\n" + body):
            name = m.group(1)
            if name in decls and name not in seen:
                seen.add(name)
                out.append((name, *decls[name]))
    # memories whatever writes them (ROMs too: their words sit in block RAM as well)
    out += [(name, width, words) for name, (width, words) in decls.items()
            if words and name not in seen]
    return out


def flip_sites(verilog, top):
    """Every :class:`Site` of module ``top`` and its instances, in a stable order (depth
    first, in the order the Verilog declares them)."""
    modules = modules_of(verilog)
    if top not in modules:
        raise ValueError(f"module {top!r} is not in the Verilog")
    sites = []

    def walk(module, prefix):
        text = modules[module]
        for name, width, words in _own_sites(text):
            sites.append(Site(prefix + (name,), width, words))
        for m in _INSTANCE.finditer(text):
            child, instance = _plain(m.group(1)), m.group(2)
            if child in modules and child != module:
                walk(child, prefix + (instance,))

    walk(top, ())
    return sites
