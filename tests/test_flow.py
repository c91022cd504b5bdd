"""SiT's interpolants and flow matching: derivatives, conversions, the exact velocity field of a Gaussian mixture
driving every flow sampler, and the equivalence of Euler on the rectified-flow path with DDIM (float64)."""
import pytest
import torch

from conftest import distribution_errors
from minisora.diffusion import get_sampler
from minisora.diffusion.ddim import ddim_sample
from minisora.diffusion.ddpm import network_from_denoiser
from minisora.diffusion.flow import (FLOW_PREDICTIONS, PATHS, FlowDenoiser, Path, diffusion_coefficient,
                                     flow_matching_loss, flow_target, sample_flow_euler, sample_flow_heun,
                                     sample_flow_sde, sample_times, velocity_from_denoiser, x0_from_prediction)
from minisora.diffusion.samplers import sample_euler
from minisora.diffusion.schedules import (alphas_cumprod, karras_sigmas, linear_betas, respace_timesteps,
                                          sigmas_from_timesteps)
from minisora.diffusion.score_sde import VPSDE

TIMES = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)


@pytest.mark.parametrize("name", PATHS)
def test_path_derivatives_match_finite_differences(name):
    path, h = Path(name), 1e-6
    torch.testing.assert_close(path.d_alpha(TIMES), (path.alpha(TIMES + h) - path.alpha(TIMES - h)) / (2 * h))
    torch.testing.assert_close(path.d_sigma(TIMES), (path.sigma(TIMES + h) - path.sigma(TIMES - h)) / (2 * h))
    torch.testing.assert_close(path.time_from_edm_sigma(path.edm_sigma(TIMES)), TIMES)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("prediction", FLOW_PREDICTIONS)
def test_every_prediction_gives_back_x0(name, prediction):
    path = Path(name)
    x0, noise = torch.randn(19, 2, dtype=torch.float64), torch.randn(19, 2, dtype=torch.float64)
    x_t = path.alpha(TIMES)[:, None] * x0 + path.sigma(TIMES)[:, None] * noise
    target = flow_target(path, x0, noise, TIMES, prediction)
    torch.testing.assert_close(x0_from_prediction(path, x_t, TIMES, target, prediction), x0)


@pytest.mark.parametrize("name", PATHS)
def test_flow_denoiser_of_the_exact_velocity_is_the_exact_denoiser(name, mixture):
    path = Path(name)
    velocity_network = lambda x_t, t: velocity_from_denoiser(mixture.denoiser, path, x_t, t, None)[0]  # noqa
    sigma = torch.tensor([0.05, 0.5, 3.0, 40.0], dtype=torch.float64)
    x = torch.randn(4, 2, dtype=torch.float64) * (1 + sigma[:, None])
    round_trip = FlowDenoiser(velocity_network, path, "velocity")(x, sigma)
    torch.testing.assert_close(round_trip, mixture.denoiser(x, sigma))


def test_sbdm_diffusion_of_the_vp_path_is_beta():
    """The SBDM choice of w_t makes SiT's SDE the score SDE's own: for the VP path, w_t = g(t)^2 = beta(t)."""
    torch.testing.assert_close(diffusion_coefficient(Path("vp"), TIMES, "sbdm"), VPSDE().beta(TIMES))


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("sampler, steps, options", [
    (sample_flow_euler, 250, {}), (sample_flow_heun, 40, {}),
    (sample_flow_sde, 300, {"diffusion": "sigma"}), (sample_flow_sde, 300, {"diffusion": "sbdm"})],
    ids=["euler", "heun", "sde-sigma", "sde-sbdm"])
def test_flow_samplers_reproduce_the_mixture(name, sampler, steps, options, mixture):
    sigmas = karras_sigmas(steps, sigma_min=0.002, sigma_max=80.0).double()
    noise = torch.randn(10000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = sampler(mixture.denoiser, noise * sigmas[0], sigmas, path=Path(name),
                      generator=torch.Generator().manual_seed(1), **options)
    errors = distribution_errors(samples, mixture)
    assert errors["mean"] < 0.045 and errors["covariance"] < 0.06 and errors["sliced_wasserstein"] < 0.045, errors


def test_euler_on_the_rectified_flow_path_is_ddim_and_sigma_space_euler(mixture):
    """Liu et al. 2023 / SiT: the linear path's ODE in t is EDM's ODE in sigma = t / (1 - t); one Euler step in t is
    one Euler step in sigma, which is one deterministic DDIM step."""
    schedule = alphas_cumprod(linear_betas())
    timesteps = respace_timesteps(1000, 20)
    sigmas = sigmas_from_timesteps(schedule, timesteps)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = x_T * (1 + sigmas[0] ** 2).sqrt()
    flow = sample_flow_euler(mixture.denoiser, x, sigmas, path=Path("linear"))
    torch.testing.assert_close(flow, sample_euler(mixture.denoiser, x, sigmas), rtol=1e-10, atol=1e-10)
    ddim = ddim_sample(network_from_denoiser(mixture.denoiser, schedule), x_T, schedule, timesteps)
    torch.testing.assert_close(flow, ddim, rtol=1e-10, atol=1e-10)


def test_time_distributions():
    uniform = sample_times(200_000, generator=torch.Generator().manual_seed(0))
    logit_normal = sample_times(200_000, "logit_normal", generator=torch.Generator().manual_seed(0))
    shifted = sample_times(200_000, "logit_normal", shift=3.0, generator=torch.Generator().manual_seed(0))
    assert abs(uniform.mean().item() - 0.5) < 0.005 and abs(logit_normal.median().item() - 0.5) < 0.005
    assert logit_normal.std() < uniform.std()  # concentrated in the middle
    assert abs(shifted.median().item() - 0.75) < 0.005  # shift 3 maps the median 1/2 to 3/4
    with pytest.raises(ValueError, match="uniform"):
        sample_times(4, "beta")


def test_a_share_of_unshifted_times_mixes_the_two_distributions():
    # the mixture's CDF: share Phi(logit x) + (1 - share) Phi(logit(x / (s - (s - 1) x))), the second term
    # inverting the shift t' = s t / (1 + (s - 1) t)
    shift, share = 6.0, 0.3
    draws = sample_times(400_000, "logit_normal", shift, torch.Generator().manual_seed(0), unshifted_share=share)
    normal = torch.distributions.Normal(0.0, 1.0)
    for x in (0.1, 0.3, 0.5, 0.9):
        unshifted, shifted = torch.tensor(x), torch.tensor(x / (shift - (shift - 1) * x))
        expected = share * normal.cdf(torch.logit(unshifted)) + (1 - share) * normal.cdf(torch.logit(shifted))
        assert abs((draws < x).double().mean().item() - expected.item()) < 0.003, x
    plain = sample_times(1000, "logit_normal", shift, torch.Generator().manual_seed(1))
    assert torch.equal(plain, sample_times(1000, "logit_normal", shift, torch.Generator().manual_seed(1),
                                           unshifted_share=0.0))  # no share: the same draws as before it existed
    with pytest.raises(ValueError, match="unshifted_share.*1.5"):
        sample_times(4, "logit_normal", shift, unshifted_share=1.5)


def test_max_time_scales_the_times_into_the_clean_end():
    # an expert for the low noise levels: uniform times on (0, 0.4], so P(t < x) = x / 0.4 there
    draws = sample_times(200_000, "uniform", generator=torch.Generator().manual_seed(0), max_time=0.4)
    assert 0 < draws.min() and draws.max() <= 0.4
    for x in (0.05, 0.2, 0.35):
        assert abs((draws < x).double().mean().item() - x / 0.4) < 0.004, x
    with pytest.raises(ValueError, match="max_time.*1.5"):
        sample_times(4, max_time=1.5)


@pytest.mark.parametrize("min_sigma", [0.05, 0.3])
def test_the_data_prediction_loss_weight_is_one_over_sigma_squared_capped(min_sigma):
    # a data prediction off by 0.1 everywhere costs 0.01 (1 + (1 - t) / max(t, min_sigma))^2 on the linear path
    x0 = torch.randn(4096, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = flow_matching_loss(lambda x_t, t: x0 + 0.1, x0, Path("linear"), "data", "logit_normal", 1.0,
                              torch.Generator().manual_seed(5), data_min_sigma=min_sigma)
    t = sample_times(4096, "logit_normal", 1.0, torch.Generator().manual_seed(5)).double()
    expected = 0.01 * ((1 + (1 - t) / t.clamp(min=min_sigma)) ** 2).mean()
    assert torch.allclose(loss, expected, rtol=1e-9)


@pytest.mark.parametrize("prediction", FLOW_PREDICTIONS)
def test_the_exact_model_minimises_the_flow_matching_loss(prediction, mixture):
    path = Path("linear")

    def exact(x_t, t):
        velocity, x0, noise = velocity_from_denoiser(mixture.denoiser, path, x_t, t, None)
        return flow_target(path, x0, noise, t, prediction)

    x0 = mixture.sample(50_000, torch.Generator().manual_seed(3)).double()
    losses = [flow_matching_loss(model, x0, path, prediction, generator=torch.Generator().manual_seed(4))
              for model in (exact, lambda x_t, t: 1.05 * exact(x_t, t))]
    assert losses[0] < losses[1]


def test_a_given_noise_is_the_coupling_the_loss_trains_on():
    """Reflow (Liu et al. 2023): with noise given, x_t = (1 - t) x_0 + t eps uses it, and the times are drawn as before."""
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    seen = {}

    def model(x_t, t):
        seen["x_t"], seen["t"] = x_t, t
        return torch.zeros_like(x_t)

    loss = flow_matching_loss(model, x0, Path("linear"), generator=torch.Generator().manual_seed(2), noise=noise)
    t = sample_times(64, generator=torch.Generator().manual_seed(2)).double()
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["x_t"], (1 - t[:, None]) * x0 + t[:, None] * noise)
    torch.testing.assert_close(loss, (noise - x0).pow(2).mean())  # the zero model against u = eps - x_0
    with pytest.raises(ValueError, match="shaped like x0"):
        flow_matching_loss(model, x0, Path("linear"), noise=noise[:4])


def test_flow_samplers_are_registered():
    for name in ("flow_euler", "flow_heun", "flow_sde"):
        assert callable(get_sampler(name))


@pytest.mark.parametrize("last_step", ["mean", "euler"])
def test_every_last_step_of_the_sde_reproduces_the_mixture(last_step, mixture):
    """SiT's last-step options differ only in the final step into t = 0; each still lands on the data."""
    sigmas = karras_sigmas(300, sigma_min=0.002, sigma_max=80.0).double()
    noise = torch.randn(10000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def run(option):
        return sample_flow_sde(mixture.denoiser, noise * sigmas[0], sigmas, path=Path("linear"), last_step=option,
                               generator=torch.Generator().manual_seed(1))

    samples = run(last_step)
    errors = distribution_errors(samples, mixture)
    assert errors["mean"] < 0.045 and errors["covariance"] < 0.06 and errors["sliced_wasserstein"] < 0.045, errors
    difference = (samples - run("tweedie")).abs().max()
    assert 0 < difference < 0.05  # a different last step, from the same trajectory
    with pytest.raises(ValueError, match="last_step"):
        run("none")
