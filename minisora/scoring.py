"""Scoring generated videos against the ground truth of the tiny worlds: did the model draw what the caption asks,
and does it move the way the world's physics says?

The tiny datasets draw one object on a plain background, so a generated frame can be read without a learned
detector: pixels far from the background colour are the object. From them, frame by frame:

  presence and count   foreground pixels at all, and how many connected blobs they form
  colour               the mean colour of the object's core pixels, named by the nearest palette colour
  shape                how much of its bounding box the object fills: square ~1, circle pi/4, triangle 1/2
  position             the centre of its bounding box, as a fraction of the side (the datasets' positions)

and for the clip:

  caption adherence    colour, shape and direction of motion (for the ball its sideways direction) all as the
                       caption says, the direction being the start velocity of the fitted motion below; each
                       attribute is also reported alone
  motion consistency   one object in every frame, and its track one the world could produce: the best straight
                       line with bounces off the walls (shapes, digits), or the best throw under the world's gravity
                       with bounces (ball), fits the detected centres to within `MOTION_TOLERANCE` of the side
  object permanence    exactly one object in every frame

`score_videos(videos, captions, dataset)` scores a batch; real clips score near 1 on everything, shuffled frames
fail motion consistency and often direction, recoloured clips fail colour (tests/test_scoring.py).
"""
import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from tiny_datasets.shapes import BACKGROUND, COLOURS, SHAPES
from tiny_datasets.videos import (BALL_DIAMETER, DIGIT_COLOUR, DIGIT_HEIGHT, DIRECTIONS, ball_under_gravity)

FOREGROUND_DISTANCE = 60  # an RGB distance (0-255 scale) from the background above which a pixel is object
CORE_DISTANCE = 120  # pixels this far from the background are the object's core, used to read its colour
MINIMUM_BLOB = 3  # pixels: smaller specks are noise, not objects
MAXIMUM_COVER = 0.5  # a 'foreground' over more of the frame than this is noise, not an object (the largest covers 1/4)
MOTION_TOLERANCE = 0.05  # root-mean-square distance (of the shorter side) between the track and the fitted motion
PALETTE = {**COLOURS, "white": DIGIT_COLOUR}
SCORED_DATASETS = ("shapes", "digits", "ball")
WORLD_ATTRIBUTES = {"shapes": ("colour", "shape", "direction"), "digits": ("direction",),
                    "ball": ("colour", "direction")}  # what each world's captions can ask for
SCORES = ("adherence", "colour", "shape", "direction", "motion", "permanence")  # each a fraction of the videos


@dataclass
class FrameReading:
    """What one frame shows: the object's blob count, bounding-box centre, fill ratio and mean core colour."""
    blobs: int  # connected groups of foreground pixels (at least MINIMUM_BLOB pixels each)
    centre: Optional[Tuple[float, float]]  # (x, y) of the foreground's bounding-box centre, fractions of width, height
    extent: float  # the larger side of the bounding box, as a fraction of the frame's shorter side
    fill: float  # foreground pixels / bounding-box area
    colour: Optional[str]  # the palette name nearest to the core's mean colour


def caption_attributes(caption: str, dataset: str, motion: bool = True) -> Dict[str, str]:
    """What a caption asks for that the `dataset` world can show: {"colour", "shape", "direction"}, those it names
    ("a small red circle moving up-left slowly" names all three; "a 3 moving left quickly" only the direction)."""
    if dataset not in SCORED_DATASETS:
        raise ValueError(f"cannot score dataset {dataset!r}; scoring knows {SCORED_DATASETS}")
    words = caption.lower().split()
    wanted = {}
    colour = next((word for word in words if word in PALETTE), None)
    if colour is not None:
        wanted["colour"] = colour
    shape = next((word for word in words if word in SHAPES), None)
    if shape is not None and dataset == "shapes":
        wanted["shape"] = shape
    direction = re.search(r"(?:moving|to the) ([a-z-]+)", caption.lower())
    if direction and direction[1] in (("left", "right") if dataset == "ball" else DIRECTIONS):
        wanted["direction"] = direction[1]
    if dataset == "digits" and len(re.findall(r"\b\d\b", caption)) > 1:
        raise ValueError(f"caption {caption!r} names several digits; scoring follows one object per clip "
                         f"(num_digits=1)")
    if motion and "direction" not in wanted:
        raise ValueError(f"caption {caption!r} names no direction of motion the {dataset} world knows, so there is "
                         f"nothing to score it against; write e.g. 'a red circle moving left'")
    return wanted


def count_blobs(mask: np.ndarray) -> int:
    """Connected groups (8-neighbourhood) of True pixels with at least MINIMUM_BLOB pixels."""
    seen = np.zeros_like(mask)
    height, width = mask.shape
    blobs = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        seen[start] = True
        stack, size = [start], 0
        while stack:
            row, column = stack.pop()
            size += 1
            for other in ((row + dr, column + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)):
                if 0 <= other[0] < height and 0 <= other[1] < width and mask[other] and not seen[other]:
                    seen[other] = True
                    stack.append(other)
        blobs += size >= MINIMUM_BLOB
    return blobs


def read_frame(frame: np.ndarray) -> FrameReading:
    """Read one frame (H, W, 3) of 0-255 values."""
    distance = np.linalg.norm(frame - np.asarray(BACKGROUND, dtype=np.float64), axis=-1)  # (H, W)
    mask = distance > FOREGROUND_DISTANCE
    if mask.sum() < MINIMUM_BLOB or mask.mean() > MAXIMUM_COVER:  # nothing, or noise everywhere: no object
        return FrameReading(0, None, 0.0, 0.0, None)
    blobs = count_blobs(mask)
    height, width = frame.shape[:2]
    rows, columns = np.nonzero(mask)
    box_height, box_width = rows.max() - rows.min() + 1, columns.max() - columns.min() + 1
    centre = ((columns.min() + columns.max() + 1) / 2 / width, (rows.min() + rows.max() + 1) / 2 / height)
    core = distance > CORE_DISTANCE
    colour_pixels = frame[core] if core.any() else frame[mask]
    mean = colour_pixels.mean(axis=0)
    colour = min(PALETTE, key=lambda name: np.linalg.norm(mean - np.asarray(PALETTE[name], dtype=np.float64)))
    return FrameReading(blobs, centre, max(box_height, box_width) / min(height, width),
                        mask.sum() / (box_height * box_width), colour)


def shape_from_fill(fill: float) -> str:
    """Square fills its box (1), a circle pi/4 = 0.79 of it, a triangle 1/2: split halfway between."""
    if fill > (1 + math.pi / 4) / 2:
        return "square"
    if fill > (math.pi / 4 + 0.5) / 2:
        return "circle"
    return "triangle"


def majority(values: Sequence[str]) -> Optional[str]:
    """The most frequent value; a tie goes to the value seen first (not to Python's per-process string hashing)."""
    values = [value for value in values if value is not None]
    return max(values, key=values.count) if values else None


def nearest_direction(dx: float, dy: float, names: Sequence[str]) -> Optional[str]:
    """The direction among `names` (keys of DIRECTIONS) closest in angle to the displacement (dx, dy)."""
    if math.hypot(dx, dy) < 1e-6:
        return None
    return max(names, key=lambda name: (DIRECTIONS[name][0] * dx + DIRECTIONS[name][1] * dy) / math.hypot(dx, dy))


def fold(unfolded: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflect positions of a free straight motion into [low, high]: the closed form of bouncing off both walls
    (a triangle wave of period 2 (high - low))."""
    span = high - low
    phase = np.mod(unfolded - low, 2 * span)
    return low + np.where(phase <= span, phase, 2 * span - phase)


def straight_motion_fit(track: np.ndarray, half_extent: float, box: Tuple[float, float] = (1.0, 1.0)
                        ) -> Tuple[float, Tuple[float, float]]:
    """The straight motion with bounces off the walls, started at the track's first point, nearest to a track
    (T, 2) in a frame of `box` = (width, height) in units of its shorter side (the world's units; the track and the
    half extent in them too): (its RMS distance to the track, its velocity (vx, vy)). Velocities are searched on a
    grid of 0.0025 of the shorter side per frame up to 0.1."""
    half_extent = min(half_extent, 0.45)  # an object filling the frame has no room to move: fit it as if it had
    velocities = np.arange(-0.1, 0.1 + 1e-9, 0.0025)  # (V,)
    frames = np.arange(len(track))[:, None]  # (T, 1)
    error, velocity = 0.0, []
    for axis in range(2):  # the axes bounce independently, so each is fitted alone
        low, high = half_extent, box[axis] - half_extent
        start = np.clip(track[0, axis], low, high)
        fitted = fold(start + velocities[None] * frames, low, high)  # (T, V)
        errors = ((fitted - track[:, axis:axis + 1]) ** 2).mean(axis=0)  # (V,)
        # from a wall, moving into it and bouncing is the same track as moving away: call it moving away
        errors[(velocities > 0) if start >= high else (velocities < 0) if start <= low else []] = np.inf
        error += errors.min()
        velocity.append(float(velocities[errors.argmin()]))
    return math.sqrt(error), tuple(velocity)


def ball_motion_fit(track: np.ndarray, box: Tuple[float, float] = (1.0, 1.0)) -> Tuple[float, float]:
    """The throw under the world's gravity and restitution (`ball_under_gravity`) from the track's first point that
    comes nearest to a track (T, 2) in a frame of `box` (as `straight_motion_fit`): (its RMS distance to the track,
    its sideways start speed). Sideways and vertical start speeds are searched on a grid."""
    radius = BALL_DIAMETER / 2
    start = tuple(np.clip(track[0], radius, np.asarray(box) - radius))
    best, best_horizontal = math.inf, 0.0
    for horizontal in np.arange(-0.05, 0.05 + 1e-9, 0.005):
        for vertical in np.arange(-0.06, 0.06 + 1e-9, 0.01):
            fitted = np.asarray(ball_under_gravity(start, (horizontal, vertical), radius, len(track), box=box))
            error = float(((fitted - track) ** 2).sum(axis=1).mean())
            if error < best:
                best, best_horizontal = error, float(horizontal)
    return math.sqrt(best), best_horizontal


def read_video(video: torch.Tensor) -> List[FrameReading]:
    """Every frame of a video (3, T, H, W) in [-1, 1], read."""
    frames = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 3, 0).double().numpy()  # (T, H, W, 3)
    return [read_frame(frame) for frame in frames]


def majority_shape(present: Sequence[FrameReading]) -> Optional[str]:
    """The shape most frames with an object read as."""
    return majority([shape_from_fill(reading.fill) for reading in present])


def score_video(video: torch.Tensor, caption: str, dataset: str) -> Dict[str, float]:
    """Scores of one video (3, T, H, W) in [-1, 1] against its caption, each 0 or 1 except motion_error."""
    return score_readings(read_video(video), video.shape[-2:], caption, dataset)


def score_readings(readings: Sequence[FrameReading], frame_size: Tuple[int, int], caption: str,
                   dataset: str) -> Dict[str, float]:
    """`score_video` of a video already read (`read_video`), its frames height x width = `frame_size`."""
    wanted = caption_attributes(caption, dataset)
    present = [reading for reading in readings if reading.centre is not None]
    scores = {"permanence": float(all(reading.blobs == 1 for reading in readings))}
    if "colour" in wanted:
        scores["colour"] = float(majority([reading.colour for reading in present]) == wanted["colour"])
    if "shape" in wanted:
        scores["shape"] = float(majority_shape(present) == wanted["shape"])
    if len(present) == len(readings) and len(readings) > 1:
        height, width = frame_size
        box = (width / min(height, width), height / min(height, width))  # the frame in units of its shorter side
        track = np.asarray([reading.centre for reading in readings]) * box  # (T, 2), in those units
        # the direction is the fitted motion's start velocity: bounces later in the clip do not confuse it
        if dataset == "ball":
            scores["motion_error"], horizontal = ball_motion_fit(track, box)
            direction = nearest_direction(horizontal, 0.0, ("left", "right"))
        else:
            extent = DIGIT_HEIGHT if dataset == "digits" else float(np.median([r.extent for r in readings]))
            scores["motion_error"], velocity = straight_motion_fit(track, extent / 2, box)
            direction = nearest_direction(*velocity, tuple(DIRECTIONS))
        scores["direction"] = float(direction == wanted["direction"])
        # a track is only a track if it follows one object: noise or several blobs have no motion to judge
        scores["motion"] = float(scores["motion_error"] < MOTION_TOLERANCE and scores["permanence"] == 1)
    else:  # an object that vanishes has no track to follow
        scores.update(direction=0.0, motion_error=math.inf, motion=0.0)
    scores["adherence"] = float(all(scores[name] == 1 for name in wanted))
    return scores


def score_videos(videos: torch.Tensor, captions: Sequence[str], dataset: str) -> Dict[str, float]:
    """Mean scores over a batch (N, 3, T, H, W) with one caption each: adherence, colour, shape, direction, motion,
    permanence (fractions of videos), and motion_error (the median RMS distance to the fitted motion)."""
    if videos.dim() != 5 or videos.shape[1] != 3 or len(videos) != len(captions):
        raise ValueError(f"score_videos takes videos (N, 3, T, H, W) and N captions; got {tuple(videos.shape)} and "
                         f"{len(captions)} captions")
    per_video: List[Dict[str, float]] = [score_video(video, caption, dataset) for video, caption in
                                         zip(videos, captions)]
    names = [name for name in SCORES if any(name in scores for scores in per_video)]
    # each attribute over the videos whose caption names it
    means = {name: float(np.mean([scores[name] for scores in per_video if name in scores])) for name in names}
    means["motion_error"] = float(np.median([scores["motion_error"] for scores in per_video]))
    return means


def score_given_frames(videos: torch.Tensor, captions: Sequence[str], dataset: str, truths: Sequence[Sequence],
                       given_masks: torch.Tensor) -> Dict[str, float]:
    """Videos (N, 3, T, H, W) made from given frames (given_masks (N, T)) against the world's truth: `truths` holds
    each clip's true centres (T pairs, fractions of width and height), the motion the given frames came from.
    Per video, over its generated frames: the mean distance of the object's centre from the truth in pixels
    (`track_error_px`, the median over videos, and the share within 2 px, `track_within_2px`), whether the object
    keeps what it is (`identity`: the colour and shape the caption names, read in the generated frames alone),
    whether it moves at all (`moving`: its generated frames' centres span more than 2 px), and the caption
    adherence of the whole clip (`adherence`, as `score_video`)."""
    if videos.dim() != 5 or given_masks.shape != (videos.shape[0], videos.shape[2]) or \
            len(captions) != len(videos) or len(truths) != len(videos):
        raise ValueError(f"score_given_frames takes videos (N, 3, T, H, W) with N captions, N truths and masks "
                         f"(N, T); got {tuple(videos.shape)}, {len(captions)}, {len(truths)}, "
                         f"{tuple(given_masks.shape)}")
    height, width = videos.shape[3:]
    rows = []
    for video, caption, truth, mask in zip(videos, captions, truths, given_masks):
        wanted = caption_attributes(caption, dataset)
        readings = read_video(video)
        generated = [readings[frame] for frame in range(len(readings)) if not mask[frame]]
        present = [reading for reading in generated if reading.centre is not None]
        row = {"adherence": score_readings(readings, (height, width), caption, dataset)["adherence"]}
        identity = len(present) == len(generated)
        if "colour" in wanted:
            identity &= majority([reading.colour for reading in present]) == wanted["colour"]
        if "shape" in wanted:
            identity &= majority_shape(present) == wanted["shape"]
        row["identity"] = float(identity)
        if len(present) == len(generated) and generated:
            frames = [frame for frame in range(len(readings)) if not mask[frame]]
            read = np.asarray([readings[frame].centre for frame in frames]) * (width, height)  # pixels
            true = np.asarray([truth[frame] for frame in frames]) * (width, height)
            row["track_error_px"] = float(np.linalg.norm(read - true, axis=1).mean())
            row["moving"] = float(np.ptp(read, axis=0).max() > 2)
        else:
            row.update(track_error_px=math.inf, moving=0.0)
        rows.append(row)
    errors = [row["track_error_px"] for row in rows]
    return {"adherence": float(np.mean([row["adherence"] for row in rows])),
            "identity": float(np.mean([row["identity"] for row in rows])),
            "moving": float(np.mean([row["moving"] for row in rows])),
            "track_error_px": float(np.median(errors)),
            "track_within_2px": float(np.mean([error <= 2 for error in errors]))}


def score_images(images: torch.Tensor, captions: Sequence[str], dataset: str) -> Dict[str, float]:
    """Text-to-image: one-frame videos (N, 3, 1, H, W) against their captions ("a small red circle"): the share
    with one object (`permanence`), each attribute the caption names right (`colour`, `shape`), and all of them
    right (`adherence`)."""
    if images.dim() != 5 or images.shape[2] != 1 or len(images) != len(captions):
        raise ValueError(f"score_images takes images (N, 3, 1, H, W) and N captions; got {tuple(images.shape)} and "
                         f"{len(captions)} captions")
    rows = []
    for image, caption in zip(images, captions):
        wanted = caption_attributes(caption, dataset, motion=False)
        reading = read_video(image)[0]
        row = {"permanence": float(reading.blobs == 1)}
        if "colour" in wanted:
            row["colour"] = float(reading.colour == wanted["colour"])
        if "shape" in wanted:
            row["shape"] = float(reading.centre is not None and shape_from_fill(reading.fill) == wanted["shape"])
        row["adherence"] = float(reading.centre is not None and all(row[name] == 1 for name in wanted))
        rows.append(row)
    return {name: float(np.mean([row[name] for row in rows if name in row]))
            for name in ("adherence", "colour", "shape", "permanence") if any(name in row for row in rows)}


def describe_scores(scores: dict, dataset: Optional[str] = None) -> str:
    """One line: adherence (with each attribute), motion consistency, permanence; with the `dataset`, also the
    attributes its world shows that no caption named, so went unscored. Images' scores: each as it is."""
    if "motion" not in scores:  # images (`score_images`): no motion to score
        return ", ".join(f"{name} {value:.0%}" for name, value in scores.items())
    attributes = ", ".join(f"{name} {scores[name]:.0%}" for name in ("colour", "shape", "direction") if name in scores)
    unscored = [name for name in WORLD_ATTRIBUTES.get(dataset, ()) if name not in scores]
    missing = f"; {' and '.join(unscored)} not scored (no prompt names one the world knows)" if unscored else ""
    return (f"adherence {scores['adherence']:.0%} ({attributes}{missing}), motion {scores['motion']:.0%}, "
            f"permanence {scores['permanence']:.0%}")
