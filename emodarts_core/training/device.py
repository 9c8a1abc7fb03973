"""Device choice, mixed precision and random-number-generator state.

`device="auto"` means CUDA when present, else CPU, so the same notebook runs anywhere
(the reference code hard-codes CUDA: docs/REFERENCE_CODE.md, defect 5). Mixed precision is used on CUDA
only: bfloat16 where the GPU supports it (no loss scaling needed), else float16 with a
GradScaler. RNG state capture/restore covers Python, NumPy and torch (CPU and CUDA) so a
resumed run continues exactly where the checkpoint left it.

The CUDA-only choices are made here, each from a `torch.device`, so that a test can check
them on a CPU-only machine (tests/test_device_paths.py): cuDNN's autotuner on CUDA
(`configure_backends`, applied by `resolve_device`), pinned host memory for the loaders
(`pin_memory_for`), and the precision policy (`Precision`). The other CUDA-specific choice,
cuDNN's fused recurrences instead of the batched tanh recurrence of `emodarts_core.fast`, is
made per input in `fast/cells.FastSeqMixedOp` (docs/PERFORMANCE.md, "Batched tanh RNNs on CPU").
`tools/gpu_check.py` runs these paths on a GPU in one go.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from emodarts_core.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA if available else CPU; `cuda`/`cuda:N` must exist, else ConfigError.

    A CUDA device also gets its backend settings (`configure_backends`), so that every run
    that resolves its device (search, retrain, bench) uses the same ones.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or str(name).startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist; {torch.cuda.device_count()} CUDA device(s) present")
        configure_backends(dev)
        return dev
    raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda or cuda:N")


def configure_backends(device: torch.device) -> dict:
    """Backend settings for a run on `device`; returns what they are now.

    On CUDA, cuDNN's autotuner is switched on (`torch.backends.cudnn.benchmark`, as DARTS'
    own search and training scripts do): the search's batches have one shape (the last,
    shorter batch adds one more), so each convolution is tuned once and then runs with the
    fastest algorithm. cuDNN may pick a different algorithm in another process, so CUDA
    runs are not bit-identical across processes; resuming bit-identically is promised on
    CPU only (docs/ARCHITECTURE.md). On CPU nothing is changed.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_enabled": bool(torch.backends.cudnn.enabled)}


def pin_memory_for(device: torch.device) -> bool:
    """Whether loaders feeding `device` pin their batches in page-locked host memory: on CUDA
    only, where it lets the host-to-device copy run asynchronously (`data.to_device` copies
    non-blocking then); on CPU pinning would only cost a copy."""
    return device.type == "cuda"


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
