"""Score SDEs in their own notation (Song et al. 2021, "Score-Based Generative Modeling through SDEs").

The forward SDE dx = f(x, t) dt + g(t) dw has marginals x_t = alpha(t) x_0 + alpha(t) sigma(t) eps, so each SDE
is a path through EDM's sigma space: sigma(t) is the noise level of x_t / alpha(t). The samplers below take the
same (denoiser, x, sigmas) as every other sampler, map the sigmas to the SDE's times and x into its
coordinates, and then step in the paper's notation with the score computed from the denoiser:

    score(x_t, t) = grad log p_t(x_t) = (alpha D(x_t / alpha, sigma) - x_t) / (alpha sigma)^2      (Tweedie)
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .samplers import _batch_sigma, _noise_like, integrate_in_time


@dataclass
class VPSDE:
    """The variance-preserving SDE, Song et al. Eq. 11: the continuous limit of DDPM."""
    beta_min: float = 0.1  # beta(0), Song et al.'s default (DDPM's beta_1 * T)
    beta_max: float = 20.0  # beta(1) (DDPM's beta_T * T)

    def beta(self, t):
        # beta(t) = beta_min + t (beta_max - beta_min)
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift(self, x, t):
        # f(x, t) = -1/2 beta(t) x
        return -0.5 * self.beta(t) * x

    def diffusion(self, t):
        # g(t) = sqrt(beta(t))
        return self.beta(t).sqrt()

    def alpha(self, t):
        # alpha(t) = exp( -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min )   (Song et al. Eq. 33)
        return torch.exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)

    def sigma(self, t):
        # sigma(t) = sqrt(1 - alpha^2) / alpha = sqrt(alpha^-2 - 1)
        return torch.expm1(0.5 * t**2 * (self.beta_max - self.beta_min) + t * self.beta_min).sqrt()

    def time_from_sigma(self, sigma):
        # solve 1/4 (beta_max - beta_min) t^2 + 1/2 beta_min t = 1/2 log(1 + sigma^2) for t >= 0
        spread = self.beta_max - self.beta_min
        discriminant = self.beta_min**2 / 4 + spread / 2 * torch.log1p(sigma**2)
        return (discriminant.sqrt() - self.beta_min / 2) / (spread / 2)


@dataclass
class VESDE:
    """The variance-exploding SDE, Song et al. Eq. 9: the continuous limit of SMLD (Song & Ermon 2019)."""
    sigma_min: float = 0.01  # sigma(0)
    sigma_max: float = 50.0  # sigma(1)

    def drift(self, x, t):
        return torch.zeros_like(x)  # f(x, t) = 0

    def diffusion(self, t):
        # g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min))
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        # sigma(t) = sigma_min (sigma_max / sigma_min)^t
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def time_from_sigma(self, sigma):
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


def score_from_denoiser(denoiser: Callable, sde, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[dict]):
    """grad_x log p_t(x_t) from a denoiser, by Tweedie's formula in the SDE's coordinates."""
    alpha, sigma = sde.alpha(t).to(x_t.dtype), sde.sigma(t).to(x_t.dtype)
    denoised = denoiser(x_t / alpha, _batch_sigma(sigma, x_t), **(cond or {}))
    # score = (alpha D(x_t / alpha, sigma) - x_t) / (alpha sigma)^2
    return (alpha * denoised - x_t) / (alpha * sigma) ** 2


def langevin_correction(x: torch.Tensor, score: torch.Tensor, noise: torch.Tensor, snr: float) -> torch.Tensor:
    """One Langevin corrector step with the step size set by a signal-to-noise ratio r, Song et al. 2021
    Algorithm 4 (VE; Algorithm 5 differs only by the factor alpha_i): epsilon = 2 (r ||z|| / ||s||)^2."""
    # ||z|| and ||s||: per-sample norms, averaged over the batch as in the paper's code
    noise_norm = noise.flatten(1).norm(dim=1).mean()
    score_norm = score.flatten(1).norm(dim=1).mean()
    step_size = 2 * (snr * noise_norm / score_norm) ** 2
    # x <- x + epsilon s + sqrt(2 epsilon) z
    return x + step_size * score + (2 * step_size).sqrt() * noise


def _euler_maruyama_step(denoiser, sde, cond, generator):
    """One reverse-time Euler-Maruyama step of Song et al. Eq. 6 between times t and t_next < t."""
    def step(x_t, t, t_next):
        dt = (t_next - t).to(x_t.dtype)  # negative: time runs backwards
        g = sde.diffusion(t).to(x_t.dtype)
        score = score_from_denoiser(denoiser, sde, x_t, t, cond)
        # dx = [f(x, t) - g(t)^2 score] dt + g(t) dw_bar
        return x_t + (sde.drift(x_t, t) - g**2 * score) * dt + g * (-dt).sqrt() * _noise_like(x_t, generator)

    return step


@torch.no_grad()
def sample_reverse_sde(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                       callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                       sde=None) -> torch.Tensor:
    """Euler-Maruyama on the reverse-time SDE, Song et al. 2021 Eq. 6 (default: the VP SDE)."""
    sde = sde or VPSDE()
    return integrate_in_time(denoiser, x, sigmas, time_from_sigma=sde.time_from_sigma, alpha=sde.alpha,
                             step=_euler_maruyama_step(denoiser, sde, cond, generator), cond=cond, callback=callback)


@torch.no_grad()
def sample_predictor_corrector(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                               cond: Optional[dict] = None, callback: Optional[Callable] = None,
                               generator: Optional[torch.Generator] = None, sde=None, snr: float = 0.16,
                               corrector_steps: int = 1) -> torch.Tensor:
    """Predictor-corrector sampling, Song et al. 2021 Algorithm 1: Euler-Maruyama, then Langevin corrector steps."""
    sde = sde or VPSDE()
    predictor = _euler_maruyama_step(denoiser, sde, cond, generator)

    def step(x_t, t, t_next):
        x_t = predictor(x_t, t, t_next)
        for _ in range(corrector_steps):  # the corrector works at the new time
            score = score_from_denoiser(denoiser, sde, x_t, t_next, cond)
            x_t = langevin_correction(x_t, score, _noise_like(x_t, generator), snr)
        return x_t

    return integrate_in_time(denoiser, x, sigmas, time_from_sigma=sde.time_from_sigma, alpha=sde.alpha, step=step,
                             cond=cond, callback=callback)


@torch.no_grad()
def sample_probability_flow(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                            callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                            sde=None) -> torch.Tensor:
    """Euler steps in time on the probability-flow ODE, Song et al. 2021 Eq. 13 (default: the VP SDE)."""
    sde = sde or VPSDE()

    def step(x_t, t, t_next):
        g = sde.diffusion(t).to(x_t.dtype)
        # dx = [f(x, t) - 1/2 g(t)^2 score] dt
        drift = sde.drift(x_t, t) - 0.5 * g**2 * score_from_denoiser(denoiser, sde, x_t, t, cond)
        return x_t + drift * (t_next - t).to(x_t.dtype)

    return integrate_in_time(denoiser, x, sigmas, time_from_sigma=sde.time_from_sigma, alpha=sde.alpha, step=step,
                             cond=cond, callback=callback)
