"""`yoi up`'s data directory: where its private Redis keeps its append-only file and the gateway
its embedded Workers, held by one `yoi up` at a time (an flock'd lock file).

`--ephemeral` (or `YOI_DATA_DIR=` empty) gives a fresh temporary directory, deleted at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from gateway.cli.errors import CliFailure

LOCK_FILE = "yoi-up.lock"
REDIS_DIR = "redis"


class DataDir:
    """The directory, locked while `yoi up` runs; a temporary one is removed on release."""

    def __init__(self, path: Path, *, ephemeral: bool) -> None:
        self.path = path
        self.ephemeral = ephemeral
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, configured: Path | None) -> DataDir:
        """Lock `configured` (created if missing), or a new temporary directory when None."""
        if configured is None:
            return cls(Path(tempfile.mkdtemp(prefix="yoi-up-")), ephemeral=True).locked()
        path = configured.expanduser().absolute()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliFailure(f"cannot use the data directory {path}: {exc.strerror}") from None
        return cls(path, ephemeral=False).locked()

    def locked(self) -> Self:
        lock_path = self.path / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CliFailure(
                f"another `yoi up` is running on the data directory {self.path}; stop it "
                "first, or give this one another (--data-dir, YOI_DATA_DIR) or --ephemeral"
            ) from None
        # For a person wondering who holds it; the lock itself is the flock, not this text.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return self

    @property
    def redis_dir(self) -> Path:
        path = self.path / REDIS_DIR
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def release(self) -> None:
        """Unlock (idempotent); a temporary directory goes with its contents."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
        if self.ephemeral:
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
