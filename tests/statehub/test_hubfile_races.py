"""hub.toml is read, changed and written by several processes (a server, CLI commands) and by
people: no update is lost and no person's save is overwritten (statehub/hubfile.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from statehub.errors import Conflict
from statehub.hubfile import HubFile, RegisteredRepo

if TYPE_CHECKING:
    import tomlkit

WRITER = """
import sys
from pathlib import Path
from statehub.hubfile import HubFile, RegisteredRepo
hub_file = HubFile(Path(sys.argv[1]))
for n in range(int(sys.argv[3])):
    hub_file.add(RegisteredRepo(f"{sys.argv[2]}-{n}", Path(f"/srv/{sys.argv[2]}/{n}")))
"""


def listed(path: Path) -> dict[str, str]:
    return {r["slug"]: r["path"] for r in tomllib.loads(path.read_text(encoding="utf-8"))["repos"]}


def test_registrations_racing_from_four_processes_are_all_kept(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{k}", "15"]) for k in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    found = listed(path)
    assert len(found) == 60
    assert found["w3-14"] == "/srv/w3/14"


class SavedMeanwhile(HubFile):
    """A HubFile whose first read is followed by a person's save, before the hub writes."""

    def __init__(self, path: Path, person_writes: bytes) -> None:
        super().__init__(path)
        self.person_writes: bytes | None = person_writes

    def _load(self) -> tuple[tomlkit.TOMLDocument, str]:
        loaded = super()._load()
        if self.person_writes is not None:
            self.path.write_bytes(self.person_writes)
            self.person_writes = None
        return loaded


def test_a_person_saving_between_read_and_write_keeps_their_edit(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    HubFile(path).add(RegisteredRepo("alpha", Path("/srv/alpha")))
    person = path.read_text(encoding="utf-8") + (
        '\n# beta lives on the big disk\n[[repos]]\nslug = "beta"\npath = "/srv/beta"\n'
    )
    SavedMeanwhile(path, person.encode()).add(RegisteredRepo("gamma", Path("/srv/gamma")))
    text = path.read_text(encoding="utf-8")
    assert "# beta lives on the big disk" in text
    assert listed(path) == {"alpha": "/srv/alpha", "beta": "/srv/beta", "gamma": "/srv/gamma"}


def test_a_person_saving_a_broken_file_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    from statehub.hubfile import HubFileBroken

    path = tmp_path / "hub.toml"
    HubFile(path).add(RegisteredRepo("alpha", Path("/srv/alpha")))
    broken = b'[[repos]]\nslug = "alpha"\npath = "/srv/alpha\n'
    with pytest.raises(HubFileBroken):
        SavedMeanwhile(path, broken).remove("alpha")
    assert path.read_bytes() == broken


def test_one_slug_for_two_paths_is_a_conflict_even_between_two_hub_files(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    first, second = HubFile(path), HubFile(path)
    first.add(RegisteredRepo("alpha", Path("/srv/one")))
    with pytest.raises(Conflict, match="already registered for /srv/one"):
        second.add(RegisteredRepo("alpha", Path("/srv/two")))
    second.add(RegisteredRepo("alpha", Path("/srv/one")))  # the same registration again: nothing changes
    assert listed(path) == {"alpha": "/srv/one"}
