"""The readout's arithmetic, shared by every layer kind: rounding, shift, activation and
saturation of the pre-activation sums."""

from __future__ import annotations

import numpy as np

from reuse_accel.hw.config import AccelConfig

__all__ = ["activate", "activate_counted"]


def activate(acc: np.ndarray, shift: int, relu: bool, config: AccelConfig) -> np.ndarray:
    """Round, shift, apply ReLU or identity, saturate to ``act_width``."""
    return activate_counted(acc, shift, relu, config)[0]


def activate_counted(acc, shift: int, relu: bool, config: AccelConfig):
    """:func:`activate`, and the mask of outputs clamped to the activation range."""
    acc = np.asarray(acc, dtype=np.int64)
    rounding = (1 << (shift - 1)) if shift else 0
    out = (acc + rounding) >> shift
    if relu:
        out = np.maximum(out, 0)
    clamped = (out < config.act_min) | (out > config.act_max)
    return np.clip(out, config.act_min, config.act_max), clamped
