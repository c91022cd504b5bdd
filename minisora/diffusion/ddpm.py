"""DDPM in its own notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"), with the learned
variances of Improved DDPM (Nichol & Dhariwal 2021) that DiT trains.

A network here is `model(x_t, t, **cond) -> prediction`, with integer timesteps t in 0..T-1 (the paper's
t = 1..T, shifted by one) and a `prediction` of "epsilon" (the paper's choice), "x0", or "v"
(Salimans & Ho 2022). `alphas_cumprod` holds alpha_bar_t for every t, in float64. A network with learned
variances outputs twice the channels: the prediction, then v of Eq. 15 (`split_learned_variance`).
"""
import math
from typing import Callable, Optional

import torch

from .schedules import alpha_bar_from_sigma, append_dims, sigma_from_timestep
from ..parallel.batch import BatchShard
from ..randomness import randint, randn

PREDICTIONS = ("epsilon", "x0", "v")


def at_timestep(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t], shaped to broadcast against `like` (B, ...) and cast to its dtype."""
    return append_dims(values.to(like.device)[t].to(like.dtype), like)


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


def noisy_batch(x0: torch.Tensor, alphas_cumprod: torch.Tensor, generator: Optional[torch.Generator] = None):
    """Algorithm 1's draws: t uniform in 0..T-1 and eps ~ N(0, I) per sample, and x_t from q(x_t | x_0); (t, eps, x_t)."""
    t = randint(len(alphas_cumprod), (x0.shape[0],), generator, x0.device)
    noise = randn(x0.shape, generator, x0.device, x0.dtype)
    return t, noise, q_sample(x0, t, alphas_cumprod, noise)


def ddpm_loss(model: Callable, x0: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
              generator: Optional[torch.Generator] = None, shard: Optional[BatchShard] = None,
              **cond) -> torch.Tensor:
    """Algorithm 1 of Ho et al. 2020 (training): L_simple = || target - model(x_t, t) ||^2 at a uniform t (with a
    `shard`, the whole batch's t and noise drawn and this process's rows trained on: `parallel.batch`)."""
    t, noise, x_t = noisy_batch(x0, alphas_cumprod, generator)
    target = training_target(x0, noise, at_timestep(alphas_cumprod, t, x0), prediction)
    if shard is not None:
        x_t, t, target, cond = (shard.take(value, len(x0)) for value in (x_t, t, target, cond))
    return (model(x_t, t, **cond) - target).pow(2).mean()


def split_learned_variance(output: torch.Tensor) -> tuple:
    """(prediction, variance output) from a (B, 2C, ...) output: the first C channels and the last C."""
    if output.shape[1] % 2:
        raise ValueError(f"a learned-variance output has 2C channels, got {output.shape[1]}; build the network with "
                         "learned sigma (DiTConfig(learn_sigma=True))")
    return output.chunk(2, dim=1)


def learned_log_variance(variance_output: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 15: log Sigma = v log beta_t + (1 - v) log beta~_t, with v = (output + 1) / 2 so
    an output in [-1, 1] spans the two bounds. beta~_0 = 0, so at t = 0 it uses beta~_1, as their code does."""
    alphas_cumprod = alphas_cumprod.to(torch.float64)
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    betas = 1 - alphas_cumprod / alphas_cumprod_prev
    posterior_variances = (1 - alphas_cumprod_prev) / (1 - alphas_cumprod) * betas
    posterior_variances[0] = posterior_variances[1]
    return interpolated_log_variance(variance_output, at_timestep(betas.log(), t, variance_output),
                                     at_timestep(posterior_variances.log(), t, variance_output))


def interpolated_log_variance(variance_output: torch.Tensor, log_beta: torch.Tensor,
                              log_posterior_variance: torch.Tensor) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 15 for a step of any chain, its log beta and log beta~ broadcasting against the
    output."""
    v = (variance_output + 1) / 2
    # log Sigma_theta = v log beta_t + (1 - v) log beta~_t
    return v * log_beta + (1 - v) * log_posterior_variance


def normal_kl(mean1: torch.Tensor, log_variance1: torch.Tensor, mean2: torch.Tensor,
              log_variance2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) per element, in nats."""
    # 1/2 [log var2 - log var1 + (var1 + (mean1 - mean2)^2) / var2 - 1]
    return 0.5 * (log_variance2 - log_variance1 + (log_variance1 - log_variance2).exp()
                  + (mean1 - mean2).pow(2) * (-log_variance2).exp() - 1)


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Ho et al. 2020, Eq. 13: log of the probability N(mean, var) gives to x0's bin of width 2/255 in [-1, 1]
    (the end bins reach to -inf and +inf), per element; x0 holds 8-bit values scaled to [-1, 1]."""
    normal = torch.distributions.Normal(mean.to(torch.float64), (0.5 * log_variance.to(torch.float64)).exp())
    x = x0.to(torch.float64)
    upper = torch.where(x > 1 - 1e-3, torch.ones_like(x), normal.cdf(x + 1 / 255))
    lower = torch.where(x < -1 + 1e-3, torch.zeros_like(x), normal.cdf(x - 1 / 255))
    return (upper - lower).clamp_min(1e-12).log().to(x0.dtype)


def vlb_terms(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor,
              alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """The terms of the variational bound for p(x_{t-1} | x_t) = N(mean, exp(log_variance)), in bits per dimension
    (Ho et al. 2020, Eq. 5): KL(q(x_{t-1} | x_t, x_0) || p) for t >= 1, and -log p(x_0 | x_1) for t = 0; (B,)."""
    first = t == 0
    posterior_mean, posterior_variance = q_posterior(x0, x_t, t.clamp_min(1), alphas_cumprod)
    kl = normal_kl(posterior_mean, posterior_variance.log().expand_as(x0), mean, log_variance)
    decoder = -discretized_gaussian_log_likelihood(x0, mean, log_variance)
    per_element = torch.where(append_dims(first, x0), decoder, kl)
    return per_element.flatten(1).mean(1) / math.log(2)


def hybrid_loss(model: Callable, x0: torch.Tensor, alphas_cumprod: torch.Tensor, vlb_weight: float = 0.001,
                generator: Optional[torch.Generator] = None, **cond) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Section 3.1: L_hybrid = L_simple + lambda L_vlb for a model that outputs epsilon and
    v (2C channels). L_vlb sees the predicted mean through a stop-gradient, so it trains only the variance."""
    t, noise, x_t = noisy_batch(x0, alphas_cumprod, generator)
    epsilon, variance_output = split_learned_variance(model(x_t, t, **cond))
    simple = (epsilon - noise).pow(2).mean()
    x0_hat = predict_x0(x_t, epsilon.detach(), at_timestep(alphas_cumprod, t, x_t), "epsilon")
    mean, _ = q_posterior(x0_hat, x_t, t.clamp_min(1), alphas_cumprod)
    # at t = 0 the decoder's mean is x0_hat itself
    mean = torch.where(append_dims(t == 0, x0), x0_hat, mean)
    log_variance = learned_log_variance(variance_output, t, alphas_cumprod)
    # Nichol & Dhariwal scale L_vlb by T, so that it is the sum of the T terms rather than their mean
    return simple + vlb_weight * len(alphas_cumprod) * vlb_terms(x0, x_t, t, mean, log_variance, alphas_cumprod).mean()


@torch.no_grad()
def ddpm_sample(model: Callable, x_T: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
                variance: str = "posterior", generator: Optional[torch.Generator] = None,
                callback: Optional[Callable] = None, **cond) -> torch.Tensor:
    """Algorithm 2 of Ho et al. 2020 (ancestral sampling), from x_T ~ N(0, I) down to x_0.

    variance: "posterior" uses sigma_t^2 = beta~_t, "beta" uses sigma_t^2 = beta_t (both in Section 3.2), "learned"
    the model's own (Nichol & Dhariwal 2021, Eq. 15), for a model whose output has 2C channels.
    """
    if variance not in ("posterior", "beta", "learned"):
        raise ValueError(f"unknown variance {variance!r}; choose 'posterior', 'beta' or 'learned'")
    x = x_T
    for step in reversed(range(len(alphas_cumprod))):
        t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        output = model(x, t, **cond)
        if variance == "learned":
            output, variance_output = split_learned_variance(output)
        x0_hat = predict_x0(x, output, at_timestep(alphas_cumprod, t, x), prediction)
        if step == 0:
            x = x0_hat  # the last step returns the mean, with no noise (z = 0 at t = 1)
        else:
            # x_{t-1} = mu~_t(x_t, x0_hat) + sigma_t z,  which is Algorithm 2's line 4 written with x0_hat
            mean, posterior_variance = q_posterior(x0_hat, x, t, alphas_cumprod)
            if variance == "beta":
                alpha_bar, alpha_bar_prev = at_timestep(alphas_cumprod, t, x), at_timestep(alphas_cumprod, t - 1, x)
                posterior_variance = 1 - alpha_bar / alpha_bar_prev
            elif variance == "learned":
                posterior_variance = learned_log_variance(variance_output, t, alphas_cumprod).exp()
            z = randn(x.shape, generator, x.device, x.dtype)
            x = mean + posterior_variance.sqrt() * z
        if callback is not None:
            callback({"t": step, "x": x, "denoised": x0_hat})
    return x


def network_from_denoiser(denoiser: Callable, alphas_cumprod: torch.Tensor, prediction: str = "epsilon") -> Callable:
    """Turn a denoiser D(x, sigma) into a DDPM network model(x_t, t), so DDPM's own code can run any denoiser.
    Fractional t is allowed: its sigma interpolates the schedule's log sigma (`schedules.sigma_from_timestep`)."""

    def model(x_t: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        sigma = sigma_from_timestep(alphas_cumprod.to(x_t.device), t).to(x_t.dtype)  # (B,)
        alpha_bar = append_dims(alpha_bar_from_sigma(sigma), x_t)
        # x = x_t / sqrt(alpha_bar): the same point in EDM's coordinates, where D works
        x0 = denoiser(x_t / alpha_bar.sqrt(), sigma, **cond)
        # eps = (x_t - sqrt(alpha_bar) x_0) / sqrt(1 - alpha_bar)
        eps = (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
        return training_target(x0, eps, alpha_bar, prediction)

    return model
