"""A file to upload that reports how much of it has been read into the request body."""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Union

# Called with (bytes sent so far, total bytes) as the body is written.
ProgressCallback = Callable[[int, int], None]
FileInput = Union[str, "os.PathLike[str]", bytes, IO[bytes]]


class ProgressFile:
    """Wraps a seekable binary file; httpx reads it in chunks while it writes the multipart body."""

    def __init__(self, inner: IO[bytes], on_progress: ProgressCallback | None) -> None:
        self._inner = inner
        self._on_progress = on_progress
        start = inner.tell()
        self.total = inner.seek(0, os.SEEK_END) - start
        inner.seek(start)
        self._start = start

    def read(self, size: int = -1) -> bytes:
        chunk = self._inner.read(size)
        if chunk and self._on_progress is not None:
            self._on_progress(self.tell(), self.total)
        return chunk

    def tell(self) -> int:
        return self._inner.tell() - self._start

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        # httpx seeks to 0 before each (re)send of the body: a retry starts the count again.
        base = self._start if whence == os.SEEK_SET else 0
        return self._inner.seek(base + offset, whence) - self._start


def open_upload(file: FileInput, filename: str | None, on_progress: ProgressCallback | None,
                ) -> tuple[str, ProgressFile, str, Callable[[], None]]:
    """(file name, the progress-reporting file, its content type, what closes what was opened here)."""
    opened: IO[bytes] | None = None
    if isinstance(file, bytes):
        inner: IO[bytes] = io.BytesIO(file)
        name = filename or "upload.bin"
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file)
        opened = inner = path.open("rb")
        name = filename or path.name
    else:
        inner = file
        name = filename or Path(str(getattr(file, "name", "upload.bin"))).name
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"

    def close() -> None:
        if opened is not None:
            opened.close()

    return name, ProgressFile(inner, on_progress), content_type, close
