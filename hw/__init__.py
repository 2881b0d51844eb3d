"""Gateware of the reuse accelerator (Amaranth 0.5)."""

from .config import AccelConfig, ConfigError

__all__ = ["AccelConfig", "ConfigError"]
