"""The speedrun harness (benchmarks/speedrun.py): its floors, its table, and a whole run of the main command's
pipeline at a size that learns nothing, which must be reported as missing its floors."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speedrun():
    spec = importlib.util.spec_from_file_location("speedrun", ROOT / "benchmarks" / "speedrun.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metrics_of(adherence=0.95, unseen=0.92, image=0.91, track=1.0, backward=1.4, identity=0.9, seamless=0.94):
    task = {"track_error_px": track, "identity": identity}
    return {"trained": {"adherence": adherence},
            "sizes": {"1x32x32 (trained)": {"adherence": image}, "8x32x48 (trained)": {"adherence": adherence},
                      "12x40x40 (never trained on)": {"adherence": unseen}},
            "tasks": {"trained": {"image_to_video": task, "extend_forward": task, "interpolate": task,
                                  "extend_backward": {**task, "track_error_px": backward}},
                      "loops": {"seamless": seamless}}}


def test_floors_hold_on_the_mean_of_the_seeds_and_each_miss_is_named(speedrun):
    assert speedrun.missed_floors(speedrun.mean_scores([metrics_of()])) == []
    # one seed under the floor, the other above: the mean (0.875) misses text to video's 88%
    missed = speedrun.missed_floors(speedrun.mean_scores([metrics_of(adherence=0.85), metrics_of(adherence=0.90)]))
    assert missed == ["text to video, trained sizes: 0.875, floor >= 0.88"]
    missed = speedrun.missed_floors(speedrun.mean_scores([metrics_of(backward=2.1, seamless=0.5)]))
    assert [line.split(":")[0] for line in missed] == ["extend backward track (px)", "loops seamless"]
    # a run that scores no given-frame task (text to video alone) misses those floors as not measured
    text_only = {"trained": {"adherence": 0.95}, "sizes": {}, "tasks": {}}
    missed = speedrun.missed_floors(speedrun.mean_scores([text_only]))
    assert len(missed) == len(speedrun.FLOORS) - 1 and all("not measured" in line for line in missed)


def test_normalised_time_scales_by_the_measured_rate(speedrun):
    assert speedrun.normalised_minutes(600, 175.0) == pytest.approx(10.0)
    assert speedrun.normalised_minutes(1200, 87.5) == pytest.approx(10.0)  # twice as slow a machine, same record
    assert 1 < speedrun.matmul_gflops(size=256, repeats=3) < 1e5


def test_a_whole_run_too_small_to_learn_is_timed_by_phase_and_misses_its_floors(speedrun, tmp_path, capsys):
    tiny = ["--num_frames=8", "--hidden=32", "--depth=1", "--heads=2", "--text_hidden=16", "--text_depth=1",
            "--num_clips=64", "--held_out=8", "--buckets=8x32x32:4,1x32x32:8:1", "--unseen_sizes=4x24x24",
            "--steps=2", "--expert_steps=0", "--sampling_steps=2", "--checkpoint_every=2"]
    speedrun.main(["--preset", "sora", "--seeds", "0", "--out", str(tmp_path / "race"), "--", *tiny])
    printed = capsys.readouterr().out
    table = (tmp_path / "race" / "speedrun.md").read_text()
    header = table.splitlines()[0]
    for column in ("data s", "train s", "evaluation s", "wall min", "normalised min", "text_trained", "loops"):
        assert column in header
    row = table.splitlines()[2].split(" | ")
    assert row[0] == "| 0" and len(row) == len(header.split(" | "))
    assert "floors missed (not a record)" in printed and "text to video, trained sizes" in printed
    metrics = json.loads((tmp_path / "race" / "seed0" / "metrics.json").read_text())
    assert set(metrics["phase_seconds"]) == {"data", "train", "evaluation", "writing"}  # no expert: none of its phase
    assert all(seconds >= 0 for seconds in metrics["phase_seconds"].values())
    scores = speedrun.scores_of(metrics)
    assert not any(math.isnan(scores[key]) for _, key, _, _ in speedrun.FLOORS)  # every task was scored
