"""Sequence parallelism on 2 gloo processes, in float64: Ulysses, ring attention and DSP's switches give each
process exactly its tokens' rows of single-process attention, and their gradients are the single-process gradients'
rows (`parallel.checks`); lengths the processes cannot share are clear errors; an error in a process is raised."""
import pytest

from minisora.parallel.checks import every_sequence_difference
from minisora.parallel.launch import run_on_processes
from minisora.parallel.sequence import check_divides


def test_sequence_parallel_attention_equals_one_process_in_outputs_and_gradients():
    for differences in run_on_processes(every_sequence_difference, 2):
        assert set(differences) == {"ulysses", "ring", "dsp"}
        for method, difference in differences.items():
            assert difference < 1e-12, (method, difference)


def test_lengths_and_heads_the_processes_cannot_share_are_clear_errors():
    with pytest.raises(ValueError, match="a length of 7 cannot be split evenly over 2 processes; pad it to a "
                                         "multiple of 2 \\(e.g. 8\\)"):
        check_divides(7, 2, "a length of")


def failing() -> None:
    raise ValueError("this process failed")


def test_an_error_in_a_process_is_raised_with_its_traceback():
    with pytest.raises(RuntimeError, match="failing failed on 2 of 2 processes(.|\n)*this process failed"):
        run_on_processes(failing, 2)
