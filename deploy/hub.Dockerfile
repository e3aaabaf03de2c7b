# The Sauti hub: `sauti hub serve` (web), `sauti hub worker` (Celery), `sauti hub migrate` (job).
# Build from the repository root: docker build -f deploy/hub.Dockerfile -t sauti-hub .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/sauti
# The hub-only install: contracts, runtime, hub and the hub's `sauti` commands, without node
# code, OpenDP, polars or pyarrow. Its own lock pins every dependency by hash; the sauti-hub
# wheel (packaging/) then goes in without resolving anything more.
COPY requirements-hub.lock ./
RUN /opt/sauti/bin/pip install --require-hashes -r requirements-hub.lock
COPY contracts contracts
COPY runtime runtime
COPY hub hub
COPY sauti sauti
COPY packaging/sauti-hub packaging/sauti-hub
RUN /opt/sauti/bin/pip install --no-deps ./packaging/sauti-hub

FROM python:3.11-slim-bookworm
# WeasyPrint (printable MoUs) needs Pango at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sauti --create-home sauti \
 && install -d -o sauti -g sauti -m 0700 /var/lib/sauti/hub
COPY --from=build /opt/sauti /opt/sauti
ENV PATH=/opt/sauti/bin:$PATH PYTHONUNBUFFERED=1 SAUTI_HOME=/var/lib/sauti/hub \
    HUB_HOME=/var/lib/sauti/hub POLARS_MAX_THREADS=2
USER 10001:10001
WORKDIR /var/lib/sauti
EXPOSE 8400
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8400/v1/health', timeout=4)"]
ENTRYPOINT ["sauti"]
CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8400"]
