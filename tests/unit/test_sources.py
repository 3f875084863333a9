import socket
import time

import cv2
import numpy as np
import pytest

from edge_agent.capture.sources import FolderSource, StreamOptions, VideoCaptureSource, open_source
from edge_agent.errors import CaptureError, ConfigError


def write_video(path, frames=12, size=(48, 32)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), i * 20 % 255, np.uint8)
        writer.write(image)
    writer.release()
    return path


def test_video_file_is_decoded_frame_by_frame(tmp_path):
    source = open_source(str(write_video(tmp_path / "line.avi")))
    assert isinstance(source, VideoCaptureSource)
    assert not source.live
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (32, 48, 3)
    assert frames[0].name == "line.avi"
    source.close()


def test_video_file_loops(tmp_path):
    source = open_source(str(write_video(tmp_path / "line.avi", frames=3)), loop=True)
    indexes = [source.read().index for _ in range(7)]
    assert indexes == list(range(7))


def test_folder_in_sorted_order_with_error_frames(tmp_path):
    for name in ("b.png", "a.png", "c.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "d.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(f"dir:{tmp_path}")
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert [f.name for f in frames] == ["a.png", "b.png", "c.jpg", "d.png"]
    assert frames[3].image is None
    assert "d.png" in frames[3].error


def test_missing_sources_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="folder not found"):
        open_source(f"dir:{tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match="no such file"):
        open_source(str(tmp_path / "nope.avi"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        FolderSource.folder(tmp_path / "empty", loop=False)


def test_silent_rtsp_server_times_out_instead_of_hanging():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(CaptureError, match="cannot open"):
        open_source(f"rtsp://127.0.0.1:{port}/x", options=StreamOptions(open_timeout_s=1, read_timeout_s=1))
    assert time.monotonic() - started < 15
    server.close()


def png(path, value=100):
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def names(source, count):
    return [source.read().name for _ in range(count)]


def test_folder_skips_what_was_inspected_before_and_says_which_files_to_remember(tmp_path):
    for i in range(4):
        png(tmp_path / f"{i}.png")
    source = open_source(f"dir:{tmp_path}", done={"0.png", "2.png"})
    first = source.read()
    assert first.name == "1.png"
    assert first.key == (f"dir:{tmp_path}", "1.png")
    assert source.read().name == "3.png"
    assert source.read() is None


def test_a_looping_folder_remembers_nothing(tmp_path):
    png(tmp_path / "a.png")
    source = open_source(f"dir:{tmp_path}", loop=True)
    frames = [source.read() for _ in range(3)]
    assert [f.name for f in frames] == ["a.png"] * 3
    assert all(f.key is None for f in frames)


def test_watched_folder_reads_new_files_once_and_only_when_complete(tmp_path):
    from edge_agent.capture.sources import SourceIdle

    png(tmp_path / "old.png")
    source = open_source(f"dir:{tmp_path}", watch=True, done={"old.png"}, poll_s=0.01)
    with pytest.raises(SourceIdle):
        source.read()
    png(tmp_path / "new.png")
    with pytest.raises(SourceIdle):
        source.read()  # first sighting: the file might still be being written
    assert source.read().name == "new.png"  # unchanged at the next listing: complete
    with pytest.raises(SourceIdle):
        source.read()  # read once, never again
    (tmp_path / "growing.png").write_bytes(b"\x89PNG")
    with pytest.raises(SourceIdle):
        source.read()
    png(tmp_path / "growing.png")  # the writer finished: size changed since the last listing
    with pytest.raises(SourceIdle):
        source.read()
    assert source.read().name == "growing.png"


def test_an_empty_watched_folder_is_fine(tmp_path):
    from edge_agent.capture.sources import SourceIdle

    source = open_source(f"dir:{tmp_path}", watch=True, poll_s=0.01)
    with pytest.raises(SourceIdle):
        source.read()
