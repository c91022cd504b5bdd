"""The README's commands are the ones CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command.startswith("pip install torch==2.13.0")
    assert ci_command in (ROOT / "README.md").read_text()


def test_readme_names_every_lesson_notebook():
    readme = (ROOT / "README.md").read_text()
    for notebook in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
        assert f"lessons/{notebook.name}" in readme, f"README's lesson table misses {notebook.name}"


def test_the_lesson_table_links_each_executed_copy_with_its_time():
    """Each lesson row ends with a link to its executed copy, the mode it ran in and its time, as lessons/render.py
    writes them from the copy's metadata: a lesson rendered again without updating the table fails here."""
    import sys

    sys.path.insert(0, str(ROOT / "lessons"))
    import render

    rows = {line.split(" | ")[0].strip("| "): line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| ") and "](lessons/" in line}
    for notebook in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
        row = rows.get(notebook.name[:2])
        assert row is not None, f"README's lesson table has no row for {notebook.name}"
        assert row.rstrip(" |").endswith(render.outputs_cell(notebook.name)), \
            f"README's row for {notebook.name} is out of date: run python lessons/render.py {notebook.name[:2]}"


def test_every_relative_link_of_the_readme_and_docs_resolves():
    """The README keeps one screen and points into docs/: a link to a file that moved or never existed fails here."""
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, f"links to nothing: {broken}"
