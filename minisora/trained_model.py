"""A trained text-to-video model as files: the denoiser built from its configuration, saved and loaded as a run's
model.pt (`save_model`, `load_model`) or as a shareable folder in the Hugging Face Hub's layout (`save_folder`,
`load_folder`: model.safetensors, config.json and a model card), and the VAE's encoding and decoding around it.

The trainer writes these files, the pipeline (pipeline.py) reads them; neither sampling nor scoring imports the
trainer.
"""
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from .checkpoint import read_checkpoint, save_checkpoint
from .diffusion.experts import NoiseLevelExperts
from .diffusion.objectives import NOISE_LABEL_SCALES, wrap_network
from .models.text import CaptionTokenizer
from .models.vae import VideoVAE, VideoVAEConfig
from .models.video_dit import VideoDiT, VideoDiTConfig
from .video_config import VideoConfig, parse_window

KIND = "minisora text-to-video"  # what model.pt and config.json say they hold
FORMAT_VERSION = 1  # of the folder save_pretrained writes
FOLDER_FILES = ("config.json", "model.safetensors")  # what from_pretrained needs in a folder (README.md is the card)


# ---- the model: built from its configuration, saved and loaded ----

def build_denoiser(config: VideoConfig, data_shape: Sequence[int], vocabulary_size: int) -> torch.nn.Module:
    """The video DiT for data (C, T, H, W), conditioned on captions, behind its objective's denoiser."""
    network = VideoDiT(VideoDiTConfig(
        in_channels=data_shape[0], patch_size=config.patch_size,
        temporal_patch=config.temporal_patch, hidden=config.hidden, depth=config.depth, heads=config.heads,
        layout=config.layout, window=parse_window(config.window), rotary=config.rotary,
        vocabulary_size=vocabulary_size, caption_length=config.caption_length, text_hidden=config.text_hidden,
        text_depth=config.text_depth, frame_marking=config.frame_marking,
        attention_backend=config.attention_backend, checkpoint_activations=config.checkpoint_activations,
        noise_label_scale=NOISE_LABEL_SCALES[config.objective]))
    return wrap_network(network, config.objective, config.prediction)


@torch.no_grad()
def encode(vae: Optional[VideoVAE], videos: torch.Tensor, batch_size: int = 32, progress: bool = True
           ) -> torch.Tensor:
    """What the DiT learns: scaled latent means (N, z, t, h, w), or the videos themselves in pixel space."""
    from tqdm.auto import tqdm

    if vae is None:
        return videos
    device = vae.latent_scale.device  # the latents come back to the CPU, where the training sets live
    return torch.cat([vae.to_latents(videos[start:start + batch_size].to(device)).cpu()
                      for start in tqdm(range(0, len(videos), batch_size), desc="encode latents",
                                        disable=not progress)])


@torch.no_grad()
def decode(vae: Optional[VideoVAE], latents: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Videos (N, 3, T, H, W) in [-1, 1] from what the DiT samples."""
    if vae is None:
        return latents.clamp(-1, 1)
    device = vae.latent_scale.device
    return torch.cat([vae.from_latents(latents[start:start + batch_size].to(device)).clamp(-1, 1).cpu()
                      for start in range(0, len(latents), batch_size)])


def _weights(module: torch.nn.Module) -> dict:
    """A module's tensors on the CPU, wherever it ran."""
    return {name: tensor.detach().cpu() for name, tensor in module.state_dict().items()}


def save_model(path: Path, config: VideoConfig, tokenizer: CaptionTokenizer, data_shape: Sequence[int],
               denoiser: torch.nn.Module, vae: Optional[VideoVAE]) -> Path:
    """Everything sampling needs, as tensors, numbers and strings (loadable with weights_only=True); `denoiser` is
    the trained one or NoiseLevelExperts of it and its clean-end expert."""
    experts = isinstance(denoiser, NoiseLevelExperts)
    return save_checkpoint(path, {
        "kind": KIND, "config": asdict(config), "words": tokenizer.words,
        "data_shape": list(data_shape), "model": _weights(denoiser.high if experts else denoiser),
        "expert": _weights(denoiser.low) if experts else None,
        "vae": None if vae is None else {"config": asdict(vae.config), "model": _weights(vae)}})


def _assemble(source, config_fields: dict, words: List[str], data_shape, model: dict, expert: Optional[dict],
              vae: Optional[dict]) -> Tuple[VideoConfig, CaptionTokenizer, Tuple[int, ...], torch.nn.Module,
                                             Optional[VideoVAE]]:
    """(config, tokenizer, data shape, denoiser, VAE or None) from what a model.pt or a saved folder holds."""
    known = {field.name for field in fields(VideoConfig)}
    config = VideoConfig(**{key: value for key, value in config_fields.items() if key in known})
    tokenizer = CaptionTokenizer(words[3:])
    data_shape = tuple(data_shape)

    def with_weights(weights: dict) -> torch.nn.Module:
        denoiser = build_denoiser(config, data_shape, len(tokenizer))
        try:
            denoiser.load_state_dict(weights)
        except RuntimeError as error:
            raise ValueError(f"{source}: its weights do not fit the configuration it names ({str(error)[:300]})"
                             ) from None
        return denoiser

    denoiser = with_weights(model)
    if expert is not None:  # none with expert_steps=0, or in a model written before experts
        denoiser = NoiseLevelExperts(denoiser, with_weights(expert), config.expert_sigma)
    autoencoder = None
    if vae is not None:
        autoencoder = VideoVAE(VideoVAEConfig(**vae["config"]))
        autoencoder.load_state_dict(vae["model"])
        autoencoder.eval()
    return config, tokenizer, data_shape, denoiser.eval(), autoencoder


def load_model(path) -> Tuple[VideoConfig, CaptionTokenizer, Tuple[int, ...], torch.nn.Module, Optional[VideoVAE]]:
    """(config, tokenizer, data shape, EMA denoiser, VAE or None) from a model.pt written by `save_model`; a file
    that is not one is a clear error."""
    state = read_checkpoint(path, "train one with `python -m minisora train --preset tiny`",
                            "train one with `python -m minisora train --preset tiny`")
    if not isinstance(state, dict) or state.get("kind") != KIND:
        found = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a text-to-video model written by `train --preset tiny` (it holds {found}); "
                         f"pass OUT_DIR/model.pt of such a run")
    return _assemble(path, state["config"], state["words"], state["data_shape"], state["model"],
                     state.get("expert"), state["vae"])


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError("saving and loading a model folder needs safetensors: pip install safetensors") from None
    return safetensors.torch


def save_folder(folder, config: VideoConfig, tokenizer: CaptionTokenizer, data_shape: Sequence[int],
                denoiser: torch.nn.Module, vae: Optional[VideoVAE], card: str) -> Path:
    """The shareable form of a model, in the Hugging Face Hub's layout: model.safetensors (the denoiser's tensors
    as model.*, its expert's as expert.*, the VAE's as vae.*), config.json (the configuration, the vocabulary, the
    data shape, the VAE's configuration) and README.md, the model card."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    experts = isinstance(denoiser, NoiseLevelExperts)
    tensors = {f"model.{name}": tensor for name, tensor in _weights(denoiser.high if experts else denoiser).items()}
    if experts:
        tensors.update({f"expert.{name}": tensor for name, tensor in _weights(denoiser.low).items()})
    if vae is not None:
        tensors.update({f"vae.{name}": tensor for name, tensor in _weights(vae).items()})
    # safetensors keeps each tensor once: contiguous copies, so that views of one storage are not refused
    _safetensors().save_file({name: tensor.contiguous() for name, tensor in tensors.items()},
                             str(folder / "model.safetensors"), metadata={"format": "pt", "kind": KIND})
    description = {"kind": KIND, "format_version": FORMAT_VERSION, "config": asdict(config), "words": tokenizer.words,
                   "data_shape": list(data_shape), "expert": experts,
                   "vae": None if vae is None else asdict(vae.config)}
    (folder / "config.json").write_text(json.dumps(description, indent=2) + "\n")
    (folder / "README.md").write_text(card)
    return folder


def load_folder(folder) -> Tuple[VideoConfig, CaptionTokenizer, Tuple[int, ...], torch.nn.Module, Optional[VideoVAE]]:
    """(config, tokenizer, data shape, denoiser, VAE or None) from a folder written by `save_folder`; a missing
    file, another kind of model or another version of the format is a clear error that names it."""
    folder = Path(folder)
    missing = [name for name in FOLDER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {' and '.join(missing)}: a model folder holds "
                                f"{', '.join(FOLDER_FILES)} (and README.md), as TinySora.save_pretrained writes it")
    try:
        description = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder / 'config.json'} is not JSON ({error})") from None
    if description.get("kind") != KIND:
        raise ValueError(f"{folder} holds {description.get('kind')!r}, not a {KIND} model")
    if description.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{folder} was written in format version {description.get('format_version')}; this minisora "
                         f"reads version {FORMAT_VERSION}: save it again with the minisora that wrote it, or update")
    tensors = _safetensors().load_file(str(folder / "model.safetensors"))

    def part(prefix: str) -> dict:
        return {name[len(prefix) + 1:]: tensor for name, tensor in tensors.items() if name.startswith(prefix + ".")}

    vae = None if description["vae"] is None else {"config": description["vae"], "model": part("vae")}
    return _assemble(folder, description["config"], description["words"], description["data_shape"], part("model"),
                     part("expert") if description["expert"] else None, vae)


# ---- the model card ----

def model_card(config: VideoConfig, data_shape: Sequence[int], scores: Optional[dict] = None) -> str:
    """README.md of a saved model: what it learned from, how it was trained, how it scores, what it cannot do."""
    defaults = VideoConfig()
    changed = [f"--{field.name}={getattr(config, field.name)}" for field in fields(VideoConfig)
               if getattr(config, field.name) != getattr(defaults, field.name)
               and field.name not in ("out_dir", "overwrite", "resume", "device")]
    _, frames, height, width = data_shape
    lines = [f"# A tiny text-to-video model ({KIND})", "",
             f"Trained from nothing by minisora on its synthetic **{config.dataset}** world "
             f"(`tiny_datasets/videos.py`): {config.num_clips} rendered clips of {frames} frames of {height}x{width} "
             f"with captions; the held-out captions were never trained on.", "",
             "```bash", "python -m minisora train --preset tiny " + " ".join(changed), "```", "",
             f"A video DiT ({config.depth} blocks of width {config.hidden}, {config.layout} attention, "
             f"{config.objective} objective) on {'pixels' if config.space == 'pixel' else 'VAE latents'}, "
             f"{config.steps} steps" + (f" and {config.expert_steps} of a clean-end expert" if config.expert_steps
                                        else "") + ".", "",
             "```python", "from minisora.pipeline import TinySora", "sora = TinySora.from_pretrained(\"THIS_FOLDER\")",
             "sora.text_to_video(\"a large red square moving right slowly\", num=4).save(\"samples\")", "```", ""]
    if scores and "trained" in scores:
        trained = scores["trained"]
        lines += ["## Scores against the world (held-out captions)", "",
                  "| what | score |", "| --- | --- |",
                  *(f"| text to video: {name} | {trained[name]:.0%} |" for name in ("adherence", "colour", "shape",
                                                                                    "direction", "motion")
                    if name in trained)]
        for task, row in scores.get("tasks", {}).get("trained", {}).items():
            lines.append(f"| {task.replace('_', ' ')}: median track error | {row['track_error_px']:.2f} px |")
        lines.append("")
    lines += ["## Limits", "",
              f"It knows only its world's words ({config.dataset}: colours, shapes, directions, speeds) and draws one "
              f"object on a plain background; it is a teaching model, a few million parameters trained on a CPU. "
              f"Clips longer than {frames} frames are made window by window and drift from the world's truth after "
              f"the first window.", ""]
    return "\n".join(lines)
