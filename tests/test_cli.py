"""The instructor's command line: help everywhere, clear errors that say what to do, non-zero exit on failure."""
import subprocess
import sys

import pytest

from grader.cli import main

COMMANDS = ["release", "collect", "autograde", "feedback", "export", "report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help_and_a_course_option(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    assert "--course" in capsys.readouterr().out


def test_top_level_help_lists_the_workflow():
    result = subprocess.run([sys.executable, "-m", "grader", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "Every subcommand takes --course DIR" in result.stdout
    assert ":func:" not in result.stdout and "``" not in result.stdout  # no developer markup


def test_not_a_course_directory(tmp_path, capsys):
    assert main(["autograde", "--course", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert "not a course directory" in error and "--course" in error


def test_unknown_assignment_names_the_known_ones(course_dir, capsys):
    assert main(["autograde", "--course", str(course_dir), "ps9"]) == 1
    error = capsys.readouterr().err
    assert "unknown assignment ps9" in error and "ps1" in error


def test_nothing_to_grade_says_how_to_get_submissions(course_dir, capsys):
    assert main(["autograde", "--course", str(course_dir), "--no-progress"]) == 0
    assert "grader collect" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["autograde", "feedback"])
@pytest.mark.parametrize("workers", ["0", "two"])
def test_workers_must_be_a_positive_number(command, workers, course_dir, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--course", str(course_dir), "--workers", workers])
    assert stopped.value.code == 2  # argparse's usage error
    error = capsys.readouterr().err
    assert "--workers" in error and "1 or more" in error


def test_release_list_prints_the_exercise_index_and_runs_nothing(capsys):
    from pathlib import Path

    course = Path(__file__).resolve().parents[1] / "course"
    assert main(["release", "--list", "--course", str(course)]) == 0
    out = capsys.readouterr().out
    assert "### 01-tensors" in out and "| `make-leaf` |" in out and "generated" not in out
