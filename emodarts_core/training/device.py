"""Device choice, mixed precision and random-number-generator state.

`device="auto"` means CUDA when present, else CPU, so the same notebook runs anywhere
(the reference code hard-codes CUDA: docs/REFERENCE_CODE.md, defect 5). Mixed precision is used on CUDA
only: bfloat16 where the GPU supports it (no loss scaling needed), else float16 with a
GradScaler. RNG state capture/restore covers Python, NumPy and torch (CPU and CUDA) so a
resumed run continues exactly where the checkpoint left it.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from emodarts_core.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA if available else CPU; `cuda`/`cuda:N` must exist, else ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or str(name).startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist; {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda or cuda:N")


class Precision:
    """Mixed-precision policy for one run: autocast context and whether a GradScaler is needed.

    Disabled (plain float32) on CPU or when `amp` is False.
    """

    def __init__(self, device: torch.device, amp: bool):
        self.device = device
        self.enabled = bool(amp) and device.type == "cuda"
        if self.enabled:
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = torch.float32
        self.needs_scaler = self.enabled and self.dtype == torch.float16

    def autocast(self):
        """Context manager for forward passes (a no-op when disabled)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is active only for float16 (bfloat16 and float32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_scaler)

    def describe(self) -> str:
        return str(self.dtype).replace("torch.", "") if self.enabled else "float32"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict:
    """All global RNG states as a dict of tensors/ints (loadable with `torch.load(weights_only=True)`)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (for timing); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
