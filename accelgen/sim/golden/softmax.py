"""Bit-exact model of block ``softmax`` (semantics: :mod:`accelgen.generators.softmax`, steps
1-4 there) and its float64 error report.

* :func:`softmax` works on rows of logits (``x``, optional ``lengths`` and ``mask``), the
  form users hand to ``accelgen sim softmax --inputs``;
* :func:`words` works on raw ``i``/``o`` payload integers (rows split at ``n_max``);
* :func:`errors` measures the model against float64 softmax, in output LSB.

Step 1 is vectorized numpy; steps 2-4 follow each row in order with Python integers, because
the floor of every rescale makes the order matter.
"""

import numpy as np

from ...generators.softmax import RECIP_Q, SQRT2_Q15
from ..payload import pack, unpack
from ..reference import error_stats, softmax_float

__all__ = ["softmax", "exponents", "row_sum", "reciprocal", "outputs", "words", "pack_inputs",
           "unpack_outputs", "check_arrays", "errors", "random_rows", "error_points",
           "ARGUMENTS", "REQUIRED"]

#: array names ``accelgen sim softmax --inputs FILE.npz`` accepts
ARGUMENTS = ("x", "lengths", "mask")
#: the arrays an inputs file must hold (the rest of :data:`ARGUMENTS` is optional)
REQUIRED = ("x",)


# -- step 1: exponent domain -------------------------------------------------------------------

def _pwl_eval(pwl, u):
    seg = np.clip(u >> pwl.uniform_shift, 0, pwl.segments - 1)
    acc = (np.asarray(pwl.intercepts, np.int64)[seg]
           + np.asarray(pwl.slopes, np.int64)[seg] * (u - np.asarray(pwl.bases, np.int64)[seg]))
    return (acc + (1 << (pwl.frac - 1))) >> pwl.frac if pwl.frac else acc


def exponents(config, x):
    """``(k, v)`` int64 arrays for logit codes ``x``: ``e**(in_scale * x) ~= 2**k * v /
    2**A``."""
    x = np.asarray(x, np.int64)
    if config.exp == "ibert":
        ib = config.ibert_exp
        poly, q = ib["poly"], ib["q"]
        k = (((x - ib["k_offset"] * q) * ib["div_mult"]) >> ib["div_shift"]) + ib["k_offset"]
        p = x - k * q - q
        z = p * (p + poly.b_int) + poly.c_int
        v = (z * ib["mult"] + (1 << (ib["shift"] - 1))) >> ib["shift"]
        return k, v
    c, g = config.base2
    t = (x * c) >> g
    k, f = t >> config.exp_frac, t & ((1 << config.exp_frac) - 1)
    if config.exp == "table":
        v = np.asarray(config.pow2_table, np.int64)[f]
    else:
        v = _pwl_eval(config.pow2_pwl, f)
    return k, v


# -- steps 2-4 -------------------------------------------------------------------------------

def row_sum(k, v, keep):
    """Online normalization over one row: ``(K, S)``, or ``(None, 0)`` when nothing is
    kept."""
    big_k, s = None, 0
    for kk, vv, ok in zip(k.tolist(), v.tolist(), keep.tolist()):
        if not ok:
            continue
        if big_k is None:
            big_k, s = kk, vv
        elif kk > big_k:
            s = (s >> (kk - big_k)) + vv
            big_k = kk
        else:
            s = s + (vv >> (big_k - kk))
    return big_k, s


def reciprocal(config, s):
    """``(e, r)`` for a running sum ``s > 0``: ``1 / s ~= r * 2**(-16 - e)``."""
    e = s.bit_length() - 1
    m = s << (RECIP_Q - e) if e <= RECIP_Q else s >> (e - RECIP_Q)
    j = config.recip_bits
    if config.recip == "table":
        r = config.recip_table[(m >> (RECIP_Q - j)) & ((1 << j) - 1)]
    else:
        r = int(_pwl_eval(config.recip_pwl, np.int64(m - (1 << RECIP_Q))))
    if config.newton:
        r = (r * ((1 << (RECIP_Q + 1)) - ((m * r) >> RECIP_Q))) >> RECIP_Q
    return e, r


def masked_code(config):
    """Output code of probability 0."""
    return {"u8": 0, "s8": -128, "log2": 15}[config.output]


def _code(config, p, sh):
    """Step 4 for one kept element: ``p = v * r``, probability ``p / 2**sh``."""
    if config.output == "log2":
        n = p.bit_length() - 1
        if n < 0:
            return 15
        top = p << (15 - n) if n <= 15 else p >> (n - 15)
        return min(max(sh - n - (1 if top > SQRT2_Q15 else 0), 0), 15)
    scaled = p * config.out_levels
    u8 = min(255, (scaled + (1 << (sh - 1))) >> sh) if sh >= 1 else min(255, scaled << -sh)
    return u8 - 128 if config.output == "s8" else u8


def outputs(config, k, v, keep):
    """Output codes of one row (steps 2-4)."""
    big_k, s = row_sum(k, v, keep)
    dead = masked_code(config)
    if big_k is None:
        return [dead] * len(k)
    e, r = reciprocal(config, s)
    return [_code(config, vv * r, big_k - kk + e + RECIP_Q) if ok else dead
            for kk, vv, ok in zip(k.tolist(), v.tolist(), keep.tolist())]


# -- element-level API -------------------------------------------------------------------------

def _arrays(config, x, lengths, mask, *, strict=True):
    """Validated ``(x, lengths, mask)``: ``x`` ``(rows, n)`` int64, ``lengths`` ``(rows,)``,
    ``mask`` ``(rows, n)`` bool (True = excluded)."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise ValueError(f"x: dtype {x.dtype} is not allowed; expected integer logit codes")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"x: shape {x.shape} is not allowed; expected (rows, elements) "
                         f"with at least one of each")
    x = x.astype(np.int64)
    rows, n = x.shape
    if lengths is None:
        lengths = np.full(rows, n, np.int64)
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu" or lengths.shape != (rows,):
        raise ValueError(f"lengths: shape {lengths.shape} dtype {lengths.dtype} is not "
                         f"allowed; expected {rows} integers")
    lengths = lengths.astype(np.int64)
    top = min(n, config.n_max)
    bad = np.flatnonzero((lengths < 1) | (lengths > top))
    if bad.size:
        raise ValueError(f"lengths: row {int(bad[0])} has length {int(lengths[bad[0]])}; "
                         f"expected 1 to {top} (n_max is {config.n_max}, rows hold {n})")
    if mask is None:
        mask = np.zeros(x.shape, bool)
    else:
        if not config.mask:
            raise ValueError("mask: not allowed; this config has no mask input (set mask=true)")
        mask = np.asarray(mask)
        if mask.shape != x.shape or mask.dtype.kind not in "biu":
            raise ValueError(f"mask: shape {mask.shape} is not allowed; expected {x.shape} "
                             f"booleans")
        mask = mask.astype(bool)
    f = config.in_fmt
    if strict and (x.min() < f.min or x.max() > f.max):
        raise ValueError(f"x: values outside {f.name} [{f.min}, {f.max}]")
    return x, lengths, mask


def softmax(config, x, lengths=None, mask=None):
    """Output codes ``(rows, n)`` int64 for logits ``x`` ``(rows, n)`` (a 1-D ``x`` is one
    row). Row ``i`` is ``x[i, :lengths[i]]`` (default: whole rows, each at most ``n_max``);
    ``mask`` (True = excluded) needs a config with ``mask``. Positions past a row's length
    hold the masked code."""
    x, lengths, mask = _arrays(config, x, lengths, mask)
    k, v = exponents(config, x)
    y = np.full(x.shape, masked_code(config), np.int64)
    for i, n in enumerate(lengths.tolist()):
        y[i, :n] = outputs(config, k[i, :n], v[i, :n], ~mask[i, :n])
    return y


def check_arrays(config, *, strict=True, x=None, lengths=None, mask=None):
    """``ValueError`` unless :func:`softmax` can take the arrays (``strict``: also logits
    inside ``in_format``)."""
    if x is None:
        raise ValueError("x: missing; expected an integer array of logits (rows, elements)")
    _arrays(config, x, lengths, mask, strict=strict)


# -- payload level -----------------------------------------------------------------------------

def pack_inputs(config, x, lengths=None, mask=None):
    """Rows → ``i`` payload words (``last`` on each row's final element)."""
    x, lengths, mask = _arrays(config, x, lengths, mask, strict=False)
    xs, ms, lasts = [], [], []
    for i, n in enumerate(lengths.tolist()):
        xs += x[i, :n].tolist()
        ms += mask[i, :n].tolist()
        lasts += [False] * (n - 1) + [True]
    values = {"x": xs, "last": lasts}
    if config.mask:
        values["mask"] = ms
    return pack(config.input_fields, values)


def unpack_outputs(config, words, lengths=None):
    """``o`` payload words → ``{"y": int64 (beats,), "last": bool (beats,)}``; with
    ``lengths``, also ``"rows"``: ``(rows, max length)`` codes (masked code past the end)."""
    f = unpack(config.output_fields, words)
    out = {"y": f["y"].astype(np.int64), "last": f["last"].astype(bool)}
    if lengths is not None:
        lengths = np.asarray(lengths, np.int64)
        rows = np.full((len(lengths), int(lengths.max())), masked_code(config), np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for i, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
            got = out["y"][s:s + n]
            rows[i, :len(got)] = got
        out["rows"] = rows
    return out


def split_rows(config, in_words):
    """Decode ``i`` words into rows as the hardware sees them: ``[(x, mask), ...]``, a row
    ending at ``last`` or after ``n_max`` elements. An unfinished final row is dropped (the
    hardware waits for its end)."""
    f = unpack(config.input_fields, in_words)
    mask = f["mask"] if config.mask else np.zeros(len(in_words), np.int64)
    rows, cur_x, cur_m = [], [], []
    for x, m, last in zip(f["x"].tolist(), mask.tolist(), f["last"].tolist()):
        cur_x.append(x)
        cur_m.append(bool(m))
        if last or len(cur_x) == config.n_max:
            rows.append((np.array(cur_x, np.int64), np.array(cur_m, bool)))
            cur_x, cur_m = [], []
    return rows


def words(config, in_words):
    """Payload-level model: ``i`` payload integers in, ``o`` payload integers out."""
    ys, lasts = [], []
    for x, m in split_rows(config, in_words):
        k, v = exponents(config, x)
        ys += outputs(config, k, v, ~m)
        lasts += [False] * (len(x) - 1) + [True]
    return pack(config.output_fields, {"y": ys, "last": lasts})


# -- float64 comparison ------------------------------------------------------------------------

def probabilities(config, codes):
    """Output codes → the probabilities they encode (log2 codes: ``2**-y``, 15 = 0)."""
    codes = np.asarray(codes, np.float64)
    if config.output == "u8":
        return codes / config.out_levels
    if config.output == "s8":
        return (codes + 128) / config.out_levels
    return np.where(codes >= 15, 0.0, 2.0 ** -codes)


def float_codes(config, p):
    """Float64 probabilities → output LSB units (real, for error measurement)."""
    p = np.asarray(p, np.float64)
    if config.output == "u8":
        return np.minimum(p * config.out_levels, 255)
    if config.output == "s8":
        return np.minimum(p * config.out_levels, 255) - 128
    with np.errstate(divide="ignore"):
        return np.clip(-np.log2(p), 0, 15)


def random_rows(config, rng, rows, *, sigma=None, n=None):
    """Random logits ``(rows, n)`` (default ``n = n_max``): normal with standard deviation
    ``sigma`` real units (default: drawn per row from 0.5 to 8), clipped to the format."""
    n = n or config.n_max
    f = config.in_fmt
    sig = (np.full(rows, sigma) if sigma is not None
           else rng.uniform(0.5, 8.0, size=rows))
    x = rng.normal(0.0, 1.0, size=(rows, n)) * sig[:, None] / config.in_scale
    return np.clip(np.rint(x), f.min, f.max).astype(np.int64)


def _compare(config, x, lengths, mask):
    """Per-element golden codes, float64 codes and float64 probabilities, and the row-sum
    deviations, for validated arrays."""
    y = softmax(config, x, lengths, mask if config.mask else None)
    got, want, prob, sums = [], [], [], []
    for i, n in enumerate(lengths.tolist()):
        p = softmax_float(x[i, :n], config.in_scale, ~mask[i, :n])
        got.append(y[i, :n])
        want.append(float_codes(config, p))
        prob.append(p)
        if (~mask[i, :n]).any():
            sums.append(abs(float(probabilities(config, y[i, :n]).sum()) - 1.0))
    return np.concatenate(got), np.concatenate(want), np.concatenate(prob), sums


def error_points(config, rows=200, seed=0):
    """``(float64 probability, error in output LSB, x-axis label)`` of :func:`random_rows`,
    for plots."""
    x = random_rows(config, np.random.default_rng(seed), rows)
    x, lengths, mask = _arrays(config, x, None, None)
    got, want, prob, _ = _compare(config, x, lengths, mask)
    return prob, got - want, "float64 probability"


def errors(config, rows=1000, seed=0, *, x=None, lengths=None, mask=None):
    """Golden model against float64 softmax of the dequantized logits, in output LSB
    (``1/out_levels`` for u8/s8, one log2 step for log2): :func:`error_stats` over every
    element, plus
    the worst row-sum deviation ``row_sum_max_dev`` (probabilities, u8/s8) and its bound
    ``N * 2**-8``, and ``population`` (what the statistics cover). Default data:
    :func:`random_rows` of length ``n_max``."""
    rng = np.random.default_rng(seed)
    drawn = x is None
    if drawn:
        x = random_rows(config, rng, rows)
    x, lengths, mask = _arrays(config, x, lengths, mask)
    got, want, _, sums = _compare(config, x, lengths, mask)
    stats = error_stats(got, want)
    stats["rows"] = int(len(lengths))
    stats["elements"] = int(lengths.sum())
    stats["population"] = (f"over {stats['elements']} elements in {stats['rows']} "
                           + ("random rows (normal logits, sigma 0.5-8)" if drawn
                              else "given rows"))
    if config.output != "log2":
        stats["row_sum_max_dev"] = max(sums) if sums else 0.0
        stats["row_sum_bound"] = int(lengths.max()) * 2 ** -8
    return stats


#: registry-facing name (see :class:`accelgen.generators.registry.GeneratorSpec`)
run = softmax
