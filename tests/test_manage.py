"""manage.py, the two commands of README.md: set-up is skipped when nothing changed; work is never overwritten."""
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("manage", ROOT / "manage.py")
manage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(manage)


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "python3 manage.py lab" in readme and "python3 manage.py test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^python3 manage\.py test\s*$", ci, re.M)


def test_setup_is_skipped_when_nothing_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(manage, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(manage, "STAMP", tmp_path / ".venv" / "stamp")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    manage.STAMP.write_text(manage.setup_fingerprint())
    calls = []
    monkeypatch.setattr(manage, "run", lambda *a, **k: calls.append(a))
    manage.ensure_venv()
    assert calls == []
    manage.STAMP.write_text("stale")
    manage.ensure_venv()
    assert any("--editable" in " ".join(map(str, call[0])) for call in calls)


def test_lab_copies_notebooks_without_overwriting_work(tmp_path, monkeypatch):
    release = tmp_path / "release" / "01-tensors"
    release.mkdir(parents=True)
    (release / "01-tensors.ipynb").write_text("fresh")
    monkeypatch.setattr(manage, "STUDENT_NOTEBOOKS", tmp_path / "release")
    monkeypatch.setattr(manage, "WORKSPACE", tmp_path / "workspace")
    manage.copy_student_notebooks()
    copy = tmp_path / "workspace" / "01-tensors" / "01-tensors.ipynb"
    assert copy.read_text() == "fresh"
    copy.write_text("my answers")
    manage.copy_student_notebooks()
    assert copy.read_text() == "my answers"


def test_missing_graphviz_gets_instructions_not_a_failure(monkeypatch, capsys):
    monkeypatch.setattr(manage.shutil, "which", lambda name: None)
    manage.ensure_graphviz()
    out = capsys.readouterr().out
    assert "apt-get install graphviz" in out and "brew install graphviz" in out


def _cell(key: str, source: str, **nbgrader) -> dict:
    meta = {"nbgrader": {"grade_id": key, **nbgrader}} if nbgrader else {}
    return {"id": key, "cell_type": "code", "source": source, "metadata": meta, "outputs": [], "execution_count": None}


def _notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_a_corrected_release_reaches_a_learner_who_started_without_losing_their_answers(tmp_path, monkeypatch):
    import json

    old = _notebook(_cell("intro", "# Intro", locked=True), _cell("grad", "# YOUR CODE HERE", solution=True),
                    _cell("test-grad", "assert grad(3) == 6", grade=True, locked=True))
    mine = json.loads(json.dumps(old))
    mine["cells"][1]["source"] = "def grad(x):\n    return 2 * x"
    mine["cells"].insert(2, _cell("scratch", "grad(1.5)  # trying it"))
    new = json.loads(json.dumps(old))
    new["cells"][2]["source"] = "assert grad(-1.5) == -3"  # the course fixed its test
    new["cells"].insert(1, _cell("hint", "Hint: the power rule", locked=True))
    release = tmp_path / "release" / "01-tensors"
    release.mkdir(parents=True)
    (release / "01-tensors.ipynb").write_text(json.dumps(new))
    copy = tmp_path / "workspace" / "01-tensors" / "01-tensors.ipynb"
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps(mine))
    monkeypatch.setattr(manage, "STUDENT_NOTEBOOKS", tmp_path / "release")
    monkeypatch.setattr(manage, "WORKSPACE", tmp_path / "workspace")
    manage.copy_student_notebooks()
    merged = json.loads(copy.read_text())
    assert [(c["id"], c["source"]) for c in merged["cells"]] == [
        ("intro", "# Intro"), ("hint", "Hint: the power rule"), ("grad", "def grad(x):\n    return 2 * x"),
        ("scratch", "grad(1.5)  # trying it"), ("test-grad", "assert grad(-1.5) == -3")]
    backups = list((tmp_path / "workspace" / ".before-update").rglob("*"))
    assert [json.loads(b.read_text()) for b in backups if b.is_file()] == [mine]
    manage.copy_student_notebooks()  # nothing changed since: nothing written
    assert len([b for b in (tmp_path / "workspace" / ".before-update").rglob("*") if b.is_file()]) == 1
    copy.write_text("{not json")
    manage.copy_student_notebooks()
    assert copy.read_text() == "{not json"


def test_postgres_is_installed_for_its_test_or_its_absence_said(monkeypatch, capsys):
    monkeypatch.setattr(manage.shutil, "which", lambda name: None)
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    monkeypatch.setattr(manage, "apt_install", lambda packages, why: False)
    manage.ensure_postgres()
    assert "PostgreSQL is not installed: the PostgreSQL gradebook test will be skipped" in capsys.readouterr().out


def test_lab_hides_the_instructors_nbgrader_tools(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    monkeypatch.setattr(manage, "VENV", tmp_path / "venv")
    environment = manage.student_environment()
    listed = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=environment,
                            capture_output=True, text=True)
    line = next(line for line in (listed.stdout + listed.stderr).splitlines() if "@jupyter/nbgrader v" in line)
    assert "disabled" in line
    config = (tmp_path / "venv" / "student-jupyter" / "jupyter_server_config.json").read_text()
    assert '"nbgrader.server_extensions.formgrader": false' in config
    assert environment["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0] == str(tmp_path / "venv" / "student-jupyter")
