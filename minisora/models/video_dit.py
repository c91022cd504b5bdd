"""The video DiT: a Diffusion Transformer over spacetime patches of (latent) video, conditioned on a caption.

Tokens are spacetime patches (pt, ph, pw) of the input with fixed sin-cos positions, a part of each for the frame
and the rest for row and column (`embeddings.sincos_position_embedding`); with `rotary`, self-attention also turns
queries and keys by their positions (3D RoPE, `embeddings.rotary_angles`), so that attention scores see the offset
between two tokens directly. Every block is DiT's adaLN-Zero block
(Peebles & Xie 2023) with cross-attention to the caption's tokens added after self-attention (as PixArt-alpha and
Latte condition on text); the noise level and the pooled caption modulate the norms.

What differs between video transformers is *which tokens attend to which*. Each block attends within windows of
the (T', H', W') token grid (`attend_within_windows`: every window regrouped into one attention sequence, so a window
of n tokens costs N n pairs instead of N^2), and the layout chooses the windows block by block:

  "spacetime"          every token with every token, in every block (the Sora report's "spacetime patches")
  "latte_interleaved"  spatial blocks (1, H', W') alternate with temporal blocks (T', 1, 1)    (Latte, variant 1)
  "latte_late_fusion"  the first half of the blocks spatial, the second half temporal          (Latte, variant 2)
  "walt_windows"       spatial blocks (1, H', W') alternate with local spacetime windows `window` (W.A.L.T)

One network serves every size and every task. Positions come from the token grid of each call, so any frame count
and any height and width the patch divides go through the same weights (an image is a one-frame video). Frames can
be given: `given_mask` (B, T) says which frames of `given` are known (the first, for image-to-video; the first k,
for extension; first and last, for interpolation and loops); they replace the noisy input there, and
`frame_marking` says how the network learns which they are (a mask channel, or their own noise level 0).

A long clip's tokens can be shared by several processes (sequence parallelism, lesson 14): with `sequence` set to
a `parallel.sequence.SequenceSharding`, each process holds whole token frames, spacetime attention runs by
Ulysses or ring attention, temporal windows by DSP's switches, and spatial (and W.A.L.T's) windows locally.

The network's signature is F(x, noise_label, caption=None, given=None, given_mask=None), so it goes behind any
denoiser wrapper of the diffusion core (`EDMDenoiser`, `FlowDenoiser`, ...) and is sampled by every sampler
unchanged (`diffusion.conditioning.GivenFramesDenoiser` holds the given frames at their values).
"""
import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from ..diffusion.conditioning import hold_given_frames
from ..parallel.sequence import SequenceSharding, frames_to_positions, positions_to_frames
from .attention import Attention
from .dit import FinalLayer, initialize_adaln_zero, modulate, per_token
from .embeddings import TimestepEmbedding, rotary_angles, sincos_position_embedding
from .patches import check_patchable, patchify, unpatchify
from .text import TextEncoder
from .transformer import MLP, check_denoiser_inputs, run_block

LAYOUTS = ("spacetime", "latte_interleaved", "latte_late_fusion", "walt_windows")
# how the network is told which frames are given (clean, to be kept) and which it generates
FRAME_MARKINGS = ("none", "mask_channel", "noise_level")


@dataclass
class VideoDiTConfig:
    in_channels: int = 3  # C of the input (latent channels, or 3 for pixels)
    patch_size: int = 4  # spatial patch side p
    temporal_patch: int = 2  # frames per patch pt
    hidden: int = 96  # token width D
    depth: int = 4  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP width / D
    layout: str = "spacetime"  # which tokens attend to which, block by block: one of LAYOUTS
    window: Tuple[int, int, int] = (2, 2, 2)  # "walt_windows": the spacetime window (t, h, w), in tokens
    rotary: bool = False  # also turn queries and keys by their positions in the window (3D RoPE), besides sin-cos
    vocabulary_size: int = 0  # caption tokenizer's vocabulary; 0 for an unconditional model (no text encoder)
    caption_length: int = 16  # caption ids per sample, <caption> token and padding included
    text_hidden: int = 64  # width of the text encoder
    text_depth: int = 2  # transformer blocks of the text encoder
    frame_marking: str = "none"  # how given frames are marked, one of FRAME_MARKINGS: "mask_channel" adds each
    # token's per-frame given/generated mask through a zero-initialised linear to its embedding (Open-Sora 2.0,
    # CogVideoX); "noise_level" modulates the tokens whose frames are all given with noise level 0 instead of the
    # sample's (Open-Sora 1.2, Diffusion Forcing); either way given frames enter the network clean
    attention_backend: str = "sdpa"  # "math", "sdpa" or "flash"
    checkpoint_activations: bool = False  # recompute each block in the backward pass instead of storing its activations
    noise_label_scale: float = 1.0  # multiplies the noise label: 1 for DDPM timesteps, 1000 for flow times, 250 for EDM

    @property
    def out_channels(self) -> int:
        return self.in_channels


def block_windows(config: VideoDiTConfig, grid: Tuple[int, int, int]) -> List[Tuple[int, int, int]]:
    """The attention window (t, h, w) of every block, in tokens, from the layout, for a (T', H', W') token grid."""
    frames, height, width = grid
    spatial, temporal = (1, height, width), (frames, 1, 1)
    if config.layout == "spacetime":
        return [tuple(grid)] * config.depth
    if config.layout == "latte_interleaved":
        return [spatial if index % 2 == 0 else temporal for index in range(config.depth)]
    if config.layout == "latte_late_fusion":
        return [spatial if index < config.depth // 2 else temporal for index in range(config.depth)]
    if config.layout == "walt_windows":
        if any(size % side for size, side in zip(grid, config.window)):
            raise ValueError(f"window {tuple(config.window)} does not tile the token grid {tuple(grid)}; choose a "
                             f"window whose sides divide it, or an input size that it tiles")
        return [spatial if index % 2 == 0 else tuple(config.window) for index in range(config.depth)]
    raise ValueError(f"unknown layout {config.layout!r}; choose one of {LAYOUTS}")


def group_into_windows(tokens: torch.Tensor, grid: Tuple[int, int, int],
                       window: Tuple[int, int, int]) -> torch.Tensor:
    """(B, T H W, D) tokens in (t, h, w) order -> (B * windows, t h w, D): one attention sequence per window."""
    (frames, height, width), (wt, wh, ww) = grid, window
    return rearrange(tokens, "b (t wt h wh w ww) d -> (b t h w) (wt wh ww) d",
                     t=frames // wt, wt=wt, h=height // wh, wh=wh, w=width // ww, ww=ww)


def ungroup_windows(windows: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                    batch: int) -> torch.Tensor:
    """The inverse of `group_into_windows`: (B * windows, t h w, D) -> (B, T H W, D)."""
    (frames, height, width), (wt, wh, ww) = grid, window
    return rearrange(windows, "(b t h w) (wt wh ww) d -> b (t wt h wh w ww) d",
                     b=batch, t=frames // wt, h=height // wh, w=width // ww, wt=wt, wh=wh, ww=ww)


def attend_within_windows(tokens: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                          attend: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Self-attention within each window of the token grid: tokens (B, T H W, D) in (t, h, w) order are regrouped
    into one sequence per window, `attend` (B', n, D) -> (B', n, D) runs on every window of every sample as one
    batch, and the result goes back to the tokens' order. A token attends to the t h w tokens of its own window
    alone, so a block costs (T H W / t h w) windows x (t h w)^2 pairs = T H W * t h w pairs, not (T H W)^2."""
    if tokens.dim() != 3 or tokens.shape[1] != math.prod(grid):
        raise ValueError(f"tokens must be (B, T'H'W', D) = (B, {math.prod(grid)}, D) for the token grid "
                         f"{tuple(grid)}; got {tuple(tokens.shape)}")
    if any(size % side for size, side in zip(grid, window)):
        raise ValueError(f"window {tuple(window)} does not tile the token grid {tuple(grid)}; choose a window "
                         f"whose sides divide it")
    # (B, N, D) -> (B N / n, n, D) -> attend -> (B, N, D)
    attended = attend(group_into_windows(tokens, grid, window))
    return ungroup_windows(attended, grid, window, tokens.shape[0])


def adaptive_modulation(layer: nn.Module, c: torch.Tensor, given_c: Optional[torch.Tensor] = None,
                        token_given: Optional[torch.Tensor] = None) -> torch.Tensor:
    """An adaLN modulation layer(c) (B, k D) shared by every token or, with `token_given` (B, N), per token
    (B, N, k D): layer(given_c), the noise level 0's, for given tokens. Each sample has only two distinct values,
    so the layer runs on two vectors per sample rather than on every token (as Open-Sora 1.2 does it)."""
    values = layer(c)
    if token_given is None:
        return values
    return torch.where(token_given[..., None], layer(given_c)[:, None], values[:, None])


class VideoDiTBlock(nn.Module):
    """adaLN-Zero self-attention within windows of the token grid, cross-attention to the caption, then the MLP."""

    def __init__(self, config: VideoDiTConfig):
        super().__init__()
        dim = config.hidden
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attention = Attention(dim, config.heads, config.attention_backend)
        self.text = config.vocabulary_size > 0
        if self.text:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attention = Attention(dim, config.heads, config.attention_backend,
                                             context_dim=config.text_hidden)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, config.mlp_ratio)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
                rotary_angles: Optional[torch.Tensor] = None, text: Optional[torch.Tensor] = None,
                text_mask: Optional[torch.Tensor] = None, given_c: Optional[torch.Tensor] = None,
                token_given: Optional[torch.Tensor] = None,
                sequence: Optional[SequenceSharding] = None) -> torch.Tensor:
        """x (B, N, D) on the token grid (T', H', W'), c (B, D); attention within `window`, turned by
        `rotary_angles` (t h w, D / heads / 2) of positions in the window (RoPE's dot products see only differences,
        so every window shares them); given_c and token_given as `adaptive_modulation` takes them. With `sequence`,
        x is this process's T' / P token frames (B, N / P, D)."""
        modulation = adaptive_modulation(self.modulation, c, given_c, token_given)
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation.chunk(6, dim=-1)
        # x = x + alpha_1 Attn_window(gamma_1 LN(x) + beta_1)
        attended = self.attend(modulate(self.norm1(x), shift1, scale1), grid, window, rotary_angles, sequence)
        x = x + per_token(gate1) * attended
        if self.text:
            # x = x + CrossAttn(LN(x), caption tokens)
            x = x + self.cross_attention(self.norm_cross(x), context=text, key_padding_mask=text_mask)
        # x = x + alpha_2 MLP(gamma_2 LN(x) + beta_2)
        return x + per_token(gate2) * self.mlp(modulate(self.norm2(x), shift2, scale2))

    def attend(self, h: torch.Tensor, grid: Tuple[int, int, int], window: Tuple[int, int, int],
               rotary_angles: Optional[torch.Tensor], sequence: Optional[SequenceSharding]) -> torch.Tensor:
        """Self-attention of h (B, N, D) within each window of the grid; with `sequence`, of this process's token
        frames (B, N / P, D): whole-grid windows by the sharding's method (the rotary angles of its own tokens),
        whole-time windows by DSP (every frame of N' / P positions, then back), windows within its frames
        locally."""
        batch, (frames, height, width) = h.shape[0], grid

        def attend(windows: torch.Tensor) -> torch.Tensor:  # (B', t h w, D), every window turned alike
            return self.attention(windows, rotary_angles=rotary_angles)

        if sequence is None:
            return attend_within_windows(h, grid, window, attend)
        parts = sequence.parts
        if tuple(window) == tuple(grid):  # spacetime: every token attends to every token
            angles = None if rotary_angles is None else sequence.shard(rotary_angles, 0)
            return self.attention(h, rotary_angles=angles, sequence_attention=sequence.attention)
        if window[0] == frames:  # temporal windows (T', 1, 1): shard positions instead of frames
            switched = frames_to_positions(h.reshape(batch, frames // parts, height * width, -1), sequence.group)
            local = (frames, 1, height * width // parts)  # (B, T', N' / P, D) as a grid of its own
            attended = attend_within_windows(switched.flatten(1, 2), local, window, attend)
            return positions_to_frames(attended.reshape(switched.shape), sequence.group).flatten(1, 2)
        local = (frames // parts, height, width)  # windows inside each process's frames
        return attend_within_windows(h, local, window, attend)


class VideoDiT(nn.Module):
    """x (B, C, T, H, W), noise_label (B,), caption ids (B, caption_length) -> (B, C, T, H, W), for any T and any
    H, W the patch divides; with given_mask (B, T) (True: the frame is given) the given frames of `given`
    (B, C, T, H, W) replace those of x, and are marked as `frame_marking` says.

    No size is baked into the weights: positions come from the token grid at call time. A frame count the temporal
    patch does not divide is padded at the front with copies of the first frame, and the copies are dropped from
    the output: a clip of 1 + 2k frames under a 2-frame patch has its first frame alone in the first patch, as
    an image (one frame) is, the way W.A.L.T's causal tokenizer codes the first frame of every clip alone."""

    def __init__(self, config: VideoDiTConfig):
        super().__init__()
        if config.frame_marking not in FRAME_MARKINGS:
            raise ValueError(f"unknown frame_marking {config.frame_marking!r}; choose one of {FRAME_MARKINGS}")
        if config.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {config.layout!r}; choose one of {LAYOUTS}")
        self.config = config
        self.patch = (config.temporal_patch, config.patch_size, config.patch_size)
        dim = config.hidden
        self.patch_embedding = nn.Linear(config.in_channels * math.prod(self.patch), dim)
        self.noise_embedding = TimestepEmbedding(dim, scale=config.noise_label_scale)
        if config.vocabulary_size:
            self.text_encoder = TextEncoder(config.vocabulary_size, config.caption_length, config.text_hidden,
                                            config.text_depth, max(1, config.text_hidden // 32),
                                            config.attention_backend)
            self.caption_projection = nn.Linear(config.text_hidden, dim)  # pooled caption -> c
        self.blocks = nn.ModuleList(VideoDiTBlock(config) for _ in range(config.depth))
        self.final = FinalLayer(config)
        if config.frame_marking == "mask_channel":
            # each token's frames' given flags (pt of them) -> D: a mask channel, constant over each frame
            self.mask_embedding = nn.Linear(config.temporal_patch, dim)
        initialize_adaln_zero(self, self.noise_embedding, [block.modulation[1] for block in self.blocks])
        if config.frame_marking == "mask_channel":
            nn.init.zeros_(self.mask_embedding.weight)  # zero-initialised: an untrained marking changes nothing
            nn.init.zeros_(self.mask_embedding.bias)
        self.tables = {}  # (kind, grid or window, device) -> sin-cos positions or rotary angles, made on first use
        self.sequence: Optional[SequenceSharding] = None  # set while processes share each clip's tokens

    def table(self, kind: str, grid: Tuple[int, int, int], device: torch.device) -> torch.Tensor:
        """The fixed sin-cos positions (1, N, D) of a token grid, or the rotary angles (N, D / heads / 2) of a window,
        computed once per size and device."""
        key = (kind, tuple(grid), str(device))
        if key not in self.tables:
            dim = self.config.hidden
            if kind == "position":
                # a quarter of the channels (even) for the frame, even for images: an image is frame 0 of a clip
                table = sincos_position_embedding(grid, dim, dim // 4 - (dim // 4) % 2)[None]
            else:
                table = rotary_angles(grid, dim // self.config.heads)
            self.tables[key] = table.to(device)
        return self.tables[key]

    def check_inputs(self, x: torch.Tensor, caption: Optional[torch.Tensor], given: Optional[torch.Tensor],
                     given_mask: Optional[torch.Tensor]) -> None:
        config = self.config
        if x.dim() != 5 or x.shape[1] != config.in_channels:
            raise ValueError(f"VideoDiT takes videos (B, {config.in_channels}, T, H, W), got {tuple(x.shape)}")
        check_patchable((1, *x.shape[3:]), (1, config.patch_size, config.patch_size))
        check_denoiser_inputs("VideoDiT", tuple(x.shape[1:]), x, caption, "caption (ids from CaptionTokenizer.encode)",
                              config.vocabulary_size > 0, f"vocabulary_size={config.vocabulary_size}")
        if (given is None) != (given_mask is None):
            raise ValueError("given frames need both `given` (B, C, T, H, W), the clean frames, and `given_mask` "
                             "(B, T), True where a frame is given; got only one of them")
        if given_mask is not None and (given_mask.shape != (x.shape[0], x.shape[2]) or given.shape != x.shape):
            raise ValueError(f"given_mask must be (B, T) = {(x.shape[0], x.shape[2])} and given {tuple(x.shape)}, "
                             f"like x; got {tuple(given_mask.shape)} and {tuple(given.shape)}")

    def check_sequence_sharding(self, grid: Tuple[int, int, int]) -> None:
        """The token grid can be shared by the sharding's processes in every block of this layout."""
        parts, (frames, height, width) = self.sequence.parts, grid
        fix = (f"train sizes whose token frames (frames / temporal_patch) {parts} divides, or use "
               f"--sequence_parallel={math.gcd(frames, parts)}")
        if frames % parts or frames < parts:
            raise ValueError(f"{frames} token frames cannot be shared by {parts} processes (sequence parallelism "
                             f"splits whole token frames); {fix}")
        for window in block_windows(self.config, grid):
            if window[0] == frames and tuple(window) != tuple(grid) and (height * width) % parts:
                raise ValueError(f"temporal blocks switch to sharing positions: {height * width} positions per "
                                 f"frame cannot be shared by {parts} processes; {fix}")
            if window[0] not in (frames, 1) and (frames // parts) % window[0]:
                raise ValueError(f"windows of {window[0]} token frames cross the processes' shares of "
                                 f"{frames // parts}; {fix}")
            if tuple(window) == tuple(grid) and self.sequence.method == "ulysses" and self.config.heads % parts:
                raise ValueError(f"Ulysses shares heads: {self.config.heads} heads cannot be shared by {parts} "
                                 f"processes; use --sequence_method=ring or a head count {parts} divides")

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, caption: Optional[torch.Tensor] = None,
                given: Optional[torch.Tensor] = None, given_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        config = self.config
        self.check_inputs(x, caption, given, given_mask)
        frames = x.shape[2]
        if given_mask is not None:
            given_mask = given_mask.bool()
            x = hold_given_frames(x, given, given_mask)  # given frames enter clean
        padding = -frames % config.temporal_patch
        if padding:  # the causal first frame: copies of frame 0 fill its patch
            x = torch.cat([x[:, :, :1]] * padding + [x], dim=2)
            given_mask = None if given_mask is None else torch.cat([given_mask[:, :1]] * padding + [given_mask], 1)
        grid = check_patchable(x.shape, self.patch)
        sequence = self.sequence
        if sequence is not None:
            self.check_sequence_sharding(grid)
        tokens = self.patch_embedding(patchify(x, self.patch)) + self.table("position", grid, x.device)  # (B, N, D)
        batch, spatial_tokens = x.shape[0], grid[1] * grid[2]
        noise_label = noise_label.expand(batch)
        c = self.noise_embedding(noise_label)  # (B, D)
        given_c = token_given = None
        if given_mask is not None:
            frame_flags = given_mask.view(batch, grid[0], 1, config.temporal_patch)  # (B, T', 1, pt)
            if config.frame_marking == "mask_channel":
                flags = frame_flags.expand(-1, -1, spatial_tokens, -1).reshape(batch, -1, config.temporal_patch)
                tokens = tokens + self.mask_embedding(flags.to(tokens.dtype))  # (B, N, D)
            elif config.frame_marking == "noise_level":
                token_given = frame_flags.all(dim=-1).expand(-1, -1, spatial_tokens).reshape(batch, -1)  # (B, N)
                given_c = self.noise_embedding(torch.zeros_like(noise_label))  # (B, D)
        if sequence is not None:  # this process's token frames: (B, N / P, D)
            tokens = sequence.shard(tokens, 1)
            token_given = None if token_given is None else sequence.shard(token_given, 1)
        text = text_mask = None
        if caption is not None:
            text, text_mask, pooled = self.text_encoder(caption)  # (B, M, D_text), (B, M), (B, D_text)
            caption_c = self.caption_projection(pooled)
            c = c + caption_c
            given_c = None if given_c is None else given_c + caption_c
        windows = block_windows(config, grid)
        for block, window in zip(self.blocks, windows):
            angles = self.table("rotary", window, x.device) if config.rotary else None
            tokens = run_block(block, config.checkpoint_activations, tokens, c, grid, window, angles, text,
                               text_mask, given_c, token_given, sequence)
        shift, scale = adaptive_modulation(self.final.modulation, c, given_c, token_given).chunk(2, dim=-1)
        patches = self.final.linear(modulate(self.final.norm(tokens), shift, scale))
        if sequence is not None:  # every process's tokens, the whole output on each
            patches = sequence.gather(patches, 1)
        out = unpatchify(patches, self.patch, grid)  # (B, C, T, H, W)
        return out[:, :, padding:] if padding else out  # not a view unless it must be (FSDP warns of views)
