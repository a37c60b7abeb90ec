"""The OpenAPI document of one serving endpoint, generated from its model's signature.

`GET /openapi.json` describes what `POST /invocations` takes for the model it serves (each
input column with its type and whether it is required, in every body MLflow's protocol
accepts) and what it answers, including each error status and its body. Clients can generate
code from it; the tests fuzz the endpoint from it (schemathesis).
"""

from __future__ import annotations

from typing import Any

from airloop.serving.model import BOOLEAN_TYPES, NUMERIC_TYPES, STRING_TYPES, ServingModel

#: Error statuses of `POST /invocations`, each with when it is answered.
ERRORS = {
    "400": "Malformed body: not JSON or CSV, or not one of the accepted shapes.",
    "401": "Missing or wrong bearer token (when the endpoint requires one).",
    "413": "Body over the size limit.",
    "415": "Content type neither application/json nor text/csv.",
    "422": "Rows that do not fit the signature (column, type, width) or an unknown param; the message names it.",
    "503": "No model loaded yet.",
}


def openapi_document(model: ServingModel, *, token: bool) -> dict[str, Any]:
    """OpenAPI 3.0 for `model`'s endpoint; `token`: `/invocations` requires a bearer token."""
    info = model.info
    row = {
        "type": "object",
        "properties": {name: _column_schema(kind) for name, kind in model.columns.items()},
        "required": sorted(model.required),
        "additionalProperties": False,
    }
    columnar = {
        "type": "object",
        "properties": {name: {"type": "array", "items": _column_schema(kind)} for name, kind in model.columns.items()},
        "required": sorted(model.required),
        "additionalProperties": False,
    }
    params = {
        "type": "object",
        "properties": {
            "predict_method": {
                "type": "string",
                "enum": list(model.predict_methods),
                "description": (
                    "`predict`: the predicted value (a regression model has no probabilities). "
                    if model.classes is None
                    else "`predict`: class labels; `predict_proba`: one probability per class, in the order "
                    f"{[str(c) for c in model.classes]}. "
                )
                + f"Default for this model: `{model.predict_method}`.",
            }
        },
        "additionalProperties": False,
    }
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "enum": list(model.columns)}},
            "data": {"type": "array", "items": {"type": "array", "items": {}}},
        },
        "required": ["columns", "data"],
    }
    bodies = {
        "dataframe_split": split,
        "dataframe_records": {"type": "array", "items": {"$ref": "#/components/schemas/Row"}, "minItems": 1},
        "instances": {"oneOf": [{"$ref": "#/components/schemas/Rows"}, {"$ref": "#/components/schemas/Columns"}]},
        "inputs": {"oneOf": [{"$ref": "#/components/schemas/Rows"}, {"$ref": "#/components/schemas/Columns"}]},
    }
    request = {
        "oneOf": [
            {
                "type": "object",
                "properties": {key: schema, "params": {"$ref": "#/components/schemas/Params"}},
                "required": [key],
                "additionalProperties": False,
            }
            for key, schema in bodies.items()
        ]
    }
    error = {"$ref": "#/components/responses/Error"}
    invocations: dict[str, Any] = {
        "summary": f"Score rows with {info.name} v{info.version}",
        "description": "MLflow's scoring protocol (as `mlflow models serve`). `X-Request-ID` is echoed back "
        "and names the request in the inference log.",
        "operationId": "invocations",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": request},
                "text/csv": {"schema": {"type": "string", "description": "A header row, then one row per line."}},
            },
        },
        "responses": {
            "200": {
                "description": "One prediction per row.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Predictions"}}},
            },
            **{status: {**error, "description": why} for status, why in ERRORS.items()},
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"{info.name} (Airloop serving)",
            "version": str(info.version),
            "description": f"Model {info.name} version {info.version}"
            + (f", run {info.run_id}" if info.run_id else "")
            + (f", image {info.image}" if info.image else ""),
        },
        "paths": {
            "/invocations": {"post": invocations},
            "/ping": {"get": _probe("Liveness, as `mlflow models serve`: 200 once the model is loaded.", body=False)},
            "/health": {"get": _probe("Readiness, with the model's name and version.")},
            "/version": {"get": _probe("The model served, and what its shadow slot holds.")},
            "/openapi.json": {"get": _probe("This document.")},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Text exposition format.", "content": {"text/plain": {}}}},
                }
            },
        },
        "components": {
            "schemas": {
                "Row": row,
                "Rows": {"type": "array", "items": {"$ref": "#/components/schemas/Row"}, "minItems": 1},
                "Columns": columnar,
                "Params": params,
                "Predictions": {
                    "type": "object",
                    "properties": {
                        "predictions": {
                            "type": "array",
                            "items": {
                                "oneOf": [
                                    {"type": "number"},
                                    {"type": "string"},
                                    {"type": "array", "items": {"type": "number"}},
                                ]
                            },
                        }
                    },
                    "required": ["predictions"],
                },
                "Error": {
                    "type": "object",
                    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["error_code", "message"],
                },
            },
            "responses": {
                "Error": {
                    "description": "An error that names the problem.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
        },
    }
    if token:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        invocations["security"] = [{"bearer": []}]
    return document


def _column_schema(kind: str) -> dict[str, Any]:
    """An input column's JSON schema from its MLflow type; a missing value (null) is always accepted."""
    if kind in NUMERIC_TYPES:
        return {"type": "number", "nullable": True, "description": kind}
    if kind in STRING_TYPES:
        return {"type": "string", "nullable": True, "description": kind}
    if kind in BOOLEAN_TYPES:
        return {"type": "boolean", "nullable": True, "description": kind}
    return {"description": kind}


def _probe(summary: str, *, body: bool = True) -> dict[str, Any]:
    """A GET that answers 200, or 503 before the model is loaded; `body`: a JSON object (`/ping`'s is a newline)."""
    content = {"application/json": {"schema": {"type": "object"}} if body else {}}
    return {
        "summary": summary,
        "responses": {
            "200": {"description": "Ready.", "content": content},
            "503": {"description": "No model loaded yet.", "content": content},
        },
    }
