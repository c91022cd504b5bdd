"""Lesson 04 exercises: EDM (Karras et al. 2022). Check with `pytest -m lesson04 --impl=exercises`.

Stuck? lessons/hints/lesson04.md has graded hints; lessons/solutions/lesson04_edm.py a worked solution."""
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.edm", "minisora.diffusion.samplers")


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Lesson 04, exercise 1: the sampling noise levels of Karras et al. 2022, Eq. 5.

    Return a float64 tensor of num_steps + 1 values: num_steps noise levels that run from sigma_max down to sigma_min
    with equal steps in sigma^(1/rho) (the first is sigma_max, the num_steps-th is sigma_min), then a final 0, where
    the last sampling step lands. rho = 1 spaces them evenly in sigma; a larger rho crowds them at low noise.
    """
    raise NotImplementedError("Lesson 04: the sampling noise levels, Eq. 5 of Karras et al. 2022")


def sample_heun(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                cond: Optional[dict] = None) -> torch.Tensor:
    """Lesson 04, exercise 2: Heun's 2nd-order sampler, Algorithm 1 of Karras et al. 2022.

    denoiser(x, sigma, **cond) -> x_0 estimate, with sigma a (B,) tensor; x (B, ...) is the start, noise at level
    sigmas[0]; sigmas is decreasing, usually ending in 0. Integrate the probability-flow ODE in sigma (Eq. 1 with
    sigma(t) = t, its score written through D as in Eq. 3) from sigmas[0] to sigmas[-1] through every level, and
    return x there, same shape and dtype. Each step is an Euler step followed by Heun's correction, except a step
    into sigma = 0, which stays a plain Euler step: N steps into 0 call the denoiser 2N - 1 times.
    """
    raise NotImplementedError("Lesson 04: the Heun sampler, Algorithm 1 of Karras et al. 2022")


def edm_preconditioning(sigma: torch.Tensor, sigma_data: float = 0.5):
    """Lesson 04, exercise 3: EDM's preconditioning, Table 1 ("ours") of Karras et al. 2022, derived in Appendix B.6.

    For noise levels sigma (any shape) and data of standard deviation sigma_data, return the tuple
    (c_skip, c_out, c_in, c_noise), each of sigma's shape, such that in D = c_skip x + c_out F(c_in x, c_noise) the
    network's input and its training target both have unit variance and c_skip makes c_out as small as it can be;
    c_noise is the paper's noise label, a quarter of the log of sigma. The lesson derives all four.
    """
    raise NotImplementedError("Lesson 04: the preconditioning of Table 1 of Karras et al. 2022")


def sample_edm_stochastic(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                          generator: Optional[torch.Generator] = None, s_churn: float = 40.0, s_tmin: float = 0.05,
                          s_tmax: float = 50.0, s_noise: float = 1.003) -> torch.Tensor:
    """Lesson 04, exercise 4: the stochastic sampler with churn, Algorithm 2 of Karras et al. 2022.

    The same inputs and output as sample_heun. At each of the N = len(sigmas) - 1 steps: if the current level lies in
    [s_tmin, s_tmax], raise it by the factor 1 + gamma, with gamma = s_churn / N capped at sqrt(2) - 1, by adding
    fresh Gaussian noise (its standard deviation scaled by s_noise) so that x is noised to exactly the raised level
    (outside the window gamma = 0 and nothing is added); then take the Heun step of Algorithm 1 from the raised level
    down to the next one (a plain Euler step into 0). With s_churn = 0 it is sample_heun.

    Random numbers (so that a check can replay yours): draw the fresh noise only at steps with gamma > 0, one
    torch.randn(x.shape, generator=generator, dtype=x.dtype) per such step, in order.
    """
    raise NotImplementedError("Lesson 04: the stochastic sampler, Algorithm 2 of Karras et al. 2022")
