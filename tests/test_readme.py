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
