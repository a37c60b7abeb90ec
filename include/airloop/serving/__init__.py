"""Model serving: MLflow's scoring protocol over HTTP, with health, version, metrics and an
inference log. Needs no MLflow at run time: it reads an MLflow model directory directly."""

#: A request whose id starts with this is a deployment check, not traffic: answered, never logged.
CHECK_REQUEST_PREFIX = "airloop-check-"

#: Under the inference log's folder (mounted on every target): the shadow slot, where a shadowing
#: challenger's model directory is put (one folder per registered model), and the shadow's own log.
SHADOW_SLOT_DIR = "shadow-slot"
SHADOW_LOG_DIR = "shadow"
