"""Lesson 04 checks (EDM), run against minisora by default, against your stubs with --impl=exercises and against the
worked solutions with --impl=solutions.

The checks are exact where they can be: the schedule and the preconditioning against their closed forms in float64,
Heun's convergence order fitted on the exact denoiser of a Gaussian mixture, and the stochastic sampler replayed line
by line from Algorithm 2 on the same generator. Its samples are held to the limits tests/test_samplers.py states for
10000 points."""
import math

import numpy as np
import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion.samplers import sample_heun as reference_sample_heun
from minisora.diffusion.schedules import karras_sigmas as reference_karras_sigmas

pytestmark = pytest.mark.lesson04

# exact samples of the skewed mixture (n = 10000, 40 draws) give at most: mean 0.032, covariance 0.042, sliced W 0.032
LIMITS = {"mean": 0.045, "covariance": 0.06, "sliced_wasserstein": 0.045}


def test_karras_sigmas_are_even_in_sigma_to_the_one_over_rho(impl):
    sigmas = impl.karras_sigmas(18, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert sigmas.shape == (19,) and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002)
    steps = (sigmas[:-1] ** (1 / 7)).diff()
    torch.testing.assert_close(steps, torch.full_like(steps, steps[0].item()))
    linear = impl.karras_sigmas(5, sigma_min=1.0, sigma_max=5.0, rho=1.0)
    torch.testing.assert_close(linear.double(), torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], dtype=torch.float64))


def test_edm_preconditioning_gives_unit_variance_inputs_and_targets(impl):
    """Karras et al. Appendix B.6: c_in makes the input unit-variance, c_skip and c_out make the training target
    (y - c_skip (y + n)) / c_out unit-variance, for data of standard deviation sigma_data."""
    sigma_data = 0.5
    sigma = torch.tensor([0.002, 0.1, 0.5, 3.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = impl.edm_preconditioning(sigma, sigma_data)
    torch.testing.assert_close(c_in**2 * (sigma_data**2 + sigma**2), torch.ones_like(sigma))
    target_variance = ((1 - c_skip) ** 2 * sigma_data**2 + c_skip**2 * sigma**2) / c_out**2
    torch.testing.assert_close(target_variance, torch.ones_like(sigma))
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    # c_skip minimises the variance of the target (its derivative in c_skip vanishes there)
    torch.testing.assert_close(c_skip, sigma_data**2 / (sigma_data**2 + sigma**2))


def test_sample_heun_is_second_order_and_counts_its_evaluations(impl, mixture):
    noise = torch.randn(128, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    exact = impl.sample_heun(mixture.denoiser, noise, reference_karras_sigmas(2000, 0.01, 10.0).double())
    counts = (8, 16, 32, 64)
    errors = []
    for steps in counts:
        final = impl.sample_heun(mixture.denoiser, noise, reference_karras_sigmas(steps, 0.01, 10.0).double())
        errors.append(float((final - exact).abs().mean()))
    assert -2.5 < np.polyfit(np.log(counts), np.log(errors), 1)[0] < -1.8
    calls = []
    impl.sample_heun(lambda x, sigma: calls.append(1) or mixture.denoiser(x, sigma), noise,
                     reference_karras_sigmas(10).double())
    assert len(calls) == 2 * 10 - 1  # Algorithm 1: the step into sigma = 0 is a plain Euler step


def _counting(denoiser, calls):
    def counted(x, sigma):
        calls.append(1)
        return denoiser(x, sigma)
    return counted


def test_sample_edm_stochastic_without_churn_is_heun(impl, mixture):
    """S_churn = 0, or a window [S_tmin, S_tmax] that holds none of the levels, leaves Algorithm 1 (float64, to
    rounding); with churn on, a step still costs two evaluations (one into sigma = 0)."""
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    sigmas = reference_karras_sigmas(12, 0.01, 10.0).double()
    no_churn = impl.sample_edm_stochastic(mixture.denoiser, x, sigmas, s_churn=0.0,
                                          generator=torch.Generator().manual_seed(1))
    heun = reference_sample_heun(mixture.denoiser, x, sigmas)
    torch.testing.assert_close(no_churn, heun, rtol=0, atol=1e-10)
    outside = impl.sample_edm_stochastic(mixture.denoiser, x, sigmas, s_churn=40.0, s_tmin=20.0, s_tmax=50.0,
                                         generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(outside, heun, rtol=0, atol=1e-10)
    calls = []
    churned = impl.sample_edm_stochastic(_counting(mixture.denoiser, calls), x, sigmas, s_churn=40.0,
                                         generator=torch.Generator().manual_seed(1))
    assert len(calls) == 2 * 12 - 1
    assert float((churned - heun).abs().mean()) > 0.01, "with s_churn = 40 the sampler added no noise"


def _replay_algorithm_2(denoiser, x, t, generator, s_churn, s_tmin, s_tmax, s_noise):
    """Algorithm 2 of Karras et al. 2022 line by line, in float64 (t holds the levels t_0 > ... > t_N)."""
    levels = [float(level) for level in t]
    count = len(levels) - 1
    for i in range(count):
        t_i, t_next = levels[i], levels[i + 1]
        # gamma_i = min(S_churn / N, sqrt(2) - 1) if t_i in [S_tmin, S_tmax], else 0
        gamma = min(s_churn / count, math.sqrt(2) - 1) if s_tmin <= t_i <= s_tmax else 0.0
        # t^_i = t_i + gamma_i t_i
        t_hat = t_i + gamma * t_i
        if gamma > 0:
            # eps_i ~ N(0, S_noise^2 I);  x^_i = x_i + sqrt(t^_i^2 - t_i^2) eps_i
            epsilon = s_noise * torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + math.sqrt(t_hat**2 - t_i**2) * epsilon
        # d_i = (x^_i - D(x^_i; t^_i)) / t^_i
        slope = (x - denoiser(x, torch.full((len(x),), t_hat, dtype=x.dtype))) / t_hat
        # x_{i+1} = x^_i + (t_{i+1} - t^_i) d_i
        stepped = x + (t_next - t_hat) * slope
        if t_next > 0:
            # d'_i = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1};  x_{i+1} = x^_i + (t_{i+1} - t^_i) (d_i + d'_i) / 2
            slope_next = (stepped - denoiser(stepped, torch.full((len(x),), t_next, dtype=x.dtype))) / t_next
            stepped = x + (t_next - t_hat) * (slope + slope_next) / 2
        x = stepped
    return x


@pytest.mark.parametrize("s_churn", [3.0, 80.0], ids=["gamma 0.3", "gamma capped at sqrt 2 - 1"])
def test_sample_edm_stochastic_replays_algorithm_2_on_a_fixed_generator(impl, mixture, s_churn):
    """The same generator gives the same numbers as Algorithm 2 written out line by line: a window that leaves the
    first and last levels out, S_noise = 1.1, and a churn below and above the cap."""
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 20
    sigmas = reference_karras_sigmas(10, 0.02, 20.0).double()
    options = {"s_churn": s_churn, "s_tmin": 0.1, "s_tmax": 5.0, "s_noise": 1.1}
    yours = impl.sample_edm_stochastic(mixture.denoiser, x, sigmas, generator=torch.Generator().manual_seed(5),
                                       **options)
    replayed = _replay_algorithm_2(mixture.denoiser, x, sigmas, torch.Generator().manual_seed(5), **options)
    torch.testing.assert_close(yours, replayed, rtol=0, atol=1e-9)
    heun = reference_sample_heun(mixture.denoiser, x, sigmas)
    assert float((yours - heun).abs().mean()) > 0.01


def test_sample_edm_stochastic_samples_the_exact_mixture(impl, mixture):
    """With the exact denoiser and the paper's ImageNet-64 settings (S_churn = 40), 120 steps reproduce the mixture
    within the limits that exact samples of 10000 points allow (above)."""
    sigmas = reference_karras_sigmas(120).double()
    noise = torch.randn(10000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigmas[0]
    samples = impl.sample_edm_stochastic(mixture.denoiser, noise, sigmas, generator=torch.Generator().manual_seed(1))
    errors = distribution_errors(samples, mixture)
    for key, limit in LIMITS.items():
        assert errors[key] < limit, f"{key} error {errors[key]:.4f} >= {limit} ({errors})"
