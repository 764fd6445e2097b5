"""Bit-exact numpy model of block ``mac`` (see :mod:`accelgen.generators.mac` for semantics).

Two levels:

* :func:`mac` works on element arrays, the form users hand to ``accelgen sim --inputs``
  (integers for integer modes; for float/posit modes the element values, each exactly a
  value of its format -- NaN and inf where the format has them);
* :func:`mac_words` works on raw payload integers of the ``i``/``o`` streams, the form the
  cocotb testbench and the FPGA self-check harness use. Any input word is legal there: element
  slots a mode does not use are ignored, and unknown mode codes set ``err``.
"""

import numpy as np

from ...formats import E8M0_BIAS, E8M0_NAN
from ...numerics import IntFormat, apply_overflow, wrap
from ..payload import pack, unpack
from . import elements
from .elements import add_fp32, decode_values, exact_products, round_fp32, to_codes

__all__ = ["mac", "mac_words", "check_arrays", "float_arrays", "pack_inputs", "unpack_inputs",
           "random_inputs", "random_elements", "code_values", "errors", "error_points",
           "ARGUMENTS", "REQUIRED"]

#: names of :func:`mac`'s array arguments (``--inputs FILE.npz`` uses these names)
ARGUMENTS = ("a", "b", "mode", "clear", "last", "scale_a", "scale_b")
#: the arrays an inputs file must hold (the rest of :data:`ARGUMENTS` is optional)
REQUIRED = ("a", "b")


def _integers(name, values, dtype=np.int64):
    """``values`` as an array of ``dtype``; floats are refused rather than truncated."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: dtype {arr.dtype} is not allowed; expected integers")
    return arr.astype(dtype)


def _operands(config, name, values):
    """Operand array ``name``: int64 for integer lanes; float64 (integers and element values)
    for element lanes, where NaN and inf are checked per mode later."""
    if not config.element_lane:
        return _integers(name, values)
    arr = np.asarray(values)
    if arr.dtype.kind not in "iubf":
        raise ValueError(f"{name}: dtype {arr.dtype} is not allowed; expected numbers")
    return arr.astype(np.float64)


def _scales(config, beats, scale_a, scale_b):
    """The E8M0 scale arrays (default 127, i.e. 2**0), validated."""
    out = []
    for name, arr in (("scale_a", scale_a), ("scale_b", scale_b)):
        if arr is None:
            out.append(np.full(beats, 127, np.int64))
            continue
        if not config.has_mx:
            raise ValueError(f"{name}: not allowed; the config has no MX mode")
        arr = _integers(name, arr)
        if arr.shape != (beats,):
            raise ValueError(f"{name}: shape {arr.shape} is not allowed; expected ({beats},)")
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{name}: values outside E8M0 codes [0, 255]")
        out.append(arr)
    return out


def _arguments(config, a, b, mode, clear, last):
    """Validated arrays with defaults filled in (see :func:`mac`)."""
    a, b = _operands(config, "a", a), _operands(config, "b", b)
    beats = a.shape[0] if a.ndim else 0
    mode = np.zeros(beats, np.int64) if mode is None else _integers("mode", mode)
    clear = np.arange(beats) == 0 if clear is None else _integers("clear", clear, bool)
    last = np.arange(beats) == beats - 1 if last is None else _integers("last", last, bool)
    want = (beats, config.lanes, config.elements_per_lane)
    for name, arr in (("a", a), ("b", b)):
        if arr.shape != want or not beats:
            raise ValueError(f"{name}: shape {arr.shape} is not allowed; expected (beats >= 1, "
                             f"lanes, elements) = {want}")
    for name, arr in (("mode", mode), ("clear", clear), ("last", last)):
        if arr.shape != (beats,):
            raise ValueError(f"{name}: shape {arr.shape} is not allowed; expected ({beats},)")
    codes = 1 << config.mode_bits          # what the payload's mode field can carry
    bad = mode[(mode < 0) | (mode >= codes)]
    if bad.size:
        unbuilt = (f" (codes {len(config.modes)} and up name no built mode: they add nothing "
                   f"and set err)" if codes > len(config.modes) else "")
        raise ValueError(f"mode: code {int(bad[0])} is not allowed; expected 0 to {codes - 1}"
                         f"{unbuilt}")
    return a, b, mode, clear, last


def mac(config, a, b, mode=None, clear=None, last=None, scale_a=None, scale_b=None):
    """Run beats through the ``mac`` block.

    ``a``, ``b``: integer arrays ``(beats, lanes, elements_per_lane)``; in a beat of mode ``m``
    only the first ``products_per_lane(m)`` elements are used and each must lie in that mode's
    operand format. ``mode``: mode codes per beat (default 0); ``clear`` (default: first beat)
    and ``last`` (default: final beat) are booleans per beat. ``scale_a``, ``scale_b``
    (configs with MX modes): E8M0 codes per beat (default 127: 2**0), read on each block's
    last beat.

    Returns ``{"acc": int64 (outputs, accumulators), "err": bool (outputs,)}``, one row per beat
    with ``last`` set, in order; in element lanes (``accumulate`` ``exact``/``fp32``) ``acc``
    holds FP32 codes (view them with :func:`~accelgen.sim.golden.elements.fp32_value`).
    """
    a, b, mode, clear, last = _arguments(config, a, b, mode, clear, last)
    scales = _scales(config, len(mode), scale_a, scale_b)
    if config.element_lane:
        return _mac_elements(config, a, b, mode, clear, last, scales)
    beats = a.shape[0]
    sums = np.zeros((beats, config.lanes), np.int64)
    valid = (mode >= 0) & (mode < len(config.modes))
    for code, fmt in enumerate(config.mode_formats):
        sel = mode == code
        if not sel.any():
            continue
        n = config.products_per_lane(code)
        aa, bb = a[sel, :, :n], b[sel, :, :n]
        for name, arr, f in (("a", aa, fmt.a), ("b", bb, fmt.b)):
            if arr.size and (arr.min() < f.min or arr.max() > f.max):
                raise ValueError(f"{name}: values outside {f.name} [{f.min}, {f.max}] in mode "
                                 f"{config.modes[code]!r}")
        sums[sel] = (aa * bb).sum(axis=2)
    if config.reduction == "together":
        sums = sums.sum(axis=1, keepdims=True)
    acc_fmt = IntFormat(config.acc_width, True)
    acc = np.zeros(config.accumulators, np.int64)
    err = False
    out_acc, out_err = [], []
    for t in range(beats):   # sequential on purpose: saturation makes the order matter
        base = np.zeros_like(acc) if clear[t] else acc
        acc = apply_overflow(base + sums[t], acc_fmt, config.overflow)
        err = (False if clear[t] else err) or not valid[t]
        if last[t]:
            out_acc.append(acc.copy())
            out_err.append(err)
    return {"acc": np.array(out_acc, np.int64).reshape(-1, config.accumulators),
            "err": np.array(out_err, bool)}


def _beat_sums(config, a, b, mode):
    """Exact per-beat sums in element lanes: ``(sums, nan, pos_inf, neg_inf)``, each
    ``(beats, accumulators)``; sums are Python ints in units of ``2**product_exp``."""
    beats = a.shape[0]
    sums = np.zeros((beats, config.lanes), object)
    flags = [np.zeros((beats, config.lanes), bool) for _ in range(3)]
    for code, fmt in enumerate(config.mode_formats):
        sel = mode == code
        if not sel.any():
            continue
        n = config.products_per_lane(code)
        where = f"in mode {config.modes[code]!r}"
        da = decode_values(fmt.a, a[sel, :, :n], param=f"a ({where})")
        db = decode_values(fmt.b, b[sel, :, :n], param=f"b ({where})")
        value, *special = exact_products(da, db, config.product_exp)
        sums[sel] = value.sum(axis=2)
        for flag, s in zip(flags, special):
            flag[sel] = s.any(axis=2)
    if config.reduction == "together":
        sums = sums.sum(axis=1, keepdims=True)
        flags = [f.any(axis=1, keepdims=True) for f in flags]
    return (sums, *flags)


def _overflow(x, width, policy):
    """Python int ``x`` wrapped or saturated to ``s<width>``."""
    half = 1 << (width - 1)
    if policy == "saturate":
        return max(-half, min(half - 1, x))
    return (x + half) % (1 << width) - half


def _mac_elements(config, a, b, mode, clear, last, scales):
    """:func:`mac` for element lanes (see the module docstring of
    :mod:`accelgen.generators.mac` for ``exact`` and ``fp32``)."""
    sums, nan, pos_inf, neg_inf = _beat_sums(config, a, b, mode)
    valid = (mode >= 0) & (mode < len(config.modes))
    n_acc = config.accumulators
    acc = [0] * n_acc                      # exact: fixed-point sums; fp32: FP32 codes
    sticky = [[False] * 3 for _ in range(n_acc)]
    block = _Block(config)
    err = False
    out_acc, out_err = [], []
    for t in range(len(sums)):
        beats = [(int(sums[t, n]), bool(nan[t, n]), bool(pos_inf[t, n]), bool(neg_inf[t, n]))
                 for n in range(n_acc)]
        if config.accumulate == "exact":
            for n, beat in enumerate(beats):
                base = 0 if clear[t] else acc[n]
                acc[n] = _overflow(base + beat[0], config.acc_width, config.overflow)
                sticky[n] = [(not clear[t] and old) or new
                             for old, new in zip(sticky[n], beat[1:])]
        else:
            ended = block.add(t, beats, mode, clear, last, scales)
            if ended is not None:
                replace, results = ended
                acc = [s if replace else add_fp32(x, s) for x, s in zip(acc, results)]
        err = (False if clear[t] else err) or not valid[t]
        if last[t]:
            if config.accumulate == "exact":
                out_acc.append([round_fp32(acc[n], config.product_exp, *sticky[n])
                                for n in range(n_acc)])
            else:
                out_acc.append(list(acc))
            out_err.append(err)
    return {"acc": np.array(out_acc, np.int64).reshape(-1, n_acc),
            "err": np.array(out_err, bool)}


class _Block:
    """FP32 accumulation in blocks: beat sums add exactly into the running block; a block
    ends at a ``last`` beat, at a beat whose mode is not MX, or after ``beats_per_block``
    beats of an MX mode, counted from the block's first beat (a ``clear`` beat always starts
    a block, dropping any unfinished one). An ended block is scaled by the E8M0 scales of its
    last beat (MX modes; NaN if either is 255), rounded once to FP32 and either replaces the
    accumulator (the block started with ``clear``) or is added to it in FP32."""

    def __init__(self, config):
        self.config = config
        self.sums = self.flags = None
        self.count, self.replace = 0, False

    def add(self, t, beats, mode, clear, last, scales):
        cfg = self.config
        if clear[t] or self.sums is None:
            self.sums = [0] * len(beats)
            self.flags = [[False] * 3 for _ in beats]
            self.count, self.replace = 0, bool(clear[t]) or self.replace
        self.sums = [x + beat[0] for x, beat in zip(self.sums, beats)]
        self.flags = [[o or f for o, f in zip(old, beat[1:])]
                      for old, beat in zip(self.flags, beats)]
        self.count += 1
        code = int(mode[t])
        mx = code < len(cfg.modes) and cfg.mode_formats[code].is_mx
        if not (last[t] or not mx or self.count == cfg.beats_per_block(code)):
            return None
        exp = cfg.product_exp
        scale_nan = False
        if mx:
            sa, sb = int(scales[0][t]), int(scales[1][t])
            scale_nan = E8M0_NAN in (sa, sb)
            exp += sa + sb - 2 * E8M0_BIAS
        results = [round_fp32(total, exp, flags[0] or scale_nan, *flags[1:])
                   for total, flags in zip(self.sums, self.flags)]
        ended = (self.replace, results)
        self.sums, self.replace = None, False
        return ended


def _element_offsets(config, code):
    """(lane, element) -> bit offsets inside the ``a`` and ``b`` fields for mode ``code``."""
    fmt = config.mode_formats[code]
    lanes = np.arange(config.lanes)[:, None]
    elems = np.arange(config.products_per_lane(code))[None, :]
    return (lanes * config.a_lane_bits + elems * fmt.a.width,
            lanes * config.b_lane_bits + elems * fmt.b.width)


def _field_bits(values, width):
    """``(count, width)`` uint8 array of the bits (LSB first) of Python-int field values."""
    nbytes = max(1, (width + 7) // 8)
    raw = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    buf = np.frombuffer(raw, np.uint8).reshape(len(values), nbytes)
    return np.unpackbits(buf, axis=1, bitorder="little")[:, :width]


def _field_values(bits):
    """Python ints of the rows of a bit array (LSB first): the inverse of
    :func:`_field_bits`."""
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _extract(values, width, offsets, fmt):
    """Element values at ``offsets`` (an array) of Python-int field ``values``: integers of
    an integer format, or the float64 values of float/posit/MX codes."""
    bits = _field_bits(values, width).astype(np.int64)
    index = offsets[..., None] + np.arange(fmt.width)
    codes = (bits[:, index] << np.arange(fmt.width)).sum(axis=-1)
    return code_values(fmt, codes)


def code_values(fmt, codes):
    """Element values of ``codes`` (unsigned integers of ``fmt.width`` bits) in ``fmt``:
    two's complement or unsigned integers, or float64 values of float/posit/MX codes."""
    codes = np.asarray(codes, np.int64)
    return wrap(codes, fmt) if isinstance(fmt, IntFormat) else elements.code_values(fmt, codes)


def _codes(fmt, values, *, param):
    """The ``fmt.width``-bit codes of element ``values`` (integers: two's complement)."""
    if isinstance(fmt, IntFormat):
        return np.asarray(values).astype(np.int64) & ((1 << fmt.width) - 1)
    return to_codes(fmt, values, param=param)


def unpack_inputs(config, words):
    """Decode ``i`` payload integers into :func:`mac` arguments."""
    fields = unpack(config.input_fields, words)
    beats = len(words)
    shape = (beats, config.lanes, config.elements_per_lane)
    dtype = np.float64 if config.element_lane else np.int64
    a, b = np.zeros(shape, dtype), np.zeros(shape, dtype)
    mode = fields["mode"] if "mode" in fields else np.zeros(beats, np.int64)
    for code, fmt in enumerate(config.mode_formats):
        sel = np.flatnonzero(mode == code)
        if not sel.size:
            continue
        n = config.products_per_lane(code)
        off_a, off_b = _element_offsets(config, code)
        a[sel, :, :n] = _extract(fields["a"][sel], config.lanes * config.a_lane_bits, off_a, fmt.a)
        b[sel, :, :n] = _extract(fields["b"][sel], config.lanes * config.b_lane_bits, off_b, fmt.b)
    scales = ({"scale_a": fields["scale_a"], "scale_b": fields["scale_b"]}
              if config.has_mx else {})
    return {"a": a, "b": b, "mode": mode, **scales, "clear": fields["clear"].astype(bool),
            "last": fields["last"].astype(bool)}


def float_arrays(config):
    """Arrays that may hold floats: ``a`` and ``b`` in element lanes (element values)."""
    return ("a", "b") if config.element_lane else ()


def check_arrays(config, *, strict=True, **arrays):
    """Raise ``ValueError`` unless the block can take ``arrays``: :func:`mac` must accept them
    (shapes, dtypes, formats) when ``strict``, else :func:`pack_inputs` (shapes only)."""
    (mac if strict else pack_inputs)(config, **arrays)


def pack_inputs(config, a, b, mode=None, clear=None, last=None, scale_a=None, scale_b=None):
    """Encode :func:`mac` arguments as ``i`` payload integers (unused slots are zero)."""
    a, b, mode, clear, last = _arguments(config, a, b, mode, clear, last)
    scale_a, scale_b = _scales(config, len(mode), scale_a, scale_b)
    widths = {"a": config.lanes * config.a_lane_bits, "b": config.lanes * config.b_lane_bits}
    bits = {x: np.zeros((len(a), w), np.uint8) for x, w in widths.items()}
    for code, fmt in enumerate(config.mode_formats):
        sel = np.flatnonzero(mode == code)
        if not sel.size:
            continue
        n = config.products_per_lane(code)
        offsets = _element_offsets(config, code)
        for x, arr, f, off in zip("ab", (a, b), (fmt.a, fmt.b), offsets):
            codes = _codes(f, arr[sel, :, :n], param=f"{x} (in mode {config.modes[code]!r})")
            index = off[..., None] + np.arange(f.width)          # (lanes, n, width)
            ones = (codes[..., None] >> np.arange(f.width)) & 1
            bits[x][sel[:, None, None, None], index[None]] = ones      # (sel, lanes, n, width)
    values = {"a": _field_values(bits["a"]), "b": _field_values(bits["b"]), "mode": mode,
              "clear": clear, "last": last, "scale_a": scale_a, "scale_b": scale_b}
    return pack(config.input_fields, values)


def pack_outputs(config, result):
    values = {f"acc{n}": result["acc"][:, n] for n in range(config.accumulators)}
    values["err"] = result["err"]
    if config.acc_check != "none":
        values["fault"] = np.zeros_like(result["err"])   # the check is silent without faults
    return pack(config.output_fields, values)


def unpack_outputs(config, words):
    fields = unpack(config.output_fields, words)
    acc = np.stack([fields[f"acc{n}"] for n in range(config.accumulators)], axis=1)
    return {"acc": acc.reshape(-1, config.accumulators).astype(np.int64),
            "err": fields["err"].astype(bool)}


def mac_words(config, words):
    """Payload-level model: ``i`` payload integers in, ``o`` payload integers out."""
    return pack_outputs(config, mac(config, **unpack_inputs(config, words)))


def random_elements(fmt, rng, size):
    """Random elements of ``fmt``: uniform integers in range, or the values of uniformly
    drawn codes of a float/posit format (so NaN, inf, zeros and subnormals at their code
    frequencies)."""
    if isinstance(fmt, IntFormat):
        return rng.integers(fmt.min, fmt.max + 1, size=size)
    return elements.code_values(fmt, rng.integers(0, 1 << fmt.width, size=size))


def random_inputs(config, rng, beats, *, modes=None, last_every=4):
    """Random in-range operands for :func:`mac`: modes drawn from ``modes`` (default: all
    codes), ``clear`` on the first beat after each ``last``, ``last`` about every
    ``last_every`` beats and on the final beat."""
    codes = [config.mode_code(m) for m in (modes or config.modes)]
    mode = rng.choice(codes, size=beats)
    shape = (beats, config.lanes, config.elements_per_lane)
    dtype = np.float64 if config.element_lane else np.int64
    a, b = np.zeros(shape, dtype), np.zeros(shape, dtype)
    for code in set(codes):
        fmt = config.mode_formats[code]
        sel = mode == code
        n = config.products_per_lane(code)
        a[sel, :, :n] = random_elements(fmt.a, rng, (sel.sum(), config.lanes, n))
        b[sel, :, :n] = random_elements(fmt.b, rng, (sel.sum(), config.lanes, n))
    last = rng.random(beats) < 1 / last_every
    last[-1] = True
    clear = np.concatenate([[True], last[:-1]])
    out = {"a": a, "b": b, "mode": mode, "clear": clear, "last": last}
    if config.has_mx:
        # scales around 2**0 with the extremes (0: 2**-127, 254: 2**127, 255: NaN) now and then
        for name in ("scale_a", "scale_b"):
            scale = rng.integers(112, 143, size=beats)
            odd = rng.random(beats) < 0.05
            scale[odd] = rng.choice([0, 1, 254, 255], size=odd.sum())
            out[name] = scale
    return out


from .mac_errors import error_points, errors  # noqa: E402  (accuracy report: imports mac lazily)

#: registry-facing names (see :class:`accelgen.generators.registry.GeneratorSpec`)
run = mac
words = mac_words
