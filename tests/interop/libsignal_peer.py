"""Drives driver.mjs: one libsignal-client 0.72.1 party over JSON lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class LibsignalPeer:
    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the libsignal interop tests need it")
        if not (HERE / "node_modules" / "@signalapp" / "libsignal-client").is_dir():
            raise RuntimeError("run `npm ci` in tests/interop (bash .ci/run does)")
        self._process = subprocess.Popen([node, str(HERE / "driver.mjs")], cwd=HERE,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)

    def __call__(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self._process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._process.stdout.readline())
        return answer

    def ok(self, cmd: str, **args: Any) -> dict[str, Any]:
        answer = self(cmd, **args)
        assert answer["ok"], answer
        return answer

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
