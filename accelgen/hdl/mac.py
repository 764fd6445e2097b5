"""Block ``mac``: mixed-precision SIMD multiply-accumulate unit.

::

              i (a, b, mode, clear, last)
                  │
          [operand registers]        pipeline >= 2 (fused: each brick's 2-bit slices)
                  │
       ┌──────────┴──────────┐
    lane 0   ...          lane L-1   plain: one multiplier per lane
       │                     │       fused: (Wa/2)*(Wb/2) 3x3-bit signed bricks per lane
          [product registers]        pipeline >= 1
       │                     │       fused: fusion tree, first half (fold along a)
          [fold registers]           pipeline >= 3 (>= 6: also halfway through the fold)
       │                     │       fused: fusion tree, second half (fold along b)
    lane sum ...          lane sum   (pipeline >= 7: a register halfway through the fold)
          [lane-sum registers]       pipeline >= 4
       └──── together? ──────┘       reduction="together": one adder tree over the lanes
          [sum register]             pipeline >= 5
                  │
           acc = overflow((clear ? 0 : acc) + sum)     wrap or saturate to s<acc_width>
                  │
          [output buffer]            latency + 1 places, reserved by ``last`` beats
                  │
              o (acc0.., err)        on beats with ``last``

Numeric semantics are defined by :mod:`accelgen.sim.golden.mac`; parameters by
:class:`accelgen.generators.mac.MACConfig`.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from ..formats import E8M0_BIAS, E8M0_NAN, decode_range
from ..numerics import IntFormat
from .common.arith import add3, fold3, mul3, residue3, sub3, sum_tree
from .common.floats import FP32_INF, FP32_NAN, add_fp32, decode_element, round_fp32
from .common.normalize import leading_zeros
from .common.numerics import apply_overflow
from .common.operands import read_operand
from .common.pipeline import OutputBuffer, Pipeline, register
from .common.stream import StreamBlock

__all__ = ["MAC"]


class MAC(StreamBlock):
    """Mixed-precision SIMD multiply-accumulate unit.

    Parameters
    ----------
    config : MACConfig

    Members
    -------
    i : In(stream.Signature(...))
        Operand beats: ``a``, ``b`` (lane slots, see ``MACConfig.input_fields``), ``mode`` (only
        when more than one mode is built), ``clear`` (start a new accumulation with this beat),
        ``last`` (emit the accumulators after this beat).
    o : Out(stream.Signature(...))
        One beat per input beat with ``last``: ``acc0`` .. ``acc{n-1}`` (``s<acc_width>``) and
        ``err`` (an invalid mode code was seen since the last ``clear``).

    Timing
    ------
    Accepts one beat per cycle while ``o`` is ready; ``o.valid`` rises ``latency`` (see
    ``MACConfig.latency``) cycles after a ``last`` beat is accepted. The pipeline never
    stalls: results that ``o`` does not take at once wait in an output buffer of
    ``latency + 1`` places (:class:`~.common.pipeline.OutputBuffer`), and ``i.ready``, from
    registers, falls while every place is held by a ``last`` beat in flight or a waiting
    result. So ``o.ready`` drives no clock enable, and no beat is lost.
    """

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        out = self._output_buffer(m)
        if cfg.element_lane:
            self._elaborate_elements(m, out)
            return m

        # Each stage maps {control..., data nodes} to the next; a stage the configured depth
        # leaves out passes them through unregistered.
        depth = cfg.pipeline
        pipe = Pipeline(m, reset=self._CONTROL)
        p = self.i.payload
        s = dict(valid=self.i.valid & self.i.ready, mode=p.mode if cfg.mode_bits else 0,
                 clear=p.clear, last=p.last)
        if cfg.acc_check == "residue":
            s.update(self._predicted_residues(m, p.a, p.b, s["mode"]))
            # the check's own copies of valid and clear: a flip in the datapath's copy then
            # shows as a mismatch instead of corrupting data and residue alike
            s.update(r3_valid=s["valid"], r3_clear=p.clear)
        if cfg.multiplier == "plain":
            s.update(a=p.a, b=p.b)
        else:   # the operand registers hold each brick's slices, selected by mode before them
            s.update(self._brick_operands(m, p.a, p.b, s["mode"]))
        s = vars(pipe.add_stage(s, name="opnd", present=depth >= 2))
        s = vars(pipe.add_stage(self._multiply(m, s), name="prod", present=depth >= 1))
        # depth 6 and 7 register the folds halfway (one adder level per stage at 8 bits)
        if depth >= 6:
            s = vars(pipe.add_stage(self._fold(m, s, "a", 0), name="fold_half"))
            s = vars(pipe.add_stage(self._fold(m, s, "a", 1), name="fold"))
        else:
            s = vars(pipe.add_stage(self._fold(m, s, "a"), name="fold", present=depth >= 3))
        if depth >= 7:
            s = vars(pipe.add_stage(self._fold(m, s, "b", 0), name="lane_half"))
            s = vars(pipe.add_stage(self._fold(m, s, "b", 1), name="lane"))
        else:
            s = vars(pipe.add_stage(self._fold(m, s, "b"), name="lane", present=depth >= 4))
        s = vars(pipe.add_stage(self._reduce(s), name="sum", present=depth >= 5))
        self._accumulate(m, out, s)
        if pipe.depth + 1 != cfg.latency:  # the config's latency is what the manifest publishes
            raise AssertionError(f"mac pipeline has {pipe.depth + 1} stages, config.latency "
                                 f"says {cfg.latency}")
        return m

    #: the control fields of a beat, the only pipeline registers a reset clears (``add`` and
    #: ``replace`` are the fp32 accumulator's write enable and select). The data registers
    #: (operands, products, partial sums) need none, and without one yosys packs the
    #: registers around a product into an iCE40 SB_MAC16, so nextpnr times it
    _CONTROL = ("valid", "mode", "clear", "last", "end", "mx", "add", "replace", "r3_valid",
                "r3_clear")
    #: key prefix of the predicted residues that travel beside the data (``acc_check``)
    _RESIDUE = "r3_"
    #: what travels with a beat through element lanes: control fields and MX scales
    _CARRIED = _CONTROL + ("scale_a", "scale_b")

    def _carry(self, stage):
        """The fields of ``stage`` that travel on unchanged (control, and scales if built)."""
        return {k: stage[k] for k in self._CARRIED if k in stage}

    def _with_nodes(self, stage, nodes):
        """A stage dict: the control fields of ``stage`` (with the fusion flags, once decoded)
        plus ``nodes[lane][n]`` as data."""
        out = {k: v for k, v in stage.items()
               if k in self._CONTROL or k.startswith(("fuse_", self._RESIDUE))}
        out.update({f"x{lane}_{n}": v for lane, vs in enumerate(nodes) for n, v in enumerate(vs)})
        return out

    @staticmethod
    def _nodes(stage):
        """``nodes[lane][n]`` of a stage dict built by :meth:`_with_nodes`."""
        nodes = {}
        for key, value in stage.items():
            if key.startswith("x"):
                lane, n = map(int, key[1:].split("_"))
                nodes.setdefault(lane, {})[n] = value
        return [[vs[n] for n in sorted(vs)] for _, vs in sorted(nodes.items())]

    def _multiply(self, m, s):
        """Per lane: ``[product]`` (plain) or the brick products in grid order (fused). Fused
        lanes also decode the fusion tree's shift enables here, a stage ahead of the folds
        that use them, so the folds start from registered flags (no mode decode, and no
        fan-out of it, in front of their adders)."""
        if self.config.multiplier == "plain":
            return self._with_nodes(s, [self._plain_lane(m, s, lane)
                                        for lane in range(self.config.lanes)])
        flags = {**self._fusion_flags(m, s["mode"], "a"), **self._fusion_flags(m, s["mode"], "b")}
        s = {**s, **{f"fuse_{axis}{level}": flag for (axis, level), flag in flags.items()}}
        return self._with_nodes(s, [self._fused_bricks(m, s, lane)
                                    for lane in range(self.config.lanes)])

    def _fold(self, m, s, axis, part=None):
        """Fold the fusion tree along ``axis`` (see :meth:`_fusion_tree`): all its levels, or
        with ``part`` 0/1 its first/second half; plain lanes pass."""
        if self.config.multiplier == "plain":
            return s
        n = (self._grid[0] if axis == "a" else self._grid[1]).bit_length() - 1
        levels = range(n) if part is None else range(n // 2) if part == 0 else range(n // 2, n)
        flags = {(k[5], int(k[6:])): v for k, v in s.items() if k.startswith(f"fuse_{axis}")}
        flags = {key: _constant_flag(v) for key, v in flags.items()}
        return self._with_nodes(s, [self._fusion_tree(nodes, flags, axis, levels)
                                    for nodes in self._nodes(s)])

    def _reduce(self, s):
        """One dot-product sum over the lanes (``together``) or the lane sums as they are."""
        if self.config.reduction == "apart":
            return s
        return self._with_nodes(s, [[sum_tree([nodes[0] for nodes in self._nodes(s)])]])

    def _accumulate(self, m, out, s):
        """``acc = overflow((clear ? 0 : acc) + sum)``; the accumulators are ``out.payload``,
        valid after a ``last`` beat."""
        cfg = self.config
        acc_fmt = IntFormat(cfg.acc_width, True)
        mode_ok = s["mode"] < len(cfg.modes) if cfg.mode_bits else Const(1, 1)
        err = Signal()
        residue_pairs = []
        m.d.sync += out.valid.eq(s["valid"] & s["last"])
        for n, (total,) in enumerate(self._nodes(s)):
            acc = Signal(signed(cfg.acc_width), name=f"acc{n}")
            with m.If(s["valid"]):
                # clear selects after the adder, so the carry chain starts at the
                # accumulator's flip-flops
                m.d.sync += acc.eq(Mux(s["clear"],
                                       apply_overflow(total, acc_fmt, cfg.overflow),
                                       apply_overflow(acc + total, acc_fmt, cfg.overflow)))
            m.d.comb += getattr(out.payload, f"acc{n}").eq(acc)
            if cfg.acc_check == "residue":
                residue_pairs.append((acc, self._track_residue(m, n, acc, total, s)))
        with m.If(s["valid"]):
            m.d.sync += err.eq((err & ~s["clear"]) | ~mode_ok)
        m.d.comb += out.payload.err.eq(err)
        if cfg.acc_check == "residue":
            mismatch = [residue3(m, acc, name=f"r3_check{n}") != r
                        for n, (acc, r) in enumerate(residue_pairs)]
            m.d.comb += out.payload.fault.eq(Cat(mismatch).any())

    def _predicted_residues(self, m, a, b, mode):
        """``{r3_<n>: residue}``: per accumulator, ``sum(res(a_k) * res(b_k)) mod 3`` over the
        beat's products, from the input payload (before any datapath register), for the mode
        of the beat; an unknown mode code predicts 0, as its beat adds 0."""
        cfg = self.config
        lanes = []
        for lane in range(cfg.lanes):
            r = Signal(2, name=f"r3_lane{lane}")
            per_mode = [self._lane_residue(m, a, b, lane, code, fmt)
                        for code, fmt in enumerate(cfg.mode_formats)]
            with m.Switch(mode):
                for code, value in enumerate(per_mode):
                    with m.Case(code):
                        m.d.comb += r.eq(value)
            lanes.append(r)
        if cfg.reduction == "together":
            lanes = [fold3(m, lanes, name="r3_sum")]
        return {f"{self._RESIDUE}{n}": r for n, r in enumerate(lanes)}

    def _lane_residue(self, m, a, b, lane, code, fmt):
        """``sum(res(a_k) * res(b_k)) mod 3`` of one lane's products in mode ``fmt``."""
        cfg = self.config
        a_slot = a[lane * cfg.a_lane_bits:(lane + 1) * cfg.a_lane_bits]
        b_slot = b[lane * cfg.b_lane_bits:(lane + 1) * cfg.b_lane_bits]
        terms = []
        for k in range(cfg.products_per_lane(code)):
            x = a_slot[k * fmt.a.width:(k + 1) * fmt.a.width]
            y = b_slot[k * fmt.b.width:(k + 1) * fmt.b.width]
            tag = f"r3_m{code}_l{lane}_{k}"
            terms.append(mul3(residue3(m, x.as_signed() if fmt.a.signed else x, name=f"{tag}a"),
                              residue3(m, y.as_signed() if fmt.b.signed else y, name=f"{tag}b")))
        return fold3(m, terms, name=f"r3_m{code}_l{lane}")

    def _track_residue(self, m, n, acc, total, s):
        """Accumulator ``n``'s residue register, returned: ``r = ((0 if clear else r) + s3 -
        res(e - acc_next)) mod 3`` with ``e`` the exact sum before the overflow rule."""
        cfg = self.config
        w = cfg.acc_width
        r = Signal(2, name=f"r3_acc{n}")
        # what the accumulator adds; at least w + 1 bits wide (acc + total widens by one)
        exact = Mux(s["clear"], total, acc + total)
        if cfg.overflow == "wrap":
            # e - wrap(e) = (floor(e / 2**w) + e[w-1]) * 2**w: a few high bits, no subtractor
            overflowed = residue3(m, exact.shift_right(w) + exact[w - 1], name=f"r3_wrap{n}")
            correction = mul3(overflowed, (1 << w) % 3)
        else:
            clipped = exact - apply_overflow(exact, IntFormat(w, True), cfg.overflow)
            correction = residue3(m, clipped, name=f"r3_clip{n}")
        predicted = add3(m, Mux(s["r3_clear"], 0, r), s[f"{self._RESIDUE}{n}"],
                         name=f"r3_add{n}")
        # a datapath that did not add (its valid copy upset) applied no correction either
        residue_next = sub3(m, predicted, Mux(s["valid"], correction, 0), name=f"r3_next{n}")
        with m.If(s["r3_valid"]):
            m.d.sync += r.eq(residue_next)
        return r

    def _output_buffer(self, m):
        """The pipeline runs free; its results go out through an :class:`OutputBuffer` that
        holds a place for every ``last`` beat in flight (``latency + 1`` places: full rate
        while ``o`` is ready). Returns the buffer's write side, driven by the last stage."""
        m.submodules.obuf = buf = OutputBuffer(self.o.payload.shape(), self.config.latency + 1)
        m.d.comb += [self.i.ready.eq(buf.room),
                     buf.reserve.eq(self.i.valid & buf.room & self.i.payload.last)]
        wiring.connect(m, buf.o, wiring.flipped(self.o))
        return buf.w

    def _mode_cases(self, m, mode):
        """Yield ``(code, Mode)`` inside ``m.Case`` blocks of a switch on ``mode``; a build
        with one mode has no mode field and no switch."""
        if not self.config.mode_bits:
            yield 0, self.config.mode_formats[0]
            return
        with m.Switch(mode):
            for code, fmt in enumerate(self.config.mode_formats):
                with m.Case(code):
                    yield code, fmt

    def _plain_lane(self, m, stage, lane):
        """One multiplier per lane on element 0 of the lane, operands extended by mode."""
        cfg = self.config
        mode = stage["mode"] if cfg.mode_bits else None
        a_op = read_operand(m, stage["a"][lane * cfg.a_lane_bits:],
                            [f.a for f in cfg.mode_formats], mode, name=f"a_op{lane}")
        b_op = read_operand(m, stage["b"][lane * cfg.b_lane_bits:],
                            [f.b for f in cfg.mode_formats], mode, name=f"b_op{lane}")
        return [a_op * b_op]

    def _brick_source(self, fmt, i, j):
        """Where brick ``(i, j)`` of a lane reads its operands in mode ``fmt``:
        ``(a bit offset, a slice is signed, b bit offset, b slice is signed)``.

        The lane's bricks form a grid: ``i`` indexes 2-bit slices along ``a`` (``Wa/2`` of
        them), ``j`` along ``b``. In a ``wa x wb`` mode, ``i = ea * wa/2 + ia`` splits into an
        element row ``ea`` and slice ``ia`` (likewise ``j = eb * wb/2 + jb``); the brick
        multiplies slice ``ia`` of ``a[k]`` with slice ``jb`` of ``b[k]`` for product
        ``k = ea * (Wb/wb) + eb`` and weighs the result by ``4**(ia + jb)``. Only the top slice
        of a signed element is signed.
        """
        half_a, half_b = fmt.a.width // 2, fmt.b.width // 2
        ea, ia = divmod(i, half_a)
        eb, jb = divmod(j, half_b)
        k = ea * (self.config.b_max_width // fmt.b.width) + eb
        return (k * fmt.a.width + 2 * ia, fmt.a.signed and ia == half_a - 1,
                k * fmt.b.width + 2 * jb, fmt.b.signed and jb == half_b - 1)

    @property
    def _grid(self):
        return self.config.a_max_width // 2, self.config.b_max_width // 2

    def _brick_operands(self, m, a, b, mode):
        """Each brick's operands in the beat's mode, as stage fields: its 2-bit slices of
        ``a`` and ``b`` (``ba``/``bb{lane}_{i}{j}``) and whether each is signed (``sa``/``sb``:
        the Python bool every mode agrees on, or a signal the mode decode drives)."""
        cfg = self.config
        rows, cols = self._grid
        out = {}
        for lane in range(cfg.lanes):
            for i in range(rows):
                for j in range(cols):
                    tag = f"{lane}_{i}{j}"
                    a2, b2 = Signal(2, name=f"a{tag}"), Signal(2, name=f"b{tag}")
                    sources = [self._brick_source(f, i, j) for f in cfg.mode_formats]
                    # a sign flag that every mode agrees on is a constant, not a signal
                    sa = _flag(f"sa{tag}", {s[1] for s in sources})
                    sb = _flag(f"sb{tag}", {s[3] for s in sources})
                    for code, _fmt in self._mode_cases(m, mode):
                        a_off, a_sig, b_off, b_sig = sources[code]
                        m.d.comb += [a2.eq(a[lane * cfg.a_lane_bits + a_off:][:2]),
                                     b2.eq(b[lane * cfg.b_lane_bits + b_off:][:2])]
                        m.d.comb += [s.eq(v) for s, v in ((sa, a_sig), (sb, b_sig))
                                     if isinstance(s, Signal)]
                    out.update({f"ba{tag}": a2, f"bb{tag}": b2, f"sa{tag}": sa,
                                f"sb{tag}": sb})
        return out

    def _fused_bricks(self, m, stage, lane):
        """Brick products of one lane in grid order ``(i, j)``, row-major over ``i``."""
        rows, cols = self._grid
        products = []
        for i in range(rows):
            for j in range(cols):
                tag = f"{lane}_{i}{j}"
                sa, sb = (_constant_flag(stage[f"{k}{tag}"]) for k in ("sa", "sb"))
                products.append(_brick(m, stage[f"ba{tag}"], sa, stage[f"bb{tag}"], sb,
                                       name=f"brick{tag}"))
        return products

    def _fusion_flags(self, m, mode, axis):
        """Mode-decoded shift enables of the fusion tree along ``axis``: ``(axis, l)`` is high
        in modes whose ``axis`` operand width reaches ``2**(l+2)`` (bit ``l`` of the slice
        index is inside one element). Constant (no logic) when every mode agrees."""
        rows, cols = self._grid
        flags = {}
        for level in range((rows if axis == "a" else cols).bit_length() - 1):
            on = [getattr(f, axis).width >= 1 << (level + 2) for f in self.config.mode_formats]
            if all(on) or not any(on):
                flags[axis, level] = all(on)
                continue
            flag = Signal(name=f"fuse_{axis}{level}")
            for code, _fmt in self._mode_cases(m, mode):
                m.d.comb += flag.eq(on[code])
            flags[axis, level] = flag
        return flags

    def _fusion_tree(self, nodes, flags, axis, levels):
        """Fold a lane's fusion tree along ``axis`` by ``levels`` (a range of its levels). The
        tree sums the brick products, each weighed by ``4**(ia + jb)``: pairs of nodes that
        differ in one index bit are added, the upper one shifted by ``2**(l+1)`` when that bit
        lies inside an element in the current mode. Folding all of ``"a"`` turns the
        ``rows x cols`` brick grid into ``cols`` nodes (row-major ``rows' x cols`` after some
        of its levels); folding all of ``"b"`` then leaves the lane sum. Adders grow level by
        level, so the narrow low levels stay cheap."""
        cols = self._grid[1]
        if axis == "a":
            grid = [nodes[i:i + cols] for i in range(0, len(nodes), cols)]
            for level in levels:
                grid = [[_fuse(lo, hi, flags["a", level], 1 << (level + 1))
                         for lo, hi in zip(grid[2 * r], grid[2 * r + 1])]
                        for r in range(len(grid) // 2)]
            return [node for row in grid for node in row]
        for level in levels:
            nodes = [_fuse(nodes[2 * c], nodes[2 * c + 1], flags["b", level], 1 << (level + 1))
                     for c in range(len(nodes) // 2)]
        return nodes


    # -- element lanes (accumulate = "exact" or "fp32") ---------------------------------------

    def _elaborate_elements(self, m, out):
        """Decode, multiply, align, sum; then the exact accumulator and its FP32 rounding, or
        the beat's FP32 rounding and the FP32 accumulator. Stage ``fold`` holds the products
        shifted into the fixed-point window (element lanes have no fusion tree to fold)."""
        cfg = self.config
        depth = cfg.pipeline
        pipe = Pipeline(m, reset=self._CONTROL)
        p = self.i.payload
        s = dict(valid=self.i.valid & self.i.ready, a=p.a, b=p.b,
                 mode=p.mode if cfg.mode_bits else 0, clear=p.clear, last=p.last)
        if cfg.has_mx:
            s.update(scale_a=p.scale_a, scale_b=p.scale_b)
        s = vars(pipe.add_stage(s, name="opnd", present=depth >= 2))
        s = vars(pipe.add_stage(self._element_products(m, s), name="prod", present=depth >= 1))
        s = vars(pipe.add_stage(self._align(s), name="fold", present=depth >= 3))
        s = vars(pipe.add_stage(self._element_sums(s, "lane"), name="lane", present=depth >= 4))
        s = vars(pipe.add_stage(self._element_sums(s, "reduce"), name="sum",
                                present=depth >= 5))
        for extra in (6, 7):    # registers with no logic before them (retiming slack)
            s = vars(pipe.add_stage(s, name=f"slack{extra}", present=depth >= extra))
        if cfg.accumulate == "fp32":
            blocks = 0
            if cfg.has_mx:
                s, blocks = self._blocks(m, s), 1
            s = vars(pipe.add_stage(self._round_beats(m, s), name="round"))
            self._accumulate_fp32(m, out, s)
            stages = pipe.depth + blocks + 1
        else:
            self._accumulate_exact(m, out, s)
            stages = pipe.depth + 3
        if stages != cfg.latency:
            raise AssertionError(f"mac pipeline has {stages} stages, config.latency says "
                                 f"{cfg.latency}")

    def _slot_modes(self, k):
        """Mode codes whose beats use product slot ``k`` of a lane."""
        return [code for code in range(len(self.config.modes))
                if self.config.products_per_lane(code) > k]

    def _element_products(self, m, s):
        """Per lane and slot: the exact product as sign, significand product, shift (its
        exponent above ``product_exp``) and flags ``Cat(nan, +inf, -inf)``."""
        cfg = self.config
        out = self._carry(s)
        for lane in range(cfg.lanes):
            for k in range(cfg.elements_per_lane):
                a = self._decoded_slot(m, s, lane, k, "a")
                b = self._decoded_slot(m, s, lane, k, "b")
                zero_a = (a.sig == 0) & ~a.nan & ~a.inf
                zero_b = (b.sig == 0) & ~b.nan & ~b.inf
                nan = a.nan | b.nan | (a.inf & zero_b) | (b.inf & zero_a)
                inf = (a.inf | b.inf) & ~nan
                sign = a.sign ^ b.sign
                shift = Signal(range(self._max_shift(k) + 1), name=f"shift{lane}_{k}")
                m.d.comb += shift.eq(a.exp + b.exp - cfg.product_exp)
                out.update({f"s{lane}_{k}": sign, f"m{lane}_{k}": a.sig * b.sig,
                            f"e{lane}_{k}": shift,
                            f"f{lane}_{k}": Cat(nan, inf & ~sign, inf & sign)})
        return out

    def _max_shift(self, k):
        """Largest exponent of a slot-``k`` product's LSB above ``product_exp``."""
        cfg = self.config
        top = max(decode_range(f.a)[1] + decode_range(f.b)[1]
                  for f in (cfg.mode_formats[code] for code in self._slot_modes(k)))
        return top - cfg.product_exp

    def _decoded_slot(self, m, s, lane, k, operand):
        """Element ``k`` of ``lane`` of operand ``"a"``/``"b"`` decoded in the beat's mode
        (all zero in modes that leave the slot unused, and for unbuilt mode codes)."""
        cfg = self.config
        lane_bits = cfg.a_lane_bits if operand == "a" else cfg.b_lane_bits
        codes = self._slot_modes(k)
        formats = [getattr(cfg.mode_formats[c], operand) for c in codes]
        sig_bits = max(decode_range(f)[2] for f in formats)
        name = f"{operand}{lane}_{k}"
        # exponents of every format lie in [-150, 150]: signed(11) holds them and their sums
        d = SimpleNamespace(sign=Signal(name=f"{name}_sign"),
                            sig=Signal(sig_bits, name=f"{name}_sig"),
                            exp=Signal(signed(11), name=f"{name}_exp"),
                            nan=Signal(name=f"{name}_nan"), inf=Signal(name=f"{name}_inf"))
        for code, fmt in self._mode_cases(m, s["mode"]):
            if code not in codes:
                continue
            f = getattr(fmt, operand)
            src = decode_element(m, s[operand][lane * lane_bits + k * f.width:], f,
                                 name=f"{name}_m{code}")
            m.d.comb += [getattr(d, key).eq(getattr(src, key))
                         for key in ("sign", "sig", "exp", "nan", "inf")]
        return d

    def _align(self, s):
        """Each product shifted to its place in the window: a signed ``product_width`` value
        in units of ``2**product_exp``."""
        cfg = self.config
        out = self._carry(s)
        for lane in range(cfg.lanes):
            for k in range(cfg.elements_per_lane):
                mag = (s[f"m{lane}_{k}"] << s[f"e{lane}_{k}"])[:cfg.product_width - 1]
                out[f"v{lane}_{k}"] = Mux(s[f"s{lane}_{k}"], -mag, mag)
                out[f"f{lane}_{k}"] = s[f"f{lane}_{k}"]
        return out

    def _element_sums(self, s, level):
        """``lane``: each lane's slots added (values) and ORed (flags); ``reduce``: the lanes
        added into one accumulator when ``reduction="together"``."""
        cfg = self.config
        out = self._carry(s)
        if level == "lane":
            groups = {lane: [f"{lane}_{k}" for k in range(cfg.elements_per_lane)]
                      for lane in range(cfg.lanes)}
        elif cfg.reduction == "together":
            groups = {0: [str(lane) for lane in range(cfg.lanes)]}
        else:
            groups = {lane: [str(lane)] for lane in range(cfg.lanes)}
        for n, keys in groups.items():
            out[f"v{n}"] = sum_tree([s[f"v{key}"] for key in keys])
            flags = [s[f"f{key}"] for key in keys]
            out[f"f{n}"] = flags[0] if len(flags) == 1 else _or_all(flags)
        return out

    def _wide_format(self):
        """The exact accumulator's format (``s<acc_width>``; may exceed IntFormat's limit)."""
        w = self.config.acc_width
        return SimpleNamespace(width=w, signed=True, min=-(1 << (w - 1)), max=(1 << (w - 1)) - 1)

    def _special(self, flags, finite):
        """FP32 code: NaN if NaN or both infinities are flagged, else the infinity, else
        ``finite``."""
        nan, pos, neg = flags[0], flags[1], flags[2]
        return Mux(nan | (pos & neg), FP32_NAN,
                   Mux(pos, FP32_INF, Mux(neg, FP32_INF | 1 << 31, finite)))

    def _blocks(self, m, s):
        """MX configs: the running block (see the golden model's ``_Block``) as one register
        stage. Each valid beat adds its exact sum to the running block sum (or starts a new
        one: after a block ended, or on ``clear``); the stage's registers hold the block sum
        including the beat, whether the beat ends the block, whether the block replaces the
        accumulator, and the beat's control fields and scales."""
        cfg = self.config
        total, flags = s["v0"], s["f0"]
        run_sum = Signal(signed(len(total) + max(cfg.block, 2).bit_length()), name="block_sum")
        run_flags, run_replace = Signal(3, name="block_flags"), Signal(name="block_replace")
        running = Signal(name="block_running")
        run_count = Signal(range(cfg.block + 1), name="block_count")
        mx, full = Signal(name="beat_is_mx"), Signal(name="block_full")
        start = s["clear"] | ~running
        count = Mux(start, 0, run_count) + 1
        for code, fmt in self._mode_cases(m, s["mode"]):
            m.d.comb += [mx.eq(fmt.is_mx), full.eq(count == cfg.beats_per_block(code))]
        end = s["last"] | ~mx | full
        new = {"v0": Mux(start, 0, run_sum) + total, "f0": Mux(start, 0, run_flags) | flags,
               "replace": s["clear"] | (~start & run_replace), "end": end, "mx": mx}
        with m.If(s["valid"]):
            m.d.sync += [run_sum.eq(new["v0"]), run_flags.eq(new["f0"]), run_count.eq(count),
                         run_replace.eq(new["replace"]), running.eq(~end)]
        # the stage register: valid loads on every enabled cycle, the rest with a beat
        out = {"valid": register(m, s["valid"], name="block_valid")}
        for key, value in {**self._carry(s), **new}.items():
            if key != "valid":
                out[key] = register(m, value, enable=s["valid"], name=f"block_{key}")
        return out

    def _round_beats(self, m, s):
        """fp32: each accumulator's beat (or MX block) sum rounded to FP32, specials by the
        flags; MX blocks are scaled by ``2**(scale_a + scale_b - 254)`` first (NaN if a scale
        is 255). Also passes on when the accumulator takes the result (``add``) and whether
        the result replaces it (``replace``)."""
        cfg = self.config
        out = self._carry(s)
        exp, exp_min, scale_nan = cfg.product_exp, None, Const(0, 1)
        if cfg.has_mx:
            exp_min = cfg.product_exp - 2 * E8M0_BIAS
            exp = Signal(signed(12), name="block_exp")
            m.d.comb += exp.eq(cfg.product_exp + Mux(s["mx"], s["scale_a"] + s["scale_b"]
                                                     - 2 * E8M0_BIAS, 0))
            scale_nan = s["mx"] & ((s["scale_a"] == E8M0_NAN) | (s["scale_b"] == E8M0_NAN))
            out.update(add=s["valid"] & s["end"], replace=s["replace"])
        else:
            out.update(add=s["valid"], replace=s["clear"])
        for n in range(cfg.accumulators):
            total = s[f"v{n}"]
            neg = total < 0
            rounded = round_fp32(m, Mux(neg, -total, total)[:len(total)], exp, neg,
                                 exp_min=exp_min, name=f"beat{n}")
            flags = s[f"f{n}"] | scale_nan
            out[f"r{n}"] = self._special(flags, rounded)
        return out

    def _mode_ok(self, s):
        cfg = self.config
        return s["mode"] < len(cfg.modes) if cfg.mode_bits else Const(1, 1)

    def _accumulate_fp32(self, m, out, s):
        """``acc = s if clear else fp32(acc + s)``; the accumulators are ``out.payload``, valid
        after a ``last`` beat."""
        cfg = self.config
        accs = [Signal(32, name=f"acc{n}") for n in range(cfg.accumulators)]
        totals = [add_fp32(m, acc, s[f"r{n}"], name=f"acc_add{n}") for n, acc in enumerate(accs)]
        err = Signal()
        m.d.sync += out.valid.eq(s["valid"] & s["last"])
        with m.If(s["add"]):
            for n, (acc, total) in enumerate(zip(accs, totals)):
                m.d.sync += acc.eq(Mux(s["replace"], s[f"r{n}"], total))
        with m.If(s["valid"]):
            m.d.sync += err.eq((err & ~s["clear"]) | ~self._mode_ok(s))
        m.d.comb += [getattr(out.payload, f"acc{n}").eq(acc) for n, acc in enumerate(accs)]
        m.d.comb += out.payload.err.eq(err)

    def _accumulate_exact(self, m, out, s):
        """The fixed-point accumulators with sticky special flags; then a register stage with
        each result's magnitude, sign and leading-zero count; then the output register with
        their FP32 rounding (the two stages split the wide negate, count, shift and round)."""
        cfg = self.config
        fmt = self._wide_format()
        W = cfg.acc_width
        accs = [Signal(signed(W), name=f"acc{n}") for n in range(cfg.accumulators)]
        flags = [Signal(3, name=f"acc_flags{n}") for n in range(cfg.accumulators)]
        mags = [Signal(W, name=f"r1_mag{n}") for n in range(cfg.accumulators)]
        signs = [Signal(name=f"r1_sign{n}") for n in range(cfg.accumulators)]
        r1_flags = [Signal(3, name=f"r1_flags{n}") for n in range(cfg.accumulators)]
        counts, zeros = [], []
        results = []
        for n in range(cfg.accumulators):
            magnitude = Signal(W, name=f"acc_mag{n}")
            m.d.comb += magnitude.eq(Mux(accs[n] < 0, -accs[n], accs[n]))
            count, zero = leading_zeros(magnitude, m, name=f"acc_lz{n}")
            counts.append(Signal.like(count, name=f"r1_count{n}"))
            zeros.append(Signal(name=f"r1_zero{n}"))
            rounded = round_fp32(m, mags[n], cfg.product_exp, signs[n],
                                 lz=(counts[n], zeros[n]), name=f"result{n}")
            # per accumulator: what R1 registers (count, zero, magnitude) and the output's
            # FP32 code (from R1's registers)
            results.append(SimpleNamespace(count=count, zero=zero, magnitude=magnitude,
                                           code=self._special(r1_flags[n], rounded)))
        err, done, r1_valid, r1_err, out_err = (Signal(name=n) for n in
                                                ("err", "done", "r1_valid", "r1_err", "out_err"))
        m.d.sync += done.eq(s["valid"] & s["last"])
        with m.If(s["valid"]):
            for n, (acc, flag) in enumerate(zip(accs, flags)):
                base = Mux(s["clear"], 0, acc)
                m.d.sync += [acc.eq(apply_overflow(base + s[f"v{n}"], fmt, cfg.overflow)),
                             flag.eq(Mux(s["clear"], 0, flag) | s[f"f{n}"])]
            m.d.sync += err.eq((err & ~s["clear"]) | ~self._mode_ok(s))
        # R1: the accumulators as they stand after a last beat, as magnitude and sign
        m.d.sync += r1_valid.eq(done)
        with m.If(done):
            for n, (acc, flag, r) in enumerate(zip(accs, flags, results)):
                m.d.sync += [mags[n].eq(r.magnitude), signs[n].eq(acc < 0),
                             r1_flags[n].eq(flag), counts[n].eq(r.count),
                             zeros[n].eq(r.zero)]
            m.d.sync += r1_err.eq(err)
        # the output register: their FP32 rounding
        m.d.sync += out.valid.eq(r1_valid)
        with m.If(r1_valid):
            for n, r in enumerate(results):
                m.d.sync += getattr(out.payload, f"acc{n}").eq(r.code)
            m.d.sync += out_err.eq(r1_err)
        m.d.comb += out.payload.err.eq(out_err)

def _or_all(values):
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out


def _fuse(lo, hi, flag, shift):
    """``lo + (hi << shift if flag else hi)``; ``flag`` may be a constant."""
    if isinstance(flag, bool):
        return lo + (hi << shift if flag else hi)
    return lo + Mux(flag, hi << shift, hi)


def _flag(name, values):
    """The sign flag of a brick operand: the Python bool every mode agrees on, or a signal
    the mode decode drives."""
    return values.pop() if len(values) == 1 else Signal(name=name)


def _constant_flag(value):
    """A flag that passed a pipeline stage: a constant one is a Python bool again."""
    return bool(value.value) if isinstance(value, Const) else value


def _brick(m, a2, sa, b2, sb, *, name):
    """2-bit x 2-bit product as a truth table (a 5-bit signed result). Each operand is read as
    signed when its flag (a constant or a signal) is set. A table, not ``*``: yosys would map
    even this tiny multiplier to a DSP block. Constant flags are not part of the table's
    index, so the table covers every index value: a case statement with cases that constant
    flags rule out would be pruned by yosys into one without a default, which Verilator's
    lint reads as a latch."""
    # index bits: a2, then sa if it is a signal, b2, then sb if it is a signal
    parts = [(a2, "a"), (sa, "sa"), (b2, "b"), (sb, "sb")]
    parts = [(v, n) for v, n in parts if not isinstance(v, bool)]
    index = Cat(*[v for v, _ in parts])
    prod = Signal(signed(5), name=name)
    with m.Switch(index):
        for code in range(1 << len(index)):
            value, offset = {"sa": sa, "sb": sb}, 0
            for v, n in parts:
                value[n] = code >> offset & (3 if n in ("a", "b") else 1)
                offset += len(v)
            a = value["a"] - (4 if value["sa"] and value["a"] & 2 else 0)
            b = value["b"] - (4 if value["sb"] and value["b"] & 2 else 0)
            with m.Case(code):
                m.d.comb += prod.eq(a * b)
    return prod
