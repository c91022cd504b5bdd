"""Lesson 04 worked solutions: EDM (Karras et al. 2022). Try the exercises in lessons/exercises/lesson04_edm.py first;
these pass the same checks: `pytest -m lesson04 --impl=solutions`.

Notation of the paper: t_i (or sigma_i) the noise levels, D(x; sigma) the denoiser, d the slope dx/dsigma."""
import math
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.edm", "minisora.diffusion.samplers")


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Lesson 04, exercise 1: the sampling noise levels of Karras et al. 2022, Eq. 5.

    Return a float64 tensor of num_steps + 1 values: num_steps noise levels that run from sigma_max down to sigma_min
    with equal steps in sigma^(1/rho) (the first is sigma_max, the num_steps-th is sigma_min), then a final 0, where
    the last sampling step lands. rho = 1 spaces them evenly in sigma; a larger rho crowds them at low noise.
    """
    # work in the warped coordinate u = sigma^(1/rho), where the levels are evenly spaced
    u_max = sigma_max ** (1 / rho)
    u_min = sigma_min ** (1 / rho)
    # i / (N - 1) for i = 0 .. N-1 (a single step has only sigma_max: the fraction is 0)
    fraction = torch.arange(num_steps, dtype=torch.float64) / max(num_steps - 1, 1)
    # Eq. 5: sigma_i = (u_max + i / (N - 1) (u_min - u_max))^rho
    levels = (u_max + fraction * (u_min - u_max)) ** rho
    # sigma_N = 0: the last step lands on the data
    final_zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([levels, final_zero])


def sample_heun(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                cond: Optional[dict] = None) -> torch.Tensor:
    """Lesson 04, exercise 2: Heun's 2nd-order sampler, Algorithm 1 of Karras et al. 2022.

    denoiser(x, sigma, **cond) -> x_0 estimate, with sigma a (B,) tensor; x (B, ...) is the start, noise at level
    sigmas[0]; sigmas is decreasing, usually ending in 0. Integrate the probability-flow ODE in sigma (Eq. 1 with
    sigma(t) = t, its score written through D as in Eq. 3) from sigmas[0] to sigmas[-1] through every level, and
    return x there, same shape and dtype. Each step is an Euler step followed by Heun's correction, except a step
    into sigma = 0, which stays a plain Euler step: N steps into 0 call the denoiser 2N - 1 times.
    """
    cond = cond or {}
    batch = x.shape[0]

    def slope(x_now, level):
        # the ODE in sigma: dx/dsigma = (x - D(x; sigma)) / sigma
        level_per_row = torch.full((batch,), float(level), dtype=x.dtype, device=x.device)  # (B,)
        return (x_now - denoiser(x_now, level_per_row, **cond)) / float(level)

    for i in range(len(sigmas) - 1):
        t_cur, t_next = float(sigmas[i]), float(sigmas[i + 1])
        step = t_next - t_cur  # negative: we walk down in noise
        # Algorithm 1, line 4: d_i = (x_i - D(x_i; t_i)) / t_i
        d_cur = slope(x, t_cur)
        # line 5: the Euler step x_{i+1} = x_i + (t_{i+1} - t_i) d_i
        x_euler = x + step * d_cur
        if t_next == 0:
            # lines 6-8 are skipped: the slope is undefined at sigma = 0, so the last step stays Euler
            x = x_euler
            continue
        # line 7: the slope at the Euler step's end point, d'_i = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1}
        d_end = slope(x_euler, t_next)
        # line 8: the trapezoidal rule, x_{i+1} = x_i + (t_{i+1} - t_i) (d_i / 2 + d'_i / 2)
        x = x + step * (0.5 * d_cur + 0.5 * d_end)
    return x


def edm_preconditioning(sigma: torch.Tensor, sigma_data: float = 0.5):
    """Lesson 04, exercise 3: EDM's preconditioning, Table 1 ("ours") of Karras et al. 2022, derived in Appendix B.6.

    For noise levels sigma (any shape) and data of standard deviation sigma_data, return the tuple
    (c_skip, c_out, c_in, c_noise), each of sigma's shape, such that in D = c_skip x + c_out F(c_in x, c_noise) the
    network's input and its training target both have unit variance and c_skip makes c_out as small as it can be;
    c_noise is the paper's noise label, a quarter of the log of sigma. The lesson derives all four.
    """
    # the variance of a noisy sample x = y + n: Var[y] + Var[n] = sigma_data^2 + sigma^2
    noisy_variance = sigma_data**2 + sigma**2
    # unit-variance input: c_in^2 (sigma_data^2 + sigma^2) = 1
    c_in = noisy_variance.rsqrt()
    # the c_skip that minimises the target's variance: d/dc_skip [(1 - c_skip)^2 sigma_data^2 + c_skip^2 sigma^2] = 0
    c_skip = sigma_data**2 / noisy_variance
    # unit-variance target at that c_skip: c_out^2 = sigma^2 sigma_data^2 / (sigma_data^2 + sigma^2)
    c_out = sigma * sigma_data * c_in
    # the noise label, chosen by the paper (not derived): ln(sigma) / 4
    c_noise = torch.log(sigma) / 4
    return c_skip, c_out, c_in, c_noise


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
    steps = len(sigmas) - 1
    # the largest churn: (1 + gamma)^2 <= 2, so the fresh noise never exceeds the noise x already holds
    largest_gamma = math.sqrt(2) - 1
    for i in range(steps):
        t_cur = float(sigmas[i])
        # Algorithm 2, line 4: gamma_i = min(S_churn / N, sqrt(2) - 1) inside [S_tmin, S_tmax], else 0
        in_window = s_tmin <= t_cur <= s_tmax
        gamma = min(s_churn / steps, largest_gamma) if in_window else 0.0
        # line 6: the raised level t^_i = t_i + gamma_i t_i
        t_hat = t_cur * (1 + gamma)
        if gamma > 0:
            # line 5: eps_i ~ N(0, S_noise^2 I)
            eps = s_noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)
            # line 7: x^_i = x_i + sqrt(t^_i^2 - t_i^2) eps_i (variances add: t_i^2 + (t^_i^2 - t_i^2) = t^_i^2)
            x = x + math.sqrt(t_hat**2 - t_cur**2) * eps
        # lines 8-13: one Heun step of Algorithm 1 from t^_i down to t_{i+1}
        two_levels = torch.tensor([t_hat, float(sigmas[i + 1])], dtype=sigmas.dtype)
        x = sample_heun(denoiser, x, two_levels, cond=cond)
    return x
