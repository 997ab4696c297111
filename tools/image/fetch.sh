#!/bin/sh
# The image's inputs, fetched where the network and build tools are: the Dockerfile's `inputs`
# stage runs this (all of it), and so does `make image` (tiers.devenv.image): the wheels with the
# base image's own Python in a container, the jars and the build info on the host. The image's
# own stage (populate.sh) then installs them offline, with no build tool in the image.
#
#   fetch.sh all|wheels|jars|info SRC OUT
#     wheels: OUT/wheels/, tiers, its dependencies and pip, resolved by the image's Python
#             (PYTHON, default python3: environment markers such as python_full_version are
#             its own, so the interpreter that installs them must be the one that resolves them)
#     jars:   OUT/jars/, Spark's Kafka and Delta Lake connectors (tools/spark-*/pom.xml, with Maven)
#     info:   OUT/build-info.json, the commit (GIT_COMMIT, default `git describe` in SRC)
set -eu
part=$1
src=$2
out=$3
python=${PYTHON:-python3}

wheels() {
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
    echo "fetch.sh: $python is not Python 3.11, the image's (Debian bookworm)" >&2
    exit 2
  }
  rm -rf "$out/wheels"
  mkdir -p "$out/wheels"
  echo "wheels: tiers and its dependencies" >&2
  "$python" -m pip wheel --disable-pip-version-check --progress-bar off \
    --wheel-dir "$out/wheels" "$src" pip
}

jars() {
  rm -rf "$out/jars"
  mkdir -p "$out/jars"
  for jar_set in spark-kafka spark-delta; do
    echo "jars: tools/$jar_set/pom.xml" >&2
    mvn -B -q -f "$src/tools/$jar_set/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$out/jars" -DincludeScope=runtime
  done
}

info() {
  mkdir -p "$out"
  commit=${GIT_COMMIT:-$(git -C "$src" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)}
  printf '{"commit": "%s"}\n' "$commit" > "$out/build-info.json"
}

case $part in
  all) wheels; jars; info ;;
  wheels|jars|info) $part ;;
  *) echo "usage: fetch.sh all|wheels|jars|info SRC OUT" >&2; exit 2 ;;
esac
