"""Lesson 02 exercises: DDIM (Song, Meng & Ermon 2021). Check with `pytest -m lesson02 --impl=exercises`.

Stuck? lessons/hints/lesson02.md has graded hints; lessons/solutions/lesson02_ddim.py a worked solution.

Notation: alpha_bar is DDPM's alpha-bar (the paper's alpha_t), a float64 tensor; "prev" is any earlier timestep."""
from typing import Callable, Optional

import torch

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
    raise NotImplementedError("Lesson 02: the DDIM step, Eq. 12 with sigma_t(eta) from Eq. 16 of Song et al. 2021")


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
    raise NotImplementedError("Lesson 02: the DDIM sampler, Eqs. 10 and 12 of Song et al. 2021 on a subsequence")


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Lesson 02, exercise 3: the noise level sigma of DDPM's x_t measured in the coordinates x = x_t /
    sqrt(alpha_bar_t), where x = x_0 + sigma * noise (Karras et al. 2022, Eq. 4 with s(t) = sqrt(alpha_bar);
    Song et al. 2021, Section 4.3). alpha_bar of any shape in (0, 1]; return sigma, the same shape, 0 at alpha_bar = 1.
    """
    raise NotImplementedError("Lesson 02: sigma from alpha_bar (Karras et al. 2022, Eq. 4 with s(t) = sqrt(alpha_bar))")
