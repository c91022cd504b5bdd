"""Worlds that put the Sora report's "world simulator" claims to a test (lesson 15), each with its full truth.

The Sora report (Brooks et al. 2024, "Emerging simulation capabilities") says objects persist when occluded or when
they leave the frame, and that a painter's strokes stay on the canvas; Kang et al. 2024 ("How Far is Video Generation
from World Model", arXiv 2411.02385) tested physics on a 2D simulator of balls whose truth is known. Each world here
is such a simulator: deterministic from its objects' starts, any size and length, knowing every frame.

- `Collisions`: 2-3 balls of different colours and sizes (mass is area, diameter squared) on a table, colliding
  elastically with each other and the walls, integrated exactly from event to event: "a large red ball and a small
  blue ball". The truth holds each ball's centre in every frame and the times it hit another ball.
- `Occlusion`: shapes moving sideways behind a grey pillar that hides them for several frames, and out of the frame
  and back (the walls stand beyond its edges): "a red circle moving right slowly behind a pillar". The truth holds
  each object's visible share in every frame.
- `Painter`: a brush that moves and leaves a trail that stays: "a red brush moving right slowly". The trail at any
  frame is the path so far (`trail_mask`).
- `PhysicsScenarios`: Kang et al.'s three scenarios, uniform motion, a collision of two balls on one line and a
  parabola, with speeds and sizes drawn from given ranges, so that held-out values lie inside the training range
  (interpolation) or outside it (extrapolation).

Units as in videos.py: lengths in the frame's shorter side, time in frames, positions in the truth as fractions of
the width and the height.
"""
import math
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import torch
from PIL import Image, ImageDraw

from .shapes import COLOURS, SHAPES, SUPERSAMPLING, draw_shape_at
from .videos import (DIRECTIONS, GRAVITY, SPEEDS, VIDEO_DATASETS, ProceduralVideos, Track, bounce_between_walls, choice,
                     draw_ball, random_drift, uniform)

BALL_SIZES = {"small": 0.2, "large": 0.3}  # a ball's diameter, fraction of the shorter side
COLLISION_SPEEDS = (0.02, 0.05)  # a ball's speed is drawn from this range, fraction of the side per frame
OBJECT_DIAMETER = 0.2  # an occluded object's extent
PILLAR_WIDTH = 0.4  # twice an object's extent: a slow object is hidden for (0.4 - 0.2) / 0.03 = 6 frames
PILLAR_COLOUR = (150, 150, 150)  # grey: no colour of shapes.COLOURS, so never read as an object
OUTSIDE = 0.3  # how far beyond the frame's edges the occlusion world's walls stand: objects leave and come back
BRUSH_DIAMETER = 0.12  # the painter's brush and the width of its trail
BRUSH_TIP = (240, 240, 240)  # the brush's tip is white, its trail the brush's colour
EVENTS_PER_FRAME = 1000  # more events than this in one frame means balls jammed together: an error, not a hang


# ---- exact elastic motion of balls, event to event ----

@dataclass
class Ball:
    """A ball's state: centre, velocity, radius and mass (its area up to a constant: the radius squared)."""
    x: float
    y: float
    vx: float
    vy: float
    radius: float

    @property
    def mass(self) -> float:
        return self.radius ** 2


def wall_time(position: float, velocity: float, acceleration: float, low: float, high: float) -> float:
    """When a coordinate moving as p + v t + a t^2 / 2 next reaches `low` going down or `high` going up (inf if
    never): the walls a centre can reach, the box less the radius."""
    times = []
    for wall, towards in ((high, 1.0), (low, -1.0)):
        gap = wall - position  # p + v t + a t^2 / 2 = wall
        if acceleration == 0.0:
            if velocity * towards > 0:
                times.append(max(gap / velocity, 0.0))
            continue
        discriminant = velocity * velocity + 2 * acceleration * gap
        if discriminant < 0:
            continue
        for root in ((-velocity - math.sqrt(discriminant)) / acceleration,
                     (-velocity + math.sqrt(discriminant)) / acceleration):
            arriving = velocity + acceleration * root  # the velocity there must point into the wall
            if root > -1e-12 and arriving * towards > 0:
                times.append(max(root, 0.0))
    return min(times, default=math.inf)


def contact_time(first: Ball, second: Ball) -> float:
    """When two approaching balls touch: |dx + dv t| = r1 + r2 (gravity moves both alike, so their difference moves
    in a straight line); inf if they are separating or miss."""
    dx, dy = second.x - first.x, second.y - first.y
    dvx, dvy = second.vx - first.vx, second.vy - first.vy
    approach = dx * dvx + dy * dvy
    if approach >= 0:
        return math.inf
    reach = first.radius + second.radius
    a, b, c = dvx * dvx + dvy * dvy, 2 * approach, dx * dx + dy * dy - reach * reach
    discriminant = b * b - 4 * a * c
    if discriminant < 0:
        return math.inf
    return max((-b - math.sqrt(discriminant)) / (2 * a), 0.0)


def collide(first: Ball, second: Ball) -> None:
    """An elastic collision of two touching balls: each velocity changes along the line of centres n,
    v1' = v1 - 2 m2 / (m1 + m2) <v1 - v2, n> n and v2' = v2 + 2 m1 / (m1 + m2) <v1 - v2, n> n, which keeps the
    momentum m1 v1 + m2 v2 and the energy (m1 |v1|^2 + m2 |v2|^2) / 2."""
    dx, dy = second.x - first.x, second.y - first.y
    distance = math.hypot(dx, dy)
    nx, ny = dx / distance, dy / distance
    along = (first.vx - second.vx) * nx + (first.vy - second.vy) * ny  # <v1 - v2, n>, > 0 when approaching
    total = first.mass + second.mass
    first.vx, first.vy = (first.vx - 2 * second.mass / total * along * nx,
                          first.vy - 2 * second.mass / total * along * ny)
    second.vx, second.vy = (second.vx + 2 * first.mass / total * along * nx,
                            second.vy + 2 * first.mass / total * along * ny)


def advance(balls: Sequence[Ball], time: float, gravity: float) -> None:
    for ball in balls:
        ball.x += ball.vx * time
        ball.y += ball.vy * time + gravity * time * time / 2
        ball.vy += gravity * time


def simulate_balls(balls: List[Ball], num_frames: int, box: Tuple[float, float], gravity: float = 0.0
                   ) -> Tuple[List[List[Tuple[float, float]]], List[Tuple[float, int, int]]]:
    """Every ball's centre at frames 0 .. num_frames - 1, integrated exactly: within each frame, to the next event
    (a ball reaching a wall, two balls touching), which is resolved (a wall reverses the velocity's component into it,
    two balls collide elastically), and on. Returns (positions[ball][frame], [(time, ball, other ball), ...] for each
    collision of two balls). `balls` is left in the last frame's state."""
    width, height = box
    positions = [[(ball.x, ball.y)] for ball in balls]
    collisions = []
    for frame in range(num_frames - 1):
        remaining, events = 1.0, 0
        while True:
            soonest, event = remaining, None
            for index, ball in enumerate(balls):
                for axis, (position, velocity, acceleration, side) in enumerate(
                        ((ball.x, ball.vx, 0.0, width), (ball.y, ball.vy, gravity, height))):
                    time = wall_time(position, velocity, acceleration, ball.radius, side - ball.radius)
                    if time < soonest:
                        soonest, event = time, ("wall", index, axis)
                for other in range(index + 1, len(balls)):
                    time = contact_time(ball, balls[other])
                    if time < soonest:
                        soonest, event = time, ("balls", index, other)
            advance(balls, soonest, gravity)
            remaining -= soonest
            if event is None:
                break
            events += 1
            if events > EVENTS_PER_FRAME:
                raise RuntimeError(f"more than {EVENTS_PER_FRAME} events in frame {frame}: balls jammed together")
            kind, index, other = event
            if kind == "wall":
                ball = balls[index]
                if other == 0:
                    ball.vx = -ball.vx
                else:
                    ball.vy = -ball.vy
            else:
                collide(balls[index], balls[other])
                collisions.append((frame + 1 - remaining, index, other))
        for ball, track in zip(balls, positions):
            track.append((ball.x, ball.y))
    return positions, collisions


def kinetic_energy(balls: Sequence[Ball]) -> float:
    return sum(ball.mass * (ball.vx ** 2 + ball.vy ** 2) / 2 for ball in balls)


def momentum(balls: Sequence[Ball]) -> Tuple[float, float]:
    return sum(ball.mass * ball.vx for ball in balls), sum(ball.mass * ball.vy for ball in balls)


def place_apart(radii: Sequence[float], box: Tuple[float, float], generator: torch.Generator,
                tries: int = 1000) -> List[Tuple[float, float]]:
    """Centres for balls of `radii` inside `box`, no two touching (drawn uniformly, again where they overlap)."""
    for _ in range(tries):
        centres = [(uniform(radius, box[0] - radius, generator), uniform(radius, box[1] - radius, generator))
                   for radius in radii]
        if all(math.dist(centres[i], centres[j]) > radii[i] + radii[j] + 1e-3
               for i in range(len(radii)) for j in range(i + 1, len(radii))):
            return centres
    raise ValueError(f"could not place balls of radii {list(radii)} apart in a box of {box}: use fewer or smaller")


def collision_times(collisions: Sequence[Tuple[float, int, int]], ball: int) -> Tuple[float, ...]:
    """The times at which `ball` (an index) hit another, from simulate_balls' list of collisions."""
    return tuple(time for time, first, second in collisions if ball in (first, second))


# ---- the worlds ----

class Collisions(ProceduralVideos):
    """`num_balls` balls (2 or 3) of different colours and sizes moving on a table, colliding elastically."""

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0,
                 num_balls: int = 2, speeds: Tuple[float, float] = COLLISION_SPEEDS, height: Optional[int] = None,
                 width: Optional[int] = None):
        super().__init__(num_items, image_size, num_frames, seed, height, width)
        if num_balls not in (2, 3):
            raise ValueError(f"num_balls must be 2 or 3, got {num_balls}")
        if not 0 < speeds[0] <= speeds[1]:
            raise ValueError(f"speeds is a range (low, high) with 0 < low <= high, got {speeds}")
        self.num_balls, self.speeds = num_balls, tuple(speeds)

    def simulate(self, generator, num_frames):
        colours = list(COLOURS)
        picked = [colours.pop(int(torch.randint(len(colours), (1,), generator=generator)))
                  for _ in range(self.num_balls)]
        sizes = [choice(list(BALL_SIZES), generator) for _ in range(self.num_balls)]
        radii = [BALL_SIZES[size] / 2 for size in sizes]
        balls = []
        for (x, y), radius in zip(place_apart(radii, self.box, generator), radii):
            angle, speed = uniform(0, 2 * math.pi, generator), uniform(*self.speeds, generator)
            balls.append(Ball(x, y, speed * math.cos(angle), speed * math.sin(angle), radius))
        positions, collisions = simulate_balls(balls, num_frames, self.box)
        return tuple(Track("ball", "ball", colour, BALL_SIZES[size], "", "", tuple(track),
                           collisions=collision_times(collisions, index))
                     for index, (colour, size, track) in enumerate(zip(picked, sizes, positions)))

    def caption(self, tracks):
        size_of = {extent: name for name, extent in BALL_SIZES.items()}
        return " and ".join(f"a {size_of[track.extent]} {track.colour} ball" for track in tracks)

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        draw_ball(draw, track, frame, canvas_width, canvas_height)


class PhysicsScenarios(ProceduralVideos):
    """Kang et al.'s scenarios: "uniform" (one ball at constant velocity), "collision" (two balls on one line, the
    second at rest or moving, colliding head on) and "parabola" (one ball thrown sideways under gravity), with speeds
    and diameters drawn from `speed_ranges` and `size_ranges`: each a list of (low, high) intervals, drawn from by
    length, so that a gap between intervals holds values for interpolation and values beyond them extrapolation."""

    holds_out_captions = False  # a handful of captions: held-out clips are new speeds and sizes, not new words
    SCENARIOS = ("uniform", "collision", "parabola")

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0,
                 scenario: str = "uniform", speed_ranges: Sequence[Tuple[float, float]] = ((0.02, 0.05),),
                 size_ranges: Sequence[Tuple[float, float]] = ((0.15, 0.3),), height: Optional[int] = None,
                 width: Optional[int] = None):
        super().__init__(num_items, image_size, num_frames, seed, height, width)
        if scenario not in self.SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {self.SCENARIOS}")
        for name, ranges, top in (("speed_ranges", speed_ranges, 0.5), ("size_ranges", size_ranges, 0.45)):
            if not ranges or any(not 0 < low <= high <= top for low, high in ranges):
                raise ValueError(f"{name} must be (low, high) intervals with 0 < low <= high <= {top}, got "
                                 f"{list(ranges)}")
        self.scenario, self.speed_ranges, self.size_ranges = scenario, tuple(speed_ranges), tuple(size_ranges)

    @staticmethod
    def draw_from(ranges, generator) -> float:
        """A value uniform over the union of the intervals `ranges`."""
        total = sum(high - low for low, high in ranges)
        point = uniform(0, total, generator) if total > 0 else 0.0
        for low, high in ranges:
            if point <= high - low:
                return low + point
            point -= high - low
        return ranges[-1][1]

    def simulate(self, generator, num_frames):
        width, height = self.box
        colours = list(COLOURS)
        first_colour = colours.pop(int(torch.randint(len(colours), (1,), generator=generator)))
        diameter = self.draw_from(self.size_ranges, generator)
        speed = self.draw_from(self.speed_ranges, generator) * choice((1.0, -1.0), generator)
        radius = diameter / 2
        gravity = GRAVITY if self.scenario == "parabola" else 0.0
        if self.scenario == "collision":
            other_diameter = self.draw_from(self.size_ranges, generator)
            other_speed = choice((0.0, -0.5), generator) * abs(speed)  # at rest, or coming the other way
            y = uniform(max(radius, other_diameter / 2), height - max(radius, other_diameter / 2), generator)
            # the mover starts at the left wall going right (or mirrored), the other beyond the middle: they meet after
            # a few frames, once the first frames have shown both speeds
            left = radius + 0.02
            right = max(uniform(0.55, 0.75, generator) * width, left + radius + other_diameter / 2 + 0.05)
            balls = [Ball(left, y, abs(speed), 0.0, radius), Ball(right, y, other_speed, 0.0, other_diameter / 2)]
            if speed < 0:  # mirrored: the mover comes from the right
                for ball in balls:
                    ball.x, ball.vx = width - ball.x, -ball.vx
            colours_used = [first_colour, choice(colours, generator)]
        else:
            y = uniform(radius, height / 2 if gravity else height - radius, generator)
            x = uniform(radius + abs(speed), width - radius - abs(speed), generator)  # no wall in the first frame
            balls, colours_used = [Ball(x, y, speed, 0.0, radius)], [first_colour]
        directions = ["right" if ball.vx > 0 else "left" if ball.vx < 0 else "" for ball in balls]
        positions, collisions = simulate_balls(balls, num_frames, self.box, gravity)
        return tuple(Track("ball", "ball", colour, 2 * ball.radius, direction, "", tuple(track),
                           collisions=collision_times(collisions, index))
                     for index, (colour, ball, direction, track) in enumerate(
                         zip(colours_used, balls, directions, positions)))

    def caption(self, tracks):
        return " and ".join(f"a {track.colour} ball" for track in tracks)

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        draw_ball(draw, track, frame, canvas_width, canvas_height)


class Occlusion(ProceduralVideos):
    """`num_objects` shapes (1 or 2) moving sideways behind a grey pillar, out of the frame and back. With two, the
    second moves nearer than the first, on almost the same row, and hides it as they pass. The pillar is the truth's
    last track (kind "pillar", standing still, its extent its width), in front of every object."""

    def __init__(self, num_items: int = 1000, image_size: int = 32, num_frames: int = 17, seed: int = 0,
                 num_objects: int = 1, height: Optional[int] = None, width: Optional[int] = None):
        super().__init__(num_items, image_size, num_frames, seed, height, width)
        if num_objects not in (1, 2):
            raise ValueError(f"num_objects must be 1 or 2, got {num_objects}")
        self.num_objects = num_objects

    walls_beyond_frame = OUTSIDE  # where the walls stand, for rules that continue the objects (world_scores.py)

    def simulate(self, generator, num_frames):
        width, height = self.box
        pillar_x = uniform(0.35, 0.65, generator) * width
        half = OBJECT_DIAMETER / 2
        colours = list(COLOURS)
        tracks, row = [], uniform(half, height - half, generator)
        for _ in range(self.num_objects):
            colour = colours.pop(int(torch.randint(len(colours), (1,), generator=generator)))
            shape, direction = choice(SHAPES, generator), choice(("left", "right"), generator)
            speed = choice(list(SPEEDS), generator)
            x = uniform(half, width - half, generator)
            velocity = SPEEDS[speed] * DIRECTIONS[direction][0]
            positions = []
            for _ in range(num_frames):  # straight along the row, reflected by walls OUTSIDE beyond the frame
                positions.append((x, row))
                x, velocity = bounce_between_walls(x, velocity, half - OUTSIDE, width - half + OUTSIDE)
            tracks.append(Track("shape", shape, colour, OBJECT_DIAMETER, direction, speed, tuple(positions)))
            row = min(max(row + uniform(-0.05, 0.05, generator), half), height - half)  # the next, nearly on it
        pillar = Track("pillar", "pillar", "grey", PILLAR_WIDTH, "", "", ((pillar_x, height / 2),) * num_frames)
        shares = self.visible_shares(tracks, pillar_x)
        return tuple(replace(track, visible=share) for track, share in zip(tracks, shares)) + (pillar,)

    def visible_shares(self, tracks: Sequence[Track], pillar_x: float) -> List[Tuple[float, ...]]:
        """Each object's share of its area that a frame shows: inside the frame, not behind the pillar (centred at
        `pillar_x`), not behind a nearer object; counted on the supersampled canvas the frames are drawn on, widened
        by the walls' distance beyond the frame so that the whole object is drawn wherever it is."""
        width, height = self.box
        scale = SUPERSAMPLING * self.width / width  # canvas pixels per unit of the shorter side
        margin = math.ceil((OUTSIDE + OBJECT_DIAMETER) * scale)  # canvas pixels beyond the frame, left and right
        frame_width, frame_height = SUPERSAMPLING * self.width, SUPERSAMPLING * self.height
        window = (margin, 0, margin + frame_width, frame_height)  # the frame on the wide canvas
        pillar = [margin + (pillar_x - PILLAR_WIDTH / 2) * scale, 0, margin + (pillar_x + PILLAR_WIDTH / 2) * scale,
                  frame_height]
        shares = [[] for _ in tracks]
        for frame in range(len(tracks[0].positions)):
            for index, track in enumerate(tracks):
                canvas = Image.new("L", (frame_width + 2 * margin, frame_height), 0)
                draw = ImageDraw.Draw(canvas)
                x, y = track.positions[frame]
                draw_shape_at(draw, track.name, margin + x * scale, y * scale, track.extent * scale / 2, 255)
                whole = canvas.histogram()[255]
                for nearer in tracks[index + 1:]:
                    near_x, near_y = nearer.positions[frame]
                    draw_shape_at(draw, nearer.name, margin + near_x * scale, near_y * scale,
                                  nearer.extent * scale / 2, 0)
                draw.rectangle(pillar, fill=0)
                shares[index].append(round(canvas.crop(window).histogram()[255] / whole, 4))
        return [tuple(share) for share in shares]

    def caption(self, tracks):
        moving = [track for track in tracks if track.kind != "pillar"]
        objects = " and ".join(f"a {track.colour} {track.name}" + ("" if len(track.positions) == 1 else
                                                                  f" moving {track.direction} {track.speed}")
                               for track in moving)
        return f"{objects} behind a pillar"

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        x, y = track.positions[frame]
        if track.kind == "pillar":
            half = track.extent * min(canvas_width, canvas_height) / 2
            draw.rectangle([x * canvas_width - half, 0, x * canvas_width + half, canvas_height], fill=PILLAR_COLOUR)
            return
        draw_shape_at(draw, track.name, x * canvas_width, y * canvas_height,
                      track.extent * min(canvas_width, canvas_height) / 2, COLOURS[track.colour])


class Painter(ProceduralVideos):
    """A brush drifting like the moving shapes and leaving a trail of its colour that stays to the end."""

    def simulate(self, generator, num_frames):
        colour = choice(list(COLOURS), generator)
        direction, speed, positions = random_drift(BRUSH_DIAMETER / 2, num_frames, generator, self.box)
        return (Track("brush", "brush", colour, BRUSH_DIAMETER, direction, speed, positions),)

    def caption(self, tracks):
        track = tracks[0]
        still = f"a {track.colour} brush"
        return still if len(track.positions) == 1 else f"{still} moving {track.direction} {track.speed}"

    @staticmethod
    def paint_trail(draw: ImageDraw.ImageDraw, positions: Sequence[Tuple[float, float]], extent: float,
                    canvas_width: int, canvas_height: int, fill) -> None:
        """The path through `positions` (fractions of the canvas), a line as wide as the brush with round ends."""
        half = extent * min(canvas_width, canvas_height) / 2
        points = [(x * canvas_width, y * canvas_height) for x, y in positions]
        for start, end in zip(points, points[1:]):
            draw.line([start, end], fill=fill, width=max(1, round(2 * half)))
        for cx, cy in points:
            draw.ellipse([cx - half, cy - half, cx + half, cy + half], fill=fill)

    def draw(self, draw, track, frame, canvas_width, canvas_height):
        self.paint_trail(draw, track.positions[:frame + 1], track.extent, canvas_width, canvas_height,
                         COLOURS[track.colour])
        x, y = track.positions[frame]
        half = track.extent * min(canvas_width, canvas_height) / 2 * 0.6
        cx, cy = x * canvas_width, y * canvas_height
        draw.ellipse([cx - half, cy - half, cx + half, cy + half], fill=BRUSH_TIP)

    def clip(self, index: int, num_frames: Optional[int] = None, start_frame: int = 0) -> dict:
        """As for every world, but the canvas remembers: a clip that starts later shows the trail painted before."""
        num_frames = self.num_frames if num_frames is None else num_frames
        whole = self.tracks(index, start_frame + num_frames)
        seen = [track.seen_over(start_frame, num_frames) for track in whole]
        return {"video": self.render(whole)[:, start_frame:], "caption": self.caption(seen), "truth": seen}

    def trail_mask(self, index: int, frame: int, since: int = 0) -> torch.Tensor:
        """Where clip `index`'s trail is at `frame` (bool, (H, W); frames counted from the world's first): the path
        of positions 0 .. frame, or, with `since`, its part painted from frame `since` on."""
        track = self.tracks(index, frame + 1)[0]
        canvas = Image.new("L", (SUPERSAMPLING * self.width, SUPERSAMPLING * self.height), 0)
        self.paint_trail(ImageDraw.Draw(canvas), track.positions[since:frame + 1], track.extent, canvas.width,
                         canvas.height, 255)
        small = canvas.resize((self.width, self.height), Image.Resampling.BOX)
        return torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8).reshape(self.height, self.width) >= 128


VIDEO_DATASETS.update(collisions=Collisions, occlusion=Occlusion, painter=Painter, physics=PhysicsScenarios)
