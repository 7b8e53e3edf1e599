"""The command lines: the demonstration runs and reports success; the vector
generator (``python -m vectorgen``, beside the package) handles its target
directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalish.cli import main
from vectorgen.__main__ import main as vectorgen
from vectorgen.generate import GENERATORS


@pytest.mark.parametrize("flags", [[], ["--header-encryption"]])
def test_demo(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *flags]) == 0
    out = capsys.readouterr().out
    assert "all steps behaved as expected" in out
    assert "PQXDH" in out and "DuplicateMessage" in out and "AuthenticationError" in out
    assert "Still there after the restart?" in out
    assert "Alice scans Bob's code: match" in out
    assert "opened: an anonymous tip" in out
    assert "restored Bob reads: New phone?" in out and "WrongPassword" in out


def test_vectors_generate_creates_a_missing_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new" / "vectors"
    assert vectorgen(["--dir", str(target)]) == 0
    assert sorted(p.name for p in target.glob("*.json")) == sorted(GENERATORS)
    capsys.readouterr()
    assert vectorgen(["--check", "--dir", str(target)]) == 0
    assert "DIFFERS" not in capsys.readouterr().out


def test_vectors_check_against_a_missing_directory_says_so_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vectorgen(["--check", "--dir", str(tmp_path / "absent")]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no such directory" in out


def test_vectors_generate_into_an_impossible_directory_says_so_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert vectorgen(["--dir", str(blocker / "vectors")]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "cannot create" in out
