"""Multipart uploads, saved under CORTEX_UPLOAD_DIR/<company_id>/ before ingestion."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from fastapi import UploadFile

from cortex.kit.errors import CortexError, InvalidInput
from cortex.knowledge.convert import SUPPORTED_EXTENSIONS
from cortex.settings import Settings

_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
_READ_SIZE = 1 << 20


class PayloadTooLarge(CortexError):
    status_code = 413
    default_detail = "the upload is too large"


def safe_name(filename: str | None) -> str:
    name = _UNSAFE.sub("_", Path(filename or "upload").name).strip("._") or "upload"
    return name[-150:]


async def save_upload(settings: Settings, company_id: uuid.UUID, upload: UploadFile) -> Path:
    name = safe_name(upload.filename)
    if Path(name).suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise InvalidInput("file", "unsupported file type; one of " + ", ".join(sorted(SUPPORTED_EXTENSIONS)))
    folder = settings.resolved_upload_dir / str(company_id)
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
