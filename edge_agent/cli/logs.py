"""Log output for a terminal, for journald (priority prefixes) and for log shippers (one JSON object a line)."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TextIO

# sd-daemon(3) priorities: journald reads "<N>" at the start of a line as the entry's priority.
JOURNAL_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
LOG_FORMATS = ("auto", "text", "journald", "json")


class JournaldFormatter(logging.Formatter):
    """`<3>edge_agent.publish.mqtt_link: message`: journald adds time and unit; `journalctl -p err` filters."""

    def format(self, record: logging.LogRecord) -> str:
        priority = JOURNAL_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        text = f"{record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        # Every line of a traceback gets the prefix, or journald files the continuation lines as INFO.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def under_journald(stream: TextIO) -> bool:
    """systemd sets JOURNAL_STREAM to the device:inode of the stream it connected to the journal."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


def configure_logging(level: int, log_format: str = "auto", stream: TextIO | None = None) -> str:
    """Install one handler on the root logger; returns the format chosen."""
    stream = stream or sys.stderr
    if log_format == "auto":
        log_format = "journald" if under_journald(stream) else "text"
    formatter: logging.Formatter
    if log_format == "journald":
        formatter = JournaldFormatter()
    elif log_format == "json":
        formatter = JsonFormatter()
        formatter.converter = __import__("time").gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return log_format
