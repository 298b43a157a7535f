"""The engine's side of the worker protocol: WorkerToMain messages as JSON lines on stdout, a `stop`
line on stdin. Only rank 0 of a multi-process run speaks; the other ranks stay silent."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Literal, TextIO

from .schemas import validate

Level = Literal["info", "warn", "error"]


class EngineError(Exception):
    """A failure the user can act on, with the workbench's error code (src-shared/errors.ts)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": str(self)}
        if self.details is not None:
            out["details"] = self.details
        return out


class Emitter:
    """Writes messages, each validated against WorkerToMain first: a malformed message is a bug here, not the main process's problem."""

    def __init__(self, out: TextIO | None, speaks: bool = True) -> None:
        self._out = out
        self.speaks = speaks
        self._lock = threading.Lock()

    def emit(self, message: dict[str, Any]) -> None:
        if not self.speaks or self._out is None:
            return
        validate("worker-to-main", message)
        line = json.dumps(message, separators=(",", ":"), allow_nan=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def log(self, level: Level, message: str) -> None:
        self.emit({"type": "log", "level": level, "message": message})


class StopListener:
    """Reads stdin on a daemon thread; a {"type":"stop"} line asks the loop to stop. stdin ending is not a
    stop: a launcher (torchrun) may give the ranks no stdin at all, and a main process that dies kills its child."""

    def __init__(self, source: TextIO) -> None:
        self._event = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(source,), daemon=True)
        self._thread.start()

    def _read(self, source: TextIO) -> None:
        for line in source:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                print(f"workbench_torch: ignoring a line on stdin that is not JSON: {line[:80]!r}", file=sys.stderr)
                continue
            if isinstance(message, dict) and message.get("type") == "stop":
                self._event.set()
                return

    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        self._event.set()


class NeverStop:
    """Ranks other than 0, and runs without a stdin (a cluster job), are never asked to stop."""

    def requested(self) -> bool:
        return False
