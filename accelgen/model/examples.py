"""Example networks for ``accelgen run``, built from nothing but seeds and scikit-learn's
bundled digits data (nothing is downloaded): the float ONNX model, its int8 QDQ quantization by
onnxruntime's static quantizer, and an inputs file with labels.

::

    python -m accelgen.model.examples mlp -o models/      # models/mlp.onnx, mlp_int8.onnx,
    accelgen run models/mlp_int8.onnx --inputs models/mlp_inputs.npz

Needs scikit-learn and skl2onnx (the ``test`` extra) besides onnx and onnxruntime.
"""

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Example", "digits_split", "digits_mlp", "encoder_block", "digits_cnn",
           "quantize_int8", "EXAMPLES"]

CALIBRATION_ROWS = 256
CALIBRATION_STEP = 64


def _steps(x_train):
    """The calibration images (the first 256 training images) in steps of 64."""
    rows = x_train[:CALIBRATION_ROWS]
    return [rows[i:i + CALIBRATION_STEP] for i in range(0, len(rows), CALIBRATION_STEP)]


@dataclass
class Example:
    """What an example builder wrote.

    Members
    -------
    float_model, model, inputs : Path
        The float ONNX model, its int8 QDQ quantization and the ``--inputs`` file.
    float_accuracy : float or None
        Top-1 accuracy of the float model on the inputs' labels.
    """
    float_model: Path
    model: Path
    inputs: Path
    float_accuracy: object = None


def digits_split(seed=0):
    """``(x_train, x_test, y_train, y_test)``: scikit-learn's 1797 8x8 digits scaled to
    [0, 1] (float32), 20 % held out (360 images), split with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y, test_size=0.2, random_state=seed)


def quantize_int8(float_path, out_path, calibration, *, per_channel=False,
                  activation_type="int8", quant_format="qdq", extra_options=None):
    """onnxruntime's static quantizer: int8 weights (symmetric), int8 or uint8 activations
    calibrated by min/max on ``calibration`` (``{input name: [array per calibration step]}``;
    min/max calibration does not depend on how rows are grouped into steps), in the QDQ
    format (``quant_format="qdq"``) or the QOperator one (``"qoperator"``)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            name, steps = next(iter(calibration.items()))
            self.rows = iter([{name: step} for step in steps])

        def get_next(self):
            return next(self.rows, None)

    act = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[activation_type]
    import logging
    logging.getLogger().setLevel(logging.ERROR)     # the quantizer's pre-processing advice
    fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[quant_format]
    quantize_static(str(float_path), str(out_path), Reader(), quant_format=fmt,
                    activation_type=act, weight_type=QuantType.QInt8, per_channel=per_channel,
                    extra_options=extra_options or {})
    return Path(out_path)


def digits_mlp(out_dir, *, hidden=64, seed=0, per_channel=False, activation_type="int8"):
    """An MLP (64 -> ``hidden`` ReLU -> 10 Softmax) trained on the digits training split with
    scikit-learn, converted with skl2onnx (``label`` and ``probabilities`` outputs) and
    quantized on the first 256 training images. Returns an :class:`Example` (inputs: the 360
    test images and their labels)."""
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = digits_split(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=300,
                            random_state=seed).fit(x_train, y_train)
    model = to_onnx(clf, x_train[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    float_path = out_dir / "mlp.onnx"
    float_path.write_bytes(model.SerializeToString())
    name = model.graph.input[0].name
    q = quantize_int8(float_path, out_dir / "mlp_int8.onnx", {name: _steps(x_train)},
                     per_channel=per_channel, activation_type=activation_type)
    inputs = out_dir / "mlp_inputs.npz"
    np.savez(inputs, **{name: x_test, "labels": y_test.astype(np.int64)})
    return Example(float_path, q, inputs, float(clf.score(x_test, y_test)))


def _encoder_graph(rng, seq, width, heads, ffn):
    """The float encoder block (see :func:`encoder_block`) as an ONNX graph."""
    from onnx import TensorProto, helper, numpy_helper
    dh = width // heads
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32)
                                             if np.asarray(value).dtype.kind == "f"
                                             else np.asarray(value), name))
        return name

    def linear(name, x, n_in, n_out, fold=1.0):
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)) * fold
        b = rng.normal(0, 0.1, n_out) * fold
        nodes.append(helper.make_node("Gemm", [x, const(f"{name}.w", w), const(f"{name}.b", b)],
                                      [name], name=name))
        return name

    def layer_norm(name, x):
        nodes.append(helper.make_node(
            "LayerNormalization", [x, const(f"{name}.g", 1 + rng.normal(0, 0.1, width)),
                                   const(f"{name}.beta", rng.normal(0, 0.1, width))], [name],
            name=name, axis=-1, epsilon=1e-5))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    heads_shape = const("heads_shape", np.array([-1, seq, heads, dh], np.int64))
    rows_shape = const("rows_shape", np.array([-1, width], np.int64))
    # 1/sqrt(dh) folded into the query projection, as exporters of fused attention do
    q = linear("q", "x", width, width, fold=1 / np.sqrt(dh))
    k = linear("k", "x", width, width)
    v = linear("v", "x", width, width)
    qh = node("Transpose", [node("Reshape", [q, heads_shape], "q_heads")], "q_t",
              perm=[0, 2, 1, 3])
    kh = node("Transpose", [node("Reshape", [k, heads_shape], "k_heads")], "k_t",
              perm=[0, 2, 3, 1])
    vh = node("Transpose", [node("Reshape", [v, heads_shape], "v_heads")], "v_t",
              perm=[0, 2, 1, 3])
    scores = node("MatMul", [qh, kh], "scores")
    probs = node("Softmax", [scores], "probs", axis=-1)
    ctx = node("MatMul", [probs, vh], "context")
    ctx = node("Reshape", [node("Transpose", [ctx], "context_t", perm=[0, 2, 1, 3]),
                           rows_shape], "context_rows")
    attn = linear("attn_out", ctx, width, width)
    h1 = layer_norm("ln1", node("Add", ["x", attn], "residual1"))
    f = linear("ffn1", h1, width, ffn)
    f = node("Gelu", [f], "gelu")
    f = linear("ffn2", f, ffn, width)
    out = layer_norm("ln2", node("Add", [h1, f], "residual2"))
    graph = helper.make_graph(
        nodes, "encoder_block",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def encoder_block(out_dir, *, seq=32, width=64, heads=4, ffn=128, sequences=4, seed=0,
                  activation_type="int8"):
    """One transformer encoder block (post-LayerNorm, as BERT): multi-head self-attention
    (Gemm projections with bias, per-head MatMuls, Softmax), residual Add, LayerNorm, a GELU
    feed-forward network, residual Add, LayerNorm; weights drawn from ``seed``. The input
    ``x`` holds the tokens of several sequences of ``seq`` tokens, one per row ([N * seq,
    width]). Quantized on 32 random sequences; inputs: ``sequences`` other ones."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    model = _encoder_graph(rng, seq, width, heads, ffn)
    float_path = out_dir / "encoder.onnx"
    float_path.write_bytes(model.SerializeToString())
    calib = rng.normal(0, 1, (32, seq, width)).astype(np.float32)
    q = quantize_int8(float_path, out_dir / "encoder_int8.onnx", {"x": list(calib)},
                     activation_type=activation_type)
    inputs = out_dir / "encoder_inputs.npz"
    np.savez(inputs, x=rng.normal(0, 1, (sequences * seq, width)).astype(np.float32))
    return Example(float_path, q, inputs)


def _cnn_graph(rng, classes=None):
    """Two 3x3 convolutions (1 -> 8 channels, then 8 -> 16 with stride 2; ReLU after each),
    Flatten, and (with ``classes = (weights, bias)``) a Gemm classifier and Softmax."""
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(rng.normal(0, 1 / 3, (8, 1, 3, 3)).astype(np.float32),
                                     "conv1.w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "conv1.b"),
             numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(72), (16, 8, 3, 3))
                                     .astype(np.float32), "conv2.w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "conv2.b")]
    nodes = [helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv1",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "conv2.w", "conv2.b"], ["c2"], name="conv2",
                              pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["features"], name="flatten")]
    out, width = "features", 256
    if classes is not None:
        w, b = classes
        inits += [numpy_helper.from_array(w.astype(np.float32), "fc.w"),
                  numpy_helper.from_array(b.astype(np.float32), "fc.b")]
        nodes += [helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"], name="fc"),
                  helper.make_node("Softmax", ["logits"], ["probabilities"], name="probs",
                                   axis=-1)]
        out, width = "probabilities", w.shape[1]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def digits_cnn(out_dir, *, seed=0):
    """A small CNN on the 8x8 digits (``Conv`` runs as an im2col GEMM): two seeded random
    3x3 convolution layers with ReLU (8 and 16 channels, the second with stride 2), and a
    linear classifier over their 256 features trained by scikit-learn (multinomial logistic
    regression), then Softmax; quantized on 256 training images. Returns an
    :class:`Example` (inputs: the 360 test images as ``1 x 8 x 8`` and their labels)."""
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = (a.reshape(-1, 1, 8, 8) if a.ndim == 2 else a
                                        for a in digits_split(seed))
    rng = np.random.default_rng(seed)
    state = rng.bit_generator.state
    features = ort.InferenceSession(_cnn_graph(rng).SerializeToString())
    f_train, f_test = (features.run(None, {"x": x})[0] for x in (x_train, x_test))
    clf = LogisticRegression(max_iter=2000, C=0.5).fit(f_train, y_train)
    rng.bit_generator.state = state         # the same convolution weights again
    model = _cnn_graph(rng, (clf.coef_.T, clf.intercept_))
    float_path = out_dir / "cnn.onnx"
    float_path.write_bytes(model.SerializeToString())
    q = quantize_int8(float_path, out_dir / "cnn_int8.onnx", {"x": _steps(x_train)})
    inputs = out_dir / "cnn_inputs.npz"
    np.savez(inputs, x=x_test, labels=y_test.astype(np.int64))
    return Example(float_path, q, inputs, float(clf.score(f_test, y_test)))


EXAMPLES = {"mlp": digits_mlp, "encoder": encoder_block, "cnn": digits_cnn}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m accelgen.model.examples",
                                     description="write an example model for accelgen run")
    parser.add_argument("example", choices=sorted(EXAMPLES))
    parser.add_argument("-o", "--output", default="models", metavar="DIR")
    args = parser.parse_args(argv)
    ex = EXAMPLES[args.example](args.output)
    print(json.dumps({k: str(v) for k, v in vars(ex).items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
