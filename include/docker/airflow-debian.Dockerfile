# The Airloop image without a registry: the same image as airflow.Dockerfile (the official Apache
# Airflow image's layout: /opt/airflow, user airflow with uid 50000 and group 0, `airflow
# <command>` for a command such as `scheduler`), built on the Debian base made here by
# include/docker/build-base-image.sh, with the pinned wheels of a wheelhouse downloaded on the
# host (.wheelhouse/, from include/docker/airflow-requirements.txt). No registry, no PyPI inside.
#
#   include/docker/build-offline-images.sh      # base image, wheelhouse, and this build
#
# The compose override include/docker/compose-offline.yaml builds with it. Build with the host's
# network (apt-get reaches Debian's mirror for curl, which the healthchecks use).
ARG BASE_IMAGE=airloop/base:bookworm

# Stage 1: the environment, installed from the wheelhouse. Only /opt/airflow leaves this stage,
# so the wheels are not in the image (on the vfs storage driver every layer is a full copy).
FROM ${BASE_IMAGE} AS build
COPY . /tmp/src/
RUN set -eu \
 && mkdir -p /opt/airflow \
 && cp -r /tmp/src/pyproject.toml /tmp/src/README.md /tmp/src/include /tmp/src/dags /tmp/src/plugins /opt/airflow/ \
 && python3 -m venv /opt/airflow/.venv \
 && /opt/airflow/.venv/bin/pip install --quiet --no-index --find-links /tmp/src/.wheelhouse uv \
 && /opt/airflow/.venv/bin/uv pip install --quiet --python /opt/airflow/.venv/bin/python --no-index \
      --find-links /tmp/src/.wheelhouse -r /opt/airflow/include/docker/airflow-requirements.txt \
 && /opt/airflow/.venv/bin/uv pip install --quiet --python /opt/airflow/.venv/bin/python --no-index \
      --find-links /tmp/src/.wheelhouse --no-deps --editable /opt/airflow \
 && /opt/airflow/.venv/bin/uv pip uninstall --quiet --python /opt/airflow/.venv/bin/python uv \
 && mkdir -p /opt/airflow/airloop /opt/airflow/mlflow /opt/airflow/logs \
 && chmod -R g+rwX /opt/airflow

# Stage 2: the base, curl and the airflow user; the settings; then /opt/airflow, last. Every
# instruction, even ENV or LABEL, copies the whole file system on the vfs storage driver, so they
# all come before the one big layer.
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
 && mkdir -p /opt/airflow && chown 50000:0 /opt/airflow && chmod 0775 /opt/airflow
ARG GIT_COMMIT=unknown
ENV PATH=/opt/airflow/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    AIRFLOW_HOME=/opt/airflow \
    AIRLOOP_HOME=/opt/airflow/airloop \
    AIRLOOP_PIPELINES=/opt/airflow/include/pipelines \
    AIRLOOP_GIT_COMMIT=${GIT_COMMIT} \
    GX_ANALYTICS_ENABLED=False \
    PYTHONUNBUFFERED=1
LABEL org.opencontainers.image.title="airloop-airflow" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
WORKDIR /opt/airflow
ENTRYPOINT ["/opt/airflow/include/docker/airflow-entrypoint.sh"]
CMD ["version"]
USER 50000
COPY --from=build --chown=50000:0 /opt/airflow /opt/airflow
