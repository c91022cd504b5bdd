"""Train a diffusion model on a 2D toy distribution, on CPU in seconds: the end-to-end demo of lessons 01-05.

`python -m minisora train --preset toy2d` runs `train_toy2d` and `write_toy2d_report`.
"""
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from tiny_datasets.toy2d import sample_toy
from ..config import check_ranges
from ..diffusion import get_sampler
from ..diffusion.ddpm import ddpm_loss
from ..diffusion.denoisers import VPDenoiser
from ..diffusion.edm import EDMDenoiser, edm_loss
from ..diffusion.samplers import check_sampler
from ..diffusion.schedules import alphas_cumprod, karras_sigmas, linear_betas
from ..metrics import sliced_wasserstein
from ..models.mlp import ToyMLP, ToyMLPConfig
from ..parallel import data_parallel
from ..parallel.batch import BatchShard
from ..parallel.data_parallel import DataParallel, check_parallel_mode, unsharded
from ..checkpoint import check_run_folder, save_checkpoint
from .loop import train_loop
from ..diffusion.objectives import around, network_of


# the range of every numeric field of Toy2DConfig
TOY2D_CONFIG_RANGES = {
    "steps": "[1, inf)", "batch_size": "[1, inf)", "learning_rate": "(0, inf)", "hidden": "[1, inf)",
    "depth": "[1, inf)", "sigma_data": "(0, inf)", "ema_decay": "[0, 1)", "sampling_steps": "[1, inf)",
    "num_samples": "[1, inf)", "seed": "[0, inf)",
}


@dataclass
class Toy2DConfig:
    dataset: str = "moons"  # one of tiny_datasets.toy2d.DATASETS: ring, skewed, moons, spiral
    objective: str = "edm"  # "edm" (Karras et al. loss and preconditioning) or "ddpm" (Ho et al. Algorithm 1)
    prediction: str = "epsilon"  # for objective=ddpm: what the network predicts, epsilon, x0 or v
    steps: int = 3000  # optimizer steps
    batch_size: int = 512  # points per step, drawn fresh from the distribution
    learning_rate: float = 2e-3  # AdamW learning rate
    hidden: int = 128  # MLP width
    depth: int = 3  # MLP hidden layers
    sigma_data: float = 1.0  # EDM's sigma_data: the data's standard deviation (the toy sets are about unit scale)
    ema_decay: float = 0.995  # EMA of weights used for sampling
    sampler: str = "heun"  # any name in minisora.diffusion.SAMPLERS
    sampling_steps: int = 32  # steps of the sampler (Karras sigmas)
    num_samples: int = 2000  # points drawn for the report
    seed: int = 0  # seeds data, initialisation and sampling
    parallel: str = "ddp"  # how the processes of `torchrun --nproc_per_node=N -m minisora train` share the training:
    # "ddp" or "fsdp" (parallel/data_parallel.py); one process ignores it
    out_dir: str = "runs/toy2d"  # where the report and model.pt go
    overwrite: bool = False  # replace a finished run in out_dir (otherwise an error)

    def __post_init__(self):
        check_ranges(self, TOY2D_CONFIG_RANGES)
        check_parallel_mode(self.parallel)
        check_sampler(self.sampler)


def build_denoiser(config: Toy2DConfig) -> torch.nn.Module:
    """The MLP wrapped as D(x, sigma) for the chosen objective."""
    if config.objective == "edm":
        # EDM's c_noise = ln(sigma)/4 spans about [-1.5, 1.1]; scale it to the range sinusoidal embeddings resolve
        net = ToyMLP(ToyMLPConfig(hidden=config.hidden, depth=config.depth, noise_label_scale=250.0))
        return EDMDenoiser(net, sigma_data=config.sigma_data)
    if config.objective == "ddpm":
        net = ToyMLP(ToyMLPConfig(hidden=config.hidden, depth=config.depth))
        return VPDenoiser(net, alphas_cumprod(linear_betas()), config.prediction)
    raise ValueError(f"unknown objective {config.objective!r}; choose 'edm' or 'ddpm'")


def loss_function(config: Toy2DConfig, denoiser: torch.nn.Module, shard: Optional[BatchShard] = None) -> Callable:
    """loss(generator) on a fresh batch, for the chosen objective (with a `shard`, this process's rows of it)."""
    def loss_of_batch(generator):
        x0 = sample_toy(config.dataset, config.batch_size, generator)
        if config.objective == "edm":
            return edm_loss(denoiser, x0, sigma_data=config.sigma_data, generator=generator, shard=shard)
        return ddpm_loss(network_of(denoiser), x0, denoiser.alphas_cumprod, config.prediction, generator, shard=shard)

    return loss_of_batch


def train_toy2d(config: Toy2DConfig, progress: bool = True, parallel: Optional[DataParallel] = None):
    """Train, on this process or as one of the processes of `parallel`; returns (denoiser, ema_denoiser, losses).
    Deterministic on CPU for a given seed, and the same on any number of processes."""
    torch.manual_seed(config.seed)
    denoiser = build_denoiser(config)
    trained, ema = (denoiser, None) if parallel is None else parallel.view(denoiser, network_of, around)
    shard = None if parallel is None else parallel.shard
    ema, losses = train_loop(denoiser, loss_function(config, trained, shard), config.steps, config.learning_rate,
                             config.ema_decay, config.seed, f"train {config.dataset} ({config.objective})", progress,
                             parallel=parallel, ema=ema)
    return denoiser, unsharded(ema, lambda: build_denoiser(config)), losses


@torch.no_grad()
def sample_toy2d(denoiser: Callable, config: Toy2DConfig, num_samples: Optional[int] = None) -> torch.Tensor:
    """Draw points with the configured sampler from noise at sigma_max = 80."""
    generator = torch.Generator().manual_seed(config.seed + 1)
    sigmas = karras_sigmas(config.sampling_steps).float()
    x = torch.randn(num_samples or config.num_samples, 2, generator=generator) * sigmas[0]
    return get_sampler(config.sampler)(denoiser, x, sigmas, generator=generator)


def evaluate_toy2d(denoiser: Callable, config: Toy2DConfig) -> dict:
    """Sliced Wasserstein distance of the samples, of an untrained model's samples, and of fresh draws of the data
    itself (the floor that finite samples allow, averaged over 5 draws), all against one held-out draw of the data."""
    reference = sample_toy(config.dataset, config.num_samples, torch.Generator().manual_seed(config.seed + 2))
    samples = sample_toy2d(denoiser, config)
    torch.manual_seed(config.seed + 4)
    untrained = sample_toy2d(build_denoiser(config).eval(), config)

    def distance(points):
        return float(sliced_wasserstein(points, reference, generator=torch.Generator().manual_seed(0)))

    floor = sum(distance(sample_toy(config.dataset, config.num_samples, torch.Generator().manual_seed(config.seed + 10 + i)))
                for i in range(5)) / 5
    return {"samples": distance(samples), "untrained": distance(untrained), "data_floor": floor, "points": samples}


def write_toy2d_report(config: Toy2DConfig, losses: list, scores: dict, seconds: float) -> Path:
    """Write samples.png (data beside samples), loss.png and metrics.json into config.out_dir."""
    from ..plotting import draw_loss_curve, draw_point_panels
    from .loop import learning_rates

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = sample_toy(config.dataset, config.num_samples, torch.Generator().manual_seed(config.seed + 2))
    draw_point_panels({"data": data, f"samples ({config.sampler}, {config.sampling_steps} steps)": scores["points"]},
                      out / "samples.png")
    draw_loss_curve(losses, out / "loss.png", learning_rates(config.learning_rate, config.steps))
    metrics = {key: value for key, value in scores.items() if key != "points"}
    metrics.update(config=asdict(config), train_seconds=round(seconds, 1), final_loss=sum(losses[-100:]) / 100)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return out


def run_toy2d(config: Toy2DConfig) -> dict:
    """Train, evaluate and report: the whole demo. Launched by torchrun, every process trains; process 0 alone
    evaluates and writes, the others return {}."""
    check_run_folder(config.out_dir, config.overwrite)
    parallel = data_parallel.start(config.parallel, "cpu")
    start = time.time()
    _, ema, losses = train_toy2d(config, parallel=parallel)
    seconds = time.time() - start
    data_parallel.finish(parallel)
    if parallel is not None and not parallel.is_main:
        return {}
    scores = evaluate_toy2d(ema, config)
    out = write_toy2d_report(config, losses, scores, seconds)
    save_checkpoint(out / "model.pt", {"config": asdict(config), "model": ema.state_dict()})
    print(f"trained {config.steps} steps in {seconds:.0f} s; sliced Wasserstein distance to held-out data:")
    print(f"  {'samples':<12}{scores['samples']:.4f}\n  {'untrained':<12}{scores['untrained']:.4f}"
          f"\n  {'data floor':<12}{scores['data_floor']:.4f}  (fresh draws of the data itself, the best to expect)")
    print(f"wrote {out / 'samples.png'}, {out / 'loss.png'}, {out / 'metrics.json'} and the EMA weights in "
          f"{out / 'model.pt'}")
    return scores
