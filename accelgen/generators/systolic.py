"""Config and presets of block ``systolic``: an R x C systolic GEMM engine with a tiling
controller, B-panel buffers, an accumulator memory and an optional requantizing output stage.

The golden model in :mod:`accelgen.sim.golden.systolic` is the definition of everything below;
this docstring is its specification.

Streams (payload fields are listed by :attr:`SystolicConfig.cmd_fields` etc., LSB first)
    ``cmd`` (in)  one beat per GEMM command: ``m``, ``k``, ``n``, ``accumulate``, ``preload``,
                  ``output``,
                  ``dataflow`` (only when two are built), ``mode`` (only when several are
                  built) and, when ``requant`` is built, ``mult``, ``shift``, ``zero_point``,
                  ``relu``, ``out_signed``.
    ``a``   (in)  operand A as R-element beats (element ``i`` at bits ``i*Wa``; ``Wa`` the widest
                  ``a`` format of the modes; each element is read in the command mode's ``a``
                  format, the bits above that format's width are ignored).
    ``b``   (in)  operand B as C-element beats, the same way with the ``b`` formats.
    ``c``   (in)  with ``preload``: the initial accumulators ``C`` (M x N) as rows of C lanes of
                  ``s<acc_width>``, one beat per result row in the order of ``o``.
    ``o``   (out) result rows: ``c`` = C lanes of ``s<acc_width>`` (requantized results
                  sign-extended into them) and ``last`` (on each command's final row).
    ``rsp`` (out) one beat per command after its last ``o`` beat: ``err`` and the performance
                  counters ``cycles``, ``busy``, ``stall_a``, ``stall_b``, ``stall_out``,
                  ``macs``.

Command ``(M, K, N)`` computes ``Y = A (M x K) . B (K x N)`` in mode ``mode``. Let
``NB = ceil(N / C)``, ``MB = ceil(M / R)``, ``KB = ceil(K / R)``.

Order of the ``b`` beats (both dataflows): for each column block ``nb`` in ``0..NB-1``, for each
``k`` in ``0..K-1``: ``B[k, nb*C : nb*C+C]`` (lanes past ``N`` are ignored by the hardware:
any value).
Order of the ``a`` beats:

* output-stationary (``"os"``): for ``nb``, for ``mb`` in ``0..MB-1``, for ``k`` in
  ``0..K-1``: the column segment ``A[mb*R : mb*R+R, k]``;
* weight-stationary (``"ws"``): for ``nb``, for ``kb`` in ``0..KB-1``, for ``m`` in
  ``0..M-1``: the row segment ``A[m, kb*R : kb*R+R]``.

Elements past ``M`` (os) or ``K`` (ws) are ignored by the hardware (any value). A is streamed
once per column block (``NB`` times in all), B once.

Accumulator memory
    ``acc_depth`` rows of C signed ``acc_width`` lanes. Result row ``r = nb*M + m`` (lanes
    ``j`` = column ``nb*C + j``) lives at address ``r mod acc_depth``. The memory is not
    cleared by reset. A ``preload`` command first writes its ``c`` beats into its rows (lanes
    past ``N`` are ignored by the hardware and written as 0) and then runs as if
    ``accumulate`` were set: ``Y = A . B + C``. Per row, with ``init`` = the row's memory
    contents if ``accumulate`` (or ``preload``) else zeros, and ``P(k0, k1)`` = the exact sum
    of products over ``k0 <= k < k1``:

    * os: ``row = ovf(init + P(0, K))`` (the PE accumulates exactly; one overflow step);
    * ws: ``row = init``; for each ``kb``: ``row = ovf(row + P(kb*R, min(K, kb*R+R)))``;

    where ``ovf`` is ``overflow`` (wrap or saturate) into ``s<acc_width>``, applied lane by lane.
    Lanes past ``N`` hold ``ovf(init + 0)``. The row is written back, then (unless ``output``
    is ``none``) sent on ``o`` in order of ``r``, with lanes past ``N`` sent as 0; ``o.last``
    is set on the command's final ``o`` beat (row ``NB*M - 1``) only.

Output stage (``output`` field): 0 ``raw`` sends the accumulators; 1 ``requant`` sends
    ``y = sat_out((max(q, 0) if relu else q) + zero_point)`` with
    ``q = round_shift(acc * mult, shift, rounding)`` (:func:`accelgen.numerics.requantize`),
    ``sat_out`` saturating to ``s8`` (``out_signed``) or ``u8``, sign-extended into the full
    ``s<acc_width>`` lane of ``o.c`` (a ``u8`` value, never negative, has zeros above its 8
    bits); 2 ``none`` sends nothing (the results stay in the accumulator memory for a later
    ``accumulate`` command).

Float modes (``modes`` of :data:`FLOAT_MODE_FORMATS`, e.g. ``e4m3``, ``e5m2``, ``bf16``,
    ``e4m3e5m2``; ``acc_width`` 32)
    Elements are codes of the mode's formats (decoded once at the array's edges). The memory
    lanes, ``c`` and raw ``o`` lanes are FP32 codes. Each product ``a*b`` is rounded to FP32
    (nearest, ties to even; exact for every pair of formats except BF16 products that leave the
    FP32 range: they round to a subnormal, zero or inf); NaN if an operand is NaN or inf times
    zero. ``add`` below is the IEEE binary32 addition (round to nearest even, subnormals
    kept, ``x + (-x) = +0``); every NaN result is the FP32 NaN ``0x7fc00000``. With
    ``P(k0, k1)`` = ``((+0 add p[k0]) add p[k0+1]) ... add p[k1-1]`` in ``k`` order and
    ``init`` = the row's memory contents with ``accumulate``/``preload``, else ``+0``:

    * os: ``row = init add P(0, K)``;
    * ws: ``row = init``; for each ``kb``: ``row = row add P(kb*R, min(K, kb*R+R))``.

    Lanes past ``N`` are computed as if B held ``+0`` there (an infinite or NaN A element makes
    them NaN); ``overflow`` does not apply (IEEE overflow gives inf). Output ``requant``
    sends ``convert(relu(x) * 2**scale)``: ``relu`` maps every value with the sign bit set
    but NaN to +0, the power-of-two scaling is exact, and ``convert`` rounds once to
    ``out_format`` exactly as the ``cast`` block does (``out_saturate`` as its ``saturate``),
    the code zero-extended into the 32-bit lane. The ``cmd`` fields ``mult``, ``shift``,
    ``zero_point``, ``out_signed`` are replaced by ``scale`` (signed, 8 bits) and ``relu``.

Errors (``rsp.err``; an erroneous command consumes no ``a``/``b``/``c`` beats, sends no ``o`` beats
and leaves the memory untouched; its counters are zero)
    ``0`` ok; ``1`` ``m``, ``k`` or ``n`` is zero; ``2`` ``k > k_max``; ``3`` the results do
    not fit the accumulator memory: ``NB*M > acc_depth`` with ``accumulate``, ``preload`` or
    output ``none``, or ``M > acc_depth`` in ``ws`` with ``K > R``; ``4`` unsupported: a dataflow or
    mode code that is not built, output code 3, or ``requant`` when it is not built. When
    several hold, the first in the order 1, 4, 2, 3 (:data:`ERROR_PRECEDENCE`) is reported.
    ``5`` (``abft`` builds only) checksum mismatch: a drained result row disagreed with its
    ABFT checksum (see below). Unlike 1 to 4 it is found while the command runs: the command
    consumed its beats, wrote the memory and sent all its ``o`` beats as usual (possibly
    corrupted ones), its counters are the normal ones, and only ``err`` differs; it is
    reported only when no other code applies (a command with err 1 to 4 never runs).

Algorithm-based fault tolerance (``abft``; integer modes with ``overflow = "wrap"`` only)
    The array gets a checksum column: B is extended to ``B' = [B | B.e]``. As each ``b`` beat
    is written into the B-panel buffer, its checksum element ``sum_j B[k, nb*C + j]`` (the
    elements read in the command's mode, lanes past N as 0; ``b`` operand bits plus
    ``ceil(log2(C))``, exact) is formed and stored beside it. An extra column of R PEs
    computes ``A . (B . e)`` with the data columns (same skew, same tags, os and ws), and each
    accumulator-memory row has an extra checksum lane (``s<acc_width>``) that follows the
    same read-modify-write: it is zeroed with the row on overwrite, a preloaded row's
    checksum lane is written with the sum of its C preloaded lanes (lanes past N as 0), and
    accumulation adds the checksum column's sum, wrapping at ``2**acc_width`` like the data
    lanes. Hence, without faults, every memory row written by this block satisfies
    ``sum_j lane_j = checksum  (mod 2**acc_width)`` over all C lanes (lanes past N
    included); wrap is modular arithmetic, so every overflow step of os and ws keeps it
    (saturation and float rounding do not, hence the restriction). At drain each row's C
    lanes (raw, before the requantizer and before lanes past N are zeroed) are summed modulo
    ``2**acc_width`` and compared with its checksum lane; a mismatch makes the command's
    ``rsp.err`` 5. Output ``none`` drains nothing and checks nothing (a later command that
    accumulates onto the rows and drains them checks them). An ``accumulate`` onto a row not
    written since the memory's power-up reads an undefined checksum (block RAMs power up as
    zeros, which pass). A column checksum detects errors in the B panel (after the write),
    in the array's data columns, in the accumulator memory and its read-modify-write; it
    cannot see a fault in ``A`` (every column sees the same corrupted ``a``), and a fault
    in the checksum path alone is a false alarm (correct rows, err 5).
    Timing: no cycle of any command changes (the check runs beside the drain: two pipeline
    registers after the row's read data, which finish before the command's last ``o`` beat
    can leave the output FIFO).

Counters (``counter_width`` bits, wrapping; per command, from the cycle the command is accepted
to the cycle before ``rsp.valid``): ``cycles``; ``busy`` = cycles a step entered the array;
``stall_a`` = cycles a step waited for an ``a`` beat; ``stall_b`` = cycles a step (or a
weight load) waited for a B panel; ``stall_out`` = cycles a step waited for accumulator
memory space (output backpressure); ``macs`` = ``M*K*N``. Utilization = ``macs / (R*C*cycles)``.
"""

from dataclasses import dataclass, replace
from functools import cached_property

from ..numerics import ConfigError, Overflow, Rounding, requantizer_latency
from .base import (ArrayLayout, Config, Field, ProofContract, check_bool, check_choice, check_int,
                   check_str_list)
from ..formats import FLOAT_FORMATS, FP32, POSIT_FORMATS
from .mac import Mode, _signed_width

__all__ = ["SystolicConfig", "PRESETS", "DATAFLOWS", "OUTPUTS", "ERRORS", "ERROR_PRECEDENCE",
           "ABFT_ERROR", "ABFT_ERRORS"]

DATAFLOWS = ("os", "ws")
OUTPUTS = ("raw", "requant", "none")        #: ``output`` field codes 0, 1, 2
ERRORS = {0: "ok", 1: "zero dimension", 2: "k beyond k_max",
          3: "results beyond the accumulator memory", 4: "unsupported command"}
#: the order the error conditions are checked in: when several hold, the first is reported
ERROR_PRECEDENCE = (1, 4, 2, 3)
#: ``abft`` builds: the error code of a result row that disagrees with its checksum
ABFT_ERROR = 5
ABFT_ERRORS = {ABFT_ERROR: "checksum mismatch"}
MODE_WIDTHS = (4, 8)
MAX_MODES = 8
SHIFT_BITS = 6
COUNTERS = ("cycles", "busy", "stall_a", "stall_b", "stall_out", "macs")
#: element formats of float modes (any pair of them is a mode too, e.g. ``e4m3e5m2``)
FLOAT_MODE_FORMATS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "bf16", "fp16")
#: what output ``requant`` converts FP32 results to in float builds (the ``cast`` targets)
OUT_FORMATS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "bf16", "fp16", "p4", "p8", "p16")
ELEMENT_EXP_BITS = 10    #: float modes: signed exponent bits of a decoded element
SCALE_BITS = 8          #: float builds: the ``scale`` field (a signed power of two)


#: the float accumulation semantics, as ``accelgen show`` states it
ACCUMULATION_FLOAT = ("fp32 per step: each product rounded to FP32 (exact unless a bf16 "
                      "product leaves the FP32 range), added to an FP32 sum in k order (os: "
                      "one PE sum per result, then one FP32 add into the memory row; ws: one "
                      "chain sum per K-block of rows products, each added to the row in "
                      "FP32), RNE, subnormals kept")


def _parse_mode(text):
    """A systolic mode: integer with 4- or 8-bit operands, or float of
    :data:`FLOAT_MODE_FORMATS`; :class:`ConfigError` naming ``modes`` otherwise."""
    mode = Mode.parse(text, integer_only=False)
    for fmt in (mode.a, mode.b):
        if mode.is_int and fmt.width not in MODE_WIDTHS:
            raise ConfigError(f"modes: {mode.name!r} has a {fmt.width}-bit operand; systolic "
                              f"operand widths must be 4 or 8")
        if not mode.is_int and fmt.name not in FLOAT_MODE_FORMATS:
            raise ConfigError(f"modes: {text!r} is not allowed; systolic float modes take "
                              f"{', '.join(FLOAT_MODE_FORMATS)} (or a pair, e.g. 'e4m3e5m2'), "
                              f"not posit or MX formats")
    return mode


@dataclass(frozen=True, kw_only=True)
class SystolicConfig(Config):
    """Parameters of a ``systolic`` block. See the module docstring for the semantics.

    Members
    -------
    rows, cols : int
        Array size R x C (1 to 32 each).
    modes : tuple of str
        Operand formats (``mac`` mode names with 4- or 8-bit operands, e.g. ``"s8s8"``,
        ``"u8s8"``, ``"s4s4"``; or float modes of :data:`FLOAT_MODE_FORMATS`, e.g. ``"e4m3"``,
        ``"bf16"``, ``"e4m3e5m2"``; 1 to 8, each once, all integer or all float); the
        command's ``mode`` field holds the index.
    dataflows : tuple of str
        ``"os"`` (output-stationary) and/or ``"ws"`` (weight-stationary); a one-dataflow build
        has none of the other's hardware, a two-dataflow build picks one per command.
    acc_width : int
        Accumulator-memory lane width (the widest product's width to 48; 32 with float
        modes, whose accumulators are FP32).
    overflow : ``"wrap"`` or ``"saturate"``
    k_max : int
        Depth of each of the two B-panel buffers: the largest ``k`` of a command (1 to 65535).
    acc_depth : int
        Accumulator memory rows (a power of two, from ``rows`` to 65536).
    a_depth : int
        Beats of ``a`` buffered between the stream and the feeder (3 to 1024; with fewer the
        steps would halve: a beat spends two cycles on the way, and ``a.ready`` is decided a
        cycle ahead). The FIFO is one beat deeper: ``a.ready`` is a register computed without
        knowing the feeder's read.
    requant : bool
        Build the requantizing output stage (``True`` or ``False``, not ``1``/``0``).
    mult_bits : int
        Width of the unsigned requantization multiplier ``mult`` (1 to 32).
    rounding : str
        Rounding of the requantization shift (an :class:`~accelgen.numerics.Rounding` value).
    pe_pipeline : int
        0: the PE multiplies and accumulates in one cycle; 1: a product register between
        multiplier and adder (on ECP5 the DSP's output register); 2: a second one, in the
        fabric beside the adder (the route out of the DSP column gets a cycle of its own).
    lut_rows : int
        PE rows (counted from the bottom) whose multipliers are built from LUTs and carry
        chains instead of DSP blocks (0 to ``rows``): lets an array use more multipliers than
        the FPGA has DSPs (ECP5-85F: 156 MULT18X18D; a 16x16 int8 array needs 256).
    rom_rows : int
        PE rows (counted up from the ``lut_rows`` rows) whose multipliers are tables of
        quarter squares in block RAM, ``a * b = floor((a + b)**2 / 4) - floor((a - b)**2 / 4)``
        (0 to ``rows - lut_rows``): on ECP5 one ``DP16KD`` and one carry chain per PE instead
        of a DSP block or about 100 LUT4s. Same timing as the other rows.
    dim_bits : int
        Width of the command's ``m``, ``k``, ``n`` fields (4 to 24).
    counter_width : int
        Width of each performance counter (16 to 48).
    out_format : str
        Float modes: the format output ``requant`` converts the FP32 results to (one of
        :data:`OUT_FORMATS`; integer builds check it with ``out_saturate`` but do not use it).
    out_saturate : bool
        Float modes: the conversion saturates (overflow and infinities to the largest finite
        value; posit formats always do) instead of giving inf or NaN, as the ``cast`` block's
        ``saturate``.
    abft : bool
        Build algorithm-based fault tolerance (``True`` or ``False``): a checksum column of R
        PEs, a checksum lane per B-panel row and per accumulator-memory row, and the check at
        drain that reports ``rsp.err`` 5 (see the module docstring). Integer modes with
        ``overflow = "wrap"`` only.
    """
    rows: int = 4
    cols: int = 4
    modes: tuple = ("s8s8",)
    dataflows: tuple = ("os",)
    acc_width: int = 32
    overflow: str = "wrap"
    k_max: int = 64
    acc_depth: int = 64
    a_depth: int = 4
    requant: bool = False
    mult_bits: int = 16
    rounding: str = "half_up"
    pe_pipeline: int = 1
    lut_rows: int = 0
    rom_rows: int = 0
    dim_bits: int = 16
    counter_width: int = 32
    out_format: str = "e4m3"
    out_saturate: bool = True
    abft: bool = False

    def __post_init__(self):
        check_int("rows", self.rows, 1, 32)
        check_int("cols", self.cols, 1, 32)
        modes = check_str_list("modes", self.modes, "['s8s8', 's4s4']")
        parsed = [_parse_mode(m) for m in modes]
        names = [mode.name for mode in parsed]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"modes: {list(modes)!r} lists mode {twice[0]!r} more than once "
                              f"(as spelled, or in another spelling); each mode once")
        if len({mode.is_int for mode in parsed}) > 1:
            raise ConfigError(f"modes: {list(modes)!r} mixes integer and float modes; a "
                              f"systolic array is built for one or the other")
        object.__setattr__(self, "modes", tuple(m.name for m in parsed))
        if len(self.modes) > MAX_MODES:
            raise ConfigError(f"modes: {list(self.modes)!r} lists {len(self.modes)} modes; at "
                              f"most {MAX_MODES} are allowed")
        flows = check_str_list("dataflows", self.dataflows, "['os', 'ws']")
        for flow in flows:
            check_choice("dataflows", flow, DATAFLOWS)
        object.__setattr__(self, "dataflows", tuple(f for f in DATAFLOWS if f in flows))
        check_choice("overflow", self.overflow, [o.value for o in Overflow])
        if self.is_float:
            if isinstance(self.acc_width, bool) or not isinstance(self.acc_width, int) \
                    or self.acc_width != 32:
                raise ConfigError(f"acc_width: {self.acc_width!r} is not allowed with float "
                                  f"modes; the accumulators are FP32, expected 32")
        else:
            check_int("acc_width", self.acc_width, self.product_width, 48)
        check_choice("out_format", self.out_format, OUT_FORMATS)
        check_bool("out_saturate", self.out_saturate)
        if self.out_format in POSIT_FORMATS and not self.out_saturate:
            raise ConfigError(f"out_saturate: False is not allowed with posit out_format "
                              f"{self.out_format!r}; posits never overflow, expected true")
        check_int("dim_bits", self.dim_bits, 4, 24)
        check_int("k_max", self.k_max, 1, min(65535, (1 << self.dim_bits) - 1))
        check_int("acc_depth", self.acc_depth, self.rows, 65536)
        if self.acc_depth & (self.acc_depth - 1):
            raise ConfigError(f"acc_depth: {self.acc_depth!r} is not allowed; expected a power "
                              f"of two from {self.rows} to 65536")
        check_int("a_depth", self.a_depth, 3, 1024)
        check_bool("requant", self.requant)
        check_int("mult_bits", self.mult_bits, 1, 32)
        if self.requant and not self.is_float and self.acc_width + self.mult_bits > 62:
            raise ConfigError(f"mult_bits: {self.mult_bits!r} is not allowed with acc_width "
                              f"{self.acc_width}; acc_width + mult_bits must be at most 62")
        check_choice("rounding", self.rounding, [r.value for r in Rounding])
        check_int("pe_pipeline", self.pe_pipeline, 0, 2)
        check_int("lut_rows", self.lut_rows, 0, self.rows)
        check_int("rom_rows", self.rom_rows, 0, self.rows - self.lut_rows)
        for name in ("lut_rows", "rom_rows"):
            if self.is_float and getattr(self, name):
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not allowed with float "
                                  f"modes (their significand multipliers are small); expected 0")
        check_int("counter_width", self.counter_width, 16, 48)
        check_bool("abft", self.abft)
        if self.abft and (self.is_float or self.overflow != "wrap"):
            why = "float modes" if self.is_float else f"overflow={self.overflow!r}"
            raise ConfigError(f"abft: True is not allowed with {why}; abft needs integer modes "
                              f"and overflow='wrap' (its checksums hold modulo "
                              f"2**acc_width), expected False")

    # -- derived values ---------------------------------------------------------------------

    @cached_property
    def mode_formats(self):
        return tuple(Mode.parse(m, integer_only=False) for m in self.modes)

    @property
    def is_float(self):
        """Float modes: decoded elements, FP32 products and FP32 accumulation."""
        return not self.mode_formats[0].is_int

    @property
    def element_sig_bits(self):
        """Float modes: bits of the widest decoded significand (hidden bit included)."""
        return max(f.sig_bits for m in self.mode_formats for f in (m.a, m.b))

    @property
    def out_target(self):
        """The :mod:`accelgen.formats` format of output ``requant`` in float builds."""
        return {**FLOAT_FORMATS, **POSIT_FORMATS}[self.out_format]

    @property
    def a_width(self):
        """Bits per ``a`` element slot (the widest ``a`` format)."""
        return max(m.a.width for m in self.mode_formats)

    @property
    def b_width(self):
        return max(m.b.width for m in self.mode_formats)

    @property
    def operand_width(self):
        """Width the array carries operands in: integers signed (9 bits when any 8-bit operand
        is unsigned); float modes decoded, ``Cat(sig, exp, sign, nan, inf)`` with a
        :data:`ELEMENT_EXP_BITS`-bit signed exponent."""
        if self.is_float:
            return self.element_sig_bits + ELEMENT_EXP_BITS + 3
        return max(f.width + (0 if f.signed else 1)
                   for m in self.mode_formats for f in (m.a, m.b))

    @property
    def product_min(self):
        return min(m.product_min for m in self.mode_formats)

    @property
    def product_max(self):
        return max(m.product_max for m in self.mode_formats)

    @property
    def product_width(self):
        """Signed bits of any single product of any mode (float modes: 32, an FP32 code)."""
        if self.is_float:
            return 32
        return _signed_width(self.product_min, self.product_max)

    @property
    def os_acc_width(self):
        """Width of an output-stationary PE accumulator: exact for ``k_max`` products (or
        ``acc_width`` if that is narrower and the overflow is ``wrap``); float modes: 32."""
        if self.is_float:
            return 32
        exact = _signed_width(self.k_max * self.product_min, self.k_max * self.product_max)
        return min(exact, self.acc_width) if self.overflow == "wrap" else exact

    @property
    def ws_sum_width(self):
        """Width of the weight-stationary partial-sum chain: exact for ``rows`` products
        (float modes: 32)."""
        if self.is_float:
            return 32
        exact = _signed_width(self.rows * self.product_min, self.rows * self.product_max)
        return min(exact, self.acc_width) if self.overflow == "wrap" else exact

    @property
    def errors(self):
        """``{code: meaning}`` of ``rsp.err`` in this build: :data:`ERRORS`, and
        :data:`ABFT_ERRORS` with ``abft``."""
        return {**ERRORS, **ABFT_ERRORS} if self.abft else dict(ERRORS)

    @property
    def b_operand_width(self):
        """Signed bits of any ``b`` element of any integer mode, read as the array reads it."""
        return max(m.b.width + (0 if m.b.signed else 1) for m in self.mode_formats)

    @property
    def abft_operand_width(self):
        """``abft``: signed bits of a checksum element, the exact sum of C ``b`` elements."""
        return self.b_operand_width + (self.cols - 1).bit_length()

    @property
    def abft_product_width(self):
        """``abft``: signed bits of a checksum PE's product ``a * sum_j b_j`` (exact, at most
        ``acc_width``: the checksum only holds modulo ``2**acc_width``)."""
        C = self.cols
        return min(_signed_width(C * self.product_min, C * self.product_max), self.acc_width)

    @property
    def abft_os_acc_width(self):
        """``abft``: the checksum PEs' os accumulator (exact for ``k_max`` products, at most
        ``acc_width``)."""
        C, K = self.cols, self.k_max
        return min(_signed_width(K * C * self.product_min, K * C * self.product_max),
                   self.acc_width)

    @property
    def abft_ws_sum_width(self):
        """``abft``: the checksum column's ws partial sums (exact for ``rows`` products, at
        most ``acc_width``)."""
        C, R = self.cols, self.rows
        return min(_signed_width(R * C * self.product_min, R * C * self.product_max),
                   self.acc_width)

    @property
    def mode_bits(self):
        return (len(self.modes) - 1).bit_length()

    @property
    def dataflow_bits(self):
        return (len(self.dataflows) - 1).bit_length()

    @property
    def acc_addr_bits(self):
        return max(1, (self.acc_depth - 1).bit_length())

    @property
    def peak_macs_per_cycle(self):
        return self.rows * self.cols

    @property
    def requant_latency(self):
        """Cycles the output ``requant`` stage adds to a drained row (0 without one): the
        integer requantizer's pipeline, or the float output converter's."""
        if not self.requant:
            return 0
        return 2 if self.is_float else requantizer_latency(self.acc_width, self.mult_bits)

    def mode_code(self, mode):
        if isinstance(mode, int) and 0 <= mode < len(self.modes):
            return mode
        check_choice("mode", mode, self.modes)
        return self.modes.index(mode)

    def dataflow_code(self, dataflow):
        if isinstance(dataflow, int) and 0 <= dataflow < len(self.dataflows):
            return dataflow
        check_choice("dataflow", dataflow, self.dataflows)
        return self.dataflows.index(dataflow)

    # -- stream payloads --------------------------------------------------------------------

    @property
    def cmd_fields(self):
        dim = f"(1 to {(1 << self.dim_bits) - 1}; 0 gives err 1)"
        outputs = "0 raw, 1 requant, 2 none" if self.requant else "0 raw, 2 none"
        fields = [
            Field("m", self.dim_bits, doc=f"M: rows of A and of the result {dim}."),
            Field("k", self.dim_bits, doc=f"K: columns of A and rows of B {dim[:-1]}, above "
                                          f"k_max={self.k_max} err 2)."),
            Field("n", self.dim_bits, doc=f"N: columns of B and of the result {dim}."),
            Field("accumulate", 1, doc="1: add the products to the accumulator-memory rows of "
                                       "this command (row r = nb*M + m at address r mod "
                                       "acc_depth) instead of to 0."),
            Field("preload", 1, doc="1: first take the command's NB*M c beats into its rows, "
                                    "then run as if accumulate were set: Y = A . B + C."),
            Field("output", 2, doc=f"What o carries: {outputs} (derived.output_codes); none "
                                   f"sends no o beat and keeps the rows for a later accumulate "
                                   f"command; any other code gives err 4.")]
        if self.dataflow_bits:
            fields.append(Field("dataflow", self.dataflow_bits,
                                doc=f"Dataflow: index into {list(self.dataflows)} "
                                    f"(derived.dataflow_codes); it sets the order of the a "
                                    f"beats."))
        if self.mode_bits:
            fields.append(Field("mode", self.mode_bits,
                                doc=f"Operand formats: index into {list(self.modes)} "
                                    f"(derived.mode_codes); a code past {len(self.modes) - 1} "
                                    f"gives err 4. Selects the element layout of a.a and "
                                    f"b.b."))
        if self.requant and self.is_float:
            out = self.out_format
            fields += [
                Field("scale", SCALE_BITS, True,
                      doc=f"Output requant: the FP32 result times 2**scale is rounded once "
                          f"(nearest, ties to even) to {out}."),
                Field("relu", 1, doc=f"1: results with the sign bit set (not NaN) become +0 "
                                     f"before the conversion to {out}.")]
        elif self.requant:
            fields += [
                Field("mult", self.mult_bits, doc="Requantization multiplier (unsigned): "
                                                  "q = round_shift(acc * mult, shift)."),
                Field("shift", SHIFT_BITS, doc=f"Right shift of acc * mult, rounded "
                                               f"{self.rounding}."),
                Field("zero_point", 9, True, doc="Added to q (after relu); the sum saturates "
                                                 "to s8 or u8."),
                Field("relu", 1, doc="1: q = max(q, 0) before the zero point."),
                Field("out_signed", 1, doc="1: the requantized result saturates to s8; 0: to "
                                           "u8.")]
        return fields

    def _operand_arrays(self, operand):
        """:class:`ArrayLayout` of the ``a`` or ``b`` beats in each mode (mode-code order)."""
        count, slot = ((self.rows, self.a_width) if operand == "a"
                       else (self.cols, self.b_width))
        index = "i" if operand == "a" else "j"
        out = []
        for code, (name, mode) in enumerate(zip(self.modes, self.mode_formats)):
            fmt = getattr(mode, operand)
            upper = (f"; bits {fmt.width} to {slot - 1} of each {slot}-bit slot are ignored"
                     if fmt.width < slot else "")
            out.append(ArrayLayout(
                shape=(count,), index=(index,), stride=(slot,), width=fmt.width,
                signed=getattr(fmt, "signed", False),
                format="" if mode.is_int else fmt.name,
                when=(("field", "cmd.mode" if self.mode_bits else None), ("equals", code),
                      ("mode", name)),
                note=f"mode {name}: {count} {fmt.name} elements{upper}"))
        return tuple(out)

    @property
    def a_fields(self):
        R = self.rows
        order = []
        if "os" in self.dataflows:
            order.append(f"os: for nb in 0..NB-1, for mb in 0..MB-1, for k in 0..K-1: element "
                         f"i = A[mb*{R} + i, k] (elements past M ignored)")
        if "ws" in self.dataflows:
            order.append(f"ws: for nb in 0..NB-1, for kb in 0..KB-1, for m in 0..M-1: element "
                         f"i = A[m, kb*{R} + i] (elements past K ignored)")
        return [Field("a", R * self.a_width,
                      doc=f"Operand A, {R} elements (a segment of A) per beat, in the command "
                          f"mode's a format; NB = ceil(N/{self.cols}), MB = ceil(M/{R}), KB = "
                          f"ceil(K/{R}); beats in this order: " + "; ".join(order)
                          + ". Ignored elements may hold any value.",
                      array=self._operand_arrays("a"))]

    @property
    def b_fields(self):
        C = self.cols
        return [Field("b", C * self.b_width,
                      doc=f"Operand B, {C} elements per beat, in the command mode's b format: "
                          f"for nb in 0..NB-1, for k in 0..K-1: element j = B[k, nb*{C} + j] "
                          f"(elements past N ignored: any value). Element j meets column j of "
                          f"the array: it multiplies the A elements of result column "
                          f"nb*{C} + j.",
                      array=self._operand_arrays("b"))]

    def _lanes(self, note, when=(), fmt=None):
        """Lanes of ``c``/``o``: ``s<acc_width>`` integers, or codes of ``fmt`` (float builds:
        FP32 unless given) in the low bits of each lane."""
        if self.is_float:
            fmt = fmt or FP32
            return ArrayLayout(shape=(self.cols,), index=("j",), stride=(self.acc_width,),
                               width=fmt.width, format=fmt.name, when=when, note=note)
        return ArrayLayout(shape=(self.cols,), index=("j",), stride=(self.acc_width,),
                           width=self.acc_width, signed=True, when=when, note=note)

    @property
    def c_fields(self):
        C = self.cols
        return [Field("c", C * self.acc_width,
                      doc=f"Preload rows (with cmd.preload): one beat per result row r = "
                          f"nb*M + m in that order (like o); lane j = C[m, nb*{C} + j] as "
                          f"{'an FP32 code' if self.is_float else f's{self.acc_width}'}.",
                      array=self._lanes("lanes past N are ignored (any value) and stored as "
                                        "0"))]

    @property
    def o_fields(self):
        C = self.cols
        def when(output):
            return ("field", "cmd.output"), ("equals", OUTPUTS.index(output)), ("output", output)
        if self.is_float:
            arrays = [self._lanes("the FP32 accumulator; lanes past N are 0", when("raw"))]
            if self.requant:
                out = self.out_target
                arrays.append(self._lanes(
                    f"the result converted to {out.name} (cmd.scale, cmd.relu), zero-extended "
                    f"into the 32-bit lane; lanes past N are 0", when("requant"), out))
        else:
            arrays = [self._lanes(f"the s{self.acc_width} accumulator; lanes past N are 0",
                                  when("raw"))]
        if self.requant and not self.is_float:
            arrays.append(self._lanes(
                f"the requantized value, s8 or u8 (cmd.out_signed), sign-extended into the "
                f"full s{self.acc_width} lane (u8 values have zeros above bit 7); lanes past "
                f"N are 0", when("requant")))
        return [Field("c", C * self.acc_width,
                      doc=f"Result row r = nb*M + m (rows in order of r): lane j = Y[m, "
                          f"nb*{C} + j]; "
                          + ("each lane holds an FP32 code (raw) or a converted code "
                             "(requant): read the lanes as the array says. "
                             if self.is_float else
                             f"each lane is a signed s{self.acc_width} number (the field's "
                             f"own signed flag is false: read the lanes as the array says). ")
                          + "One beat per row, NB*M beats per command; none for output "
                          "none or an erroneous command.",
                      array=arrays),
                Field("last", 1, doc="1 on the final o beat of each command (row NB*M - 1), 0 "
                                     "on every other.")]

    @property
    def rsp_fields(self):
        errors = "; ".join(f"{k} {v}" for k, v in self.errors.items())
        order = ", ".join(map(str, ERROR_PRECEDENCE))
        counters = {
            "cycles": "clock cycles from accepting the command to the cycle before rsp.valid",
            "busy": "cycles a step entered the array",
            "stall_a": "cycles a step waited for an a beat",
            "stall_b": "cycles a step (or a weight load) waited for a B panel",
            "stall_out": "cycles a step waited for accumulator-memory space (o backpressure)",
            "macs": "M*K*N"}
        return ([Field("err", 3, doc=f"Error code ({errors}; derived.errors). When several "
                                     f"conditions hold, the first in the order {order} "
                                     f"(derived.error_precedence) is reported. An erroneous "
                                     f"command consumes no a, b or c beat, sends no o beat, "
                                     f"leaves the memory as it was; its counters are 0."
                                     + (" Err 5 (abft) is found while the command runs: "
                                        "its beats, o beats and counters are as without "
                                        "it; only err differs. It is reported only when "
                                        "no other code applies." if self.abft else ""))]
                + [Field(c, self.counter_width,
                         doc=f"{counters[c]} (wraps at 2**{self.counter_width}).")
                   for c in COUNTERS])

    def stream_fields(self):
        return {"cmd": self.cmd_fields, "a": self.a_fields, "b": self.b_fields,
                "c": self.c_fields, "o": self.o_fields, "rsp": self.rsp_fields}

    def cost(self):
        """The accumulator memory and the two B-panel banks (see
        :data:`~accelgen.generators.base.LIMITS`)."""
        bits = self.acc_depth * self.cols * self.acc_width + 2 * self.k_max * self.cols * \
            self.b_width
        if self.abft:
            bits += self.acc_depth * self.acc_width + 2 * self.k_max * self.abft_operand_width
            return {"memory_bits": (bits, "acc_depth x (cols + 1) x acc_width + 2 x k_max x "
                                          "(cols x b_width + abft_operand_width)")}
        return {"memory_bits": (bits, "acc_depth x cols x acc_width + 2 x k_max x cols x "
                                      "b_width")}

    def cost_features(self):
        """The array's size for the resource estimator: PEs, their accumulator and operand
        bits, and the output lanes a requantizer serves."""
        pes = self.rows * (self.cols + self.abft)     # abft: the checksum column
        return {**super().cost_features(), "pes": pes,
                "pe_acc_bits": pes * self.os_acc_width,
                "pe_operand_bits": pes * self.operand_width,
                "requant_lanes": self.cols if self.requant else 0}

    def derived(self):
        """Derived values for the manifest."""
        return {
            "peak_macs_per_cycle": self.peak_macs_per_cycle,
            "requant_latency": self.requant_latency,
            "product_width": self.product_width,
            "operand_width": self.operand_width,
            "os_acc_width": self.os_acc_width if "os" in self.dataflows else None,
            "ws_sum_width": self.ws_sum_width if "ws" in self.dataflows else None,
            "mode_codes": {m: i for i, m in enumerate(self.modes)},
            "dataflow_codes": {d: i for i, d in enumerate(self.dataflows)},
            "output_codes": {o: i for i, o in enumerate(OUTPUTS)},
            "errors": {str(k): v for k, v in self.errors.items()},
            "error_precedence": list(ERROR_PRECEDENCE),
            # abft: the checksum element of each panel row and the checksum lane of each
            # memory row included
            "b_panel_bits": 2 * self.k_max * (self.cols * self.b_width
                                              + self.abft * self.abft_operand_width),
            "acc_memory_bits": self.acc_depth * (self.cols + self.abft) * self.acc_width,
            "dsp_multipliers": (self.rows - self.lut_rows - self.rom_rows) * self.cols,
            "rom_multipliers": self.rom_rows * self.cols,
            **({"accumulation": ACCUMULATION_FLOAT,
                "mode_formats": {m.name: [m.a.name, m.b.name] for m in self.mode_formats}}
               if self.is_float else {}),
        }


def ceil_div(a, b):
    return -(-a // b)


PRESETS = {
    "tiny": SystolicConfig(rows=2, cols=2, acc_width=24, k_max=16, acc_depth=16),
}
PRESETS["default"] = SystolicConfig(rows=4, cols=4, modes=("s8s8", "u8s8", "s4s4", "s8s4"),
                                    dataflows=("os", "ws"), k_max=64, acc_depth=64,
                                    requant=True)
# the ECP5 board preset: a second product register in the fabric, beside the adder (the
# route out of the DSP column was 5.5-6.5 ns of the PE's path; 8x8 out of context, median of
# five placer seeds: 113.8 -> 122.2 MHz, +1024 flip-flops)
PRESETS["8x8"] = replace(PRESETS["default"], rows=8, cols=8, modes=("s8s8",), k_max=256,
                         acc_depth=256, pe_pipeline=2)
# ECP5-85F has 156 MULT18X18D: 7 DSP rows (112) + the requantizer's 32 fit, 9 rows use LUTs
# (as tables, rom_rows=9, the block takes 27 % fewer LUT4s but 189 block RAMs, and its board
# build is more congested). One product register: this preset is also the bulk-simulation
# benchmark, and its board build does not route yet
PRESETS["16x16"] = replace(PRESETS["8x8"], rows=16, cols=16, k_max=1024, acc_depth=512,
                           lut_rows=9, pe_pipeline=1)
# float presets: FP8 (E4M3/E5M2 and the mixed pair) and BF16 PEs accumulating in FP32, the
# output stage converting to FP8/BF16 (the MAC units cost several times an int8 PE: 4x4)
PRESETS["fp8"] = replace(PRESETS["default"], modes=("e4m3", "e5m2", "e4m3e5m2"),
                         out_format="e4m3")
PRESETS["bf16"] = replace(PRESETS["default"], modes=("bf16",), dataflows=("os",),
                          out_format="bf16")

#: ``accelgen prove``: commands make a variable number of beats; the ring credit, the
#: accumulator memory and the FIFOs carry their own assertions
PROOF = ProofContract(depth=24, induction_depth=16, mutants={"credit-off-by-one": "fifo"})
