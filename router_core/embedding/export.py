"""Convert a sentence-transformers model for the other runtimes, in a child process.

    python -m router_core.embedding.export onnx MODEL_DIR OUT_DIR      # torch -> model.onnx
    python -m router_core.embedding.export int8 MODEL_ONNX OUT_DIR     # -> model.onnx, int8 weights
    python -m router_core.embedding.export openvino MODEL_ONNX OUT_DIR # -> model.xml + model.bin (fp32)

Run as a child process (`convert`), so the serving process never loads torch or a second
inference runtime (several runtimes in one process slowed each other down several times over).
The ONNX export wraps the transformer so it takes named inputs and returns only
last_hidden_state, with dynamic batch and sequence axes, traced with a padded batch (a batch
without padding may let transformers skip building the attention mask, and the trace would then
ignore padding). It uses torch's TorchScript exporter, which needs only the `onnx` package.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from router_core.errors import ModelUnavailable

ONNX_FILE = "model.onnx"
IR_FILE = "model.xml"
KINDS = ("onnx", "int8", "openvino")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def export_onnx(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Export the transformer of `model_dir` to `out_dir/model.onnx` (needs torch and onnx)."""
    import torch
    from transformers import AutoModel

    from router_core.embedding.layout import INPUT_NAMES, load_tokenizer, read_layout

    layout = read_layout(model_dir)
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    names = [n for n in INPUT_NAMES if n in inspect.signature(model.forward).parameters]

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state  # type: ignore[no-any-return]

    tokenizer = load_tokenizer(layout)
    encoded = tokenizer.encode_batch(["an example sentence to trace the export with padding", "short"])
    columns = {
        "input_ids": [e.ids for e in encoded],
        "attention_mask": [e.attention_mask for e in encoded],
        "token_type_ids": [e.type_ids for e in encoded],
    }
    sample = tuple(torch.tensor(columns[n]) for n in names)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            Wrapper(model).eval(),
            sample,
            str(out_dir / ONNX_FILE),
            dynamo=False,
            opset_version=17,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]},
        )
    return {"tools": {"torch": torch.__version__, "onnx": _version("onnx"), "transformers": _version("transformers")}}


def quantize_int8(onnx_file: Path, out_dir: Path) -> dict[str, Any]:
    """Dynamic int8 quantisation (per-channel weights) of an exported graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(onnx_file), str(out_dir / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True)
    return {"tools": {"onnxruntime": _version("onnxruntime"), "onnx": _version("onnx")}}


def convert_openvino(onnx_file: Path, out_dir: Path) -> dict[str, Any]:
    """Convert an exported graph to OpenVINO IR, keeping fp32 weights (save_model would halve
    them to fp16 by default, and the vectors would move)."""
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_file)), str(out_dir / IR_FILE), compress_to_fp16=False)
    return {"tools": {"openvino": _version("openvino")}}


def convert(kind: str, source: Path, out_dir: Path, *, timeout_s: float = 900.0) -> dict[str, Any]:
    """Run one conversion in a child process; ModelUnavailable with its error output on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "router_core.embedding.export", kind, str(source), str(out_dir)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"converting {source} to {kind} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ModelUnavailable(f"converting {source} to {kind} failed (exit {done.returncode}):\n{tail}")
    facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] not in KINDS:
        print(__doc__, file=sys.stderr)
        return 2
    kind, source, out_dir = args[0], Path(args[1]), Path(args[2])
    steps: Mapping[str, Any] = {"onnx": export_onnx, "int8": quantize_int8, "openvino": convert_openvino}
    facts = steps[kind](source, out_dir)
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
