"""Start-up and reload paths of the daemon that need no broker: engine-build fall-back, signal handlers."""

import signal
import threading

import pytest

from edge_agent.agent import model_loader
from edge_agent.errors import ModelBundleError
from edge_agent.settings import ModelSettings


def gpu_whose_engine_build_fails(monkeypatch, message: str) -> None:
    """A box with a GPU and no engine for it, where the build raises a foreign exception type."""
    monkeypatch.setattr(model_loader, "device_identity", lambda: ("10.0.0", "test-gpu"))
    monkeypatch.setattr(model_loader, "matching_engine", lambda bundle: None)

    def exploding_build(*_args, **_kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr("edge_agent.runtime.tools.engine_build.build_engine", exploding_build)


def test_an_engine_build_that_fails_with_a_foreign_error_falls_back_to_onnxruntime(tiny_bundle, monkeypatch):
    """TensorRT and pycuda raise their own exception types: with backend = auto none may stop the line."""
    gpu_whose_engine_build_fails(monkeypatch, "pycuda._driver.LogicError: cuInit failed")
    loaded = model_loader.open_inspector(ModelSettings(path=tiny_bundle, backend="auto"), tiny_bundle)
    assert loaded.inspector.backend.name == "onnxruntime"
    assert len(loaded.notes) == 1
    assert "engine build failed" in loaded.notes[0]
    assert "cuInit failed" in loaded.notes[0]
    loaded.inspector.close()


def test_with_backend_tensorrt_a_failed_build_is_an_error(tiny_bundle, monkeypatch):
    gpu_whose_engine_build_fails(monkeypatch, "out of GPU memory")
    with pytest.raises(RuntimeError, match="out of GPU memory"):
        model_loader.open_inspector(ModelSettings(path=tiny_bundle, backend="tensorrt"), tiny_bundle)


def test_signal_handlers_are_installed_before_the_slow_start(monkeypatch):
    from edge_agent.agent import daemon

    seen = {}

    def start(self):
        seen["term"] = signal.getsignal(signal.SIGTERM)
        seen["hup"] = signal.getsignal(signal.SIGHUP)
        raise SystemExit(0)

    monkeypatch.setattr(daemon.Agent, "start", start)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        with pytest.raises(SystemExit):
            daemon.run_daemon(daemon.AgentSettings())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert seen["term"] not in (signal.SIG_DFL, signal.SIG_IGN)
    assert seen["hup"] not in (signal.SIG_DFL, signal.SIG_IGN)


def test_a_reload_runs_on_the_reloader_and_answers_when_done():
    from edge_agent.agent.reloader import Reloader

    stop = threading.Event()
    ran_on = []
    replies = []

    def reload(path):
        ran_on.append(threading.current_thread().name)
        if path is None:
            raise ModelBundleError("bad bundle")
        return {"path": str(path)}

    reloader = Reloader(reload, stop)
    reloader.start()
    done = threading.Event()
    reloader.request(None, lambda detail, error: (replies.append((detail, error)), done.set()))
    assert done.wait(5)
    done.clear()
    from pathlib import Path

    reloader.request(Path("b"), lambda detail, error: (replies.append((detail, error)), done.set()))
    assert done.wait(5)
    stop.set()
    reloader.join(5)
    assert ran_on == ["reloader", "reloader"]
    assert replies == [(None, "bad bundle"), ({"path": "b"}, None)]
    assert not reloader.died
