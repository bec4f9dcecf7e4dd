"""The classifier's CPU fast path at serve time: the exported graph (model.onnx) on OpenVINO,
which was faster than ONNX Runtime for convnext here (bench/RESULTS.md). onnx_export.py writes
it at train time; `predict.load` picks it on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shared import runtime
from shared.graphs import open_graph

EXPORT = runtime.EXPORT
ENGINE = "openvino"


class Graph:
    """The exported graph, ready to run: preprocessed pixels -> (logits, feature maps)."""

    def __init__(self, path: Path, *, engine: str = ENGINE, threads: int | None = None):
        self.engine = engine
        self._run = open_graph(path, engine=engine, threads=threads or torch.get_num_threads())

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.float32)
        logits, features = self._run({"pixels": x})
        return torch.from_numpy(logits), torch.from_numpy(features)
