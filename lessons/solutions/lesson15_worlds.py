"""Lesson 15, worked solutions: the exercises of lessons/exercises/lesson15_worlds.py, written out."""
import math
from typing import List, Sequence, Tuple

from tiny_datasets.worlds import Ball

REFERENCE_MODULES = ("tiny_datasets.worlds", "minisora.world_scores")


def contact_time(first: Ball, second: Ball) -> float:
    # the gap d(t) = dx + dv t between the centres; they touch when |d(t)|^2 = (r1 + r2)^2:
    # |dv|^2 t^2 + 2 <dx, dv> t + |dx|^2 - (r1 + r2)^2 = 0, the smaller root, if <dx, dv> < 0 (closing in)
    dx, dy = second.x - first.x, second.y - first.y
    dvx, dvy = second.vx - first.vx, second.vy - first.vy
    closing = dx * dvx + dy * dvy
    if closing >= 0:
        return math.inf
    a, b = dvx ** 2 + dvy ** 2, 2 * closing
    c = dx ** 2 + dy ** 2 - (first.radius + second.radius) ** 2
    discriminant = b * b - 4 * a * c
    if discriminant < 0:
        return math.inf  # they pass each other
    return max((-b - math.sqrt(discriminant)) / (2 * a), 0.0)


def collide(first: Ball, second: Ball) -> None:
    # the impulse J n along the unit line of centres n: v1' = v1 - J/m1 n, v2' = v2 + J/m2 n keeps momentum;
    # keeping energy too gives J = 2 m1 m2 / (m1 + m2) <v1 - v2, n>
    dx, dy = second.x - first.x, second.y - first.y
    length = math.hypot(dx, dy)
    nx, ny = dx / length, dy / length
    closing = (first.vx - second.vx) * nx + (first.vy - second.vy) * ny
    impulse = 2 * first.mass * second.mass / (first.mass + second.mass) * closing
    first.vx, first.vy = first.vx - impulse / first.mass * nx, first.vy - impulse / first.mass * ny
    second.vx, second.vy = second.vx + impulse / second.mass * nx, second.vy + impulse / second.mass * ny


def reappearances(visible: Sequence[float]) -> List[Tuple[int, int, int]]:
    found, seen_whole, frame = [], False, 0
    while frame < len(visible):
        if visible[frame] == 0.0 and seen_whole:
            last = frame
            while last + 1 < len(visible) and visible[last + 1] == 0.0:
                last += 1
            back = next((later for later in range(last + 1, len(visible)) if visible[later] == 1.0), None)
            if back is not None:
                found.append((frame, last, back))
            frame = last + 1
            continue
        seen_whole |= visible[frame] == 1.0
        frame += 1
    return found
