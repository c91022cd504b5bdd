"""The KL autoencoder of latent diffusion (Rombach et al. 2022), the image VAE that Stable Diffusion and the DiT
paper decode through: f = 8 (three halvings), 4 latent channels, a KL weight so small the latents are nearly an
autoencoder's. Written beside the causal video VAE (models/vae.py) and sharing its residual block (in 2D), its
diagonal Gaussian posterior, and minisora's attention.

    encoder: (B, 3, H, W) -> conv -> [residual blocks, halve] per level -> middle -> norm, SiLU, conv
             -> (B, 2 z, H / 8, W / 8) -> 1 x 1 conv: the posterior's mean and log-variance
    decoder: (B, z, h, w) -> 1 x 1 conv -> conv -> middle -> [residual blocks, double] per level -> norm, SiLU, conv
             -> (B, 3, 8 h, 8 w)
    middle:  residual block, self-attention over the h w positions (one head), residual block

Latents are scaled by `scaling_factor` (Stable Diffusion's 0.18215, measured as 1 / std of its latents) before a
diffusion model sees them, as `VideoVAE.latent_scale` does for the video VAE. `pretrained.load_image_vae` loads the
released weights.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .vae import DiagonalGaussian, ResidualBlock, image_conv

NORM_EPS = 1e-6  # latent diffusion's group norms


@dataclass
class ImageVAEConfig:
    in_channels: int = 3  # colour channels
    latent_channels: int = 4  # z
    channels: int = 128  # width at full resolution
    channel_multipliers: Tuple[int, ...] = (1, 2, 4, 4)  # each level's width / channels; all levels but the last
    # halve the sides (four levels: f = 8)
    blocks_per_level: int = 2  # residual blocks of each encoder level (each decoder level has one more)
    groups: int = 32  # groups of every group norm
    scaling_factor: float = 0.18215  # latents x this are what a diffusion model sees (Stable Diffusion's)


class SpatialAttention(nn.Module):
    """x + Attn(GroupNorm(x)) over the h w positions of a feature map (B, C, h, w), one head of width C."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=NORM_EPS)
        self.attention = Attention(channels, heads=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, h w, C)
        return x + self.attention(tokens).transpose(1, 2).reshape(batch, channels, height, width)


class Halve(nn.Module):
    """A 3 x 3 convolution of stride 2 after padding one zero row and column at the bottom and right (latent
    diffusion's asymmetric padding: (B, C, H, W) -> (B, C, H / 2, W / 2))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Double(nn.Module):
    """Nearest-neighbour upsampling by 2, then a 3 x 3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = image_conv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """Residual blocks at one resolution, then a change of size (`resize`) unless it is the last level."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int, groups: int, resize: Optional[type]):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(in_channels if index == 0 else out_channels, out_channels, groups,
                                                  image=True, eps=NORM_EPS) for index in range(blocks))
        self.resize = resize(out_channels) if resize is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.resize is None else self.resize(x)


def middle(channels: int, groups: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(channels, channels, groups, image=True, eps=NORM_EPS),
                         SpatialAttention(channels, groups),
                         ResidualBlock(channels, channels, groups, image=True, eps=NORM_EPS))


class ImageEncoder(nn.Module):
    def __init__(self, config: ImageVAEConfig):
        super().__init__()
        widths = [config.channels * multiplier for multiplier in config.channel_multipliers]
        last = len(widths) - 1
        self.conv_in = image_conv(config.in_channels, config.channels)
        self.levels = nn.ModuleList(
            Level(config.channels if index == 0 else widths[index - 1], width, config.blocks_per_level, config.groups,
                  Halve if index < last else None) for index, width in enumerate(widths))
        self.middle = middle(widths[-1], config.groups)
        self.norm_out = nn.GroupNorm(config.groups, widths[-1], eps=NORM_EPS)
        self.conv_out = image_conv(widths[-1], 2 * config.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 2 z, H / f, W / f)
        x = self.conv_in(x)
        for level in self.levels:
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(self.middle(x))))


class ImageDecoder(nn.Module):
    def __init__(self, config: ImageVAEConfig):
        super().__init__()
        widths = [config.channels * multiplier for multiplier in reversed(config.channel_multipliers)]
        last = len(widths) - 1
        self.conv_in = image_conv(config.latent_channels, widths[0])
        self.middle = middle(widths[0], config.groups)
        self.levels = nn.ModuleList(  # from the smallest resolution up
            Level(widths[max(index - 1, 0)], width, config.blocks_per_level + 1, config.groups,
                  Double if index < last else None) for index, width in enumerate(widths))
        self.norm_out = nn.GroupNorm(config.groups, widths[-1], eps=NORM_EPS)
        self.conv_out = image_conv(widths[-1], config.in_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, z, h, w) -> (B, 3, f h, f w)
        x = self.middle(self.conv_in(z))
        for level in self.levels:
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class ImageVAE(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] <-> latents (B, z, H / f, W / f)."""

    def __init__(self, config: ImageVAEConfig):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = ImageEncoder(config), ImageDecoder(config)
        self.quant_conv = nn.Conv2d(2 * config.latent_channels, 2 * config.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)

    def encode(self, images: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.quant_conv(self.encoder(images)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))

    def to_latents(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """What a diffusion model learns on: the posterior's mean (a sample with a generator), scaled."""
        posterior = self.encode(images)
        return (posterior.mean if generator is None else posterior.sample(generator)) * self.config.scaling_factor

    def from_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Images from scaled latents, as a diffusion model samples them."""
        return self.decode(latents / self.config.scaling_factor)
