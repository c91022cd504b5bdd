"""Released weights in minisora's own modules: the DiT paper's checkpoints (Peebles & Xie 2023) in `models.dit.DiT`.

The paper's code (facebookresearch/DiT, `models.py`) saves a plain state dict; `DiT-XL-2-256x256.pt` and
`DiT-XL-2-512x512.pt` are its released EMA weights. `load_dit(path)` reads one (weights only: no code runs),
works out the configuration from the tensors' shapes, maps every name onto minisora's DiT and refuses a file with
a name it does not know or without one it needs. Three layouts differ between the two codes:

- the patch embedding is a p x p convolution there, a linear map of patchified values here (the same numbers:
  minisora patchifies each patch as (c, row, column), the convolution's weight order);
- the final layer's outputs per token are (row, column, channel) there, (channel, row, column) here;
- the fixed position table is MAE's there (`embeddings.mae_position_embedding`), so the model is built with
  position_layout="mae"; the checkpoint's own table is checked against it.

The attention's fused query-key-value projection splits into minisora's query and key_value maps.

`dit_denoiser(model)` puts a loaded DiT behind minisora's denoiser interface with the paper's diffusion: DDPM's 1000
linear betas from 1e-4 to 0.02, the network predicting the noise in its first C output channels (the other C are
its learned variance, which a deterministic or DDIM-style sampler does not use), so any sampler drives it.
"""
import math
import re
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from torch import nn

from .diffusion.ddpm import split_learned_variance
from .diffusion.denoisers import VPDenoiser
from .diffusion.schedules import alphas_cumprod, linear_betas
from .models.dit import DIT_SIZES, DiT, DiTConfig, position_table
from .train.checkpoint import read_checkpoint

# heads by width, from the paper's Table 1 (the checkpoint's tensors do not say how the width is split)
HEADS_BY_WIDTH = {hidden: heads for _, hidden, heads in DIT_SIZES.values()}
WHERE_TO_GET_DIT = ("the paper's checkpoints are published at https://dl.fbaipublicfiles.com/DiT/models/ "
                    "(DiT-XL-2-256x256.pt, DiT-XL-2-512x512.pt); the DiT repository's download.py fetches them")


class NoiseHead(nn.Module):
    """The noise prediction of a learned-sigma network: the first C of its 2C output channels (the rest are the
    interpolation weights of its variance, Nichol & Dhariwal 2021, Eq. 15)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        return split_learned_variance(self.model(x, t, **cond))[0]


def dit_denoiser(model: DiT) -> VPDenoiser:
    """D(x, sigma, label=...) of a DiT trained as the paper trains it: noise prediction on DDPM's linear schedule
    (Peebles & Xie 2023, Section 4: beta from 1e-4 to 0.02 over 1000 steps), learned sigma or not."""
    network = NoiseHead(model) if model.config.learn_sigma else model
    return VPDenoiser(network, alphas_cumprod(linear_betas()), "epsilon")


def read_state_dict(path: Union[str, Path], where_to_get: str = WHERE_TO_GET_DIT) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (torch.load with weights_only: nothing in it is run); a training
    checkpoint of the paper's train.py gives its "ema" weights. A missing or unreadable file is a clear error."""
    state = read_checkpoint(path, where_to_get, f"download it again ({where_to_get})")
    if isinstance(state, dict) and isinstance(state.get("ema"), dict):
        state = state["ema"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{path} holds no state dict of tensors (found {type(state).__name__}); {where_to_get}")
    return state


def _tensor(state: Dict[str, torch.Tensor], name: str, what: str) -> torch.Tensor:
    if name not in state:
        raise ValueError(f"the checkpoint has no {name!r}: it is not {what} (its first keys: "
                         f"{', '.join(sorted(state)[:5])})")
    return state[name]


def official_dit_config(state: Dict[str, torch.Tensor], heads: Optional[int] = None) -> DiTConfig:
    """The DiTConfig of a state dict in the paper's names, from its tensors' shapes: width, channels and patch
    from the patch embedding, depth from the blocks, input size from the position table, classes from the label
    table, learned sigma from the final layer's outputs; heads from the paper's table for that width unless
    given (a width the paper does not use)."""
    what = "a DiT checkpoint of the paper's code"
    hidden, in_channels, patch, _ = _tensor(state, "x_embedder.proj.weight", what).shape
    depth = len({int(match.group(1)) for name in state for match in [re.match(r"blocks\.(\d+)\.", name)] if match})
    tokens = _tensor(state, "pos_embed", what).shape[1]
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"pos_embed has {tokens} positions, not a square grid: not {what}")
    heads = heads or HEADS_BY_WIDTH.get(hidden)
    if heads is None or hidden % heads:
        raise ValueError(f"a width of {hidden} is none of the paper's DiT sizes ({sorted(HEADS_BY_WIDTH)}), so its "
                         f"heads are unknown: pass heads= (a divisor of {hidden})")
    outputs = _tensor(state, "final_layer.linear.weight", what).shape[0] // patch ** 2
    return DiTConfig(input_size=side * patch, in_channels=in_channels, patch_size=patch, hidden=hidden, depth=depth,
                     heads=heads,
                     mlp_ratio=_tensor(state, "blocks.0.mlp.fc1.weight", what).shape[0] / hidden,
                     num_classes=_tensor(state, "y_embedder.embedding_table.weight", what).shape[0] - 1,
                     class_dropout=0.0, learn_sigma=outputs == 2 * in_channels, position_layout="mae")


def official_to_minisora(state: Dict[str, torch.Tensor], config: DiTConfig) -> Dict[str, torch.Tensor]:
    """The paper's state dict in minisora's DiT names and layouts; every tensor used, or a clear error naming the
    ones left over. The position table is checked (it is a fixed buffer here, computed, not loaded)."""
    dim, patch, outputs = config.hidden, config.patch_size, config.out_channels
    left = dict(state)

    def take(name: str) -> torch.Tensor:
        _tensor(left, name, "a DiT checkpoint of the paper's code")
        return left.pop(name)

    position = take("pos_embed")[0]
    expected = position_table(config)
    if position.shape != expected.shape or not torch.allclose(position.float(), expected, atol=1e-4):
        raise ValueError("the checkpoint's pos_embed is not the sin-cos table of MAE's layout that the paper's code "
                         "computes: the file is damaged or from other code")
    converted = {
        "patch_embedding.weight": take("x_embedder.proj.weight").reshape(dim, -1),  # (D, C p p), (c, row, column)
        "patch_embedding.bias": take("x_embedder.proj.bias"),
        "label_embedding.table.weight": take("y_embedder.embedding_table.weight"),
        "final.modulation.1.weight": take("final_layer.adaLN_modulation.1.weight"),
        "final.modulation.1.bias": take("final_layer.adaLN_modulation.1.bias"),
        # outputs (row, column, channel) there -> (channel, row, column) here
        "final.linear.weight": take("final_layer.linear.weight").reshape(patch, patch, outputs, dim)
        .permute(2, 0, 1, 3).reshape(-1, dim),
        "final.linear.bias": take("final_layer.linear.bias").reshape(patch, patch, outputs).permute(2, 0, 1).flatten(),
    }
    for layer in (0, 2):
        for kind in ("weight", "bias"):
            converted[f"noise_embedding.mlp.{layer}.{kind}"] = take(f"t_embedder.mlp.{layer}.{kind}")
    for index in range(config.depth):
        block = f"blocks.{index}."  # the same prefix in both
        for kind in ("weight", "bias"):
            query_key_value = take(f"{block}attn.qkv.{kind}")  # rows: Q, then K, then V
            converted[f"{block}attention.query.{kind}"] = query_key_value[:dim]
            converted[f"{block}attention.key_value.{kind}"] = query_key_value[dim:]
            for theirs, ours in (("attn.proj", "attention.out"), ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.2"),
                                 ("adaLN_modulation.1", "modulation.1")):
                converted[f"{block}{ours}.{kind}"] = take(f"{block}{theirs}.{kind}")
    if left:
        raise ValueError(f"the checkpoint holds {len(left)} tensors minisora's DiT has no place for: "
                         f"{', '.join(sorted(left)[:6])}; it is not a checkpoint of the paper's DiT")
    return converted


def load_dit(path: Union[str, Path], image_size: Optional[int] = None, heads: Optional[int] = None) -> DiT:
    """minisora's DiT with the weights of a checkpoint saved by the paper's code, in eval mode. `image_size`, when
    given, must be the one the checkpoint was trained for (its latents are image_size / 8 on a side); `heads` is
    needed only for a width that is none of the paper's."""
    state = read_state_dict(path)
    config = official_dit_config(state, heads)
    if image_size is not None and image_size != 8 * config.input_size:
        raise ValueError(f"{path} is a DiT for {8 * config.input_size} x {8 * config.input_size} images (latents "
                         f"{config.input_size} x {config.input_size}), not {image_size}; use the "
                         f"{image_size} x {image_size} checkpoint or --image-size={8 * config.input_size}")
    model = DiT(config)
    model.load_state_dict(official_to_minisora(state, config))
    return model.eval()
