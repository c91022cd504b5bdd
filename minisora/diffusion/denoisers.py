"""Wrappers that turn a network into the one denoiser interface D(x, sigma, **cond) -> x_0 (Karras et al. 2022).

x lives in EDM's coordinates, x = x_0 + sigma * noise; sigma is (B,). A network trained the DDPM way
(`model(x_t, t, **cond)` predicting eps, x_0 or v) is wrapped by `VPDenoiser`; a network trained with EDM's
preconditioning by `edm.EDMDenoiser`.
"""
import torch
from torch import nn

from .ddpm import PREDICTIONS, predict_x0
from .schedules import alpha_bar_from_sigma, append_dims, timestep_from_sigma


class VPDenoiser(nn.Module):
    """A DDPM-trained network as a denoiser: query it at x_t = x / sqrt(1 + sigma^2) and the timestep of sigma.

    Between the schedule's sigmas the timestep is fractional (`schedules.timestep_from_sigma`); the wrapped
    network must accept float timesteps for that (the embeddings in `minisora.models` do).
    """

    def __init__(self, model: nn.Module, alphas_cumprod: torch.Tensor, prediction: str = "epsilon"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")
        self.model, self.prediction = model, prediction
        self.register_buffer("alphas_cumprod", alphas_cumprod.to(torch.float64), persistent=False)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        t = timestep_from_sigma(self.alphas_cumprod, sigma)  # (B,)
        # x_t = sqrt(alpha_bar) x = x / sqrt(1 + sigma^2)
        alpha_bar = append_dims(alpha_bar_from_sigma(sigma), x)  # (B, 1, ...)
        x_t = x * alpha_bar.sqrt()
        return predict_x0(x_t, self.model(x_t, t, **cond), alpha_bar, self.prediction)
