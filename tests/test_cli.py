"""The command-line demonstration runs and reports agreement."""

from __future__ import annotations

import pytest

from signalish.cli import main


@pytest.mark.parametrize("profile", ["native", "libsignal_v3"])
def test_demo(profile: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--profile", profile]) == 0
    out = capsys.readouterr().out
    assert "shared secret equal on both sides:     yes" in out
    assert ("PQXDH" if profile == "native" else "X3DH") in out
