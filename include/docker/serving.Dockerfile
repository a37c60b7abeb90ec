# The serving image: one registered model version and the small app that serves it.
#
# Built by Airloop's deploy step from a context holding app/ (the package's serving code and
# model/, the MLflow model directory), serving-requirements.txt and, for offline builds,
# wheels/. With a registry, the default base is the official Python image; offline, pass
# --build-arg BASE_IMAGE=airloop/base:bookworm (include/docker/build-base-image.sh) and
# --build-arg PIP_ARGS="--no-index --find-links /tmp/wheels".
#
# Instructions are ordered for the build cache: everything up to `USER` is the same for every
# model version, so a new version only adds its label and its files.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONPATH=/opt/airloop \
    PYTHONDONTWRITEBYTECODE=1 \
    AIRLOOP_SERVING_MODEL_DIR=/opt/airloop/model \
    AIRLOOP_SERVING_HOST=0.0.0.0 \
    AIRLOOP_SERVING_PORT=8000 \
    AIRLOOP_SERVING_INFERENCE_LOG_DIR=/var/lib/airloop/inference
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/opt/venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['AIRLOOP_SERVING_PORT'], timeout=3)"]
CMD ["/opt/venv/bin/python", "-m", "airloop.serving"]

ARG PIP_ARGS=""
COPY serving-requirements.txt /tmp/serving-requirements.txt
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check ${PIP_ARGS} -r /tmp/serving-requirements.txt \
 && rm -rf /tmp/wheels /tmp/serving-requirements.txt \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin airloop
USER 10001

ARG GIT_COMMIT=unknown
ARG MODEL_NAME=unknown
ARG MODEL_VERSION=unknown
LABEL org.opencontainers.image.title="airloop-serving" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      ai.airloop.model.name="${MODEL_NAME}" \
      ai.airloop.model.version="${MODEL_VERSION}"
COPY app/ /opt/airloop/
