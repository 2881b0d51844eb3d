"""Float networks as users bring them: ``MODEL.npz`` with ``w0, b0, w1, b1, ...``.

``w{i}`` has shape (outputs, inputs) as in a PyTorch ``Linear``; ReLU sits between layers and
the last layer is linear. :class:`FloatNetwork` is also the float reference that accuracy is
measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FloatNetwork", "InputError", "load_frames", "load_labels", "check_frames"]


class InputError(ValueError):
    """A model or frame file the accelerator cannot take; the message says what to fix."""


@dataclass
class FloatNetwork:
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def __post_init__(self):
        if not self.weights:
            raise InputError("the model has no layers: it needs at least w0 and b0")
        for number, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if weight.ndim != 2:
                raise InputError(
                    f"w{number} must be a 2-D (outputs, inputs) array, not shape {weight.shape}")
            if bias.shape != (weight.shape[0],):
                raise InputError(
                    f"b{number} must have shape ({weight.shape[0]},) to match w{number} "
                    f"{weight.shape}, not {bias.shape}")
            for name, array in ((f"w{number}", weight), (f"b{number}", bias)):
                if not np.all(np.isfinite(array)):
                    raise InputError(f"{name} contains NaN or infinite values")
            if number and weight.shape[1] != self.weights[number - 1].shape[0]:
                raise InputError(
                    f"w{number} takes {weight.shape[1]} inputs but layer {number - 1} has "
                    f"{self.weights[number - 1].shape[0]} outputs")

    @classmethod
    def load(cls, path: str | Path) -> FloatNetwork:
        path = Path(path)
        archive = _np_load(path, "model", ".npz archive")
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise InputError(
                f"model file {str(path)!r} is a single array, not a NumPy .npz archive of "
                "w0, b0, w1, b1, ... (save it with numpy.savez)")
        with archive:
            names = set(archive.files)
            weights, biases = [], []
            while f"w{len(weights)}" in names:
                number = len(weights)
                if f"b{number}" not in names:
                    raise InputError(f"model file {str(path)!r} has w{number} but no b{number}")
                weights.append(cls._floats(archive, f"w{number}"))
                biases.append(cls._floats(archive, f"b{number}"))
            extra = sorted(names - {f"{kind}{n}" for n in range(len(weights)) for kind in "wb"})
            if not weights:
                raise InputError(
                    f"model file {str(path)!r} has no w0: expected arrays w0, b0, w1, b1, ...")
            if extra:
                raise InputError(
                    f"model file {str(path)!r} has unexpected arrays {', '.join(extra)}: "
                    f"expected w0..w{len(weights) - 1} and b0..b{len(weights) - 1} only")
        return cls(weights, biases)

    @staticmethod
    def _floats(archive, name: str) -> np.ndarray:
        array = archive[name]
        if not np.issubdtype(array.dtype, np.floating):
            raise InputError(f"{name} must hold floats, not {array.dtype}")
        return array.astype(np.float64)

    def save(self, path: str | Path) -> None:
        arrays = {}
        for number, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{number}"] = weight.astype(np.float32)
            arrays[f"b{number}"] = bias.astype(np.float32)
        np.savez(path, **arrays)

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [weight.shape[0] for weight in self.weights]

    @property
    def inputs(self) -> int:
        return self.sizes[0]

    def layer_inputs(self, frames: np.ndarray) -> list[np.ndarray]:
        """The input of every layer for each frame, and the network output last."""
        values = [np.asarray(frames, dtype=np.float64)]
        for number, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            out = values[-1] @ weight.T + bias
            if number < len(self.weights) - 1:
                out = np.maximum(out, 0.0)
            values.append(out)
        return values

    def forward(self, frames: np.ndarray) -> np.ndarray:
        return self.layer_inputs(frames)[-1]


def check_frames(frames: np.ndarray, inputs: int, source: str = "frames") -> np.ndarray:
    """Validate a (T, inputs) float array of frames."""
    frames = np.asarray(frames)
    if not np.issubdtype(frames.dtype, np.number) or np.iscomplexobj(frames):
        raise InputError(f"{source} must hold real numbers, not {frames.dtype}")
    if frames.ndim != 2 or frames.shape[1] != inputs or frames.shape[0] == 0:
        raise InputError(
            f"{source} must have shape (T, {inputs}) with T >= 1 for a model with {inputs} "
            f"inputs, not {frames.shape}")
    bad = ~np.isfinite(frames)
    if bad.any():
        t, i = np.argwhere(bad)[0]
        raise InputError(
            f"{source} contain {int(bad.sum())} NaN or infinite values (first at frame {t}, "
            f"input {i}); clean or impute them before running")
    return frames.astype(np.float64)


def load_frames(path: str | Path, inputs: int) -> np.ndarray:
    path = Path(path)
    frames = _np_load(path, "frames", ".npy array")
    if not isinstance(frames, np.ndarray):
        frames.close()
        raise InputError(
            f"frames file {str(path)!r} is an .npz archive; save the (T, inputs) array "
            "with numpy.save")
    return check_frames(frames, inputs, source=f"frames in {str(path)!r}")


def load_labels(path: str | Path, frames: int) -> np.ndarray:
    """Per-frame integer class labels, for reporting accuracy."""
    path = Path(path)
    labels = _np_load(path, "labels", ".npy array")
    if not isinstance(labels, np.ndarray) or labels.shape != (frames,) or \
            not np.issubdtype(labels.dtype, np.integer):
        shape = getattr(labels, "shape", "an archive")
        raise InputError(
            f"labels in {str(path)!r} must be {frames} integers, one per frame, not {shape}")
    return labels


def _np_load(path: Path, what: str, kind: str):
    """``np.load`` with the errors a user can act on."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{what} file {str(path)!r} does not exist") from None
    except (ValueError, OSError) as error:
        raise InputError(f"{what} file {str(path)!r} is not a NumPy {kind}: {error}") from None
