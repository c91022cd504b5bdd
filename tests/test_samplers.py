"""Every sampler, driven by the exact denoiser of a Gaussian mixture, must reproduce the mixture; Euler-type
samplers converge at order 1 and Heun / DPM-Solver++(2M) at order 2; bad input is a clear error."""
import numpy as np
import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion import SAMPLERS, VARIANCE_SAMPLERS, get_sampler
from minisora.diffusion.samplers import sample_dpmpp_2m, sample_euler, sample_heun
from minisora.diffusion.schedules import alphas_cumprod, karras_sigmas, linear_betas, sigmas_from_timesteps
from minisora.diffusion.score_sde import VESDE

NUM_SAMPLES = 10000
# Steps per sampler: enough that discretisation error is below the sampling noise of 4000 points.
STEPS = {"euler": 250, "euler_ancestral": 200, "heun": 40, "edm_stochastic": 120, "dpmpp_2m": 40,
         "reverse_sde": 300, "predictor_corrector": 300, "probability_flow": 200,
         "flow_euler": 250, "flow_heun": 40, "flow_sde": 300, "ddpm_learned_variance": 200}
# Exact samples (n = 10000, 40 draws) give at most: mean 0.032, covariance 0.042, sliced W 0.032.
LIMITS = {"mean": 0.045, "covariance": 0.06, "sliced_wasserstein": 0.045}


class WithVariance:
    """An exact denoiser with a learned-variance output v = 0 (Nichol & Dhariwal's Eq. 15: the variance halfway between
    beta~ and beta in log space), for the sampler that draws with one; the others call it as the denoiser."""

    def __init__(self, denoiser):
        self.denoiser = denoiser

    def __call__(self, x, sigma, **cond):
        return self.denoiser(x, sigma, **cond)

    def with_variance(self, x, sigma, **cond):
        return self.denoiser(x, sigma, **cond), torch.zeros_like(x)


def run_sampler(name, denoiser, num_steps, seed=0, **options):
    sigmas = karras_sigmas(num_steps).double()
    noise = torch.randn(NUM_SAMPLES, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return get_sampler(name)(denoiser, noise * sigmas[0], sigmas, generator=torch.Generator().manual_seed(seed + 1),
                             **options)


def test_every_sampler_is_checked():
    assert set(STEPS) == set(SAMPLERS) | set(VARIANCE_SAMPLERS) and not set(SAMPLERS) & set(VARIANCE_SAMPLERS)


@pytest.mark.parametrize("name", sorted(STEPS))
def test_sampler_reproduces_the_mixture(name, mixture):
    errors = distribution_errors(run_sampler(name, WithVariance(mixture.denoiser), STEPS[name]), mixture)
    for key, limit in LIMITS.items():
        assert errors[key] < limit, f"{name}: {key} error {errors[key]:.4f} >= {limit} ({errors})"


def test_the_check_catches_broken_samplers(mixture):
    """The same limits fail for a sampler that stops early, takes far too few steps, or has a flipped step."""
    noise = torch.randn(NUM_SAMPLES, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # 30 of 100 steps short, it returns samples still carrying noise of sigma 0.29 (1.5-1.7x a limit for seeds 0-3;
    # 10 steps short, at sigma 0.014, it passed or failed the limits by the seed)
    stopped_early = sample_euler(mixture.denoiser, noise * 80, karras_sigmas(100).double()[:-30])
    too_few_steps = run_sampler("euler", mixture.denoiser, 3)

    def flipped_denoiser(x, sigma):  # a sign error in the skip connection
        return 2 * mixture.denoiser(x, sigma) - x * 0.05

    flipped = run_sampler("heun", flipped_denoiser, 40)
    for samples in (stopped_early, too_few_steps, flipped):
        errors = distribution_errors(samples, mixture)
        assert any(errors[key] >= limit for key, limit in LIMITS.items()), errors


def test_score_sde_samplers_work_on_the_ve_sde(mixture):
    # Euler in the VE SDE's time is Euler in log sigma for the ODE, which needs more steps than Euler in sigma
    for name, steps in (("reverse_sde", 300), ("predictor_corrector", 300), ("probability_flow", 800)):
        sigmas = karras_sigmas(steps, sigma_min=0.01, sigma_max=50.0).double()
        noise = torch.randn(NUM_SAMPLES, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        samples = get_sampler(name)(mixture.denoiser, noise * sigmas[0], sigmas, sde=VESDE(),
                                    generator=torch.Generator().manual_seed(4))
        errors = distribution_errors(samples, mixture)
        assert all(errors[key] < limit for key, limit in LIMITS.items()), (name, errors)


def convergence_slope(sampler, mixture, step_counts=(8, 16, 32, 64, 128)):
    """Log-log slope of the final error against the number of steps, on the deterministic ODE from fixed noise."""
    noise = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 10
    exact = sample_heun(mixture.denoiser, noise, karras_sigmas(4000, sigma_min=0.01, sigma_max=10.0).double())
    errors = []
    for steps in step_counts:
        final = sampler(mixture.denoiser, noise, karras_sigmas(steps, sigma_min=0.01, sigma_max=10.0).double())
        errors.append(float((final - exact).abs().mean()))
    return np.polyfit(np.log(step_counts), np.log(errors), 1)[0]


def test_euler_converges_at_first_order(mixture):
    assert -1.25 < convergence_slope(sample_euler, mixture) < -0.8


@pytest.mark.parametrize("sampler", [sample_heun, sample_dpmpp_2m])
def test_second_order_samplers_converge_at_second_order(sampler, mixture):
    assert -2.5 < convergence_slope(sampler, mixture) < -1.8


def test_ddpm_sigmas_also_reach_the_mixture(mixture):
    """The 1000 DDPM sigmas (from the linear betas) with DDPM's ancestral sampler reproduce the data."""
    sigmas = sigmas_from_timesteps(alphas_cumprod(linear_betas()), torch.arange(999, -1, -1))
    noise = torch.randn(NUM_SAMPLES, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    samples = SAMPLERS["euler_ancestral"](mixture.denoiser, noise * sigmas[0], sigmas,
                                          generator=torch.Generator().manual_seed(6))
    errors = distribution_errors(samples, mixture)
    assert all(errors[key] < limit for key, limit in LIMITS.items()), errors


@pytest.mark.parametrize("name", sorted(STEPS))
def test_samplers_are_deterministic_given_a_seed(name, mixture):
    first = run_sampler(name, WithVariance(mixture.denoiser), 5, seed=7)
    second = run_sampler(name, WithVariance(mixture.denoiser), 5, seed=7)
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", sorted(STEPS))
def test_callback_sees_every_step(name, mixture):
    seen = []
    sigmas = karras_sigmas(6).double()
    get_sampler(name)(WithVariance(mixture.denoiser), torch.randn(4, 2, dtype=torch.float64) * 80, sigmas,
                      callback=lambda info: seen.append(info["i"]))
    assert seen == list(range(6))


@pytest.mark.parametrize("bad_sigmas, message", [
    (torch.tensor([80.0]), "at least 2"),
    (torch.tensor([1.0, 2.0, 0.0]), "strictly decreasing"),
    (torch.tensor([5.0, 5.0, 0.0]), "strictly decreasing"),
    (torch.tensor([float("nan"), 0.0]), "finite"),
    (torch.tensor([[2.0, 1.0]]), "1-D"),
])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_bad_sigmas_are_clear_errors(name, bad_sigmas, message, mixture):
    with pytest.raises(ValueError, match=message):
        get_sampler(name)(mixture.denoiser, torch.zeros(3, 2), bad_sigmas)


def test_the_learned_variance_sampler_needs_a_denoiser_with_variance(mixture):
    sigmas = karras_sigmas(4).double()
    with pytest.raises(TypeError, match="learned_variance=True"):
        get_sampler("ddpm_learned_variance")(mixture.denoiser, torch.zeros(3, 2, dtype=torch.float64), sigmas)


def test_the_learned_variance_sampler_draws_with_the_variance_it_is_given(mixture):
    """v = -1 is beta~ (DDPM's posterior variance): then it is the ancestral sampler draw for draw; v = +1 (beta)
    adds more noise, and the mixture's samples come out wider."""

    class Fixed(WithVariance):
        def __init__(self, denoiser, v):
            super().__init__(denoiser)
            self.v = v

        def with_variance(self, x, sigma, **cond):
            return self.denoiser(x, sigma, **cond), torch.full_like(x, self.v)

    lowest = run_sampler("ddpm_learned_variance", Fixed(mixture.denoiser, -1.0), 30, seed=3)
    ancestral = run_sampler("euler_ancestral", mixture.denoiser, 30, seed=3)
    torch.testing.assert_close(lowest, ancestral, rtol=1e-9, atol=1e-9)
    highest = run_sampler("ddpm_learned_variance", Fixed(mixture.denoiser, 1.0), 30, seed=3)
    assert highest.std() > lowest.std() * 1.01


def test_zero_steps_is_a_clear_error():
    with pytest.raises(ValueError, match="positive integer"):
        karras_sigmas(0)


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(ValueError, match="heun"):
        get_sampler("rk45")


def test_wrong_data_shape_is_a_clear_error(mixture):
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        sample_euler(mixture.denoiser, torch.zeros(3, 5), karras_sigmas(2))
