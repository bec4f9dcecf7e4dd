"""The patent scorer's CPU fast path at serve time: the exported graph (model.onnx) on ONNX
Runtime. onnx_export.py writes it at train time; `predict.load` picks it on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shared import runtime
from shared.graphs import open_graph

EXPORT = runtime.EXPORT
ENGINE = "onnxruntime"


class Graph:
    """The exported graph, ready to score: (input_ids, attention_mask) -> logits (batch,)."""

    def __init__(self, path: Path, config, *, threads: int | None = None):
        self.config = config  # what the predictor reads: template, titles, contexts, split
        self.engine = ENGINE
        self._run = open_graph(path, engine=ENGINE, threads=threads or torch.get_num_threads())

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self._run(feeds)[0][:, 0]
