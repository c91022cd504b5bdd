"""Lesson 02 checks (DDIM), run against minisora by default and against your stubs with --impl=exercises."""
import pytest
import torch

pytestmark = pytest.mark.lesson02


def test_sigma_is_the_noise_level_of_the_rescaled_sample(impl):
    alpha_bar = torch.tensor([0.999, 0.5, 1e-4], dtype=torch.float64)
    x0, noise = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    # x_t / sqrt(alpha_bar) = x_0 + sigma * noise
    torch.testing.assert_close(x_t / alpha_bar.sqrt(), x0 + impl.sigma_from_alpha_bar(alpha_bar) * noise)


def test_deterministic_step_keeps_the_noise_direction(impl):
    """With the true x_0, DDIM (eta = 0) moves x_t to the point of the same noise at the earlier step."""
    x0, noise = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    alpha_bar_t, alpha_bar_prev = torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    x_t = alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * noise
    expected = alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev).sqrt() * noise
    torch.testing.assert_close(impl.ddim_step(x_t, x0, alpha_bar_t, alpha_bar_prev, 0.0, None), expected)


def test_eta_one_is_the_ddpm_posterior(impl):
    """With eta = 1 the step samples q(x_{t-1} | x_t, x_0): Bayes' mean plus sqrt(posterior variance) * z."""
    x0, x_t, z = (torch.randn(5, 2, dtype=torch.float64) for _ in range(3))
    alpha_bar_t, alpha_bar_prev = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.35, dtype=torch.float64)
    alpha = alpha_bar_t / alpha_bar_prev
    precision = 1 / (1 - alpha_bar_prev) + alpha / (1 - alpha)
    mean = (alpha_bar_prev.sqrt() * x0 / (1 - alpha_bar_prev) + alpha.sqrt() * x_t / (1 - alpha)) / precision
    torch.testing.assert_close(impl.ddim_step(x_t, x0, alpha_bar_t, alpha_bar_prev, 1.0, z), mean + z / precision.sqrt())
