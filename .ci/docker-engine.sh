#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io and start dockerd if none does.
# This machine has no bridge networking or iptables, so containers use --network host. The
# storage driver is overlay2 when the kernel lets dockerd use it (it does here: ext4 under
# /var/lib/docker), else vfs, which works everywhere but copies the whole file system for every
# layer and every container (a compose stack's 12 containers copy a 1.4 GB image each).
# AIRLOOP_DOCKER_STORAGE_DRIVER=vfs forces one.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker engine: already answering ($(docker info --format '{{.Driver}}') storage driver)"
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

# Start dockerd with one storage driver; succeed when it answers with that driver.
start_dockerd() {
  local driver=$1
  echo "docker engine: starting dockerd ($driver, no bridge, no iptables)"
  nohup dockerd --storage-driver="$driver" --iptables=false --bridge=none >>/var/log/airloop/dockerd.log 2>&1 &
  local pid=$!
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      if [ "$(docker info --format '{{.Driver}}')" = "$driver" ]; then
        echo "docker engine: up ($(docker version --format '{{.Server.Version}}'), $driver)"
        return 0
      fi
      break
    fi
    kill -0 "$pid" 2>/dev/null || break   # dockerd exited: the driver is not usable here
    sleep 1
  done
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  return 1
}

for driver in ${AIRLOOP_DOCKER_STORAGE_DRIVER:-overlay2 vfs}; do
  start_dockerd "$driver" && exit 0
  echo "docker engine: dockerd does not run with $driver here" >&2
done
echo "docker engine: dockerd did not answer; see /var/log/airloop/dockerd.log" >&2
tail -20 /var/log/airloop/dockerd.log >&2
exit 1
