"""The reference: onnxruntime's own execution of the quantized model, with the quantized
tensors before and after every mapped step read out as extra graph outputs.

Two references (:data:`REFERENCES`):

``int8``  onnxruntime as deployed: its CPU provider fuses the QDQ groups into integer kernels
          (``QLinearMatMul``, ``QGemm``, ``QLinearSoftmax``, ...), each with its own
          approximations (table-based exponentials, float requantization).
``qdq``   graph optimizations off: every node runs as the ONNX specification defines it,
          float operators between ``DequantizeLinear`` and ``QuantizeLinear``: the model's
          own arithmetic, the exactly rounded result of each quantized operator.
"""

import numpy as np

__all__ = ["run_reference", "REFERENCES"]

REFERENCES = ("int8", "qdq")


def run_reference(network, feeds, reference="int8"):
    """``{tensor name: array}``: the graph outputs and every mapped step's input and output
    codes, as onnxruntime computes them for ``feeds``."""
    import onnxruntime as ort
    from onnx import helper
    model = type(network.model)()
    model.CopyFrom(network.model)
    have = {o.name for o in model.graph.output}
    wanted = list(network.quantized_outputs)
    for step in network.steps:
        if step.mapped:
            wanted += network.step_sources(step)
    for name in dict.fromkeys(wanted):
        if name not in have:
            model.graph.output.append(helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if reference == "qdq":
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {k: np.asarray(v) for k, v in feeds.items()})
    return dict(zip(names, values))
