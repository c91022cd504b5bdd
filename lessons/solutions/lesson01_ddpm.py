"""Lesson 01 worked solutions: DDPM (Ho, Jain & Abbeel 2020). Try the exercises in lessons/exercises/lesson01_ddpm.py
first (hints: lessons/hints/lesson01.md); these pass the same checks: `pytest -m lesson01 --impl=solutions`.

Notation: timesteps are 0..T-1 here, the paper's t = 1..T shifted by one; alphas_cumprod (T,) holds alpha_bar for
every timestep, in float64; a network is model(x_t, t) with t a (B,) long tensor of timesteps.
Each equation sits on the line above the line that computes it."""
import math
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.ddpm")


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One number per sample, values (B,), reshaped to (B, 1, ..., 1) so that it broadcasts against like (B, ...),
    moved to like's device and dtype."""
    shape = [like.shape[0]] + [1] * (like.dim() - 1)
    return values.to(device=like.device, dtype=like.dtype).view(shape)


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Lesson 01, exercise 1: the noise schedule of Ho et al. 2020 (Section 4).

    The variances beta_1 .. beta_T of the T = num_steps forward steps, rising linearly from beta_start (the first)
    to beta_end (the last). Return a float64 tensor (num_steps,).
    """
    # beta_1 = beta_start, beta_T = beta_end, evenly spaced in between (T values, both ends included)
    return torch.linspace(beta_start, beta_end, steps=num_steps, dtype=torch.float64)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """Lesson 01, exercise 2: alpha_bar for every timestep (the notation above Eq. 4 of Ho et al. 2020).

    betas (T,), any float dtype, are the variances of the forward steps; step t keeps the fraction alpha_t =
    1 - beta_t of the variance of the signal it is given. Entry t of the result is the fraction of x_0's variance
    that survives the steps up to and including t (lesson §2 derives it). Return float64 (T,).
    """
    # alpha_t = 1 - beta_t: the fraction of variance that step t keeps
    alphas = 1.0 - betas.double()
    # alpha_bar_t = alpha_1 alpha_2 ... alpha_t: a running product over the steps so far
    return torch.cumprod(alphas, dim=0)


def q_sample(x0: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lesson 01, exercise 3: a draw of x_t from the forward process in closed form, q(x_t | x_0) of Ho et al. 2020,
    Eq. 4 (lesson §2).

    x0 (B, ...) is clean data; t (B,) a long tensor, one timestep per sample, indexing alphas_cumprod (T,);
    noise, shaped like x0, is the standard normal draw to use. Return x_t shaped like x0, in x0's dtype.
    """
    # alpha_bar_t for each sample's own timestep, shaped (B, 1, ...) to scale that sample
    signal_variance = _per_sample(alphas_cumprod.to(t.device)[t], x0)
    signal_scale = torch.sqrt(signal_variance)
    noise_scale = torch.sqrt(1.0 - signal_variance)
    # Eq. 4: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
    return signal_scale * x0 + noise_scale * noise


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor):
    """Lesson 01, exercise 4: the forward process posterior q(x_{t-1} | x_t, x_0), Ho et al. 2020, Eqs. 6-7
    (lesson §4 derives it by completing the square).

    x0 and x_t (B, ...); t (B,) long, every entry >= 1 (timestep t - 1 is the one before). The posterior is a
    Gaussian with the same variance in every coordinate. Return (mean, variance): the mean shaped like x0, the
    variance one number per sample shaped to broadcast against x0, (B, 1, ...).
    """
    schedule = alphas_cumprod.to(t.device)
    abar_now = _per_sample(schedule[t], x0)  # alpha_bar_t
    abar_before = _per_sample(schedule[t - 1], x0)  # alpha_bar_{t-1}
    # alpha_t = alpha_bar_t / alpha_bar_{t-1} and beta_t = 1 - alpha_t: the single step t-1 -> t
    alpha_step = abar_now / abar_before
    beta_step = 1.0 - alpha_step

    # Eq. 7: the weights of x_0 and x_t in the posterior mean
    weight_of_x0 = torch.sqrt(abar_before) * beta_step / (1.0 - abar_now)
    weight_of_xt = torch.sqrt(alpha_step) * (1.0 - abar_before) / (1.0 - abar_now)
    # Eq. 7: mu~_t(x_t, x_0) = weight_of_x0 x_0 + weight_of_xt x_t
    posterior_mean = weight_of_x0 * x0 + weight_of_xt * x_t
    # Eq. 7: beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
    posterior_variance = beta_step * (1.0 - abar_before) / (1.0 - abar_now)
    return posterior_mean, posterior_variance


def predict_x0(x_t: torch.Tensor, output: torch.Tensor, alpha_bar: torch.Tensor, prediction: str = "epsilon") -> torch.Tensor:
    """Lesson 01, exercise 5: the network's estimate of x_0, from x_t and the network's output, for each thing a
    network may be trained to predict (Ho et al. 2020, Eq. 15; Salimans & Ho 2022, Section 4).

    prediction "epsilon": output estimates the noise eps of Eq. 4; "x0": output estimates x_0; "v": output
    estimates v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0. alpha_bar (B, 1, ...) broadcasts against x_t
    (B, ...). Solve Eq. 4 (and the definition of v) for x_0. Raise ValueError for another prediction.
    """
    signal_scale = torch.sqrt(alpha_bar)  # sqrt(alpha_bar_t)
    noise_scale = torch.sqrt(1.0 - alpha_bar)  # sqrt(1 - alpha_bar_t)
    if prediction == "x0":
        # the network gives x_0 directly
        return output
    if prediction == "epsilon":
        # Eq. 4 solved for x_0 (Eq. 15): x_0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)
        return (x_t - noise_scale * output) / signal_scale
    if prediction == "v":
        # x_t = s x_0 + n eps and v = s eps - n x_0, with s^2 + n^2 = 1, so s x_t - n v = (s^2 + n^2) x_0 = x_0
        return signal_scale * x_t - noise_scale * output
    raise ValueError(f"prediction must be 'epsilon', 'x0' or 'v', got {prediction!r}")


def ddpm_loss(model: Callable, x0: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 01, exercise 6: the training loss of Algorithm 1 of Ho et al. 2020, L_simple (Eq. 14), on one batch
    (lesson §6-§7).

    x0 (B, ...) is a batch of data, any float dtype; model(x_t, t) takes x_t shaped like x0 (in x0's dtype) and t,
    a (B,) long tensor of timesteps in 0..T-1, and returns its `prediction` shaped like x_t. For every sample, draw
    a timestep uniformly and a standard normal noise, noise the sample with the forward process (exercise 3), and
    regress the network's output onto what it should predict: the noise ("epsilon"), x_0 ("x0"), or v ("v", see
    exercise 5). Return the mean squared error over every element of the batch, a scalar tensor that
    backpropagates into the model's parameters.

    Random numbers (so that a check can replay yours): first the timesteps,
    torch.randint(T, (B,), generator=generator), then the noise, torch.randn(x0.shape, generator=generator,
    dtype=x0.dtype).
    """
    batch_size = x0.shape[0]
    num_timesteps = len(alphas_cumprod)
    # Algorithm 1, line 3: t ~ Uniform({1, ..., T}), here 0..T-1, one per sample (drawn first)
    t = torch.randint(num_timesteps, (batch_size,), generator=generator).to(x0.device)
    # Algorithm 1, line 4: eps ~ N(0, I), shaped like the data (drawn second)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    # Eq. 4: the noisy input x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (exercise 3)
    x_t = q_sample(x0, t, alphas_cumprod, noise)

    # what the network should output for this x_t
    if prediction == "epsilon":
        target = noise
    elif prediction == "x0":
        target = x0
    elif prediction == "v":
        alpha_bar = _per_sample(alphas_cumprod.to(t.device)[t], x0)
        # v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0   (Salimans & Ho 2022, Section 4)
        target = torch.sqrt(alpha_bar) * noise - torch.sqrt(1.0 - alpha_bar) * x0
    else:
        raise ValueError(f"prediction must be 'epsilon', 'x0' or 'v', got {prediction!r}")

    # Algorithm 1, line 5 / Eq. 14: || target - network(x_t, t) ||^2, averaged over every element
    error = model(x_t, t) - target
    return (error ** 2).mean()


def ddpm_sample(model: Callable, x_T: torch.Tensor, alphas_cumprod: torch.Tensor, prediction: str = "epsilon",
                variance: str = "posterior", generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Lesson 01, exercise 7: ancestral sampling, Algorithm 2 of Ho et al. 2020 (lesson §8).

    x_T (B, ...) is standard normal noise at the last timestep, T - 1 = len(alphas_cumprod) - 1. Run the reverse
    chain p_theta(x_{t-1} | x_t) through every timestep down to 0 and return the sample x_0, shaped like x_T.
    model(x_t, t) returns its `prediction` ("epsilon", "x0" or "v"; exercise 5 turns any into x_0) for x_t and t,
    a (B,) long tensor holding the current timestep. Each step is a Gaussian whose mean is the reverse process mean
    of Eq. 11 (lesson §5: the posterior mean of §4 with x_0 replaced by the network's estimate) and whose variance
    sigma_t^2 is the posterior variance of Eq. 7 ("posterior") or the forward step's beta_t ("beta"), the two
    choices of Section 3.2. "learned" (a network that also outputs its variance) is lesson 08's: you may raise for
    it. The last step, from timestep 0 (the paper's t = 1), adds no noise.

    Random numbers (so that a check can replay yours): one torch.randn(x_T.shape, generator=generator,
    dtype=x_T.dtype) per step, in order, on every step but the last. Sampling needs no gradients.
    """
    if variance not in ("posterior", "beta"):
        raise ValueError(f"this sampler knows variance 'posterior' and 'beta' (lesson 08 adds 'learned'), "
                         f"got {variance!r}")
    num_timesteps = len(alphas_cumprod)
    batch_size = x_T.shape[0]
    x = x_T
    with torch.no_grad():
        # Algorithm 2, line 2: for t = T, ..., 1 (here T - 1, ..., 0)
        for step in range(num_timesteps - 1, -1, -1):
            # the schedule as plain Python floats (double precision): beta_t ~ 1e-4 is a small difference of two
            # numbers near 1, which float32 would round badly
            abar_now = float(alphas_cumprod[step])
            abar_before = float(alphas_cumprod[step - 1]) if step > 0 else 1.0  # alpha_bar_0 := 1
            # alpha_t = alpha_bar_t / alpha_bar_{t-1}, beta_t = 1 - alpha_t
            alpha_step = abar_now / abar_before
            beta_step = 1.0 - alpha_step

            # the network's noise estimate eps_theta(x_t, t), whatever it was trained to predict
            t = torch.full((batch_size,), step, dtype=torch.long, device=x.device)
            output = model(x, t)
            if prediction == "epsilon":
                eps_hat = output
            else:
                x0_hat = predict_x0(x, output, torch.tensor(abar_now, dtype=x.dtype, device=x.device), prediction)
                # Eq. 4 solved for eps, with x_0 replaced by its estimate
                eps_hat = (x - math.sqrt(abar_now) * x0_hat) / math.sqrt(1.0 - abar_now)

            # Algorithm 2, line 4 (Eq. 11): mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_t)
            mean = (x - beta_step / math.sqrt(1.0 - abar_now) * eps_hat) / math.sqrt(alpha_step)
            if step == 0:
                # Algorithm 2, line 3: z = 0 on the last step, so the sample is the mean
                return mean

            # Section 3.2: sigma_t^2 = beta~_t (the posterior's variance, Eq. 7) or sigma_t^2 = beta_t
            if variance == "posterior":
                sigma_squared = beta_step * (1.0 - abar_before) / (1.0 - abar_now)
            else:
                sigma_squared = beta_step
            # Algorithm 2, line 3: z ~ N(0, I), one draw a step
            z = torch.randn(x_T.shape, generator=generator, dtype=x_T.dtype).to(x.device)
            # Algorithm 2, line 4: x_{t-1} = mu_theta(x_t, t) + sigma_t z
            x = mean + math.sqrt(sigma_squared) * z
    return x
