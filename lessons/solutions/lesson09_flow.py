"""Lesson 09 worked solutions: interpolants, flow matching and its Euler sampler (SiT, Ma et al. 2024; Lipman et al.
2023; Liu et al. 2023). Check with `pytest -m lesson09 --impl=solutions`.

Read these after trying the exercises in lessons/exercises/lesson09_flow.py (and the hints in
lessons/hints/lesson09.md). Each equation sits on the line above the line that computes it. Time runs from data
(t = 0) to noise (t = 1), SiT's convention: x_t = alpha_t x0 + sigma_t eps.
"""
from typing import Callable, Optional

import torch

from minisora.diffusion.flow import Path

REFERENCE_MODULES = ("minisora.diffusion.flow",)


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1), so that one number per sample multiplies a whole sample of `like` (B, ...)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def flow_target(path: Path, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
    """Lesson 09 (section 2; SiT, Section 2.2): what a network is trained to output at the point
    x_t = alpha_t x0 + sigma_t eps of `path`, for each of SiT's three predictions.

    x0 and noise (eps) are (B, ...); t is (B,), one time per sample. prediction is
    "velocity": the conditional velocity u_t of Lipman et al. 2023, the rate of change of x_t in t with x0 and eps
                held fixed;
    "noise":    the eps that was mixed in;
    "score":    the score, grad log p_t(x_t | x0), of the Gaussian that x_t is drawn from given x0, at x_t.
    Returns a tensor shaped like x0; raise a ValueError for another prediction."""
    if prediction == "noise":
        # the network is asked for the very eps that was mixed in
        return noise
    if prediction == "score":
        sigma = _per_sample(path.sigma(t), x0)
        # p_t(x_t | x0) = N(alpha x0, sigma^2 I): its score is -(x_t - alpha x0) / sigma^2, and x_t - alpha x0 = sigma eps
        return -noise / sigma
    if prediction != "velocity":
        raise ValueError(f"prediction must be 'velocity', 'noise' or 'score', got {prediction!r}")
    alpha_dot = _per_sample(path.d_alpha(t), x0)
    sigma_dot = _per_sample(path.d_sigma(t), x0)
    # u_t = d/dt (alpha_t x0 + sigma_t eps) with x0 and eps fixed = alpha'_t x0 + sigma'_t eps
    return alpha_dot * x0 + sigma_dot * noise


def x0_from_prediction(path: Path, x_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor,
                       prediction: str) -> torch.Tensor:
    """Lesson 09 (section 2; SiT, Section 2.2): the data x0 that a "velocity", "noise" or "score" prediction
    implies, the inverse of flow_target.

    x_t (B, ...) is a point of `path` at times t (B,); output (B, ...) is a network's prediction there. Return the x0
    for which output equals flow_target(path, x0, eps, t, prediction) and x_t = alpha_t x0 + sigma_t eps hold
    together (the lesson's section 2 solves this pair of linear equations). Shaped like x_t."""
    alpha = _per_sample(path.alpha(t), x_t)
    sigma = _per_sample(path.sigma(t), x_t)
    if prediction == "velocity":
        alpha_dot = _per_sample(path.d_alpha(t), x_t)
        sigma_dot = _per_sample(path.d_sigma(t), x_t)
        # x_t = alpha x0 + sigma eps and u = alpha' x0 + sigma' eps; sigma' (first) - sigma (second) removes eps:
        # sigma' x_t - sigma u = (sigma' alpha - sigma alpha') x0
        determinant = sigma_dot * alpha - sigma * alpha_dot
        return (sigma_dot * x_t - sigma * output) / determinant
    if prediction == "noise":
        eps = output
    elif prediction == "score":
        # score = -eps / sigma   =>   eps = -sigma score
        eps = -sigma * output
    else:
        raise ValueError(f"prediction must be 'velocity', 'noise' or 'score', got {prediction!r}")
    # x_t = alpha x0 + sigma eps   =>   x0 = (x_t - sigma eps) / alpha
    return (x_t - sigma * eps) / alpha


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
    batch_size = x.shape[0]
    # the path's clock: the t_i with sigma_t / alpha_t = sigmas[i], for every positive sigma
    positive = sigmas[sigmas > 0].to(torch.float64)
    times = path.time_from_edm_sigma(positive)
    # EDM's coordinates -> the path's:   x_t = alpha_t x
    x_t = path.alpha(times[0]).to(x.dtype) * x
    for i in range(len(sigmas) - 1):
        t = times[i]
        alpha, sigma = path.alpha(t).to(x.dtype), path.sigma(t).to(x.dtype)
        # E[x0 | x_t]: x_t / alpha_t = x0 + (sigma_t / alpha_t) eps is a point of EDM's space at noise sigma_t / alpha_t
        noise_level = (sigma / alpha).expand(batch_size)
        x0_hat = denoiser(x_t / alpha, noise_level)
        if sigmas[i + 1] == 0:
            # the last step lands on t = 0, where the path is the data itself: return the estimate of x0
            return x0_hat
        # E[eps | x_t], from x_t = alpha_t x0 + sigma_t eps
        eps_hat = (x_t - alpha * x0_hat) / sigma
        # the marginal velocity E[u | x_t] = alpha'_t E[x0 | x_t] + sigma'_t E[eps | x_t]   (Lipman et al. 2023, Eq. 8)
        velocity = path.d_alpha(t).to(x.dtype) * x0_hat + path.d_sigma(t).to(x.dtype) * eps_hat
        # Euler:   x_{t_{i+1}} = x_{t_i} + (t_{i+1} - t_i) v(x_{t_i}, t_i)     (t_{i+1} < t_i: back towards the data)
        step = (times[i + 1] - t).to(x.dtype)
        x_t = x_t + step * velocity
    # the path's coordinates -> EDM's:   x = x_t / alpha_t
    return x_t / path.alpha(times[-1]).to(x.dtype)


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
    # t ~ the time distribution, one per sample; then eps ~ N(0, I), one per element (in this order)
    t = sample_times(x0.shape[0], time_distribution, shift, generator, x0.device).to(x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    alpha, sigma = _per_sample(path.alpha(t), x0), _per_sample(path.sigma(t), x0)
    # a point of the conditional path:   x_t = alpha_t x0 + sigma_t eps
    x_t = alpha * x0 + sigma * eps
    # || v_theta(x_t, t) - u_t(x_t | x0, eps) ||^2, or the same with the noise or the score as the target
    squared_error = (model(x_t, t) - flow_target(path, x0, eps, t, prediction)) ** 2
    if prediction == "score":
        # lambda_t = sigma_t^2: sigma^2 || s - (-eps / sigma) ||^2 = || sigma s + eps ||^2 stays finite as t -> 0
        squared_error = squared_error * sigma**2
    # E_{t, x0, eps}: the average over the batch (and over every element of each sample)
    return squared_error.mean()


def sample_times(batch_size: int, distribution: str = "uniform", shift: float = 1.0,
                 generator: Optional[torch.Generator] = None, device=None) -> torch.Tensor:
    """Lesson 09 (section 7): batch_size training times in (0, 1) for the flow-matching loss.

    distribution "uniform" (SiT) or "logit_normal", the times whose logit is a standard normal (Esser et al. 2024,
    Stable Diffusion 3). Then Esser et al.'s time shift with factor `shift`: the map of t that sends the odds
    t / (1 - t) to `shift` times themselves (shift 1 changes nothing; shift > 1 moves times towards the noise), and
    last a clamp into [1e-5, 1 - 1e-5]. Draw with one call, torch.rand or torch.randn of shape (batch_size,) in
    float32, from `generator` (the checks replay it). Returns (batch_size,) on `device` (None: where generator is)."""
    where = generator.device if generator is not None else torch.device("cpu")
    if distribution == "uniform":
        # t ~ U(0, 1)
        t = torch.rand(batch_size, generator=generator, device=where)
    elif distribution == "logit_normal":
        # logit(t) = n ~ N(0, 1)   =>   t = sigmoid(n) = 1 / (1 + e^{-n})
        t = torch.sigmoid(torch.randn(batch_size, generator=generator, device=where))
    else:
        raise ValueError(f"distribution must be 'uniform' or 'logit_normal', got {distribution!r}")
    # shift the odds:  t' / (1 - t') = shift * t / (1 - t)   <=>   t' = shift t / (1 + (shift - 1) t)
    t = shift * t / (1 + (shift - 1) * t)
    # keep clear of t = 0 (sigma_t = 0: the score target is infinite) and t = 1 (alpha_t = 0: x0 cannot be recovered)
    t = t.clamp(1e-5, 1 - 1e-5)
    return t if device is None else t.to(device)
