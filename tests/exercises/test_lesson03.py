"""Lesson 03 checks (score SDEs), run against minisora by default and against your stubs with --impl=exercises.

Every check is exact where it can be: a Gaussian's score and probability flow have closed forms, a Gaussian
mixture's noisy log-density too (its gradient by autograd), and a sampler's steps are replayed in float64 from the
same generator. The samplers' statistics are held to the limits tests/test_samplers.py states for 10000 points."""
import math

import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion.samplers import sample_euler
from minisora.diffusion.schedules import alphas_cumprod, karras_sigmas, linear_betas, sigmas_from_timesteps
from minisora.diffusion.score_sde import VESDE, VPSDE
from tiny_datasets.toy2d import GaussianMixture

pytestmark = pytest.mark.lesson03

MEAN, VARIANCE = torch.tensor([[0.5, -1.0]], dtype=torch.float64), 0.3
SDES = [VPSDE(), VESDE()]
# exact samples of the skewed mixture (n = 10000, 40 draws) give at most: mean 0.032, covariance 0.042, sliced W 0.032
LIMITS = {"mean": 0.045, "covariance": 0.06, "sliced_wasserstein": 0.045}


def single_gaussian():
    return GaussianMixture(MEAN, VARIANCE * torch.eye(2, dtype=torch.float64)[None])


def gaussian_score(sde, x_t, t):
    """x_t = alpha x_0 + alpha sigma eps with x_0 ~ N(m, v I) is N(alpha m, alpha^2 (v + sigma^2) I): its score."""
    alpha, sigma = sde.alpha(t), sde.sigma(t)
    return (alpha * MEAN - x_t) / (alpha**2 * (VARIANCE + sigma**2))


def noisy_log_density(mixture, sde, x_t, t):
    """log p_t(x_t) of a Gaussian mixture carried to time t: component k becomes N(alpha mu_k, alpha^2 (S_k + sigma^2 I))."""
    alpha, sigma = sde.alpha(t), sde.sigma(t)
    covariances = alpha**2 * (mixture.covariances + sigma**2 * torch.eye(mixture.dim, dtype=torch.float64))
    components = torch.distributions.MultivariateNormal(alpha * mixture.means, covariance_matrix=covariances)
    return torch.logsumexp(components.log_prob(x_t[:, None, :]) + mixture.weights.log(), dim=1)


@pytest.mark.parametrize("sde", SDES, ids=["vp", "ve"])
def test_score_from_denoiser_of_a_gaussian_is_exact(impl, sde):
    t = torch.tensor(0.4, dtype=torch.float64)
    x_t = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = impl.score_from_denoiser(single_gaussian().denoiser, sde, x_t, t, None)
    torch.testing.assert_close(score, gaussian_score(sde, x_t, t))


@pytest.mark.parametrize("sde", SDES, ids=["vp", "ve"])
@pytest.mark.parametrize("time", [0.05, 0.3, 0.7])
def test_score_from_denoiser_of_the_mixture_is_the_gradient_of_its_log_density(impl, mixture, sde, time):
    """Tweedie's formula with the mixture's exact denoiser equals autograd of the closed-form log p_t (float64)."""
    t = torch.tensor(time, dtype=torch.float64)
    x_t = sde.alpha(t) * (mixture.sample(64, torch.Generator().manual_seed(1)).double()
                          + sde.sigma(t) * torch.randn(64, 2, generator=torch.Generator().manual_seed(2),
                                                       dtype=torch.float64))
    score = impl.score_from_denoiser(mixture.denoiser, sde, x_t, t, None)
    x_t.requires_grad_(True)
    expected, = torch.autograd.grad(noisy_log_density(mixture, sde, x_t, t).sum(), x_t)
    torch.testing.assert_close(score, expected, rtol=1e-8, atol=1e-8)


def test_score_from_denoiser_passes_the_conditioning_on(impl, mixture):
    """cond reaches the denoiser: the score with a class label is the score of that class's component alone."""
    sde, t = VESDE(), torch.tensor(0.3, dtype=torch.float64)
    x_t = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    label = torch.full((16,), 1)
    score = impl.score_from_denoiser(mixture.denoiser, sde, x_t, t, {"label": label})
    component = GaussianMixture(mixture.means[1:2], mixture.covariances[1:2])
    torch.testing.assert_close(score, impl.score_from_denoiser(component.denoiser, sde, x_t, t, None))


def test_langevin_correction_settles_on_the_target(impl):
    """Many corrector steps with the exact score of N(m, v I) move samples from elsewhere onto that Gaussian (up to
    the O(epsilon) bias of unadjusted Langevin: variance v / (1 - epsilon / 2v), about 0.307 here)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 2, generator=generator, dtype=torch.float64) + MEAN + 1
    for _ in range(600):
        score = -(x - MEAN) / VARIANCE
        x = impl.langevin_correction(x, score, torch.randn(x.shape, generator=generator, dtype=torch.float64), 0.15)
    torch.testing.assert_close(x.mean(0), MEAN[0], atol=0.03, rtol=0)
    torch.testing.assert_close(x.var(0), torch.full((2,), VARIANCE, dtype=torch.float64), atol=0.03, rtol=0)


def test_langevin_correction_step_size_follows_the_signal_to_noise_ratio(impl):
    """epsilon = 2 (r ||z|| / ||s||)^2: with ||z|| = 1 and ||s|| = 2, r = 0.5 gives epsilon = 1/8."""
    x, score, noise = torch.zeros(2, 2), torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    epsilon = 2 * (0.5 * 1 / 2) ** 2
    expected = epsilon * score + (2 * epsilon) ** 0.5 * noise
    torch.testing.assert_close(impl.langevin_correction(x, score, noise, 0.5), expected)


def replay(sde, x, sigmas, noise_scale, seed):
    """A float64 replay of Euler(-Maruyama) steps in the SDE's time on the single Gaussian, with its exact score:
    noise_scale 1 is the reverse SDE (Eq. 6), 0 the probability-flow ODE (Eq. 13, half the score's pull)."""
    generator = torch.Generator().manual_seed(seed)
    pull = 1.0 if noise_scale else 0.5
    times = sde.time_from_sigma(sigmas[sigmas > 0])
    state = sde.alpha(times[0]) * x
    for k in range(len(sigmas) - 1):
        if sigmas[k + 1] == 0:  # the last step returns E[x_0 | x]
            return single_gaussian().denoiser(state / sde.alpha(times[k]), sigmas[k].expand(len(x)))
        step = times[k] - times[k + 1]  # > 0: the length of the step back in time
        velocity = sde.drift(state, times[k]) - pull * sde.diffusion(times[k]) ** 2 * gaussian_score(sde, state, times[k])
        state = state - velocity * step
        if noise_scale:
            state = state + sde.diffusion(times[k]) * math.sqrt(step) * torch.randn(
                x.shape, generator=generator, dtype=torch.float64)
    return state / sde.alpha(times[-1])


SIGMAS = {"to_sigma_0.3": torch.tensor([20.0, 4.0, 1.0, 0.3], dtype=torch.float64),
          "to_zero": torch.tensor([20.0, 4.0, 1.0, 0.3, 0.0], dtype=torch.float64)}


@pytest.mark.parametrize("sde", SDES, ids=["vp", "ve"])
@pytest.mark.parametrize("end", sorted(SIGMAS))
def test_sample_reverse_sde_steps_replay_in_float64(impl, sde, end):
    """Each Euler-Maruyama step of Eq. 6, noise drawn from the same generator, is recomputed here in float64."""
    sigmas = SIGMAS[end]
    x = 20.0 * torch.randn(32, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    samples = impl.sample_reverse_sde(single_gaussian().denoiser, x, sigmas, generator=torch.Generator().manual_seed(5),
                                      sde=sde)
    torch.testing.assert_close(samples, replay(sde, x, sigmas, 1, seed=5), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sde", SDES, ids=["vp", "ve"])
def test_sample_reverse_sde_reproduces_the_mixture(impl, mixture, sde):
    """300 steps of Karras et al.'s sigmas, 10000 points, the mixture's exact denoiser: mean, covariance and sliced
    Wasserstein distance within the limits of exact samples (plus discretisation)."""
    sigmas = karras_sigmas(300, sigma_min=0.01, sigma_max=80.0 if isinstance(sde, VPSDE) else 50.0).double()
    noise = torch.randn(10000, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    samples = impl.sample_reverse_sde(mixture.denoiser, noise * sigmas[0], sigmas,
                                      generator=torch.Generator().manual_seed(7), sde=sde)
    errors = distribution_errors(samples, mixture)
    assert all(errors[key] < limit for key, limit in LIMITS.items()), errors


def test_sample_reverse_sde_uses_the_vp_sde_by_default_and_its_generator(impl, mixture):
    sigmas = karras_sigmas(8).double()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * sigmas[0]
    default = impl.sample_reverse_sde(mixture.denoiser, x, sigmas, generator=torch.Generator().manual_seed(9))
    vp = impl.sample_reverse_sde(mixture.denoiser, x, sigmas, generator=torch.Generator().manual_seed(9), sde=VPSDE())
    other = impl.sample_reverse_sde(mixture.denoiser, x, sigmas, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(default, vp, rtol=0, atol=0)
    assert (default - other).abs().max() > 1e-3  # fresh noise at every step: another seed, another sample


@pytest.mark.parametrize("sde", SDES, ids=["vp", "ve"])
@pytest.mark.parametrize("end", sorted(SIGMAS))
def test_sample_probability_flow_steps_replay_in_float64_and_draw_no_noise(impl, sde, end):
    """Each Euler step of Eq. 13 is recomputed in float64; the ODE is deterministic and touches no random state."""
    sigmas = SIGMAS[end]
    x = 20.0 * torch.randn(32, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    state = torch.random.get_rng_state()
    first = impl.sample_probability_flow(single_gaussian().denoiser, x, sigmas, sde=sde)
    assert torch.equal(torch.random.get_rng_state(), state), "the probability-flow ODE drew random numbers"
    torch.testing.assert_close(first, replay(sde, x, sigmas, 0, seed=0), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(impl.sample_probability_flow(single_gaussian().denoiser, x, sigmas, sde=sde), first,
                               rtol=0, atol=0)


@pytest.mark.parametrize("sde", SDES, ids=["vp", "ve"])
def test_sample_probability_flow_follows_a_gaussians_exact_flow(impl, sde):
    """For x_0 ~ N(m, v I) the ODE's solution is known: x(sigma) - m = sqrt((v + sigma^2) / (v + sigma_0^2)) (x(sigma_0)
    - m) in sigma space. 2000 Euler steps in t from sigma 10 to 0.1 land on it to within 0.01 (Euler's O(1/N))."""
    sigmas = karras_sigmas(2000, sigma_min=0.1, sigma_max=10.0).double()[:-1]  # stop at 0.1, before the final 0
    x = 10.0 * torch.randn(256, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    samples = impl.sample_probability_flow(single_gaussian().denoiser, x, sigmas, sde=sde)
    exact = MEAN + ((VARIANCE + sigmas[-1] ** 2) / (VARIANCE + sigmas[0] ** 2)).sqrt() * (x - MEAN)
    assert (samples - exact).abs().max() < 0.01, (samples - exact).abs().max()


def test_sample_probability_flow_reproduces_the_mixture(impl, mixture):
    sigmas = karras_sigmas(200).double()
    noise = torch.randn(10000, 2, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    errors = distribution_errors(impl.sample_probability_flow(mixture.denoiser, noise * sigmas[0], sigmas), mixture)
    assert all(errors[key] < limit for key, limit in LIMITS.items()), errors


def test_sample_probability_flow_lands_where_ddim_does_on_the_vp_sde(impl, mixture):
    """Song et al. 2021, Section 4.3 (and tests/test_equivalences.py): DDIM is Euler on the VP probability-flow ODE in
    sigma, so on DDPM's 1000 noise levels Euler in the SDE's time t and DDIM land on the same points (to O(1/N))."""
    sigmas = sigmas_from_timesteps(alphas_cumprod(linear_betas()), torch.arange(999, -1, -1))
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64) * sigmas[0]
    flow = impl.sample_probability_flow(mixture.denoiser, x, sigmas, sde=VPSDE())
    ddim = sample_euler(mixture.denoiser, x, sigmas)
    assert (flow - ddim).abs().mean() < 0.01, (flow - ddim).abs().mean()
