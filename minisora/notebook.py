"""Helpers for the lesson notebooks: the fast mode the test suite runs them in, small matplotlib figures,
animations that play inline (and on GitHub), and the exercises' code where the learner has written it."""
import os
from typing import Callable, Dict, Optional, Sequence

import torch

# MINISORA_FAST=1 (set by the test suite) makes every lesson run in about a minute: fewer steps, fewer points.
FAST = os.environ.get("MINISORA_FAST", "0") == "1"


def pick(full, fast):
    """`full` normally, `fast` when the lesson runs in fast mode."""
    return fast if FAST else full


def scatter_panels(panels: Dict[str, torch.Tensor], limit: float = 3.0, size: float = 3.0):
    """Side-by-side scatter plots of 2D point sets (title -> (N, 2) tensor); returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    from .plotting import scatter_points

    figure, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for axis, (title, points) in zip(axes[0], panels.items()):
        scatter_points(axis, title, points, limit)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    return figure


def record_trajectory(sampler, denoiser, x, sigmas, **options):
    """Run a sampler and return (final x, trajectory (steps + 1, N, D)) using its callback."""
    states = [x.clone()]
    final = sampler(denoiser, x, sigmas, callback=lambda info: states.append(info["x"].clone()), **options)
    return final, torch.stack(states)


class Animation:
    """A looping GIF made of matplotlib frames. In a notebook it shows inline (embedded in the saved notebook, so it
    shows on GitHub too); `.save(path)` writes the GIF; `.gif` holds its bytes and `.frames` its frame count."""

    def __init__(self, gif: bytes, frames: int):
        self.gif, self.frames = gif, frames

    def _repr_html_(self) -> str:
        import base64

        data = base64.b64encode(self.gif).decode("ascii")
        return f'<img src="data:image/gif;base64,{data}"/>'

    def save(self, path) -> "Path":
        from pathlib import Path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.gif)
        return path


def animate(draw: Callable, frames: int, figsize=(4, 4), fps: float = 10, dpi: int = 60, hold_last: int = 5) -> Animation:
    """An Animation of `frames` pictures: `draw(figure, k)` draws frame k on an empty matplotlib figure. The last
    frame is held `hold_last` frames longer, so that a loop shows where the process ends."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    if frames < 1:
        raise ValueError(f"an animation needs at least one frame, got frames={frames}")
    figure = plt.figure(figsize=figsize, dpi=dpi)
    pictures = []
    for index in range(frames):
        figure.clear()
        draw(figure, index)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        pictures.append(Image.open(buffer).convert("RGB"))
    plt.close(figure)
    pictures += [pictures[-1]] * hold_last
    # one palette for every frame (taken from the last, which holds the most structure) keeps colours steady and the
    # file small
    palette = pictures[-1].quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    indexed = [picture.quantize(palette=palette, dither=Image.Dither.NONE) for picture in pictures]
    buffer = io.BytesIO()
    indexed[0].save(buffer, format="GIF", save_all=True, append_images=indexed[1:], duration=round(1000 / fps), loop=0)
    return Animation(buffer.getvalue(), len(indexed))


def animate_points(paths: Dict[str, torch.Tensor], limit: float = 3.0, size: float = 3.0, trails: int = 24,
                   fps: float = 10, labels: Optional[Dict[str, Sequence[str]]] = None, frames: int = 60) -> Animation:
    """Point clouds moving side by side: each title maps to a path (K, N, 2), K states of N points (a sampler's
    trajectory, from noise to data). All paths are shown at the same fraction of their length, so that a 1000-step
    chain and a 20-step one play together; `trails` points leave their track behind them. `labels` may give a line of
    text per state (K strings) under a panel's title. At most `frames` frames are drawn (fewer when every path is
    shorter)."""
    if not paths:
        raise ValueError("animate_points needs at least one path (title -> tensor of shape (K, N, 2))")
    for title, path in paths.items():
        if path.dim() != 3 or path.shape[-1] != 2:
            raise ValueError(f"path {title!r} must have shape (K, N, 2), got {tuple(path.shape)}")
    paths = {title: path.detach().cpu().double() for title, path in paths.items()}
    frames = min(frames, max(len(path) for path in paths.values()))

    def draw(figure, index):
        axes = figure.subplots(1, len(paths), squeeze=False)[0]
        for axis, (title, path) in zip(axes, paths.items()):
            state = round(index * (len(path) - 1) / max(frames - 1, 1))
            axis.scatter(path[state, :, 0], path[state, :, 1], s=2, alpha=0.5)
            for point in range(min(trails, path.shape[1])):
                axis.plot(path[:state + 1, point, 0], path[:state + 1, point, 1], lw=0.6, color="tab:red", alpha=0.7)
            text = labels[title][state] if labels and title in labels else f"state {state} of {len(path) - 1}"
            axis.set_title(f"{title}\n{text}", fontsize=8)
            axis.set_xlim(-limit, limit)
            axis.set_ylim(-limit, limit)
            axis.set_aspect("equal")
            axis.set_xticks([])
            axis.set_yticks([])
        figure.tight_layout()

    return animate(draw, frames, figsize=(size * len(paths), size + 0.3), fps=fps)


def yours_or_reference(lesson: str, name: str) -> Callable:
    """The function `name` of lessons/exercises/lessonNN_*.py once you have written it, minisora's until then; says
    which. Lessons build on it, so what you write runs in the lesson (and breaks it, if it is wrong)."""
    import importlib
    import importlib.util
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "lessons" / "exercises"
    matches = sorted(folder.glob(f"{lesson}_*.py"))
    if len(matches) != 1:
        raise FileNotFoundError(f"expected one exercise file {folder}/{lesson}_*.py (lesson is like 'lesson01'), "
                                f"found {[match.name for match in matches]}")
    spec = importlib.util.spec_from_file_location(f"exercises_{lesson}", matches[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise AttributeError(f"{matches[0].name} has no exercise {name!r}")
    yours = getattr(module, name)
    if not _is_untouched_stub(yours):
        print(f"using your {name} from lessons/exercises/{matches[0].name}")
        return yours
    for module_name in module.REFERENCE_MODULES:
        reference = importlib.import_module(module_name)
        if hasattr(reference, name):
            print(f"using minisora's {name} ({module_name}); write yours in lessons/exercises/{matches[0].name}")
            return getattr(reference, name)
    raise AttributeError(f"no reference for {name} in {module.REFERENCE_MODULES}")


def _is_untouched_stub(function: Callable) -> bool:
    """True when the function's body, past its docstring, is one `raise NotImplementedError(...)`."""
    import ast
    import inspect
    import textwrap

    definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    body = definition.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
