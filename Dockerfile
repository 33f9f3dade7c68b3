# meterline pipeline services (stream-processor worker and ClickHouse sink).
#
#   docker build -t meterline .
#   docker run --rm meterline worker | sink
#
# Installs the `pipeline` extra only: production talks to a real Kafka cluster and a real
# ClickHouse server. The `embedded` extra (Tansu broker binary, chDB) is not in this image.

# --- build: install the project and its dependencies into a virtualenv -------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/meterline
WORKDIR /src
# The build context is filtered by .dockerignore (no .git, .venv, tests, caches, data).
COPY . .
RUN /opt/meterline/bin/pip install ".[pipeline,gateway,rocksdb]"

# --- runtime: the virtualenv only, run as an unprivileged user ---------------------------
FROM python:3.11-slim

RUN groupadd --system --gid 10001 meterline \
    && useradd --system --uid 10001 --gid meterline --no-create-home \
        --home-dir /var/lib/meterline --shell /usr/sbin/nologin meterline \
    && install -d -o meterline -g meterline -m 0750 /var/lib/meterline

# Same path as in the build stage: the virtualenv's scripts carry absolute shebangs.
COPY --from=build /opt/meterline /opt/meterline

ENV PATH=/opt/meterline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METERLINE_DATA_DIR=/var/lib/meterline

USER meterline:meterline
WORKDIR /var/lib/meterline

ENTRYPOINT ["meterline"]
CMD ["--help"]
