"""Lesson 15 exercises: the physics of a world with known truth — when two balls touch, what an elastic collision
does to their velocities — and reading permanence from the truth: when an occluded object comes back. Check with
`pytest -m lesson15 --impl=exercises`; hints in lessons/hints/lesson15.md."""
from typing import List, Sequence, Tuple

from tiny_datasets.worlds import Ball

REFERENCE_MODULES = ("tiny_datasets.worlds", "minisora.world_scores")


def contact_time(first: Ball, second: Ball) -> float:
    """Lesson 15, exercise 1: the time (in frames, >= 0) at which two balls moving at constant velocities first
    touch (their centres as far apart as the sum of their radii), or math.inf when they are separating (moving
    apart along the line between them) or pass without touching."""
    raise NotImplementedError("Lesson 15: when two balls touch")


def collide(first: Ball, second: Ball) -> None:
    """Lesson 15, exercise 2: an elastic collision of two touching balls (masses `Ball.mass`): set both balls'
    velocities (vx, vy) to what they are just after it. Only the components along the line between the centres
    change; momentum and kinetic energy are kept (section 2 derives the rule)."""
    raise NotImplementedError("Lesson 15: an elastic collision")


def reappearances(visible: Sequence[float]) -> List[Tuple[int, int, int]]:
    """Lesson 15, exercise 3: from an object's visible share in each frame (1 whole, 0 wholly hidden), every time it
    comes back: (first hidden frame, last hidden frame, first frame after them at which it is whole), for each run
    of wholly hidden frames that comes after a frame where it was whole and is followed by one where it is whole."""
    raise NotImplementedError("Lesson 15: when an occluded object comes back")
