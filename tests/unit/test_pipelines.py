"""The pipelines folder: one file per pipeline, DAG ids by one convention, broken files set apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from airloop.pipelines import STAGES, dag_id, load_pipelines
from airloop.settings import AirloopSettings

from ..conftest import FLIGHTS_CONFIG, PIPELINES


def _copy(folder: Path, name: str, text: str | None = None, **replace: str) -> Path:
    text = text if text is not None else FLIGHTS_CONFIG.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = folder / name
    path.write_text(text)
    return path


MODEL = "model_name: airloop-flights-delay"
DATASET = "  name: flights"
PREDICT = "  predict_method: predict"


def test_the_default_folder_holds_flights_and_its_regression_twin():
    found = AirloopSettings().load_pipelines()
    assert found.folder == PIPELINES
    assert found.names == ["arrival_delay", "flights"]
    assert found.broken == []
    flights = found.get("flights")
    assert flights.dags == {stage: f"airloop_flights_{stage}" for stage in STAGES}
    assert flights.serving_port == 8000  # AIRLOOP_SERVING_PORT's default: the config sets none
    minutes = found.get("arrival_delay")
    assert (minutes.config.task, minutes.config.promotion_metric, minutes.serving_port) == ("regression", "rmse", 8002)
    assert minutes.config.dataset.source == flights.config.dataset.source  # the same landing zone


def test_dag_ids_follow_one_convention():
    assert dag_id("churn", "training") == "airloop_churn_training"
    with pytest.raises(ValueError, match="unknown stage 'train'"):
        dag_id("churn", "train")


def test_pipelines_are_the_yaml_files_in_name_order_each_with_its_own_port(tmp_path):
    _copy(tmp_path, "flights.yaml")
    _copy(
        tmp_path,
        "delays.yml",
        **{MODEL: "model_name: airloop-delays", DATASET: "  name: delays", PREDICT: f"{PREDICT}\n  port: 8010"},
    )
    (tmp_path / "notes.txt").write_text("not a pipeline")

    found = load_pipelines(tmp_path, default_port=9000)

    assert found.names == ["delays", "flights"]
    assert [p.serving_port for p in found] == [8010, 9000]
    assert found.of_dag("airloop_delays_monitoring") == found.get("delays")
    assert found.of_model("airloop-flights-delay") == found.get("flights")
    assert found.of_dag("example_bash_operator") is None
    assert found.of_model("other") is None


def test_a_broken_file_is_set_apart_with_its_field_and_never_hides_the_others(tmp_path):
    _copy(tmp_path, "flights.yaml")
    _copy(tmp_path, "bad_field.yaml", **{MODEL: "model_name: m2", "window_days: 30": "window_days: -1"})
    _copy(tmp_path, "bad_yaml.yaml", text="model_name: [unclosed\n")
    _copy(tmp_path, "Bad-Name.yaml", **{MODEL: "model_name: m3"})
    _copy(tmp_path, "same_model.yaml", **{PREDICT: f"{PREDICT}\n  port: 8100"})
    _copy(tmp_path, "same_port.yaml", **{MODEL: "model_name: m4", DATASET: "  name: four"})
    _copy(tmp_path, "same_data.yaml", **{MODEL: "model_name: m6", PREDICT: f"{PREDICT}\n  port: 8200"})
    _copy(
        tmp_path, "bad_cron.yaml", **{MODEL: "model_name: m5", "monitoring:\n": "monitoring:\n  schedule: every day\n"}
    )

    found = load_pipelines(tmp_path, default_port=8000)

    assert found.names == ["flights"]
    errors = {b.path.name: b.error for b in found.broken}
    assert errors["bad_field.yaml"] == "training.window_days: Input should be greater than or equal to 1"
    assert "while parsing a flow sequence" in errors["bad_yaml.yaml"]
    assert "line 1" in errors["bad_yaml.yaml"]
    assert "the file name 'Bad-Name' is the pipeline's name" in errors["Bad-Name.yaml"]
    assert errors["same_model.yaml"] == "model_name 'airloop-flights-delay' is pipeline flights's"
    assert errors["same_port.yaml"].startswith("serving.port 8000 is pipeline flights's")
    assert errors["same_data.yaml"].startswith("dataset.name 'flights' is pipeline flights's")
    assert errors["bad_cron.yaml"].startswith("monitoring.schedule: Value error, 'every day' is neither a cron")
    with pytest.raises(LookupError, match=r"no pipeline 'bad_field' .*training\.window_days"):
        found.get("bad_field")


def test_a_command_names_its_pipeline_when_there_are_several(tmp_path):
    _copy(tmp_path, "flights.yaml")
    assert load_pipelines(tmp_path, default_port=8000).choose(None).name == "flights"
    _copy(
        tmp_path,
        "delays.yaml",
        **{MODEL: "model_name: airloop-delays", DATASET: "  name: delays", PREDICT: f"{PREDICT}\n  port: 8010"},
    )
    found = load_pipelines(tmp_path, default_port=8000)
    with pytest.raises(LookupError, match=r"2 pipelines in .*: name one of delays, flights"):
        found.choose(None)
    assert found.choose("delays").config.model_name == "airloop-delays"
    with pytest.raises(LookupError, match="no pipeline in"):
        load_pipelines(tmp_path / "missing", default_port=8000).choose(None)


def test_a_running_dag_whose_pipeline_went_away_says_so(tmp_path):
    _copy(tmp_path, "flights.yaml", **{"window_days: 30": "window_days: 0"})
    with pytest.raises(LookupError, match=r"DAG airloop_flights_training belongs to no pipeline .*flights.yaml"):
        load_pipelines(tmp_path, default_port=8000).by_dag("airloop_flights_training")
