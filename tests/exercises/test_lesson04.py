"""Lesson 04 checks (EDM), run against minisora by default and against your stubs with --impl=exercises."""
import numpy as np
import pytest
import torch

from minisora.diffusion.schedules import karras_sigmas as reference_karras_sigmas

pytestmark = pytest.mark.lesson04


def test_karras_sigmas_are_even_in_sigma_to_the_one_over_rho(impl):
    sigmas = impl.karras_sigmas(18, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert sigmas.shape == (19,) and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002)
    steps = (sigmas[:-1] ** (1 / 7)).diff()
    torch.testing.assert_close(steps, torch.full_like(steps, steps[0].item()))
    linear = impl.karras_sigmas(5, sigma_min=1.0, sigma_max=5.0, rho=1.0)
    torch.testing.assert_close(linear.double(), torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], dtype=torch.float64))


def test_preconditioning_gives_unit_variance_inputs_and_targets(impl):
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


def test_heun_is_second_order_and_counts_its_evaluations(impl, mixture):
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
