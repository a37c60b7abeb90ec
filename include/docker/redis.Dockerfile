# Redis from Debian's packages (7.0, BSD-licensed) on the Debian base made here
# (include/docker/build-base-image.sh), for sites that cannot pull `redis:7.2-bookworm`: the
# official image's user (redis), working folder (/data, the compose volume) and port.
# Build with the host's network (apt-get reaches Debian's mirror).
ARG BASE_IMAGE=airloop/base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
