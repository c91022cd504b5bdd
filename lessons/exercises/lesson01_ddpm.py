"""Lesson 01 exercises: DDPM (Ho et al. 2020). Check with `pytest -m lesson01 --impl=exercises`."""
import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.ddpm")


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Lesson 01: the linear schedule beta_1 .. beta_T, evenly spaced from beta_start to beta_end, float64 (T,)."""
    raise NotImplementedError("Lesson 01: linear betas (Ho et al. 2020, Section 4)")


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """Lesson 01: alpha_bar_t = prod_{s <= t} (1 - beta_s), float64."""
    raise NotImplementedError("Lesson 01: alpha_bar (Ho et al. 2020, notation above Eq. 4)")


def q_sample(x0: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lesson 01, Eq. 4: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, with t (B,) indexing alphas_cumprod."""
    raise NotImplementedError("Lesson 01: the forward process q(x_t | x_0), Eq. 4 of Ho et al. 2020")


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor):
    """Lesson 01, Eqs. 6-7: (mean, variance) of q(x_{t-1} | x_t, x_0) for t >= 1, each broadcastable to x0."""
    raise NotImplementedError("Lesson 01: the posterior q(x_{t-1} | x_t, x_0), Eqs. 6-7 of Ho et al. 2020")


def predict_x0(x_t: torch.Tensor, output: torch.Tensor, alpha_bar: torch.Tensor, prediction: str = "epsilon") -> torch.Tensor:
    """Lesson 01, Eq. 15: x_0 from the network output, for prediction "epsilon", "x0" or "v" (Salimans & Ho 2022)."""
    raise NotImplementedError("Lesson 01: x_0 from eps / x0 / v, Eq. 15 of Ho et al. 2020")
