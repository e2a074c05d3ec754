"""Each company's upload folder, CORTEX_UPLOAD_DIR/<company_id>/: multipart uploads are saved there,
the command line copies its files there, and `file_path` ingestion reads only there."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path, PurePath

from fastapi import UploadFile

from cortex.kit.errors import CortexError, InvalidInput
from cortex.knowledge.convert import SUPPORTED_EXTENSIONS
from cortex.settings import Settings

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_READ_SIZE = 1 << 20


class PayloadTooLarge(CortexError):
    status_code = 413
    default_detail = "the upload is too large"


# One answer for every path outside the company's folder (another company's file, '..', a symlink out,
# anything absolute elsewhere), whether or not something is there: it tells nothing about other folders.
OUTSIDE_FOLDER = "file_path must name a file in your company's upload folder (CORTEX_UPLOAD_DIR/<company_id>/)"


def company_folder(settings: Settings, company_id: uuid.UUID) -> Path:
    return settings.resolved_upload_dir / str(company_id)


def inside_folder(folder: Path, path: Path) -> Path | None:
    """`path` with its symlinks resolved when that lies inside `folder`, else None (blocking)."""
    root = folder.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
    return resolved if resolved.is_relative_to(root) else None


def resolve_company_file(folder: Path, file_path: str) -> Path:
    """`file_path` (relative to the company's `folder`, or absolute inside it) → the file; else 422
    (blocking: resolves on disk)."""
    if "\x00" in file_path or ".." in PurePath(file_path).parts:
        raise InvalidInput("file_path", OUTSIDE_FOLDER)
    candidate = Path(file_path)
    resolved = inside_folder(folder, candidate if candidate.is_absolute() else folder / candidate)
    if resolved is None:
        raise InvalidInput("file_path", OUTSIDE_FOLDER)
    if not resolved.is_file():
        raise InvalidInput("file_path", "no such file in your company's upload folder")
    if resolved.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput("file_path", "unsupported file type; one of " + ", ".join(sorted(SUPPORTED_EXTENSIONS)))
    return resolved


def safe_name(filename: str | None) -> str:
    name = _UNSAFE.sub("_", Path(filename or "upload").name).strip("._") or "upload"
    return name[-150:]


async def save_upload(settings: Settings, company_id: uuid.UUID, upload: UploadFile) -> Path:
    name = safe_name(upload.filename)
    if Path(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput("file", "unsupported file type; one of " + ", ".join(sorted(SUPPORTED_EXTENSIONS)))
    folder = company_folder(settings, company_id)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}-{name}"
    limit = settings.ingest_max_file_bytes
    written = 0
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        while chunk := await upload.read(_READ_SIZE):
            written += len(chunk)
            if written > limit:
                raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
            await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        path.unlink(missing_ok=True)
        raise
    await asyncio.to_thread(handle.close)
    if written == 0:
        path.unlink(missing_ok=True)
        raise InvalidInput("file", "the upload is empty")
    return path


def copy_local_file(settings: Settings, company_id: uuid.UUID, source: Path) -> Path:
    """The command line's file (any path the operator can read), copied into the company's folder so
    that every file job reads from there and any worker can resume it (blocking)."""
    name = safe_name(source.name)
    if Path(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput("file", "unsupported file type; one of " + ", ".join(sorted(SUPPORTED_EXTENSIONS)))
    if source.stat().st_size > settings.ingest_max_file_bytes:
        raise PayloadTooLarge(f"the file is larger than {settings.ingest_max_file_bytes} bytes")
    folder = company_folder(settings, company_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}-{name}"
    shutil.copyfile(source, target)
    return target
