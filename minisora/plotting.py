"""Pictures with Pillow alone (no plotting library needed by the core): point clouds, loss curves, line plots."""
import math
from pathlib import Path
from typing import Dict, Sequence, Tuple

import torch
from PIL import Image, ImageDraw

PANEL = 360  # pixels per side of one scatter panel
MARGIN = 24  # pixels for a panel's title


def draw_point_panels(panels: Dict[str, torch.Tensor], path, limit: float = 3.0) -> Image.Image:
    """Side-by-side scatter plots of 2D point sets, each titled, on the square [-limit, limit]^2; saved to path."""
    image = Image.new("RGB", (PANEL * len(panels), PANEL + MARGIN), "white")
    draw = ImageDraw.Draw(image)
    for index, (title, points) in enumerate(panels.items()):
        left = index * PANEL
        draw.text((left + 8, 6), title, fill="black")
        draw.rectangle([left + 4, MARGIN, left + PANEL - 4, MARGIN + PANEL - 8], outline=(180, 180, 180))
        pixels = (points.detach().double().clamp(-limit, limit) + limit) / (2 * limit) * (PANEL - 16) + 8
        for x, y in pixels.tolist():
            px, py = left + x, MARGIN + (PANEL - 8) - y
            draw.ellipse([px - 1.2, py - 1.2, px + 1.2, py + 1.2], fill=(31, 119, 180))
    image.save(path)
    return image


def draw_loss_curve(losses: Sequence[float], path, width: int = 640, height: int = 320) -> Image.Image:
    """A loss curve on a log scale, smoothed over windows of 1% of the run; saved to path."""
    window = max(1, len(losses) // 100)
    smooth = [sum(losses[i:i + window]) / len(losses[i:i + window]) for i in range(0, len(losses), window)]
    logs = [math.log10(max(value, 1e-12)) for value in smooth]
    title = f"training loss (log scale): {10 ** max(logs):.3g} .. {10 ** min(logs):.3g}"
    return draw_line_plot({"": (list(range(len(logs))), logs)}, path, title, width=width, height=height)


COLOURS = [(214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189)]


def draw_line_plot(series: Dict[str, Tuple[Sequence[float], Sequence[float]]], path, title: str,
                   x_label: str = "", y_label: str = "", width: int = 640, height: int = 320) -> Image.Image:
    """Lines through (x, y) points, one colour per named series (a legend for names that are not ""), on axes that
    span the data, the ranges written at their ends; saved to path."""
    xs = [x for values, _ in series.values() for x in values]
    ys = [y for _, values in series.values() for y in values if math.isfinite(y)]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), title, fill="black")
    left, right, top, bottom = 48, width - 20, 30, height - 30

    def at(x, y):
        return left + (x - x_low) / x_span * (right - left), bottom - (y - y_low) / y_span * (bottom - top)

    for index, (name, (x_values, y_values)) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        points = [at(x, y) for x, y in zip(x_values, y_values) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if len(series) > 1 or len(points) < 20:  # few points: mark them
            for px, py in points:
                draw.ellipse([px - 2.5, py - 2.5, px + 2.5, py + 2.5], fill=colour)
        if name:
            draw.text((right - 150, top + 14 * index), name, fill=colour)
    draw.line([(left, bottom), (right, bottom)], fill="black")
    draw.line([(left, top), (left, bottom)], fill="black")
    if x_label or y_label:
        draw.text((left, bottom + 4), f"{x_label} {x_low:.3g} .. {x_high:.3g}", fill="black")
        draw.text((8, top - 12 if top > 12 else top), f"{y_label} {y_low:.3g} .. {y_high:.3g}", fill="black")
    image.save(Path(path))
    return image


def save_image_grid(images: torch.Tensor, columns: int, path, scale: int = 4) -> Image.Image:
    """Images (N, 3, 1, H, W) in [-1, 1] as a grid PNG, `columns` per row, each pixel drawn scale x scale."""
    from .data.video_io import enlarge, tile_videos, to_frames

    grid = enlarge(to_frames(tile_videos(images, columns)), scale)[0]  # (rows * H * scale, columns * W * scale, 3)
    image = Image.fromarray(grid)
    image.save(path)
    return image
