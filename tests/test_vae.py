"""The causal video VAE: shapes, causality, the KL term against closed forms, the latent scale, and training."""
import math

import pytest
import torch

from minisora.models import vae as vae_module
from minisora.parallel.batch import BatchShard
from minisora.models.vae import (DiagonalGaussian, VideoVAE, VideoVAEConfig, compression_ratio,
                                 measure_latent_scale, vae_loss)
from minisora.train.vae import VAEConfig, evaluate_vae, held_out_clips, load_vae, save_vae, train_vae


def small_vae(spatial=4, temporal=4, latent_channels=4, seed=0, patch=1, shortcuts=False) -> VideoVAE:
    torch.manual_seed(seed)
    return VideoVAE(VideoVAEConfig(latent_channels=latent_channels, channels=8, spatial_downsample=spatial,
                                   temporal_downsample=temporal, patch_size=patch, shortcuts=shortcuts)).eval()


@pytest.mark.parametrize("shortcuts", [False, True])
@pytest.mark.parametrize("spatial, temporal, patch", [(4, 4, 1), (8, 4, 1), (4, 2, 1), (8, 8, 1), (2, 1, 1),
                                                     (4, 4, 2), (8, 4, 4), (2, 4, 2)])
def test_latent_and_reconstruction_shapes(spatial, temporal, patch, shortcuts):
    vae = small_vae(spatial, temporal, patch=patch, shortcuts=shortcuts)
    frames = 1 + 2 * temporal
    video = torch.rand(2, 3, frames, 32, 32) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(video)
        assert posterior.mean.shape == (2, *vae.latent_shape(frames, 32, 32)) == (2, 4, 3, 32 // spatial, 32 // spatial)
        assert vae.decode(posterior.mean).shape == video.shape
        image = video[:, :, :1]  # an image is a one-frame video
        assert vae.encode(image).mean.shape == (2, 4, 1, 32 // spatial, 32 // spatial)
        assert vae.decode(vae.encode(image).mean).shape == image.shape
    assert compression_ratio(vae.config) == 3 * spatial**2 * temporal / 4


def changed_frames(before: torch.Tensor, after: torch.Tensor) -> list:
    """Indices along time (dim 2) where two (B, C, T, H, W) tensors differ."""
    return [t for t in range(before.shape[2]) if not torch.allclose(before[:, :, t], after[:, :, t], atol=1e-6)]


@pytest.mark.parametrize("temporal, patch, shortcuts", [(4, 1, False), (2, 1, False), (4, 2, False), (4, 1, True),
                                                      (4, 2, True)])
def test_the_encoder_is_causal(temporal, patch, shortcuts):
    """Changing frame k changes latent frames ceil(k / s_t) and later, never an earlier one."""
    vae = small_vae(temporal=temporal, patch=patch, shortcuts=shortcuts)
    video = torch.rand(1, 3, 1 + 4 * temporal, 16, 16) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(video).mean
        for frame in range(video.shape[2]):
            edited = video.clone()
            edited[:, :, frame] = torch.rand_like(edited[:, :, frame])
            first_affected = -(-frame // temporal)
            assert changed_frames(latents, vae.encode(edited).mean) == list(range(first_affected, latents.shape[2]))


@pytest.mark.parametrize("patch, shortcuts", [(1, False), (2, False), (1, True)])
def test_the_decoder_is_causal(patch, shortcuts):
    """Changing latent frame j (which stands for frames 4j-3 .. 4j) changes frames 4j-3 and later only."""
    vae = small_vae(patch=patch, shortcuts=shortcuts)
    latents = torch.randn(1, 4, 5, 4, 4)
    with torch.no_grad():
        video = vae.decode(latents)
        for index in range(5):
            edited = latents.clone()
            edited[:, :, index] = torch.randn_like(edited[:, :, index])
            first_affected = max(0, 4 * index - 3)
            assert changed_frames(video, vae.decode(edited)) == list(range(first_affected, 17))


def test_the_first_frame_is_encoded_on_its_own():
    """The first latent frame of a clip is the latent of its first frame encoded as an image."""
    vae = small_vae()
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(vae.encode(video).mean[:, :, :1], vae.encode(video[:, :, :1]).mean, atol=1e-6)


def test_normalising_over_the_whole_clip_would_break_causality(monkeypatch):
    """The negative control: with statistics over all frames (plain GroupNorm), a late frame changes early latents."""
    monkeypatch.setattr(vae_module.FrameGroupNorm, "forward", torch.nn.GroupNorm.forward)
    vae = small_vae()
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    edited = video.clone()
    edited[:, :, -1] = 1.0
    with torch.no_grad():
        assert 0 in changed_frames(vae.encode(video).mean, vae.encode(edited).mean)


def test_kl_matches_torch_distributions_and_zero_at_the_prior():
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 4, 2, 5, 5, generator=generator, dtype=torch.float64)
    log_variance = torch.randn(3, 4, 2, 5, 5, generator=generator, dtype=torch.float64)
    posterior = DiagonalGaussian(torch.cat([mean, log_variance], dim=1))
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * log_variance).exp()),
                                                  torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(posterior.kl(), reference, atol=1e-12)
    prior = DiagonalGaussian(torch.zeros(1, 8, 1, 2, 2, dtype=torch.float64))
    assert torch.equal(prior.kl(), torch.zeros(1, 4, 1, 2, 2, dtype=torch.float64))


def test_kl_equals_a_monte_carlo_estimate():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated from reparameterised samples."""
    moments = torch.tensor([0.7, -1.2, 0.4, -0.3], dtype=torch.float64).reshape(1, 4, 1, 1, 1)  # means, log-vars
    posterior = DiagonalGaussian(moments)
    samples = torch.stack([posterior.sample(torch.Generator().manual_seed(seed)) for seed in range(20000)])
    q = torch.distributions.Normal(posterior.mean, (0.5 * posterior.log_variance).exp())
    estimate = (q.log_prob(samples) - torch.distributions.Normal(0.0, 1.0).log_prob(samples)).mean(0)
    assert torch.allclose(estimate, posterior.kl(), atol=0.03)
    assert torch.allclose(samples.mean(0), posterior.mean, atol=0.03)
    assert torch.allclose(samples.std(0), (0.5 * posterior.log_variance).exp(), atol=0.03)


def test_the_loss_is_reconstruction_plus_weighted_kl_per_pixel_value():
    vae = small_vae()
    video = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    loss, terms = vae_loss(vae, video, kl_weight=0.5, reconstruction="l2", generator=torch.Generator().manual_seed(1))
    decoded, posterior = vae(video, torch.Generator().manual_seed(1))
    expected_kl = posterior.kl().sum() / video.numel()
    assert torch.allclose(loss, (decoded - video).pow(2).mean() + 0.5 * expected_kl)
    assert terms["kl"] == pytest.approx(expected_kl.item())


def test_given_noise_is_the_eps_of_the_sample_and_checked():
    """z = mu + sigma eps with the given eps, for the whole batch or a process's rows of it; a wrong shape is an error."""
    vae = small_vae().double()
    video = torch.rand(2, 3, 5, 16, 16, dtype=torch.float64) * 2 - 1
    noise = torch.randn(2, 4, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    decoded, posterior = vae(video, noise=noise)
    by_hand = vae.decode(posterior.mean + (0.5 * posterior.log_variance).exp() * noise)
    torch.testing.assert_close(decoded, by_hand)
    drawn, _ = vae(video, torch.Generator().manual_seed(3))  # the generator draws the same eps
    torch.testing.assert_close(drawn, decoded)
    second = BatchShard(rank=1, world_size=2)
    torch.testing.assert_close(vae(video[1:], shard=second, noise=noise)[0], decoded[1:])
    loss, _ = vae_loss(vae, video, 0.1, "l1", shard=second, noise=noise)
    torch.testing.assert_close(loss, vae_loss(vae, video[1:], 0.1, "l1", noise=noise[1:])[0])
    with pytest.raises(ValueError, match="noise must have the whole batch's latent shape"):
        vae_loss(vae, video, 0.1, noise=noise[:1])


def test_the_l1_loss_is_a_scaled_laplace_elbo():
    """With p(x | z) = Laplace(D(z), b) and b = kl_weight, L = (b / N) (-ELBO) - b log 2b (one-sample estimate)."""
    vae = small_vae().double()
    video = torch.rand(2, 3, 5, 16, 16, dtype=torch.float64) * 2 - 1
    noise = torch.randn(2, 4, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    scale = 0.05
    loss, _ = vae_loss(vae, video, scale, "l1", noise=noise)
    decoded, posterior = vae(video, noise=noise)
    log_likelihood = torch.distributions.Laplace(decoded, scale).log_prob(video).sum()
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(posterior.mean, (0.5 * posterior.log_variance).exp()),
                                           torch.distributions.Normal(0.0, 1.0)).sum()
    elbo = log_likelihood - kl
    torch.testing.assert_close(loss, -scale / video.numel() * elbo - scale * math.log(2 * scale))


def test_the_latent_scale_gives_unit_variance_and_latents_round_trip():
    vae = small_vae()
    videos = torch.rand(6, 3, 5, 16, 16) * 2 - 1
    scale = measure_latent_scale(vae, videos, batch_size=4)
    vae.latent_scale.fill_(scale)
    with torch.no_grad():
        latents = vae.to_latents(videos)
        assert latents.std().item() == pytest.approx(1.0, rel=1e-4)
        assert torch.allclose(vae.from_latents(latents), vae.decode(vae.encode(videos).mean), atol=1e-5)


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 16, 32, 32), "1 \\+ 4k frames, e.g. 17"),
    ((1, 3, 17, 30, 32), "multiples of spatial_downsample 4"),
    ((1, 3, 32, 32), "add the T axis"),
])
def test_bad_videos_are_clear_errors(shape, message):
    with pytest.raises(ValueError, match=message):
        small_vae().encode(torch.zeros(shape))


def test_space_to_depth_folds_blocks_into_channels_and_back():
    video = torch.randn(2, 3, 5, 8, 12)
    folded = vae_module.space_to_depth(video, 2)
    assert folded.shape == (2, 12, 5, 4, 6)
    # channel c * 4 + 2 i + j of position (h, w) is pixel (2 h + i, 2 w + j) of channel c
    assert torch.equal(folded[:, 1 * 4 + 2 * 1 + 0, :, 3, 5], video[:, 1, :, 7, 10])
    assert torch.equal(vae_module.depth_to_space(folded, 2), video)


def test_time_folding_is_causal_and_invertible():
    video = torch.randn(2, 3, 9, 4, 4)
    folded = vae_module.time_to_depth(video)  # (2, 6, 5, 4, 4): frame 0 with itself, then (1, 2), (3, 4), ...
    assert folded.shape == (2, 6, 5, 4, 4)
    first, second = folded[:, 0::2], folded[:, 1::2]  # channel 2c + i holds channel c of the pair's frame i
    assert torch.equal(first[:, :, 0], video[:, :, 0]) and torch.equal(second[:, :, 0], video[:, :, 0])
    assert torch.equal(first[:, :, 2], video[:, :, 3]) and torch.equal(second[:, :, 2], video[:, :, 4])
    assert torch.equal(vae_module.depth_to_time(folded), video)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="temporal_downsample must be"):
        VideoVAE(VideoVAEConfig(spatial_downsample=4, temporal_downsample=3))
    with pytest.raises(ValueError, match="spatial_downsample must be"):
        VideoVAE(VideoVAEConfig(spatial_downsample=3))
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda'.*'tpu'"):
        VAEConfig(device="tpu")


def test_a_short_training_run_lowers_the_reconstruction_error(tmp_path):
    config = VAEConfig(image_size=16, num_frames=5, channels=8, latent_channels=4, steps=60, batch_size=4,
                       learning_rate=3e-3, ema_decay=0.9, held_out=8, checkpoint_every=0, out_dir=str(tmp_path))
    held_out = held_out_clips(config)
    torch.manual_seed(config.seed)
    untrained = evaluate_vae(VideoVAE(vae_module.VideoVAEConfig(latent_channels=4, channels=8)), held_out)
    vae, losses = train_vae(config, progress=False, held_out=held_out)
    trained = evaluate_vae(vae, held_out)
    assert sum(losses[-10:]) < 0.6 * sum(losses[:10])
    assert trained["psnr"] > untrained["psnr"] + 5, (untrained, trained)
    assert vae.latent_scale.item() != 1.0
    reloaded = load_vae(save_vae(vae, tmp_path / "vae.pt"))
    assert reloaded.latent_scale.item() == vae.latent_scale.item()
    assert evaluate_vae(reloaded, held_out)["psnr"] == pytest.approx(trained["psnr"])
