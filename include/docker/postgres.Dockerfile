# PostgreSQL from Debian's packages on the Debian base made here (include/docker/build-base-image.sh),
# for sites that cannot pull `postgres:16-bookworm`. It honours what docker-compose.yaml gives the
# official image: POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB on first start, the scripts in
# /docker-entrypoint-initdb.d, PGDATA at /var/lib/postgresql/data, `pg_isready`, user postgres.
# Build with the host's network (apt-get reaches Debian's mirror).
ARG BASE_IMAGE=airloop/base:bookworm
FROM ${BASE_IMAGE}
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /etc/postgresql-common \
 && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres", "-c", "listen_addresses=*"]
