#!/usr/bin/env python3
"""Set up the course and run it, or run the tests: the two commands of README.md.

    python3 manage.py lab     set everything up, then open the course in JupyterLab
    python3 manage.py test    set everything up, then run the whole test suite
    python3 manage.py lab --lang ja    the Japanese edition (its notebooks, in workspace-ja/)

Set-up happens on first use and whenever pyproject.toml changes: a project-local
virtual environment in .venv with the pinned dependencies, this project installed
in editable mode, and Graphviz's `dot` (which draws computational graphs) where it
can be installed. Run again, set-up takes well under a second.

Only the standard library is used here, so this file runs on a fresh Python 3.11.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".autograd-lab-setup"
EXTRAS = "course,test,dask,postgres"
WORKSPACE = ROOT / "workspace"
STUDENT_NOTEBOOKS = ROOT / "course" / "release"
#: Editions in other languages: `manage.py lab --lang ja` opens workspace-ja/, copied from course/release-ja/.
LANGUAGES = ("en", "ja")


def use_edition(language: str) -> None:
    """Work in ``language``'s edition: its student notebooks, its own workspace, the checks in its language."""
    global WORKSPACE, STUDENT_NOTEBOOKS
    if language != "en":
        WORKSPACE = ROOT / f"workspace-{language}"
        STUDENT_NOTEBOOKS = ROOT / "course" / f"release-{language}"
        os.environ["AUTOGRAD_LAB_LANGUAGE"] = language

if str(ROOT) not in sys.path:  # the merge is the grader's too (python -m grader merge); it is standard library only
    sys.path.insert(0, str(ROOT))
from grader.authoring.merge import merge_release  # noqa: E402


def say(message: str) -> None:
    print(f"[manage] {message}", flush=True)


def venv_python() -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return VENV / scripts / ("python.exe" if os.name == "nt" else "python")


def setup_fingerprint() -> str:
    """What the environment is built from; a change means set-up runs again."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "manage.py"):
        digest.update((ROOT / name).read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def check_python() -> None:
    if sys.version_info < (3, 11):
        sys.exit(
            f"This course needs Python 3.11 or newer; this is {sys.version.split()[0]}.\n"
            "Install Python 3.11 (https://www.python.org/downloads/) and run this command with it, "
            "for example: python3.11 manage.py test"
        )


def ensure_venv() -> None:
    python = venv_python()
    fingerprint = setup_fingerprint()
    if python.exists() and STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    if not python.exists():
        say(f"creating a virtual environment in {VENV.relative_to(ROOT)}/")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    say("installing the pinned dependencies (the first time takes a minute or two)")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    run(pip + ["install", "--quiet", "--upgrade", "pip"])
    run(pip + ["install", "--quiet", "--editable", f".[{EXTRAS}]"])
    STAMP.write_text(fingerprint)
    say("environment ready")


def apt_install(packages: list[str], why: str) -> bool:
    """Install Debian packages when this is Debian and we are root; True if it worked."""
    apt = shutil.which("apt-get")
    if not (apt and hasattr(os, "geteuid") and os.geteuid() == 0):
        return False
    say(f"installing {', '.join(packages)} (Debian packages) {why}")
    try:
        run([apt, "update", "-qq"], quiet=True)
        run([apt, "install", "-y", "-qq", *packages], quiet=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        return True
    except subprocess.CalledProcessError:
        say(f"could not install {', '.join(packages)} with apt-get; continuing without")
        return False


def ensure_graphviz() -> None:
    """Graphviz's `dot` renders the computational graphs torchviz and autograd_lab draw.

    Everything else works without it: graph-drawing cells then print how to install it.
    """
    if shutil.which("dot") or apt_install(["graphviz"], "for drawing computational graphs"):
        return
    say(
        "Graphviz's `dot` is not installed, so computational graphs will not be drawn "
        "(everything else works). Install it with one of:\n"
        "    sudo apt-get install graphviz      (Debian, Ubuntu)\n"
        "    brew install graphviz              (macOS)\n"
        "    conda install -c conda-forge graphviz\n"
        "    https://graphviz.org/download/     (Windows)"
    )


def ensure_browser() -> None:
    """Chromium and ChromeDriver, for the test that opens the course in JupyterLab in a real browser."""
    if shutil.which("chromedriver") or apt_install(["chromium", "chromium-driver"], "for the browser test"):
        return
    say("Chromium and ChromeDriver are not installed: the browser test will be skipped "
        "(install them, e.g. `sudo apt-get install chromium chromium-driver`, to run it)")


def ensure_postgres() -> None:
    """PostgreSQL's server programs, for the test that runs the workflow on a PostgreSQL gradebook (it starts
    a throwaway server of its own, and never uses a running one)."""
    import glob

    if glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb"):
        return
    if apt_install(["postgresql"], "for the PostgreSQL gradebook test"):
        return
    say("PostgreSQL is not installed: the PostgreSQL gradebook test will be skipped "
        "(install it, e.g. `sudo apt-get install postgresql`, to run it)")


def run(command: list[str], quiet: bool = False, **kwargs) -> subprocess.CompletedProcess:
    output = subprocess.DEVNULL if quiet else None
    return subprocess.run(command, cwd=ROOT, check=True, stdout=output, **kwargs)


def setup() -> None:
    check_python()
    ensure_venv()
    ensure_graphviz()


def copy_student_notebooks() -> None:
    """Give the learner their own copies to work in; never overwrite their work.

    A notebook the course corrected since (a fixed test or text) is updated in place by
    :func:`merge_release`: the course's cells are the new ones, the learner's answers and
    own cells are kept, and the copy before the update is kept in workspace/.before-update/.
    """
    for notebook in sorted(STUDENT_NOTEBOOKS.glob("*/*.ipynb")):
        target = WORKSPACE / notebook.relative_to(STUDENT_NOTEBOOKS)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(notebook, target)
            say(f"new notebook: {WORKSPACE.name}/{target.relative_to(WORKSPACE)}")
            continue
        try:
            mine, release = (json.loads(path.read_text(encoding="utf-8")) for path in (target, notebook))
            merged = merge_release(mine, release)
        except (ValueError, KeyError, TypeError, AttributeError):
            say(f"{WORKSPACE.name}/{target.relative_to(WORKSPACE)} is not a notebook this can update: left as it is")
            continue
        if merged != mine:
            backup = WORKSPACE / ".before-update" / f"{target.relative_to(WORKSPACE)}.{int(time.time())}"
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, backup)
            target.write_text(json.dumps(merged, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            say(f"updated {WORKSPACE.name}/{target.relative_to(WORKSPACE)}: the course corrected it; your answers "
                f"are kept (the copy before is {WORKSPACE.name}/{backup.relative_to(WORKSPACE)})")


#: The instructor's nbgrader tools (Create Assignment, Formgrader, ...): not in the student's view.
NBGRADER_SERVER_EXTENSIONS = ["formgrader", "validate_assignment", "assignment_list", "course_list"]


def student_jupyter_config(folder: Path) -> Path:
    """A Jupyter config folder, put first on JUPYTER_CONFIG_PATH, that hides nbgrader's instructor tools."""
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyter/nbgrader": True}}, indent=1))
    extensions = {f"nbgrader.server_extensions.{name}": False for name in NBGRADER_SERVER_EXTENSIONS}
    (folder / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": extensions}}, indent=1))
    return folder


def student_environment() -> dict[str, str]:
    config = student_jupyter_config(VENV / "student-jupyter")
    paths = [str(config), *filter(None, os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))]
    return {**os.environ, "JUPYTER_CONFIG_PATH": os.pathsep.join(paths)}


def lab(extra: list[str]) -> int:
    setup()
    copy_student_notebooks()
    say(f"opening JupyterLab in {WORKSPACE.name}/ (your copies of the notebooks); stop it with Ctrl+C")
    command = [str(venv_python()), "-m", "jupyter", "lab", f"--notebook-dir={WORKSPACE}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")  # containers and cloud machines often run as root
    return subprocess.call(command, cwd=ROOT, env=student_environment())


def test(extra: list[str]) -> int:
    setup()
    ensure_browser()
    ensure_postgres()
    say("running the test suite: " + " ".join(["pytest", *extra]))
    return subprocess.call([str(venv_python()), "-m", "pytest", *extra], cwd=ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Anything after the command is passed on, e.g. `python3 manage.py test -m 'not slow'`.",
    )
    parser.add_argument("command", choices=["lab", "test", "setup"], help="what to do")
    parser.add_argument("--lang", choices=LANGUAGES, default="en",
                        help="lab: the edition to open (ja: the Japanese notebooks, in workspace-ja/)")
    args, extra = parser.parse_known_args(argv)
    use_edition(args.lang)
    if args.command == "setup":
        setup()
        return 0
    return {"lab": lab, "test": test}[args.command](extra)


if __name__ == "__main__":
    sys.exit(main())
