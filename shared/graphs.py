"""Running an exported ONNX graph on the CPU, with ONNX Runtime or OpenVINO.

Apart from shared/runtime.py so that only the Spaces that serve a graph import the engines.
ONNX is a data format (a graph of standard operators and its weights): loading one runs no code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

ENGINES = ("onnxruntime", "openvino")
Run = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def open_graph(path: Path, *, engine: str = "onnxruntime", threads: int | None = None) -> Run:
    """A function running the ONNX graph at `path` on the CPU: {input name: array} -> outputs,
    in the graph's order. `threads`: intra-op threads (default: the engine's choice)."""
    if engine == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1  # one request at a time per model: no parallel branches
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda feeds: session.run(None, feeds)
    if engine == "openvino":
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(str(path), "CPU", config)
        request, lock = compiled.create_infer_request(), threading.Lock()

        def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            with lock:  # an infer request serves one caller at a time
                result = request.infer(feeds)
                return [np.array(result[out]) for out in compiled.outputs]

        return run
    raise ValueError(f"unknown engine {engine!r}; one of {ENGINES}")
