"""Wrappers that turn a network into the one denoiser interface D(x, sigma, **cond) -> x_0 (Karras et al. 2022).

x lives in EDM's coordinates, x = x_0 + sigma * noise; sigma is (B,). A network trained the DDPM way
(`model(x_t, t, **cond)` predicting eps, x_0 or v) is wrapped by `VPDenoiser`; a network trained with EDM's
preconditioning by `edm.EDMDenoiser`.
"""
from typing import Optional, Tuple

import torch
from torch import nn

from .ddpm import PREDICTIONS, predict_x0, split_learned_variance
from .schedules import alpha_bar_from_sigma, append_dims, timestep_from_sigma


class VPDenoiser(nn.Module):
    """A DDPM-trained network as a denoiser: query it at x_t = x / sqrt(1 + sigma^2) and the timestep of sigma.

    Between the schedule's sigmas the timestep is fractional (`schedules.timestep_from_sigma`); the wrapped
    network must accept float timesteps for that (the embeddings in `minisora.models` do). A network with
    `learned_variance` outputs 2C channels, the prediction and then its variance (Nichol & Dhariwal 2021, Eq. 15):
    the denoiser returns the first, and `with_variance` both, for the sampler that draws with it.
    """

    def __init__(self, model: nn.Module, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
                 learned_variance: bool = False):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")
        self.model, self.prediction, self.learned_variance = model, prediction, learned_variance
        self.register_buffer("alphas_cumprod", alphas_cumprod.to(torch.float64), persistent=False)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        return self.with_variance(x, sigma, **cond)[0]

    def with_variance(self, x: torch.Tensor, sigma: torch.Tensor,
                      **cond) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(D(x, sigma), the network's variance output v of Eq. 15, or None without learned variance)."""
        t = timestep_from_sigma(self.alphas_cumprod, sigma)  # (B,)
        # x_t = sqrt(alpha_bar) x = x / sqrt(1 + sigma^2)
        alpha_bar = append_dims(alpha_bar_from_sigma(sigma), x)  # (B, 1, ...)
        x_t = x * alpha_bar.sqrt()
        output, variance_output = self.model(x_t, t, **cond), None
        if self.learned_variance:
            output, variance_output = split_learned_variance(output)
        return predict_x0(x_t, output, alpha_bar, self.prediction), variance_output
