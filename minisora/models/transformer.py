"""The plain pre-norm transformer block of ViT (Dosovitskiy et al. 2021), and what the diffusion transformers share."""
from typing import Optional, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention


class MLP(nn.Sequential):
    """Linear, GELU (tanh approximation, as DiT and U-ViT use), Linear: dim -> ratio * dim -> dim."""

    def __init__(self, dim: int, ratio: float):
        super().__init__(nn.Linear(dim, int(dim * ratio)), nn.GELU(approximate="tanh"), nn.Linear(int(dim * ratio), dim))


class TransformerBlock(nn.Module):
    """x = x + Attn(LN(x));  x = x + MLP(LN(x))   on tokens (B, N, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, attention_backend: str = "sdpa"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, attention_backend)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), key_padding_mask=key_padding_mask)
        return x + self.mlp(self.norm2(x))


def run_block(block: nn.Module, checkpointed: bool, *inputs: torch.Tensor) -> torch.Tensor:
    """block(*inputs); with `checkpointed` (activation checkpointing, Chen et al. 2016) only the inputs are kept for
    the backward pass, which runs the block's forward again to rebuild what it needs: one block's activations in
    memory at a time instead of every block's, for about a third more compute."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(block, *inputs, use_reentrant=False)
    return block(*inputs)


def check_denoiser_inputs(model: str, expected: Tuple[int, ...], x: torch.Tensor, condition: Optional[torch.Tensor],
                          condition_name: str, conditional: bool, setting: str) -> None:
    """The input checks of every denoiser network: x must be (B, *expected), and its condition (a label, a
    caption) is given exactly when the network is conditional (`setting` names the config field that says so)."""
    if x.dim() != 5 or tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"{model} built for inputs (B, {', '.join(map(str, expected))}) got {tuple(x.shape)}")
    if (condition is None) == conditional:
        raise ValueError(f"{model} with {setting} needs {'a' if conditional else 'no'} {condition_name}")


def check_class_conditional_inputs(model: str, config, x: torch.Tensor, label: Optional[torch.Tensor]) -> None:
    """`check_denoiser_inputs` for DiT and U-ViT: x (B, in_channels, frames, input_size, input_size), and a class
    label exactly when config.num_classes > 0."""
    check_denoiser_inputs(model, (config.in_channels, config.frames, config.input_size, config.input_size), x, label,
                          "label", config.num_classes > 0, f"num_classes={config.num_classes}")
