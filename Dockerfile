# Ledgerflow: one image for every process (engine, worker, api, topics, CLI).
#   docker build -t ledgerflow .
#   docker run --rm ledgerflow --help
# Your workflows and activities: build FROM this image and copy your package into /app
# (on PYTHONPATH) as root, e.g. `COPY myapp /app/myapp` (never --chown it to the runtime user),
# then pass --workflows / --activities with its module names.
#
# Code is read-only to the process that runs it: /app and site-packages belong to root, so a
# process (or an activity it was tricked into running) cannot plant a module, a .pth file or a
# sitecustomize.py that the next start would import. PYTHONNOUSERSITE keeps ~/.local off
# sys.path and PYTHONSAFEPATH keeps the working folder and the script's folder off it; the
# runtime user has no home. The only folder it may write is /data (the engine's RocksDB).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONNOUSERSITE=1 \
    PYTHONSAFEPATH=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

# Only what the package build needs.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ledgerflow ./ledgerflow
RUN pip install . \
    && rm -rf /src

# Non-root user without a home or a shell; /app (code) is root's and read-only to it, /data
# (the engine's RocksDB folder, a volume in Kubernetes) is its own.
RUN groupadd --system --gid 10001 ledgerflow \
    && useradd --system --uid 10001 --gid ledgerflow --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin ledgerflow \
    && mkdir -p /app /data \
    && chown root:root /app && chmod 0755 /app \
    && chown ledgerflow:ledgerflow /data && chmod 0750 /data

USER 10001:10001
WORKDIR /app

# 8080: gateway (ledgerflow api); 8081: engine owner reads, /health, /ready, /metrics.
EXPOSE 8080 8081

ENTRYPOINT ["ledgerflow"]
CMD ["--help"]
