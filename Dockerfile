# MMOS API server and worker image: `mmos serve` (default) or `mmos worker`.
# An exact tag (CPython 3.11, as the locks' wheels): move it forward deliberately, like the locks.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True

RUN groupadd --system --gid 10001 mmos \
    && useradd --system --uid 10001 --gid mmos --create-home --home-dir /home/mmos \
        --shell /usr/sbin/nologin mmos

# Build tools first, pinned with hashes: pip, setuptools and wheel are the locked versions,
# not whatever the base image or the index has.
COPY requirements-build.lock /tmp/requirements-build.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements-build.lock \
    && rm /tmp/requirements-build.lock

# Dependencies next, in their own layer: code changes do not reinstall them. The runtime lock
# only: the embedded PostgreSQL (pgserver, requirements-embedded.lock) is for local runs;
# here DATABASE_URL always points at a server.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# The project itself, without dependencies (all of them came from the hashed lock), built
# with the hashed setuptools above (--no-build-isolation: nothing unpinned is downloaded).
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY api ./api
COPY domain ./domain
COPY workers ./workers
COPY db ./db
# `python -P` leaves /src off sys.path, so this imports the installed package: a missing
# package-data entry (GraphiQL assets) fails the build here rather than the page at run time.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -P -c "from api.graphiql import STATIC_DIR; assert (STATIC_DIR / 'graphiql.min.js').is_file()" \
    && rm -rf /src

WORKDIR /app
RUN chown mmos:mmos /app
# Numeric, so orchestrators can verify the image does not run as root.
USER 10001:10001

# 8000: the API; 9191: the internal metrics port (MMOS_METRICS_PORT, MMOS_WORKER_METRICS_PORT).
EXPOSE 8000 9191

# No curl in the slim image: urlopen raises on a refused connection or a non-2xx status.
# The worker points HEALTHCHECK_URL at its metrics port, which it serves instead of /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'), timeout=4)"]

CMD ["mmos", "serve", "--host", "0.0.0.0", "--port", "8000"]
