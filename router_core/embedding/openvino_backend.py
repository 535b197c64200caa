"""The OpenVINO backend (CPU plugin) on a saved IR, in fp32 or, on request, bf16."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from router_core.embedding.graph import Feeds, GraphEmbedder
from router_core.embedding.layout import ModelLayout

Precision = Literal["f32", "bf16"]


class OpenVinoEmbedder(GraphEmbedder):
    """A model on OpenVINO's CPU plugin.

    The precision is always set: left to the plugin, a CPU with AMX or AVX512-BF16 computes in
    bf16, and the same index would be queried with other vectors on another machine. One stream
    per worker, `threads` threads each, latency hint; one infer request per stream.
    """

    def __init__(
        self,
        layout: ModelLayout,
        model_id: str,
        source: str,
        ir_file: Path,
        *,
        threads: int,
        workers: int,
        precision: Precision = "f32",
    ) -> None:
        import openvino as ov

        super().__init__(layout, model_id, source, threads=threads, workers=workers)
        self.backend = "openvino" if precision == "f32" else f"openvino-{precision}"
        core = ov.Core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": self.workers,
            "INFERENCE_NUM_THREADS": threads * self.workers,
            "INFERENCE_PRECISION_HINT": precision,
        }
        self._compiled = core.compile_model(core.read_model(str(ir_file)), "CPU", config)
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: "f32", "bf16"
        self.precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        self.input_names = tuple(p.get_any_name() for p in self._compiled.inputs)
        self._requests: queue.Queue[Any] = queue.Queue()
        for _ in range(self.workers):
            self._requests.put(self._compiled.create_infer_request())

    def _run(self, feeds: Feeds) -> npt.NDArray[Any]:
        request = self._requests.get()
        try:
            result = request.infer({k: feeds[k] for k in self.input_names})
            return np.array(result[self._compiled.output(0)])  # a copy: the request's buffer is reused
        finally:
            self._requests.put(request)
