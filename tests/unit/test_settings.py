from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.cli import main
from edge_agent.errors import ConfigError
from edge_agent.settings import AgentSettings, load_settings, read_password

EXAMPLE = Path(__file__).parents[2] / "edge_agent" / "agent" / "example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid_and_covers_every_section():
    load_settings(EXAMPLE)
    text = EXAMPLE.read_text()
    for section in AgentSettings.model_fields:
        assert f"[{section}]" in text


def test_defaults_and_topic_prefix(tmp_path):
    settings = load_settings(write(tmp_path, '[station]\nid = "press-7"\n'))
    assert settings.topic_prefix == "edge-agent/press-7"
    assert settings.mqtt.qos == 1
    assert settings.health.bind == "127.0.0.1"


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[mqtt]\nhost = "file-host"\nport = 1883\n')
    settings = load_settings(path, {"EDGE_AGENT_MQTT__HOST": "env-host", "EDGE_AGENT_CAMERA__FPS": "12.5"})
    assert settings.mqtt.host == "env-host"
    assert settings.mqtt.port == 1883
    assert settings.camera.fps == 12.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[mqtt]\nbogus = 1\n", "mqtt.bogus: unknown key"),
        ("[cameras]\nsource = 0\n", "cameras: unknown key (did you mean 'camera'?)"),
        ("[mqtt]\nport = 70000\n", "mqtt.port: "),
        ("[camera]\ntrigger = 'sometimes'\n", "camera.trigger: "),
        ("[archive]\nsave = 'some'\n", "archive.save: "),
        ("[station]\nid = 'a b'\n", "station.id: "),
        ("[mqtt]\ntopic_prefix = 'plant/#'\n", "mqtt.topic_prefix: "),
        ("[camera]\nwatch = true\nsource = '0'\n", "camera.watch: watch = true needs a dir: source"),
        ("[model\npath = 1\n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as failure:
        load_settings(write(tmp_path, text))
    assert message in str(failure.value)


def test_unknown_environment_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"mqtt\.bogus"):
        load_settings(write(tmp_path, ""), {"EDGE_AGENT_MQTT__BOGUS": "1"})


def test_validate_config_command(tmp_path, tiny_bundle, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "a.png").write_bytes(b"x")
    good = write(
        tmp_path,
        f'[camera]\nsource = "dir:{frames}"\n[model]\npath = "{tiny_bundle}"\n'
        f'[spool]\npath = "{tmp_path / "spool.db"}"\n[archive]\npath = "{tmp_path / "archive"}"\n',
    )
    assert main(["validate-config", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["validate-config", str(write(tmp_path, "[mqtt]\nkeepalive = 'soon'\n"))]) == 2
    err = capsys.readouterr().err
    assert "mqtt.keepalive" in err
    assert main(["validate-config", str(tmp_path / "missing.toml")]) == 2
    assert not (tmp_path / "spool.db").exists(), "validate-config writes nothing"


def test_validate_config_lists_every_problem_with_its_origin_and_the_nearest_key(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_AGENT_MQTT__PORT", "99999")
    monkeypatch.setenv("EDGE_AGENT_CAMRA__FPS", "3")
    path = write(
        tmp_path,
        '[camera]\nsource = "dir:/nonexistent"\nfpss = 3\n[model]\npath = "/nonexistent-bundle"\n'
        '[mqtt]\nhots = "x"\nprotocol = 5\ntls = true\npassword_file = "/nonexistent/pw"\n'
        f'[spool]\npath = "{tmp_path / "spool.db"}"\n',
    )
    assert main(["validate-config", str(path)]) == 2
    err = capsys.readouterr().err
    expected = [
        "environment variable EDGE_AGENT_CAMRA__FPS: camra.fps: no such setting (did you mean 'camera'?)",
        f"{path}: camera.fpss: unknown key (did you mean 'fps'?)",
        "environment variable EDGE_AGENT_MQTT__PORT: mqtt.port: Input should be less than or equal to 65535",
        f"{path}: mqtt.hots: unknown key (did you mean 'host'?)",
        f"{path}: mqtt.password_file: /nonexistent/pw: file not found",
        f"{path}: model.path: /nonexistent-bundle: no such bundle folder",
        f"{path}: camera.source: dir:/nonexistent: folder not found",
    ]
    for line in expected:
        assert line in err
    assert "7 problems" in err
    assert "protocol" not in err, "protocol = 5 written as a number is fine"
    assert "Traceback" not in err
    assert "pydantic" not in err.lower()


def test_run_refuses_what_validate_config_refuses_before_opening_anything(tmp_path, capsys):
    path = write(tmp_path, f'[model]\npath = "/nonexistent-bundle"\n[spool]\npath = "{tmp_path / "s" / "spool.db"}"\n')
    assert main(["run", "--config", str(path)]) == 2
    assert "model.path" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_password_from_file_or_systemd_credentials(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = load_settings(write(tmp_path, f'[mqtt]\nusername = "u"\npassword_file = "{secret}"\n'))
    assert read_password(settings.mqtt) == "s3cret"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-systemd")
    bare = load_settings(write(tmp_path, '[mqtt]\nusername = "u"\n'))
    assert read_password(bare.mqtt, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-systemd"
    assert read_password(bare.mqtt, {}) is None
    missing = load_settings(write(tmp_path, f'[mqtt]\npassword_file = "{tmp_path / "nope"}"\n'))
    with pytest.raises(ConfigError, match="password_file"):
        read_password(missing.mqtt, {})


scalars = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.booleans(),
)
FIELDS = [
    (section, name) for section, model in AgentSettings.model_fields.items() for name in model.annotation.model_fields
]  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=scalars)
def test_fuzzed_values_are_accepted_or_named(tmp_path, field, value):
    section, name = field
    import json

    literal = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
    path = write(tmp_path, f"[{section}]\n{name} = {literal}\n")
    message = ""
    try:
        load_settings(path)
    except ConfigError as e:
        message = str(e)
    assert not message or f"{section}.{name}" in message or "not valid TOML" in message
