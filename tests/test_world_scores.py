"""Lesson 15's scores read the worlds' own clips as right, and the rules (copy the last frame, a straight line) and
broken clips as what they are."""
import math

import pytest
import torch

from minisora import world_scores
from tiny_datasets.shapes import BACKGROUND
from tiny_datasets.videos import video_dataset


def clips(world, count):
    items = [world[index] for index in range(count)]
    return torch.stack([item["video"] for item in items]), [item["truth"] for item in items]


def first_frames(count, frames, given):
    mask = torch.zeros(count, frames, dtype=torch.bool)
    mask[:, :given] = True
    return mask


def test_permanence_reads_the_truth_as_right_and_a_frozen_frame_as_wrong():
    world = video_dataset("occlusion", num_items=24, image_size=32, num_frames=32, seed=3)
    videos, truths = clips(world, 24)
    mask = first_frames(24, 32, 8)
    real = world_scores.score_permanence(videos, truths, mask)
    assert real["count"] >= 5 and real["right"] == 1.0
    frozen = world_scores.score_permanence(world_scores.copy_last_frame(videos, mask), truths, mask)
    assert frozen["right"] <= 0.2
    line = world_scores.score_permanence(world_scores.straight_line(world, truths, mask), truths, mask)
    assert line["right"] > frozen["right"], "a straight line behind the pillar is right until a wall"
    vanished = videos.clone()
    vanished[:, :, 8:] = torch.tensor(BACKGROUND, dtype=torch.float32)[:, None, None, None] / 127.5 - 1
    gone = world_scores.score_permanence(vanished, truths, mask)
    assert gone["same_object"] == 0.0 and gone["hidden"] == 1.0 and gone["right"] == 0.0


def test_reappearances_are_read_from_the_visible_shares():
    assert world_scores.reappearances([1.0, 0.5, 0.0, 0.0, 0.4, 1.0, 0.0, 1.0]) == [(2, 3, 5), (6, 6, 7)]
    assert world_scores.reappearances([0.0, 0.0, 1.0]) == []  # never seen before it was hidden
    assert world_scores.reappearances([1.0, 0.0, 0.5]) == []  # never whole again


def test_collision_scores_read_the_truth_as_lawful_and_a_pass_through_as_wrong_velocities():
    world = video_dataset("collisions", num_items=24, image_size=32, num_frames=24, seed=3)
    videos, truths = clips(world, 24)
    mask = first_frames(24, 24, 4)
    real = world_scores.score_collisions(videos, truths, mask)
    assert real["collisions"] >= 5
    assert real["track_error_px"] < 0.5 and real["velocity_error"] < 0.3
    assert abs(real["energy_ratio"] - 1) < 0.1 and real["momentum_change"] < 0.25  # 32 px: read to a pixel
    line = world_scores.score_collisions(world_scores.straight_line(world, truths, mask), truths, mask)
    # balls that pass through each other keep momentum and energy too: only the velocities tell them apart
    assert line["velocity_error"] > 3 * real["velocity_error"]
    frozen = world_scores.score_collisions(world_scores.copy_last_frame(videos, mask), truths, mask)
    assert frozen["track_error_px"] > 3 and math.isinf(frozen["energy_ratio"])


def test_the_trail_scores_see_old_strokes_kept_or_erased():
    world = video_dataset("painter", num_items=8, image_size=32, num_frames=40, seed=3)
    videos, truths = clips(world, 8)
    colours = [truth[0].colour for truth in truths]
    trails = torch.stack([world.trail_mask(index, 39) for index in range(8)])
    old = torch.stack([world.trail_mask(index, 39 - world_scores.OLD_STROKES) for index in range(8)])
    real = world_scores.score_trails(videos, colours, trails, old)
    assert real["trail_iou"] > 0.8 and real["old_strokes_kept"] > 0.8
    mask = first_frames(8, 40, 10)
    frozen = world_scores.score_trails(world_scores.copy_last_frame(videos, mask), colours, trails, old)
    assert frozen["trail_iou"] < real["trail_iou"] - 0.3  # the canvas kept, but nothing painted after frame 9
    erased = videos.clone()
    background = torch.tensor(BACKGROUND, dtype=torch.float32)[:, None, None] / 127.5 - 1
    erased[:, :, -1] = torch.where(old[:, None], background, erased[:, :, -1])
    assert world_scores.score_trails(erased, colours, trails, old)["old_strokes_kept"] < 0.05


def test_colours_are_read_apart_on_one_frame():
    world = video_dataset("collisions", num_items=4, image_size=64, num_frames=2, num_balls=3)
    for index in range(4):
        item = world[index]
        read = world_scores.read_tracks(item["video"], [track.colour for track in item["truth"]])
        for track in item["truth"]:
            found = read[track.colour][0]
            assert found is not None and found["shape"] == "circle"
            assert world_scores.distance_px(found, track.positions[0], 64, 64) <= 1.0
    with pytest.raises(ValueError, match="no colour .purple. in the worlds"):
        world_scores.find_colour(world_scores.colour_labels(item["video"][:, 0]), "purple")
