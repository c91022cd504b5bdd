"""Lesson 15's scores: a generated continuation of one of worlds.py's clips against what the world would have done.

Each world holds several objects of different colours, so a frame is read colour by colour: every pixel is named
by the nearest of the world's colours (its palette, the background, the pillar's grey, the brush's white tip), and
an object is the pixels of its colour (scoring.py reads one object by its distance from the background). Then:

  permanence   after an occluded object reappears (the first frame it is whole again after frames it was wholly
               hidden), is the same object there (its colour and shape), at the true place (within 2 px), and was
               nothing of its colour drawn while it was hidden?
  collisions   the tracks' error through the collisions; the velocities after each collision against the truth's;
               the momentum and energy of the generated tracks (masses: the balls' areas) after against before
  persistence  the painter's trail at the last frame against the truth (IoU), and how much of the strokes painted
               30 or more frames earlier is still there

Every score is read the same way from rule-based continuations (`baselines`: copy the last given frame; continue
each object in a straight line from its last two given positions), so a model's number means more than "it looks
right".
"""
import math
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from tiny_datasets.shapes import BACKGROUND, COLOURS
from tiny_datasets.videos import bounce_between_walls
from tiny_datasets.worlds import BRUSH_TIP, PILLAR_COLOUR
from .scoring import MINIMUM_BLOB, shape_from_fill

REFERENCE = {"background": BACKGROUND, "pillar": PILLAR_COLOUR, "tip": BRUSH_TIP, **COLOURS}
NAMES = list(REFERENCE)
COLOUR_DISTANCE = 70  # RGB distance (0-255) within which a pixel is named by its nearest reference colour
WITHIN_PX = 2.0  # a reappearance at the true place is within this many pixels of it
OLD_STROKES = 30  # strokes painted this many frames (or more) before the last are the painter's old ones


def colour_labels(frame: torch.Tensor) -> np.ndarray:
    """Each pixel of a frame (3, H, W) in [-1, 1] named by the index in NAMES of its nearest reference colour, or
    -1 where none is within COLOUR_DISTANCE: (H, W)."""
    pixels = (frame.clamp(-1, 1).permute(1, 2, 0).double().numpy() + 1) * 127.5  # (H, W, 3) in 0..255
    references = np.asarray([REFERENCE[name] for name in NAMES], dtype=np.float64)  # (K, 3)
    distances = np.linalg.norm(pixels[:, :, None, :] - references[None, None], axis=-1)  # (H, W, K)
    labels = distances.argmin(-1)
    labels[distances.min(-1) > COLOUR_DISTANCE] = -1
    return labels


def find_colour(labels: np.ndarray, colour: str) -> Optional[dict]:
    """The object of `colour` in a labelled frame: {"centre" (x, y) fractions of width and height (its bounding
    box's middle, as the worlds' truth), "pixels", "shape" (from its fill of the box)}, or None when fewer than
    MINIMUM_BLOB pixels have that colour."""
    if colour not in REFERENCE:
        raise ValueError(f"no colour {colour!r} in the worlds; they draw {', '.join(COLOURS)}")
    rows, columns = np.nonzero(labels == NAMES.index(colour))
    if len(rows) < MINIMUM_BLOB:
        return None
    height, width = labels.shape
    box = (rows.max() - rows.min() + 1) * (columns.max() - columns.min() + 1)
    return {"centre": ((columns.min() + columns.max() + 1) / 2 / width, (rows.min() + rows.max() + 1) / 2 / height),
            "pixels": len(rows), "shape": shape_from_fill(len(rows) / box)}


def read_tracks(video: torch.Tensor, colours: Sequence[str]) -> Dict[str, List[Optional[dict]]]:
    """Each colour's object in every frame of a video (3, T, H, W)."""
    frames = [colour_labels(video[:, index]) for index in range(video.shape[1])]
    return {colour: [find_colour(labels, colour) for labels in frames] for colour in colours}


def distance_px(read: Optional[dict], true: Tuple[float, float], height: int, width: int) -> float:
    if read is None:
        return math.inf
    return math.hypot((read["centre"][0] - true[0]) * width, (read["centre"][1] - true[1]) * height)


# ---- permanence ----

def reappearances(visible: Sequence[float]) -> List[Tuple[int, int, int]]:
    """(first hidden frame, last hidden frame, the frame it is whole again) for each time an object is wholly
    hidden (visible share 0) for a run of frames and later whole (share 1) in the clip."""
    found, frame = [], 0
    while frame < len(visible):
        if visible[frame] == 0.0 and any(share == 1.0 for share in visible[:frame]):
            end = frame
            while end + 1 < len(visible) and visible[end + 1] == 0.0:
                end += 1
            back = next((later for later in range(end + 1, len(visible)) if visible[later] == 1.0), None)
            if back is not None:
                found.append((frame, end, back))
            frame = end + 1
        else:
            frame += 1
    return found


def score_permanence(videos: torch.Tensor, truths: Sequence[Sequence], given_masks: torch.Tensor
                     ) -> Dict[str, float]:
    """Videos (N, 3, T, H, W) of the occlusion world made from given frames (given_masks (N, T)) against the truth
    (each clip's tracks, worlds.Occlusion's), over every reappearance whose frame of return was generated:
    `same_object` (its colour there, with its shape), `true_place` (within WITHIN_PX of the truth), `hidden` (no
    pixel of its colour while it was wholly hidden), `right` (all three), and `count`."""
    rows = []
    height, width = videos.shape[3:]
    for video, truth, mask in zip(videos, truths, given_masks):
        objects = [track for track in truth if track.kind != "pillar"]
        read = read_tracks(video, [track.colour for track in objects])
        for track in objects:
            for first, last, back in reappearances(track.visible):
                if mask[back]:
                    continue
                there = read[track.colour][back]
                same = there is not None and there["shape"] == track.name
                place = distance_px(there, track.positions[back], height, width) <= WITHIN_PX
                hidden = all(read[track.colour][frame] is None for frame in range(first, last + 1) if not mask[frame])
                rows.append((same, place, hidden))
    if not rows:
        return {"count": 0, "same_object": math.nan, "true_place": math.nan, "hidden": math.nan, "right": math.nan}
    same, place, hidden = (np.asarray(column, dtype=float) for column in zip(*rows))
    return {"count": len(rows), "same_object": float(same.mean()), "true_place": float(place.mean()),
            "hidden": float(hidden.mean()), "right": float((same * place * hidden).mean())}


# ---- collisions ----

VELOCITY_WINDOW = 4  # frames at most on either side of a collision over which a velocity is read (a straight fit)


def steady_frames(positions: Sequence[Tuple[float, float]], start: int, step: int, limit: int) -> List[int]:
    """Frames from `start` going `step` (-1 back, +1 on), up to VELOCITY_WINDOW + 1 of them inside 0 .. limit - 1,
    over which the truth moves at one velocity (no wall or other collision between): where a velocity can be read."""
    frames = [start]
    while len(frames) <= VELOCITY_WINDOW and 0 <= frames[-1] + step < limit:
        candidate = frames + [frames[-1] + step]
        ordered = sorted(candidate)
        steps = np.diff(np.asarray([positions[frame] for frame in ordered]), axis=0)
        if len(steps) > 1 and np.abs(steps - steps[0]).max() > 1e-9:
            break
        frames = candidate
    return sorted(frames)


def fitted_velocity(points: Sequence[Tuple[float, float]]) -> np.ndarray:
    """The least-squares velocity (per frame) of positions at consecutive frames."""
    points = np.asarray(points, dtype=np.float64)
    times = np.arange(len(points)) - (len(points) - 1) / 2
    return (times[:, None] * (points - points.mean(0))).sum(0) / (times ** 2).sum()


def score_collisions(videos: torch.Tensor, truths: Sequence[Sequence], given_masks: torch.Tensor
                     ) -> Dict[str, float]:
    """Videos (N, 3, T, H, W) of balls (worlds.Collisions or PhysicsScenarios) from given frames, against the truth:
    `track_error_px` (each ball's mean distance from its true centre over the generated frames, the median over
    videos); and over every collision of two balls that the generated frames show, with the steady frames before
    and after it (steady_frames): `velocity_error` (px a frame: the two balls' velocities after it, fitted to the
    video's tracks, against the truth's), `momentum_change` (|p_after - p_before| / (m1 |v1| + m2 |v2|) before, of the
    pair read from the video, masses their areas) and `energy_ratio` (E_after / E_before), each the median; the
    truth itself gives about 0, 0 and 1. A collision whose balls the video does not show counts as inf."""
    height, width = videos.shape[3:]
    scale = np.asarray([width, height], dtype=np.float64)  # fractions of the side -> pixels
    errors, velocity_errors, momentum_changes, energy_ratios = [], [], [], []
    for video, truth, mask in zip(videos, truths, given_masks):
        count = video.shape[1]
        read = read_tracks(video, [track.colour for track in truth])
        generated = [frame for frame in range(count) if not mask[frame]]
        errors.append(float(np.mean([np.mean([distance_px(read[track.colour][frame], track.positions[frame], height,
                                                          width) for frame in generated]) for track in truth])))
        for time in sorted({time for track in truth for time in track.collisions}):
            pair = [track for track in truth if time in track.collisions]
            before, after = math.floor(time), math.floor(time) + 1
            if len(pair) != 2 or after >= count or mask[after]:
                continue  # a collision of the given frames, or past the clip's end
            windows = [(steady_frames(track.positions, before, -1, count), steady_frames(track.positions, after, 1,
                                                                                        count)) for track in pair]
            if any(len(window) < 2 for both in windows for window in both):
                continue  # another event right beside it: no steady frames to read a velocity over
            if any(read[track.colour][frame] is None for track, both in zip(pair, windows) for window in both
                   for frame in window):
                velocity_errors.append(math.inf)
                momentum_changes.append(math.inf)
                energy_ratios.append(math.inf)
                continue
            masses = [track.extent ** 2 for track in pair]
            made = [[fitted_velocity([read[track.colour][frame]["centre"] for frame in window]) * scale
                     for window in both] for track, both in zip(pair, windows)]  # [ball][before, after] px a frame
            true_after = [fitted_velocity([track.positions[frame] for frame in both[1]]) * scale
                          for track, both in zip(pair, windows)]
            velocity_errors.append(float(np.mean([np.linalg.norm(velocities[1] - true)
                                                  for velocities, true in zip(made, true_after)])))
            p_before = sum(mass * velocities[0] for mass, velocities in zip(masses, made))
            p_after = sum(mass * velocities[1] for mass, velocities in zip(masses, made))
            moving = sum(mass * np.linalg.norm(velocities[0]) for mass, velocities in zip(masses, made))
            e_before = sum(mass * velocities[0] @ velocities[0] / 2 for mass, velocities in zip(masses, made))
            e_after = sum(mass * velocities[1] @ velocities[1] / 2 for mass, velocities in zip(masses, made))
            momentum_changes.append(float(np.linalg.norm(p_after - p_before) / moving) if moving > 1e-9 else math.inf)
            energy_ratios.append(float(e_after / e_before) if e_before > 1e-12 else math.inf)

    def median(values):
        return float(np.median(values)) if values else math.nan

    return {"track_error_px": median(errors), "collisions": len(velocity_errors),
            "velocity_error": median(velocity_errors), "momentum_change": median(momentum_changes),
            "energy_ratio": median(energy_ratios)}


# ---- the painter's persistent state ----

def score_trails(videos: torch.Tensor, colours: Sequence[str], trails: torch.Tensor, old_trails: torch.Tensor
                 ) -> Dict[str, float]:
    """The painter's last frames (videos (N, 3, T, H, W), each brush's colour in `colours`) against the truth's
    trails there (`trails` (N, H, W) bool: worlds.Painter.trail_mask at the last frame) and their old strokes
    (`old_trails`: the part painted OLD_STROKES or more frames before): `trail_iou` (painted pixels, the trail's
    colour or the brush's tip, against the trail), `old_strokes_kept` (the share of the old strokes still painted)."""
    ious, kept = [], []
    for video, colour, trail, old in zip(videos, colours, trails, old_trails):
        labels = colour_labels(video[:, -1])
        painted = torch.from_numpy((labels == NAMES.index(colour)) | (labels == NAMES.index("tip")))
        ious.append(float((painted & trail).sum() / max(int((painted | trail).sum()), 1)))
        kept.append(float((painted & old).sum() / max(int(old.sum()), 1)))
    return {"trail_iou": float(np.mean(ious)), "old_strokes_kept": float(np.mean(kept))}


# ---- what rules give ----

def copy_last_frame(videos: torch.Tensor, given_masks: torch.Tensor) -> torch.Tensor:
    """Every generated frame the last given frame before it (the first given frame for frames before any)."""
    copied = videos.clone()
    for video, mask in zip(copied, given_masks):
        given = [frame for frame in range(video.shape[1]) if mask[frame]]
        for frame in range(video.shape[1]):
            if not mask[frame]:
                source = max((index for index in given if index < frame), default=given[0])
                video[:, frame] = video[:, source]
    return copied


def straight_line(world, truths: Sequence[Sequence], given_masks: torch.Tensor) -> torch.Tensor:
    """Every object continued after the last given frame at its velocity between the last two given frames,
    reflected by the world's walls (`walls_beyond_frame` beyond its edges) but passing through other objects (no
    physics but the walls), drawn by `world` (the dataset the truths came from)."""
    box = world.box
    beyond = getattr(world, "walls_beyond_frame", 0.0)
    videos = []
    for truth, mask in zip(truths, given_masks):
        given = [frame for frame in range(len(mask)) if mask[frame]]
        last, before = given[-1], given[-2]
        moved = []
        for track in truth:
            half = track.extent / 2
            position = [track.positions[last][axis] * box[axis] for axis in (0, 1)]  # in units of the shorter side
            velocity = [(track.positions[last][axis] - track.positions[before][axis]) * box[axis] / (last - before)
                        for axis in (0, 1)]
            positions = list(track.positions[:last + 1])
            for _ in range(last + 1, len(track.positions)):
                for axis in (0, 1):
                    position[axis], velocity[axis] = bounce_between_walls(position[axis], velocity[axis],
                                                                          half - beyond, box[axis] - half + beyond)
                positions.append((position[0] / box[0], position[1] / box[1]))
            moved.append(replace(track, positions=tuple(positions)))
        videos.append(world.render(moved))
    return torch.stack(videos)
