"""The embedding model, loaded only when something must be embedded, and quietly with --quiet.

Loading the model takes 5-25 s; a re-index with nothing to embed, or an `eval` that stops at a
missing index, must not pay for it. The model's id (what an index version records) is known
without loading it (`resolve_model`); its dimension is taken from a live version built with the
same id, and otherwise needs the model.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from router_core import Embedder, ModelUnavailable, load_embedder
from router_core.embedding import Vectors, portable_source, resolve_backend, resolve_model
from router_core.settings import EmbeddingSettings

_PROGRESS_ENV = "HF_HUB_DISABLE_PROGRESS_BARS"
CONVERSION_LOGGER = "router.embedding.derived"  # what the model conversion cache says it does


@contextmanager
def conversion_messages(shown: bool, stream: TextIO | None = None) -> Iterator[None]:
    """While inside, show on stderr what the model conversion cache does: converting a model
    once (~N s, a line every 15 s, its time), or waiting for another process converting it."""
    if not shown:
        yield
        return
    logger = logging.getLogger(CONVERSION_LOGGER)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # shown here, not again by the root handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def quiet_loading(quiet: bool) -> Iterator[None]:
    """Silence the model libraries' loading progress bars ("Loading weights ...") while inside.

    transformers reads HF_HUB_DISABLE_PROGRESS_BARS when first imported; when it is already
    imported (a test process, say) its switch is flipped for the duration instead.
    """
    if not quiet:
        yield
        return
    previous = os.environ.get(_PROGRESS_ENV)
    os.environ[_PROGRESS_ENV] = "1"
    tf_logging = sys.modules.get("transformers.utils.logging")
    flipped = False
    if tf_logging is not None and tf_logging.is_progress_bar_enabled():
        tf_logging.disable_progress_bar()
        flipped = True
    try:
        yield
    finally:
        if tf_logging is not None and flipped:
            tf_logging.enable_progress_bar()
        if previous is None:
            os.environ.pop(_PROGRESS_ENV, None)
        else:
            os.environ[_PROGRESS_ENV] = previous


class LazyEmbedder:
    """An `Embedder` whose model loads on the first encode (or when its dimension is needed
    and not known); `on_load` hears the loaded model and the seconds it took."""

    def __init__(
        self,
        settings: EmbeddingSettings,
        *,
        quiet: bool,
        on_load: Callable[[Embedder, float], None] | None = None,
        cache_dir: Path | None = None,
        may_load: bool = True,
    ) -> None:
        self._settings = settings
        self._cache_dir = cache_dir  # where converted models are kept (the machine's cache)
        self._quiet = quiet
        self._on_load = on_load
        self._may_load = may_load  # False: a preview (reindex --dry-run) that must not load it
        self._location, self.model_id = resolve_model(settings.model)
        self.source = portable_source(settings.model)
        self.backend: str = resolve_backend(settings.model, settings.backend)
        self._dimension: int | None = None
        self._model: Embedder | None = None
        self.load_seconds = 0.0

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded."""
        return self._model is not None

    @property
    def dimension(self) -> int:
        """The vector dimension: as assumed, or the loaded model's; read from the model's files
        when it may not be loaded."""
        if self._dimension is None:
            self._dimension = self.load().dimension if self._may_load else dimension_from_files(self._location)
        return self._dimension

    @dimension.setter
    def dimension(self, value: int) -> None:
        self._dimension = value

    def assume_dimension_from(self, model_id: str, dimension: int) -> None:
        """Take `dimension` from an index version built with `model_id`, when that is this model."""
        if model_id == self.model_id and self._model is None:
            self._dimension = dimension

    def load(self) -> Embedder:
        """The model, loaded now if it was not yet."""
        if self._model is None:
            if not self._may_load:
                raise RuntimeError(f"model {self.model_id} must not be loaded here (a preview)")
            started = time.perf_counter()
            with quiet_loading(self._quiet), conversion_messages(not self._quiet):
                model = load_embedder(
                    self._settings.model,
                    backend=self._settings.backend,
                    device=self._settings.device,
                    threads=self._settings.threads,
                    cache_dir=self._cache_dir,
                )
            if model.model_id != self.model_id or (self._dimension not in (None, model.dimension)):
                raise ModelUnavailable(
                    f"model {self._settings.model!r} loaded as {model.model_id!r} (dim {model.dimension}), "
                    f"not as {self.model_id!r} (dim {self._dimension}) as its name promised"
                )
            self._model = model
            self.source = model.source
            self.load_seconds = time.perf_counter() - started
            if self._on_load is not None:
                self._on_load(model, self.load_seconds)
        return self._model

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Embed texts to route with the model, loading it first if needed."""
        return self.load().encode_queries(texts, batch_size=batch_size, progress=progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Embed stored examples with the model, loading it first if needed."""
        return self.load().encode_documents(texts, batch_size=batch_size, progress=progress)


def dimension_from_files(location: str) -> int:
    """A sentence-transformers model's vector dimension, read from its files without loading it:
    the last Dense module's `out_features`, else the Pooling module's `word_embedding_dimension`."""
    directory = Path(location)
    try:
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
        dimension = None
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind in ("Pooling", "Dense"):
                config = json.loads((directory / module["path"] / "config.json").read_text(encoding="utf-8"))
                dimension = config["out_features" if kind == "Dense" else "word_embedding_dimension"]
        if isinstance(dimension, int) and dimension > 0:
            return dimension
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelUnavailable(
            f"cannot read the vector dimension of model {location!r} from its files: {exc!r}"
        ) from exc
    raise ModelUnavailable(f"model {location!r}: no Pooling module names its vector dimension")
