"""Lesson 06 checks (video data, the causal VAE and its loss), against minisora by default and your stubs with
--impl=exercises."""
import math

import pytest
import torch

from minisora.models.vae import VideoVAE, VideoVAEConfig

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


# the VAE's loss (exercise 7), checked against a computation by hand from the encoder's and decoder's own layers
LATENT_CHANNELS = 4


def tiny_vae() -> VideoVAE:
    torch.manual_seed(0)
    return VideoVAE(VideoVAEConfig(channels=8, latent_channels=LATENT_CHANNELS)).double()


def clips_and_noise(seed: int = 0, batch: int = 2):
    generator = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, 3, 5, 16, 16, dtype=torch.float64, generator=generator) * 2 - 1
    noise = torch.randn(batch, LATENT_CHANNELS, 2, 4, 4, dtype=torch.float64, generator=generator)  # 1 + 4/4 frames, 16/4
    return video, noise


def loss_by_hand(vae, video, kl_weight, reconstruction, noise):
    """z = mu + exp(log sigma^2 / 2) eps from the encoder's raw output, then the two terms per pixel value."""
    moments = vae.encoder(video)  # (B, 2z, t, h, w): means, then log-variances
    mean, log_variance = moments[:, :LATENT_CHANNELS], moments[:, LATENT_CHANNELS:]
    z = mean + torch.exp(log_variance / 2) * noise
    error = vae.decoder(z) - video
    reconstruction_error = error.abs().mean() if reconstruction == "l1" else (error * error).mean()
    # KL(N(mu, s^2) || N(0, 1)) = E_q[log q - log p] = -log s - 1/2 + (mu^2 + s^2) / 2, summed over the latents
    kl = (-0.5 * log_variance - 0.5 + 0.5 * (mean * mean + log_variance.exp())).sum() / video.numel()
    return reconstruction_error + kl_weight * kl, reconstruction_error, kl


@pytest.mark.parametrize("reconstruction", ["l1", "l2"])
def test_vae_loss_is_reconstruction_plus_weighted_kl_per_pixel_value(impl, reconstruction):
    vae = tiny_vae()
    video, noise = clips_and_noise()
    loss, terms = impl.vae_loss(vae, video, 0.3, reconstruction, noise=noise)
    expected, expected_reconstruction, expected_kl = loss_by_hand(vae, video, 0.3, reconstruction, noise)
    torch.testing.assert_close(loss, expected)
    assert terms["reconstruction"] == pytest.approx(expected_reconstruction.item(), rel=1e-9)
    assert terms["kl"] == pytest.approx(expected_kl.item(), rel=1e-9)
    assert isinstance(terms["reconstruction"], float) and isinstance(terms["kl"], float)
    # per pixel value: the same clips twice, with the same noise twice, give the same loss
    doubled, _ = impl.vae_loss(vae, torch.cat([video, video]), 0.3, reconstruction, noise=torch.cat([noise, noise]))
    torch.testing.assert_close(doubled, expected)


def test_vae_loss_is_l1_by_default_and_refuses_an_unknown_reconstruction(impl):
    vae = tiny_vae()
    video, noise = clips_and_noise(seed=1)
    torch.testing.assert_close(impl.vae_loss(vae, video, 0.01, noise=noise)[0],
                               loss_by_hand(vae, video, 0.01, "l1", noise)[0])
    with pytest.raises(ValueError, match="l3"):
        impl.vae_loss(vae, video, 0.01, "l3", noise=noise)


def test_vae_loss_gradients_reach_the_variance_through_the_sample(impl):
    """With no KL weight, only the sample z = mu + sigma eps ties the log-variance to the loss: a loss that decodes
    the mean alone gives the log-variance half of the encoder's last layer no gradient."""
    vae = tiny_vae()
    video, noise = clips_and_noise(seed=2)
    weight = vae.encoder.conv_out.conv.weight  # (2z, C, 3, 3, 3): the means' filters, then the log-variances'
    for kl_weight in (0.0, 0.3):
        loss, _ = impl.vae_loss(vae, video, kl_weight, "l2", noise=noise)
        (gradient,) = torch.autograd.grad(loss, weight)
        (expected,) = torch.autograd.grad(loss_by_hand(vae, video, kl_weight, "l2", noise)[0], weight)
        torch.testing.assert_close(gradient, expected)
        assert gradient[LATENT_CHANNELS:].abs().sum() > 0


def test_vae_loss_draws_its_noise_from_the_generator(impl):
    vae = tiny_vae()
    video, _ = clips_and_noise(seed=3)
    drawn, _ = impl.vae_loss(vae, video, 0.3, "l1", torch.Generator().manual_seed(5))
    noise = torch.randn(2, LATENT_CHANNELS, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(drawn, loss_by_hand(vae, video, 0.3, "l1", noise)[0])
    other, _ = impl.vae_loss(vae, video, 0.3, "l1", torch.Generator().manual_seed(6))
    assert other.item() != pytest.approx(drawn.item(), rel=1e-9)  # the sample is random, not the mean
