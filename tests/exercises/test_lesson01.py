"""Lesson 01 checks (DDPM), run against minisora by default, against your stubs with --impl=exercises and against the
worked solutions with --impl=solutions.

The schedule and the forward process are held to closed forms, the posterior to Bayes' rule written as added
precisions (float64). Algorithm 1's loss is replayed in float64 on the same generator (value and gradients), and its
expectation under the exact minimiser for Gaussian data is held to the closed-form posterior variance of its target.
Algorithm 2 is replayed line by line in float64 on the same generator, is one sampler for eps-, x0- and v-networks
of the same denoiser, and with the exact denoiser reproduces the skewed mixture within the limits that exact samples
of 10000 points allow (tests/exercises/test_lesson02.py states them)."""
import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion.ddpm import network_from_denoiser
from minisora.diffusion.schedules import alphas_cumprod, linear_betas
from tiny_datasets.toy2d import GaussianMixture

pytestmark = pytest.mark.lesson01

SCHEDULE = alphas_cumprod(linear_betas(1000))  # float64 (1000,)
# exact samples of the skewed mixture (n = 10000, 40 draws) give at most: mean 0.032, covariance 0.042, sliced W 0.032
LIMITS = {"mean": 0.045, "covariance": 0.06, "sliced_wasserstein": 0.045}


def _normal(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_linear_betas_match_ho_et_al(impl):
    betas = impl.linear_betas()
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    differences = betas.diff()
    torch.testing.assert_close(differences, torch.full_like(differences, (0.02 - 1e-4) / 999))
    assert impl.linear_betas(10, 0.1, 0.2)[5].item() == pytest.approx(0.1 + 5 * 0.1 / 9)


def test_alphas_cumprod_is_the_running_product(impl):
    betas = torch.tensor([0.1, 0.2, 0.5, 0.3], dtype=torch.float64)
    expected, running = [], 1.0
    for beta in betas.tolist():
        running *= 1 - beta
        expected.append(running)
    torch.testing.assert_close(impl.alphas_cumprod(betas), torch.tensor(expected, dtype=torch.float64))


def test_q_sample_is_linear_in_data_and_noise(impl):
    x0, noise = _normal(5, 3, seed=0), _normal(5, 3, seed=1)
    t = torch.tensor([0, 10, 200, 600, 999])
    scale = SCHEDULE[t, None]
    torch.testing.assert_close(impl.q_sample(x0, t, SCHEDULE, torch.zeros_like(noise)), scale.sqrt() * x0)
    torch.testing.assert_close(impl.q_sample(torch.zeros_like(x0), t, SCHEDULE, noise), (1 - scale).sqrt() * noise)
    torch.testing.assert_close(impl.q_sample(x0, t, SCHEDULE, noise), scale.sqrt() * x0 + (1 - scale).sqrt() * noise)


def test_q_sample_of_images_broadcasts_per_sample(impl):
    x0 = torch.ones(2, 3, 4, 4, dtype=torch.float64)
    out = impl.q_sample(x0, torch.tensor([0, 999]), SCHEDULE, torch.zeros_like(x0))
    assert out.shape == x0.shape
    assert torch.allclose(out[0], SCHEDULE[0].sqrt() * x0[0]) and torch.allclose(out[1], SCHEDULE[999].sqrt() * x0[1])


def test_q_posterior_is_bayes_rule(impl):
    """The posterior of two Gaussians, q(x_{t-1} | x_0) and q(x_t | x_{t-1}), by adding precisions."""
    x0, x_t = _normal(4, 2, seed=2), _normal(4, 2, seed=3)
    t = torch.tensor([1, 5, 500, 999])
    previous, current = SCHEDULE[t - 1, None], SCHEDULE[t, None]
    alpha = current / previous
    precision = 1 / (1 - previous) + alpha / (1 - alpha)
    expected_mean = (previous.sqrt() * x0 / (1 - previous) + alpha.sqrt() * x_t / (1 - alpha)) / precision
    mean, variance = impl.q_posterior(x0, x_t, t, SCHEDULE)
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(variance.expand_as(mean), (1 / precision).expand_as(mean))


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_predict_x0_inverts_the_forward_process(impl, prediction):
    alpha_bar = SCHEDULE[torch.tensor([3, 300, 900]), None]
    x0, noise = _normal(3, 2, seed=4), _normal(3, 2, seed=5)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise
    output = {"epsilon": noise, "x0": x0, "v": alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0}[prediction]
    torch.testing.assert_close(impl.predict_x0(x_t, output, alpha_bar, prediction), x0)


def _replay_algorithm_1(model, x0, prediction, generator):
    """Algorithm 1's loss written out: t uniform, eps standard normal (in that order), Eq. 4, the squared error."""
    t = torch.randint(len(SCHEDULE), (len(x0),), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    alpha_bar = SCHEDULE[t].reshape(-1, *[1] * (x0.dim() - 1)).to(x0.dtype)
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    target = {"epsilon": eps, "x0": x0, "v": alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0}[prediction]
    return ((model(x_t, t) - target) ** 2).mean()


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_ddpm_loss_replays_algorithm_1(impl, prediction):
    """On the same generator the loss and its gradients with respect to every parameter are Algorithm 1's, replayed
    in float64, for a small MLP on 2D points."""
    from minisora.models.mlp import ToyMLP, ToyMLPConfig

    torch.manual_seed(0)
    model = ToyMLP(ToyMLPConfig(hidden=16, depth=2)).double()
    x0 = _normal(64, 2, seed=6)
    loss = impl.ddpm_loss(model, x0, SCHEDULE, prediction, generator=torch.Generator().manual_seed(7))
    expected = _replay_algorithm_1(model, x0, prediction, torch.Generator().manual_seed(7))
    assert loss.dim() == 0
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    parameters = list(model.parameters())
    for yours, replayed in zip(torch.autograd.grad(loss, parameters), torch.autograd.grad(expected, parameters)):
        torch.testing.assert_close(yours, replayed, rtol=1e-10, atol=1e-12)


def test_ddpm_loss_on_images_weights_each_sample_by_its_own_timestep(impl):
    """Image-shaped data (B, C, H, W) and a network that uses t: each sample is noised at its own timestep."""
    torch.manual_seed(1)
    convolution = torch.nn.Conv2d(3, 3, 1).double()

    def model(x_t, t):
        return convolution(x_t) * (1 + t.reshape(-1, 1, 1, 1) / 1000)

    x0 = _normal(8, 3, 4, 4, seed=8)
    loss = impl.ddpm_loss(model, x0, SCHEDULE, "v", generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(loss, _replay_algorithm_1(model, x0, "v", torch.Generator().manual_seed(9)),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_ddpm_loss_expectation_is_the_posterior_variance_of_its_target(impl, prediction):
    """For data N(0, s^2 I) the network E[target | x_t] is known exactly (a Gaussian denoiser), and the least loss it
    can reach is the posterior variance of the target, averaged over the uniform t (lesson §6): for x_t = a x_0 + b eps
    with V = a^2 s^2 + b^2, Var[eps | x_t] = 1 - b^2 / V, Var[x_0 | x_t] = s^2 b^2 / V, and for v = a eps - b x_0,
    Var[v | x_t] = a^2 + b^2 s^2 - (a b (1 - s^2))^2 / V. Monte Carlo over 40000 points, within 5 standard errors."""
    s, n = 0.5, 40_000
    gaussian = GaussianMixture(torch.zeros(1, 2), s**2 * torch.eye(2)[None])
    model = network_from_denoiser(gaussian.denoiser, SCHEDULE, prediction)
    x0 = s * _normal(n, 2, seed=10)
    loss = impl.ddpm_loss(model, x0, SCHEDULE, prediction, generator=torch.Generator().manual_seed(11))

    a, b = SCHEDULE.sqrt(), (1 - SCHEDULE).sqrt()  # (T,)
    V = a**2 * s**2 + b**2
    variance = {"epsilon": 1 - b**2 / V, "x0": s**2 * b**2 / V,
                "v": a**2 + b**2 * s**2 - (a * b * (1 - s**2)) ** 2 / V}[prediction]  # (T,) per coordinate
    expected = variance.mean()
    # a sample's loss is variance_t times the mean of two squared standard normals: its second moment is 2 variance_t^2
    standard_error = ((2 * (variance**2).mean() - expected**2) / n).sqrt()
    assert abs(loss.item() - expected.item()) < 5 * standard_error.item(), \
        f"loss {loss.item():.5f}, expected {expected.item():.5f} +- {standard_error.item():.5f}"


def _replay_algorithm_2(model, x, variance, generator):
    """Algorithm 2 of Ho et al. 2020 line by line, in float64, for an eps-network: for t = T..1,
    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)) / sqrt(alpha_t) + sigma_t z, with z = 0 at t = 1."""
    previous = torch.cat([torch.ones(1, dtype=torch.float64), SCHEDULE[:-1]])
    for step in reversed(range(len(SCHEDULE))):
        alpha_bar, alpha_bar_previous = SCHEDULE[step], previous[step]
        alpha = alpha_bar / alpha_bar_previous
        beta = 1 - alpha
        eps = model(x, torch.full((len(x),), step, dtype=torch.long))
        mean = (x - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()
        if step == 0:
            return mean
        sigma_squared = beta if variance == "beta" else (1 - alpha_bar_previous) / (1 - alpha_bar) * beta
        x = mean + sigma_squared.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)


@pytest.mark.parametrize("variance", ["posterior", "beta"])
def test_ddpm_sample_replays_algorithm_2(impl, variance):
    """Images (B, C, H, W) and a network that depends on x_t and t in an arbitrary way: on the same generator the
    sampler gives Algorithm 2's numbers, for both choices of sigma_t^2 (Section 3.2)."""

    def model(x_t, t):
        return 0.5 * torch.tanh(x_t) + 1e-3 * t.reshape(-1, 1, 1, 1)

    x_T = _normal(3, 2, 4, 4, seed=12)
    yours = impl.ddpm_sample(model, x_T, SCHEDULE, "epsilon", variance, generator=torch.Generator().manual_seed(13))
    replayed = _replay_algorithm_2(model, x_T, variance, torch.Generator().manual_seed(13))
    assert yours.shape == x_T.shape
    torch.testing.assert_close(yours, replayed, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_ddpm_sample_is_one_sampler_for_every_prediction(impl, mixture, prediction):
    """An x0- or v-network of the exact mixture denoiser is the same network as its eps-network, so the samples are
    Algorithm 2's for the eps-network, draw for draw (float64)."""
    x_T = _normal(32, 2, seed=14)
    network = network_from_denoiser(mixture.denoiser, SCHEDULE, prediction)
    yours = impl.ddpm_sample(network, x_T, SCHEDULE, prediction, generator=torch.Generator().manual_seed(15))
    replayed = _replay_algorithm_2(network_from_denoiser(mixture.denoiser, SCHEDULE), x_T, "posterior",
                                   torch.Generator().manual_seed(15))
    torch.testing.assert_close(yours, replayed, rtol=1e-8, atol=1e-8)


def test_ddpm_sample_reproduces_the_mixture(impl, mixture):
    """With the exact denoiser, Algorithm 2's 1000 steps turn 10000 standard normal points into the mixture: the
    errors of the mean, of the covariance and the sliced Wasserstein distance are within what exact samples reach."""
    network = network_from_denoiser(mixture.denoiser, SCHEDULE)
    samples = impl.ddpm_sample(network, _normal(10000, 2, seed=16), SCHEDULE, generator=torch.Generator().manual_seed(17))
    errors = distribution_errors(samples, mixture)
    for key, limit in LIMITS.items():
        assert errors[key] < limit, f"{key} error {errors[key]:.4f} >= {limit} ({errors})"
