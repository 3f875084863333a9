import json
import subprocess
import sys

import pytest

from edge_agent import __version__
from edge_agent.cli import main

COMMANDS = [
    ["trainer", "synth"],
    ["trainer", "photos"],
    ["trainer", "distill"],
    ["trainer", "teacher"],
    ["trainer", "export"],
    ["trainer", "evaluate"],
    ["trainer", "build-engine"],
    ["predict"],
    ["bench"],
    ["run"],
    ["validate-config"],
    ["doctor"],
]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_real_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: edge-agent" in out
    assert len(out.splitlines()) >= 4


def test_predict_json_fields(tiny_bundle, tiny_data, capsys):
    images = sorted((tiny_data / "test" / "scratch").glob("*.png"))[:2]
    assert main(["predict", str(tiny_bundle), *map(str, images), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, images, strict=True):
        row = json.loads(line)
        assert row["path"] == str(path)
        assert row["verdict"] in ("pass", "fail")
        assert set(row["scores"]) == {"crack", "good", "pit", "scratch", "stain"}
        assert row["defect_score"] == pytest.approx(1 - row["scores"]["good"], abs=1e-5)
        assert row["label"] == max(row["scores"], key=row["scores"].get)
        assert 0 <= row["confidence"] <= 1


def test_predict_reports_a_corrupt_image_and_goes_on(tiny_bundle, tiny_data, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    good = next((tiny_data / "test" / "good").glob("*.png"))
    assert main(["predict", str(tiny_bundle), str(broken), str(good), "--json"]) == 2
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err
    error, verdict = (json.loads(line) for line in captured.out.splitlines())
    assert error["path"] == str(broken)
    assert error["verdict"] is None
    assert "not a decodable image" in error["error"]
    assert verdict["path"] == str(good)
    assert verdict["verdict"] in ("pass", "fail")


def test_evaluate_json(tiny_bundle, tiny_data, capsys):
    assert main(["trainer", "evaluate", str(tiny_bundle), str(tiny_data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "escape_rate", "overkill_rate", "per_class", "confusion"):
        assert key in result
    assert result["n"] == 10


def test_bench_json(tiny_bundle, capsys):
    assert main(["bench", str(tiny_bundle), "--seconds", "0.2", "--batch", "1", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "onnxruntime"
    assert result["batch"] == 1
    assert result["p50_ms"] > 0
    assert result["p99_ms"] >= result["p50_ms"]
    assert [r["batch"] for r in result["runs"]] == [1, 4]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope"), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-agent: error:")
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--teacher-views", "-1"], "--teacher-views -1: must be 0 or more"),
        (["--tau", "0"], "--tau 0.0: must be greater than 0"),
        (["--max-escape", "2"], "--max-escape 2.0: is outside 0..1"),
        (["--patience", "-3"], "--patience -3: must be 0 or more"),
    ],
)
def test_bad_distill_flags_are_one_line_and_exit_2(tmp_path, capsys, flags, message):
    pytest.importorskip("torch")
    assert main(["trainer", "distill", str(tmp_path), "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "edge_agent", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_predict_never_gives_a_verdict_for_a_nan_output(tiny_bundle, tmp_path, capsys):
    import json

    import cv2
    import numpy as np

    from edge_agent.cli import main
    from tests.models import nan_bundle, strict_loads

    bundle = nan_bundle(tiny_bundle, tmp_path / "nan")
    dark, bright = tmp_path / "dark.png", tmp_path / "bright.png"
    cv2.imwrite(str(dark), np.full((32, 32, 3), 5, np.uint8))
    cv2.imwrite(str(bright), np.full((32, 32, 3), 250, np.uint8))
    assert main(["predict", str(bundle), str(dark), str(bright), "--json"]) == 2
    out, err = capsys.readouterr()
    lines = [strict_loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [str(dark), str(bright)]
    assert lines[0]["verdict"] is None
    assert "not finite" in lines[0]["error"]
    assert lines[1]["verdict"] in ("pass", "fail")
    assert "not judged" in err
    assert json.dumps(lines)  # strict all the way


def test_log_formats_for_journald_and_shippers(tmp_path):
    import logging
    import os

    from edge_agent.cli.logs import configure_logging

    stream = (tmp_path / "log").open("w+")
    stat = os.fstat(stream.fileno())
    os.environ["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
    try:
        assert configure_logging(logging.INFO, "auto", stream) == "journald"
    finally:
        del os.environ["JOURNAL_STREAM"]
    logging.getLogger("edge_agent.test").error("broker refused\nsecond line")
    logging.getLogger("edge_agent.test").info("connected")
    assert configure_logging(logging.INFO, "json", stream) == "json"
    logging.getLogger("edge_agent.test").warning("spool %d", 3)
    stream.seek(0)
    lines = stream.read().splitlines()
    assert lines[:3] == ["<3>edge_agent.test: broker refused", "<3>second line", "<6>edge_agent.test: connected"]
    entry = json.loads(lines[3])
    assert entry["level"] == "warning"
    assert entry["message"] == "spool 3"
    assert entry["ts"].endswith("Z")
    assert configure_logging(logging.INFO, "auto", stream) == "text", "not the journal's stream: plain text"


def test_bad_flags_are_one_line_and_exit_2(capsys):
    import pytest

    for argv in (
        ["bench", "models/demo", "--seconds", "-1"],
        ["trainer", "distill", "d", "--out", "o", "--device", "tpu"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "--help" in err


def test_predict_takes_folders_and_globs(tiny_bundle, tiny_data, capsys):
    folder = tiny_data / "test" / "good"
    pattern = str(tiny_data / "test" / "pit" / "*.png")
    assert main(["predict", str(tiny_bundle), str(folder), pattern, "--json"]) == 0
    paths = [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()]
    expected = sorted(str(p) for p in folder.glob("*.png")) + sorted(
        str(p) for p in (tiny_data / "test" / "pit").glob("*.png")
    )
    assert paths == expected
    assert main(["predict", str(tiny_bundle), str(tiny_data / "nothing-*.png")]) == 2
