# The Airloop image: the official Apache Airflow image with Airloop installed, for every Airflow
# component of docker-compose.yaml (and of the Helm chart), the MLflow server, the Evidently UI
# and the compose serving service.
#
#   docker compose build        # or:
#   docker build -f include/docker/airflow.Dockerfile -t airloop/airflow:latest .
#
# The build context is the repository root. The base image is a build argument, like the serving
# image's, so a site with its own mirror passes --build-arg AIRFLOW_BASE_IMAGE=<mirror>/...; its
# Airflow version must be the one requirements.lock pins (a test checks the default).
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_BASE_IMAGE}

# Airflow's images install Python packages as the airflow user (never as root).
USER airflow

# Dependencies first, for the build cache: they change less often than the code. The lock is
# the environment the tests ran in; used as constraints it pins every transitive dependency,
# and naming apache-airflow keeps pip from moving the Airflow of the base image.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 include/ /opt/airflow/include/
# Editable install rooted at /opt/airflow: the package finds its pipeline configs, expectation
# suites and Dockerfiles under /opt/airflow/include and the DAGs under /opt/airflow/dags
# (settings.PROJECT_ROOT), exactly as in a checkout. A regular pip install, not a path hack.
RUN pip install --no-cache-dir --constraint /opt/airflow/requirements.lock \
      "apache-airflow==${AIRFLOW_VERSION}" --editable /opt/airflow \
 && mkdir -p /opt/airflow/airloop /opt/airflow/mlflow \
 && chmod g+rwX /opt/airflow/airloop /opt/airflow/mlflow

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/

# AIRLOOP_HOME is the shared state volume of docker-compose.yaml (and the PVC of the Helm values).
# The folders above are created here, owned by airflow and writable by group 0 (Airflow's image
# convention, for an AIRFLOW_UID other than 50000), so that a new named volume mounted on them
# starts that way too.
ENV AIRLOOP_HOME=/opt/airflow/airloop \
    AIRLOOP_PIPELINES=/opt/airflow/include/pipelines \
    GX_ANALYTICS_ENABLED=False

ARG GIT_COMMIT=unknown
ENV AIRLOOP_GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.title="airloop-airflow" \
      org.opencontainers.image.revision="${GIT_COMMIT}"

# The base image's user (uid 50000, gid 0); never root.
USER airflow
