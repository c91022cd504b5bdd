"""Lesson 06 checks (video data, the causal VAE), against minisora by default and your stubs with --impl=exercises."""
import math

import pytest
import torch

pytestmark = pytest.mark.lesson06


def test_bouncing_reflects_in_the_walls(impl):
    assert impl.bounce_between_walls(0.5, 0.1, 0.0, 1.0) == pytest.approx((0.6, 0.1))
    assert impl.bounce_between_walls(0.95, 0.1, 0.0, 1.0) == pytest.approx((0.95, -0.1))  # 1.05 mirrored in 1.0
    assert impl.bounce_between_walls(0.25, -0.3, 0.1, 0.9) == pytest.approx((0.25, 0.3))  # -0.05 mirrored in 0.1
    # a step longer than the room reflects more than once: 0.5 + 1.7 = 2.2 -> 1 - 1.2 -> -0.2 -> 0.2, moving right
    assert impl.bounce_between_walls(0.5, 1.7, 0.0, 1.0) == pytest.approx((0.2, 1.7))


def test_frame_indices_by_stride_and_by_rate(impl):
    assert impl.frame_indices(0, 5, 1) == [0, 1, 2, 3, 4]
    assert impl.frame_indices(3, 4, 3) == [3, 6, 9, 12]
    assert impl.frame_indices(0, 5, 24 / 10) == [0, 2, 5, 7, 10]  # 24 fps read at 10 fps
    assert impl.frame_indices(1, 4, 0.5) == [1, 1, 2, 3]  # a higher rate repeats frames (0.5 and 1.5 round to even)


def test_psnr_of_known_errors(impl):
    video = torch.zeros(3, 2, 4, 4)
    assert impl.psnr(video, video + 0.2) == pytest.approx(10 * math.log10(4 / 0.04))
    noisy = video.clone()
    noisy[0, 0, 0, 0] = 2.0  # one value off by 2: MSE = 4 / 96
    assert impl.psnr(video, noisy) == pytest.approx(10 * math.log10(96))
    assert impl.psnr(video, video) == float("inf")


def test_causal_padding_repeats_the_first_frame_before_the_clip(impl):
    video = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).reshape(2, 3, 4, 2, 2)
    padded = impl.causal_time_padding(video, 2)
    assert padded.shape == (2, 3, 6, 2, 2)
    assert torch.equal(padded[:, :, 2:], video)
    assert torch.equal(padded[:, :, 0], video[:, :, 0]) and torch.equal(padded[:, :, 1], video[:, :, 0])
    # so a kernel-3 convolution over the padded clip gives output t from frames t-2 .. t only
    convolution = torch.nn.Conv3d(3, 1, (3, 1, 1))
    changed = video.clone()
    changed[:, :, 3] += 1.0
    before, after = convolution(impl.causal_time_padding(video, 2)), convolution(impl.causal_time_padding(changed, 2))
    assert torch.equal(before[:, :, :3], after[:, :, :3]) and not torch.equal(before[:, :, 3], after[:, :, 3])


def test_reparameterised_samples_have_the_posteriors_moments_and_gradients(impl):
    mean = torch.tensor([0.5, -1.0], requires_grad=True)
    log_variance = torch.tensor([0.0, math.log(0.25)], requires_grad=True)
    noise = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    z = impl.reparameterize(mean, log_variance, noise)
    assert torch.allclose(z.mean(0), mean.detach(), atol=0.01)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 0.5]), atol=0.01)
    z.sum().backward()  # dz/dmu = 1 per sample; dz/dlogvar = eps sigma / 2
    assert torch.allclose(mean.grad, torch.full((2,), 200_000.0))
    expected = (noise * torch.tensor([1.0, 0.5]) / 2).sum(0)
    assert torch.allclose(log_variance.grad, expected, rtol=1e-4, atol=1e-2)


def test_gaussian_kl_against_torch_distributions(impl):
    mean = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    log_variance = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * log_variance).exp()),
                                                  torch.distributions.Normal(0.0, 1.0))
    torch.testing.assert_close(impl.gaussian_kl(mean, log_variance), reference)
    assert torch.equal(impl.gaussian_kl(torch.zeros(3), torch.zeros(3)), torch.zeros(3))
