"""A small causal video VAE: the compression network that turns videos into the latents a video DiT learns on.

Latent diffusion (Rombach et al. 2022) trains the diffusion model on a KL-regularised autoencoder's latents instead
of pixels; the Sora report describes the same for video ("a network that reduces the dimensionality of visual
data ... compresses the raw video both temporally and spatially"). Here time is compressed causally, as in
MAGVIT-v2 (Yu et al. 2024) and W.A.L.T (Gupta et al. 2023): every convolution looks only at the current and earlier
frames, so the first frame is encoded on its own. A video of 1 + s_t k frames becomes 1 + k latent frames, and an
image (T = 1) is simply a one-frame video: one VAE serves both.

    encoder: (B, 3, T, H, W) -> mean, log-variance (B, z, 1 + (T - 1) / s_t, H / s, W / s)
    decoder: (B, z, 1 + k, h, w) -> (B, 3, 1 + s_t k, s h, s w)
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..parallel.batch import BatchShard
from ..randomness import randn


@dataclass
class VideoVAEConfig:
    in_channels: int = 3  # colour channels of the videos
    latent_channels: int = 4  # channels of the latent z (Stable Diffusion's image VAE also uses 4)
    channels: int = 32  # width at full resolution; it doubles at each downsampling, up to 4x
    spatial_downsample: int = 4  # s: height and width shrink by 4 or 8
    patch_size: int = 1  # p: pixels first folded p x p into channels (space-to-depth); convolutions do the rest
    temporal_downsample: int = 4  # s_t: frames shrink by 1, 2 or 4 (after the first frame, which stays alone)
    blocks_per_level: int = 1  # residual blocks at each resolution
    groups: int = 8  # groups of the per-frame group normalisation
    shortcuts: bool = False  # DC-AE's parameter-free space/time-to-channel shortcuts around each down/upsampling


def check_config(config: VideoVAEConfig) -> None:
    if config.spatial_downsample not in (2, 4, 8, 16):
        raise ValueError(f"spatial_downsample must be 2, 4, 8 or 16, got {config.spatial_downsample}")
    if config.temporal_downsample not in (1, 2, 4, 8):
        raise ValueError(f"temporal_downsample must be 1, 2, 4 or 8, got {config.temporal_downsample}")
    if config.patch_size not in (1, 2, 4) or config.patch_size > config.spatial_downsample:
        raise ValueError(f"patch_size must be 1, 2 or 4 and at most spatial_downsample, got {config.patch_size}")
    if config.channels % config.groups:
        raise ValueError(f"channels {config.channels} must divide into groups {config.groups}")


def causal_time_padding(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Prepend `frames` copies of the first frame to a video (B, C, T, H, W): what a causal convolution in time
    sees before the clip begins (MAGVIT-v2 pads before the clip only; copies make a still image a still video)."""
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2)  # (B, C, frames + T, H, W)


def reparameterize(mean: torch.Tensor, log_variance: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(log sigma^2 / 2): the reparameterisation trick (Kingma & Welling
    2014, Section 2.4), which lets gradients flow through the sample to mu and sigma."""
    return mean + torch.exp(0.5 * log_variance) * noise


def gaussian_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) element by element, in nats (Kingma & Welling 2014, Appendix B)."""
    # KL = 1/2 (mu^2 + sigma^2 - 1 - log sigma^2)
    return 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance)


class CausalConv3d(nn.Module):
    """A 3D convolution that sees only the current and earlier frames: time is padded on the left alone, with
    copies of the first frame (so a still image looks like a still video), and space on both sides with zeros."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, time_stride: int = 1,
                 space_stride: int = 1):
        super().__init__()
        self.time_padding, self.space_padding = kernel_size - 1, kernel_size // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride=(time_stride, space_stride, space_stride),
                              padding=(0, self.space_padding, self.space_padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return self.conv(causal_time_padding(x, self.time_padding))  # output frame t sees input frames t - k + 1 .. t


def image_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3 x 3 convolution that keeps the size (zero padding)."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class FrameGroupNorm(nn.GroupNorm):
    """Group normalisation of each frame on its own: statistics over the whole clip would let a later frame change
    how an earlier one is normalised, and break causality."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        batch, channels, frames, height, width = x.shape
        frames_as_batch = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        return super().forward(frames_as_batch).reshape(batch, frames, channels, height, width).transpose(1, 2)


class ResidualBlock(nn.Module):
    """norm -> SiLU -> conv, twice, plus the input (projected by a 1 x 1 conv when the width changes): on videos
    (B, C, T, H, W) with causal 3D convs and per-frame norms, or with `image=True` on images (B, C, H, W) with 2D
    convs, as latent diffusion's autoencoder has them (models/image_vae.py)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, image: bool = False, eps: float = 1e-5):
        super().__init__()
        norm, conv = (nn.GroupNorm, image_conv) if image else (FrameGroupNorm, CausalConv3d)
        self.norm1, self.conv1 = norm(groups, in_channels, eps=eps), conv(in_channels, out_channels)
        self.norm2, self.conv2 = norm(groups, out_channels, eps=eps), conv(out_channels, out_channels)
        pointwise = nn.Conv2d if image else nn.Conv3d
        self.skip = pointwise(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve height and width when `in_space`, and time when `in_time` (frames 1 + 2k -> 1 + k), with a strided
    causal conv that also widens the channels. With `shortcut`, DC-AE's residual autoencoding (Chen et al. 2025)
    adds a parameter-free path: the pixels folded into channels, averaged down to the output width."""

    def __init__(self, in_channels: int, out_channels: int, in_time: bool, in_space: bool = True,
                 shortcut: bool = False):
        super().__init__()
        self.in_time, self.in_space, self.shortcut, self.out_channels = in_time, in_space, shortcut, out_channels
        self.conv = CausalConv3d(in_channels, out_channels, 3, time_stride=2 if in_time else 1,
                                 space_stride=2 if in_space else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.shortcut:
            return self.conv(x)
        folded = time_to_depth(x) if self.in_time else x
        folded = space_to_depth(folded, 2 if self.in_space else 1)  # (B, C', t, h, w), C' = C * 4 and/or * 2
        batch, channels, frames, height, width = folded.shape
        averaged = folded.reshape(batch, self.out_channels, channels // self.out_channels, frames, height, width)
        return self.conv(x) + averaged.mean(dim=2)


class Upsample(nn.Module):
    """Double height and width when `in_space`, and time when `in_time` (frames 1 + k -> 1 + 2k: the first latent
    frame gives one frame, every later one two), by nearest-neighbour repetition, then a causal conv that narrows
    the channels. With `shortcut`, the parameter-free inverse of Downsample's: channels repeated, then unfolded
    into pixels and frames."""

    def __init__(self, in_channels: int, out_channels: int, in_time: bool, in_space: bool = True,
                 shortcut: bool = False):
        super().__init__()
        self.in_time, self.in_space, self.shortcut, self.out_channels = in_time, in_space, shortcut, out_channels
        self.conv = CausalConv3d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.in_space:
            h = h.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
        if self.in_time:
            h = h.repeat_interleave(2, dim=2)[:, :, 1:]  # drop the first frame's copy: 2 + 2k -> 1 + 2k
        h = self.conv(h)
        if not self.shortcut:
            return h
        needed = self.out_channels * (4 if self.in_space else 1) * (2 if self.in_time else 1)
        unfolded = depth_to_space(x.repeat_interleave(needed // x.shape[1], dim=1), 2 if self.in_space else 1)
        return h + (depth_to_time(unfolded) if self.in_time else unfolded)


def time_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1 + 2k, H, W) -> (B, 2C, 1 + k, H, W) causally: the first frame is paired with a copy of itself,
    then frames (1, 2), (3, 4), ... are folded into channels."""
    x = causal_time_padding(x, 1)  # (B, C, 2 + 2k, H, W)
    batch, channels, frames, height, width = x.shape
    x = x.reshape(batch, channels, frames // 2, 2, height, width)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, channels * 2, frames // 2, height, width)


def depth_to_time(x: torch.Tensor) -> torch.Tensor:
    """(B, 2C, 1 + k, H, W) -> (B, C, 1 + 2k, H, W): each frame's channels unfold into two frames, and the first
    frame's first copy is dropped (the inverse of time_to_depth)."""
    batch, channels, frames, height, width = x.shape
    x = x.reshape(batch, channels // 2, 2, frames, height, width).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(batch, channels // 2, frames * 2, height, width)[:, :, 1:]


def space_to_depth(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C p^2, T, H / p, W / p): each p x p block of pixels becomes channels of one position."""
    if patch == 1:
        return x
    batch, channels, frames, height, width = x.shape
    x = x.reshape(batch, channels, frames, height // patch, patch, width // patch, patch)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(batch, channels * patch * patch, frames, height // patch,
                                                   width // patch)


def depth_to_space(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of space_to_depth: (B, C p^2, T, h, w) -> (B, C, T, h p, w p)."""
    if patch == 1:
        return x
    batch, channels, frames, height, width = x.shape
    x = x.reshape(batch, channels // (patch * patch), patch, patch, frames, height, width)
    return x.permute(0, 1, 4, 5, 2, 6, 3).reshape(batch, channels // (patch * patch), frames, height * patch,
                                                   width * patch)


def level_plan(config: VideoVAEConfig) -> Tuple[Tuple[int, ...], int, int]:
    """(width at each level, full resolution first, doubling per level up to 4x; how many levels halve space; how
    many halve time). Time is halved at the first levels, where that saves the most computation."""
    space_levels = int(math.log2(config.spatial_downsample // config.patch_size))
    time_levels = int(math.log2(config.temporal_downsample))
    levels = max(space_levels, time_levels)
    return tuple(config.channels * min(2**level, 4) for level in range(levels + 1)), space_levels, time_levels


class Encoder(nn.Module):
    """conv in; at each resolution residual blocks, then a downsampling that widens; a last block; conv out."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        widths, space_levels, time_levels = level_plan(config)
        self.patch_size = config.patch_size
        self.conv_in = CausalConv3d(config.in_channels * config.patch_size**2, widths[0])
        layers = []
        for level in range(len(widths) - 1):
            layers += [ResidualBlock(widths[level], widths[level], config.groups)
                       for _ in range(config.blocks_per_level)]
            layers.append(Downsample(widths[level], widths[level + 1], in_time=level < time_levels,
                                     in_space=level < space_levels, shortcut=config.shortcuts))
        layers.append(ResidualBlock(widths[-1], widths[-1], config.groups))
        self.layers = nn.Sequential(*layers)
        self.norm_out = FrameGroupNorm(config.groups, widths[-1])
        self.conv_out = CausalConv3d(widths[-1], 2 * config.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, 2 z, t, h, w)
        x = space_to_depth(x, self.patch_size)  # (B, 3 p^2, T, H / p, W / p)
        return self.conv_out(F.silu(self.norm_out(self.layers(self.conv_in(x)))))


class Decoder(nn.Module):
    """The encoder mirrored: conv in, a block, then at each resolution an upsampling that narrows and blocks."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        widths, space_levels, time_levels = level_plan(config)
        self.conv_in = CausalConv3d(config.latent_channels, widths[-1])
        layers = [ResidualBlock(widths[-1], widths[-1], config.groups)]
        for level in reversed(range(len(widths) - 1)):
            layers.append(Upsample(widths[level + 1], widths[level], in_time=level < time_levels,
                                   in_space=level < space_levels, shortcut=config.shortcuts))
            layers += [ResidualBlock(widths[level], widths[level], config.groups)
                       for _ in range(config.blocks_per_level)]
        self.layers = nn.Sequential(*layers)
        self.norm_out = FrameGroupNorm(config.groups, widths[0])
        self.patch_size = config.patch_size
        self.conv_out = CausalConv3d(widths[0], config.in_channels * config.patch_size**2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z, t, h, w) -> (B, 3, T, H, W)
        x = self.conv_out(F.silu(self.norm_out(self.layers(self.conv_in(z)))))  # (B, 3 p^2, T, H / p, W / p)
        return depth_to_space(x, self.patch_size)


class DiagonalGaussian:
    """The encoder's posterior q(z | x) = N(mean, diag(exp(log_variance)))."""

    def __init__(self, moments: torch.Tensor):  # (B, 2 z, t, h, w)
        self.mean, log_variance = moments.chunk(2, dim=1)
        self.log_variance = log_variance.clamp(-30.0, 20.0)  # exp stays finite in float32

    def sample(self, generator: Optional[torch.Generator] = None, shard: Optional[BatchShard] = None,
               noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z ~ q(z | x), reparameterised with eps ~ N(0, I), or with the given `noise` as eps; with a `shard`, these
        are its rows of a batch, and eps is drawn (or given) for the whole batch and its rows kept (`parallel.batch`)."""
        whole = self.mean.shape[0] * (1 if shard is None else shard.world_size)
        shape = (whole, *self.mean.shape[1:])
        if noise is None:
            noise = randn(shape, generator, self.mean.device, self.mean.dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have the whole batch's latent shape {shape}, got {tuple(noise.shape)}; "
                             f"draw it as torch.randn{shape}")
        if shard is not None:
            noise = shard.take(noise, whole)
        return reparameterize(self.mean, self.log_variance, noise)

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per latent element (the mean's shape), in nats."""
        return gaussian_kl(self.mean, self.log_variance)


class VideoVAE(nn.Module):
    """encode: video -> posterior over latents; decode: latents -> video. Frames must number 1 + s_t k."""

    def __init__(self, config: VideoVAEConfig):
        super().__init__()
        check_config(config)
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)
        # 1 / std of the latents, measured after training (`measure_latent_scale`); saved with the weights
        self.register_buffer("latent_scale", torch.tensor(1.0))

    def check_video(self, video: torch.Tensor) -> None:
        config = self.config
        if video.dim() != 5 or video.shape[1] != config.in_channels:
            raise ValueError(f"expected videos (B, {config.in_channels}, T, H, W), got shape {tuple(video.shape)}; "
                             f"an image is a one-frame video: add the T axis with x.unsqueeze(2)")
        frames, height, width = video.shape[2:]
        if (frames - 1) % config.temporal_downsample:
            good = 1 + config.temporal_downsample * max(1, round((frames - 1) / config.temporal_downsample))
            raise ValueError(f"{frames} frames cannot be compressed {config.temporal_downsample}x in time after the "
                             f"first frame; use 1 + {config.temporal_downsample}k frames, e.g. {good}")
        if height % config.spatial_downsample or width % config.spatial_downsample:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of spatial_downsample "
                             f"{config.spatial_downsample}; crop or resize to e.g. "
                             f"{height // config.spatial_downsample * config.spatial_downsample or config.spatial_downsample}")

    def latent_shape(self, frames: int, height: int, width: int) -> Tuple[int, int, int, int]:
        """(z, t, h, w) of the latents of a (3, frames, height, width) video."""
        config = self.config
        return (config.latent_channels, 1 + (frames - 1) // config.temporal_downsample,
                height // config.spatial_downsample, width // config.spatial_downsample)

    def encode(self, video: torch.Tensor) -> DiagonalGaussian:
        self.check_video(video)
        return DiagonalGaussian(self.encoder(video))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    def forward(self, video: torch.Tensor, generator: Optional[torch.Generator] = None,
                shard: Optional[BatchShard] = None, *, noise: Optional[torch.Tensor] = None):
        """(reconstruction from a sampled z, posterior); with a `shard`, `video` is its rows of the batch; `noise`
        (the whole batch's eps, shaped like its latents) replaces drawing eps from `generator`."""
        posterior = self.encode(video)
        return self.decode(posterior.sample(generator, shard, noise)), posterior

    def to_latents(self, video: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The latents a diffusion model learns on: z ~ q(z | x) (its mean without a generator), times the scale."""
        posterior = self.encode(video)
        latents = posterior.mean if generator is None else posterior.sample(generator)
        return latents * self.latent_scale

    def from_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode scaled latents (as `to_latents` gives and a diffusion model samples) back to a video."""
        return self.decode(latents / self.latent_scale)


def compression_ratio(config: VideoVAEConfig) -> float:
    """How many pixel values (3 per pixel) each latent value stands for, for long clips: 3 s^2 s_t / z."""
    return config.in_channels * config.spatial_downsample**2 * config.temporal_downsample / config.latent_channels


def vae_loss(vae: VideoVAE, video: torch.Tensor, kl_weight: float, reconstruction: str = "l1",
             generator: Optional[torch.Generator] = None, shard: Optional[BatchShard] = None, *,
             noise: Optional[torch.Tensor] = None):
    """A beta-weighted surrogate of the negative ELBO, per pixel value (Kingma & Welling 2014; Rombach et al. 2022,
    Appendix G): L = mean |x - D(z)|  (or squared)  +  kl_weight * sum KL(q(z|x) || N(0, I)) / number of pixel
    values, with z = mu + sigma eps (eps drawn from `generator`, or the given `noise`, shaped like the latents).
    For an L1 error it is kl_weight / N times the negative ELBO of a Laplace decoder of scale kl_weight, less a
    constant (lesson 06). Returns (loss, {"reconstruction", "kl"}) with both terms as logged numbers. With a `shard`,
    over this process's rows of the batch `video` (equal shares: the mean of the processes' losses is the batch's),
    and `noise`, when given, is the whole batch's."""
    if reconstruction not in ("l1", "l2"):
        raise ValueError(f"reconstruction must be 'l1' or 'l2', got {reconstruction!r}")
    if shard is not None:
        video = shard.take(video, len(video))
    decoded, posterior = vae(video, generator, shard, noise=noise)
    error = decoded - video
    reconstruction_loss = error.abs().mean() if reconstruction == "l1" else error.pow(2).mean()
    kl_per_value = posterior.kl().sum() / video.numel()
    loss = reconstruction_loss + kl_weight * kl_per_value
    return loss, {"reconstruction": reconstruction_loss.item(), "kl": kl_per_value.item()}


@torch.no_grad()
def measure_latent_scale(vae: VideoVAE, videos: torch.Tensor, batch_size: int = 16) -> float:
    """1 / std of the latents (posterior means) over `videos`, so that scaled latents have unit variance, the
    scale the diffusion model's noise levels assume (Rombach et al. 2022 measure Stable Diffusion's 0.18215 so)."""
    device = vae.latent_scale.device
    means = torch.cat([vae.encode(videos[start:start + batch_size].to(device)).mean
                       for start in range(0, len(videos), batch_size)])
    return 1.0 / means.std().item()
