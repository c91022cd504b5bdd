"""Random numbers drawn by a generator on its own device, then moved where they are used.

The trainers and samplers seed a CPU `torch.Generator`, so a run draws the same noise whichever device the model is
on (and torch refuses a CPU generator for numbers made directly on a GPU). Without a generator, the numbers are made
on the target device from torch's global state.
"""
from typing import Optional, Sequence

import torch


def _source(generator: Optional[torch.Generator], device) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device("cpu" if device is None else device)


def randn(shape: Sequence[int], generator: Optional[torch.Generator], device="cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal numbers of `shape` on `device`."""
    return torch.randn(shape, generator=generator, device=_source(generator, device), dtype=dtype).to(device)


def rand(shape: Sequence[int], generator: Optional[torch.Generator], device="cpu",
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform numbers in [0, 1) of `shape` on `device`."""
    return torch.rand(shape, generator=generator, device=_source(generator, device), dtype=dtype).to(device)


def randint(high: int, shape: Sequence[int], generator: Optional[torch.Generator], device="cpu") -> torch.Tensor:
    """Integers in [0, high) of `shape` on `device`."""
    return torch.randint(high, tuple(shape), generator=generator, device=_source(generator, device)).to(device)
