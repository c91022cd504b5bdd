"""Exponential moving average of weights (used by DDPM, EDM and DiT for sampling)."""
import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of `model` to hold the average, kept in float32 (float64 for a float64 model)."""
    ema = copy.deepcopy(model).eval()
    if any(parameter.dtype != torch.float64 for parameter in ema.parameters()):
        ema.float()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, every parameter in one `torch._foreach_lerp_` (one
    kernel launch on a GPU, not one per parameter)."""
    averages = list(ema.parameters())
    currents = [current.detach().to(average.dtype) for average, current in zip(averages, model.parameters())]
    torch._foreach_lerp_(averages, currents, 1 - decay)
