# Ledgerflow: one image for every process (engine, worker, api, topics, CLI).
#   docker build -t ledgerflow .
#   docker run --rm ledgerflow --help
# Your workflows and activities: build FROM this image and copy your package into /app
# (on PYTHONPATH), then pass --workflows / --activities with its module names.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

# Only what the package build needs; engine/, api/, executors/ and schemas/ are reached
# through symlinks inside ledgerflow/, which COPY keeps as symlinks.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY api ./api
COPY executors ./executors
COPY schemas ./schemas
COPY ledgerflow ./ledgerflow
RUN pip install . \
    && rm -rf /src

# Non-root user; /data is the engine's RocksDB folder (a volume in Kubernetes).
RUN groupadd --system --gid 10001 ledgerflow \
    && useradd --system --uid 10001 --gid ledgerflow --home-dir /app --no-create-home ledgerflow \
    && mkdir -p /app /data \
    && chown ledgerflow:ledgerflow /app /data

USER 10001:10001
WORKDIR /app

# 8080: gateway (ledgerflow api); 8081: engine owner reads, /health, /ready, /metrics.
EXPOSE 8080 8081

ENTRYPOINT ["ledgerflow"]
CMD ["--help"]
