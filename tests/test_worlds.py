"""Lesson 15's worlds: exact elastic physics, occlusion with a true visible share, a painter's trail that stays, and
Kang et al.'s scenarios drawn from their ranges, each drawn where its truth says."""
import json
import math

import pytest
import torch

from minisora.__main__ import main
from tiny_datasets import worlds
from tiny_datasets.shapes import COLOURS
from tiny_datasets.videos import GRAVITY, video_dataset
from tiny_datasets.worlds import (BALL_SIZES, Ball, Collisions, Painter, PhysicsScenarios, collide, kinetic_energy,
                                  momentum, simulate_balls)


def random_balls(count: int, seed: int, box=(1.0, 1.0)):
    generator = torch.Generator().manual_seed(seed)
    radii = [BALL_SIZES[name] / 2 for name in ("small", "large", "small")[:count]]
    centres = worlds.place_apart(radii, box, generator)
    velocities = (torch.rand(count, 2, generator=generator) - 0.5) * 0.12
    return [Ball(x, y, float(vx), float(vy), radius) for (x, y), (vx, vy), radius in zip(centres, velocities, radii)]


def test_a_collision_keeps_momentum_and_energy_and_matches_the_one_dimensional_closed_form():
    """Head on along x, the elastic collision of masses m1, m2 gives v1' = ((m1 - m2) v1 + 2 m2 v2) / (m1 + m2)."""
    first, second = Ball(0.3, 0.5, 0.04, 0.0, 0.15), Ball(0.55, 0.5, -0.01, 0.0, 0.1)
    m1, m2, v1, v2 = first.mass, second.mass, first.vx, second.vx
    collide(first, second)
    assert first.vx == pytest.approx(((m1 - m2) * v1 + 2 * m2 * v2) / (m1 + m2), abs=1e-15)
    assert second.vx == pytest.approx(((m2 - m1) * v2 + 2 * m1 * v1) / (m1 + m2), abs=1e-15)
    assert first.vy == second.vy == 0.0


def test_a_thousand_frames_of_three_balls_keep_their_energy_and_every_collision_its_momentum(monkeypatch):
    balls = random_balls(3, seed=4)
    energy = kinetic_energy(balls)
    kept, real_collide = [], worlds.collide

    def watched(first, second):  # the system's momentum, before and after each collision of two balls
        before = momentum([first, second])
        real_collide(first, second)
        kept.append((before, momentum([first, second])))

    monkeypatch.setattr(worlds, "collide", watched)
    for _ in range(1000):  # frame by frame, so the energy is read at every one
        positions, _ = simulate_balls(balls, 2, (1.0, 1.0))
        assert kinetic_energy(balls) == pytest.approx(energy, rel=1e-9, abs=0)
        for i in range(3):
            x, y = positions[i][-1]
            assert balls[i].radius - 1e-9 <= x <= 1 - balls[i].radius + 1e-9
            assert balls[i].radius - 1e-9 <= y <= 1 - balls[i].radius + 1e-9
            for j in range(i + 1, 3):  # no two balls overlap
                assert math.dist(positions[i][-1], positions[j][-1]) >= balls[i].radius + balls[j].radius - 1e-9
    assert len(kept) > 20, "the balls should meet often in 1000 frames"
    for (before_x, before_y), (after_x, after_y) in kept:
        assert after_x == pytest.approx(before_x, abs=1e-12) and after_y == pytest.approx(before_y, abs=1e-12)


def test_under_gravity_a_ball_follows_the_parabola_and_keeps_its_energy():
    """Kang et al.'s parabola: x0 + vx t, y0 + g t^2 / 2 exactly until the floor, which it leaves as fast."""
    ball = Ball(0.2, 0.2, 0.01, 0.0, 0.1)
    positions, _ = simulate_balls([ball], 13, (1.0, 1.0), gravity=GRAVITY)
    for t in range(9):  # 0.2 + 0.006 t^2 reaches the floor at 0.9 after about 10.8 frames
        assert positions[0][t][0] == pytest.approx(0.2 + 0.01 * t, abs=1e-12)
        assert positions[0][t][1] == pytest.approx(0.2 + GRAVITY * t * t / 2, abs=1e-12)
    ball = Ball(0.5, 0.3, 0.013, -0.02, 0.1)
    total = lambda b: b.mass * ((b.vx ** 2 + b.vy ** 2) / 2 + GRAVITY * (1.0 - b.y))  # noqa: E731
    energy = total(ball)
    simulate_balls([ball], 1000, (1.0, 1.0), gravity=GRAVITY)
    assert total(ball) == pytest.approx(energy, rel=1e-9)


def test_the_collisions_world_draws_its_balls_where_the_truth_says_and_names_them():
    dataset = video_dataset("collisions", num_items=12, image_size=64, num_frames=24, num_balls=3)
    met = 0
    for index in range(12):
        item = dataset[index]
        assert len(item["truth"]) == 3 and len({track.colour for track in item["truth"]}) == 3
        for track in item["truth"]:
            size = next(name for name, extent in BALL_SIZES.items() if extent == track.extent)
            assert f"a {size} {track.colour} ball" in item["caption"]
            met += len(track.collisions)
            colour = torch.tensor(COLOURS[track.colour], dtype=torch.float32)[:, None, None] / 127.5 - 1
            for frame in (0, 23):
                near = (item["video"][:, frame] - colour).abs().amax(0) < 0.1  # this ball's pixels
                rows, columns = torch.nonzero(near, as_tuple=True)
                x, y = (columns.min() + columns.max() + 1) / 128, (rows.min() + rows.max() + 1) / 128
                assert abs(float(x) - track.positions[frame][0]) * 64 <= 1.0
                assert abs(float(y) - track.positions[frame][1]) * 64 <= 1.0
    assert met > 0, "some balls should collide in 12 clips of 24 frames"


def test_occluded_objects_vanish_behind_the_pillar_and_out_of_the_frame_and_come_back():
    dataset = video_dataset("occlusion", num_items=16, image_size=32, num_frames=48)
    hidden_runs = []
    for index in range(16):
        item = dataset[index]
        track, pillar = item["truth"]
        assert pillar.kind == "pillar" and "behind a pillar" in item["caption"]
        assert len(track.visible) == 48 and all(0.0 <= share <= 1.0 for share in track.visible)
        colour = torch.tensor(COLOURS[track.colour], dtype=torch.float32)[:, None, None] / 127.5 - 1
        drawn = ((item["video"] - colour[:, None]).abs().amax(0) < 0.2).flatten(1).sum(1)  # (T,) its pixels
        for frame, share in enumerate(track.visible):
            if share == 0.0:
                assert drawn[frame] == 0, (index, frame)
            elif share == 1.0:
                assert drawn[frame] > 0.5 * (0.2 * 32) ** 2 * 0.5, (index, frame)  # at least half a triangle
        run = longest = 0
        for share in track.visible:
            run = run + 1 if share == 0.0 else 0
            longest = max(longest, run)
        hidden_runs.append(longest)
        x = [position[0] for position in track.positions]
        if any(share == 0.0 and not 0 < position < 1 for share, position in zip(track.visible, x)):
            assert max(track.visible) == 1.0  # it left the frame and was whole in it at another time
    assert max(hidden_runs) >= 5, "a slow object should stay hidden for several frames"


def test_a_nearer_object_hides_a_farther_one():
    dataset = video_dataset("occlusion", num_items=24, image_size=32, num_frames=32, num_objects=2)
    hidden_by_the_other = 0
    for index in range(24):
        far, near, pillar = dataset[index]["truth"]
        assert near.visible and pillar.kind == "pillar"
        for frame in range(32):
            overlap = abs(far.positions[frame][0] - near.positions[frame][0]) * 32 < 2  # the same place
            clear_of_pillar = abs(far.positions[frame][0] - pillar.positions[0][0]) * 32 > 0.3 * 32
            if overlap and clear_of_pillar and 0.15 < far.positions[frame][0] < 0.85:
                assert far.visible[frame] < near.visible[frame]
                hidden_by_the_other += 1
    assert hidden_by_the_other > 0


def test_the_painters_trail_stays_and_grows():
    dataset = video_dataset("painter", num_items=6, image_size=32, num_frames=40)
    for index in range(6):
        item = dataset[index]
        track = item["truth"][0]
        early, late = dataset.trail_mask(index, 5), dataset.trail_mask(index, 39)
        assert early.any() and bool((early & ~late).sum() == 0), "what was painted stays painted"
        assert late.sum() > early.sum()
        colour = torch.tensor(COLOURS[track.colour], dtype=torch.float32)[:, None, None] / 127.5 - 1
        painted = (item["video"][:, 39] - colour).abs().amax(0) < 0.2  # the last frame's trail pixels
        old = dataset.trail_mask(index, 5)  # the strokes of frames 0-5, 34+ frames before
        assert (painted & old).sum() >= 0.6 * old.sum()  # still there (where the tip does not cover it)
        later = dataset.clip(index, num_frames=10, start_frame=30)  # a clip seen later shows the old strokes too
        assert torch.equal(later["video"][:, -1], item["video"][:, 39])
        assert dataset.trail_mask(index, 39, since=30).sum() < late.sum()


def draws(dataset, count):
    return [dataset.tracks(index, num_frames=2) for index in range(count)]


def test_kangs_scenarios_draw_speeds_and_sizes_from_their_ranges_only():
    ranges = ((0.02, 0.03), (0.04, 0.05))  # a gap between: the interpolation set
    dataset = PhysicsScenarios(num_items=60, image_size=32, scenario="uniform", speed_ranges=ranges,
                               size_ranges=((0.15, 0.2),))
    speeds = []
    for tracks in draws(dataset, 60):
        (x0, _), (x1, _) = tracks[0].positions
        speeds.append(abs(x1 - x0))
        assert 0.15 <= tracks[0].extent <= 0.2
    for speed in speeds:  # the first step is the speed: no ball starts within a step of a wall
        assert any(low - 1e-9 <= speed <= high + 1e-9 for low, high in ranges)
    assert any(speed > 0.04 for speed in speeds) and any(speed < 0.03 for speed in speeds)
    with pytest.raises(ValueError, match="speed_ranges"):
        PhysicsScenarios(scenario="uniform", speed_ranges=((0.05, 0.02),))
    with pytest.raises(ValueError, match="scenario"):
        PhysicsScenarios(scenario="orbit")


def test_kangs_collision_scenario_collides_once_on_one_line():
    dataset = PhysicsScenarios(num_items=20, image_size=32, num_frames=32, scenario="collision")
    for index in range(20):
        first, second = dataset[index]["truth"]
        assert first.collisions and first.collisions == second.collisions
        assert 2 < first.collisions[0] < 31, "after the first frames show both speeds"
        assert {y for _, y in first.positions} == {first.positions[0][1]}  # all along one row
    parabola = PhysicsScenarios(num_items=4, image_size=32, scenario="parabola")[0]["truth"][0]
    ys = [y for _, y in parabola.positions]
    assert ys[2] - ys[1] > ys[1] - ys[0] > 0 or ys[-1] < ys[0], "it falls faster and faster (or bounced)"


@pytest.mark.parametrize("name", ["collisions", "occlusion", "painter", "physics"])
def test_the_data_command_writes_each_world_with_its_truth(name, tmp_path):
    folder = tmp_path / name
    assert main(["data", f"--dataset={name}", "--num_items=3", "--num_frames=9", f"--out_dir={folder}"]) == 0
    records = [json.loads(line) for line in (folder / "captions.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(record["truth"] for record in records)
    if name == "occlusion":
        assert all(len(record["truth"][0]["visible"]) == 9 for record in records)


def test_bad_world_settings_are_clear_errors():
    with pytest.raises(ValueError, match="num_balls must be 2 or 3"):
        Collisions(num_balls=5)
    with pytest.raises(ValueError, match="speeds is a range"):
        Collisions(speeds=(0.05, 0.01))
    with pytest.raises(ValueError, match="num_objects must be 1 or 2"):
        video_dataset("occlusion", num_objects=3)
    assert isinstance(video_dataset("painter", num_items=1), Painter)
