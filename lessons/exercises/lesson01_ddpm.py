"""Lesson 01 exercises: DDPM (Ho, Jain & Abbeel 2020). Check with `pytest -m lesson01 --impl=exercises`.

Stuck? lessons/hints/lesson01.md has graded hints; lessons/solutions/lesson01_ddpm.py a worked solution.

Notation: timesteps are 0..T-1 here, the paper's t = 1..T shifted by one; alphas_cumprod (T,) holds alpha_bar for
every timestep, in float64; a network is model(x_t, t) with t a (B,) long tensor of timesteps."""
from typing import Callable, Optional

import torch

REFERENCE_MODULES = ("minisora.diffusion.schedules", "minisora.diffusion.ddpm")


def linear_betas(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Lesson 01, exercise 1: the noise schedule of Ho et al. 2020 (Section 4).

    The variances beta_1 .. beta_T of the T = num_steps forward steps, rising linearly from beta_start (the first)
    to beta_end (the last). Return a float64 tensor (num_steps,).
    """
    raise NotImplementedError("Lesson 01: the linear schedule of Ho et al. 2020, Section 4")


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """Lesson 01, exercise 2: alpha_bar for every timestep (the notation above Eq. 4 of Ho et al. 2020).

    betas (T,), any float dtype, are the variances of the forward steps; step t keeps the fraction alpha_t =
    1 - beta_t of the variance of the signal it is given. Entry t of the result is the fraction of x_0's variance
    that survives the steps up to and including t (lesson §2 derives it). Return float64 (T,).
    """
    raise NotImplementedError("Lesson 01: alpha_bar, the notation above Eq. 4 of Ho et al. 2020")


def q_sample(x0: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lesson 01, exercise 3: a draw of x_t from the forward process in closed form, q(x_t | x_0) of Ho et al. 2020,
    Eq. 4 (lesson §2).

    x0 (B, ...) is clean data; t (B,) a long tensor, one timestep per sample, indexing alphas_cumprod (T,);
    noise, shaped like x0, is the standard normal draw to use. Return x_t shaped like x0, in x0's dtype.
    """
    raise NotImplementedError("Lesson 01: the forward process q(x_t | x_0), Eq. 4 of Ho et al. 2020")


def q_posterior(x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor):
    """Lesson 01, exercise 4: the forward process posterior q(x_{t-1} | x_t, x_0), Ho et al. 2020, Eqs. 6-7
    (lesson §4 derives it by completing the square).

    x0 and x_t (B, ...); t (B,) long, every entry >= 1 (timestep t - 1 is the one before). The posterior is a
    Gaussian with the same variance in every coordinate. Return (mean, variance): the mean shaped like x0, the
    variance one number per sample shaped to broadcast against x0, (B, 1, ...).
    """
    raise NotImplementedError("Lesson 01: the posterior q(x_{t-1} | x_t, x_0), Eqs. 6-7 of Ho et al. 2020")


def predict_x0(x_t: torch.Tensor, output: torch.Tensor, alpha_bar: torch.Tensor, prediction: str = "epsilon") -> torch.Tensor:
    """Lesson 01, exercise 5: the network's estimate of x_0, from x_t and the network's output, for each thing a
    network may be trained to predict (Ho et al. 2020, Eq. 15; Salimans & Ho 2022, Section 4).

    prediction "epsilon": output estimates the noise eps of Eq. 4; "x0": output estimates x_0; "v": output
    estimates v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0. alpha_bar (B, 1, ...) broadcasts against x_t
    (B, ...). Solve Eq. 4 (and the definition of v) for x_0. Raise ValueError for another prediction.
    """
    raise NotImplementedError("Lesson 01: x_0 from an eps, x0 or v prediction, Eq. 15 of Ho et al. 2020")


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
    raise NotImplementedError("Lesson 01: Algorithm 1 of Ho et al. 2020, the loss L_simple of Eq. 14")


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
    raise NotImplementedError("Lesson 01: Algorithm 2 of Ho et al. 2020, ancestral sampling")
