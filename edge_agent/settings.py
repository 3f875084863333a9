"""Daemon settings (docs: configuration.md): one TOML file, every key overridable as EDGE_AGENT_<SECTION>__<KEY>."""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge_agent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class StationSettings(Section):
    id: str = Field("station-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="station name; part of every topic")


class CameraSettings(Section):
    source: str = Field(
        "0",
        description="device index (0), rtsp://…, http://…, a video or image file, dir:PATH (folder, sorted), "
        "or gst:PIPELINE (GStreamer, ending in appsink)",
    )
    fps: float = Field(0.0, ge=0, description="frames per second to inspect; 0 = as fast as the pipeline allows")
    loop: bool = Field(False, description="restart files and folders at the end instead of finishing (demos, soaks)")
    watch: bool = Field(
        False,
        description="dir: sources only: keep running and inspect images as they arrive in the folder "
        "(each once, also across restarts) instead of finishing at the last one",
    )
    watch_poll_s: float = Field(0.2, gt=0, le=60, description="how often a watched folder is listed")
    trigger_timeout_s: float = Field(
        5.0,
        gt=0,
        description="a cmd/trigger not served by a frame within this long ends in an error event for its part",
    )
    trigger: Literal["continuous", "mqtt"] = Field(
        "continuous", description="continuous: inspect every frame; mqtt: one frame per cmd/trigger"
    )
    width: int | None = Field(None, gt=0, description="ask the camera for this frame width")
    height: int | None = Field(None, gt=0, description="ask the camera for this frame height")
    open_timeout_s: float = Field(5.0, gt=0, description="give up opening a network stream after this long")
    read_timeout_s: float = Field(5.0, gt=0, description="a live read that takes longer counts as a lost camera")
    reconnect_max_s: float = Field(10.0, gt=0, description="longest wait between reconnection attempts")
    queue_size: int = Field(8, ge=1, le=1024, description="frames waiting for inference; live sources drop the oldest")

    @field_validator("source", mode="before")
    @classmethod
    def _source_as_text(cls, value: Any) -> str:
        return str(value)

    @field_validator("watch")
    @classmethod
    def _watch_needs_a_folder(cls, watch: bool, info: ValidationInfo) -> bool:
        # source and loop are declared before watch, so they are validated (and in info.data) by now.
        if watch and not str(info.data.get("source", "")).startswith("dir:"):
            raise ValueError("watch = true needs a dir: source")
        if watch and info.data.get("loop"):
            raise ValueError("watch and loop exclude each other (a watched folder is never re-read)")
        return watch


class ModelSettings(Section):
    path: Path = Field(Path("/var/lib/edge-agent/models/current"), description="bundle folder (MODEL_DIR)")
    backend: Literal["auto", "onnxruntime", "tensorrt"] = Field(
        "auto", description="auto: TensorRT when an engine matches this GPU, else ONNX Runtime"
    )
    threshold: float | None = Field(None, ge=0, le=1, description="override the bundle's defect-score threshold")
    max_batch: int = Field(8, ge=1, le=256, description="largest micro-batch when frames queue up")
    threads: int = Field(
        0, ge=0, le=256, description="CPU inference threads; 0 = one per core minus one for capture (at least 1)"
    )
    models_dir: Path | None = Field(
        None, description="cmd/reload accepts bundles only inside this folder (default: the bundle's parent)"
    )
    build_engine: bool = Field(True, description="build a TensorRT engine at start when none matches this GPU")


class MqttSettings(Section):
    host: str = Field("127.0.0.1", description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with TLS)")
    tls: bool = Field(False, description="connect with TLS")
    ca_file: Path | None = Field(None, description="CA certificate(s) to trust; default: the system store")
    cert_file: Path | None = Field(None, description="client certificate for mutual TLS")
    key_file: Path | None = Field(None, description="client key for mutual TLS")
    username: str | None = Field(None, description="user name; the password comes from password_file")
    password_file: Path | None = Field(
        None, description="file holding the password; else $CREDENTIALS_DIRECTORY/mqtt-password (systemd)"
    )
    topic_prefix: str | None = Field(None, description="default edge-agent/<station.id>")
    qos: Literal[1, 2] = Field(
        1, description="QoS of results: 1 or 2 (QoS 0 has no acknowledgement, so a result could be lost unseen)"
    )
    session_expiry_s: int = Field(
        3600,
        ge=0,
        le=0xFFFFFFFF,
        description="MQTT 5 session expiry: the broker keeps our subscriptions and queued commands this long "
        "across a disconnect (0 = a clean session each connect)",
    )
    reply_expiry_s: int = Field(
        60,
        ge=1,
        le=0xFFFFFFFF,
        description="MQTT 5 message expiry of command replies: a reply nobody collected in this long is dropped",
    )
    refused_retry_max_s: float = Field(
        60.0, gt=0, description="longest wait before a result the broker refused (PUBACK failure) is sent again"
    )
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between MQTT keep-alive pings")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    client_id: str | None = Field(None, description="default edge-agent-<station.id>")
    stats_interval_s: float = Field(10.0, gt=0, description="seconds between stats messages")
    inflight: int = Field(200, ge=1, le=10000, description="results published but not yet acknowledged, at most")

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        # `protocol = 5` (a TOML integer) means the same as "5".
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("topic_prefix")
    @classmethod
    def _no_wildcards(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "#+") or value.endswith("/")):
            raise ValueError("must be a topic without wildcards or a trailing '/'")
        return value


class SpoolSettings(Section):
    path: Path = Field(Path("/var/lib/edge-agent/spool.db"), description="SQLite file of undelivered results")
    max_items: int = Field(100_000, ge=10, description="oldest results are dropped (and counted) beyond this")
    sync: Literal["full", "normal"] = Field(
        "full", description="full: every result survives a power cut; normal: faster, may lose the last ones"
    )
    unspooled_max: int = Field(
        1000,
        ge=1,
        description="results that could not be written to the spool (disk full) wait in memory, at most this "
        "many; beyond it the oldest are dropped and counted",
    )
    drain_timeout_s: float = Field(
        10.0, ge=0, description="at stop, wait this long for the broker to take what is spooled (the rest stays)"
    )


class ArchiveSettings(Section):
    path: Path = Field(Path("/var/lib/edge-agent/archive"), description="folder for archived frames (JPEG)")
    save: Literal["fail", "all", "none"] = Field("fail", description="which frames to keep")
    max_mb: float = Field(1024.0, gt=0, description="oldest archived frames are deleted beyond this size")
    jpeg_quality: int = Field(90, ge=10, le=100, description="JPEG quality of archived frames")
    url_base: str | None = Field(
        None,
        description="URL under which MES fetches archived frames (results carry image_url); default "
        "http://<health.bind>:<health.port>/archive (the box's host name when bound to all addresses)",
    )


class HealthSettings(Section):
    port: int = Field(8080, ge=0, le=65535, description="/healthz and /metrics port; 0 disables")
    bind: str = Field("127.0.0.1", description="address to listen on; localhost unless you need it remotely")


class AgentSettings(BaseSettings):
    """Everything the daemon reads, validated once at start and passed down."""

    model_config = SettingsConfigDict(env_prefix="EDGE_AGENT_", env_nested_delimiter="__", extra="forbid")

    station: StationSettings = Field(default_factory=StationSettings)
    camera: CameraSettings = Field(default_factory=CameraSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    spool: SpoolSettings = Field(default_factory=SpoolSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (systemd drop-ins, containers).
        return (env_settings, init_settings)

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.topic_prefix or f"edge-agent/{self.station.id}"


ENV_PREFIX = "EDGE_AGENT_"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings: which key, where its value came from, what to do."""

    key: str
    origin: str  # the settings file, or the environment variable that set the value
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.key}: {self.message}" if self.key else f"{self.origin}: {self.message}"


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


def origin_of(loc: tuple[Any, ...], file_origin: str, environ: dict[str, str]) -> str:
    """The environment variable that set this value, else the file (the environment wins over the file)."""
    if len(loc) >= 2:
        name = env_name(str(loc[0]), str(loc[1]))
        if any(k.upper() == name for k in environ):
            return f"environment variable {name}"
    return file_origin


def nearest_key(loc: tuple[Any, ...]) -> str:
    """' (did you mean ...?)' for a misspelt section or key, else ''."""
    if len(loc) == 1 or str(loc[0]) not in AgentSettings.model_fields:
        known = list(AgentSettings.model_fields)
        loc = loc[:1]
    elif len(loc) == 2 and str(loc[0]) in AgentSettings.model_fields:
        section = AgentSettings.model_fields[str(loc[0])].annotation
        known = list(getattr(section, "model_fields", {}))
    else:
        return ""
    match = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def problems_of(error: ValidationError, file_origin: str, environ: dict[str, str]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        origin = origin_of(loc, file_origin, environ)
        if item["type"] == "extra_forbidden":
            problems.append(Problem(key, origin, f"unknown key{nearest_key(loc)}"))
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        if "input" in item and not isinstance(item["input"], dict):
            message += f" (got {item['input']!r})"
        problems.append(Problem(key, origin, message))
    return problems


def unknown_environment(environ: dict[str, str]) -> list[Problem]:
    """EDGE_AGENT_* variables that name no setting: pydantic-settings would ignore them silently."""
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        section, _, key = upper[len(ENV_PREFIX) :].lower().partition("__")
        loc: tuple[str, ...] = (section, key) if key else (section,)
        fields = AgentSettings.model_fields
        known = section in fields and (not key or key in getattr(fields[section].annotation, "model_fields", {}))
        if not known:
            dotted = ".".join(loc)
            problems.append(Problem(dotted, f"environment variable {name}", f"no such setting{nearest_key(loc)}"))
    return problems


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: settings file not found") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e


def check_settings(
    path: Path | None, environ: dict[str, str] | None = None
) -> tuple[AgentSettings | None, list[Problem], AgentSettings | None]:
    """Read the TOML file (if any), apply EDGE_AGENT_* overrides, validate: every problem, not the first.

    Returns (settings, problems, best effort): settings only when there is no problem; the best effort is
    the same input with the bad keys left out (defaults in their place), so the checks that follow can run
    on everything else in the same pass.
    """
    env = dict(os.environ if environ is None else environ)
    data = read_toml(path) if path is not None else {}
    origin = str(path) if path is not None else "settings"
    problems = unknown_environment(env)
    bad_env = {p.origin.removeprefix("environment variable ") for p in problems}
    settings, errors = _validate(data, {k: v for k, v in env.items() if k not in bad_env})
    if errors is not None:
        problems += problems_of(errors, origin, env)
    best = settings
    if errors is not None:
        for item in errors.errors():
            loc = tuple(str(p) for p in item["loc"])
            _drop(data, loc)
            if len(loc) >= 2:
                env = {k: v for k, v in env.items() if k.upper() != env_name(loc[0], loc[1])}
        best, _ = _validate(data, {k: v for k, v in env.items() if k not in bad_env})
    return (settings if not problems else None), problems, best


def _validate(data: dict[str, Any], env: dict[str, str]) -> tuple[AgentSettings | None, ValidationError | None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return AgentSettings(**data), None
    except ValidationError as e:
        return None, e
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _drop(data: dict[str, Any], loc: tuple[str, ...]) -> None:
    node: Any = data
    for part in loc[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(loc[-1], None)
    if len(loc) > 2 and isinstance(data.get(loc[0]), dict):
        data[loc[0]].pop(loc[1], None)  # a nested value (a list item): leave the whole key out


def load_settings(path: Path | None, environ: dict[str, str] | None = None) -> AgentSettings:
    """Valid settings, or a ConfigError listing every problem (one per line) with where each came from."""
    settings, problems, _ = check_settings(path, environ)
    if problems:
        raise ConfigError(describe(problems))
    assert settings is not None
    return settings


def describe(problems: list[Problem]) -> str:
    if len(problems) == 1:
        return str(problems[0])
    return f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


def read_password(settings: MqttSettings, environ: dict[str, str] | None = None) -> str | None:
    """The MQTT password from password_file, else from systemd's credentials directory."""
    env = os.environ if environ is None else environ
    candidates = [settings.password_file] if settings.password_file else []
    if "CREDENTIALS_DIRECTORY" in env:
        candidates.append(Path(env["CREDENTIALS_DIRECTORY"]) / "mqtt-password")
    for path in candidates:
        if path is not None and path.is_file():
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(f"mqtt.password_file {path}: cannot read ({e.strerror})") from e
    if settings.password_file is not None:
        raise ConfigError(f"mqtt.password_file {settings.password_file}: file not found")
    return None
