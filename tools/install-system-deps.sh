#!/usr/bin/env bash
# Installs the Debian packages the dev environment and tests run, when they are missing:
# Redis, openssl for the control plane's certificates, Java and Maven for Kafka and Spark,
# Node and npm for the console's frontend, Chromium for its browser tests, and podman, buildah,
# runc and mmdebstrap for `make image` and the tests that run the image.
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v chromium >/dev/null || missing+=(chromium)
for tool in podman buildah runc mmdebstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
