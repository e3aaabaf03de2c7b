# A Sauti node: `sauti node serve` (push mode) or `sauti node pull` (pull mode, no open port).
# Build from the repository root: docker build -f deploy/node.Dockerfile -t sauti-node .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/sauti
# The node-only install: contracts, runtime, node and the `sauti node` commands, without hub
# code, WeasyPrint, Celery or authlib. Its own lock pins every dependency by hash; the
# sauti-node wheel (packaging/) then goes in without resolving anything more.
COPY requirements-node.lock ./
RUN /opt/sauti/bin/pip install --require-hashes -r requirements-node.lock
COPY contracts contracts
COPY runtime runtime
COPY node node
COPY sauti sauti
COPY packaging/sauti-node packaging/sauti-node
RUN /opt/sauti/bin/pip install --no-deps ./packaging/sauti-node

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /var/lib/sauti --create-home sauti \
 && install -d -o sauti -g sauti -m 0700 /var/lib/sauti/node
COPY --from=build /opt/sauti /opt/sauti
ENV PATH=/opt/sauti/bin:$PATH PYTHONUNBUFFERED=1 SAUTI_HOME=/var/lib/sauti/node \
    NODE_HOME=/var/lib/sauti/node POLARS_MAX_THREADS=2
USER 10001:10001
WORKDIR /var/lib/sauti
# The home holds the key, datasets, ledger and audit chain: keep it on a volume, back it up.
VOLUME ["/var/lib/sauti/node"]
EXPOSE 8701
# Pull mode has no HTTP API: give that container `--no-healthcheck` or its own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8701/v1/health', timeout=4)"]
ENTRYPOINT ["sauti"]
CMD ["node", "serve", "--host", "0.0.0.0", "--port", "8701"]
