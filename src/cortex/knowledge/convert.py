"""Turning files and web pages into Markdown (MarkItDown), and fetching pages safely."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin

import httpx
from bs4 import BeautifulSoup
from markitdown import DocumentConverter, MarkItDown, StreamInfo
from markitdown.converters import DocxConverter, PdfConverter, PptxConverter, XlsxConverter

from cortex.kit.url_guard import BlockedUrl, GuardedTransport, check_url

# PDF, Office documents, HTML, CSV, Markdown and plain text; MarkItDown tells them apart by content too.
SUPPORTED_EXTENSIONS = {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".csv", ".md", ".markdown", ".txt"}
_NOISE_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg")
_MAX_REDIRECTS = 5
# Binary formats go to their own converter: MarkItDown's generic path would fall back to reading a
# corrupt PDF as plain text and index the garbage.
_STRICT_EXTENSIONS: dict[str, type[DocumentConverter]] = {
    ".pdf": PdfConverter, ".docx": DocxConverter, ".pptx": PptxConverter, ".xlsx": XlsxConverter}
_STRICT_MIMETYPES = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
}


class ConversionFailed(Exception):
    """The input could not be turned into text (corrupt file, unsupported format, empty page)."""


class FetchFailed(Exception):
    """The URL could not be fetched within the limits."""


@dataclass(frozen=True)
class Converted:
    markdown: str
    title: str | None = None


def _markitdown() -> MarkItDown:
    return MarkItDown(enable_plugins=False)


def _strict(stream: BinaryIO, extension: str, name: str) -> str:
    converter = _STRICT_EXTENSIONS[extension]()
    return converter.convert(stream, StreamInfo(extension=extension, filename=name)).markdown


def convert_file_sync(path: Path) -> Converted:
    extension = path.suffix.lower()
    try:
        if extension in _STRICT_EXTENSIONS:
            with path.open("rb") as stream:
                markdown = _strict(stream, extension, path.name)
            if not markdown.strip():
                raise ConversionFailed(f"{path.name} holds no extractable text")
            return Converted(markdown)
        result = _markitdown().convert_local(str(path))
    except ConversionFailed:
        raise
    except Exception as exc:  # MarkItDown raises many types (its own, pdfminer's, zipfile's)
        raise ConversionFailed(f"could not convert {path.name}: {type(exc).__name__}: {exc}") from exc
    if not result.markdown.strip():
        raise ConversionFailed(f"{path.name} holds no extractable text")
    return Converted(result.markdown, result.title)


def _main_html(html: str) -> tuple[str, str | None]:
    """Keep the page's main content: <main> or <article> when present, without navigation and scripts."""
    soup = BeautifulSoup(html, "lxml")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(list(_NOISE_TAGS)):
        tag.decompose()
    main = soup.find("main") or soup.find("article") or soup.body or soup
    return str(main), title or None


def convert_bytes_sync(data: bytes, *, content_type: str, url: str) -> Converted:
    mimetype = content_type.split(";")[0].strip().lower()
    charset = None
    if "charset=" in content_type:
        charset = content_type.split("charset=")[-1].split(";")[0].strip() or None
    title: str | None = None
    try:
        if mimetype in ("text/html", "application/xhtml+xml") or (not mimetype and data.lstrip()[:1] == b"<"):
            html, title = _main_html(data.decode(charset or "utf-8", errors="replace"))
            result = _markitdown().convert_stream(io.BytesIO(html.encode()),
                                                  stream_info=StreamInfo(extension=".html", charset="utf-8"))
        elif mimetype in _STRICT_MIMETYPES:
            markdown = _strict(io.BytesIO(data), _STRICT_MIMETYPES[mimetype], url)
            if not markdown.strip():
                raise ConversionFailed("the document holds no extractable text")
            return Converted(markdown)
        else:
            result = _markitdown().convert_stream(io.BytesIO(data), stream_info=StreamInfo(
                mimetype=mimetype or None, charset=charset, url=url))
    except ConversionFailed:
        raise
    except Exception as exc:
        raise ConversionFailed(f"could not convert the page: {type(exc).__name__}: {exc}") from exc
    if not result.markdown.strip():
        raise ConversionFailed("the page holds no extractable text")
    return Converted(result.markdown, title or result.title)


async def fetch_url(url: str, *, allow_private: bool, max_bytes: int, timeout_seconds: float) -> tuple[bytes, str]:
    """GET with the SSRF guard on every hop, a byte cap and an overall deadline → (body, content type)."""
    async def run() -> tuple[bytes, str]:
        current = url
        async with httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False,
                                     transport=GuardedTransport(allow_private=lambda: allow_private),
                                     headers={"User-Agent": "Cortex-Ingest/1.0"}) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                await check_url(current, allow_private=allow_private)
                async with client.stream("GET", current) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    if not response.is_success:
                        raise FetchFailed(f"the server answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise FetchFailed(f"the page is larger than {max_bytes} bytes")
                    body = bytearray()
                    async for part in response.aiter_bytes():
                        body.extend(part)
                        if len(body) > max_bytes:
                            raise FetchFailed(f"the page is larger than {max_bytes} bytes")
                    return bytes(body), response.headers.get("content-type", "")
        raise FetchFailed("too many redirects")

    try:
        return await asyncio.wait_for(run(), timeout=timeout_seconds)
    except BlockedUrl:
        raise
    except TimeoutError as exc:
        raise FetchFailed(f"the page did not arrive within {timeout_seconds:g} s") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"the connection failed ({type(exc).__name__})") from exc
