#!/bin/sh
# The image's one stage that ends up in it, run as root in its root filesystem by both recipes:
# the Dockerfile (on Debian's image) and `make image` (buildah on a root filesystem that
# mmdebstrap made of packages-runtime.txt, where step 1 finds nothing to do).
#
#   populate.sh INPUTS    INPUTS: what fetch.sh wrote (wheels/, jars/, build-info.json)
#
# The result: /opt/tiers/venv (tiers and its dependencies, no pip), /opt/tiers/jars (Spark's
# Kafka and Delta Lake connectors, where the operator's manifests name them),
# /opt/tiers/build-info.json, and the non-root user 65532 the chart and the operator's pods run as.
set -eu
inputs=$1
recipe=$(dirname "$0")

# 1. Debian packages that are not there yet (a bare Debian image): no recommends, no lists kept.
missing=""
for package in $(grep -v '^#' "$recipe/packages-runtime.txt"); do
  dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
    || missing="$missing $package"
done
if [ -n "$missing" ]; then
  cp "$recipe/dpkg-excludes" /etc/dpkg/dpkg.cfg.d/tiers-excludes
  mkdir -p /usr/share/man/man1  # openjdk's postinst links its manual there
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

# 2. The non-root user (distroless's "nonroot"); its home is /tmp, the pods' writable emptyDir.
grep -q '^nonroot:' /etc/group || echo 'nonroot:x:65532:' >> /etc/group
grep -q '^nonroot:' /etc/passwd \
  || echo 'nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin' >> /etc/passwd

# 3. Python: a virtual environment of Debian's python3 with tiers and its dependencies, installed
# offline from the wheels by pip run from its own wheel (so pip itself is not installed).
python3 -m venv --without-pip /opt/tiers/venv
pip_wheel=$(ls "$inputs"/wheels/pip-*.whl | head -n 1)
/opt/tiers/venv/bin/python "$pip_wheel/pip" install --no-index --no-cache-dir \
  --disable-pip-version-check --find-links "$inputs/wheels" tiers

# 4. Spark's Kafka and Delta Lake connectors, and what `tiers version` reports of the build.
mkdir -p /opt/tiers/jars
cp "$inputs"/jars/*.jar /opt/tiers/jars/
cp "$inputs/build-info.json" /opt/tiers/build-info.json
chmod -R a+rX,go-w /opt/tiers
