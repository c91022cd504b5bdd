"""Pictures with Pillow alone (no plotting library needed by the core): point clouds and loss curves."""
import math
from pathlib import Path
from typing import Dict, Sequence

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
    low, high = min(logs), max(logs)
    span = high - low or 1.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), f"training loss (log scale): {10 ** high:.3g} .. {10 ** low:.3g}", fill="black")
    points = [(40 + i / max(len(logs) - 1, 1) * (width - 60), height - 20 - (v - low) / span * (height - 50))
              for i, v in enumerate(logs)]
    if len(points) > 1:
        draw.line(points, fill=(214, 39, 40), width=2)
    draw.line([(40, height - 20), (width - 20, height - 20)], fill="black")
    draw.line([(40, 30), (40, height - 20)], fill="black")
    image.save(Path(path))
    return image


def save_image_grid(images: torch.Tensor, columns: int, path, scale: int = 4) -> Image.Image:
    """Images (N, 3, 1, H, W) in [-1, 1] as a grid PNG, `columns` per row, each pixel drawn scale x scale."""
    from .data.video_io import enlarge, tile_videos, to_frames

    grid = enlarge(to_frames(tile_videos(images, columns)), scale)[0]  # (rows * H * scale, columns * W * scale, 3)
    image = Image.fromarray(grid)
    image.save(path)
    return image
