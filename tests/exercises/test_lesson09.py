"""Lesson 09 checks (interpolants, flow matching, the Euler sampler), against minisora by default, your stubs with
--impl=exercises and the worked solutions with --impl=solutions."""
import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion.ddim import ddim_sample
from minisora.diffusion.ddpm import network_from_denoiser
from minisora.diffusion.flow import PATHS, Path, sample_times
from minisora.diffusion.samplers import sample_euler
from minisora.diffusion.schedules import alphas_cumprod, linear_betas, respace_timesteps, sigmas_from_timesteps

pytestmark = pytest.mark.lesson09


@pytest.mark.parametrize("name", PATHS)
def test_flow_target_velocity_is_the_time_derivative_of_the_path(impl, name):
    path = Path(name)
    x0, noise = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    t, h = torch.linspace(0.1, 0.9, 6, dtype=torch.float64), 1e-6

    def x_at(time):
        return path.alpha(time)[:, None] * x0 + path.sigma(time)[:, None] * noise

    finite_difference = (x_at(t + h) - x_at(t - h)) / (2 * h)
    torch.testing.assert_close(impl.flow_target(path, x0, noise, t, "velocity"), finite_difference, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(impl.flow_target(path, x0, noise, t, "noise"), noise)


@pytest.mark.parametrize("name", PATHS)
def test_flow_target_score_is_the_gradient_of_the_conditional_log_density(impl, name):
    """grad_x log N(x; alpha_t x0, sigma_t^2 I) at x = x_t, by autograd of the density written out here."""
    path = Path(name)
    x0, noise = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    t = torch.linspace(0.1, 0.9, 6, dtype=torch.float64)
    x_t = (path.alpha(t)[:, None] * x0 + path.sigma(t)[:, None] * noise).requires_grad_(True)
    log_density = (-((x_t - path.alpha(t)[:, None] * x0) ** 2) / (2 * path.sigma(t)[:, None] ** 2)).sum()
    autograd_score, = torch.autograd.grad(log_density, x_t)
    torch.testing.assert_close(impl.flow_target(path, x0, noise, t, "score"), autograd_score)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("prediction", ["velocity", "noise", "score"])
def test_x0_from_prediction_inverts_every_exact_prediction(impl, name, prediction):
    path = Path(name)
    x0, noise = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95], dtype=torch.float64)
    x_t = path.alpha(t)[:, None] * x0 + path.sigma(t)[:, None] * noise
    # the exact targets, written out here rather than taken from the code under test
    d_alpha, d_sigma, sigma = path.d_alpha(t)[:, None], path.d_sigma(t)[:, None], path.sigma(t)[:, None]
    output = {"velocity": d_alpha * x0 + d_sigma * noise, "noise": noise, "score": -noise / sigma}[prediction]
    torch.testing.assert_close(impl.x0_from_prediction(path, x_t, t, output, prediction), x0)


def test_sample_times_distributions_and_the_shift(impl):
    generator = torch.Generator().manual_seed(0)
    uniform = impl.sample_times(200_000, "uniform", generator=generator)
    assert 0 < uniform.min() and uniform.max() < 1 and abs(uniform.mean().item() - 0.5) < 0.005
    assert abs(uniform.var().item() - 1 / 12) < 0.002
    logit_normal = impl.sample_times(200_000, "logit_normal", generator=generator)
    logits = torch.logit(logit_normal.double())
    assert abs(logits.mean().item()) < 0.01 and abs(logits.std().item() - 1) < 0.01
    # shifting maps each quantile q to shift q / (1 + (shift - 1) q): the median 1/2 goes to shift / (1 + shift)
    shifted = impl.sample_times(200_000, "uniform", shift=3.0, generator=generator)
    assert abs(shifted.median().item() - 0.75) < 0.005
    assert abs((shifted < 0.6).double().mean().item() - 0.6 / (3 - 2 * 0.6)) < 0.005  # inverse of the map at 0.6


def _recording_model(seen):
    """A fixed nonlinear 'network' that remembers what it was asked."""
    def model(x_t, t):
        seen["x_t"], seen["t"] = x_t.detach().clone(), t.detach().clone()
        return torch.sin(3 * x_t) * (1 + t[:, None])
    return model


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("prediction, distribution, shift", [("velocity", "uniform", 1.0),
                                                              ("noise", "logit_normal", 3.0),
                                                              ("score", "uniform", 2.0)])
def test_flow_matching_loss_replays_its_draws(impl, name, prediction, distribution, shift):
    """The loss recomputed here from the same generator draws (t first, then eps) and targets written out here."""
    path, seen = Path(name), {}
    x0 = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = _recording_model(seen)
    loss = impl.flow_matching_loss(model, x0, path, prediction, distribution, shift, torch.Generator().manual_seed(1))
    replay = torch.Generator().manual_seed(1)
    t = sample_times(256, distribution, shift, replay).double()
    noise = torch.randn(x0.shape, generator=replay, dtype=torch.float64)
    alpha, sigma = path.alpha(t)[:, None], path.sigma(t)[:, None]
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["x_t"], alpha * x0 + sigma * noise)
    target = {"velocity": path.d_alpha(t)[:, None] * x0 + path.d_sigma(t)[:, None] * noise, "noise": noise,
              "score": -noise / sigma}[prediction]
    weight = sigma**2 if prediction == "score" else torch.ones_like(sigma)
    expected = (weight * (model(seen["x_t"], t) - target) ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_flow_matching_loss_has_its_closed_form(impl):
    """With model(x_t, t) = x_t on the linear path, the error is (2 - t) x0 - (1 - t) eps; for x0 ~ N(0, s^2) and
    uniform t its mean square is s^2 E(2 - t)^2 + E(1 - t)^2 = 7 s^2 / 3 + 1 / 3."""
    s = 0.5
    x0 = s * torch.randn(400_000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = impl.flow_matching_loss(lambda x_t, t: x_t, x0, Path("linear"), generator=torch.Generator().manual_seed(2))
    assert abs(loss.item() - (7 * s**2 / 3 + 1 / 3)) < 0.01
    zero_loss = impl.flow_matching_loss(lambda x_t, t: torch.zeros_like(x_t), x0, Path("linear"), "noise",
                                        generator=torch.Generator().manual_seed(3))
    assert abs(zero_loss.item() - 1.0) < 0.01  # E eps^2
    # the score loss is weighted by sigma_t^2 = t^2, so a zero model scores E t^2 E eps^2 / t^2 = 1 too
    score_loss = impl.flow_matching_loss(lambda x_t, t: torch.zeros_like(x_t), x0, Path("linear"), "score",
                                         generator=torch.Generator().manual_seed(4))
    assert abs(score_loss.item() - 1.0) < 0.01


def test_flow_matching_loss_is_lowest_for_the_exact_velocity(impl, mixture):
    """Lipman et al. 2023, Theorem 2: E[u | x_t] minimises the loss, and any other field v scores more by
    E || v - E[u | x_t] ||^2. The exact velocity of the mixture comes from its exact denoiser (written out here)."""
    path = Path("linear")

    def exact(x_t, t):  # on the linear path: E[u | x_t] = (x_t - E[x0 | x_t]) / t
        return (x_t - mixture.denoiser(x_t / (1 - t[:, None]), t / (1 - t))) / t[:, None]

    x0 = mixture.sample(100_000, torch.Generator().manual_seed(3)).double()
    shift = torch.tensor([0.3, -0.2], dtype=torch.float64)
    best = impl.flow_matching_loss(exact, x0, path, generator=torch.Generator().manual_seed(4))
    shifted = impl.flow_matching_loss(lambda x_t, t: exact(x_t, t) + shift, x0, path,
                                      generator=torch.Generator().manual_seed(4))
    # the same draws, so the difference is E ||shift||^2 / 2 (the mean over 2 coordinates) up to a cross term
    # 2 E <shift, E[u | x_t] - u> / 2 of mean 0 and standard deviation about 0.0013 here
    assert abs((shifted - best).item() - shift.pow(2).mean().item()) < 0.01
    assert best < shifted


def _uniform_time_sigmas(path, steps, sigma_max=80.0):
    t_max = path.time_from_edm_sigma(torch.tensor(sigma_max, dtype=torch.float64))
    return path.edm_sigma(torch.linspace(float(t_max), 0, steps + 1, dtype=torch.float64))


@pytest.mark.parametrize("name", PATHS)
def test_sample_flow_euler_follows_a_gaussians_exact_flow(impl, name):
    """For data N(0, s^2 I) the denoiser is s^2 / (s^2 + sigma^2) x and the flow ODE's solution in EDM's coordinates
    is x(sigma) = x(sigma_max) sqrt((s^2 + sigma^2) / (s^2 + sigma_max^2)), on every path: Euler's error shrinks
    like one over the number of steps."""
    s, path = 0.7, Path(name)
    denoiser = lambda x, sigma: s**2 / (s**2 + sigma[:, None] ** 2) * x  # noqa: E731
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    errors = []
    for steps in (100, 400):
        sigmas = _uniform_time_sigmas(path, steps)
        x = noise * (s**2 + sigmas[0] ** 2).sqrt()
        exact = x * s / (s**2 + sigmas[0] ** 2).sqrt()
        errors.append(((impl.sample_flow_euler(denoiser, x, sigmas, path=path) - exact).abs().max() / s).item())
    assert errors[1] < 0.01 and errors[1] < errors[0] / 2, errors


def test_sample_flow_euler_is_exact_in_one_step_for_a_single_point(impl):
    """One data point c: the linear path from any noise to c is a straight line, which one Euler step follows."""
    c = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    denoiser = lambda x, sigma: c.expand_as(x)  # noqa: E731
    x = 7.0 * torch.randn(16, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for sigmas in (torch.tensor([7.0, 0.0], dtype=torch.float64), torch.tensor([7.0, 2.0, 0.5], dtype=torch.float64)):
        # from x = c + 7 eps the straight line reaches c + sigmas[-1] eps
        expected = c + sigmas[-1] * (x - c) / 7.0
        torch.testing.assert_close(impl.sample_flow_euler(denoiser, x, sigmas, path=Path("linear")), expected)


@pytest.mark.parametrize("name", PATHS)
def test_sample_flow_euler_with_the_exact_velocity_reaches_the_mixture(impl, name, mixture):
    sigmas = _uniform_time_sigmas(Path(name), 200)
    noise = torch.randn(8000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = impl.sample_flow_euler(mixture.denoiser, noise * sigmas[0], sigmas, path=Path(name))
    errors = distribution_errors(samples, mixture)
    assert errors["mean"] < 0.05 and errors["covariance"] < 0.08 and errors["sliced_wasserstein"] < 0.05, errors


def test_sample_flow_euler_on_the_linear_path_is_ddim_and_sigma_space_euler(impl, mixture):
    """Liu et al. 2023 / SiT: one Euler step in t on the linear path is one Euler step in sigma = t / (1 - t), which is
    one deterministic DDIM step (Song et al. 2021, Eq. 12 with eta = 0), in float64."""
    schedule = alphas_cumprod(linear_betas())
    timesteps = respace_timesteps(1000, 20)
    sigmas = sigmas_from_timesteps(schedule, timesteps)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = x_T * (1 + sigmas[0] ** 2).sqrt()
    flow = impl.sample_flow_euler(mixture.denoiser, x, sigmas, path=Path("linear"))
    torch.testing.assert_close(flow, sample_euler(mixture.denoiser, x, sigmas), rtol=1e-10, atol=1e-10)
    ddim = ddim_sample(network_from_denoiser(mixture.denoiser, schedule), x_T, schedule, timesteps)
    torch.testing.assert_close(flow, ddim, rtol=1e-10, atol=1e-10)
