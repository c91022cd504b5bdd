"""Lesson 09 checks (interpolants, flow matching), against minisora by default and your stubs with --impl=exercises."""
import pytest
import torch

from minisora.diffusion.flow import PATHS, Path

pytestmark = pytest.mark.lesson09


@pytest.mark.parametrize("name", PATHS)
def test_the_velocity_target_is_the_time_derivative_of_the_path(impl, name):
    path = Path(name)
    x0, noise = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    t, h = torch.linspace(0.1, 0.9, 6, dtype=torch.float64), 1e-6

    def x_at(time):
        return path.alpha(time)[:, None] * x0 + path.sigma(time)[:, None] * noise

    finite_difference = (x_at(t + h) - x_at(t - h)) / (2 * h)
    torch.testing.assert_close(impl.flow_target(path, x0, noise, t, "velocity"), finite_difference, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(impl.flow_target(path, x0, noise, t, "noise"), noise)
    torch.testing.assert_close(impl.flow_target(path, x0, noise, t, "score"), -noise / path.sigma(t)[:, None])


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("prediction", ["velocity", "noise", "score"])
def test_every_exact_prediction_gives_back_x0(impl, name, prediction):
    path = Path(name)
    x0, noise = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95], dtype=torch.float64)
    x_t = path.alpha(t)[:, None] * x0 + path.sigma(t)[:, None] * noise
    # the exact targets, written out here rather than taken from the code under test
    d_alpha, d_sigma, sigma = path.d_alpha(t)[:, None], path.d_sigma(t)[:, None], path.sigma(t)[:, None]
    output = {"velocity": d_alpha * x0 + d_sigma * noise, "noise": noise, "score": -noise / sigma}[prediction]
    torch.testing.assert_close(impl.x0_from_prediction(path, x_t, t, output, prediction), x0)


def test_time_distributions_and_the_shift(impl):
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
