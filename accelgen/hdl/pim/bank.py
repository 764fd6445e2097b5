"""The synthesizable bank model of block ``pim``: row storage, row buffers, one MAC unit per
bank, the global buffer and the bias / accumulator / af registers, executing DRAM commands in
order through one pipeline.

::

    cycle after the command   what happens
    1  C  command registered; ACT/ACT_AB write the open-row table; WR/WR_AB write the row
          storage, WR_GB the GB; RD/MAC/MAC_AB read the row storage and the GB
    2  D  row-storage and GB read data
    3  P  products: per bank, lanes x s8 (and, when built, lanes/2 x s16)
    4  S  per bank: the exact sum of the products (adder tree)
    4  A  (with the sums) MAC: acc := (init ? bias : acc) + sum (wraps to acc_width);
          WR_BIAS: bias := data; RD_MAC samples acc; AF feeds acc to the requantizer
    5-7   the requantizer (3 stages); in 7 AF writes af := f(acc as stage 4 saw it) and RD_AF
          samples af
    8     read data out (``rdata``): RD column, RD_MAC / RD_AF bank values

Every command goes through every stage in order, so a command sees the effect of every earlier
one: an RD_MAC right after a MAC reads its sum, an RD_AF right after an AF its result, and a
WR_BIAS after an ``init`` MAC changes the bias only after that MAC has used it. Commands the
controller never issues (a column command on a closed buffer) still execute on the row the
table holds: the controller's validation, not the bank model, keeps the program legal.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ...generators.pim import AF_FUNCS, DRAM_COMMANDS, O_KINDS, SHIFT_BITS
from ..common.arith import sum_tree
from ..common.requant import Requantizer
from ..common.stream import payload_layout
from .controller import always_ready

__all__ = ["BankModel", "PIPELINE"]

D = {name: code for code, name in enumerate(DRAM_COMMANDS)}
#: cycles from a read command on the ``dram`` port to its ``rdata`` beat
PIPELINE = 8


class BankModel(wiring.Component):
    """Banks, MAC units and global buffer of one channel.

    Members
    -------
    dram : In(stream, always ready)
        DRAM commands (``PimConfig.dram_fields``), one per cycle at most.
    rdata : Out(stream, always ready)
        Read data (``PimConfig.rdata_fields``), :data:`PIPELINE` cycles after the read.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({"dram": In(always_ready(config.dram_fields)),
                          "rdata": Out(always_ready(config.rdata_fields))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        B, U, C = cfg.banks, cfg.row_buffers, cfg.columns
        cmd_layout = payload_layout(cfg.dram_fields)

        # stage 1: the command, registered
        c1 = Signal(cmd_layout)
        v1 = Signal()
        m.d.sync += [c1.eq(self.dram.payload), v1.eq(self.dram.valid)]

        def at(c, *names):
            return Cat(c.cmd == D[n] for n in names).any()

        rowtab = [[Signal(cfg.row_bits, name=f"row_b{b}_u{u}") for u in range(U)]
                  for b in range(B)]
        for b in range(B):
            for u in range(U):
                mine = (c1.buf == u) & (at(c1, "ACT_AB") | at(c1, "ACT") & (c1.bank == b))
                with m.If(v1 & mine):
                    m.d.sync += rowtab[b][u].eq(c1.row)

        # row storage: one memory per bank, address row * columns + col
        words = []
        for b in range(B):
            mem = memory.Memory(shape=cfg.column_bits, depth=cfg.rows * C, init=[])
            m.submodules[f"bank{b}"] = mem
            rd, wr = mem.read_port(), mem.write_port()
            row = Array(rowtab[b])[c1.buf] if U > 1 else rowtab[b][0]
            addr = row * C + c1.col
            mine = at(c1, "RD", "WR", "MAC") & (c1.bank == b) | at(c1, "WR_AB", "MAC_AB")
            m.d.comb += [rd.addr.eq(addr), wr.addr.eq(addr), wr.data.eq(c1.data),
                         wr.en.eq(v1 & mine & at(c1, "WR", "WR_AB")),
                         rd.en.eq(1)]
            words.append(rd.data)
        gb = memory.Memory(shape=cfg.column_bits, depth=cfg.gb_columns, init=[])
        m.submodules.gb = gb
        gb_rd, gb_wr = gb.read_port(), gb.write_port()
        m.d.comb += [gb_rd.addr.eq(c1.gb), gb_wr.addr.eq(c1.col), gb_wr.data.eq(c1.data),
                     gb_wr.en.eq(v1 & at(c1, "WR_GB")), gb_rd.en.eq(1)]

        # stage 2: read data (the memories' synchronous read); the command follows with the
        # fields later stages read (the address fields are done with)
        mid_layout = data.StructLayout({"cmd": 4, "bank": cfg.bank_bits, "fmt": 1, "init": 1,
                                        "func": 2, "shift": SHIFT_BITS,
                                        "bias": signed(cfg.bias_width)})
        c2, v2 = Signal(mid_layout), Signal()
        m.d.sync += [c2.cmd.eq(c1.cmd), c2.bank.eq(c1.bank), c2.fmt.eq(c1.fmt),
                     c2.init.eq(c1.init), c2.func.eq(c1.func), c2.shift.eq(c1.shift),
                     c2.bias.eq(c1.data[:cfg.bias_width]), v2.eq(v1)]

        # stage 3: products
        c3, v3 = Signal(mid_layout), Signal()
        col3 = Signal(cfg.column_bits)          # the bank column of an RD
        m.d.sync += [c3.eq(c2), v3.eq(v2),
                     col3.eq(Array(words)[c2.bank] if B > 1 else words[0])]
        formats = {"s8": 8, "s16": 16} if "s16" in cfg.formats else {"s8": 8}
        prods = {f: [] for f in formats}
        for b in range(B):
            for f, width in formats.items():
                n = cfg.column_bits // width
                row = []
                for i in range(n):
                    # no reset: a product register with one keeps yosys from packing it
                    # into an iCE40 SB_MAC16, which then stays combinational and untimed
                    p = Signal(signed(2 * width), name=f"p_{f}_b{b}_{i}", reset_less=True)
                    w_el = words[b][i * width:(i + 1) * width].as_signed()
                    x_el = gb_rd.data[i * width:(i + 1) * width].as_signed()
                    m.d.sync += p.eq(w_el * x_el)
                    row.append(p)
                prods[f].append(row)

        # stage 4: sums (registered), then with them: accumulators, bias, RD_MAC's snapshot,
        # the requantizer's input
        c4, v4 = Signal(mid_layout), Signal()
        col4 = Signal(cfg.column_bits)
        m.d.sync += [c4.eq(c3), v4.eq(v3), col4.eq(col3)]
        sums = []
        for b in range(B):
            s = Signal(signed(cfg.acc_width), name=f"sum_b{b}")
            total = {f: sum_tree(prods[f][b]) for f in formats}
            if len(formats) > 1:
                m.d.sync += s.eq(Mux(c3.fmt == 1, total["s16"], total["s8"]))
            else:
                m.d.sync += s.eq(total["s8"])
            sums.append(s)
        acc = [Signal(signed(cfg.acc_width), name=f"acc_b{b}") for b in range(B)]
        bias = [Signal(signed(cfg.acc_width), name=f"bias_b{b}") for b in range(B)]
        for b in range(B):
            mine = at(c4, "MAC_AB") | at(c4, "MAC") & (c4.bank == b)
            with m.If(v4 & mine):
                m.d.sync += acc[b].eq(Mux(c4.init, bias[b], acc[b]) + sums[b])
            with m.If(v4 & at(c4, "WR_BIAS") & (c4.bank == b)):
                m.d.sync += bias[b].eq(c4.bias)

        # stages 5-7: the requantizer (input in stage 4, result in stage 7); the accumulators
        # as stage 4 saw them (AF's identity / relu input, RD_MAC's result) and an RD's column
        # follow the command
        m.submodules.requant = rq = Requantizer(lanes=B, acc_width=cfg.acc_width, mult_bits=1,
                                                rounding=cfg.rounding, shift_bits=SHIFT_BITS,
                                                round_stage=False)
        m.d.comb += [rq.mult.eq(1), rq.zero_point.eq(0), rq.out_signed.eq(1),
                     rq.shift.eq(c4.shift), rq.relu.eq(c4.func == AF_FUNCS.index("relu_requant"))]
        for b in range(B):
            m.d.comb += rq.acc[b].eq(acc[b])
        late_layout = data.StructLayout({"cmd": 4, "func": 2})
        ck, vk = Signal(late_layout, name="c5"), Signal(name="v5")
        ak, colk = Signal(B * cfg.acc_width, name="acc5"), Signal(cfg.column_bits, name="col5")
        m.d.sync += [ck.cmd.eq(c4.cmd), ck.func.eq(c4.func), vk.eq(v4), ak.eq(Cat(acc)),
                     colk.eq(col4)]
        for k in (6, 7):
            cn, vn = Signal(late_layout, name=f"c{k}"), Signal(name=f"v{k}")
            an = Signal(B * cfg.acc_width, name=f"acc{k}")
            coln = Signal(cfg.column_bits, name=f"col{k}")
            m.d.sync += [cn.eq(ck), vn.eq(vk), an.eq(ak), coln.eq(colk)]
            ck, vk, ak, colk = cn, vn, an, coln
        c7, v7, acc7, col7 = ck, vk, ak, colk
        assert rq.latency == 3         # input in stage 4, y in stage 7 (mult_bits 1: no split)
        af = [Signal(signed(cfg.acc_width), name=f"af_b{b}") for b in range(B)]
        with m.If(v7 & at(c7, "AF")):
            for b in range(B):
                a = acc7[b * cfg.acc_width:(b + 1) * cfg.acc_width].as_signed()
                m.d.sync += af[b].eq(Mux(c7.func == AF_FUNCS.index("identity"), a,
                                     Mux(c7.func == AF_FUNCS.index("relu"),
                                         Mux(a < 0, 0, a), rq.y[b])))

        # stage 8: read data out
        out = self.rdata
        m.d.sync += [out.valid.eq(v7 & at(c7, "RD", "RD_MAC", "RD_AF")),
                     out.payload.data.eq(Mux(at(c7, "RD_AF"), Cat(af),
                                             Mux(at(c7, "RD_MAC"), acc7, col7))),
                     out.payload.kind.eq(Mux(at(c7, "RD"), O_KINDS.index("column"),
                                             Mux(at(c7, "RD_MAC"), O_KINDS.index("mac"),
                                                 O_KINDS.index("af"))))]
        return m
