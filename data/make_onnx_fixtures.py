"""Write the ONNX test fixtures: a tiny MLP exported by both ``torch.onnx.export`` forms.

The model is ``Flatten -> Linear(24, 10) -> ReLU -> Dropout -> Linear(10, 5)`` on an input of
shape (N, 2, 3, 4), with fixed weights (seed 0). It is exported with the classic TorchScript
exporter (``dynamo=False``, a symbolic batch dimension) to ``tests/data/mlp_classic.onnx``, and
with the dynamo exporter (``dynamo=True``) to ``tests/data/mlp_dynamo.onnx`` (a batch of 1) and
``tests/data/mlp_dynamo_batch.onnx`` (a symbolic batch dimension).

PyTorch is not a dependency of the project; run this in an environment that has it (it needs
no network access)::

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch onnx onnxscript
    /tmp/torchenv/bin/python data/make_onnx_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "data"
INPUT_SHAPE = (1, 2, 3, 4)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(24, 10), nn.ReLU(), nn.Dropout(0.25),
                          nn.Linear(10, 5))
    return model.eval()


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model = make_model()
    example = torch.randn(*INPUT_SHAPE)
    classic = OUT_DIR / "mlp_classic.onnx"
    torch.onnx.export(model, (example,), str(classic), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                      opset_version=17)
    print(f"wrote {classic} ({classic.stat().st_size} bytes)")
    dynamo = OUT_DIR / "mlp_dynamo.onnx"
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=["x"],
                                output_names=["y"], external_data=False)
    program.save(str(dynamo), external_data=False)
    print(f"wrote {dynamo} ({dynamo.stat().st_size} bytes)")
    batched = OUT_DIR / "mlp_dynamo_batch.onnx"
    program = torch.onnx.export(model, (torch.randn(2, *INPUT_SHAPE[1:]),), dynamo=True,
                                input_names=["x"], output_names=["y"], external_data=False,
                                dynamic_shapes=({0: torch.export.Dim("batch")},))
    program.save(str(batched), external_data=False)
    print(f"wrote {batched} ({batched.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
