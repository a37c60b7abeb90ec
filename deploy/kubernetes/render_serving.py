"""Render the example serving manifests in deploy/kubernetes/serving/ with Airloop's own renderer.

The `deploy` task (AIRLOOP_DEPLOY_TARGET=kubernetes) renders and applies these for each model
version it deploys, through `airloop.deploy.kubernetes.render_manifests`: a Deployment with
health probes and a rolling update that never drops below the wanted replicas, a Service that
balances requests across the replicas, and a HorizontalPodAutoscaler. The committed copy shows
what it applies; `tests/unit/test_production_config.py` re-renders it and fails when it is stale.

    .venv/bin/python deploy/kubernetes/render_serving.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from airloop.deploy.image import image_tag
from airloop.deploy.kubernetes import KubernetesOptions, render_manifests
from airloop.serving.model import ModelInfo

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "serving" / "airloop-flights-delay.yaml"
#: Placeholders: the registry the cluster pulls from (AIRLOOP_IMAGE_REGISTRY) and one model version.
EXAMPLE_REGISTRY = "registry.example.com"
EXAMPLE_MODEL = ModelInfo(name="airloop-flights-delay", version="1", run_id="0123456789abcdef")
HEADER = (
    "# Rendered by deploy/kubernetes/render_serving.py from airloop.deploy.kubernetes.render_manifests;\n"
    "# do not edit: change the renderer and run the script again. What the deploy task applies for\n"
    f"# {EXAMPLE_MODEL.name} version {EXAMPLE_MODEL.version}, with AIRLOOP_IMAGE_REGISTRY={EXAMPLE_REGISTRY}.\n"
)


def example_manifests() -> list[dict[str, Any]]:
    """The manifests the deploy task renders for the example model version."""
    image = f"{EXAMPLE_REGISTRY}/{image_tag(EXAMPLE_MODEL.name, EXAMPLE_MODEL.version)}"
    # As the Helm values set it: the inference log on the shared state volume (AIRLOOP_K8S_INFERENCE_LOG_CLAIM).
    return render_manifests(EXAMPLE_MODEL, image, KubernetesOptions(inference_log_claim="airloop-state"))


def render_text() -> str:
    """The committed file's text: the header and one YAML document per manifest."""
    # A JSON round trip gives every manifest its own objects, so YAML writes no anchors.
    manifests = json.loads(json.dumps(example_manifests()))
    return HEADER + "---\n" + yaml.safe_dump_all(manifests, sort_keys=False)


def main() -> None:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render_text())
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
