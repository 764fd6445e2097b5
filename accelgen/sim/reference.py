"""Float64 truth for the approximators and the error statistics every report uses.

Errors are in output LSB: ``golden code - reference`` where the reference is a real number
in the same units (an output code before rounding). ``max_abs`` is the worst case,
``mean_abs`` the average magnitude, ``mean`` the average signed error (bias).
"""

import math

import numpy as np

__all__ = ["error_stats", "softmax_float"]


def error_stats(codes, reference):
    """``{"max_abs", "mean_abs", "mean", "worst_index"}`` of ``codes - reference`` (floats,
    output LSB; ``worst_index`` is the flat index of the largest error)."""
    err = np.asarray(codes, np.float64) - np.asarray(reference, np.float64)
    flat = np.abs(err).ravel()
    worst = int(np.argmax(flat)) if flat.size else 0
    return {"max_abs": float(flat.max()) if flat.size else 0.0,
            "mean_abs": float(flat.mean()) if flat.size else 0.0,
            "mean": float(err.mean()) if flat.size else 0.0,
            "worst_index": worst}


def softmax_float(logits, scale, keep=None):
    """Float64 softmax of ``scale * logits`` over the elements where ``keep`` is true (others
    get probability 0; a row with none kept is all 0). ``logits``: 1-D integer codes."""
    x = np.asarray(logits, np.float64) * scale
    keep = np.ones(x.shape, bool) if keep is None else np.asarray(keep, bool)
    out = np.zeros(x.shape, np.float64)
    if keep.any():
        m = x[keep].max()
        e = np.where(keep, np.exp(np.where(keep, x - m, 0.0)), 0.0)
        out = e / math.fsum(e)
    return out
