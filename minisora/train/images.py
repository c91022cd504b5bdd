"""Class-conditional diffusion on the tiny shapes images: a DiT or U-ViT, trained with EDM's or SiT's objective,
sampled with classifier-free guidance, and judged by the in-repo classifier (lessons 07-09).

`python -m minisora train --preset images` runs `run_images`.
"""
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from tiny_datasets.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset
from ..config import check_ranges
from ..diffusion import get_sampler
from ..diffusion.guidance import GuidedDenoiser, drop_condition
from ..diffusion.samplers import check_sampler
from ..diffusion.schedules import karras_sigmas
from ..metrics import frechet_distance
from ..models.classifier import class_accuracy, train_classifier
from ..models.dit import DiT, DiTConfig
from ..models.uvit import UViT, UViTConfig
from ..parallel import data_parallel
from ..parallel.data_parallel import DataParallel, check_parallel_mode, unsharded
from ..checkpoint import check_run_folder, save_checkpoint
from .loop import train_loop
from ..diffusion.objectives import (NOISE_LABEL_SCALES, around, check_objective, network_of, objective_loss,
                         wrap_network)


# the range of every numeric field of ImagesConfig
IMAGES_CONFIG_RANGES = {
    "image_size": "[8, inf)", "num_images": "[1, inf)", "hidden": "[1, inf)", "depth": "[1, inf)",
    "heads": "[1, inf)", "patch_size": "[1, inf)", "steps": "[1, inf)", "batch_size": "[1, inf)",
    "learning_rate": "(0, inf)", "ema_decay": "[0, 1)", "class_dropout": "[0, 1]", "sampling_steps": "[1, inf)",
    "guidance": "[0, inf)", "samples_per_class": "[1, inf)", "seed": "[0, inf)",
}


@dataclass
class ImagesConfig:
    image_size: int = 16  # side of the shapes images (16 or 32 on CPU)
    num_images: int = 5000  # training images, rendered once
    model: str = "dit"  # "dit" or "uvit"
    hidden: int = 96  # token width
    depth: int = 4  # transformer blocks (odd for U-ViT: one more is added if even)
    heads: int = 4  # attention heads
    patch_size: int = 2  # spatial patch side
    conditioning: str = "adaln_zero"  # DiT only: adaln_zero, adaln, cross_attention or in_context (DiT Section 3.2)
    objective: str = "edm"  # "edm" (Karras et al.) or "flow" (SiT: linear path, velocity)
    steps: int = 3000  # optimizer steps (about 7 minutes on 2 CPU cores; 2000 reach only ~60% class accuracy)
    batch_size: int = 64  # images per step
    learning_rate: float = 2e-3  # AdamW's peak (1e-3 reaches ~60% class accuracy in 3000 steps, 2e-3 ~97%)
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (autocast, float32 master weights; for GPUs: fp16 crawls on CPUs)
    checkpoint_activations: bool = False  # recompute each transformer block in the backward pass (less memory)
    ema_decay: float = 0.995  # EMA of weights used for sampling (0.999 keeps 13% of the initial weights after 2000 steps)
    class_dropout: float = 0.1  # label dropout for classifier-free guidance
    sampler: str = "heun"  # any name in minisora.diffusion.SAMPLERS
    sampling_steps: int = 20  # sampler steps (Karras sigmas)
    guidance: float = 4.0  # classifier-free guidance scale (1 = none)
    samples_per_class: int = 8  # generated per class for the grid and the scores
    seed: int = 0  # seeds data, initialisation, training and sampling
    parallel: str = "ddp"  # how the processes of `torchrun --nproc_per_node=N -m minisora train` share the training:
    # "ddp" or "fsdp" (parallel/data_parallel.py); one process ignores it
    out_dir: str = "runs/images"  # where the grid, metrics and model.pt go
    overwrite: bool = False  # replace a finished run in out_dir (otherwise an error)

    def __post_init__(self):
        check_ranges(self, IMAGES_CONFIG_RANGES)
        check_parallel_mode(self.parallel)
        check_sampler(self.sampler)


def build_denoiser(config: ImagesConfig) -> torch.nn.Module:
    """The network, conditioned on the class, behind the denoiser wrapper of its objective."""
    noise_label_scale = NOISE_LABEL_SCALES[check_objective(config.objective)]
    shared = dict(input_size=config.image_size, in_channels=3, patch_size=config.patch_size, hidden=config.hidden,
                  heads=config.heads, num_classes=NUM_CLASSES, noise_label_scale=noise_label_scale,
                  checkpoint_activations=config.checkpoint_activations)
    if config.model == "dit":
        # label dropout happens in the loss for both models, so the DiT's own is off
        network = DiT(DiTConfig(depth=config.depth, learn_sigma=False, class_dropout=0.0,
                                conditioning=config.conditioning, **shared))
    elif config.model == "uvit":
        network = UViT(UViTConfig(depth=config.depth | 1, **shared))
    else:
        raise ValueError(f"unknown model {config.model!r}; choose 'dit' or 'uvit'")
    return wrap_network(network, config.objective)


def train_images(config: ImagesConfig, images: torch.Tensor, labels: torch.Tensor, progress: bool = True,
                 parallel: Optional[DataParallel] = None):
    """Train on images (N, 3, 1, H, W) with labels (N,), on this process or as one of the processes of `parallel`
    (each drawing the whole batch and training on its rows); returns (ema denoiser, losses)."""
    torch.manual_seed(config.seed)
    denoiser = build_denoiser(config)
    trained, ema = (denoiser, None) if parallel is None else parallel.view(denoiser, network_of, around)
    shard = None if parallel is None else parallel.shard

    def loss_of_batch(generator):
        index = torch.randint(len(images), (config.batch_size,), generator=generator)
        label = drop_condition(labels[index], config.class_dropout, NUM_CLASSES, generator)
        return objective_loss(trained, images[index], config.objective, generator, shard=shard, label=label)

    ema, losses = train_loop(denoiser, loss_of_batch, config.steps, config.learning_rate, config.ema_decay,
                             config.seed, f"train {config.model} on shapes ({config.objective})", progress,
                             precision=config.precision, parallel=parallel, ema=ema)
    return unsharded(ema, lambda: build_denoiser(config)), losses


@torch.no_grad()
def sample_images(denoiser: torch.nn.Module, config: ImagesConfig) -> tuple:
    """samples_per_class images of every class with guidance; returns (images (N, 3, 1, H, W), labels (N,))."""
    labels = torch.arange(NUM_CLASSES).repeat_interleave(config.samples_per_class)
    generator = torch.Generator().manual_seed(config.seed + 1)
    sigmas = karras_sigmas(config.sampling_steps)
    noise = torch.randn(len(labels), 3, 1, config.image_size, config.image_size, generator=generator) * sigmas[0]
    guided = GuidedDenoiser(denoiser.eval(), config.guidance, {"label": NUM_CLASSES})
    samples = get_sampler(config.sampler)(guided, noise, sigmas, cond={"label": labels}, generator=generator)
    return samples.clamp(-1, 1), labels


def evaluate_images(denoiser: torch.nn.Module, config: ImagesConfig, images: torch.Tensor, labels: torch.Tensor,
                    judge=None) -> dict:
    """Class accuracy and Frechet distance (classifier features) of guided samples, for the trained and an
    untrained model; the classifier is trained on the real images unless one is given as (classifier, accuracy)."""
    classifier, judge_accuracy = judge or train_classifier(images, labels, NUM_CLASSES, seed=config.seed)
    real = ShapesDataset(min(len(labels), 1000), config.image_size, seed=config.seed + 99).tensors()[0]  # unseen scenes
    scores = {"classifier_accuracy_on_real": judge_accuracy}
    torch.manual_seed(config.seed + 5)
    for name, model in (("trained", denoiser), ("untrained", build_denoiser(config))):
        samples, sample_labels = sample_images(model, config)
        with torch.no_grad():
            distance = frechet_distance(classifier.features(samples), classifier.features(real))
        scores[name] = {"class_accuracy": class_accuracy(classifier, samples, sample_labels),
                        "frechet_distance": float(distance)}
        if name == "trained":
            scores["samples"] = samples
    return scores


def run_images(config: ImagesConfig) -> dict:
    """Render the data, train, sample, judge, and write grid.png, loss.png, metrics.json and model.pt. Launched by
    torchrun, every process trains; process 0 alone judges and writes, the others return {}."""
    from ..plotting import draw_loss_curve, save_image_grid
    from .loop import learning_rates

    check_run_folder(config.out_dir, config.overwrite)
    parallel = data_parallel.start(config.parallel, "cpu")
    images, labels, _ = ShapesDataset(config.num_images, config.image_size, seed=config.seed).tensors()
    start = time.time()
    ema, losses = train_images(config, images, labels, parallel=parallel)
    seconds = time.time() - start
    data_parallel.finish(parallel)
    if parallel is not None and not parallel.is_main:
        return {}
    scores = evaluate_images(ema, config, images, labels)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "model.pt", {"config": asdict(config), "model": ema.state_dict()})
    save_image_grid(scores.pop("samples"), config.samples_per_class, out / "grid.png")
    draw_loss_curve(losses, out / "loss.png", learning_rates(config.learning_rate, config.steps))
    (out / "metrics.json").write_text(json.dumps({**scores, "config": asdict(config), "train_seconds": round(seconds, 1),
                                                  "rows": CLASS_NAMES}, indent=2))
    chance = 1 / NUM_CLASSES
    print(f"trained {config.steps} steps in {seconds:.0f} s; guided samples (scale {config.guidance}) judged by a "
          f"classifier with {scores['classifier_accuracy_on_real']:.0%} accuracy on real images:")
    for name in ("trained", "untrained"):
        print(f"  {name:<10} class accuracy {scores[name]['class_accuracy']:.1%} (chance {chance:.1%}), "
              f"Frechet distance {scores[name]['frechet_distance']:.2f}")
    print(f"wrote {out / 'grid.png'} (a row per class: {', '.join(CLASS_NAMES)}), loss.png, metrics.json and the EMA "
          f"weights in model.pt")
    return scores
