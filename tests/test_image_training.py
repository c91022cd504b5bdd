"""A tiny class-conditional DiT trained for seconds on the shapes images learns: its guided samples are judged
far above chance by the in-repo classifier, and much closer to real images than an untrained model's."""
import torch

from minisora.models.classifier import train_classifier
from minisora.train.images import ImagesConfig, evaluate_images, train_images
from tiny_datasets.shapes import NUM_CLASSES, ShapesDataset


def test_tiny_dit_learns_the_shapes_classes():
    config = ImagesConfig(steps=700, learning_rate=2e-3, hidden=64, depth=2, batch_size=32, ema_decay=0.98,
                          num_images=2000, samples_per_class=8, sampling_steps=12)
    images, labels, _ = ShapesDataset(config.num_images, config.image_size, seed=0).tensors()
    ema, losses = train_images(config, images, labels, progress=False)
    assert sum(losses[-50:]) < 0.5 * sum(losses[:50])
    judge = train_classifier(images, labels, NUM_CLASSES)
    assert judge[1] > 0.95
    scores = evaluate_images(ema, config, images, labels, judge)
    chance = 1 / NUM_CLASSES
    # measured at this setting: 42% (5x chance) against 8% untrained; Frechet 164 against 387
    assert scores["trained"]["class_accuracy"] > 3 * chance
    assert scores["trained"]["class_accuracy"] > scores["untrained"]["class_accuracy"] + 0.15
    assert scores["trained"]["frechet_distance"] < 0.7 * scores["untrained"]["frechet_distance"]
    assert scores["samples"].shape == (NUM_CLASSES * 8, 3, 1, 16, 16) and torch.isfinite(scores["samples"]).all()


def test_every_case_of_the_accuracy_benchmark_builds():
    """benchmarks/images_class_accuracy.py's cases stay valid configurations as the trainer changes."""
    import importlib.util
    from pathlib import Path

    from minisora.train.images import build_denoiser

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "images_class_accuracy.py"
    spec = importlib.util.spec_from_file_location("images_class_accuracy", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {"edm_lr1e-3", "edm_lr2e-3", "flow_lr2e-3", "uvit_edm_lr2e-3"} <= set(module.CASES)
    for config in module.CASES.values():
        denoiser = build_denoiser(config)
        x = torch.randn(2, 3, 1, config.image_size, config.image_size)
        assert denoiser(x, torch.ones(2), label=torch.tensor([0, NUM_CLASSES])).shape == x.shape
