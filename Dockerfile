# liquidityhelper beside bitcart-docker: see README.md, "Docker".
#   docker build -t liquidityhelper .
# Settings come from LIQUIDITYHELPER_* environment variables; the journal and the node
# database live in the /data volume. The /healthz listener is on, bound to 127.0.0.1 inside
# the container: the HEALTHCHECK runs inside it too, and nothing else can read the figures
# unless you set LIQUIDITYHELPER_HEALTH_LISTEN=0.0.0.0:9100.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md LICENSE /src/
COPY liquidityhelper /src/liquidityhelper
RUN pip install /src && rm -rf /src

RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin liquidityhelper \
    && mkdir /data && chown liquidityhelper:liquidityhelper /data && chmod 700 /data

ENV LIQUIDITYHELPER_DATA_DIR=/data \
    LIQUIDITYHELPER_API_URL=http://backend:8000 \
    LIQUIDITYHELPER_DAEMON_URL=http://bitcoin:5000 \
    LIQUIDITYHELPER_LOG_FORMAT=console \
    LIQUIDITYHELPER_HEALTH_LISTEN=127.0.0.1:9100

VOLUME ["/data"]
WORKDIR /data
USER liquidityhelper

# Unhealthy when no cycle finished for a few poll intervals (see README.md, "Health").
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "liquidityhelper.health"]

COPY --chmod=755 deploy/docker-entrypoint.sh /usr/local/bin/liquidityhelper-entrypoint
ENTRYPOINT ["liquidityhelper-entrypoint"]
CMD ["run"]
