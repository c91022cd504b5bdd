"""Lesson 15 checks (when two balls touch, an elastic collision, when an occluded object comes back), against
minisora by default and your stubs with --impl=exercises."""
import math

import pytest
import torch

from tiny_datasets.worlds import Ball

pytestmark = pytest.mark.lesson15


def test_two_balls_touch_when_their_gap_closes_to_the_sum_of_their_radii(impl):
    first, second = Ball(0.2, 0.5, 0.03, 0.0, 0.1), Ball(0.8, 0.5, -0.02, 0.0, 0.15)
    # head on: the gap 0.6 closes to 0.25 at 0.05 a frame
    assert impl.contact_time(first, second) == pytest.approx(0.35 / 0.05, abs=1e-12)
    assert math.isinf(impl.contact_time(Ball(0.2, 0.5, -0.03, 0.0, 0.1), Ball(0.8, 0.5, 0.02, 0.0, 0.15))), \
        "separating balls never touch"
    assert math.isinf(impl.contact_time(Ball(0.2, 0.2, 0.03, 0.0, 0.05), Ball(0.8, 0.8, -0.03, 0.0, 0.05))), \
        "closing in, but passing by"
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):  # at the time it gives, the centres are r1 + r2 apart, and nearer never before
        values = (torch.rand(8, generator=generator) - 0.5).tolist()
        a = Ball(values[0], values[1], values[2] * 0.1, values[3] * 0.1, 0.05)
        b = Ball(values[4] + 1.0, values[5], values[6] * 0.1, values[7] * 0.1, 0.08)
        time = impl.contact_time(a, b)
        if math.isinf(time):
            continue
        gap = lambda t: math.hypot(b.x + b.vx * t - a.x - a.vx * t, b.y + b.vy * t - a.y - a.vy * t)  # noqa: E731
        assert gap(time) == pytest.approx(0.13, abs=1e-9)
        assert all(gap(time * fraction) > 0.13 - 1e-9 for fraction in (0.0, 0.25, 0.5, 0.75))


def test_an_elastic_collision_keeps_momentum_and_energy_and_moves_only_along_the_line_of_centres(impl):
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        angle, v1x, v1y, v2x, v2y = torch.rand(5, generator=generator).tolist()
        r1, r2 = 0.05 + 0.1 * v1x, 0.05 + 0.1 * v2y  # masses r^2, unequal
        nx, ny = math.cos(6.283 * angle), math.sin(6.283 * angle)
        first = Ball(0.5, 0.5, v1x - 0.5, v1y - 0.5, r1)
        second = Ball(0.5 + (r1 + r2) * nx, 0.5 + (r1 + r2) * ny, v2x - 0.5, v2y - 0.5, r2)
        before = [(ball.vx, ball.vy) for ball in (first, second)]
        momentum = [first.mass * before[0][axis] + second.mass * before[1][axis] for axis in (0, 1)]
        energy = sum(ball.mass * (vx * vx + vy * vy) / 2 for ball, (vx, vy) in zip((first, second), before))
        impl.collide(first, second)
        assert first.mass * first.vx + second.mass * second.vx == pytest.approx(momentum[0], abs=1e-12)
        assert first.mass * first.vy + second.mass * second.vy == pytest.approx(momentum[1], abs=1e-12)
        assert sum(ball.mass * (ball.vx ** 2 + ball.vy ** 2) / 2 for ball in (first, second)) == \
            pytest.approx(energy, rel=1e-12)
        for ball, (vx, vy) in zip((first, second), before):  # the component across the line is untouched
            assert -ny * ball.vx + nx * ball.vy == pytest.approx(-ny * vx + nx * vy, abs=1e-12)
        closing = (before[0][0] - before[1][0]) * nx + (before[0][1] - before[1][1]) * ny
        if closing > 0:  # they were closing in: now they separate
            assert (first.vx - second.vx) * nx + (first.vy - second.vy) * ny == pytest.approx(-closing, abs=1e-12)


def test_reappearances_are_the_returns_after_wholly_hidden_runs(impl):
    assert impl.reappearances([1.0, 0.5, 0.0, 0.0, 0.4, 1.0, 0.0, 1.0]) == [(2, 3, 5), (6, 6, 7)]
    assert impl.reappearances([0.0, 0.0, 1.0]) == [], "never seen whole before it was hidden"
    assert impl.reappearances([1.0, 0.0, 0.5]) == [], "never whole again"
    assert impl.reappearances([1.0, 0.0, 0.2, 0.0, 1.0]) == [(1, 1, 4), (3, 3, 4)]
    assert impl.reappearances([1.0] * 5) == []
