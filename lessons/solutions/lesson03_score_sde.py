"""Lesson 03 worked solutions: score SDEs (Song et al. 2021, ICLR). Check with `pytest -m lesson03 --impl=solutions`.

Read these after trying the exercises in lessons/exercises/lesson03_score_sde.py (and the hints in
lessons/hints/lesson03.md). Each equation sits on the line above the line that computes it.
"""
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.score_sde",)


def score_from_denoiser(denoiser: Callable, sde, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[dict]):
    """Lesson 03 (section 2, Tweedie's formula): the score grad_{x_t} log p_t(x_t) of the SDE's noisy marginal at
    time t (a 0-d tensor), from a denoiser.

    x_t (B, ...) is in the SDE's own coordinates, x_t = alpha(t) x_0 + alpha(t) sigma(t) eps. The denoiser works in
    sigma space: denoiser(x, sigma, **cond) returns E[x_0 | x] for x = x_0 + sigma eps, with sigma given per sample
    (a (B,) tensor in x_t's dtype); cond may be None (no conditioning). Returns a tensor shaped like x_t."""
    if cond is None:
        cond = {}
    alpha = sde.alpha(t).to(x_t.dtype)
    sigma = sde.sigma(t).to(x_t.dtype)
    batch_size = x_t.shape[0]
    # the denoiser works in sigma space: x = x_t / alpha carries noise of standard deviation sigma
    x = x_t / alpha
    sigma_per_sample = sigma.expand(batch_size)
    x0_estimate = denoiser(x, sigma_per_sample, **cond)
    # Tweedie in sigma space:   grad_x log p(x) = (E[x0 | x] - x) / sigma^2
    score_in_sigma_space = (x0_estimate - x) / sigma**2
    # chain rule for x_t = alpha x:   grad_{x_t} log p_t(x_t) = grad_x log p(x) / alpha
    return score_in_sigma_space / alpha


def langevin_correction(x: torch.Tensor, score: torch.Tensor, noise: torch.Tensor, snr: float) -> torch.Tensor:
    """Lesson 03 (section 6): one step of the Langevin corrector of Song et al. 2021, Algorithm 4 (the inner loop's
    body), with its step size epsilon set from the target signal-to-noise ratio `snr`.

    x, score and noise z are (B, ...); the norms ||z|| and ||score|| of the algorithm are per sample, then averaged
    over the batch (as the paper's code does), so epsilon is one number. Returns the corrected x, shaped like x."""
    batch_size = x.shape[0]
    # ||z|| and ||s||: the Euclidean norm of each sample's whole tensor, then the mean over the batch
    noise_norm = noise.reshape(batch_size, -1).pow(2).sum(dim=1).sqrt().mean()
    score_norm = score.reshape(batch_size, -1).pow(2).sum(dim=1).sqrt().mean()
    # Algorithm 4, line 5:   epsilon = 2 (r ||z|| / ||s||)^2
    epsilon = 2 * (snr * noise_norm / score_norm) ** 2
    # Algorithm 4, line 6:   x <- x + epsilon s + sqrt(2 epsilon) z
    return x + epsilon * score + torch.sqrt(2 * epsilon) * noise


def _default_sde(sde):
    """The VP SDE unless another one is given (imported here so that the file reads top to bottom)."""
    if sde is not None:
        return sde
    from minisora.diffusion.score_sde import VPSDE

    return VPSDE()


def sample_reverse_sde(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                       generator: Optional[torch.Generator] = None, sde=None) -> torch.Tensor:
    """Lesson 03 (section 4): sample by integrating the reverse-time SDE of Song et al. 2021, Eq. 6, with the
    Euler-Maruyama method, from the noise level sigmas[0] down to sigmas[-1].

    Same interface as every minisora sampler: x (B, ...) is noise at sigmas[0] in sigma space (x = x_0 + sigma eps);
    sigmas is a decreasing 1-D tensor, usually ending in 0; return the sample at sigmas[-1], in sigma space.
    sde is a VPSDE (the default when None) or a VESDE. Inside: map each positive sigma to the SDE's time, map x to the
    SDE's coordinates x_t, take one Euler-Maruyama step per pair of consecutive times (score from your
    score_from_denoiser), and map back. A step into sigma = 0 cannot be taken in time (the score blows up): return
    the denoiser's estimate of x_0 there instead. Draw each step's noise with
    torch.randn(x.shape, generator=generator, dtype=x.dtype), one draw per step (the checks replay it)."""
    sde = _default_sde(sde)
    cond = cond or {}
    # the SDE's clock: t_i with sigma(t_i) = sigmas[i], for every positive sigma (computed in float64)
    times = [sde.time_from_sigma(sigma.double()) for sigma in sigmas if sigma > 0]
    # sigma space -> the SDE's coordinates:   x_t = alpha(t) x
    x_t = sde.alpha(times[0]).to(x.dtype) * x
    for i in range(len(sigmas) - 1):
        t = times[i]
        if sigmas[i + 1] == 0:
            # the last step: Tweedie's estimate E[x_0 | x_t], the denoiser at x = x_t / alpha(t)
            sigma_per_sample = sigmas[i].to(x.dtype).expand(x.shape[0])
            return denoiser(x_t / sde.alpha(t).to(x.dtype), sigma_per_sample, **cond)
        t_next = times[i + 1]
        dt = (t_next - t).to(x.dtype)  # negative: we run time backwards, from t = 1 towards t = 0
        g = sde.diffusion(t).to(x.dtype)
        score = score_from_denoiser(denoiser, sde, x_t, t, cond)
        # reverse-time drift of Eq. 6:   f(x, t) - g(t)^2 grad log p_t(x)
        reverse_drift = sde.drift(x_t, t) - g**2 * score
        # Brownian increment over a step of length |dt|:   dw_bar = sqrt(|dt|) z,  z ~ N(0, I)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        # Euler-Maruyama:   x_{t + dt} = x_t + [f - g^2 score] dt + g sqrt(|dt|) z
        x_t = x_t + reverse_drift * dt + g * torch.sqrt(-dt) * z
    # the SDE's coordinates -> sigma space at the last time:   x = x_t / alpha(t)
    return x_t / sde.alpha(times[len(sigmas) - 1]).to(x.dtype)


def sample_probability_flow(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                            sde=None) -> torch.Tensor:
    """Lesson 03 (section 4): sample by integrating the probability-flow ODE of Song et al. 2021, Eq. 13, with
    Euler's method in the SDE's time t, from the noise level sigmas[0] down to sigmas[-1]. No randomness.

    The same interface and the same coordinates as sample_reverse_sde (x (B, ...) in sigma space at sigmas[0];
    returns x at sigmas[-1], in sigma space; sde defaults to a VPSDE; a step into sigma = 0 returns the denoiser's
    estimate of x_0)."""
    sde = _default_sde(sde)
    cond = cond or {}
    times = [sde.time_from_sigma(sigma.double()) for sigma in sigmas if sigma > 0]
    x_t = sde.alpha(times[0]).to(x.dtype) * x
    for i in range(len(sigmas) - 1):
        t = times[i]
        if sigmas[i + 1] == 0:
            sigma_per_sample = sigmas[i].to(x.dtype).expand(x.shape[0])
            return denoiser(x_t / sde.alpha(t).to(x.dtype), sigma_per_sample, **cond)
        dt = (times[i + 1] - t).to(x.dtype)
        g = sde.diffusion(t).to(x.dtype)
        score = score_from_denoiser(denoiser, sde, x_t, t, cond)
        # Eq. 13, the probability-flow velocity:   dx/dt = f(x, t) - 1/2 g(t)^2 grad log p_t(x)
        velocity = sde.drift(x_t, t) - 0.5 * g**2 * score
        # Euler:   x_{t + dt} = x_t + velocity dt   (the same drift as the SDE's, with half the score and no noise)
        x_t = x_t + velocity * dt
    return x_t / sde.alpha(times[len(sigmas) - 1]).to(x.dtype)
