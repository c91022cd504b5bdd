"""The trainers' pictures, drawn with matplotlib (without pyplot, so no window and no global state): point clouds,
training curves (the loss, the learning rate, held-out losses) and line plots; and image grids with Pillow."""
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch
from PIL import Image


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def draw_point_panels(panels: Dict[str, torch.Tensor], path, limit: float = 3.0):
    """Side-by-side scatter plots of 2D point sets (title -> (N, 2) tensor) on the square [-limit, limit]^2, with
    axes; saved to path. Returns the matplotlib figure."""
    figure = _figure(3.6 * len(panels), 3.8)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, points) in zip(axes, panels.items()):
        scatter_points(axis, title, points, limit)
    figure.savefig(Path(path))
    return figure


def scatter_points(axis, title: str, points: torch.Tensor, limit: float) -> None:
    """One panel: a titled 2D point set (N, 2) on the square [-limit, limit]^2 of a matplotlib axis."""
    points = points.detach().cpu().double()
    axis.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
    axis.set_title(title, fontsize=9)
    axis.set_xlim(-limit, limit)
    axis.set_ylim(-limit, limit)
    axis.set_aspect("equal")


def smoothed(values: Sequence[float], window: int) -> list:
    """The mean of each value and the `window - 1` before it (fewer at the start): a trailing moving average."""
    totals, running = [], 0.0
    for index, value in enumerate(values):
        running += value
        if index >= window:
            running -= values[index - window]
        totals.append(running / min(index + 1, window))
    return totals


def draw_loss_curve(losses: Sequence[float], path, learning_rates: Optional[Sequence[float]] = None,
                    held_out: Optional[Dict[str, float]] = None):
    """The training loss per step on a log scale (each step faint, a moving average over 2% of the run on top),
    the learning rate on a second axis when given (one per step), and held-out losses (name -> loss at the end of
    the run) as dashed lines; saved to path. Returns the matplotlib figure."""
    if not losses:
        raise ValueError("draw_loss_curve needs at least one loss; the run trained for 0 steps")
    figure = _figure(7.0, 4.2)
    axis = figure.subplots()
    steps = range(1, len(losses) + 1)
    positive = [max(value, 1e-12) for value in losses]
    axis.plot(steps, positive, color="tab:blue", alpha=0.25, linewidth=0.6, label="loss (each step)")
    axis.plot(steps, smoothed(positive, max(1, len(losses) // 50)), color="tab:blue", linewidth=1.6,
              label="loss (moving average)")
    for index, (name, value) in enumerate((held_out or {}).items()):
        axis.axhline(value, color=f"C{index + 2}", linestyle="--", linewidth=1.2, label=f"held-out loss, {name}: {value:.3g}")
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_xlim(1, max(2, len(losses)))
    axis.grid(True, which="both", alpha=0.3)
    handles, labels = axis.get_legend_handles_labels()
    if learning_rates is not None:
        rate_axis = axis.twinx()
        rate_axis.plot(steps, learning_rates, color="tab:orange", linewidth=1.2, label="learning rate")
        rate_axis.set_ylabel("learning rate", color="tab:orange")
        rate_axis.set_ylim(0, 1.05 * max(max(learning_rates), 1e-12))
        more_handles, more_labels = rate_axis.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    figure.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=2)  # below the axes, over no line
    axis.set_title(f"training: {len(losses)} steps, loss {losses[0]:.3g} at the start, "
                   f"{sum(losses[-50:]) / len(losses[-50:]):.3g} over the last {len(losses[-50:])}", fontsize=10)
    figure.savefig(Path(path))
    return figure


def draw_line_plot(series: Dict[str, Tuple[Sequence[float], Sequence[float]]], path, title: str,
                   x_label: str = "", y_label: str = ""):
    """Lines through (x, y) points with markers, one per named series (a legend for names that are not ""), with
    labelled axes; saved to path. Returns the matplotlib figure."""
    figure = _figure(6.4, 3.4)
    axis = figure.subplots()
    for name, (x_values, y_values) in series.items():
        axis.plot(list(x_values), list(y_values), marker="o", markersize=3.5, linewidth=1.4, label=name or None)
    if any(series):
        figure.legend(fontsize=8, loc="outside right upper")  # beside the axes, over no line
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(x_label)
    axis.set_ylabel(y_label)
    axis.grid(True, alpha=0.3)
    figure.savefig(Path(path))
    return figure


def save_image_grid(images: torch.Tensor, columns: int, path, scale: int = 4) -> Image.Image:
    """Images (N, 3, 1, H, W) in [-1, 1] as a grid PNG, `columns` per row, each pixel drawn scale x scale."""
    from .data.video_io import enlarge, tile_videos, to_frames

    grid = enlarge(to_frames(tile_videos(images, columns)), scale)[0]  # (rows * H * scale, columns * W * scale, 3)
    image = Image.fromarray(grid)
    image.save(path)
    return image
