#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3.11 offline: no registry is needed, only
# Debian's packages (debootstrap) and a Docker engine. For air-gapped sites and machines
# that cannot pull `python:3.11-slim-bookworm`.
#
#   include/docker/build-base-image.sh [TAG]      (default airloop/base:bookworm)
set -euo pipefail

TAG="${1:-airloop/base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG already exists"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is needed: apt-get install debootstrap" >&2; exit 1; }

ROOT="$(mktemp -d /tmp/airloop-rootfs.XXXXXX)"
trap 'rm -rf "$ROOT"' EXIT
chmod 0755 "$ROOT"   # mktemp makes it 0700: it becomes the image's /
echo "debootstrap bookworm (minbase + python3) into $ROOT"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOT" "$MIRROR" >/dev/null
# Keep the image small: no apt lists, caches or docs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/*
tar -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$TAG" >/dev/null
echo "built $TAG ($(docker image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
