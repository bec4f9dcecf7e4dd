"""Where models run: device and dtype choice, and the ZeroGPU decorator."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def device() -> torch.device:
    """The best device here (cuda > mps > cpu); DEMO_DEVICE overrides it."""
    import torch

    if name := os.environ.get("DEMO_DEVICE"):
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def likely_gpu() -> bool:
    """Whether a GPU will serve this process, guessed without importing torch (start-up must
    stay light): DEMO_DEVICE, a ZeroGPU Space, Apple silicon, or an NVIDIA driver."""
    if name := os.environ.get("DEMO_DEVICE"):
        return not name.startswith("cpu")
    zero_gpu = os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return zero_gpu or apple or Path("/proc/driver/nvidia/version").exists()


def dtype(dev: torch.device | None = None) -> torch.dtype:
    """Half precision where the device does it well (bf16, else fp16), fp32 on CPU."""
    import torch

    dev = dev or device()
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dev.type == "mps":
        return torch.float16
    return torch.float32


# Every function decorated with `gpu`, as written (undecorated): on ZeroGPU each runs in a
# worker process with pickled arguments and results, which tests/test_zerogpu.py checks.
GPU_FUNCTIONS: list[Callable[..., Any]] = []


def gpu(
    duration: int | Callable[..., int] = 60,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`spaces.GPU(duration=...)` on a ZeroGPU Space; a no-op everywhere else."""
    try:
        import spaces  # the PyPI ZeroGPU helper, never our spaces/ folder
    except ImportError:
        spaces = None
    wrap = spaces.GPU(duration=duration) if spaces is not None and hasattr(spaces, "GPU") else None

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        GPU_FUNCTIONS.append(fn)
        return wrap(fn) if wrap is not None else fn

    return decorate
