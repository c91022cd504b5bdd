"""Tiny procedural video datasets with captions and ground truth, deterministic by seed, needing no download.

Three worlds, each at any side (32 and 64 are usual) and any number of frames (17 = 1 + 4 * 4 suits a causal VAE
that keeps the first frame alone and compresses time by 4):

- `MovingShapes`: the shapes images' scenes in motion. One shape moves in one of eight directions at one of two
  speeds and bounces off the walls: "a small red circle moving left quickly".
- `MovingDigits`: Moving MNIST's idea (Srivastava et al. 2015) with digits drawn in Pillow's bundled font: one or
  two white digits drifting and bouncing, "a 3 moving up-right slowly and a 7 moving down quickly".
- `BouncingBall`: a ball under constant gravity that bounces off the floor (losing a little speed) and the walls,
  integrated exactly from bounce to bounce: "a red ball bouncing to the right".

Every item is {"video": (3, T, H, W) floats in [-1, 1], "caption": str, "truth": [Track, ...]}: the truth says what
each object is and where its centre is in every frame, so a generated video can be scored against the world it
should simulate.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from PIL import ImageDraw, ImageFont

from .shapes import COLOURS, SHAPES, SIZES, Shape, canvas_to_frame, draw_shape, new_canvas

# unit vectors of the eight directions in image coordinates (x to the right, y down)
DIRECTIONS = {
    "right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up-right": (math.sqrt(0.5), -math.sqrt(0.5)), "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)), "down-left": (-math.sqrt(0.5), math.sqrt(0.5)),
}
SPEEDS = {"slowly": 0.03, "quickly": 0.06}  # distance per frame as a fraction of the side
DIGIT_HEIGHT = 0.5  # a digit's font size as a fraction of the side
DIGIT_COLOUR = (240, 240, 240)
BALL_DIAMETER = 0.2  # as a fraction of the side
GRAVITY = 0.012  # downward acceleration, fraction of the side per frame squared
RESTITUTION = 0.85  # the ball keeps this fraction of its vertical speed at each bounce off the floor
REST_SPEED = 1e-3  # below this vertical speed at the floor the ball stops bouncing


@dataclass(frozen=True)
class Track:
    """One object through a clip: what it is, and where its centre is in every frame (fractions of the side)."""
    kind: str  # "shape", "digit" or "ball"
    name: str  # the shape ("circle", "square", "triangle"), the digit ("0" .. "9") or "ball"
    colour: str  # a name in shapes.COLOURS, or "white" for digits
    extent: float  # the object's size as a fraction of the side
    direction: str  # the caption's direction: a key of DIRECTIONS, or "left"/"right" for the ball
    speed: str  # a key of SPEEDS, or "" for the ball (gravity sets its speed)
    positions: Tuple[Tuple[float, float], ...]  # (x, y) of the centre, one pair per frame

    def as_dict(self) -> dict:
        """JSON-ready, positions rounded to 1e-5 of the side."""
        return {"kind": self.kind, "name": self.name, "colour": self.colour, "extent": self.extent,
                "direction": self.direction, "speed": self.speed,
                "positions": [[round(x, 5), round(y, 5)] for x, y in self.positions]}


def choice(options: Sequence, generator: torch.Generator):
    """One of `options`, uniformly."""
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def bounce_between_walls(position: float, velocity: float, low: float, high: float) -> Tuple[float, float]:
    """Move one step, reflecting off the walls at `low` and `high` (as often as needed): new (position, velocity)."""
    position += velocity
    while position < low or position > high:
        if position < low:
            position, velocity = 2 * low - position, -velocity
        else:
            position, velocity = 2 * high - position, -velocity
    return position, velocity


def straight_line_with_bounces(start: Tuple[float, float], velocity: Tuple[float, float], half_extent: float,
                               num_frames: int) -> Tuple[Tuple[float, float], ...]:
    """Positions of a centre moving at constant speed, bouncing so that the object stays inside the frame."""
    (x, y), (vx, vy) = start, velocity
    positions = [(x, y)]
    for _ in range(num_frames - 1):
        x, vx = bounce_between_walls(x, vx, half_extent, 1 - half_extent)
        y, vy = bounce_between_walls(y, vy, half_extent, 1 - half_extent)
        positions.append((x, y))
    return tuple(positions)


def random_drift(half_extent: float, num_frames: int, generator: torch.Generator):
    """A random direction, speed and start: (direction, speed, positions). The start lies in the half of the frame
    the object moves away from, so that it travels the captioned way for a while before its first bounce."""
    direction, speed = choice(list(DIRECTIONS), generator), choice(list(SPEEDS), generator)

    def start_along(component: float) -> float:
        low, high = half_extent, 1 - half_extent
        if component > 0:
            return uniform(low, 0.5, generator)
        if component < 0:
            return uniform(0.5, high, generator)
        return uniform(low, high, generator)

    start = tuple(start_along(component) for component in DIRECTIONS[direction])
    velocity = tuple(SPEEDS[speed] * component for component in DIRECTIONS[direction])
    return direction, speed, straight_line_with_bounces(start, velocity, half_extent, num_frames)


def ball_under_gravity(start: Tuple[float, float], velocity: Tuple[float, float], radius: float, num_frames: int,
                       gravity: float = GRAVITY, restitution: float = RESTITUTION) -> Tuple[Tuple[float, float], ...]:
    """Exact positions of a ball thrown from `start`: between bounces y(t) = y0 + vy t + g t^2 / 2 (y down), and at
    the floor vy -> -restitution * vy; the walls reflect vx. Each frame's interval is integrated event by event."""
    (x, y), (vx, vy) = start, velocity
    floor = 1 - radius
    positions = [(x, y)]
    for _ in range(num_frames - 1):
        x, vx = bounce_between_walls(x, vx, radius, 1 - radius)
        remaining = 1.0
        while remaining > 0:
            if floor - y <= 1e-12 and abs(vy) < REST_SPEED:  # too slow to bounce again: it rests on the floor
                y, vy = floor, 0.0
                break
            # the time tau at which y + vy tau + g tau^2 / 2 = floor (the positive root)
            tau = (-vy + math.sqrt(vy * vy + 2 * gravity * max(floor - y, 0.0))) / gravity
            if tau >= remaining:
                y, vy = y + vy * remaining + gravity * remaining**2 / 2, vy + gravity * remaining
                remaining = 0.0
            else:
                y, vy = floor, -restitution * (vy + gravity * tau)
                remaining -= tau
        positions.append((x, y))
    return tuple(positions)


class ProceduralVideos(torch.utils.data.Dataset):
    """`num_items` clips of `num_frames` frames at side `image_size`; item i is the same for the same seed.
    Subclasses say how a clip's objects move (`simulate`), how it is captioned and how one object is drawn."""

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0):
        if image_size < 16:
            raise ValueError(f"image_size {image_size} is too small to draw moving objects; use 16 or more (32, 64)")
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        self.num_items, self.image_size, self.num_frames, self.seed = num_items, image_size, num_frames, seed

    def __len__(self) -> int:
        return self.num_items

    def tracks(self, index: int) -> Tuple[Track, ...]:
        """The ground truth of clip `index`: every object and its centre in every frame."""
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} is outside the dataset of {self.num_items} clips")
        return self.simulate(torch.Generator().manual_seed(self.seed * 1_000_003 + index))

    def render(self, tracks: Sequence[Track]) -> torch.Tensor:
        """Draw every frame of a clip: (3, T, H, W) floats in [-1, 1]."""
        frames = []
        for frame in range(len(tracks[0].positions)):
            canvas, draw = new_canvas(self.image_size)
            for track in tracks:
                self.draw(draw, track, frame, canvas.width)
            frames.append(canvas_to_frame(canvas, self.image_size))
        return torch.stack(frames, dim=1)  # (3, T, H, W)

    def __getitem__(self, index: int) -> dict:
        tracks = self.tracks(index)
        return {"video": self.render(tracks), "caption": self.caption(tracks), "truth": list(tracks)}

    def tensors(self, limit: int = None) -> Tuple[torch.Tensor, List[str]]:
        """The first `limit` clips (all by default): (videos (N, 3, T, H, W), captions)."""
        items = [self[index] for index in range(min(limit or self.num_items, self.num_items))]
        return torch.stack([item["video"] for item in items]), [item["caption"] for item in items]

    def simulate(self, generator: torch.Generator) -> Tuple[Track, ...]:
        raise NotImplementedError(f"{type(self).__name__} must say how its objects move")

    def caption(self, tracks: Sequence[Track]) -> str:
        raise NotImplementedError(f"{type(self).__name__} must say how its clips are captioned")

    def draw(self, draw: ImageDraw.ImageDraw, track: Track, frame: int, canvas_size: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} must say how its objects are drawn")


class MovingShapes(ProceduralVideos):
    """One shape of the shapes images, moving in a straight line and bouncing off the walls."""

    def simulate(self, generator):
        shape, colour, size = choice(SHAPES, generator), choice(list(COLOURS), generator), choice(list(SIZES), generator)
        direction, speed, positions = random_drift(SIZES[size] / 2, self.num_frames, generator)
        return (Track("shape", shape, colour, SIZES[size], direction, speed, positions),)

    def caption(self, tracks):
        track = tracks[0]
        size = next(name for name, extent in SIZES.items() if extent == track.extent)
        return f"a {size} {track.colour} {track.name} moving {track.direction} {track.speed}"

    def draw(self, draw, track, frame, canvas_size):
        size = next(name for name, extent in SIZES.items() if extent == track.extent)
        x, y = track.positions[frame]
        draw_shape(draw, Shape(track.name, track.colour, size, x, y), canvas_size)


class MovingDigits(ProceduralVideos):
    """Moving MNIST with a font: `num_digits` white digits drifting and bouncing, each its own way."""

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0,
                 num_digits: int = 1):
        super().__init__(num_items, image_size, num_frames, seed)
        if num_digits not in (1, 2):
            raise ValueError(f"num_digits must be 1 or 2, got {num_digits}")
        self.num_digits = num_digits
        self.font = ImageFont.load_default(size=round(DIGIT_HEIGHT * image_size * 4))  # on the 4x canvas

    def simulate(self, generator):
        tracks = []
        for _ in range(self.num_digits):
            digit = str(int(torch.randint(10, (1,), generator=generator)))
            direction, speed, positions = random_drift(DIGIT_HEIGHT / 2, self.num_frames, generator)
            tracks.append(Track("digit", digit, "white", DIGIT_HEIGHT, direction, speed, positions))
        return tuple(tracks)

    def caption(self, tracks):
        return " and ".join(f"a {track.name} moving {track.direction} {track.speed}" for track in tracks)

    def draw(self, draw, track, frame, canvas_size):
        x, y = track.positions[frame]
        draw.text((x * canvas_size, y * canvas_size), track.name, fill=DIGIT_COLOUR, font=self.font, anchor="mm")


class BouncingBall(ProceduralVideos):
    """A ball thrown sideways from some height, falling under gravity and bouncing off the floor and walls."""

    def simulate(self, generator):
        colour, direction = choice(list(COLOURS), generator), choice(("left", "right"), generator)
        radius = BALL_DIAMETER / 2
        start = (uniform(radius, 1 - radius, generator), uniform(radius, 0.5, generator))
        horizontal = uniform(0.01, 0.04, generator) * (1 if direction == "right" else -1)
        positions = ball_under_gravity(start, (horizontal, 0.0), radius, self.num_frames)
        return (Track("ball", "ball", colour, BALL_DIAMETER, direction, "", positions),)

    def caption(self, tracks):
        return f"a {tracks[0].colour} ball bouncing to the {tracks[0].direction}"

    def draw(self, draw, track, frame, canvas_size):
        x, y = track.positions[frame]
        half = track.extent * canvas_size / 2
        draw.ellipse([x * canvas_size - half, y * canvas_size - half, x * canvas_size + half, y * canvas_size + half],
                     fill=COLOURS[track.colour])


VIDEO_DATASETS: Dict[str, type] = {"shapes": MovingShapes, "digits": MovingDigits, "ball": BouncingBall}


def video_dataset(name: str, **options) -> ProceduralVideos:
    """One of the tiny video datasets by name: "shapes", "digits" or "ball"."""
    if name not in VIDEO_DATASETS:
        raise ValueError(f"unknown video dataset {name!r}; choose one of {', '.join(VIDEO_DATASETS)}")
    return VIDEO_DATASETS[name](**options)
