"""The exercise stubs stay in sync with the reference, and none of their checks can pass on an untouched stub."""
import inspect
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from conftest import _exercise_module, exercise_functions, reference_namespace

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(path.name.split("_")[0] for path in (ROOT / "lessons" / "exercises").glob("lesson*_*.py"))


def test_there_are_exercises_for_the_written_lessons():
    assert {f"lesson{number:02d}" for number in range(1, 13)} <= set(LESSONS)


def _is_the_library_signature_less_its_options(stub, reference) -> bool:
    """The stub's parameters are the library function's with the same names, kinds and defaults: its positional ones
    a prefix of the library's, its keyword-only ones some of the library's; what the library takes beyond them is
    optional (a default, or **cond), so a check calling the stub's way calls both alike. A learner writes the loop,
    not the library's extras (a process's shard of the batch, a progress callback)."""
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    stub_parameters = list(inspect.signature(stub).parameters.values())
    reference_parameters = list(inspect.signature(reference).parameters.values())
    stub_positional = [parameter for parameter in stub_parameters if parameter.kind != keyword_only]
    reference_positional = [parameter for parameter in reference_parameters if parameter.kind != keyword_only]
    stub_keywords = {parameter.name: parameter for parameter in stub_parameters if parameter.kind == keyword_only}
    reference_keywords = {parameter.name: parameter for parameter in reference_parameters if parameter.kind == keyword_only}
    if reference_positional[:len(stub_positional)] != stub_positional:
        return False
    if any(reference_keywords.get(name) != parameter for name, parameter in stub_keywords.items()):
        return False
    left_out = reference_positional[len(stub_positional):] + [parameter for name, parameter in reference_keywords.items()
                                                               if name not in stub_keywords]
    return all(parameter.default is not inspect.Parameter.empty
               or parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
               for parameter in left_out)


@pytest.mark.parametrize("lesson", LESSONS)
def test_stub_signatures_match_the_reference(lesson):
    module = _exercise_module(lesson)
    references = reference_namespace(module)
    for name, stub in exercise_functions(module).items():
        assert _is_the_library_signature_less_its_options(stub, getattr(references, name)), name
        assert stub.__doc__ and f"Lesson {lesson[-2:]}" in stub.__doc__, f"{name} must name its lesson"


def test_the_signature_check_refuses_a_stub_that_differs():
    def library(x, sigma, *, steps: int = 3, callback=None, **cond): ...
    def same(x, sigma, *, steps: int = 3): ...
    def renamed(x, noise_level, *, steps: int = 3): ...
    def other_default(x, sigma, *, steps: int = 4): ...
    def extra(x, sigma, *, steps: int = 3, order: int = 2): ...
    def fewer_keywords(x, sigma, **cond): ...
    assert _is_the_library_signature_less_its_options(same, library)
    assert _is_the_library_signature_less_its_options(fewer_keywords, library)
    assert _is_the_library_signature_less_its_options(library, library)
    for stub in (renamed, other_default, extra):
        assert not _is_the_library_signature_less_its_options(stub, library), stub.__name__

    def library_with_a_required_extra(x, sigma, mask): ...
    def library_with_a_required_keyword(x, sigma, *, steps: int = 3, mask): ...
    assert not _is_the_library_signature_less_its_options(same, library_with_a_required_extra)
    assert not _is_the_library_signature_less_its_options(same, library_with_a_required_keyword)


def _solutions_file(lesson: str):
    matches = sorted((ROOT / "lessons" / "solutions").glob(f"{lesson}_*.py"))
    return matches[0] if matches else None


WORKED = [lesson for lesson in LESSONS if _solutions_file(lesson) is not None]


@pytest.mark.parametrize("lesson", LESSONS)
def test_worked_solutions_solve_the_stubs_exercises(lesson):
    """lessons/solutions/ holds a worked solution for each exercise, under the stub's own name and signature."""
    if _solutions_file(lesson) is None:
        pytest.skip(f"{lesson} has no worked solutions yet (issue 29)")
    assert _solutions_file(lesson).name == _exercise_module(lesson).__file__.rsplit("/", 1)[-1]
    stubs, solutions = exercise_functions(_exercise_module(lesson)), exercise_functions(_exercise_module(lesson, "solutions"))
    assert sorted(solutions) == sorted(stubs)
    for name, stub in stubs.items():
        assert inspect.signature(solutions[name]) == inspect.signature(stub), name


def test_every_check_passes_on_the_worked_solutions(tmp_path):
    if not WORKED:
        pytest.skip("no lesson has worked solutions yet")
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "exercises"), "--impl=solutions",
                    "-m", " or ".join(WORKED), "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                    f"--junitxml={report}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    root = ElementTree.parse(report).getroot()
    cases = list(root.iter("testcase"))
    assert cases, "no exercise check ran on the solutions"
    failed = {case.get("name"): (case.find("failure") if case.find("failure") is not None else case.find("error"))
              for case in cases}
    failed = {name: element.get("message", "")[:300] for name, element in failed.items() if element is not None}
    assert not failed, f"worked solutions fail these checks: {failed}"
    skipped = [case.get("name") for case in cases if case.find("skipped") is not None]
    assert len(skipped) < len(cases), "every check was skipped"


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_exercise_has_graded_hints(lesson):
    """lessons/hints/lessonNN.md: a section per exercise (## name) with at least two hints, each in a collapsed
    <details> block so that a learner opens one at a time."""
    path = ROOT / "lessons" / "hints" / f"{lesson}.md"
    if _solutions_file(lesson) is None and not path.exists():
        pytest.skip(f"{lesson} has no hints yet (issue 29)")
    sections = {}
    for block in ("\n" + path.read_text()).split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        sections[title.strip().strip("`")] = body
    for name in exercise_functions(_exercise_module(lesson)):
        assert name in sections, f"{path.name} has no section '## {name}'"
        assert sections[name].count("<summary>Hint") >= 2, f"{path.name}: '{name}' needs at least two graded hints"


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_exercise_is_checked(lesson):
    checks = (ROOT / "tests" / "exercises" / f"test_{lesson}.py").read_text()
    for name in exercise_functions(_exercise_module(lesson)):
        assert f"impl.{name}(" in checks, f"no check in tests/exercises/test_{lesson}.py calls impl.{name}"


def test_every_check_fails_on_the_untouched_stubs(tmp_path):
    report = tmp_path / "report.xml"
    markers = " or ".join(LESSONS)
    subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "exercises"), "--impl=exercises", "-m", markers,
                    "-q", "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={report}"],
                   cwd=ROOT, capture_output=True, text=True, timeout=300)
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcomes = {}
    for case in cases:
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        outcomes[case.get("name")] = None if failure is None else failure.get("message", "") + (failure.text or "")
    assert len(outcomes) >= 20
    passed = [name for name, message in outcomes.items() if message is None]
    assert not passed, f"these checks pass on the untouched stubs: {passed}"
    for name, message in outcomes.items():
        assert "NotImplementedError" in message, f"{name} failed for another reason than the stub: {message[:300]}"
