"""The set-up files agree with each other and with what the README promises."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = [r for r in pip if not r.startswith("-e")]
    assert sorted(got) == sorted(want), "environment.yml pip list differs from pyproject (deps + dev)"
    assert "python=3.11" in env["dependencies"]


def test_torch_version_is_set_in_one_place():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^TORCH_VERSION\s*\?=\s*\d+\.\d+\.\d+", makefile, re.M)
    for f in ["pyproject.toml", "environment.yml", ".ci/run", "README.md"]:
        text = (ROOT / f).read_text()
        assert not re.search(r"torch==\d", text), f"{f} pins torch; the Makefile's TORCH_VERSION is the one place"


def test_readme_quick_start_has_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make (\w+)", quick, re.M) == ["lab", "test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_lab_opens_the_start_notebook_on_localhost():
    makefile = (ROOT / "Makefile").read_text()
    lab = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "--ip=127.0.0.1" in lab and "notebooks/00_start_here.ipynb" in lab
    assert (ROOT / "notebooks" / "00_start_here.ipynb").exists()
