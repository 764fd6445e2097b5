"""Stimulus for block ``pim``: random instruction programs (mostly legal for the bank state
they meet, with directed and random errors), and the expected ``o`` and ``rsp`` words of a
program from the golden model and the cycle model. The Amaranth-simulator tests, the cocotb
testbench and the FPGA self-check build their programs here. numpy, the config and the golden
models only.

Every function takes a :class:`numpy.random.Generator` that the caller seeds.
"""

from dataclasses import replace

from ...generators.pim import AF_FUNCS, COUNTERS, FORMATS, OPS, SHIFT_BITS
from ..payload import pack
from .pim import Instr, Model, expected_counters, pack_instr
from .pim_cycles import schedule

__all__ = ["USED", "clear_program", "random_program", "error_instrs", "add_junk", "Expected",
           "TIMING_COUNTERS"]

#: the fields each op reads; the hardware ignores the others (any value)
USED = {"EOC": (), "SYNC": (), "ACT": ("bank", "buf", "row"), "ACT_AB": ("buf", "row"),
        "PRE": ("bank", "buf"), "PRE_AB": ("buf",), "WR_SBK": ("bank", "buf", "col", "data"),
        "RD_SBK": ("bank", "buf", "col"), "WR_ABK": ("buf", "col", "data"),
        "WR_GB": ("col", "data"), "WR_BIAS": ("bank", "data"),
        "MAC_SBK": ("bank", "buf", "col", "count", "gb", "fmt", "init"),
        "MAC_ABK": ("buf", "col", "count", "gb", "fmt", "init"), "AF": ("func", "shift"),
        "RD_MAC": (), "RD_AF": ()}
#: the EOC counters that depend on timing (the others are the golden model's)
TIMING_COUNTERS = ("cycles", "refs", "stall_timing", "stall_refresh", "stall_host",
                   "stall_output")


def clear_program(config):
    """Instructions that write 0 into every column of every row and of the GB, ending with
    EOC: after them the hardware's storage is what a fresh golden :class:`Model` holds (the
    storage survives a reset, so a testcase that reads columns it did not write runs this
    first)."""
    out = []
    for row in range(config.rows):
        out.append(Instr("ACT_AB", row=row))
        out += [Instr("WR_ABK", col=c) for c in range(config.columns)]
        out.append(Instr("PRE_AB"))
    out += [Instr("WR_GB", col=c) for c in range(config.gb_columns)]
    return out + [Instr("EOC")]


def _field_max(config, name):
    width = {f.name: f.width for f in config.cmd_fields}[name]
    return (1 << width) - 1


def add_junk(config, rng, ins):
    """``ins`` with random values in every field its op does not read."""
    if ins.code >= len(OPS):
        return ins
    used = USED[OPS[ins.code]]
    junk = {f.name: int(rng.integers(0, 1 << min(f.width, 62)))
            for f in config.cmd_fields if f.name not in used and f.name != "op"}
    return replace(ins, **junk)


def _data(config, rng):
    return int.from_bytes(rng.bytes(config.column_bytes), "little")


def _closed_row(config, model, rng, bank, buf):
    """A row not open in the bank's other buffer."""
    rows = [r for r in range(config.rows)
            if not (config.row_buffers == 2 and model.open[bank, 1 - buf]
                    and model.open_row[bank, 1 - buf] == r)]
    return int(rng.choice(rows))


def _legal(config, model, rng):
    """One legal instruction for the bank state of ``model``."""
    cfg = config
    U = cfg.row_buffers
    open_pairs = [(b, u) for b in range(cfg.banks) for u in range(U) if model.open[b, u]]
    closed_pairs = [(b, u) for b in range(cfg.banks) for u in range(U) if not model.open[b, u]]
    abk = [u for u in range(U) if model.open[:, u].all()
           and (model.open_row[:, u] == model.open_row[0, u]).all()]
    choices = ["WR_GB", "WR_BIAS", "AF", "RD_MAC", "RD_AF", "PRE", "PRE_AB", "SYNC"]
    if closed_pairs:
        choices += ["ACT"] * 3
    if any(not model.open[:, u].any() for u in range(U)):
        choices += ["ACT_AB"] * 3
    if open_pairs:
        choices += ["WR_SBK", "RD_SBK", "MAC_SBK"] * 2
    if abk:
        choices += ["WR_ABK", "MAC_ABK"] * 4
    op = str(rng.choice(choices))
    fmts = [FORMATS.index(f) for f in cfg.formats]
    if op == "ACT":
        b, u = closed_pairs[rng.integers(len(closed_pairs))]
        return Instr(op, bank=b, buf=u, row=_closed_row(cfg, model, rng, b, u))
    if op == "ACT_AB":
        u = int(rng.choice([u for u in range(U) if not model.open[:, u].any()]))
        rows = [r for r in range(cfg.rows) if not (U == 2 and (
            model.open[:, 1 - u] & (model.open_row[:, 1 - u] == r)).any())]
        if not rows:
            return Instr("SYNC")
        return Instr(op, buf=u, row=int(rng.choice(rows)))
    if op in ("PRE", "PRE_AB"):
        return Instr(op, bank=int(rng.integers(cfg.banks)), buf=int(rng.integers(U)))
    if op in ("WR_SBK", "RD_SBK", "MAC_SBK"):
        b, u = open_pairs[rng.integers(len(open_pairs))]
    elif op in ("WR_ABK", "MAC_ABK"):
        b, u = 0, int(rng.choice(abk))
    else:
        b, u = int(rng.integers(cfg.banks)), 0
    col = int(rng.integers(cfg.columns))
    if op in ("WR_SBK", "WR_ABK", "RD_SBK"):
        return Instr(op, bank=b, buf=u, col=col, data=_data(cfg, rng))
    if op == "WR_GB":
        return Instr(op, col=int(rng.integers(cfg.gb_columns)), data=_data(cfg, rng))
    if op == "WR_BIAS":
        return Instr(op, bank=b, data=_data(cfg, rng))
    if op in ("MAC_SBK", "MAC_ABK"):
        count = int(rng.integers(1, min(cfg.columns - col, cfg.gb_columns) + 1))
        gb = int(rng.integers(0, cfg.gb_columns - count + 1))
        return Instr(op, bank=b, buf=u, col=col, count=count, gb=gb,
                     fmt=int(rng.choice(fmts)), init=int(rng.integers(2)))
    if op == "AF":
        return Instr(op, func=int(rng.integers(len(AF_FUNCS))),
                     shift=int(rng.integers(1 << SHIFT_BITS)))
    return Instr(op)


def error_instrs(config, model):
    """``[(instruction, err)]``: one directed instruction per error ``config`` can express in
    the bank state of ``model`` (which must have no buffer open)."""
    cfg = config
    out = [(Instr(len(OPS)), 1), (Instr(31), 1)]
    if (1 << cfg.bank_bits) > cfg.banks:
        out.append((Instr("ACT", bank=cfg.banks), 2))
    if (1 << cfg.row_bits) > cfg.rows:
        out.append((Instr("ACT_AB", row=cfg.rows), 2))
    if cfg.row_buffers == 1:
        out.append((Instr("ACT", buf=1), 2))
    if (1 << cfg.col_bits) > cfg.gb_columns:
        out.append((Instr("WR_GB", col=cfg.gb_columns), 2))
    out += [(Instr("MAC_ABK", count=0), 2),
            (Instr("MAC_ABK", col=cfg.columns - 1, count=2), 2) if cfg.columns > 1 else
            (Instr("MAC_ABK", count=0), 2),
            (Instr("RD_SBK", bank=0, col=0), 4), (Instr("MAC_SBK", count=1), 4),
            (Instr("WR_ABK"), 5), (Instr("MAC_ABK", count=1), 5)]
    if "s16" not in cfg.formats:
        out.append((Instr("MAC_ABK", count=1, fmt=1), 3))
    return out


def random_program(config, rng, length, *, error_rate=0.1, junk=True, model=None,
                   eoc_rate=0.05):
    """``length`` random instructions run on ``model`` (a fresh :class:`Model` by default),
    ending with EOC: legal ones for the state they meet, about ``error_rate`` of them
    erroneous (directed kinds while every buffer is closed, else a random opcode, range or
    state error), an EOC about every ``1 / eoc_rate`` instructions, and with ``junk`` random
    values in every field an op ignores. Returns the instructions (``model`` has run them)."""
    model = model or Model(config)
    out = []
    for _ in range(length):
        if rng.random() < eoc_rate:
            ins = Instr("EOC")
        elif rng.random() < error_rate:
            ins = _random_error(config, model, rng)
        else:
            ins = _legal(config, model, rng)
        if junk:
            ins = add_junk(config, rng, ins)
        model.run(ins)
        out.append(ins)
    out.append(Instr("EOC"))
    model.run(out[-1])
    return out


def _random_error(config, model, rng):
    cfg = config
    kinds = [lambda: Instr(int(rng.integers(len(OPS), 32))),
             lambda: Instr("MAC_ABK", count=0),
             lambda: Instr("WR_GB", col=_field_max(cfg, "col"))
             if _field_max(cfg, "col") >= cfg.gb_columns else Instr(31)]
    if not model.open[:, 0].all():
        kinds.append(lambda: Instr("MAC_ABK", count=1))
    closed = [(b, u) for b in range(cfg.banks) for u in range(cfg.row_buffers)
              if not model.open[b, u]]
    if closed:
        b, u = closed[rng.integers(len(closed))]
        kinds.append(lambda: Instr("RD_SBK", bank=b, buf=u))
    opened = [(b, u) for b in range(cfg.banks) for u in range(cfg.row_buffers)
              if model.open[b, u]]
    if opened:
        b, u = opened[rng.integers(len(opened))]
        kinds.append(lambda: Instr("ACT", bank=b, buf=u, row=0))
    return kinds[rng.integers(len(kinds))]()


class Expected:
    """What the hardware must send for a program run from reset (or from a known state in
    ``model``): the ``o`` words, the ``rsp`` beats as dicts, the DRAM trace and program
    counters of the cycle model (valid at full rate with refresh off)."""

    def __init__(self, config, instrs, model=None):
        self.config = config
        self.instrs = list(instrs)
        model = model or Model(config)
        opened = model.open.copy()          # the program may start with rows open
        steps = model.program(self.instrs)
        self.steps = steps
        self.o = [w for s in steps for w in s.o_words]
        self.schedule = schedule(config, self.instrs, steps, opened)
        self.rsp = []
        programs = iter(self.schedule.programs)
        first = 0
        index = 0
        for i, (ins, step) in enumerate(zip(self.instrs, steps)):
            if step.err:
                self.rsp.append({"eoc": 0, "err": step.err, "index": index,
                                 **dict.fromkeys(COUNTERS, 0)})
            if ins.name == "EOC" and not step.err:
                counts = expected_counters(config, steps[first:i + 1])
                timing = next(programs)
                counts["cycles"] = timing["cycles"]
                counts["stall_timing"] = timing["stall_timing"]
                self.rsp.append({"eoc": 1, "err": 0, "index": index, **counts})
                first, index = i + 1, 0
            else:
                index += 1
        self.trace = [(t, c.cmd, c.bank, c.buf, c.row, c.col) for t, c in self.schedule.trace]

    @property
    def cmd_words(self):
        return pack_instr(self.config, self.instrs)

    def rsp_words(self):
        return pack(self.config.rsp_fields,
                    {k: [r[k] for r in self.rsp] for k in self.rsp[0]}) if self.rsp else []



def timing_probe(config):
    """A directed program in which every rule of the timing table binds at least once (its
    command issues exactly when that rule allows it), for the mutation test: a controller
    built with one timing value shortened by one issues some command one cycle early. Needs
    two row buffers, at least three bank groups of at least two banks and 16 columns.

    Sequences (``b0``, ``b1`` share a group; ``b2``, ``b4``, ``b6`` are in other groups):
    ACT then PRE (tRAS); ACT again (tRC or tRP, whichever is longer); ACT of the other buffer
    (tRC); a long MAC then PRE and ACT (tRCD_MAC, tRTP, tRP); RDs then PRE (tRCD_RD, tRTP);
    WRs then PRE (tRCD_WR, tWR); column commands in one group then in another (tCCD_L,
    tCCD_S); ACTs in one group and across four groups (tRRD_L, tRRD_S, tFAW)."""
    cfg = config
    bpg = cfg.banks_per_group
    if cfg.row_buffers < 2 or cfg.bank_groups < 4 or bpg < 2 or cfg.columns < 16:
        raise ValueError("timing_probe: needs row_buffers=2, bank_groups >= 4, 2 banks per "
                         "group and 16 columns")
    b0, b1, b2, b4, b6 = 0, 1, bpg, 2 * bpg, 3 * bpg
    p = [Instr("ACT", bank=b0, row=0), Instr("PRE", bank=b0), Instr("ACT", bank=b0, row=1),
         Instr("ACT", bank=b0, buf=1, row=2),
         Instr("ACT", bank=b1, row=0), Instr("MAC_SBK", bank=b1, count=16),
         Instr("PRE", bank=b1), Instr("ACT", bank=b1, row=1),
         Instr("ACT", bank=b2, row=0)]
    p += [Instr("RD_SBK", bank=b2, col=c) for c in range(16)]
    p += [Instr("PRE", bank=b2), Instr("ACT", bank=b2, row=3)]
    p += [Instr("WR_SBK", bank=b2, col=c) for c in range(16)]
    p += [Instr("PRE", bank=b2)]
    # column commands: same group (b0, b1: tCCD_L), then another group (b2: tCCD_S)
    p += [Instr("ACT", bank=b2, row=1)]
    for _ in range(4):
        p += [Instr("RD_SBK", bank=b0), Instr("RD_SBK", bank=b1), Instr("RD_SBK", bank=b2)]
    p += [Instr("PRE_AB", buf=0), Instr("PRE_AB", buf=1)]
    # ACTs: same group (tRRD_L), then four groups (tRRD_S) and a fifth inside tFAW
    p += [Instr("ACT", bank=b0, row=2), Instr("ACT", bank=b1, row=2),
          Instr("ACT", bank=b2, row=2), Instr("ACT", bank=b4, row=2),
          Instr("ACT", bank=b6, row=2), Instr("ACT", bank=b2 + 1, row=2),
          Instr("PRE_AB", buf=0)]
    return p + [Instr("EOC")]
