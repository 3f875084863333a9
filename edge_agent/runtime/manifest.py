"""The bundle manifest (docs/contracts.md §3) as a pydantic model: the schema the agent checks before use."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


class InputSpec(BaseModel):
    """How a frame becomes the network input."""

    model_config = ConfigDict(extra="allow")

    size: tuple[int, int] = Field(description="network input [height, width] in pixels")
    color: Literal["RGB", "BGR"] = Field("RGB", description="channel order the network expects")
    mean: tuple[float, float, float] = Field(description="per-channel mean on the 0..1 scale")
    std: tuple[float, float, float] = Field(description="per-channel std on the 0..1 scale")
    resize: Literal["stretch", "center_crop"] = Field(
        "stretch", description="stretch to size, or resize the short side and crop the centre"
    )


class FileEntry(BaseModel):
    sha256: str
    bytes: int


class ArchInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    arch: str
    params: int
    stem_stride: int | None = Field(
        None, description="stride of the first convolution: 1 (full-resolution stem) or 2 (torchvision's)"
    )


class EngineEntry(BaseModel):
    """A TensorRT engine built on (and only valid for) one device and TensorRT version."""

    file: str
    trt_version: str
    gpu: str
    precision: Literal["fp16", "int8", "fp32"]
    max_batch: int


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    created: str
    classes: list[str] = Field(min_length=2)
    good_class: str
    input: InputSpec
    threshold: float = Field(ge=0.0, le=1.0, description="fail when 1 - p(good) >= threshold")
    files: dict[str, FileEntry]
    model_file: str = Field("model.onnx", description="the ONNX file the CPU runtime loads")
    metrics: dict[str, Any] = Field(default_factory=dict)
    teacher: ArchInfo | None = None
    student: ArchInfo
    trainer: dict[str, Any] = Field(default_factory=dict)
    engines: list[EngineEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_consistency(self) -> Manifest:
        if self.good_class not in self.classes:
            raise ValueError(f"good_class {self.good_class!r} is not one of classes {self.classes}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes contain duplicates")
        if self.model_file not in self.files:
            raise ValueError(f"model_file {self.model_file!r} is not listed in files")
        for engine in self.engines:
            if engine.file not in self.files:
                raise ValueError(f"engine {engine.file!r} is not listed in files")
        return self

    @property
    def good_index(self) -> int:
        return self.classes.index(self.good_class)
