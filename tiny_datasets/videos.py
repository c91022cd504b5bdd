"""Tiny procedural video datasets with captions and ground truth, deterministic by seed, needing no download.

Three worlds, each at any height x width (32 x 32 and 64 x 64 are usual) and any number of frames (17 = 1 + 4 * 4
suits a causal VAE that keeps the first frame alone and compresses time by 4):

- `MovingShapes`: the shapes images' scenes in motion. One shape moves in one of eight directions at one of two
  speeds and bounces off the walls: "a small red circle moving left quickly".
- `MovingDigits`: Moving MNIST's idea (Srivastava et al. 2015) with digits drawn in Pillow's bundled font: one or
  two white digits drifting and bouncing, "a 3 moving up-right slowly and a 7 moving down quickly".
- `BouncingBall`: a ball under constant gravity that bounces off the floor (losing a little speed) and the walls,
  integrated exactly from bounce to bounce: "a red ball bouncing to the right".

Every item is {"video": (3, T, H, W) floats in [-1, 1], "caption": str, "truth": [Track, ...]}: the truth says what
each object is and where its centre is in every frame, so a generated video can be scored against the world it
should simulate. A world is deterministic from an object's start, so it also knows what comes before and after any
clip: `clip(index, num_frames, start_frame)` is the same motion seen over other frames, the true continuation (or
past) that an extended video is scored against.

Lengths are in units of the frame's shorter side: an object's extent, its speed, gravity. A wide frame is a wider box
for the same objects, and positions are stored as fractions of the width and of the height.
"""
import math
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from PIL import ImageDraw, ImageFont

from .shapes import (COLOURS, SHAPES, SIZES, SUPERSAMPLING, Shape, canvas_to_frame, draw_shape, draw_shape_at,
                     new_canvas)

# unit vectors of the eight directions in image coordinates (x to the right, y down)
DIRECTIONS = {
    "right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up-right": (math.sqrt(0.5), -math.sqrt(0.5)), "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)), "down-left": (-math.sqrt(0.5), math.sqrt(0.5)),
}
SPEEDS = {"slowly": 0.03, "quickly": 0.06}  # distance per frame as a fraction of the shorter side
DIGIT_HEIGHT = 0.5  # a digit's font size as a fraction of the shorter side
DIGIT_COLOUR = (240, 240, 240)
BALL_DIAMETER = 0.2  # as a fraction of the shorter side
GRAVITY = 0.012  # downward acceleration, fraction of the shorter side per frame squared
RESTITUTION = 0.85  # the ball keeps this fraction of its vertical speed at each bounce off the floor
REST_SPEED = 1e-3  # below this vertical speed at the floor the ball stops bouncing


@dataclass(frozen=True)
class Track:
    """One object through a clip: what it is, and where its centre is in every frame (fractions of the side)."""
    kind: str  # "shape", "digit" or "ball"
    name: str  # the shape ("circle", "square", "triangle"), the digit ("0" .. "9") or "ball"
    colour: str  # a name in shapes.COLOURS, or "white" for digits
    extent: float  # the object's size as a fraction of the shorter side
    direction: str  # the caption's direction: a key of DIRECTIONS, or "left"/"right" for the ball
    speed: str  # a key of SPEEDS, or "" for the ball (gravity sets its speed)
    positions: Tuple[Tuple[float, float], ...]  # (x, y) of the centre, fractions of width and height, one per frame
    visible: Tuple[float, ...] = ()  # the share of the object a frame shows, one per frame (worlds with occlusion)
    collisions: Tuple[float, ...] = ()  # the times (in frames from the first) it hit another object (worlds.py)

    def as_dict(self) -> dict:
        """JSON-ready, positions rounded to 1e-5 of the side."""
        record = {"kind": self.kind, "name": self.name, "colour": self.colour, "extent": self.extent,
                  "direction": self.direction, "speed": self.speed,
                  "positions": [[round(x, 5), round(y, 5)] for x, y in self.positions]}
        if self.visible:
            record["visible"] = list(self.visible)
        if self.collisions:
            record["collisions"] = [round(time, 5) for time in self.collisions]
        return record

    def seen_over(self, start_frame: int, num_frames: int) -> "Track":
        """The same object over frames start_frame .. start_frame + num_frames - 1 of its motion."""
        end = start_frame + num_frames
        return replace(self, positions=self.positions[start_frame:end], visible=self.visible[start_frame:end],
                       collisions=tuple(time - start_frame for time in self.collisions
                                        if start_frame <= time <= end - 1))


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
                               num_frames: int, box: Tuple[float, float] = (1.0, 1.0)
                               ) -> Tuple[Tuple[float, float], ...]:
    """Positions of a centre moving at constant speed, bouncing so that the object stays inside the frame, a box of
    `box` = (width, height) in units of its shorter side (positions in the same units)."""
    (x, y), (vx, vy) = start, velocity
    positions = [(x, y)]
    for _ in range(num_frames - 1):
        x, vx = bounce_between_walls(x, vx, half_extent, box[0] - half_extent)
        y, vy = bounce_between_walls(y, vy, half_extent, box[1] - half_extent)
        positions.append((x, y))
    return tuple(positions)


def random_drift(half_extent: float, num_frames: int, generator: torch.Generator,
                 box: Tuple[float, float] = (1.0, 1.0)):
    """A random direction, speed and start in a `box` (width, height): (direction, speed, positions). The start lies
    in the half of the frame the object moves away from, so that it travels the captioned way for a while before its
    first bounce."""
    direction, speed = choice(list(DIRECTIONS), generator), choice(list(SPEEDS), generator)

    def start_along(component: float, length: float) -> float:
        low, high = half_extent, length - half_extent
        if component > 0:
            return uniform(low, length / 2, generator)
        if component < 0:
            return uniform(length / 2, high, generator)
        return uniform(low, high, generator)

    start = tuple(start_along(component, length) for component, length in zip(DIRECTIONS[direction], box))
    velocity = tuple(SPEEDS[speed] * component for component in DIRECTIONS[direction])
    return direction, speed, straight_line_with_bounces(start, velocity, half_extent, num_frames, box)


def ball_under_gravity(start: Tuple[float, float], velocity: Tuple[float, float], radius: float, num_frames: int,
                       gravity: float = GRAVITY, restitution: float = RESTITUTION,
                       box: Tuple[float, float] = (1.0, 1.0)) -> Tuple[Tuple[float, float], ...]:
    """Exact positions of a ball thrown from `start`: between bounces y(t) = y0 + vy t + g t^2 / 2 (y down), and at
    the floor vy -> -restitution * vy; the walls reflect vx. Each frame's interval is integrated event by event.
    The frame is a box of `box` = (width, height) in units of its shorter side, as are all lengths."""
    (x, y), (vx, vy) = start, velocity
    floor = box[1] - radius
    positions = [(x, y)]
    for _ in range(num_frames - 1):
        x, vx = bounce_between_walls(x, vx, radius, box[0] - radius)
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
    """`num_items` clips of `num_frames` frames of `height` x `width` pixels (both `image_size` unless given); item i
    is the same for the same seed. Subclasses say how a clip's objects move (`simulate`, in units of the shorter
    side), how it is captioned and how one object is drawn."""

    # whether a trainer may keep the held-out clips' captions out of training (they test composing words seen apart);
    # a world with a handful of captions needs every one of them, and its held-out clips are new states alone
    holds_out_captions = True

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0,
                 height: Optional[int] = None, width: Optional[int] = None):
        self.height, self.width = height or image_size, width or image_size
        if min(self.height, self.width) < 16:
            raise ValueError(f"a frame of {self.height}x{self.width} is too small to draw moving objects; use sides of "
                             f"16 or more (image_size=32, or height/width)")
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        self.num_items, self.image_size, self.num_frames, self.seed = num_items, image_size, num_frames, seed
        shorter = min(self.height, self.width)
        self.box = (self.width / shorter, self.height / shorter)  # the frame in units of its shorter side

    def __len__(self) -> int:
        return self.num_items

    def tracks(self, index: int, num_frames: Optional[int] = None, start_frame: int = 0) -> Tuple[Track, ...]:
        """The ground truth of clip `index`: every object and its centre in every frame. With `num_frames` and
        `start_frame` (which may be beyond the dataset's own length), the same motion over frames start_frame ..
        start_frame + num_frames - 1: its continuation, or with a later start its past too."""
        if not 0 <= index < self.num_items:
            raise IndexError(f"index {index} is outside the dataset of {self.num_items} clips")
        num_frames = self.num_frames if num_frames is None else num_frames
        if num_frames < 1 or start_frame < 0:
            raise ValueError(f"need num_frames >= 1 and start_frame >= 0, got {num_frames} and {start_frame}")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        tracks = self.simulate(generator, start_frame + num_frames)
        width, height = self.box
        return tuple(replace(track, positions=tuple((x / width, y / height) for x, y in track.positions)
                             ).seen_over(start_frame, num_frames) for track in tracks)

    def render(self, tracks: Sequence[Track]) -> torch.Tensor:
        """Draw every frame of a clip: (3, T, H, W) floats in [-1, 1]."""
        frames = []
        for frame in range(len(tracks[0].positions)):
            canvas, draw = new_canvas(self.height, self.width)
            for track in tracks:
                self.draw(draw, track, frame, canvas.width, canvas.height)
            frames.append(canvas_to_frame(canvas, self.height, self.width))
        return torch.stack(frames, dim=1)  # (3, T, H, W)

    def clip(self, index: int, num_frames: Optional[int] = None, start_frame: int = 0) -> dict:
        """Item `index` seen over frames start_frame .. start_frame + num_frames - 1 (see `tracks`)."""
        tracks = self.tracks(index, num_frames, start_frame)
        # the caption names what an object is and how it was set moving, the same over any frames of its motion
        return {"video": self.render(tracks), "caption": self.caption(tracks), "truth": list(tracks)}

    def __getitem__(self, index: int) -> dict:
        return self.clip(index)

    def tensors(self, limit: int = None) -> Tuple[torch.Tensor, List[str]]:
        """The first `limit` clips (all by default): (videos (N, 3, T, H, W), captions)."""
        items = [self[index] for index in range(min(limit or self.num_items, self.num_items))]
        return torch.stack([item["video"] for item in items]), [item["caption"] for item in items]

    def simulate(self, generator: torch.Generator, num_frames: int) -> Tuple[Track, ...]:
        raise NotImplementedError(f"{type(self).__name__} must say how its objects move")

    def caption(self, tracks: Sequence[Track]) -> str:
        """What the clip shows in words; a one-frame clip (an image) shows no motion, so its caption names none."""
        raise NotImplementedError(f"{type(self).__name__} must say how its clips are captioned")

    def draw(self, draw: ImageDraw.ImageDraw, track: Track, frame: int, canvas_width: int,
             canvas_height: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} must say how its objects are drawn")


class MovingShapes(ProceduralVideos):
    """One shape of the shapes images, moving in a straight line and bouncing off the walls."""

    def simulate(self, generator, num_frames):
        shape, colour, size = choice(SHAPES, generator), choice(list(COLOURS), generator), choice(list(SIZES), generator)
        direction, speed, positions = random_drift(SIZES[size] / 2, num_frames, generator, self.box)
        return (Track("shape", shape, colour, SIZES[size], direction, speed, positions),)

    def caption(self, tracks):
        track = tracks[0]
        size = next(name for name, extent in SIZES.items() if extent == track.extent)
        still = f"a {size} {track.colour} {track.name}"
        return still if len(track.positions) == 1 else f"{still} moving {track.direction} {track.speed}"

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        size = next(name for name, extent in SIZES.items() if extent == track.extent)
        x, y = track.positions[frame]
        draw_shape(draw, Shape(track.name, track.colour, size, x, y), canvas_width, canvas_height)


class MovingDigits(ProceduralVideos):
    """Moving MNIST with a font: `num_digits` white digits drifting and bouncing, each its own way."""

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0,
                 num_digits: int = 1, height: Optional[int] = None, width: Optional[int] = None):
        super().__init__(num_items, image_size, num_frames, seed, height, width)
        if num_digits not in (1, 2):
            raise ValueError(f"num_digits must be 1 or 2, got {num_digits}")
        self.num_digits = num_digits
        shorter = min(self.height, self.width)
        self.font = ImageFont.load_default(size=round(DIGIT_HEIGHT * shorter * SUPERSAMPLING))  # on the canvas

    def simulate(self, generator, num_frames):
        tracks = []
        for _ in range(self.num_digits):
            digit = str(int(torch.randint(10, (1,), generator=generator)))
            direction, speed, positions = random_drift(DIGIT_HEIGHT / 2, num_frames, generator, self.box)
            tracks.append(Track("digit", digit, "white", DIGIT_HEIGHT, direction, speed, positions))
        return tuple(tracks)

    def caption(self, tracks):
        if len(tracks[0].positions) == 1:
            return " and ".join(f"a {track.name}" for track in tracks)
        return " and ".join(f"a {track.name} moving {track.direction} {track.speed}" for track in tracks)

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        x, y = track.positions[frame]
        draw.text((x * canvas_width, y * canvas_height), track.name, fill=DIGIT_COLOUR, font=self.font, anchor="mm")


class BouncingBall(ProceduralVideos):
    """A ball thrown sideways from some height, falling under gravity and bouncing off the floor and walls."""

    holds_out_captions = False  # 4 colours x 2 directions: 64 held-out clips name every caption there is

    def simulate(self, generator, num_frames):
        colour, direction = choice(list(COLOURS), generator), choice(("left", "right"), generator)
        radius = BALL_DIAMETER / 2
        width, height = self.box
        start = (uniform(radius, width - radius, generator), uniform(radius, height / 2, generator))
        horizontal = uniform(0.01, 0.04, generator) * (1 if direction == "right" else -1)
        positions = ball_under_gravity(start, (horizontal, 0.0), radius, num_frames, box=self.box)
        return (Track("ball", "ball", colour, BALL_DIAMETER, direction, "", positions),)

    def caption(self, tracks):
        if len(tracks[0].positions) == 1:
            return f"a {tracks[0].colour} ball"
        return f"a {tracks[0].colour} ball bouncing to the {tracks[0].direction}"

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        draw_ball(draw, track, frame, canvas_width, canvas_height)


def draw_ball(draw: ImageDraw.ImageDraw, track: Track, frame: int, canvas_width: int, canvas_height: int) -> None:
    """A ball of the track's colour and extent where the track is at `frame` (the ball world's and worlds.py's)."""
    x, y = track.positions[frame]
    draw_shape_at(draw, "circle", x * canvas_width, y * canvas_height,
                  track.extent * min(canvas_width, canvas_height) / 2, COLOURS[track.colour])


VIDEO_DATASETS: Dict[str, type] = {"shapes": MovingShapes, "digits": MovingDigits, "ball": BouncingBall}
# lesson 15's worlds (collisions, occlusion, painter, physics) build on the classes above and add themselves here
from . import worlds  # noqa: E402,F401


def video_dataset(name: str, **options) -> ProceduralVideos:
    """One of the tiny video datasets by name: "shapes", "digits", "ball", or a world of worlds.py ("collisions",
    "occlusion", "painter", "physics")."""
    if name not in VIDEO_DATASETS:
        raise ValueError(f"unknown video dataset {name!r}; choose one of {', '.join(VIDEO_DATASETS)}")
    return VIDEO_DATASETS[name](**options)
