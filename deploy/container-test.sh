#!/usr/bin/env bash
# Builds the image from the Dockerfile and runs the docker-compose demo for real, with podman
# (tests/it/container.rs, ignored by a plain `cargo test`). .ci/run calls this after the
# README's test command. Needs root podman and runc (`apt-get install -y podman runc
# debootstrap`), python3 with venv, Node.js and Chromium (as the browser tests).
#
#   deploy/container-test.sh           # images missing from podman: local stand-ins
#
# Where podman cannot pull (this repository's CI, offline machines), deploy/local-images.sh
# makes local stand-ins for debian/rust/redis/nginx from the Debian mirror; where the
# official images are present it does nothing. LATCH_OFFICIAL_IMAGES=1 skips it (podman then
# pulls them). One run at a time per machine: the demo's subnet and project are fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}
export PODMAN=${PODMAN:-podman}
# podman-compose's builds too: the image keeps its HEALTHCHECK (OCI, the default, drops it).
export BUILDAH_FORMAT=docker
project=latch-demo-test          # = PROJECT in tests/it/container.rs
compose_version=1.6.0

exec 9>/tmp/latch-container-test.lock
flock -w 1800 9 || { echo "container-test: another run holds /tmp/latch-container-test.lock" >&2; exit 1; }

started=$SECONDS
if [ -z "${LATCH_OFFICIAL_IMAGES:-}" ]; then
  deploy/local-images.sh
fi
echo "container-test: images ready after $((SECONDS - started)) s"

# podman-compose from PyPI, pinned with its dependencies, in a venv under target/.
venv=$repo/target/container-test/venv
if [ "$("$venv/bin/podman-compose" --version 2>/dev/null | sed -n 's/^podman-compose version //p')" != "$compose_version" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "podman-compose==$compose_version" "pyyaml==6.0.4" "python-dotenv==1.2.4"
fi
export PODMAN_COMPOSE=$venv/bin/podman-compose

# Whatever happens, nothing of the test keeps running.
leftovers() {
  {
    "$PODMAN" ps --all --quiet --filter label=latch.container-test=true
    "$PODMAN" ps --all --quiet --filter "label=io.podman.compose.project=$project"
  } | sort -u
}
cleanup() {
  local ids
  ids=$(leftovers)
  if [ -n "$ids" ]; then
    echo "container-test: removing leftover containers: $ids" >&2
    # shellcheck disable=SC2086
    "$PODMAN" rm --force --volumes $ids >/dev/null
  fi
  "$PODMAN" pod rm --force "pod_$project" >/dev/null 2>&1 || true
  "$PODMAN" volume rm --force "${project}_redis-data" >/dev/null 2>&1 || true
  "$PODMAN" network rm --force "${project}_demo" >/dev/null 2>&1 || true
}
cleanup
trap cleanup EXIT

status=0
cargo test --test it -- --ignored --test-threads=1 --nocapture container:: || status=$?
if [ -n "$(leftovers)" ] || "$PODMAN" pod exists "pod_$project"; then
  echo "container-test: the tests left containers or a pod behind" >&2
  status=1
fi
echo "container-test: done in $((SECONDS - started)) s"
exit $status
