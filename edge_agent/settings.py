"""Daemon settings (docs: configuration.md): one TOML file, every key overridable as EDGE_AGENT_<SECTION>__<KEY>."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
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

    @model_validator(mode="after")
    def _watch_needs_a_folder(self) -> CameraSettings:
        if self.watch and not self.source.startswith("dir:"):
            raise ValueError("watch = true needs a dir: source")
        if self.watch and self.loop:
            raise ValueError("watch and loop exclude each other (a watched folder is never re-read)")
        return self


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
    refused_retry_max_s: float = Field(
        60.0, gt=0, description="longest wait before a result the broker refused (PUBACK failure) is sent again"
    )
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between MQTT keep-alive pings")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    client_id: str | None = Field(None, description="default edge-agent-<station.id>")
    stats_interval_s: float = Field(10.0, gt=0, description="seconds between stats messages")
    inflight: int = Field(200, ge=1, le=10000, description="results published but not yet acknowledged, at most")

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


def describe_error(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{origin}: unknown key '{key}'"
    return f"{origin}: '{key}': {first['msg']}" + (f" (got {first['input']!r})" if "input" in first else "")


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


def load_settings(path: Path | None, environ: dict[str, str] | None = None) -> AgentSettings:
    """Read the TOML file (if any), apply EDGE_AGENT_* overrides, validate; ConfigError names the key."""
    data = read_toml(path) if path is not None else {}
    origin = str(path) if path is not None else "settings"
    if environ is not None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        return AgentSettings(**data)
    except ValidationError as e:
        raise ConfigError(describe_error(e, origin)) from e
    finally:
        if environ is not None:
            os.environ.clear()
            os.environ.update(saved)


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
