"""Write the ONNX test fixtures: a tiny MLP, two tiny CNNs and four tiny recurrent models
exported by both ``torch.onnx.export`` forms.

The MLP is ``Flatten -> Linear(24, 10) -> ReLU -> Dropout -> Linear(10, 5)`` on an input of
shape (N, 2, 3, 4), with fixed weights (seed 0). It is exported with the classic TorchScript
exporter (``dynamo=False``, a symbolic batch dimension) to ``tests/data/mlp_classic.onnx``, and
with the dynamo exporter (``dynamo=True``) to ``tests/data/mlp_dynamo.onnx`` (a batch of 1) and
``tests/data/mlp_dynamo_batch.onnx`` (a symbolic batch dimension).

The CNNs (:func:`make_cnn2d`, :func:`make_cnn1d`) use every layer the importer folds or maps:
``Conv2d``/``Conv1d`` with stride and padding, ``BatchNorm``, ``ReLU``, ``MaxPool``, ``AvgPool``
(with padding), ``AdaptiveAvgPool(1)``, ``Flatten`` and ``Linear``. They are exported with
random batch-norm statistics, by both exporters, to ``tests/data/cnn2d_{classic,dynamo}.onnx``
and ``tests/data/cnn1d_{classic,dynamo}.onnx``.

The recurrent models (:func:`export_recurrent`) stack two LSTM or two GRU layers (5 inputs,
hidden 7) under a ``Linear(7, 3)`` applied to every time step, ``batch_first`` either way, to
``tests/data/{lstm,gru}_{seq,batch}_first_{classic,dynamo}.onnx``.

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


CNN2D_INPUT = (1, 3, 12, 16)
CNN1D_INPUT = (1, 4, 40)


def _randomize_norms(model: nn.Module) -> nn.Module:
    """Batch norms with statistics a trained model could have, so that folding them shows."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.2)
    return model.eval()


def make_cnn2d() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_norms(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, (3, 5), stride=2, padding=(1, 2), bias=False), nn.BatchNorm2d(12),
        nn.ReLU(), nn.AvgPool2d(2, stride=1, padding=1),
        nn.Conv2d(12, 6, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 5)))


def make_cnn1d() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_norms(nn.Sequential(
        nn.Conv1d(4, 6, 5, stride=2, padding=2), nn.BatchNorm1d(6), nn.ReLU(),
        nn.MaxPool1d(3, stride=2, padding=1), nn.Conv1d(6, 8, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 8, 10), nn.ReLU(), nn.Linear(10, 3)))


RNN_FEATURES, RNN_STEPS = 5, 6


class Recurrent(nn.Module):
    """Two stacked LSTM or GRU layers (hidden 7) and a Linear(7, 3) on every time step."""

    def __init__(self, kind: str, batch_first: bool):
        super().__init__()
        self.rnn = getattr(nn, kind)(RNN_FEATURES, 7, num_layers=2, batch_first=batch_first)
        self.fc = nn.Linear(7, 3)

    def forward(self, x):
        return self.fc(self.rnn(x)[0])


def export_recurrent(kind: str, batch_first: bool) -> None:
    """``{lstm,gru}_{seq,batch}_first_{classic,dynamo}.onnx``: the classic export with symbolic
    time and batch axes, the dynamo export with the example's 6 steps and batch 1."""
    torch.manual_seed(0)
    model = Recurrent(kind, batch_first).eval()
    shape = (1, RNN_STEPS, RNN_FEATURES) if batch_first else (RNN_STEPS, 1, RNN_FEATURES)
    axes = {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}
    stem = f"{kind.lower()}_{'batch' if batch_first else 'seq'}_first"
    export_both(model, shape, stem, axes)


def export_both(model: nn.Module, shape: tuple[int, ...], stem: str,
                axes: dict | None = None) -> None:
    """``{stem}_classic.onnx`` with ``axes`` symbolic (default: the batch) and
    ``{stem}_dynamo.onnx`` at the example's shape."""
    axes = {0: "batch"} if axes is None else axes
    example = torch.randn(*shape)
    classic = OUT_DIR / f"{stem}_classic.onnx"
    torch.onnx.export(model, (example,), str(classic), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": axes, "y": axes}, opset_version=17)
    print(f"wrote {classic} ({classic.stat().st_size} bytes)")
    dynamo = OUT_DIR / f"{stem}_dynamo.onnx"
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=["x"],
                                output_names=["y"], external_data=False)
    program.save(str(dynamo), external_data=False)
    print(f"wrote {dynamo} ({dynamo.stat().st_size} bytes)")


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
    export_both(make_cnn2d(), CNN2D_INPUT, "cnn2d")
    export_both(make_cnn1d(), CNN1D_INPUT, "cnn1d")
    for kind in ("LSTM", "GRU"):
        for batch_first in (False, True):
            export_recurrent(kind, batch_first)


if __name__ == "__main__":
    main()
