"""Released weights in minisora's own modules: the DiT paper's checkpoints (Peebles & Xie 2023) in `models.dit.DiT`,
and the image autoencoder of latent diffusion (Stable Diffusion's VAE, sd-vae-ft-ema / sd-vae-ft-mse, through which
DiT decodes) in `models.image_vae.ImageVAE`.

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

`load_image_vae(path)` reads either published layout of the autoencoder: latent diffusion's own (a `.ckpt` whose
names are encoder.down.0.block.0..., a whole Stable Diffusion checkpoint's first_stage_model.* included) or a
diffusers folder (config.json with diffusion_pytorch_model.safetensors or .bin; encoder.down_blocks.0.resnets.0...).

`dit_denoiser(model)` puts a loaded DiT behind minisora's denoiser interface with the paper's diffusion: DDPM's 1000
linear betas from 1e-4 to 0.02, the network predicting the noise in its first C output channels and its variance
in the other C, so any sampler drives it: the ODE and DDIM-style samplers use the noise alone, the sampler the
paper samples with (`ddpm_learned_variance`, on 250 respaced steps) the variance too.
"""
import json
import math
import re
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .diffusion.denoisers import VPDenoiser
from .diffusion import get_sampler
from .diffusion.guidance import GuidedDenoiser
from .diffusion.schedules import alphas_cumprod, linear_betas, respace_timesteps, sigmas_from_timesteps
from .models.dit import DIT_SIZES, DiT, DiTConfig, position_table
from .models.image_vae import ImageVAE, ImageVAEConfig
from .randomness import randn
from .checkpoint import read_checkpoint
from .train.precision import PRECISIONS

# heads by width, from the paper's Table 1 (the checkpoint's tensors do not say how the width is split)
HEADS_BY_WIDTH = {hidden: heads for _, hidden, heads in DIT_SIZES.values()}
WHERE_TO_GET_DIT = ("the paper's checkpoints are published at https://dl.fbaipublicfiles.com/DiT/models/ "
                    "(DiT-XL-2-256x256.pt, DiT-XL-2-512x512.pt); `python -m minisora download` fetches the first "
                    "into weights/")


def dit_denoiser(model: DiT) -> VPDenoiser:
    """D(x, sigma, label=...) of a DiT trained as the paper trains it: noise prediction on DDPM's linear schedule
    (Peebles & Xie 2023, Section 4: beta from 1e-4 to 0.02 over 1000 steps), with its learned variance in the last C
    output channels when it has one (`with_variance`, for the sampler that draws with it)."""
    return VPDenoiser(model, alphas_cumprod(linear_betas()), "epsilon", learned_variance=model.config.learn_sigma)


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
                         f"{image_size} x {image_size} checkpoint or image_size={8 * config.input_size}")
    with torch.device("meta"):  # no memory and no random initialisation: every weight comes from the file
        model = DiT(config)
    # float32 whatever the file holds (the released files are float32; a half-precision copy is widened, as a copy
    # into a float32 model would)
    weights = {name: tensor.float() for name, tensor in official_to_minisora(state, config).items()}
    model.load_state_dict(weights, assign=True)
    model.position = position_table(config)[None]  # the fixed table, which no file holds, (1, N, D)
    return model.eval()


WHERE_TO_GET_VAE = ("Stable Diffusion's VAE is published as stabilityai/sd-vae-ft-ema and sd-vae-ft-mse on the "
                    "Hugging Face hub (a diffusers folder), and as vae-ft-mse-840000-ema-pruned.ckpt (latent "
                    "diffusion's layout); `python -m minisora download` fetches sd-vae-ft-ema into weights/")
# latent diffusion's names -> minisora's, in order; {L} is the decoder's level count - 1 (its levels are numbered
# from the full resolution there, from the smallest here)
LATENT_DIFFUSION_NAMES = [
    (r"^(encoder|decoder)\.mid\.block_1\.", r"\1.middle.0."),
    (r"^(encoder|decoder)\.mid\.block_2\.", r"\1.middle.2."),
    (r"^(encoder|decoder)\.mid\.attn_1\.norm\.", r"\1.middle.1.norm."),
    (r"^(encoder|decoder)\.mid\.attn_1\.(q|k|v)\.", r"\1.middle.1.attention.\2."),
    (r"^(encoder|decoder)\.mid\.attn_1\.proj_out\.", r"\1.middle.1.attention.out."),
    (r"^encoder\.down\.(\d+)\.block\.(\d+)\.", r"encoder.levels.\1.blocks.\2."),
    (r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.levels.\1.resize."),
    (r"^decoder\.up\.(\d+)\.block\.(\d+)\.", r"decoder.levels.{L-\1}.blocks.\2."),
    (r"^decoder\.up\.(\d+)\.upsample\.", r"decoder.levels.{L-\1}.resize."),
    (r"\.nin_shortcut\.", ".skip."),
]
DIFFUSERS_NAMES = [
    (r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.middle.0."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.middle.2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.group_norm\.", r"\1.middle.1.norm."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(to_q|query)\.", r"\1.middle.1.attention.q."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(to_k|key)\.", r"\1.middle.1.attention.k."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(to_v|value)\.", r"\1.middle.1.attention.v."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(to_out\.0|proj_attn)\.", r"\1.middle.1.attention.out."),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.levels.\1.blocks.\2."),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.levels.\1.resize."),
    (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", r"decoder.levels.\1.blocks.\2."),
    (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", r"decoder.levels.\1.resize."),
    (r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out."),
    (r"\.conv_shortcut\.", ".skip."),
]


def _renamed(state: Dict[str, torch.Tensor], rules, levels: int) -> Dict[str, torch.Tensor]:
    renamed = {}
    for name, tensor in state.items():
        for pattern, replacement in rules:
            name = re.sub(pattern, replacement, name)
        name = re.sub(r"\{L-(\d+)\}", lambda match: str(levels - 1 - int(match.group(1))), name)
        renamed[name] = tensor
    return renamed


def read_image_vae_state(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], dict]:
    """(the autoencoder's tensors in minisora's names, the diffusers config.json or {}) from a latent-diffusion
    checkpoint file or a diffusers folder."""
    path = Path(path)
    settings = {}
    if path.is_dir():
        config_file = path / "config.json"
        weights = [path / name for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")]
        found = [file for file in weights if file.is_file()]
        if not config_file.is_file() or not found:
            raise FileNotFoundError(f"{path} is not a diffusers autoencoder folder: it needs config.json and "
                                    f"diffusion_pytorch_model.safetensors (or .bin); {WHERE_TO_GET_VAE}")
        settings = json.loads(config_file.read_text())
        state = read_tensors(found[0])
        rules = DIFFUSERS_NAMES
    else:
        state = read_tensors(path)
        if isinstance(state.get("state_dict"), dict):  # a latent-diffusion training checkpoint
            state = state["state_dict"]
        if any(name.startswith("first_stage_model.") for name in state):  # a whole Stable Diffusion checkpoint
            state = {name[len("first_stage_model."):]: tensor for name, tensor in state.items()
                     if name.startswith("first_stage_model.")}
        # the training loss's discriminator and perceptual network ride along in some files; they are not the model
        state = {name: tensor for name, tensor in state.items() if not name.startswith("loss.")}
        rules = DIFFUSERS_NAMES if any(".down_blocks." in name for name in state) else LATENT_DIFFUSION_NAMES
    levels = len({name.split(".")[2] for name in state if re.match(r"^encoder\.(down|down_blocks)\.\d+\.", name)})
    return _renamed(state, rules, levels), settings


def read_tensors(path: Path) -> dict:
    """A .safetensors file (needs the `safetensors` package) or a torch file, read without running any code."""
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"no weights at {path}; {WHERE_TO_GET_VAE}")
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError("reading .safetensors needs the safetensors package: pip install safetensors") from None
        try:
            return load_file(path)
        except Exception as failure:
            raise ValueError(f"{path} is not a readable safetensors file ({type(failure).__name__}: "
                             f"{str(failure)[:200]}); download it again") from None
    state = read_checkpoint(path, WHERE_TO_GET_VAE, f"download it again ({WHERE_TO_GET_VAE})")
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict (found {type(state).__name__}); {WHERE_TO_GET_VAE}")
    return state


def image_vae_config(state: Dict[str, torch.Tensor], settings: dict) -> ImageVAEConfig:
    """The ImageVAEConfig of an autoencoder's tensors (in minisora's names): widths from each level's first block,
    blocks per level, latent channels; groups and scaling factor from a diffusers config, else latent diffusion's."""
    what = "Stable Diffusion's autoencoder"
    channels = _tensor(state, "encoder.conv_in.weight", what).shape[0]
    levels = sorted({int(name.split(".")[2]) for name in state if name.startswith("encoder.levels.")})
    if not levels:
        raise ValueError(f"the checkpoint has no encoder levels: it is not {what}")
    widths = [_tensor(state, f"encoder.levels.{level}.blocks.0.conv1.weight", what).shape[0] for level in levels]
    blocks = len({name.split(".")[4] for name in state if name.startswith("encoder.levels.0.blocks.")})
    return ImageVAEConfig(in_channels=state["encoder.conv_in.weight"].shape[1],
                          latent_channels=_tensor(state, "post_quant_conv.weight", what).shape[0],
                          channels=channels, channel_multipliers=tuple(width // channels for width in widths),
                          blocks_per_level=blocks, groups=settings.get("norm_num_groups", 32),
                          scaling_factor=settings.get("scaling_factor", 0.18215))


def to_image_vae(state: Dict[str, torch.Tensor], model: ImageVAE) -> Dict[str, torch.Tensor]:
    """The renamed tensors as the model holds them: attention's 1 x 1 convolutions as linear maps, keys and values
    joined; every tensor used, every parameter filled, or a clear error naming what is not."""
    converted = {}
    for name, tensor in state.items():
        if ".attention." in name and tensor.dim() == 4:  # latent diffusion's q, k, v, proj_out are 1 x 1 convs
            tensor = tensor[:, :, 0, 0]
        converted[name] = tensor
    for part in ("encoder", "decoder"):
        for kind in ("weight", "bias"):
            key, value = (f"{part}.middle.1.attention.{letter}.{kind}" for letter in "kv")
            if key in converted and value in converted:
                converted[f"{part}.middle.1.attention.key_value.{kind}"] = torch.cat([converted.pop(key),
                                                                                     converted.pop(value)])
            query = f"{part}.middle.1.attention.q.{kind}"
            if query in converted:
                converted[f"{part}.middle.1.attention.query.{kind}"] = converted.pop(query)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(converted)), sorted(set(converted) - set(expected))
    if missing or extra:
        raise ValueError(f"the checkpoint does not fit Stable Diffusion's autoencoder: missing {missing[:4]}, "
                         f"left over {extra[:4]}")
    for name, tensor in converted.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(f"{name} is {tuple(tensor.shape)} in the checkpoint, {tuple(expected[name].shape)} in "
                             f"the autoencoder its other tensors describe: the file is damaged or of another model")
    return converted


def load_image_vae(path: Union[str, Path]) -> ImageVAE:
    """minisora's ImageVAE with the released weights of latent diffusion's KL autoencoder (either layout), in eval
    mode."""
    state, settings = read_image_vae_state(path)
    model = ImageVAE(image_vae_config(state, settings))
    model.load_state_dict(to_image_vae(state, model))
    return model.eval()


@torch.no_grad()
def sample_classes(dit: DiT, vae: ImageVAE, classes: Sequence[int], steps: int = 25, guidance: float = 4.0,
                   sampler: str = "dpmpp_2m", seed: int = 0, guided_channels: Optional[int] = None,
                   precision: str = "fp32") -> torch.Tensor:
    """One image (N, 3, H, W) in [-1, 1] per class label, on the CPU: the DiT's diffusion (`dit_denoiser`) sampled
    by any of minisora's samplers on `steps` of DDPM's timesteps respaced evenly, with classifier-free guidance at
    `guidance` on the first `guided_channels` latent channels (all by default), on the device the DiT is on, its
    matrix products in `precision` (fp32, bf16 or fp16 autocast), decoded by the autoencoder in float32. The paper's
    own sampling is sampler="ddpm_learned_variance", steps=250, guided_channels=3."""
    labels = torch.tensor(list(classes))
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= dit.config.num_classes:
        raise ValueError(f"classes must be among the checkpoint's {dit.config.num_classes} (0 to "
                         f"{dit.config.num_classes - 1}), got {list(classes)}")
    if dit.config.in_channels != vae.config.latent_channels:
        raise ValueError(f"the DiT takes {dit.config.in_channels} latent channels, the autoencoder makes "
                         f"{vae.config.latent_channels}: they are not a pair")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
    device = next(dit.parameters()).device
    denoiser = dit_denoiser(dit).to(device)
    sigmas = sigmas_from_timesteps(denoiser.alphas_cumprod.cpu(), respace_timesteps(1000, steps))
    generator = torch.Generator().manual_seed(seed)
    side = dit.config.input_size
    noise = randn((len(labels), dit.config.in_channels, 1, side, side), generator, device) * sigmas[0]
    guided = GuidedDenoiser(denoiser, guidance, {"label": dit.config.num_classes}, channels=guided_channels)
    with torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=PRECISIONS[precision] is not None):
        latents = get_sampler(sampler)(guided, noise, sigmas, cond={"label": labels.to(device)}, generator=generator)
    # the DiT's x = x_0 + sigma eps is in its training latents: the autoencoder's, scaled
    decoder_device = next(vae.parameters()).device
    return vae.from_latents(latents.float()[:, :, 0].to(decoder_device)).clamp(-1, 1).cpu()


def run_sample_imagenet(dit_path: str, vae_path: str, classes: Sequence[int], steps: int, guidance: float,
                        sampler: str, seed: int, out: str, guided_channels: Optional[int] = None,
                        device: str = "cpu", precision: str = "fp32") -> Path:
    """`python -m minisora sample-imagenet`: load both, sample a row of images, write the PNG grid."""
    from .plotting import save_image_grid

    if not Path(dit_path).is_file():  # both looked for before either is read (a DiT-XL/2 file is 2.7 GB)
        raise FileNotFoundError(f"no DiT checkpoint at {dit_path}; {WHERE_TO_GET_DIT}")
    if not Path(vae_path).exists():
        raise FileNotFoundError(f"no autoencoder at {vae_path}; {WHERE_TO_GET_VAE}")
    dit, vae = load_dit(dit_path).to(device), load_image_vae(vae_path).to(device)
    start = time.time()
    images = sample_classes(dit, vae, classes, steps, guidance, sampler, seed, guided_channels, precision)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(images[:, :, None], columns=len(images), path=path, scale=1)
    print(f"{len(images)} images of classes {', '.join(map(str, classes))} ({steps} {sampler} steps, guidance "
          f"{guidance}) in {time.time() - start:.0f} s on {device}: wrote {path}")
    return path
