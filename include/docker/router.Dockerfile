# The stable endpoint in front of the serving containers: nginx, reloaded (without dropping
# connections) to point at the newly deployed container once it is healthy and passed its
# smoke test. Build with --network host so apt-get reaches Debian's mirror.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && (getent passwd 10001 >/dev/null || useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin airloop) \
 && mkdir -p /etc/airloop /tmp/nginx && chown -R 10001 /etc/airloop /tmp/nginx
COPY router-nginx.conf /etc/airloop/nginx.conf
USER 10001
HEALTHCHECK --interval=10s --timeout=3s CMD ["sh", "-c", "test -s /tmp/nginx/nginx.pid"]
CMD ["nginx", "-c", "/etc/airloop/nginx.conf", "-g", "daemon off;"]
