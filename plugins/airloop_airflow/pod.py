"""Run the heavy training step in its own Kubernetes pod (KubernetesPodOperator), by config.

Off by default. With `AIRLOOP_TRAIN_IN_POD=true` the `train` task of `airloop_training` runs
in a pod of `AIRLOOP_TRAIN_POD_IMAGE` (the project's Airflow image, which has Airloop
installed) in `AIRLOOP_TRAIN_POD_NAMESPACE`, with the resources below. The pod must see the
same state folder (`AIRLOOP_HOME` on a shared volume, `AIRLOOP_TRAIN_POD_PVC`) and MLflow
server as the rest of the pipeline. MLflow credentials reach the pod from a Kubernetes Secret
(`AIRLOOP_TRAIN_POD_SECRET_NAME`, holding `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`),
never through the DAG, whose arguments the UI shows. Read from the environment only: parsing
stays offline.
"""

from __future__ import annotations

import os
from typing import Any

TRUE = {"1", "true", "yes"}
PASSED_ON = ("AIRLOOP_HOME", "AIRLOOP_PIPELINES", "MLFLOW_TRACKING_URI")


def train_pod_options() -> dict[str, Any] | None:
    """Keyword arguments for `@task.kubernetes`, or None to train in the worker."""
    if os.environ.get("AIRLOOP_TRAIN_IN_POD", "").lower() not in TRUE:
        return None
    from kubernetes.client import models as k8s

    home = os.environ.get("AIRLOOP_HOME", "/opt/airflow/airloop")
    options: dict[str, Any] = {
        "image": os.environ.get("AIRLOOP_TRAIN_POD_IMAGE", "airloop/airflow:latest"),
        "namespace": os.environ.get("AIRLOOP_TRAIN_POD_NAMESPACE", "airloop"),
        "name": "airloop-train",
        "env_vars": {k: os.environ[k] for k in PASSED_ON if k in os.environ},
        "container_resources": k8s.V1ResourceRequirements(
            requests={
                "cpu": os.environ.get("AIRLOOP_TRAIN_POD_CPU", "2"),
                "memory": os.environ.get("AIRLOOP_TRAIN_POD_MEMORY", "4Gi"),
            },
            limits={"memory": os.environ.get("AIRLOOP_TRAIN_POD_MEMORY", "4Gi")},
        ),
        "get_logs": True,
        "on_finish_action": "delete_succeeded_pod",
    }
    if secret := os.environ.get("AIRLOOP_TRAIN_POD_SECRET_NAME"):
        options["env_from"] = [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))]
    if claim := os.environ.get("AIRLOOP_TRAIN_POD_PVC"):
        options["volumes"] = [
            k8s.V1Volume(name="airloop-home", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim))
        ]
        options["volume_mounts"] = [k8s.V1VolumeMount(name="airloop-home", mount_path=home)]
    return options
