"""Execute the lessons and keep their executed copies in lessons/executed/, so that a reader on GitHub sees every
figure, animation and printed number without running anything.

    python lessons/render.py              # every lesson, in full mode
    python lessons/render.py 01 04        # some lessons
    python lessons/render.py --fast 13    # fast mode (MINISORA_FAST=1), for a lesson whose full mode trains for long

Each copy's metadata says the mode, the date, the seconds it took and the machine's thread count; its cells are the
source's cells, which tests/test_notebooks.py checks, so a lesson changed without rendering it again fails the suite.
After rendering, the README's lesson table is brought up to date: each row's last column links the executed copy and
says the mode and the time it took (tests/test_readme.py holds the two equal).
"""
import argparse
import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

LESSONS = Path(__file__).resolve().parent
EXECUTED = LESSONS / "executed"
README = LESSONS.parent / "README.md"


def sources(numbers):
    notebooks = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    if not numbers:
        return notebooks
    chosen = [path for path in notebooks if path.name[:2] in numbers]
    unknown = set(numbers) - {path.name[:2] for path in chosen}
    if unknown:
        raise SystemExit(f"no lesson numbered {sorted(unknown)}; the lessons are {[path.name[:2] for path in notebooks]}")
    return chosen


def render(path: Path, fast: bool, timeout: int) -> float:
    import nbformat
    import torch
    from nbclient import NotebookClient

    os.environ["MINISORA_FAST"] = "1" if fast else "0"
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend, so that figures become outputs
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(LESSONS)}}).execute()
    seconds = time.perf_counter() - start
    notebook.metadata["minisora"] = {"mode": "fast" if fast else "full", "seconds": round(seconds),
                                     "date": datetime.date.today().isoformat(), "threads": torch.get_num_threads(),
                                     "source": f"lessons/{path.name}"}
    EXECUTED.mkdir(exist_ok=True)
    temporary = EXECUTED / f".{path.name}.part"
    nbformat.write(notebook, temporary)
    temporary.replace(EXECUTED / path.name)
    return seconds


def duration(seconds: int) -> str:
    """52 s, or 7.9 min past two minutes."""
    return f"{seconds} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def outputs_cell(name: str) -> str:
    """The README table's last cell for one lesson: a link to its executed copy, the mode and the time it ran."""
    metadata = json.loads((EXECUTED / name).read_text())["metadata"]["minisora"]
    return f"[with outputs](lessons/executed/{name}): {metadata['mode']} mode, {duration(metadata['seconds'])}"


def update_readme() -> None:
    """Rewrite the last cell of each lesson row of the README's table (`| NN | [title](lessons/NN_...ipynb) ...`)."""
    lines = README.read_text().split("\n")
    for index, line in enumerate(lines):
        row = re.match(r"\| (\d\d) \| \[[^]]*\]\(lessons/(\d\d_[a-z0-9_]+\.ipynb)\)", line)
        if row and (EXECUTED / row.group(2)).exists():
            cells = line.rstrip().rstrip("|").split(" | ")
            lines[index] = " | ".join(cells[:-1] + [outputs_cell(row.group(2))]) + " |"
    README.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers such as 01 (default: all)")
    parser.add_argument("--fast", action="store_true", help="run in fast mode (MINISORA_FAST=1)")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds a cell may take")
    arguments = parser.parse_args(argv)
    for path in sources(arguments.lessons):
        print(f"{path.name}: running in {'fast' if arguments.fast else 'full'} mode ...", flush=True)
        seconds = render(path, arguments.fast, arguments.timeout)
        print(f"{path.name}: {seconds:.0f} s -> lessons/executed/{path.name}", flush=True)
        update_readme()


if __name__ == "__main__":
    sys.exit(main())
