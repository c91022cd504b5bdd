"""DDPM in its own notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models").

A network here is `model(x_t, t, **cond) -> prediction`, with integer timesteps t in 0..T-1 (the paper's
t = 1..T, shifted by one) and a `prediction` of "epsilon" (the paper's choice), "x0", or "v"
(Salimans & Ho 2022). `alphas_cumprod` holds alpha_bar_t for every t, in float64.
"""
from typing import Callable, Optional

import torch

from .schedules import alpha_bar_from_sigma, sigma_from_timestep

PREDICTIONS = ("epsilon", "x0", "v")


def at_timestep(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t], shaped to broadcast against `like` (B, ...) and cast to its dtype."""
    out = values.to(like.device)[t].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The forward process in closed form, q(x_t | x_0) of Ho et al. 2020, Eq. 4."""
    alpha_bar = at_timestep(alphas_cumprod, t, x0)
    # x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor):
    """Mean and variance of the posterior q(x_{t-1} | x_t, x_0), Ho et al. 2020, Eqs. 6-7 (needs t >= 1)."""
    alpha_bar = at_timestep(alphas_cumprod, t, x0)
    alpha_bar_prev = at_timestep(alphas_cumprod, t - 1, x0)
    alpha = alpha_bar / alpha_bar_prev
    beta = 1 - alpha
    # mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    mean = (alpha_bar_prev.sqrt() * beta * x0 + alpha.sqrt() * (1 - alpha_bar_prev) * x_t) / (1 - alpha_bar)
    # beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    return mean, variance


def predict_x0(x_t: torch.Tensor, output: torch.Tensor, alpha_bar: torch.Tensor, prediction: str = "epsilon") -> torch.Tensor:
    """x_0 from a network's output of any prediction type (Ho et al. Eq. 15; Salimans & Ho 2022, Section 4).
    alpha_bar broadcasts against x_t: (B, 1, ...)."""
    if prediction == "epsilon":
        # x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
        return (x_t - (1 - alpha_bar).sqrt() * output) / alpha_bar.sqrt()
    if prediction == "x0":
        return output
    if prediction == "v":
        # x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v
        return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * output
    raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")


def training_target(x0: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, prediction: str = "epsilon") -> torch.Tensor:
    """What the network regresses onto: eps, x_0, or v. alpha_bar broadcasts against x0: (B, 1, ...)."""
    if prediction == "epsilon":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        # v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0   (Salimans & Ho 2022, Section 4)
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0
    raise ValueError(f"unknown prediction {prediction!r}; choose one of {PREDICTIONS}")


def ddpm_loss(model: Callable, x0: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
              generator: Optional[torch.Generator] = None, **cond) -> torch.Tensor:
    """Algorithm 1 of Ho et al. 2020 (training): L_simple = || target - model(x_t, t) ||^2 at a uniform t."""
    num_train_steps = len(alphas_cumprod)
    t = torch.randint(0, num_train_steps, (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    x_t = q_sample(x0, t, alphas_cumprod, noise)
    target = training_target(x0, noise, at_timestep(alphas_cumprod, t, x0), prediction)
    return (model(x_t, t, **cond) - target).pow(2).mean()


@torch.no_grad()
def ddpm_sample(model: Callable, x_T: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
                variance: str = "posterior", generator: Optional[torch.Generator] = None,
                callback: Optional[Callable] = None, **cond) -> torch.Tensor:
    """Algorithm 2 of Ho et al. 2020 (ancestral sampling), from x_T ~ N(0, I) down to x_0.

    variance: "posterior" uses sigma_t^2 = beta~_t, "beta" uses sigma_t^2 = beta_t (both in Section 3.2).
    """
    if variance not in ("posterior", "beta"):
        raise ValueError(f"unknown variance {variance!r}; choose 'posterior' or 'beta'")
    x = x_T
    for step in reversed(range(len(alphas_cumprod))):
        t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        x0_hat = predict_x0(x, model(x, t, **cond), at_timestep(alphas_cumprod, t, x), prediction)
        if step == 0:
            x = x0_hat  # the last step returns the mean, with no noise (z = 0 at t = 1)
        else:
            # x_{t-1} = mu~_t(x_t, x0_hat) + sigma_t z,  which is Algorithm 2's line 4 written with x0_hat
            mean, posterior_variance = q_posterior(x0_hat, x, t, alphas_cumprod)
            if variance == "beta":
                alpha_bar, alpha_bar_prev = at_timestep(alphas_cumprod, t, x), at_timestep(alphas_cumprod, t - 1, x)
                posterior_variance = 1 - alpha_bar / alpha_bar_prev
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = mean + posterior_variance.sqrt() * z
        if callback is not None:
            callback({"t": step, "x": x, "denoised": x0_hat})
    return x


def network_from_denoiser(denoiser: Callable, alphas_cumprod: torch.Tensor, prediction: str = "epsilon") -> Callable:
    """Turn a denoiser D(x, sigma) into a DDPM network model(x_t, t), so DDPM's own code can run any denoiser.
    Fractional t is allowed: its sigma interpolates the schedule's log sigma (`schedules.sigma_from_timestep`)."""

    def model(x_t: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        sigma = sigma_from_timestep(alphas_cumprod.to(x_t.device), t).to(x_t.dtype)  # (B,)
        alpha_bar = alpha_bar_from_sigma(sigma).reshape(-1, *([1] * (x_t.dim() - 1)))
        # x = x_t / sqrt(alpha_bar): the same point in EDM's coordinates, where D works
        x0 = denoiser(x_t / alpha_bar.sqrt(), sigma, **cond)
        # eps = (x_t - sqrt(alpha_bar) x_0) / sqrt(1 - alpha_bar)
        eps = (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
        return training_target(x0, eps, alpha_bar, prediction)

    return model
