"""DDIM in its own notation (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models").

The same networks as DDPM (`model(x_t, t, **cond)`), sampled on any decreasing subsequence of the training
timesteps. eta = 0 is deterministic; eta = 1 gives DDPM's posterior variance (Song et al. Eq. 16).
"""
from typing import Callable, Optional

import torch

from .ddpm import at_timestep, predict_x0
from ..randomness import randn


def ddim_step(x_t: torch.Tensor, x0_hat: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              eta: float, noise: Optional[torch.Tensor]) -> torch.Tensor:
    """One step of Song et al. 2021, Eq. 12: from x_t to x_{t-1} (any earlier step), given the predicted x_0."""
    # eps_theta = (x_t - sqrt(alpha_t) x_0) / sqrt(1 - alpha_t)       (alpha here is DDPM's alpha_bar)
    eps = (x_t - alpha_bar_t.sqrt() * x0_hat) / (1 - alpha_bar_t).sqrt()
    # sigma_t(eta) = eta sqrt((1 - alpha_{t-1}) / (1 - alpha_t)) sqrt(1 - alpha_t / alpha_{t-1})   (Eq. 16)
    sigma = eta * ((1 - alpha_bar_prev) / (1 - alpha_bar_t)).sqrt() * (1 - alpha_bar_t / alpha_bar_prev).sqrt()
    # x_{t-1} = sqrt(alpha_{t-1}) x_0 + sqrt(1 - alpha_{t-1} - sigma_t^2) eps_theta + sigma_t z
    x_prev = alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise; pass noise=torch.randn_like(x_t)")
        x_prev = x_prev + sigma * noise
    return x_prev


@torch.no_grad()
def ddim_sample(model: Callable, x_T: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor,
                eta: float = 0.0, prediction: str = "epsilon", generator: Optional[torch.Generator] = None,
                callback: Optional[Callable] = None, **cond) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021, Eq. 12) on the decreasing subsequence `timesteps`, ending at x_0."""
    timesteps = torch.as_tensor(timesteps, dtype=torch.long)
    if timesteps.dim() != 1 or len(timesteps) == 0:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {tuple(timesteps.shape)}")
    if len(timesteps) > 1 and not bool((timesteps[1:] < timesteps[:-1]).all()):
        raise ValueError(f"timesteps must be strictly decreasing (noisiest first), got {timesteps.tolist()}")
    x = x_T
    for i, step in enumerate(timesteps.tolist()):
        t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        x0_hat = predict_x0(x, model(x, t, **cond), at_timestep(alphas_cumprod, t, x), prediction)
        if i == len(timesteps) - 1:
            x = x0_hat  # alpha_bar_{-1} := 1: the last step lands on the prediction of x_0
        else:
            t_prev = torch.full_like(t, timesteps[i + 1])
            noise = None
            if eta > 0:
                noise = randn(x.shape, generator, x.device, x.dtype)
            x = ddim_step(x, x0_hat, at_timestep(alphas_cumprod, t, x), at_timestep(alphas_cumprod, t_prev, x), eta, noise)
        if callback is not None:
            callback({"t": step, "x": x, "denoised": x0_hat})
    return x
