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


def require(module: str, extra: str, purpose: str) -> None:
    """Raise MissingDependencyError with an install hint when `module` is absent."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        found = False
    if not found:
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module}': pip install 'edge-agent[{extra}]'"
        )
