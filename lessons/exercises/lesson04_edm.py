"""Lesson 04 exercises: EDM (Karras et al. 2022). Check with `pytest -m lesson04 --impl=exercises`."""
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.edm", "minisora.diffusion.samplers")


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Lesson 04, Eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, then a 0."""
    raise NotImplementedError("Lesson 04: the sampling noise levels, Eq. 5 of Karras et al. 2022")


def edm_preconditioning(sigma: torch.Tensor, sigma_data: float = 0.5):
    """Lesson 04, Table 1: (c_skip, c_out, c_in, c_noise) of EDM's preconditioning."""
    raise NotImplementedError("Lesson 04: the preconditioning of Table 1 of Karras et al. 2022")


def sample_heun(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 04, Algorithm 1: Heun's method on dx/dsigma = (x - D(x, sigma)) / sigma, with an Euler step into 0."""
    raise NotImplementedError("Lesson 04: the Heun sampler, Algorithm 1 of Karras et al. 2022")
