"""Model serving: MLflow's scoring protocol over HTTP, with health, version, metrics and an
inference log. Needs no MLflow at run time: it reads an MLflow model directory directly."""

#: A request whose id starts with this is a deployment check, not traffic: answered, never logged.
CHECK_REQUEST_PREFIX = "airloop-check-"
