"""Processes that start at once on a fresh data directory agree on one master key.

The embedded default generates the master key on first start; two `hub` processes
started together (a notifier beside a server) both saw no key, and the one that lost
the race to create the file stopped with `FileExistsError`.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from hub.bootstrap import load_master_key
from hub.consent.crypto import MasterKey
from hub.settings import Settings

PROGRAM = """
import base64
import sys
from pathlib import Path
from hub.bootstrap import load_master_key
from hub.settings import Settings

sys.stdin.readline()  # every process is started before any goes on
key = load_master_key(Settings(data_dir=Path(sys.argv[1]), _env_file=None))
print(base64.b64encode(key.wrap(bytes(32), "child")).decode())
"""


def test_processes_starting_together_all_get_the_same_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROGRAM, str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for p in procs:  # release them together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    answers = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in answers]
    kept = MasterKey.from_base64((data / "master.key").read_text())
    for out, _ in answers:  # each process wrapped with the key that was kept
        assert kept.unwrap(base64.b64decode(out), "child") == bytes(32)
    assert [f.name for f in data.iterdir()] == ["master.key"]  # no temporary files left
    assert (data / "master.key").stat().st_mode & 0o777 == 0o600


def test_a_key_made_by_another_process_after_the_check_is_the_one_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made certain: the file appears between this process's look and its
    create (another process won), so the existing key is used, not an error."""
    data = tmp_path / "data"
    data.mkdir()
    theirs = MasterKey.generate_base64()
    (data / "master.key").write_text(theirs)
    monkeypatch.setattr(Path, "exists", lambda self: False)  # looked before it was made
    key = load_master_key(Settings(data_dir=data, _env_file=None))
    assert MasterKey.from_base64(theirs).unwrap(key.wrap(bytes(32), "c"), "c") == bytes(32)
    assert (data / "master.key").read_text() == theirs
