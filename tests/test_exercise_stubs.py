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


@pytest.mark.parametrize("lesson", LESSONS)
def test_stub_signatures_match_the_reference(lesson):
    module = _exercise_module(lesson)
    references = reference_namespace(module)
    for name, stub in exercise_functions(module).items():
        assert inspect.signature(stub) == inspect.signature(getattr(references, name)), name
        assert stub.__doc__ and f"Lesson {lesson[-2:]}" in stub.__doc__, f"{name} must name its lesson"


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
