"""Tiny images of simple shapes, with a class label and a caption, generated on the fly and deterministic by seed.

A scene is a list of `Shape`s (what, which colour, how big, where); `render` draws it. The video datasets set the
same scenes in motion by giving each frame its own positions, so a caption like "a small red square" means the
same thing in both. Images follow minisora's convention: (C, T, H, W) floats in [-1, 1], here with T = 1.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (230, 57, 70), "green": (80, 200, 90), "blue": (60, 110, 240), "yellow": (245, 205, 50)}
SIZES = {"small": 0.3, "large": 0.5}  # the shape's extent as a fraction of the image side
BACKGROUND = (24, 24, 32)
SUPERSAMPLING = 4  # draw at 4x and downsample, for smooth edges


@dataclass(frozen=True)
class Shape:
    """One object of a scene; (x, y) is its centre as a fraction of the image's width and height."""
    shape: str
    colour: str
    size: str
    x: float
    y: float

    @property
    def label(self) -> int:
        """The class: shape and colour (size is left to the caption), 0 .. len(SHAPES) * len(COLOURS) - 1."""
        return SHAPES.index(self.shape) * len(COLOURS) + list(COLOURS).index(self.colour)

    @property
    def caption(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


NUM_CLASSES = len(SHAPES) * len(COLOURS)
CLASS_NAMES = [f"{colour} {shape}" for shape in SHAPES for colour in COLOURS]


def random_shape(generator: torch.Generator) -> Shape:
    """A shape, colour and size drawn uniformly, at a position where the whole shape fits in the image."""
    def choice(options):
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    size = choice(list(SIZES))
    half = SIZES[size] / 2
    x, y = (half + (1 - 2 * half) * torch.rand(2, generator=generator)).tolist()
    return Shape(choice(SHAPES), choice(list(COLOURS)), size, x, y)


def new_canvas(height: int, width: Optional[int] = None):
    """A blank supersampled canvas for a frame of `height` x `width` pixels (square when width is None), and its
    drawing context."""
    canvas = Image.new("RGB", (SUPERSAMPLING * (width or height), SUPERSAMPLING * height), BACKGROUND)
    return canvas, ImageDraw.Draw(canvas)


def canvas_to_frame(canvas: Image.Image, height: int, width: Optional[int] = None) -> torch.Tensor:
    """Downsample a supersampled canvas (box filter: smooth edges) to (3, H, W) floats in [-1, 1]."""
    width = width or height
    image = canvas.resize((width, height), Image.Resampling.BOX)
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).reshape(height, width, 3)
    return pixels.permute(2, 0, 1).float() / 127.5 - 1


def draw_shape(draw: ImageDraw.ImageDraw, item: Shape, canvas_width: int, canvas_height: Optional[int] = None
               ) -> None:
    """Draw one shape onto a canvas of `canvas_width` x `canvas_height` pixels (square when the height is None):
    its centre at fractions (x, y) of the width and height, its extent a fraction of the shorter side."""
    if item.shape not in SHAPES or item.colour not in COLOURS or item.size not in SIZES:
        raise ValueError(f"unknown shape {item}; shapes {SHAPES}, colours {list(COLOURS)}, sizes {list(SIZES)}")
    canvas_height = canvas_height or canvas_width
    draw_shape_at(draw, item.shape, item.x * canvas_width, item.y * canvas_height,
                  SIZES[item.size] * min(canvas_width, canvas_height) / 2, COLOURS[item.colour])


def draw_shape_at(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, half: float, fill) -> None:
    """A circle, square or triangle (apex up) centred at (cx, cy) canvas pixels, `half` its half extent, in any fill
    (a colour; or 255 and 0 on a mask, as worlds.py counts an object's visible share)."""
    box = [cx - half, cy - half, cx + half, cy + half]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=fill)


def render(shapes: Sequence[Shape], image_size: int) -> torch.Tensor:
    """Draw a scene: (3, 1, H, W) floats in [-1, 1], H = W = image_size."""
    canvas, draw = new_canvas(image_size)
    for item in shapes:
        draw_shape(draw, item, canvas.width)
    return canvas_to_frame(canvas, image_size).unsqueeze(1)  # (3, 1, H, W)


class ShapesDataset(torch.utils.data.Dataset):
    """`num_items` one-shape images; item i is the same for the same seed: {"image", "label", "caption"}."""

    def __init__(self, num_items: int = 10000, image_size: int = 32, seed: int = 0):
        if image_size < 8:
            raise ValueError(f"image_size {image_size} is too small to draw a shape; use 8 or more (32 and 64 are usual)")
        self.num_items, self.image_size, self.seed = num_items, image_size, seed

    def __len__(self) -> int:
        return self.num_items

    def scene(self, index: int) -> Shape:
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} is outside the dataset of {self.num_items} items")
        return random_shape(torch.Generator().manual_seed(self.seed * 1_000_003 + index))

    def __getitem__(self, index: int) -> dict:
        shape = self.scene(index)
        return {"image": render([shape], self.image_size), "label": shape.label, "caption": shape.caption}

    def tensors(self, limit: Optional[int] = None):
        """The first `limit` items (all by default) as (images (N, 3, 1, H, W), labels (N,), captions)."""
        items = [self[index] for index in range(min(limit or self.num_items, self.num_items))]
        return (torch.stack([item["image"] for item in items]), torch.tensor([item["label"] for item in items]),
                [item["caption"] for item in items])
