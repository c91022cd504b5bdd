"""Samplers in sigma space, one signature for all: `sample_x(denoiser, x, sigmas, *, cond, callback, generator)`.

A denoiser is D(x, sigma, **cond) -> x_0 (Karras et al. 2022), with x = x_0 + sigma * noise. `sigmas` is a
decreasing 1-D tensor, usually ending in 0 (`schedules.karras_sigmas`, `schedules.sigmas_from_timesteps`);
`x` starts as noise * sigmas[0]. Every sampler returns the x at sigmas[-1] and knows nothing of how the
network behind the denoiser is parameterised.

The probability-flow ODE in these coordinates is dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. Eq. 3
with s(t) = 1, sigma(t) = t); Euler and Heun integrate it, the ancestral and churn samplers add fresh noise.
"""
import math
from typing import Callable, Optional

import torch

from .ddpm import interpolated_log_variance
from ..randomness import randn


def check_sampler_inputs(x: torch.Tensor, sigmas: torch.Tensor) -> None:
    """Raise a clear error for inputs no sampler can use."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if not torch.is_tensor(sigmas) or sigmas.dim() != 1:
        raise ValueError(f"sigmas must be a 1-D tensor, got {getattr(sigmas, 'shape', sigmas)!r}")
    if len(sigmas) < 2:
        raise ValueError(f"sigmas has {len(sigmas)} value(s): a sampler needs at least 2 (one step); "
                         "make them with schedules.karras_sigmas(num_steps) with num_steps >= 1")
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas < 0).any()):
        raise ValueError(f"sigmas must be finite and non-negative, got {sigmas.tolist()}")
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(f"sigmas must be strictly decreasing (noisiest first), got {sigmas.tolist()}")


def _batch_sigma(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One sigma per batch element, (B,), in x's dtype and device."""
    return sigma.to(device=x.device, dtype=x.dtype).expand(x.shape[0])


def _denoise(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, cond: Optional[dict]) -> torch.Tensor:
    return denoiser(x, _batch_sigma(sigma, x), **(cond or {}))


def to_derivative(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """dx/dsigma = (x - D(x, sigma)) / sigma, the probability-flow ODE of Karras et al. 2022, Eq. 3."""
    return (x - denoised) / sigma.to(x.dtype)


def _noise_like(x: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    return randn(x.shape, generator, x.device, x.dtype)


@torch.no_grad()
def sample_euler(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                 callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without the 2nd-order step)."""
    check_sampler_inputs(x, sigmas)
    for i in range(len(sigmas) - 1):
        denoised = _denoise(denoiser, x, sigmas[i], cond)
        d = to_derivative(x, sigmas[i], denoised)
        # x_{i+1} = x_i + (sigma_{i+1} - sigma_i) dx/dsigma
        x = x + (sigmas[i + 1] - sigmas[i]).to(x.dtype) * d
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": denoised})
    return x


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0):
    """Split a step from sigma_from to sigma_to into a deterministic part down to sigma_down and fresh noise
    sigma_up, with sigma_down^2 + sigma_up^2 = sigma_to^2. This is DDIM's eta family (Song et al. 2021, Eq. 16)
    written in sigma space: sigma_up = eta * sigma_to * sqrt(1 - sigma_to^2 / sigma_from^2)."""
    if sigma_to == 0:
        return sigma_to, sigma_to
    # sigma_up = eta sqrt( sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2 ),  at most sigma_to
    sigma_up = torch.clamp(eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2).sqrt(), max=sigma_to)
    sigma_down = (sigma_to**2 - sigma_up**2).sqrt()
    return sigma_down, sigma_up


@torch.no_grad()
def sample_euler_ancestral(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                           callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                           eta: float = 1.0) -> torch.Tensor:
    """DDIM's eta sampler in sigma space (Song et al. 2021, Eq. 12); eta = 1 on all steps is DDPM's Algorithm 2."""
    check_sampler_inputs(x, sigmas)
    for i in range(len(sigmas) - 1):
        denoised = _denoise(denoiser, x, sigmas[i], cond)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + (sigma_down - sigmas[i]).to(x.dtype) * to_derivative(x, sigmas[i], denoised)
        if sigma_up > 0:
            x = x + sigma_up.to(x.dtype) * _noise_like(x, generator)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": denoised})
    return x


@torch.no_grad()
def sample_ddpm_learned_variance(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *,
                                 cond: Optional[dict] = None, callback: Optional[Callable] = None,
                                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Ancestral sampling with the network's own variance (Nichol & Dhariwal 2021, Eq. 15; with their Section 4's
    respacing, the chain through `sigmas`): DiT's sampler. The denoiser must have `with_variance`
    (`denoisers.VPDenoiser(..., learned_variance=True)`, `pretrained.dit_denoiser`)."""
    check_sampler_inputs(x, sigmas)
    if not hasattr(denoiser, "with_variance"):
        raise TypeError(f"ddpm_learned_variance draws with the network's learned variance, which "
                        f"{type(denoiser).__name__} does not give: use VPDenoiser(..., learned_variance=True) or "
                        "another sampler")
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised, variance_output = denoiser.with_variance(x, _batch_sigma(sigma, x), **(cond or {}))
        if variance_output is None:
            raise ValueError("the denoiser's network has no learned variance (learned_variance=False): use another "
                             "sampler")
        # the mean mu~(x_t, x_0) of DDPM's posterior is DDIM's eta = 1 step without its noise
        sigma_down, _ = ancestral_step(sigma, sigma_next)
        x = x + (sigma_down - sigma).to(x.dtype) * to_derivative(x, sigma, denoised)
        if sigma_next > 0:
            # alpha_bar = 1 / (1 + sigma^2);  beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}
            alpha_bar, alpha_bar_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
            beta = 1 - alpha_bar / alpha_bar_next
            # beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
            posterior_variance = (1 - alpha_bar_next) / (1 - alpha_bar) * beta
            log_variance = interpolated_log_variance(variance_output, beta.log().to(x.dtype),
                                                     posterior_variance.log().to(x.dtype))
            # x_{t-1} = mu~ + Sigma^(1/2) z in x_t's coordinates; x = x_t / sqrt(alpha_bar_{t-1}) scales it
            x = x + (log_variance / 2).exp() / alpha_bar_next.sqrt().to(x.dtype) * _noise_like(x, generator)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})
    return x


def _heun_step(denoiser, x, sigma, sigma_next, denoised, cond):
    """One step of Karras et al. Algorithm 1, lines 5-8: Euler, then the trapezoidal correction if sigma_next > 0."""
    d = to_derivative(x, sigma, denoised)
    x_euler = x + (sigma_next - sigma).to(x.dtype) * d
    if sigma_next == 0:
        return x_euler
    d_next = to_derivative(x_euler, sigma_next, _denoise(denoiser, x_euler, sigma_next, cond))
    # x_{i+1} = x_i + (t_{i+1} - t_i) (d_i + d'_i) / 2
    return x + (sigma_next - sigma).to(x.dtype) * (d + d_next) / 2


@torch.no_grad()
def sample_heun(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Heun's 2nd-order method, Algorithm 1 of Karras et al. 2022 (2N - 1 evaluations for N steps to 0)."""
    check_sampler_inputs(x, sigmas)
    for i in range(len(sigmas) - 1):
        denoised = _denoise(denoiser, x, sigmas[i], cond)
        x = _heun_step(denoiser, x, sigmas[i], sigmas[i + 1], denoised, cond)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": denoised})
    return x


@torch.no_grad()
def sample_edm_stochastic(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                          callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None,
                          s_churn: float = 40.0, s_tmin: float = 0.05, s_tmax: float = 50.0,
                          s_noise: float = 1.003) -> torch.Tensor:
    """The stochastic sampler with churn, Algorithm 2 of Karras et al. 2022 (defaults: their ImageNet-64 settings)."""
    check_sampler_inputs(x, sigmas)
    num_steps = len(sigmas) - 1
    for i in range(num_steps):
        sigma = sigmas[i]
        # gamma_i = min(S_churn / N, sqrt(2) - 1) if t_i in [S_tmin, S_tmax], else 0
        gamma = min(s_churn / num_steps, math.sqrt(2) - 1) if s_tmin <= float(sigma) <= s_tmax else 0.0
        # t^_i = t_i + gamma_i t_i ;  x^_i = x_i + sqrt(t^_i^2 - t_i^2) eps,  eps ~ N(0, S_noise^2 I)
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x = x + (sigma_hat**2 - sigma**2).sqrt().to(x.dtype) * s_noise * _noise_like(x, generator)
        denoised = _denoise(denoiser, x, sigma_hat, cond)
        x = _heun_step(denoiser, x, sigma_hat, sigmas[i + 1], denoised, cond)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma_hat, "denoised": denoised})
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, cond: Optional[dict] = None,
                    callback: Optional[Callable] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """DPM-Solver++(2M), Algorithm 2 of Lu et al. 2022 ("DPM-Solver++"), in sigma space (alpha_t = 1)."""
    check_sampler_inputs(x, sigmas)
    previous_denoised, previous_h = None, None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _denoise(denoiser, x, sigma, cond)
        if sigma_next == 0:
            x = denoised  # the last step lands on the data prediction
        else:
            # lambda = -log sigma, h_i = lambda_{i+1} - lambda_i
            h = (sigma.log() - sigma_next.log()).to(x.dtype)
            if previous_denoised is None:
                data_estimate = denoised  # first step: DPM-Solver++(1), which is DDIM
            else:
                # r_i = h_{i-1} / h_i ;  D_i = (1 + 1/(2 r_i)) x0_i - 1/(2 r_i) x0_{i-1}
                r = previous_h / h
                data_estimate = (1 + 1 / (2 * r)) * denoised - 1 / (2 * r) * previous_denoised
            # x_{i+1} = (sigma_{i+1} / sigma_i) x_i - (e^{-h_i} - 1) D_i
            x = (sigma_next / sigma).to(x.dtype) * x - torch.expm1(-h) * data_estimate
            previous_denoised, previous_h = denoised, h
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})
    return x


def integrate_in_time(denoiser: Callable, x: torch.Tensor, sigmas: torch.Tensor, *, time_from_sigma: Callable,
                      alpha: Callable, step: Callable, cond: Optional[dict], callback: Optional[Callable],
                      final_step: Optional[Callable] = None) -> torch.Tensor:
    """The loop of the samplers that step in another paper's clock t and scale alpha(t) (score SDEs, SiT's paths):
    map x = x_t / alpha_t into x_t, apply step(x_t, t, t_next) between the times of consecutive sigmas, and map
    back. A step into sigma = 0 (always the last) returns the denoiser's estimate of x_0 (Tweedie's formula), or
    final_step(x_t, t) where one is given (a path with alpha = 1 at sigma = 0)."""
    check_sampler_inputs(x, sigmas)
    times = time_from_sigma(sigmas[sigmas > 0].to(torch.float64))
    x_t = alpha(times[0]).to(x.dtype) * x
    for i in range(len(sigmas) - 1):
        if sigmas[i + 1] == 0 and final_step is not None:
            x = final_step(x_t, times[i])
        elif sigmas[i + 1] == 0:
            x = _denoise(denoiser, x_t / alpha(times[i]).to(x.dtype), sigmas[i], cond)
        else:
            x_t = step(x_t, times[i], times[i + 1])
            x = x_t / alpha(times[i + 1]).to(x.dtype)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i]})
    return x


SAMPLERS = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "edm_stochastic": sample_edm_stochastic,
    "dpmpp_2m": sample_dpmpp_2m,
}
# samplers that also need the network's learned variance (a denoiser with `with_variance`, as DiT's): not for the
# trainers' models, which have none
VARIANCE_SAMPLERS = {
    "ddpm_learned_variance": sample_ddpm_learned_variance,
}


def check_sampler(name: str) -> str:
    """The name of a sampler that drives any denoiser (the trainers' models: none has a learned variance), or a
    clear error; for a configuration to call before any work starts. (SAMPLERS is complete by then: importing this
    module runs the package's __init__, which adds the score-SDE and flow samplers.)"""
    if name in VARIANCE_SAMPLERS:
        raise ValueError(f"sampler {name!r} draws with a network's learned variance, which this model does not have; "
                         f"choose one of {sorted(SAMPLERS)}")
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return name


def get_sampler(name: str) -> Callable:
    """A sampler by name, with an error that lists the names."""
    if name in VARIANCE_SAMPLERS:
        return VARIANCE_SAMPLERS[name]
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)} (or, for a network with learned "
                         f"variance, {sorted(VARIANCE_SAMPLERS)})")
    return SAMPLERS[name]
