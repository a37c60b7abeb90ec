"""`python -m airloop.serving`: serve the model in AIRLOOP_SERVING_MODEL_DIR with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from airloop.serving.app import ServingSettings, create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ServingSettings()  # model_dir comes from the environment
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
