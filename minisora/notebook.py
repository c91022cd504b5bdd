"""Helpers for the lesson notebooks: the fast mode the test suite runs them in, and small matplotlib figures."""
import os
from typing import Dict

import torch

# MINISORA_FAST=1 (set by the test suite) makes every lesson run in about a minute: fewer steps, fewer points.
FAST = os.environ.get("MINISORA_FAST", "0") == "1"


def pick(full, fast):
    """`full` normally, `fast` when the lesson runs in fast mode."""
    return fast if FAST else full


def scatter_panels(panels: Dict[str, torch.Tensor], limit: float = 3.0, size: float = 3.0):
    """Side-by-side scatter plots of 2D point sets (title -> (N, 2) tensor); returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for axis, (title, points) in zip(axes[0], panels.items()):
        points = points.detach().cpu().double()
        axis.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        axis.set_title(title, fontsize=9)
        axis.set_xlim(-limit, limit)
        axis.set_ylim(-limit, limit)
        axis.set_aspect("equal")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    return figure


def record_trajectory(sampler, denoiser, x, sigmas, **options):
    """Run a sampler and return (final x, trajectory (steps + 1, N, D)) using its callback."""
    states = [x.clone()]
    final = sampler(denoiser, x, sigmas, callback=lambda info: states.append(info["x"].clone()), **options)
    return final, torch.stack(states)
