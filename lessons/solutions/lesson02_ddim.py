"""Lesson 02 worked solutions: DDIM (Song, Meng & Ermon 2021). Try the exercises in lessons/exercises/lesson02_ddim.py
first (hints: lessons/hints/lesson02.md); these pass the same checks: `pytest -m lesson02 --impl=solutions`.

Notation: alpha_bar is DDPM's alpha-bar (the paper's alpha_t), a float64 tensor; "prev" is any earlier timestep.
Each equation sits on the line above the line that computes it."""
from typing import Callable, Optional

import torch

from minisora.diffusion.ddpm import predict_x0  # lesson 01's exercise: x_0 from an eps, x0 or v prediction

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.ddim")


def ddim_step(x_t: torch.Tensor, x0_hat: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              eta: float, noise: Optional[torch.Tensor]) -> torch.Tensor:
    """Lesson 02, exercise 1: one step of DDIM's generative process, Song et al. 2021, Eq. 12 with sigma_t(eta) of
    Eq. 16.

    x_t (B, ...) is the current sample at a timestep whose alpha_bar is alpha_bar_t; x0_hat (same shape) the
    prediction of x_0 there; alpha_bar_prev belongs to the (earlier, less noisy) timestep to jump to, which need not
    be the next one. Both alpha_bars broadcast against x_t. Return x_prev, shaped like x_t: a draw of
    q_sigma(x_prev | x_t, x_0 = x0_hat), Eq. 7, where the noise direction is the one x_t holds given x0_hat, and the
    fresh noise `noise` (a standard normal tensor like x_t) enters with the standard deviation Eq. 16 gives for eta.
    eta = 0 is deterministic (noise may be None); eta = 1 is DDPM's posterior q(x_prev | x_t, x_0).
    """
    # the noise that x_t holds if x_0 is x0_hat, from x_t = sqrt(alpha_t) x_0 + sqrt(1 - alpha_t) eps:
    # eps_hat = (x_t - sqrt(alpha_t) x0_hat) / sqrt(1 - alpha_t)
    noise_direction = (x_t - alpha_bar_t.sqrt() * x0_hat) / (1 - alpha_bar_t).sqrt()

    # DDPM's posterior variance for the jump t -> prev: (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    posterior_variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
    # Eq. 16: sigma_t(eta) = eta * sqrt(posterior variance)
    fresh_std = eta * posterior_variance.sqrt()

    # what is left of the variance 1 - alpha_prev for the old noise direction (never below 0, even after rounding)
    kept_variance = (1 - alpha_bar_prev - fresh_std**2).clamp(min=0)

    # Eq. 12: x_prev = sqrt(alpha_prev) x0_hat + sqrt(1 - alpha_prev - sigma_t^2) eps_hat + sigma_t z
    x_prev = alpha_bar_prev.sqrt() * x0_hat + kept_variance.sqrt() * noise_direction
    if eta > 0:
        if noise is None:
            raise ValueError("with eta > 0 the step needs fresh noise: pass noise=torch.randn_like(x_t)")
        x_prev = x_prev + fresh_std * noise
    return x_prev


def ddim_sample(model: Callable, x_T: torch.Tensor, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor,
                eta: float = 0.0, prediction: str = "epsilon",
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 02, exercise 2: DDIM sampling on a subsequence of the timesteps, Song et al. 2021, Section 4.2 (the
    generative process of Eq. 10, stepped with Eq. 12).

    model(x_t, t) is a DDPM network: x_t (B, ...), t a (B,) long tensor of timesteps in 0..T-1, and it returns its
    `prediction` ("epsilon", "x0" or "v": lesson 01's predict_x0 turns any into x_0). alphas_cumprod (T,) holds
    alpha_bar for every timestep; timesteps is a strictly decreasing 1-D sequence of them, noisiest first (e.g.
    schedules.respace_timesteps(1000, 20)); x_T (B, ...) is the sample at timesteps[0]. Visit each timestep in turn,
    step from it to the next one with eta's family, and end with x_0: the last step, from timesteps[-1], lands on
    the prediction of x_0 there (alpha_bar := 1 beyond the end). Return it, shaped like x_T.

    Random numbers (so that a check can replay yours): when eta > 0, draw one
    torch.randn(x_T.shape, generator=generator, dtype=x_T.dtype) per step, in order, on every step but the last.
    """
    steps = torch.as_tensor(timesteps).tolist()  # plain ints, noisiest first: tau_S > ... > tau_1
    batch_size = x_T.shape[0]
    x = x_T
    with torch.no_grad():  # sampling: nothing to differentiate
        for i, step in enumerate(steps):
            # the network wants one timestep per sample
            t = torch.full((batch_size,), step, dtype=torch.long, device=x.device)
            # alpha_bar_t as a number that broadcasts against x (B, ...), in x's dtype
            alpha_bar_t = alphas_cumprod[step].to(device=x.device, dtype=x.dtype)

            # Eq. 9: f_theta(x_t), the network's prediction of x_0 (whatever it was trained to predict)
            x0_hat = predict_x0(x, model(x, t), alpha_bar_t, prediction)

            is_last = i == len(steps) - 1
            if is_last:
                # Eq. 10, t = 1: the generative process ends on the prediction of x_0 (alpha_bar = 1, no noise left)
                return x0_hat

            # the earlier timestep we jump to: the next one of the subsequence, not t - 1
            alpha_bar_prev = alphas_cumprod[steps[i + 1]].to(device=x.device, dtype=x.dtype)
            fresh = None
            if eta > 0:
                # z ~ N(0, I), one draw per step, in order (the docstring's rule)
                fresh = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            # Eq. 12 with sigma_t(eta) of Eq. 16: exercise 1
            x = ddim_step(x, x0_hat, alpha_bar_t, alpha_bar_prev, eta, fresh)
    return x


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Lesson 02, exercise 3: the noise level sigma of DDPM's x_t measured in the coordinates x = x_t /
    sqrt(alpha_bar_t), where x = x_0 + sigma * noise (Karras et al. 2022, Eq. 4 with s(t) = sqrt(alpha_bar);
    Song et al. 2021, Section 4.3). alpha_bar of any shape in (0, 1]; return sigma, the same shape, 0 at alpha_bar = 1.
    """
    # x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps; divide by sqrt(alpha_bar):
    # x_t / sqrt(alpha_bar) = x_0 + sqrt((1 - alpha_bar) / alpha_bar) eps, so sigma is the factor in front of eps
    noise_variance_over_signal = (1 - alpha_bar) / alpha_bar
    return torch.sqrt(noise_variance_over_signal)
