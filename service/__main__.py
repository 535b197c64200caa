"""`python -m service`: load the model and the live index, then serve.

Refuses to start, with a message saying what to do, when the index is missing, was built
with another model, or the bind address is unsafe.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from router_core import RouterError
from service.app import create_app
from service.runtime import Runtime
from service.settings import ServiceSettings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServiceSettings()
    try:
        runtime = Runtime.build(settings)
    except RouterError as exc:
        print(f"error: the service cannot start: {exc}", file=sys.stderr)
        return 2
    app = create_app(runtime=runtime)
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
