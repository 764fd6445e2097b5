"""Host steps: one ONNX node run by onnxruntime on the CPU, in the model's own semantics
(float arithmetic where the node has it), for the nodes no block runs."""

import numpy as np

__all__ = ["run_node"]


def _value_info(name, value):
    from onnx import helper
    arr = np.asarray(value)
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype),
                                         list(arr.shape))


def run_node(model, node, values):
    """Outputs (list of arrays) of ``node`` of ``model`` on input ``values`` (arrays in
    ``node.input`` order; None for an omitted optional input)."""
    import onnxruntime as ort
    from onnx import helper
    names = [n for n in node.input if n]
    feeds = {name: np.asarray(v) for name, v in zip(node.input, values) if name}
    graph = helper.make_graph(
        [node], "host_step", [_value_info(n, feeds[n]) for n in names],
        [helper.make_empty_tensor_value_info(n) for n in node.output if n])
    single = helper.make_model(graph, opset_imports=list(model.opset_import),
                               ir_version=model.ir_version)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(single.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    outs = session.run(None, feeds)
    return list(outs)
