"""DiT: the Diffusion Transformer of Peebles & Xie 2023, "Scalable Diffusion Models with Transformers".

The input (B, C, T, H, W) is cut into spacetime patches (an image is T = 1), embedded as tokens with fixed sin-cos
positions, and run through transformer blocks conditioned on the noise level and the class. The paper's four
ways of conditioning (Section 3.2, Figure 3) are all here for the lesson's ablation; adaLN-Zero is the default:
every block's modulation and the final layer start at zero, so the whole network starts as the zero function.

The network's signature is F(x, noise_label, label=None), so it goes behind `edm.EDMDenoiser` or, with DDPM
timesteps as noise labels, `denoisers.VPDenoiser`.
"""
import math
from dataclasses import dataclass, replace
from typing import List, Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .attention import Attention
from .embeddings import LabelEmbedding, TimestepEmbedding, mae_position_embedding, sincos_position_embedding
from .patches import check_patchable, patchify, unpatchify
from .transformer import MLP, check_class_conditional_inputs, run_block

CONDITIONINGS = ("adaln_zero", "adaln", "cross_attention", "in_context")


@dataclass
class DiTConfig:
    input_size: int = 32  # height = width of the input (latent cells, or pixels for pixel-space models)
    frames: int = 1  # T; 1 for images
    in_channels: int = 4  # channels of the input (4 for Stable Diffusion's latents)
    patch_size: int = 2  # spatial patch side p: tokens are p x p
    temporal_patch: int = 1  # frames per patch (1 for images)
    hidden: int = 1152  # width D of every token
    depth: int = 28  # number of transformer blocks
    heads: int = 16  # attention heads
    mlp_ratio: float = 4.0  # MLP width / D
    num_classes: int = 1000  # class labels 0..num_classes-1 (plus a null label); 0 for an unconditional model
    class_dropout: float = 0.1  # probability of dropping the label in training (for classifier-free guidance)
    learn_sigma: bool = True  # output 2 x in_channels: the noise (or x0) and the per-pixel variance of Nichol & Dhariwal
    conditioning: str = "adaln_zero"  # one of CONDITIONINGS (Section 3.2 of the paper)
    attention_backend: str = "sdpa"  # "math", "sdpa" or "flash" (minisora.kernels: no N x N matrix kept)
    checkpoint_activations: bool = False  # recompute each block in the backward pass instead of storing its activations
    noise_label_scale: float = 1.0  # multiplies the noise label: 1 for DDPM timesteps, 1000 for flow times, 250 for EDM
    position_layout: str = "minisora"  # the fixed sin-cos table's channels: "minisora" (`sincos_position_embedding`)
    # or "mae" (`mae_position_embedding`, images only: the layout the paper's released weights were trained with)

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels


POSITION_LAYOUTS = ("minisora", "mae")
# (depth, hidden, heads) of the paper's Table 1
DIT_SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}


def dit_config(name: str, **overrides) -> DiTConfig:
    """A paper configuration by name, e.g. "DiT-XL/2" (size XL, patch 2), with any field overridden."""
    try:
        size, patch = name.removeprefix("DiT-").split("/")
        depth, hidden, heads = DIT_SIZES[size]
        config = DiTConfig(depth=depth, hidden=hidden, heads=heads, patch_size=int(patch))
    except (ValueError, KeyError):
        raise ValueError(f"unknown DiT configuration {name!r}; names look like DiT-S/2, sizes {sorted(DIT_SIZES)}, "
                         "patch sizes 2, 4, 8") from None
    return replace(config, **overrides)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Adaptive layer norm's affine part: x (1 + scale) + shift (DiT Section 3.2), per sample (shift and scale
    (B, D)) or per token ((B, N, D)) for tokens x (B, N, D)."""
    return x * (1 + per_token(scale)) + per_token(shift)


def per_token(value: torch.Tensor) -> torch.Tensor:
    """A modulation (B, D) of every token alike as (B, 1, D); one per token (B, N, D) as it is."""
    return value[:, None] if value.dim() == 2 else value


class DiTBlock(nn.Module):
    """One transformer block, conditioned on c (B, D) in the configured way."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        dim, kind = config.hidden, config.conditioning
        self.kind = kind
        adaptive = kind in ("adaln_zero", "adaln")
        # adaptive norms regress their scale and shift from c; the others learn a fixed affine
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not adaptive, eps=1e-6)
        self.attention = Attention(dim, config.heads, config.attention_backend)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not adaptive, eps=1e-6)
        self.mlp = MLP(dim, config.mlp_ratio)
        if adaptive:
            # adaLN-Zero regresses shift, scale and a gate for both sublayers; adaLN only shift and scale
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, (6 if kind == "adaln_zero" else 4) * dim))
        if kind == "cross_attention":
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attention = Attention(dim, config.heads, config.attention_backend)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.kind == "adaln_zero":
            return adaln_zero_block(self, x, c)
        if self.kind == "adaln":
            shift1, scale1, shift2, scale2 = self.modulation(c).chunk(4, dim=1)
            x = x + self.attention(modulate(self.norm1(x), shift1, scale1))
            return x + self.mlp(modulate(self.norm2(x), shift2, scale2))
        x = x + self.attention(self.norm1(x))
        if self.kind == "cross_attention":
            # c holds the two conditioning tokens (timestep, class) as a length-2 sequence
            x = x + self.cross_attention(self.norm_cross(x), context=c)
        return x + self.mlp(self.norm2(x))


def adaln_zero_block(block: DiTBlock, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The forward pass of an adaLN-Zero block (DiT Section 3.2, Figure 3) on tokens x (B, N, D) conditioned on
    c (B, D): `block.modulation` regresses six (B, D) vectors from c, in the paper's code's order (shift, scale, gate)
    for the attention, then for the MLP; each sublayer sees its LayerNorm modulated, and its output is gated
    into the residual stream. With the gates zero (DiT's initialisation) the block is the identity."""
    shift1, scale1, gate1, shift2, scale2, gate2 = block.modulation(c).chunk(6, dim=1)  # 6 x (B, D)
    # x = x + alpha_1 Attn(LN(x) (1 + gamma_1) + beta_1)
    x = x + gate1[:, None] * block.attention(modulate(block.norm1(x), shift1, scale1))
    # x = x + alpha_2 MLP(LN(x) (1 + gamma_2) + beta_2), on the x the attention has just updated
    return x + gate2[:, None] * block.mlp(modulate(block.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """Adaptive norm, then a linear map from each token back to its patch of output values."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        dim = config.hidden
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        patch_values = config.temporal_patch * config.patch_size**2 * config.out_channels
        self.linear = nn.Linear(dim, patch_values)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


def initialize_adaln_zero(model: nn.Module, noise_embedding: nn.Module, modulations: List[nn.Linear]) -> None:
    """DiT's initialisation: Xavier-uniform linears with zero biases, N(0, 0.02) for the noise embedding's MLP, and
    zeros for the given adaLN modulations and for the final layer (`model.final`): with adaLN-Zero every block
    starts as the identity and the whole network as the zero function."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    nn.init.normal_(noise_embedding.mlp[0].weight, std=0.02)
    nn.init.normal_(noise_embedding.mlp[2].weight, std=0.02)
    for module in [*modulations, model.final.modulation[1], model.final.linear]:
        nn.init.zeros_(module.weight)
        nn.init.zeros_(module.bias)


def position_table(config: DiTConfig) -> torch.Tensor:
    """The fixed sin-cos positions (N, D) of the config's token grid, in its layout; a quarter of the channels (even)
    encode the frame when there are several."""
    grid = check_patchable((config.frames, config.input_size, config.input_size),
                           (config.temporal_patch, config.patch_size, config.patch_size))
    if config.position_layout == "mae":
        return mae_position_embedding(grid[1], grid[2], config.hidden)
    time_dim = 0 if grid[0] == 1 else config.hidden // 4 - (config.hidden // 4) % 2
    return sincos_position_embedding(grid, config.hidden, time_dim)


class DiT(nn.Module):
    """x (B, C, T, H, W), noise_label (B,), label (B,) -> (B, out_channels, T, H, W)."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        if config.conditioning not in CONDITIONINGS:
            raise ValueError(f"unknown conditioning {config.conditioning!r}; choose one of {CONDITIONINGS}")
        if config.position_layout not in POSITION_LAYOUTS or (config.position_layout == "mae" and config.frames > 1):
            raise ValueError(f"position_layout={config.position_layout!r} must be one of {POSITION_LAYOUTS}, and "
                             f"'mae' (a 2D table) is for images: frames=1, got {config.frames}")
        self.config = config
        self.patch = (config.temporal_patch, config.patch_size, config.patch_size)
        self.grid = check_patchable((config.frames, config.input_size, config.input_size), self.patch)
        dim = config.hidden
        self.patch_embedding = nn.Linear(config.in_channels * math.prod(self.patch), dim)
        self.register_buffer("position", position_table(config)[None], persistent=False)  # (1, N, D), fixed
        self.noise_embedding = TimestepEmbedding(dim, scale=config.noise_label_scale)
        self.label_embedding = LabelEmbedding(config.num_classes, dim, config.class_dropout) if config.num_classes else None
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(config)
        self.initialize()

    def initialize(self) -> None:
        """The paper's initialisation (`initialize_adaln_zero`), and N(0, 0.02) for the label embedding."""
        modulations = [block.modulation[1] for block in self.blocks] if self.config.conditioning == "adaln_zero" else []
        initialize_adaln_zero(self, self.noise_embedding, modulations)
        if self.label_embedding is not None:
            nn.init.normal_(self.label_embedding.table.weight, std=0.02)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, label: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        check_class_conditional_inputs("DiT", self.config, x, label)
        tokens = self.patch_embedding(patchify(x, self.patch)) + self.position  # (B, N, D)
        c = self.noise_embedding(noise_label.expand(x.shape[0]))  # (B, D)
        label_vector = None if label is None else self.label_embedding(label, generator)
        kind = self.config.conditioning
        if kind in ("cross_attention", "in_context"):
            conditions = c[:, None] if label_vector is None else torch.stack([c, label_vector], dim=1)  # (B, 1|2, D)
        if label_vector is not None:
            c = c + label_vector
        if kind == "in_context":
            tokens = torch.cat([conditions, tokens], dim=1)
        for block in self.blocks:
            tokens = run_block(block, self.config.checkpoint_activations, tokens,
                               conditions if kind == "cross_attention" else c)
        if kind == "in_context":
            tokens = tokens[:, conditions.shape[1]:]
        return unpatchify(self.final(tokens, c), self.patch, self.grid)  # (B, out_channels, T, H, W)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def analytic_gflops(config: DiTConfig) -> float:
    """Forward cost of one sample in GFLOPs (multiply-adds of every matrix product), counted by hand: the formula
    behind the DiT paper's Table 1 and Figure 5, and the check on `forward_gflops`."""
    dim, mlp_width = config.hidden, int(config.hidden * config.mlp_ratio)
    patch_values = config.temporal_patch * config.patch_size**2
    # N = (T / pt)(H / p)(W / p) patch tokens; M conditioning tokens (noise level, and class if any)
    tokens = (config.frames // config.temporal_patch) * (config.input_size // config.patch_size) ** 2
    conditions = 2 if config.num_classes else 1
    sequence = tokens + conditions if config.conditioning == "in_context" else tokens

    def self_attention_and_mlp(n):
        # Q, K, V and output projections 4 n D^2; Q K^T and P V 2 n^2 D; the MLP 2 n D (ratio D)
        return 4 * n * dim**2 + 2 * n * n * dim + 2 * n * dim * mlp_width

    block = self_attention_and_mlp(sequence)
    if config.conditioning == "adaln_zero":
        block += 6 * dim**2  # shift, scale, gate for attention and MLP, regressed from c
    elif config.conditioning == "adaln":
        block += 4 * dim**2
    elif config.conditioning == "cross_attention":
        # queries and output on the N tokens, keys and values on the M conditions, and N x M scores
        block += 2 * tokens * dim**2 + 2 * conditions * dim**2 + 2 * tokens * conditions * dim
    embed = tokens * config.in_channels * patch_values * dim  # the patch embedding
    noise_mlp = 256 * dim + dim**2  # sinusoidal features -> D -> D
    final = 2 * dim**2 + tokens * dim * patch_values * config.out_channels  # adaptive norm, linear to patches
    return (config.depth * block + embed + noise_mlp + final) / 1e9


def forward_gflops(config: DiTConfig) -> float:
    """Forward cost of one sample in GFLOPs as the DiT paper counts them (one multiply-add = one FLOP), measured
    by PyTorch's FLOP counter on a model built on the meta device (no memory, no arithmetic)."""
    with torch.device("meta"):
        model = DiT(config)
        x = torch.zeros(1, config.in_channels, config.frames, config.input_size, config.input_size)
        label = torch.zeros(1, dtype=torch.long) if config.num_classes else None
    with FlopCounterMode(display=False) as counter:
        model(x, torch.zeros(1, device="meta"), label)
    return counter.get_total_flops() / 2 / 1e9
