#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io and start dockerd if none does.
# This machine has no bridge networking or iptables, so containers use --network host, and the
# vfs storage driver (slow, disk-hungry) is the one that works here.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker engine: already answering"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker engine: installing docker.io and debootstrap from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
fi
command -v debootstrap >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
mkdir -p /var/log/airloop
echo "docker engine: starting dockerd (vfs, no bridge, no iptables)"
nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >/var/log/airloop/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker engine: up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker engine: dockerd did not answer in 60s; see /var/log/airloop/dockerd.log" >&2
tail -20 /var/log/airloop/dockerd.log >&2
exit 1
