"""Lesson 09 exercises: interpolants, flow matching and its Euler sampler (SiT, Ma et al. 2024; Lipman et al. 2023;
Liu et al. 2023). Check with `pytest -m lesson09 --impl=exercises` (one exercise: add `-k NAME`). Hints:
lessons/hints/lesson09.md; worked solutions: lessons/solutions/lesson09_flow.py.

A path is x_t = alpha_t x0 + sigma_t eps, t in [0, 1], from data (t = 0) to noise (t = 1); `path.alpha(t)`,
`path.sigma(t)`, `path.d_alpha(t)`, `path.d_sigma(t)` give its coefficients and their time derivatives for a tensor of
times, `path.edm_sigma(t)` its noise level in EDM's coordinates and `path.time_from_edm_sigma(sigma)` the way back.
"""
from typing import Callable, Optional

import torch

from minisora.diffusion.flow import Path

REFERENCE_MODULES = ("minisora.diffusion.flow",)


def flow_target(path: Path, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
    """Lesson 09 (section 2; SiT, Section 2.2): what a network is trained to output at the point
    x_t = alpha_t x0 + sigma_t eps of `path`, for each of SiT's three predictions.

    x0 and noise (eps) are (B, ...); t is (B,), one time per sample. prediction is
    "velocity": the conditional velocity u_t of Lipman et al. 2023, the rate of change of x_t in t with x0 and eps
                held fixed;
    "noise":    the eps that was mixed in;
    "score":    the score, grad log p_t(x_t | x0), of the Gaussian that x_t is drawn from given x0, at x_t.
    Returns a tensor shaped like x0; raise a ValueError for another prediction."""
    raise NotImplementedError("Lesson 09: the velocity, noise and score targets of SiT")


def x0_from_prediction(path: Path, x_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor,
                       prediction: str) -> torch.Tensor:
    """Lesson 09 (section 2; SiT, Section 2.2): the data x0 that a "velocity", "noise" or "score" prediction
    implies, the inverse of flow_target.

    x_t (B, ...) is a point of `path` at times t (B,); output (B, ...) is a network's prediction there. Return the x0
    for which output equals flow_target(path, x0, eps, t, prediction) and x_t = alpha_t x0 + sigma_t eps hold
    together (the lesson's section 2 solves this pair of linear equations). Shaped like x_t."""
    raise NotImplementedError("Lesson 09: convert any prediction into the denoised x0")


def sample_flow_euler(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                      path: Path = Path("linear")) -> torch.Tensor:
    """Lesson 09 (section 4; SiT, Section 2.3, the ODE sampler): Euler's method in the path's own time t on the flow
    ODE dx_t/dt = v(x_t, t), from noise to data, with the marginal velocity v = E[u | x_t] built from a denoiser.

    The interface of every minisora sampler: x (B, ...) is noise in EDM's coordinates at the level sigmas[0]
    (x = x0 + sigma eps, that is x_t / alpha_t); sigmas is a decreasing 1-D tensor, usually ending in 0;
    denoiser(x, sigma) returns E[x0 | x] with one sigma per sample ((B,)). Map each positive sigma to its time t on
    the path, x to the path's x_t, take one Euler step in t per pair of consecutive times, and return x at the level
    sigmas[-1], in EDM's coordinates again. A step into sigma = 0 returns the denoiser's estimate of x0 (at t = 0
    the path is the data). Keep x's dtype: compute the times in float64, cast what multiplies x to x.dtype."""
    raise NotImplementedError("Lesson 09: Euler's method on the flow ODE")


def flow_matching_loss(model: Callable, x0: torch.Tensor, path: Path, prediction: str = "velocity",
                       time_distribution: str = "uniform", shift: float = 1.0,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 09 (section 5): the conditional flow-matching loss of Lipman et al. 2023, Eq. 9, for any of the three
    predictions (SiT, Section 2.2): a Monte Carlo estimate, on this batch, of the mean squared error between the
    network's output model(x_t, t) and flow_target at random points x_t of the path.

    x0 (B, ...) is a batch of data. Draw the times first, t = sample_times(B, time_distribution, shift, generator)
    (yours below, or minisora's) cast to x0's dtype, then eps with torch.randn(x0.shape, generator=generator,
    dtype=x0.dtype): the checks replay these draws. The "score" error is weighted by sigma_t^2 (its target grows
    without bound as t -> 0); the others are unweighted. Return the mean over every element: a 0-d tensor."""
    raise NotImplementedError("Lesson 09: the (conditional) flow matching loss")


def sample_times(batch_size: int, distribution: str = "uniform", shift: float = 1.0,
                 generator: Optional[torch.Generator] = None, device=None) -> torch.Tensor:
    """Lesson 09 (section 8): batch_size training times in (0, 1) for the flow-matching loss.

    distribution "uniform" (SiT) or "logit_normal", the times whose logit is a standard normal (Esser et al. 2024,
    Stable Diffusion 3). Then Esser et al.'s time shift with factor `shift`: the map of t that sends the odds
    t / (1 - t) to `shift` times themselves (shift 1 changes nothing; shift > 1 moves times towards the noise), and
    last a clamp into [1e-5, 1 - 1e-5]. Draw with one call, torch.rand or torch.randn of shape (batch_size,) in
    float32, from `generator` (the checks replay it). Returns (batch_size,) on `device` (None: where generator is)."""
    raise NotImplementedError("Lesson 09: uniform, logit-normal and shifted training times")
