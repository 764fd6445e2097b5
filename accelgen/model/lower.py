"""Quantized tensors and the lowering of a network step to integer operations
(:mod:`accelgen.sim.golden.ops`), with every real scale turned into exact integer terms.

GEMM (``MatMul``/``Gemm`` with DQ inputs, Q output)
    With ``a = s_a (A - z_a)``, ``b = s_b[j] (B - z_b[j])`` (per-tensor or per output column)
    and the output ``y = s_y (Y - z_y)``::

        Y[m, j] = sat(round(acc[m, j] * s_a s_b[j] alpha / s_y) + z_y)
        acc = sum_k A B - z_a colsum_j(B) - z_b[j] rowsum_m(A) + K z_a z_b[j] + bias[j]

    The three zero-point terms and the bias go into ``C`` (``acc`` units, preloaded into the
    accumulators): a constant per column for weights, per element for two activations (as
    gemmlowp's offset kernels do). ``bias[j] = round_half_even(beta * bias_real[j] / (s_a
    s_b[j]))``; onnxruntime stores a ``Gemm`` bias as int32 at exactly that scale, so it is
    exact there. ``u8`` B codes are moved to ``s8`` (``B - 128``, ``z_b - 128``), exactly.

Conv (``Conv`` with DQ inputs, Q output; ``group = 1``)
    im2col: every output position's receptive field becomes a row of A (``C * kh * kw``
    codes, channel-major as the weights are stored), padding filled with the input's zero
    point (the code of real 0), so ``Conv = im2col(X) . W^T`` is the GEMM above with one
    column per output channel; its result rows are the output positions, returned to
    ``N x O x Ho x Wo``.
"""

from dataclasses import dataclass

import numpy as np

from ..numerics import ConfigError
from ..sim.golden.ops import ElementwiseOp, GemmOp, SoftmaxOp

__all__ = ["QTensor", "quantize", "lower_gemm", "lower_conv", "im2col", "lower_elementwise",
           "lower_softmax", "format_of"]


def format_of(dtype):
    """``"s8"``/``"u8"`` of an int8/uint8 numpy dtype; :class:`ConfigError` otherwise."""
    dtype = np.dtype(dtype)
    if dtype == np.int8:
        return "s8"
    if dtype == np.uint8:
        return "u8"
    raise ConfigError(f"model: a quantized tensor of type {dtype} is not allowed; expected "
                      f"int8 or uint8")


@dataclass(eq=False)
class QTensor:
    """Integer codes standing for ``scale * (codes - zero_point)``.

    Members
    -------
    codes : int64 array
    scale : float, or float array along ``axis`` (per-channel)
    zero_point : int, or int array along ``axis``
    fmt : ``"s8"`` or ``"u8"``
    axis : int or None
        The axis of per-channel ``scale``/``zero_point``.
    """
    codes: np.ndarray
    scale: object
    zero_point: object
    fmt: str
    axis: object = None

    def _along(self, values):
        values = np.asarray(values)
        if values.ndim == 0 or self.axis is None:
            return values
        shape = [1] * self.codes.ndim
        shape[self.axis] = -1
        return values.reshape(shape)

    def real(self):
        """The real values (float64)."""
        return (self.codes - self._along(self.zero_point)) * self._along(self.scale)

    @property
    def per_tensor(self):
        return np.ndim(self.scale) == 0 and np.ndim(self.zero_point) == 0


def quantize(x, scale, zero_point, dtype, axis=1):
    """ONNX ``QuantizeLinear``: ``saturate(round_half_even(x / scale) + zero_point)`` into
    ``dtype`` (int8/uint8), per tensor or along ``axis``. Returns a :class:`QTensor`."""
    x = np.asarray(x, np.float64)
    scale = np.asarray(scale, np.float32)
    zero_point = np.asarray(zero_point, np.int64)
    if scale.ndim:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, z = scale.reshape(shape), zero_point.reshape(shape)
    else:
        s, z, axis = scale, zero_point, None
    info = np.iinfo(dtype)
    # ONNX divides in float32 (the input's type); then rounds half to even
    q = np.rint(np.float32(x) / s).astype(np.int64) + z
    codes = np.clip(q, info.min, info.max)
    return QTensor(codes, scale.astype(np.float64) if scale.ndim else float(scale),
                   zero_point if zero_point.ndim else int(zero_point), format_of(dtype), axis)


def _column_params(t, trans, columns):
    """Per-column ``(scale, zero point)`` arrays of a B operand (``trans``: stored N x K)."""
    if t.per_tensor:
        return np.full(columns, float(t.scale)), np.full(columns, int(t.zero_point), np.int64)
    want = 0 if trans else t.codes.ndim - 1
    if t.axis not in (want, want - t.codes.ndim):
        raise ConfigError(f"model: per-channel B scales along axis {t.axis} are not allowed; "
                          f"expected the output-column axis {want}")
    return np.asarray(t.scale, float).reshape(-1), np.asarray(t.zero_point, np.int64).reshape(-1)


def _as_s8(codes, zero_point, fmt):
    """``u8`` codes moved to ``s8`` (``- 128`` on codes and zero point): the same reals."""
    if fmt == "u8":
        return codes - 128, zero_point - 128, "s8"
    return codes, zero_point, fmt


def lower_gemm(a, b, out_scale, out_zero_point, out_dtype, *, trans_a=False, trans_b=False,
               alpha=1.0, beta=1.0, bias=None, relu=False):
    """The :class:`~accelgen.sim.golden.ops.GemmOp`\\ s of ``a . b`` (QTensors; leading axes
    of ``a`` are rows when ``b`` is a matrix, batch axes when both have them) with output
    parameters ``out_scale``/``out_zero_point`` and the real ``bias`` (float array of N or
    None). Returns ``(ops, output shape, reshape)``: ``reshape(results)`` stacks the ops'
    M x N results into the output tensor."""
    if not a.per_tensor:
        raise ConfigError("model: per-channel scales on a GEMM's A operand are not allowed; "
                          "expected per-tensor activations")
    A = np.asarray(a.codes, np.int64)
    B = np.asarray(b.codes, np.int64)
    if trans_a:
        A = np.swapaxes(A, -1, -2)
    if trans_b:
        B = np.swapaxes(B, -1, -2)
    n = B.shape[-1]
    sb, zb = _column_params(b, trans_b, n)
    B, zb, b_fmt = _as_s8(B, zb, b.fmt)
    za = int(a.zero_point)
    if B.ndim == 2:
        lead = A.shape[:-1]
        As, Bs = [A.reshape(-1, A.shape[-1])], [B]
        out_shape = (*lead, n)
    else:
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        A2 = np.broadcast_to(A, (*batch, *A.shape[-2:])).reshape(-1, *A.shape[-2:])
        B2 = np.broadcast_to(B, (*batch, *B.shape[-2:])).reshape(-1, *B.shape[-2:])
        As, Bs = list(A2), list(B2)
        out_shape = (*batch, A.shape[-2], n)
    k = As[0].shape[1]
    if Bs[0].shape[0] != k:
        raise ConfigError(f"model: GEMM operands {A.shape} and {B.shape} do not agree on K")
    if not alpha > 0:
        raise ConfigError(f"model: Gemm alpha {alpha!r} is not allowed; expected a positive "
                          f"number (the requantizer's multiplier is unsigned)")
    acc_scale = float(a.scale) * sb
    if np.any(acc_scale <= 0) or not float(out_scale) > 0:
        raise ConfigError("model: a GEMM with a scale of zero or below is not allowed; "
                          "expected positive scales")
    if bias is not None:
        bias = np.asarray(bias, np.float64).reshape(-1)
        if bias.size not in (1, n):
            raise ConfigError(f"model: a GEMM bias of {bias.size} values is not allowed; "
                              f"expected one per output column ({n})")
        # Y = alpha A.B + beta C: the bias joins the accumulator of A.B in its units
        bias_acc = np.rint(beta * bias / (acc_scale * alpha))
        bias_acc = np.broadcast_to(bias_acc.astype(np.int64), (n,))
    else:
        bias_acc = np.zeros(n, np.int64)
    scale = acc_scale * alpha / float(out_scale)
    ops = []
    for Am, Bm in zip(As, Bs):
        c = (bias_acc[None, :] - za * Bm.sum(axis=0)[None, :]
             - zb[None, :] * Am.sum(axis=1)[:, None] + k * za * zb[None, :])
        ops.append(GemmOp(a=Am, a_format=a.fmt, b=Bm, b_format=b_fmt,
                          c=c if np.any(c) else None, scale=scale,
                          zero_point=int(out_zero_point), out_signed=format_of(out_dtype) == "s8",
                          relu=relu))

    def reshape(results):
        return np.stack(results).reshape(out_shape)

    return ops, out_shape, reshape


def lower_elementwise(x, function, out_scale, out_zero_point, out_dtype):
    """The :class:`~accelgen.sim.golden.ops.ElementwiseOp` of ``function`` on QTensor ``x``."""
    if not x.per_tensor:
        raise ConfigError(f"model: per-channel scales on the input of {function} are not "
                          f"allowed; expected per-tensor input scales")
    return ElementwiseOp(x=x.codes, function=function, in_format=x.fmt, in_scale=float(x.scale),
                         in_zero_point=int(x.zero_point), out_format=format_of(out_dtype),
                         out_scale=float(out_scale), out_zero_point=int(out_zero_point))


def lower_softmax(x, out_scale=None, out_zero_point=None):
    """The :class:`~accelgen.sim.golden.ops.SoftmaxOp` over the last axis of QTensor ``x``,
    asking for the output quantization of the model's Q node."""
    if not x.per_tensor:
        raise ConfigError("model: per-channel scales on Softmax logits are not allowed")
    return SoftmaxOp(x=x.codes, in_format=x.fmt, in_scale=float(x.scale),
                     in_zero_point=int(x.zero_point), out_scale=out_scale,
                     out_zero_point=out_zero_point)


def im2col(x, kernel, *, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), fill=0):
    """Rows of receptive fields of ``x`` (``N x C x H x W`` codes) for a ``kh x kw`` kernel:
    ``(N * Ho * Wo) x (C * kh * kw)``, row ``(n, i, j)`` (row-major) holding ``x[n, c, i*sh +
    a*dh - top, j*sw + b*dw - left]`` at column ``(c, a, b)`` (row-major), ``fill`` where that
    lies in the padding. ``pads`` = ``(top, left, bottom, right)`` as ONNX orders them.
    Returns ``(rows, (Ho, Wo))``."""
    x = np.asarray(x)
    n, c, h, w = x.shape
    kh, kw = kernel
    (sh, sw), (dh, dw) = strides, dilations
    top, left, bottom, right = pads
    padded = np.full((n, c, h + top + bottom, w + left + right), fill, dtype=x.dtype)
    padded[:, :, top:top + h, left:left + w] = x
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ConfigError(f"model: a {kh}x{kw} kernel does not fit a {h}x{w} input")
    rows = np.empty((n, ho, wo, c, kh, kw), dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            rows[..., a, b] = padded[:, :, a * dh:a * dh + sh * (ho - 1) + 1:sh,
                                     b * dw:b * dw + sw * (wo - 1) + 1:sw].transpose(0, 2, 3, 1)
    return rows.reshape(n * ho * wo, c * kh * kw), (ho, wo)


def lower_conv(x, w, out_scale, out_zero_point, out_dtype, *, strides=(1, 1),
               pads=(0, 0, 0, 0), dilations=(1, 1), bias=None, relu=False):
    """The GEMM operations of ``Conv(x, w)`` (QTensors ``N x C x H x W`` and ``O x C x kh x
    kw``, weights per tensor or per output channel) by :func:`im2col`; returns ``(ops, output
    shape, reshape)`` as :func:`lower_gemm` does, the output ``N x O x Ho x Wo``."""
    if not x.per_tensor:
        raise ConfigError("model: per-channel scales on a Conv input are not allowed")
    n = x.codes.shape[0]
    o, c, kh, kw = w.codes.shape
    if x.codes.shape[1] != c:
        raise ConfigError(f"model: Conv of {x.codes.shape[1]} input channels with weights for "
                          f"{c} (group > 1) is not supported")
    rows, (ho, wo) = im2col(x.codes, (kh, kw), strides=strides, pads=pads,
                            dilations=dilations, fill=int(x.zero_point))
    a = QTensor(rows, x.scale, x.zero_point, x.fmt)
    if w.per_tensor:
        b = QTensor(w.codes.reshape(o, -1), w.scale, w.zero_point, w.fmt)
    else:
        b = QTensor(w.codes.reshape(o, -1), w.scale, w.zero_point, w.fmt, axis=0)
    ops, _, reshape_rows = lower_gemm(a, b, out_scale, out_zero_point, out_dtype, trans_b=True,
                                      bias=bias, relu=relu)

    def reshape(results):
        return reshape_rows(results).reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    return ops, (n, o, ho, wo), reshape
