# MMOS API server and worker image: `mmos serve` (default) or `mmos worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True

RUN groupadd --system --gid 10001 mmos \
    && useradd --system --uid 10001 --gid mmos --create-home --home-dir /home/mmos \
        --shell /usr/sbin/nologin mmos

# Dependencies first, in their own layer: code changes do not reinstall them.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# The project itself, without dependencies (all of them came from the hashed lock).
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY api ./api
COPY domain ./domain
COPY workers ./workers
COPY db ./db
# `python -P` leaves /src off sys.path, so this imports the installed package: a missing
# package-data entry (GraphiQL assets) fails the build here rather than the page at run time.
RUN pip install --no-cache-dir --no-deps . \
    && python -P -c "from api.graphiql import STATIC_DIR; assert (STATIC_DIR / 'graphiql.min.js').is_file()" \
    && rm -rf /src

WORKDIR /app
RUN chown mmos:mmos /app
# Numeric, so orchestrators can verify the image does not run as root.
USER 10001:10001

EXPOSE 8000 9191

# No curl in the slim image: urlopen raises on a refused connection or a non-2xx status.
# The worker points HEALTHCHECK_URL at its metrics port, which it serves instead of /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'), timeout=4)"]

CMD ["mmos", "serve", "--host", "0.0.0.0", "--port", "8000"]
