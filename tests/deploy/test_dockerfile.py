"""The image's code is read-only to the user running it (issue 13).

No Docker engine answers here, so the Dockerfile is read, not built: these checks catch the
change that made /app writable (a planted ``sitecustomize.py`` there ran at the next start)
coming back, not a base image whose defaults differ.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_USER = "10001"


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [
        " ".join(part.split()) for part in re.split(r"\n(?=[A-Z]+ )", "\n".join(lines).replace("\\\n", " "))
    ]


def env() -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction in instructions():
        if instruction.startswith("ENV "):
            for pair in shlex.split(instruction.removeprefix("ENV ")):
                name, _, value = pair.partition("=")
                found[name] = value
    return found


def run_commands() -> list[list[str]]:
    """Each shell command of every RUN, split into words."""
    commands = []
    for instruction in instructions():
        if instruction.startswith("RUN "):
            commands += [shlex.split(cmd) for cmd in instruction.removeprefix("RUN ").split("&&")]
    return commands


def test_the_code_folder_is_roots_and_not_writable_by_others() -> None:
    variables = env()
    code_folders = variables["PYTHONPATH"].split(":")
    assert code_folders == ["/app"]
    for command in run_commands():
        if command[0] == "chown":
            owner, paths = command[1], command[2:]
            assert not set(paths) & set(code_folders) or owner == "root:root", command
        if command[0] == "chmod" and set(command[2:]) & set(code_folders):
            assert int(command[1], 8) & 0o022 == 0, command
    assert ["chown", "root:root", "/app"] in run_commands()


def test_no_folder_the_user_may_write_is_on_the_import_path() -> None:
    variables = env()
    assert variables["PYTHONNOUSERSITE"] == "1", "~/.local/lib/python*/site-packages would be on sys.path"
    assert variables["PYTHONSAFEPATH"] == "1", "the working folder would be on sys.path for python -m / -c"
    [useradd] = [command for command in run_commands() if command[0] == "useradd"]
    home = useradd[useradd.index("--home-dir") + 1]
    assert home == "/nonexistent" and "--no-create-home" in useradd


def test_the_image_runs_as_the_unprivileged_user() -> None:
    users = [i.split()[1] for i in instructions() if i.startswith("USER ")]
    assert users and users[-1].split(":")[0] == RUNTIME_USER
