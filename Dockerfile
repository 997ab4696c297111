# syntax=docker/dockerfile:1
# The operator's image: `docker build -t tiers:0.1.0 .` at the repository's root.
#
# Nothing in this repository builds it: the development machines and the tests have no Docker
# engine (the local control plane runs kwok nodes, where no container runs). The Helm chart in
# charts/tiers/ runs this image with `python -m tiers.operator --health-port 8080 --metrics-port 9090`,
# and its console (console.enabled) with `python -m tiers.console`.

# The console's page (frontend/, React + Vite), built once; the console serves the files.
FROM node:22-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY runtime/ runtime/
# A wheel of the source tree only; its dependencies come from PyPI in the final stage.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# The chart mounts the root filesystem read-only: no .pyc files to write, logs straight out.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TIERS_CONSOLE_FRONTEND_DIR=/opt/tiers/frontend
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir /wheels/*.whl
# The same non-root user the chart's securityContext names (distroless "nonroot").
USER 65532:65532
COPY --from=frontend /src/frontend/dist /opt/tiers/frontend
EXPOSE 8080 8088 9090
ENTRYPOINT ["python", "-m", "tiers.operator"]
