"""The trainers' pictures: drawn with matplotlib, with labelled axes, the loss on a log scale beside the learning
rate, and held-out losses named in the legend."""
import math

import pytest
import torch
from PIL import Image

from minisora.plotting import draw_line_plot, draw_loss_curve, draw_point_panels, smoothed
from minisora.train.loop import learning_rate_factor, learning_rates


def test_smoothed_is_a_trailing_moving_average():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert smoothed(values, 2) == [1.0, 1.5, 2.5, 3.5, 4.5]
    assert smoothed(values, 1) == values
    assert smoothed(values, 10) == [1.0, 1.5, 2.0, 2.5, 3.0]


def test_learning_rates_are_the_loops_schedule():
    rates = learning_rates(0.1, 40, warmup_steps=5)
    assert len(rates) == 40
    assert rates == [0.1 * learning_rate_factor(step, 40, 5) for step in range(40)]
    assert rates[0] == pytest.approx(0.02) and max(rates) == pytest.approx(0.1) and rates[-1] == pytest.approx(0.005)


def test_the_loss_picture_has_axes_a_log_loss_the_learning_rate_and_held_out_losses(tmp_path):
    losses = [math.exp(-step / 40) + 0.01 for step in range(200)]
    figure = draw_loss_curve(losses, tmp_path / "loss.png", learning_rates(1e-3, 200, 20), {"trained": 0.05})
    axis, rate_axis = figure.axes
    assert axis.get_yscale() == "log" and axis.get_xlabel() == "step" and rate_axis.get_ylabel() == "learning rate"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "learning rate" in labels and "held-out loss, trained: 0.05" in labels
    assert max(rate_axis.lines[0].get_ydata()) == pytest.approx(1e-3)
    image = Image.open(tmp_path / "loss.png")
    assert image.size == (700, 420)
    assert len(image.convert("L").getcolors(maxcolors=100_000)) > 10  # drawn, not blank


def test_the_loss_picture_refuses_an_empty_run(tmp_path):
    with pytest.raises(ValueError, match="0 steps"):
        draw_loss_curve([], tmp_path / "loss.png")


def test_line_plots_and_point_panels_are_labelled(tmp_path):
    figure = draw_line_plot({"track error": ([0, 8, 16], [1.0, 2.0, 4.0]), "identity": ([0, 8, 16], [9, 9, 8])},
                            tmp_path / "lines.png", "long videos", "first frame", "pixels")
    axis = figure.axes[0]
    assert (axis.get_xlabel(), axis.get_ylabel(), axis.get_title()) == ("first frame", "pixels", "long videos")
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["track error", "identity"]
    panels = draw_point_panels({"data": torch.randn(50, 2), "samples": torch.randn(50, 2)}, tmp_path / "points.png")
    assert [axis.get_title() for axis in panels.axes] == ["data", "samples"]
    assert (tmp_path / "lines.png").stat().st_size > 1000 and (tmp_path / "points.png").stat().st_size > 1000
