"""The environment is declared twice (pip's pyproject.toml, conda's environment.yml): they must agree."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for extra in ("course", "test", "dask", "postgres"):
        for requirement in project["optional-dependencies"][extra]:
            name, version = requirement.split("==")
            pins[name.lower()] = version
    return pins


def _environment_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"\s*-\s+([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_environment_yml_pins_what_pyproject_pins():
    assert _environment_pins() == _pyproject_pins()


def test_conda_environment_brings_graphviz_and_the_project():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s+graphviz\b", text, re.M)
    assert "--editable ." in text


def test_torch_is_pinned_to_the_cpu_build_on_disk():
    assert _pyproject_pins()["torch"] == "2.13.0"


def test_the_engine_needs_numpy_only():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [re.split(r"[<>=]", d)[0] for d in project["dependencies"]] == ["numpy"]
