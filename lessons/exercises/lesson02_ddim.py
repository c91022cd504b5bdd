"""Lesson 02 exercises: DDIM (Song, Meng & Ermon 2021). Check with `pytest -m lesson02 --impl=exercises`."""
from typing import Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.ddim")


def sigma_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Lesson 02: the noise level of x_t / sqrt(alpha_bar_t), sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    raise NotImplementedError("Lesson 02: sigma from alpha_bar (Karras et al. 2022, Eq. 4 with s(t) = sqrt(alpha_bar))")


def ddim_step(x_t: torch.Tensor, x0_hat: torch.Tensor, alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor,
              eta: float, noise: Optional[torch.Tensor]) -> torch.Tensor:
    """Lesson 02, Eqs. 12 and 16: one DDIM step from x_t to x_prev given x0_hat; eta scales the fresh noise."""
    raise NotImplementedError("Lesson 02: the DDIM step, Eq. 12 with sigma_t(eta) from Eq. 16 of Song et al. 2021")
