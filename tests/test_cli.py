"""The command-line demonstration runs and reports success."""

from __future__ import annotations

import pytest

from signalish.cli import main


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
