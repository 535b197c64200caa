"""The ONNX Runtime backend (CPU): the exported transformer graph, tokenised and pooled here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt

from router_core.embedding.graph import Feeds, GraphEmbedder
from router_core.embedding.layout import ModelLayout


class OnnxEmbedder(GraphEmbedder):
    """A model on ONNX Runtime's CPU execution provider.

    `threads` intra-op threads per forward pass (inter-op 1, sequential execution, every graph
    optimisation). With more than one thread, idle workers do not spin: on a shared machine a
    spinning pool takes a core from whoever else runs. The session is thread-safe, so bulk
    encodes run `workers` passes at once.
    """

    def __init__(
        self,
        layout: ModelLayout,
        model_id: str,
        source: str,
        onnx_file: Path,
        *,
        threads: int,
        workers: int,
        backend: str = "onnx",
    ) -> None:
        import onnxruntime as ort

        super().__init__(layout, model_id, source, threads=threads, workers=workers)
        self.backend = backend
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 1:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self._session.get_inputs())

    def _run(self, feeds: Feeds) -> npt.NDArray[Any]:
        out: npt.NDArray[Any] = self._session.run(["last_hidden_state"], {k: feeds[k] for k in self.input_names})[0]
        return out
