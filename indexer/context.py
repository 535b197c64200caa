"""What every indexer command runs with: settings, output, progress, the live index and its model.

Commands open the live version with `live_index` (cheap checks first: an index exists, built
with this model; the model loads when the first text is embedded) and route through
`Live.router`, the front door the service's pipeline shares.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from indexer.hints import reindex_hint, safe_settings
from indexer.model_loading import LazyEmbedder
from indexer.progress import Progress
from router_core import Embedder, IndexMissing, OpenIndex, Router, RouterSettings, load_routes, open_store
from router_core.manifest import IndexManifest, fingerprint

# A file named like a test split (test.jsonl, shipped-test.jsonl, testset...), not latest.jsonl.
_TEST_FILE = re.compile(r"(?<![a-z])test")


class CommandRefused(Exception):
    """A command that will not run as asked (exit code 2); the message says why."""


@dataclass(frozen=True)
class Context:
    """What every command runs with: the settings (command line over environment), the
    configured ones (environment only: what the service serves), where to print, whether to
    show progress, and a loaded model to reuse (else one loads when something is embedded)."""

    settings: RouterSettings
    configured: RouterSettings
    out: TextIO
    progress: bool = False
    embedder: Embedder | None = None

    def steps(self) -> Progress:
        """Progress on stderr, shown unless --quiet."""
        return Progress(enabled=self.progress)


def model_for(
    settings: RouterSettings, embedder: Embedder | None, *, quiet: bool, out: TextIO, may_load: bool = True
) -> Embedder:
    """`embedder` when given, else the configured model, loaded on first use (and said so);
    never loaded when not `may_load` (a preview)."""
    if embedder is not None:
        return embedder

    def loaded(model: Embedder, seconds: float) -> None:
        print(
            f"model: {model.model_id} (dim {model.dimension}) on {model.backend}, loaded in {seconds:.1f} s",
            file=out,
        )

    return LazyEmbedder(
        settings.embedding,
        quiet=quiet,
        on_load=loaded,
        cache_dir=settings.index.derived_models_dir,
        may_load=may_load,
    )


@dataclass(frozen=True)
class Live:
    """The opened live index and what the commands print about it."""

    index: OpenIndex
    embedder: Embedder
    batch_size: int = 64

    @property
    def router(self) -> Router:
        """The front door on this version: routes as the service does (router_core.pipeline)."""
        return Router(self.index, self.embedder, batch_size=self.batch_size)

    @property
    def meta(self) -> dict[str, Any]:
        """Where the figures come from."""
        m = self.index.manifest
        return {
            "index version": m.version,
            "model": m.model_id,
            "examples": m.points,
            "routes": len(self.index.table.routes),
        }


@contextmanager
def live_index(ctx: Context) -> Iterator[Live]:
    """Open the live version, cheap checks first (an index exists, built with this model); the
    model itself loads only when the first query is embedded. Warn when the index was built
    from other routes."""
    settings = ctx.settings
    model = model_for(settings, ctx.embedder, quiet=not ctx.progress, out=ctx.out)
    store = open_store(settings.index)
    try:
        live = store.live_version()
        if live is None:
            raise IndexMissing(missing_index(ctx))
        index = store.open_version(live)
        try:
            _check_model(index, model)
            _warn_if_stale(ctx, index)
            yield Live(index, model, settings.embedding.batch_size)
        finally:
            index.close()
    finally:
        store.close()


def missing_index(ctx: Context) -> str:
    """No live index: how to build one (into an index of its own when it is not the service's routes)."""
    settings = ctx.settings
    where = "on the Qdrant server" if settings.index.uses_server else f"in {settings.index.data_dir}"
    hint = safe_settings(settings, ctx.configured)
    text = f"no live index {where}: build it first with `{reindex_hint(settings, ctx.configured)}`"
    if hint is not settings:
        text += f", then pass --data-dir {hint.index.data_dir} to this command too"
    return text


def _check_model(index: OpenIndex, model: Embedder) -> None:
    check_model(index.manifest, model.model_id)


def check_model(manifest: IndexManifest, model_id: str) -> None:
    """Refuse an index built with another model than `model_id` (exit 2), saying how to match it."""
    if manifest.model_id != model_id:
        raise CommandRefused(
            f"the live index was built with model {manifest.model_id!r}, not {model_id!r}; "
            f"pass --model {manifest.model_source or manifest.model_id} to match it, or re-index"
        )


def _warn_if_stale(ctx: Context, index: OpenIndex) -> None:
    m = index.manifest
    table = load_routes(ctx.settings.routes_dir, ctx.settings.route_files.policy())
    if fingerprint(m.model_id, m.dimension, table) == m.fingerprint:
        return
    if safe_settings(ctx.settings, ctx.configured) is not ctx.settings:
        print(
            f"warning: the live index {m.version} is the configured one, the service's, not built from "
            f"{ctx.settings.routes_dir}: pass the --data-dir you built {ctx.settings.routes_dir} into. "
            "Figures below are for the service's index.",
            file=ctx.out,
        )
    else:
        print(
            f"warning: live index {m.version} was not built from the current {ctx.settings.routes_dir}; "
            f"refresh it with `{reindex_hint(ctx.settings, ctx.configured)}`. Figures below are for the live index.",
            file=ctx.out,
        )


def refuse_test_file(file: Path, allow_test: bool) -> None:
    """Never tune on the file the figures are reported on."""
    if _TEST_FILE.search(file.name.lower()) and not allow_test:
        raise CommandRefused(
            f"{file.name} looks like a test file; never tune on the test set (it would make the "
            "test figures meaningless). Calibrate on a validation file, or pass "
            "--i-know-this-is-test if this really is not the file you report on."
        )


def write_json(path: Path, data: dict[str, Any], out: TextIO) -> None:
    """Write `data` as indented JSON and say where."""
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n", out)


def write_text(path: Path, text: str, out: TextIO) -> None:
    """Write a report (creating its folder) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=out)


def print_error(message: str) -> None:
    """An error line on stderr."""
    print(f"error: {message}", file=sys.stderr)
