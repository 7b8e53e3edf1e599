"""Drives a libsignal-client party over JSON lines.

``LibsignalPeer()`` runs driver.mjs, one libsignal-client 0.72.1 party
(protocol version 3); ``LibsignalPeer("0.90.0")`` runs driver_v4.mjs, one
libsignal-client 0.90.0 party (protocol version 4, PQXDH with Kyber1024),
installed under the npm alias ``libsignal-v4``; ``LibsignalPeer("0.103.0")``
runs driver_v5.mjs, one libsignal-client 0.103.0 party (SPQR always on,
local addresses), under the alias ``libsignal-v5``.  All come from
package-lock.json (``npm ci`` in tests/interop).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# version -> (driver script, package directory under node_modules)
DRIVERS: dict[str, tuple[str, str]] = {
    "0.72.1": ("driver.mjs", "@signalapp/libsignal-client"),
    "0.90.0": ("driver_v4.mjs", "libsignal-v4"),
    "0.103.0": ("driver_v5.mjs", "libsignal-v5"),
}


class LibsignalPeer:
    def __init__(self, version: str = "0.72.1", script: str | None = None) -> None:
        """``script``: another driver in tests/interop for this version's
        package (the group and sealed-sender drivers), instead of the
        version's 1:1 driver."""
        if version not in DRIVERS:
            raise ValueError(f"no driver for libsignal-client {version!r}; have {sorted(DRIVERS)}")
        default, package = DRIVERS[version]
        script = script or default
        self.version = version
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the libsignal interop tests need it")
        manifest = HERE / "node_modules" / package / "package.json"
        if not manifest.is_file():
            raise RuntimeError("run `npm ci` in tests/interop (bash .ci/run does)")
        installed = json.loads(manifest.read_text()).get("version")
        if installed != version:
            raise RuntimeError(f"node_modules/{package} is {installed}, not {version}: "
                               "run `npm ci` in tests/interop")
        self._process = subprocess.Popen([node, str(HERE / script)], cwd=HERE,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)

    def __call__(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"libsignal {self.version} driver exited "
                               f"(code {self._process.poll()}) during {cmd!r}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ok(self, cmd: str, **args: Any) -> dict[str, Any]:
        answer = self(cmd, **args)
        assert answer["ok"], answer
        return answer

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
