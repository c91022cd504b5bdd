"""Schedules and conversions between alpha_bar, sigma and log-SNR."""
import math

import pytest
import torch

from minisora.diffusion.schedules import (alpha_bar_from_sigma, alphas_cumprod, cosine_betas, linear_betas,
                                          log_snr_from_sigma, respace_timesteps, respaced_betas, sigma_from_alpha_bar,
                                          sigma_from_log_snr, sigma_from_timestep, sigmas_from_timesteps,
                                          timestep_from_sigma)


def test_cosine_schedule_follows_its_closed_form():
    """Nichol & Dhariwal Eq. 17: alpha_bar_t = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi / 2), away from the clip."""
    alpha_bar = alphas_cumprod(cosine_betas(1000))
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = f(t) / f(torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(alpha_bar[:990], expected[:990])
    assert cosine_betas(1000).max() <= 0.999


def test_conversions_round_trip():
    sigma = torch.logspace(-3, 2, 50, dtype=torch.float64)
    torch.testing.assert_close(sigma_from_alpha_bar(alpha_bar_from_sigma(sigma)), sigma)
    torch.testing.assert_close(sigma_from_log_snr(log_snr_from_sigma(sigma)), sigma)
    # log SNR = log(alpha_bar / (1 - alpha_bar))
    alpha_bar = alpha_bar_from_sigma(sigma)
    torch.testing.assert_close(log_snr_from_sigma(sigma), torch.log(alpha_bar / (1 - alpha_bar)))


def test_timesteps_and_sigmas_invert_each_other():
    schedule = alphas_cumprod(linear_betas())
    t = torch.tensor([0, 1, 17, 500, 999])
    torch.testing.assert_close(timestep_from_sigma(schedule, sigma_from_alpha_bar(schedule[t])), t.double())
    fractional = torch.tensor([0.0, 0.25, 10.5, 998.9], dtype=torch.float64)
    torch.testing.assert_close(timestep_from_sigma(schedule, sigma_from_timestep(schedule, fractional)), fractional)
    between = timestep_from_sigma(schedule, torch.logspace(-2, 2, 100, dtype=torch.float64))
    assert bool((between.diff() > 0).all())


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_respacing_gives_decreasing_valid_timesteps(spacing):
    steps = respace_timesteps(1000, 50, spacing)
    assert len(steps) == 50 and len(set(steps.tolist())) == 50
    assert bool((steps.diff() < 0).all()) and 0 <= steps.min() and steps.max() <= 999
    if spacing == "trailing":
        assert steps[0] == 999
    if spacing == "leading":
        assert steps[-1] == 0 and steps[0] == 980


def test_respaced_betas_keep_the_same_alpha_bars():
    """Nichol & Dhariwal Section 4: the short chain has the same alpha_bar at the kept steps."""
    schedule = alphas_cumprod(linear_betas())
    kept = respace_timesteps(1000, 25)
    short = alphas_cumprod(respaced_betas(schedule, kept))
    torch.testing.assert_close(short, schedule[kept.sort().values])


def test_sigmas_from_timesteps_end_with_zero():
    sigmas = sigmas_from_timesteps(alphas_cumprod(linear_betas()), respace_timesteps(1000, 10))
    assert sigmas[-1] == 0 and bool((sigmas.diff() < 0).all())


@pytest.mark.parametrize("call, message", [
    (lambda: linear_betas(0), "positive integer"),
    (lambda: respace_timesteps(10, 20), "num_steps <= 10"),
    (lambda: respace_timesteps(1000, 10, "random"), "leading"),
])
def test_bad_schedule_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
