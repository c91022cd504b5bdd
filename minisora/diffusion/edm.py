"""EDM: the design space of Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models".

Table 1 of the paper writes every model as D(x, sigma) = c_skip x + c_out F(c_in x, c_noise). The network F
here is `net(x_in, c_noise, **cond)`. The samplers that go with EDM live in `samplers.py`.
"""
from typing import Callable, Optional

import torch
from torch import nn

from ..parallel.batch import BatchShard
from .schedules import append_dims, masked_mean
from .schedules import timestep_from_sigma
from ..randomness import randn


def edm_preconditioning(sigma: torch.Tensor, sigma_data: float = 0.5):
    """EDM's own preconditioning, Table 1 ("ours") of Karras et al. 2022: (c_skip, c_out, c_in, c_noise)."""
    # c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
    # c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_out = sigma * sigma_data / (sigma**2 + sigma_data**2).sqrt()
    # c_in = 1 / sqrt(sigma^2 + sigma_data^2)
    c_in = 1 / (sigma**2 + sigma_data**2).sqrt()
    # c_noise = ln(sigma) / 4
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def vp_preconditioning(sigma: torch.Tensor, alphas_cumprod: torch.Tensor):
    """The VP column of Table 1 (DDPM as EDM sees it), for a discrete schedule: c_noise is the timestep."""
    c_skip = torch.ones_like(sigma)  # c_skip = 1
    c_out = -sigma  # c_out = -sigma
    c_in = 1 / (sigma**2 + 1).sqrt()  # c_in = 1 / sqrt(sigma^2 + 1)
    c_noise = timestep_from_sigma(alphas_cumprod, sigma)  # c_noise = (M - 1) t
    return c_skip, c_out, c_in, c_noise


class EDMDenoiser(nn.Module):
    """D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma)), Karras et al. Eq. 7."""

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma, self.sigma_data)
        network_output = self.net(x * append_dims(c_in, x), c_noise, **cond)
        return append_dims(c_skip, x) * x + append_dims(c_out, x) * network_output


def sample_training_sigmas(batch_size: int, p_mean: float = -1.2, p_std: float = 1.2,
                           generator: Optional[torch.Generator] = None, device=None) -> torch.Tensor:
    """Training noise levels, log-normal: ln(sigma) ~ N(P_mean, P_std^2) (Karras et al. Table 1, Section 5)."""
    return (p_mean + p_std * randn((batch_size,), generator, device)).exp()


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Table 1): unit effective loss weight."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(denoiser: Callable, x0: torch.Tensor, sigma_data: float = 0.5, p_mean: float = -1.2,
             p_std: float = 1.2, generator: Optional[torch.Generator] = None,
             loss_mask: Optional[torch.Tensor] = None, shard: Optional[BatchShard] = None,
             loss_weight: Optional[Callable] = None, **cond) -> torch.Tensor:
    """The training loss of Karras et al. Eq. 2 with Table 1's weighting:
    E_{sigma, y, n} [ lambda(sigma) || D(y + n, sigma) - y ||^2 ], over the elements where `loss_mask` is not 0
    (with a `shard`, over this process's rows of the batch: `parallel.batch`). `loss_weight(sigma, sigma_data)`, (B,)
    weights, replaces lambda (lesson 04's ablation trains with ones); None is EDM's `edm_loss_weight`."""
    sigma = sample_training_sigmas(x0.shape[0], p_mean, p_std, generator, x0.device).to(x0.dtype)
    noise = randn(x0.shape, generator, x0.device, x0.dtype)
    if shard is not None:
        x0, sigma, noise, cond = (shard.take(value, len(x0)) for value in (x0, sigma, noise, cond))
    denoised = denoiser(x0 + append_dims(sigma, x0) * noise, sigma, **cond)
    weight = append_dims((loss_weight or edm_loss_weight)(sigma, sigma_data), x0)
    return masked_mean(weight * (denoised - x0) ** 2, loss_mask, shard)
