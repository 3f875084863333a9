"""One error hierarchy: the CLI maps BadInput subclasses to exit 2 and one clear line."""


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""

    exit_code = 1


class BadInputError(EdgeAgentError):
    """The user gave us something we cannot use (exit code 2)."""

    exit_code = 2


class ConfigError(BadInputError):
    """A settings file or value is invalid."""


class DataError(BadInputError):
    """A data set is missing, empty or laid out in a way we do not understand."""


class ModelBundleError(BadInputError):
    """A model bundle is incomplete, tampered with or unusable."""


class MissingDependencyError(BadInputError):
    """An optional package is needed; the message names what to install."""


class BackendError(EdgeAgentError):
    """An inference backend failed at run time."""


class CaptureError(EdgeAgentError):
    """A frame source could not be opened or read."""


INSTALL_HINTS = {
    "trainer": "pip install '{dist}[trainer]' (from a checkout: pip install '.[trainer]')",
    "tensorrt": (
        "on a Jetson, TensorRT comes with JetPack (apt install python3-libnvinfer; make the venv with "
        "--system-site-packages to see it) and pycuda from pip install pycuda; on an x86 GPU box: "
        "pip install '{dist}[tensorrt]' (from a checkout: pip install '.[tensorrt]')"
    ),
    "": "pip install {dist} (from a checkout: pip install .)",
}


def install_hint(extra: str) -> str:
    from edge_agent import DISTRIBUTION

    return INSTALL_HINTS.get(extra, INSTALL_HINTS[""]).format(dist=DISTRIBUTION)


def require(module: str, extra: str, purpose: str) -> None:
    """Raise MissingDependencyError with an install hint when `module` is absent."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        found = False
    if not found:
        raise MissingDependencyError(f"{purpose} needs the Python package '{module}': {install_hint(extra)}")
