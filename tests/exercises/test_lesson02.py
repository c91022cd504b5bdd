"""Lesson 02 checks (DDIM), run against minisora by default, against your stubs with --impl=exercises and against the
worked solutions with --impl=solutions.

The step is held to closed forms in float64 (the noise direction at eta = 0, DDPM's posterior at eta = 1) and to
Lemma 1 of Song et al. 2021 by Monte Carlo (a step with the true x_0 keeps q(x_t | x_0)). The sampler is held to
the equivalences the papers state (deterministic DDIM is Euler in sigma space; eta = 1 on every timestep is DDPM's
Algorithm 2, draw for draw), to Eq. 12 replayed in float64 on a fixed generator, and to the exact mixture's
statistics, with the limits tests/exercises/test_lesson04.py states for 10000 points."""
import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion.ddpm import ddpm_sample, network_from_denoiser, predict_x0
from minisora.diffusion.samplers import sample_euler
from minisora.diffusion.schedules import alphas_cumprod, linear_betas, respace_timesteps, sigmas_from_timesteps

pytestmark = pytest.mark.lesson02

SCHEDULE = alphas_cumprod(linear_betas(1000))  # float64 (1000,)
# exact samples of the skewed mixture (n = 10000, 40 draws) give at most: mean 0.032, covariance 0.042, sliced W 0.032
LIMITS = {"mean": 0.045, "covariance": 0.06, "sliced_wasserstein": 0.045}


def _noise(n, seed, dim=2):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_sigma_from_alpha_bar_is_the_noise_level_of_the_rescaled_sample(impl):
    alpha_bar = torch.tensor([0.999, 0.5, 1e-4], dtype=torch.float64)
    x0, noise = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    # x_t / sqrt(alpha_bar) = x_0 + sigma * noise
    torch.testing.assert_close(x_t / alpha_bar.sqrt(), x0 + impl.sigma_from_alpha_bar(alpha_bar) * noise)
    # no noise at alpha_bar = 1, and any shape comes back the same shape
    grid = torch.tensor([[1.0, 0.2], [0.9, 0.01]], dtype=torch.float64)
    sigma = impl.sigma_from_alpha_bar(grid)
    assert sigma.shape == grid.shape and sigma[0, 0] == 0


def test_ddim_step_at_eta_zero_keeps_the_noise_direction(impl):
    """With the true x_0, DDIM (eta = 0) moves x_t to the point of the same noise at the earlier step."""
    x0, noise = _noise(6, 0), _noise(6, 1)
    alpha_bar_t, alpha_bar_prev = torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    x_t = alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise
    expected = alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev).sqrt() * noise
    torch.testing.assert_close(impl.ddim_step(x_t, x0, alpha_bar_t, alpha_bar_prev, 0.0, None), expected)


def test_ddim_step_at_eta_one_is_the_ddpm_posterior(impl):
    """With eta = 1 the step samples q(x_{t-1} | x_t, x_0): Bayes' mean plus sqrt(posterior variance) * z."""
    x0, x_t, z = (torch.randn(5, 2, dtype=torch.float64) for _ in range(3))
    alpha_bar_t, alpha_bar_prev = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.35, dtype=torch.float64)
    alpha = alpha_bar_t / alpha_bar_prev
    precision = 1 / (1 - alpha_bar_prev) + alpha / (1 - alpha)
    mean = (alpha_bar_prev.sqrt() * x0 / (1 - alpha_bar_prev) + alpha.sqrt() * x_t / (1 - alpha)) / precision
    torch.testing.assert_close(impl.ddim_step(x_t, x0, alpha_bar_t, alpha_bar_prev, 1.0, z), mean + z / precision.sqrt())


def test_ddim_step_with_the_true_x0_keeps_the_marginal(impl):
    """Lemma 1 of Song et al. 2021 by Monte Carlo: x_t ~ q(x_t | x_0), then one step of eta = 0.5 with the true x_0
    across a long skip (t = 800 to 150) gives x_prev ~ q(x_prev | x_0) = N(sqrt(alpha_bar') x_0, (1 - alpha_bar') I),
    within 5 standard errors; and its fresh noise has half the standard deviation of DDPM's posterior (Eq. 16)."""
    n = 200_000
    x0 = torch.tensor([1.5, -0.5], dtype=torch.float64).expand(n, 2)
    alpha_bar_t, alpha_bar_prev = SCHEDULE[800], SCHEDULE[150]
    x_t = alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * _noise(n, 2)
    z = _noise(n, 3)
    x_prev = impl.ddim_step(x_t, x0, alpha_bar_t, alpha_bar_prev, 0.5, z)
    variance = 1 - alpha_bar_prev
    mean_error = (x_prev.mean(0) - alpha_bar_prev.sqrt() * x0[0]).abs().max()
    assert mean_error < 5 * (variance / n).sqrt(), f"mean off by {mean_error:.4g}"
    variance_error = (x_prev.var(0) - variance).abs().max()
    assert variance_error < 5 * variance * (2 / n) ** 0.5, f"variance off by {variance_error:.4g}"
    # the same x_t with no fresh noise: the difference is sigma_t(0.5) z exactly
    fresh = x_prev - impl.ddim_step(x_t, x0, alpha_bar_t, alpha_bar_prev, 0.5, torch.zeros_like(z))
    posterior_variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
    torch.testing.assert_close(fresh, 0.5 * posterior_variance.sqrt() * z)


@pytest.mark.parametrize("num_steps", [10, 50])
def test_ddim_sample_at_eta_zero_is_euler_in_sigma_space(impl, mixture, num_steps):
    """Song et al. 2021, Section 4.3: DDIM with eta = 0 is Euler's method on the probability-flow ODE in
    x = x_t / sqrt(alpha_bar), with sigma as time (float64, to rounding). A network that predicts x_0 instead of
    eps gives the same samples."""
    x_T = _noise(64, 0)
    timesteps = respace_timesteps(1000, num_steps)
    samples = impl.ddim_sample(network_from_denoiser(mixture.denoiser, SCHEDULE), x_T, SCHEDULE, timesteps)
    sigmas = sigmas_from_timesteps(SCHEDULE, timesteps)
    euler = sample_euler(mixture.denoiser, x_T * (1 + sigmas[0] ** 2).sqrt(), sigmas)
    torch.testing.assert_close(samples, euler, rtol=0, atol=1e-10)
    x0_network = network_from_denoiser(mixture.denoiser, SCHEDULE, prediction="x0")
    torch.testing.assert_close(impl.ddim_sample(x0_network, x_T, SCHEDULE, timesteps, prediction="x0"), euler,
                               rtol=0, atol=1e-10)


def test_ddim_sample_at_eta_one_on_every_timestep_is_ddpm(impl, mixture):
    """Eq. 16 with eta = 1 is DDPM's posterior variance, so on all 1000 timesteps DDIM is Ho et al.'s Algorithm 2;
    with the same generator (one draw a step, none on the last) the samples agree to float64 rounding."""
    model = network_from_denoiser(mixture.denoiser, SCHEDULE)
    x_T = _noise(32, 4)
    ddpm = ddpm_sample(model, x_T, SCHEDULE, generator=torch.Generator().manual_seed(5))
    ddim = impl.ddim_sample(model, x_T, SCHEDULE, torch.arange(999, -1, -1), eta=1.0,
                            generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ddim, ddpm, rtol=0, atol=1e-8)


def _replay_eq_12(model, x, timesteps, eta, generator):
    """Song et al. 2021, Eqs. 9, 12 and 16 written out in float64 for the timesteps tau_S > ... > tau_1."""
    levels = [SCHEDULE[step] for step in timesteps] + [torch.tensor(1.0, dtype=torch.float64)]
    for i, step in enumerate(timesteps):
        a, a_next = levels[i], levels[i + 1]
        eps = model(x, torch.full((len(x),), step, dtype=torch.long))
        # Eq. 9: f_theta(x_t) = (x_t - sqrt(1 - alpha_t) eps_theta) / sqrt(alpha_t)
        predicted = (x - (1 - a).sqrt() * eps) / a.sqrt()
        if i == len(timesteps) - 1:
            return predicted
        # Eq. 16: sigma(eta)^2 = eta^2 (1 - alpha_prev) / (1 - alpha_t) (1 - alpha_t / alpha_prev)
        fresh_variance = eta**2 * (1 - a_next) / (1 - a) * (1 - a / a_next)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        # Eq. 12: x_prev = sqrt(alpha_prev) f_theta + sqrt(1 - alpha_prev - sigma^2) eps_theta + sigma z
        x = a_next.sqrt() * predicted + (1 - a_next - fresh_variance).sqrt() * eps + fresh_variance.sqrt() * z


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_sample_replays_eq_12_on_an_uneven_subsequence(impl, mixture, eta):
    """An uneven subsequence that stops short of t = 0, replayed from the equations on the same generator (float64).
    The last step returns the prediction of x_0; a single timestep is just that prediction."""
    model = network_from_denoiser(mixture.denoiser, SCHEDULE)
    x_T = _noise(16, 6)
    timesteps = torch.tensor([999, 871, 600, 420, 137, 31, 12])
    yours = impl.ddim_sample(model, x_T, SCHEDULE, timesteps, eta=eta, generator=torch.Generator().manual_seed(7))
    replayed = _replay_eq_12(model, x_T, timesteps.tolist(), eta, torch.Generator().manual_seed(7))
    torch.testing.assert_close(yours, replayed, rtol=0, atol=1e-10)
    one_step = impl.ddim_sample(model, x_T, SCHEDULE, torch.tensor([700]), eta=eta,
                                generator=torch.Generator().manual_seed(7))
    t = torch.full((len(x_T),), 700, dtype=torch.long)
    expected = predict_x0(x_T, model(x_T, t), SCHEDULE[700].expand(len(x_T), 1))
    torch.testing.assert_close(one_step, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_sample_draws_the_exact_mixture(impl, mixture, eta):
    """With the exact denoiser, 200 steps of either end of the family reproduce the mixture within the limits that
    exact samples of 10000 points allow (above). (At 100 steps eta = 1 is already out: its samples come out too
    narrow, which the lesson's last section derives.)"""
    model = network_from_denoiser(mixture.denoiser, SCHEDULE)
    samples = impl.ddim_sample(model, _noise(10000, 8), SCHEDULE, respace_timesteps(1000, 200), eta=eta,
                               generator=torch.Generator().manual_seed(9))
    errors = distribution_errors(samples, mixture)
    for key, limit in LIMITS.items():
        assert errors[key] < limit, f"{key} error {errors[key]:.4f} >= {limit} ({errors})"
