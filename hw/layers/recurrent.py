"""Recurrent layers (LSTM and GRU): their shape and the float cell they compute.

A recurrent layer takes one time step ``x_t`` of ``inputs`` values per frame and keeps a hidden
state ``h`` of ``hidden`` values (and an LSTM its cell state ``c``), both zero at the start of a
sequence. Its gate pre-activations are one dense product over ``[x_t ; h_{t-1}]``::

    a_t = W · [x_t ; h_{t-1}] + b        (4 * hidden sums, W is (4H, inputs + H))

so that a change in either half corrects them as a change of a dense layer's input does, and
an element-wise stage computes the new state from them. The four groups of ``hidden`` sums are,
in order (ONNX's gate order):

- LSTM: ``i``, ``o``, ``f``, ``c``: ``i = σ(a_i)``, ``o = σ(a_o)``, ``f = σ(a_f)``,
  ``g = tanh(a_c)``, ``c_t = f ⊙ c_{t-1} + i ⊙ g``, ``h_t = o ⊙ tanh(c_t)``;
- GRU (PyTorch's form, ONNX ``linear_before_reset = 1``): ``z``, ``r``, ``n_x``, ``n_h``, where
  ``n_x = W_in x_t + b_in`` and ``n_h = W_hn h_{t-1} + b_hn`` are kept apart (their weight rows
  are zero over the other half) because ``r`` multiplies ``n_h`` element-wise:
  ``z = σ(a_z)``, ``r = σ(a_r)``, ``n = tanh(n_x + r ⊙ n_h)``,
  ``h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}``.

The ONNX importer (:mod:`reuse_accel.sw.onnx_import`) builds ``W`` and ``b`` in this layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CELLS", "RecurrentShape", "recurrent_step"]

CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class RecurrentShape:
    """The shape of a recurrent layer: its ``cell`` (``"lstm"`` or ``"gru"``), the ``inputs``
    of one time step and the ``hidden`` size."""

    cell: str
    inputs: int
    hidden: int

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"the cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        if self.inputs < 1 or self.hidden < 1:
            raise ValueError(f"a recurrent layer needs positive inputs and hidden size, not "
                             f"{self.inputs} and {self.hidden}")

    @property
    def sums(self) -> int:
        """Gate pre-activations the layer keeps: four groups of ``hidden``."""
        return 4 * self.hidden

    @property
    def fan_in(self) -> int:
        """Inputs of the dense product: ``x_t`` and ``h_{t-1}``."""
        return self.inputs + self.hidden

    @property
    def outputs(self) -> int:
        return self.hidden

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.inputs,)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.hidden,)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def recurrent_step(shape: RecurrentShape, sums: np.ndarray, state: np.ndarray,
                   hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float element-wise stage: the new hidden state and (LSTM) cell state from the gate
    pre-activations ``sums`` (4H), the cell state ``state`` (LSTM; ignored for a GRU) and the
    previous hidden state ``hidden``."""
    a, b, c, d = np.split(np.asarray(sums, dtype=np.float64), 4)
    if shape.cell == "lstm":
        cell = _sigmoid(c) * state + _sigmoid(a) * np.tanh(d)
        return _sigmoid(b) * np.tanh(cell), cell
    update, reset = _sigmoid(a), _sigmoid(b)
    candidate = np.tanh(c + reset * d)
    return (1.0 - update) * candidate + update * hidden, state
