"""Interpolants and flow matching, in the notation of SiT (Ma et al. 2024, "SiT: Exploring Flow and Diffusion-based
Generative Models with Scalable Interpolant Transformers"), Lipman et al. 2023 and Liu et al. 2023.

A path mixes data and noise as x_t = alpha_t x_0 + sigma_t eps, t in [0, 1], from data (t = 0) to noise (t = 1):
    linear (rectified flow)  alpha_t = 1 - t,           sigma_t = t
    GVP                      alpha_t = cos(pi t / 2),   sigma_t = sin(pi t / 2)
    VP                       alpha_t, sigma_t of the VP SDE (DDPM's linear betas in continuous time)
The velocity u = d x_t / dt = alpha'_t x_0 + sigma'_t eps; a network predicts u (SiT's default), the noise, or the
score. Every path is also a path through EDM's noise levels, sigma = sigma_t / alpha_t, so `FlowDenoiser` puts
any of these networks behind D(x, sigma) and every sampler in `samplers.py` drives it; the samplers here step
in t, in the paper's notation, with the common signature (denoiser, x, sigmas).
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ..parallel.batch import BatchShard
from .schedules import append_dims, masked_mean
from .samplers import _noise_like, integrate_in_time
from .score_sde import VPSDE
from ..randomness import rand, randn

PATHS = ("linear", "gvp", "vp")
FLOW_PREDICTIONS = ("velocity", "noise", "score", "data")
DATA_PREDICTION_MIN_SIGMA = 0.05  # the data prediction's loss divides by sigma_t; below this it divides by this


@dataclass(frozen=True)
class Path:
    """alpha_t, sigma_t and their time derivatives for one interpolant (SiT, Section 2.2)."""
    name: str = "linear"  # one of PATHS

    def __post_init__(self):
        if self.name not in PATHS:
            raise ValueError(f"unknown path {self.name!r}; choose one of {PATHS}")

    def alpha(self, t):
        if self.name == "linear":
            return 1 - t
        if self.name == "gvp":
            return torch.cos(math.pi * t / 2)
        return VPSDE().alpha(t)

    def sigma(self, t):
        if self.name == "linear":
            return t
        if self.name == "gvp":
            return torch.sin(math.pi * t / 2)
        return (1 - VPSDE().alpha(t) ** 2).sqrt()

    def d_alpha(self, t):
        if self.name == "linear":
            return -torch.ones_like(t)
        if self.name == "gvp":
            return -math.pi / 2 * torch.sin(math.pi * t / 2)
        sde = VPSDE()
        # alpha' = alpha * d/dt(-1/4 t^2 (b_max - b_min) - 1/2 t b_min) = -1/2 beta(t) alpha
        return -0.5 * sde.beta(t) * sde.alpha(t)

    def d_sigma(self, t):
        if self.name == "linear":
            return torch.ones_like(t)
        if self.name == "gvp":
            return math.pi / 2 * torch.cos(math.pi * t / 2)
        # sigma = sqrt(1 - alpha^2)  =>  sigma' = -alpha alpha' / sigma
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t)

    def edm_sigma(self, t):
        """The noise level of x_t / alpha_t in EDM's coordinates: sigma_t / alpha_t."""
        return self.sigma(t) / self.alpha(t)

    def time_from_edm_sigma(self, sigma):
        """The t at which sigma_t / alpha_t = sigma (the inverse of `edm_sigma`)."""
        if self.name == "linear":
            return sigma / (1 + sigma)  # t / (1 - t) = sigma
        if self.name == "gvp":
            return 2 / math.pi * torch.atan(sigma)  # tan(pi t / 2) = sigma
        return VPSDE().time_from_sigma(sigma)


def x0_from_prediction(path: Path, x_t: torch.Tensor, t: torch.Tensor, output: torch.Tensor,
                       prediction: str) -> torch.Tensor:
    """x_0 from a velocity, noise, score or data prediction at (x_t, t); t is (B,)."""
    if prediction == "data":
        return output
    alpha, sigma = append_dims(path.alpha(t), x_t), append_dims(path.sigma(t), x_t)
    if prediction == "velocity":
        d_alpha, d_sigma = append_dims(path.d_alpha(t), x_t), append_dims(path.d_sigma(t), x_t)
        # solve  x_t = alpha x_0 + sigma eps,  u = alpha' x_0 + sigma' eps  for x_0
        return (d_sigma * x_t - sigma * output) / (d_sigma * alpha - sigma * d_alpha)
    if prediction == "noise":
        noise = output
    elif prediction == "score":
        noise = -sigma * output  # score = -eps / sigma_t
    else:
        raise ValueError(f"unknown prediction {prediction!r}; choose one of {FLOW_PREDICTIONS}")
    return (x_t - sigma * noise) / alpha


def flow_target(path: Path, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
    """The regression target of each prediction (SiT, Section 2.2): u_t, eps, the score -eps / sigma_t, or x_0."""
    if prediction == "velocity":
        # u_t = alpha'_t x_0 + sigma'_t eps
        return append_dims(path.d_alpha(t), x0) * x0 + append_dims(path.d_sigma(t), x0) * noise
    if prediction == "noise":
        return noise
    if prediction == "score":
        return -noise / append_dims(path.sigma(t), x0)
    if prediction == "data":
        return x0
    raise ValueError(f"unknown prediction {prediction!r}; choose one of {FLOW_PREDICTIONS}")


def sample_times(batch_size: int, distribution: str = "uniform", shift: float = 1.0,
                 generator: Optional[torch.Generator] = None, device=None,
                 unshifted_share: float = 0.0, max_time: float = 1.0) -> torch.Tensor:
    """Training times in (0, 1): "uniform" (SiT), "logit_normal" (Esser et al. 2024: t = sigmoid(n), n ~ N(0, 1)),
    then optionally shifted towards noise, t -> shift t / (1 + (shift - 1) t) (Esser et al. 2024's time shift). A
    share `unshifted_share` of the draws, chosen at random, keeps its unshifted time: a mixture of the two
    distributions, so that a strong shift still leaves the clean end some training. Last, the times are scaled into
    (0, `max_time`]: an expert for the low noise levels trains on those alone (Balaji et al. 2022)."""
    if distribution == "uniform":
        t = rand((batch_size,), generator, device)
    elif distribution == "logit_normal":
        t = torch.sigmoid(randn((batch_size,), generator, device))
    else:
        raise ValueError(f"unknown time distribution {distribution!r}; choose 'uniform' or 'logit_normal'")
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    if not 0 <= unshifted_share <= 1:
        raise ValueError(f"unshifted_share is a fraction of the draws, in [0, 1]; got {unshifted_share}")
    if not 0 < max_time <= 1:
        raise ValueError(f"max_time is the largest training time, in (0, 1]; got {max_time}")
    shifted = shift * t / (1 + (shift - 1) * t)
    if unshifted_share > 0:  # drawn only when asked for, so that the stream of random numbers is otherwise unchanged
        shifted = torch.where(rand((batch_size,), generator, device) < unshifted_share, t, shifted)
    return (max_time * shifted).clamp(1e-5, 1 - 1e-5)


def flow_matching_loss(model: Callable, x0: torch.Tensor, path: Path, prediction: str = "velocity",
                       time_distribution: str = "uniform", shift: float = 1.0,
                       generator: Optional[torch.Generator] = None, unshifted_share: float = 0.0,
                       data_min_sigma: float = DATA_PREDICTION_MIN_SIGMA, max_time: float = 1.0,
                       loss_mask: Optional[torch.Tensor] = None, shard: Optional[BatchShard] = None,
                       *, noise: Optional[torch.Tensor] = None, **cond) -> torch.Tensor:
    """E_{t, x_0, eps} lambda_t || model(x_t, t) - target ||^2 (Lipman et al. 2023, Eq. 9 for the velocity; SiT,
    Section 2.2). lambda_t = 1, except for the score: sigma_t^2 (Song et al. 2021's weighting, which keeps the
    target's variance finite as t -> 0 and makes it the noise loss) and the data: the network predicts x_0 but is
    scored on the velocity that prediction implies, u_hat - u = (alpha' - sigma' alpha / sigma)(x0_hat - x_0), with
    sigma_t held at `data_min_sigma` or above, which caps the weight near the clean end (Li & He 2025, "Back to
    Basics: Let Denoising Generative Models Denoise": x-prediction with the v-loss). Predicting x_0 matters when a
    token's patch has more values than the token has width: a velocity or noise prediction cannot then reach every
    direction of the noise, which passes through to the samples; a data prediction only has to reach the data,
    which lies near a low-dimensional set. `loss_mask`, broadcastable to x0, leaves out the elements where it is 0
    (given frames: `masked_mean`). With a `shard`, the whole batch's times and noise are drawn and this process's
    rows trained on (`parallel.batch`). `noise`, shaped like x0, pairs each x_0 with a given eps instead of a fresh
    draw: reflow (Liu et al. 2023, Algorithm 1) trains on the couplings (eps, ODE(eps)) of a trained flow."""
    t = sample_times(x0.shape[0], time_distribution, shift, generator, x0.device, unshifted_share,
                     max_time).to(x0.dtype)
    if noise is None:
        noise = randn(x0.shape, generator, x0.device, x0.dtype)
    elif noise.shape != x0.shape:
        raise ValueError(f"noise must be shaped like x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    if shard is not None:
        x0, t, noise, cond = (shard.take(value, len(x0)) for value in (x0, t, noise, cond))
    # x_t = alpha_t x_0 + sigma_t eps
    x_t = append_dims(path.alpha(t), x0) * x0 + append_dims(path.sigma(t), x0) * noise
    error = (model(x_t, t, **cond) - flow_target(path, x0, noise, t, prediction)).pow(2)
    if prediction == "score":
        error = error * append_dims(path.sigma(t), x0) ** 2
    if prediction == "data":
        sigma = path.sigma(t).clamp(min=data_min_sigma)
        # lambda_t = (alpha'_t - sigma'_t alpha_t / sigma_t)^2: the squared velocity error per unit of x_0 error
        error = error * append_dims(path.d_alpha(t) - path.d_sigma(t) * path.alpha(t) / sigma, x0) ** 2
    return masked_mean(error, loss_mask, shard)


class FlowDenoiser(nn.Module):
    """A flow network model(x_t, t, **cond) as the denoiser D(x, sigma): query it at t(sigma), x_t = alpha_t x."""

    def __init__(self, model: nn.Module, path: Path, prediction: str = "velocity"):
        super().__init__()
        if prediction not in FLOW_PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {FLOW_PREDICTIONS}")
        self.model, self.path, self.prediction = model, path, prediction

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, **cond) -> torch.Tensor:
        t = self.path.time_from_edm_sigma(sigma)  # (B,)
        x_t = append_dims(self.path.alpha(t), x) * x
        return x0_from_prediction(self.path, x_t, t, self.model(x_t, t, **cond), self.prediction)


def velocity_from_denoiser(denoiser: Callable, path: Path, x_t: torch.Tensor, t: torch.Tensor, cond: Optional[dict]):
    """(u, x0_hat, eps_hat) at (x_t, t), t a scalar or (B,): x0_hat = D(x_t / alpha_t, sigma_t / alpha_t), then
    eps_hat = (x_t - alpha_t x0_hat) / sigma_t and u = alpha'_t x0_hat + sigma'_t eps_hat."""
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).expand(x_t.shape[0])  # (B,)
    alpha, sigma = append_dims(path.alpha(t), x_t), append_dims(path.sigma(t), x_t)
    x0 = denoiser(x_t / alpha, path.edm_sigma(t), **(cond or {}))
    noise = (x_t - alpha * x0) / sigma
    return append_dims(path.d_alpha(t), x_t) * x0 + append_dims(path.d_sigma(t), x_t) * noise, x0, noise


DIFFUSIONS = ("sigma", "sbdm", "constant")


def diffusion_coefficient(path: Path, t: torch.Tensor, kind: str, scale: float = 1.0) -> torch.Tensor:
    """w_t of SiT's reverse SDE (Section 2.3), times `scale`: "sigma" w_t = sigma_t; "constant" w_t = 1; "sbdm"
    w_t = -2 (alpha'/alpha sigma^2 - sigma sigma'), the choice that makes the SDE the score-based diffusion's own
    (its g(t)^2; with t running from data to noise the bracket is negative)."""
    if kind == "sigma":
        w = path.sigma(t)
    elif kind == "sbdm":
        w = -2 * (path.d_alpha(t) / path.alpha(t) * path.sigma(t) ** 2 - path.sigma(t) * path.d_sigma(t))
    elif kind == "constant":
        w = torch.ones_like(t)
    else:
        raise ValueError(f"unknown diffusion coefficient {kind!r}; choose one of {DIFFUSIONS}")
    return scale * w


@torch.no_grad()
def sample_flow_euler(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                      callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                      path: Path = Path("linear")) -> torch.Tensor:
    """Euler's method in t on the flow ODE dx/dt = u(x, t) (SiT, Section 2.3, the ODE sampler)."""
    def step(x_t, t, t_next):
        velocity, _, _ = velocity_from_denoiser(denoiser, path, x_t, t, cond)
        return x_t + (t_next - t).to(x_t.dtype) * velocity

    return integrate_in_time(denoiser, x, sigmas, time_from_sigma=path.time_from_edm_sigma, alpha=path.alpha,
                             step=step, cond=cond, callback=callback)


@torch.no_grad()
def sample_flow_heun(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                     callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                     path: Path = Path("linear")) -> torch.Tensor:
    """Heun's method in t on the flow ODE (SiT's ODE sampler uses a 2nd-order solver; this is the fixed-step one)."""
    def step(x_t, t, t_next):
        dt = (t_next - t).to(x_t.dtype)
        velocity, _, _ = velocity_from_denoiser(denoiser, path, x_t, t, cond)
        x_euler = x_t + dt * velocity
        velocity_next, _, _ = velocity_from_denoiser(denoiser, path, x_euler, t_next, cond)
        return x_t + dt * (velocity + velocity_next) / 2

    return integrate_in_time(denoiser, x, sigmas, time_from_sigma=path.time_from_edm_sigma, alpha=path.alpha,
                             step=step, cond=cond, callback=callback)


LAST_STEPS = ("tweedie", "mean", "euler")


@torch.no_grad()
def sample_flow_sde(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                    callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                    path: Path = Path("linear"), diffusion: str = "sigma", diffusion_scale: float = 1.0,
                    last_step: str = "tweedie") -> torch.Tensor:
    """Euler-Maruyama on SiT's reverse SDE, dx = [u - 1/2 w_t score] dt + sqrt(w_t) dw_bar (SiT, Section 2.3),
    time running from noise to data. The last step into sigma = 0 is one of SiT's options: "tweedie" returns the
    x_0 estimate, "mean" the SDE step without its noise, "euler" an ODE step with the velocity alone."""
    if last_step not in LAST_STEPS:
        raise ValueError(f"unknown last_step {last_step!r}; choose one of {LAST_STEPS}")

    def drift(x_t, t):  # (u, score, w_t) at (x_t, t)
        velocity, _, noise = velocity_from_denoiser(denoiser, path, x_t, t, cond)
        score = -noise / path.sigma(t).to(x_t.dtype)
        return velocity, score, diffusion_coefficient(path, t, diffusion, diffusion_scale).to(x_t.dtype)

    def step(x_t, t, t_next):
        dt = (t_next - t).to(x_t.dtype)  # negative
        velocity, score, w = drift(x_t, t)
        # backwards in time the drift is u - 1/2 w score and the noise has variance w |dt|
        return x_t + (velocity - 0.5 * w * score) * dt + (w * -dt).sqrt() * _noise_like(x_t, generator)

    def final_step(x_t, t):  # from t to 0, where alpha = 1 and x = x_t
        velocity, score, w = drift(x_t, t)
        drift_term = velocity if last_step == "euler" else velocity - 0.5 * w * score
        return x_t - t.to(x_t.dtype) * drift_term

    return integrate_in_time(denoiser, x, sigmas, time_from_sigma=path.time_from_edm_sigma, alpha=path.alpha,
                             step=step, cond=cond, callback=callback,
                             final_step=None if last_step == "tweedie" else final_step)
