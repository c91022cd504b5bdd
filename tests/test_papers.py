"""The paper notes point at code that exists: every code reference in papers/*.md (a file, a module's function,
a class's method or attribute, a config field, a test) names something in the repository."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {path: path.read_text() for folder in ("minisora", "tiny_datasets") for path in (ROOT / folder).rglob("*.py")}
TESTS = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("*.py"))
NOTES = sorted((ROOT / "papers").glob("*.md"))


def defines(source: str, name: str) -> bool:
    """`name` is defined or used as an identifier (or a string a config takes) in `source`."""
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", source) is not None


def module_sources(name: str):
    """The sources of the modules called `name` (minisora/**/name.py) or defining a class or function `name`."""
    found = [source for path, source in SOURCES.items() if path.stem == name]
    return found or [source for source in SOURCES.values() if re.search(rf"^(class|def) {name}\b", source, re.M)]


def resolves(reference: str) -> bool:
    reference = reference.removesuffix("()")
    if "/" in reference or reference.endswith(".py"):
        return any((ROOT / folder / reference).exists() for folder in ("", "minisora", "tests")) or any(
            str(path).endswith("/" + reference.rstrip("/")) for path in ROOT.rglob(Path(reference).name))
    if reference.startswith("test_"):
        return re.search(rf"^def {reference}\(", TESTS, re.M) is not None
    parts = reference.removeprefix("minisora.").split(".")
    if parts[0] == "torch":  # PyTorch's own API: its longest importable module, then attributes
        import importlib
        for length in range(len(parts), 0, -1):
            try:
                target = importlib.import_module(".".join(parts[:length]))
            except ImportError:
                continue
            for name in parts[length:]:
                if not hasattr(target, name):
                    return False
                target = getattr(target, name)
            return True
        return False
    for length in range(len(parts) - 1, 1, -1):  # a module named by its package path: train.video.train_expert
        path = ROOT / "minisora" / Path(*parts[:length]).with_suffix(".py")
        if path.is_file():
            return all(defines(SOURCES[path], name) for name in parts[length:])
    first, *rest = parts
    if not rest:
        return any(defines(source, first) for source in SOURCES.values())
    # module.function, module.Class.method, Class.method: the rest is defined in the module that holds the first
    return any(all(defines(source, name) for name in rest) for source in module_sources(first))


def code_references(text: str):
    """Backticked names that look like code: identifiers with a dot, an underscore or a slash, optionally ()."""
    for token in re.findall(r"`([^`\n]+)`", text):
        output_file = re.search(r"\.(png|gif|mp4|json|jsonl|pt|txt|csv)$", token)  # what a run writes, not code
        if re.fullmatch(r"[A-Za-z_][\w./]*(\(\))?", token) and re.search(r"[._/]", token) and not output_file:
            yield token


@pytest.mark.parametrize("note", NOTES, ids=lambda path: path.name)
def test_every_code_reference_in_a_paper_note_resolves(note):
    unresolved = [reference for reference in code_references(note.read_text()) if not resolves(reference)]
    assert not unresolved, f"{note.name} names code that does not exist: {unresolved}"


def test_the_check_catches_a_reference_to_nothing():
    assert resolves("ddim.ddim_step") and resolves("MixedPrecision.step") and resolves("models/dit.py")
    assert not resolves("MixedPrecision.backward_and_step") and not resolves("ddim.ddim_leap")
    assert not resolves("models/ditt.py") and not resolves("test_nothing_at_all")
    assert resolves("train.video.train_expert") and not resolves("train.video.train_nothing")
    assert resolves("torch.amp.GradScaler") and not resolves("torch.amp.GradShaker")
