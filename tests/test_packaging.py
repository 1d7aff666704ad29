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


def _lock() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version and " @ " not in line, f"lock line is not name==version: {line!r}"
        pins[canonicalize_name(name)] = version
    return pins


def test_the_lock_pins_every_dependency_inside_pyproject_ranges_and_torch_nowhere():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "torch":
            assert name not in pins, "torch is set in the Makefile (TORCH_VERSION), not in the lock"
            continue
        assert name in pins, f"{name} is not in the lock; run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"lock {name}=={pins[name]} outside {text!r}"
    assert "pip" in pins and "attnviz" not in pins


def test_make_setup_installs_through_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK\s*\?=\s*\.ci/constraints\.txt$", makefile, re.M)
    setup = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    installs = [line for line in setup.splitlines() if "pip install" in line]
    assert len(installs) == 3 and all("$(CONSTRAIN)" in line for line in installs)
    assert "$(LOCK)" in setup.splitlines()[0]  # a new lock reinstalls
    assert re.search(r"^lock:", makefile, re.M)
