"""A small MJPEG-over-HTTP camera (multipart/x-mixed-replace) that can be unplugged and plugged back in."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np


def draw_number(image: np.ndarray, number: int) -> None:
    """16 bits as black/white 8×8 blocks in the top two rows of blocks (they survive JPEG)."""
    for bit in range(16):
        row, col = divmod(bit, 8)
        image[row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = 255 if (number >> bit) & 1 else 0


def frame_number(image: np.ndarray) -> int:
    number = 0
    for bit in range(16):
        row, col = divmod(bit, 8)
        if image[row * 8 + 2 : row * 8 + 6, col * 8 + 2 : col * 8 + 6].mean() > 127:
            number |= 1 << bit
    return number


class MjpegCamera:
    def __init__(self, port: int, fps: float = 20.0) -> None:
        self.port = port
        self.fps = fps
        self._server: ThreadingHTTPServer | None = None
        self._live = threading.Event()
        self.counter = 0  # frames sent so far; each frame shows its number (see frame_number)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                rng = np.random.default_rng(0)
                try:
                    while camera._live.is_set():
                        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                        draw_number(image, camera.counter)
                        camera.counter += 1
                        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                            + str(len(jpeg)).encode()
                            + b"\r\n\r\n"
                            + jpeg
                            + b"\r\n"
                        )
                        time.sleep(1.0 / camera.fps)
                except OSError:
                    return

            def log_message(self, *args: object) -> None:
                return

        return Handler

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    def plug_in(self) -> None:
        self._live.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def unplug(self) -> None:
        self._live.clear()  # ends the streams being served
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
