"""The configuration reference, example config and MQTT JSON Schemas must match the code."""

import json

import pytest

from edge_agent.devtools.docs import generated_files


@pytest.mark.parametrize("path", list(generated_files()), ids=lambda p: p.name)
def test_generated_file_is_current(path):
    expected = generated_files()[path]
    assert path.is_file(), f"{path} missing: run make docs"
    assert path.read_text() == expected, f"{path} is stale: run make docs"


def test_result_schema_names_every_contract_field():
    from edge_agent.devtools.docs import schemas

    schema = json.loads(schemas()["result"])
    for key in (
        "schema",
        "id",
        "seq",
        "station",
        "ts",
        "verdict",
        "label",
        "confidence",
        "defect_score",
        "threshold",
        "scores",
        "model",
        "source",
        "latency_ms",
        "image",
    ):
        assert key in schema["properties"], key
