"""Commands the CLI suggests ("next: ..."), safe to paste, and the guard on the service's index.

Every suggested command names the routes directory and the index it acts on, and the model
whenever it is not the default one (a re-index pasted without it would embed with another
model), shell-quoted and run with the interpreter running now. The configured routes directory and index (environment
and `.env`, without command-line options) are the ones the service serves: publishing another
routes directory into that index would replace the service's routes, so a re-index refuses it
unless told otherwise (`--replace-configured-index`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from indexer.defaults import REPLACE_FLAG
from router_core import RouterSettings
from router_core.settings import IndexSettings


def indexer_command(*args: str | Path) -> str:
    """`<python> -m indexer ARGS...`, every argument shell-quoted."""
    return " ".join([_python(), "-m", "indexer", *(shlex.quote(str(a)) for a in args)])


def _python() -> str:
    exe = Path(sys.executable)
    try:
        relative = exe.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(exe))
    return shlex.quote(str(relative) if relative.parent != Path() else f"./{relative}")


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name the same place (neither needs to exist)."""
    return a.expanduser().resolve() == b.expanduser().resolve()


def same_index(a: IndexSettings, b: IndexSettings) -> bool:
    """Whether two index settings name the same index (the same collection: each route set has
    its own)."""
    if a.uses_server or b.uses_server:
        return a.uses_server == b.uses_server and a.qdrant.url == b.qdrant.url and a.collection == b.collection
    return same_path(a.data_dir, b.data_dir) and a.collection == b.collection


def own_data_dir(routes_dir: Path) -> Path:
    """An index directory of its own for a routes directory: `<routes>-data` beside it."""
    name = routes_dir.name or routes_dir.expanduser().resolve().name or "routes"
    return routes_dir.parent / f"{name}-data"


def index_args(settings: RouterSettings, configured: RouterSettings | None = None) -> list[str | Path]:
    """The options that select `settings`' routes, index and model on the command line: the
    model unless it is the default one, configured nowhere else (`configured`: the environment's);
    a route set of several by its routes root and name (`--routes ROOT --set NAME`)."""
    origin = settings.route_set_origin
    args: list[str | Path] = ["--routes", settings.routes_dir] if origin is None else []
    if origin is not None:
        root, name = origin
        if root is not None:
            args += ["--routes", root]
        args += ["--set", name]
    if not settings.index.uses_server:
        args += ["--data-dir", settings.index.data_dir]
    if model_named(settings, configured):
        args += ["--model", settings.embedding.model]
    return args


def model_named(settings: RouterSettings, configured: RouterSettings | None = None) -> bool:
    """Whether a suggested command must name the model: always, unless both the model in use and
    the one a pasted command would get without --model are the default."""
    from router_core.embedding import DEFAULT_MODEL

    models = {settings.embedding.model, configured.embedding.model if configured is not None else DEFAULT_MODEL}
    return models != {DEFAULT_MODEL}


def publish_refusal(settings: RouterSettings, configured: RouterSettings) -> str | None:
    """Why publishing `settings.routes_dir` into `settings.index` needs the explicit flag, or None."""
    if same_path(settings.routes_dir, configured.routes_dir) or not same_index(settings.index, configured.index):
        return None
    where = (
        f"collection {configured.index.collection!r} on {configured.index.qdrant.url}"
        if configured.index.uses_server
        else f"{configured.index.data_dir}"
    )
    if settings.index.uses_server:
        instead = "set ROUTER_INDEX__COLLECTION to a collection of its own"
    else:
        own = settings.model_copy(
            update={"index": settings.index.model_copy(update={"data_dir": own_data_dir(_routes_root(settings))})}
        )
        instead = f"build an index of its own: `{indexer_command('reindex', *index_args(own, configured))}`"
    return (
        f"{settings.routes_dir} is not the configured routes directory ({configured.routes_dir}) but the index "
        f"is the configured one ({where}), the one the service serves: publishing would replace the "
        f"service's routes with these. To evaluate them, {instead}; to replace the service's routes, "
        f"pass {REPLACE_FLAG}."
    )


def safe_settings(settings: RouterSettings, configured: RouterSettings) -> RouterSettings:
    """`settings`, with an index of its own when publishing into its index would be refused."""
    if publish_refusal(settings, configured) is None or settings.index.uses_server:
        return settings
    index = settings.index.model_copy(update={"data_dir": own_data_dir(_routes_root(settings))})
    return settings.model_copy(update={"index": index})


def _routes_root(settings: RouterSettings) -> Path:
    """The folder given as --routes: a route set's routes root (an index of its own beside the
    root, never inside it, where it would be taken for a set), else the routes directory."""
    origin = settings.route_set_origin
    return origin[0] if origin is not None and origin[0] is not None else settings.routes_dir


def reindex_hint(settings: RouterSettings, configured: RouterSettings, *extra: str | Path) -> str:
    """A re-index command for `settings`' routes, index and model that will not be refused."""
    return indexer_command("reindex", *index_args(safe_settings(settings, configured), configured), *extra)


def with_model(settings: RouterSettings, model: str | Path) -> RouterSettings:
    """`settings` with another embedding model (a hint that indexes with a fine-tuned one)."""
    return settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"model": str(model)})})


def configured_for(configured: RouterSettings, name: str) -> RouterSettings:
    """The configured settings narrowed to route set `name` when the environment's routes hold
    it (the service serves that set from there), else as they are."""
    from router_core import RouteSetsInvalid, route_sets_of

    try:
        found = route_sets_of(configured)
    except RouteSetsInvalid:  # the environment's routes are not the ones this command reads
        return configured
    return found.settings_for(configured, name) if name in found.names else configured
