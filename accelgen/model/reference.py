"""The reference: onnxruntime's own execution of the quantized model (its CPU provider fuses
the QDQ groups into integer kernels: ``QLinearMatMul``, ``QGemm``, ``QLinearSoftmax``, ...),
with the quantized tensor after every mapped step read out as an extra graph output."""

import numpy as np

__all__ = ["run_reference"]


def run_reference(network, feeds):
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
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {k: np.asarray(v) for k, v in feeds.items()})
    return dict(zip(names, values))
