# syntax=docker/dockerfile:1
# The image of every Tiers entry point: the operator (the chart's command), the console, the
# gateway, the stream job (Java 17, PySpark, Spark's Kafka connector in /opt/tiers/jars), the push
# gateway and the batch job (Delta Lake's jars beside Kafka's); `tiers version` prints what is
# inside.
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse --short HEAD) -t tiers:0.1.0 .
#
# `make image` builds this same file without Docker: buildah runs it on a Debian root filesystem
# that mmdebstrap made of tools/image/packages-runtime.txt (BASE), and gives it the `inputs`
# stage as a folder that tools/image/fetch.sh filled, and the `frontend` stage as the
# frontend/dist that `make frontend` built (tiers.devenv.image). Either way the image's own stage
# is tools/image/populate.sh and the same files: the two builds cannot drift.

# Debian bookworm, pinned by date: Python 3.11 and OpenJDK 17 come from its packages.
ARG BASE=debian:bookworm-20250520-slim

# The console's page (frontend/, React + Vite), built once; the console serves the files.
FROM node:22-slim AS frontend
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci
COPY frontend/ ./
RUN npm run build

# Wheels and jars, fetched with build tools that stay in this stage.
FROM ${BASE} AS inputs
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        ca-certificates git maven openjdk-17-jre-headless python3-venv \
    && python3 -m venv /build
COPY pyproject.toml README.md /src/
COPY operator/ /src/operator/
COPY runtime/ /src/runtime/
COPY tools/spark-kafka/ /src/tools/spark-kafka/
COPY tools/spark-delta/ /src/tools/spark-delta/
COPY tools/image/ /src/tools/image/
ARG GIT_COMMIT=unknown
RUN PYTHON=/build/bin/python GIT_COMMIT=${GIT_COMMIT} sh /src/tools/image/fetch.sh all /src /inputs

# The image: Debian's packages, the inputs installed offline, nothing to build with.
FROM ${BASE}
RUN --mount=type=bind,from=inputs,source=/inputs,target=/inputs \
    --mount=type=bind,source=tools/image,target=/recipe \
    sh /recipe/populate.sh /inputs
COPY --from=frontend /frontend/dist /opt/tiers/frontend
# The pods mount the root filesystem read-only and an emptyDir at /tmp: Python writes no .pyc
# (pip compiled them), HOME and Spark's local and temp folders are under /tmp.
ENV PATH=/opt/tiers/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TIERS_CONSOLE_FRONTEND_DIR=/opt/tiers/frontend
LABEL org.opencontainers.image.title="tiers" \
      org.opencontainers.image.description="Tiers: the operator and the data plane it deploys" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /tmp
# The same non-root user the chart's and the operator's pods run as.
USER 65532:65532
EXPOSE 8080 8088 9090
CMD ["python", "-m", "tiers.operator"]
