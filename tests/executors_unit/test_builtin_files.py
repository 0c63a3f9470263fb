"""The file and csv built-ins read and write regular files inside their roots, and nothing else.

Every refusal is checked for its reason and for what it did not do: the file outside is
unchanged, nothing new was created.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.executors.sandbox.refusal import Refused
from tests.executors_unit.builtin_helpers import call

SECRET = "the outside file\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file next to the root, outside it."""
    folder = tmp_path / "outside"
    folder.mkdir()
    secret = folder / "secret.txt"
    secret.write_text(SECRET)
    return secret


async def files(name: str, input: dict[str, Any], root: Path, **sandbox: Any) -> Any:
    return await call(name, input, file_roots=(root,), **sandbox)


async def refused(name: str, input: dict[str, Any], root: Path, **sandbox: Any) -> str:
    with pytest.raises(Refused) as refusal:
        await files(name, input, root, **sandbox)
    assert refusal.value.non_retryable
    return refusal.value.reason


async def test_reads_and_writes_inside_a_root(root: Path) -> None:
    written = await files("file.write_text", {"path": f"{root}/a.txt", "text": "héllo"}, root)
    assert written == {"path": f"{root}/a.txt", "bytes": 6}
    assert await files("file.read_text", {"path": f"{root}/a.txt"}, root) == {"text": "héllo"}
    (root / "sub").mkdir()
    rows = [{"name": "apple", "qty": "3"}, {"name": "pear", "qty": "5"}]
    assert await files("csv.write", {"path": f"{root}/sub/t.csv", "rows": rows}, root) == {
        "path": f"{root}/sub/t.csv",
        "rows": 2,
    }
    assert (root / "sub" / "t.csv").read_text().splitlines() == ["name,qty", "apple,3", "pear,5"]
    assert await files("csv.read", {"path": f"{root}/sub/t.csv"}, root) == {"rows": rows}


async def test_no_roots_configured_refuses_every_path(root: Path) -> None:
    with pytest.raises(Refused, match=r"no file roots are configured.*LEDGERFLOW_FILE_ROOTS"):
        await call("file.write_text", {"path": f"{root}/a.txt", "text": "x"})
    assert not (root / "a.txt").exists()


@pytest.mark.parametrize("name", ["file.read_text", "csv.read"])
async def test_dot_dot_cannot_escape(name: str, root: Path, outside: Path) -> None:
    reason = await refused(name, {"path": f"{root}/../outside/secret.txt"}, root)
    assert "'..'" in reason and "LEDGERFLOW_FILE_ROOTS" in reason


async def test_dot_dot_write_creates_nothing(root: Path, outside: Path) -> None:
    target = outside.parent / "new.txt"
    reason = await refused("file.write_text", {"path": f"{root}/../outside/new.txt", "text": "x"}, root)
    assert "'..'" in reason
    assert not target.exists()


async def test_absolute_path_outside_the_roots(root: Path, outside: Path) -> None:
    assert "outside the file roots" in await refused("file.read_text", {"path": str(outside)}, root)
    reason = await refused("csv.write", {"path": str(outside), "rows": [{"a": 1}]}, root)
    assert "outside the file roots" in reason
    assert outside.read_text() == SECRET


async def test_a_sibling_sharing_the_roots_name_prefix_is_outside(root: Path) -> None:
    sibling = root.parent / f"{root.name}-other"
    sibling.mkdir()
    await refused("file.write_text", {"path": f"{sibling}/a.txt", "text": "x"}, root)
    assert not (sibling / "a.txt").exists()


async def test_relative_path_and_the_root_itself_are_refused(root: Path) -> None:
    assert "not absolute" in await refused("file.read_text", {"path": "a.txt"}, root)
    assert "file root itself" in await refused("file.read_text", {"path": str(root)}, root)


async def test_symlink_to_a_file_outside(root: Path, outside: Path) -> None:
    (root / "link.txt").symlink_to(outside)
    assert "symlink" in await refused("file.read_text", {"path": f"{root}/link.txt"}, root)
    assert "symlink" in await refused("file.write_text", {"path": f"{root}/link.txt", "text": "pwned"}, root)
    assert outside.read_text() == SECRET


async def test_symlinked_folder_on_the_way_out(root: Path, outside: Path) -> None:
    (root / "door").symlink_to(outside.parent, target_is_directory=True)
    reason = await refused("csv.read", {"path": f"{root}/door/secret.txt"}, root)
    assert "'door'" in reason and "symlink" in reason
    await refused("file.write_text", {"path": f"{root}/door/new.txt", "text": "x"}, root)
    assert not (outside.parent / "new.txt").exists()


async def test_symlinks_inside_the_root_are_refused_too(root: Path) -> None:
    """A link pointing inside today can point outside tomorrow: none is followed."""
    (root / "real.txt").write_text("inside")
    (root / "alias.txt").symlink_to(root / "real.txt")
    assert "symlink" in await refused("file.read_text", {"path": f"{root}/alias.txt"}, root)


async def test_a_root_reached_through_a_symlink_works_by_either_name(tmp_path: Path, root: Path) -> None:
    linked = tmp_path / "linked-root"
    linked.symlink_to(root, target_is_directory=True)
    await files("file.write_text", {"path": f"{linked}/a.txt", "text": "x"}, linked)
    assert await files("file.read_text", {"path": f"{root}/a.txt"}, linked) == {"text": "x"}


async def test_special_files_are_refused(root: Path) -> None:
    os.mkfifo(root / "pipe")
    assert "not a regular file" in await refused("file.read_text", {"path": f"{root}/pipe"}, root)
    assert "not a regular file" in await refused(
        "file.write_text", {"path": f"{root}/pipe", "text": "x"}, root
    )
    (root / "folder").mkdir()
    assert "not a regular file" in await refused("file.read_text", {"path": f"{root}/folder"}, root)


async def test_hard_link_to_a_file_outside(root: Path, outside: Path) -> None:
    os.link(outside, root / "hard.txt")
    reason = await refused("file.write_text", {"path": f"{root}/hard.txt", "text": "pwned"}, root)
    assert "hard links" in reason
    assert outside.read_text() == SECRET


async def test_sizes_are_capped(root: Path) -> None:
    (root / "big.txt").write_text("x" * 101)
    reason = await refused("file.read_text", {"path": f"{root}/big.txt"}, root, file_max_bytes=100)
    assert "over 100 bytes" in reason and "LEDGERFLOW_FILE_MAX_BYTES" in reason
    rows = [{"a": "y" * 200}]
    await refused("csv.write", {"path": f"{root}/big.csv", "rows": rows}, root, file_max_bytes=100)
    assert not (root / "big.csv").exists()
