"""Log lines: JSON fields, ids passed as `extra`, exceptions without their text (JSON and text)."""

from __future__ import annotations

import io
import json
import logging
import sys

from thumpflow.cli.logs import JsonFormatter, TextFormatter, configure


def _record_with_exception() -> logging.LogRecord:
    logger = logging.getLogger("thumpflow.test.logs")
    try:
        raise ValueError("patient Quetzalcoatlova ZQX9182736")
    except ValueError:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "channel %s: could not commit",
            ("adt",),
            exc_info=sys.exc_info(),
            extra={"channel": "adt", "peer": "10.0.0.9:5000"},
        )
    return record


def test_a_record_is_one_json_line_with_ids_and_no_exception_text() -> None:
    record = _record_with_exception()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "thumpflow.test.logs"
    assert entry["message"] == "channel adt: could not commit"
    assert (entry["channel"], entry["peer"]) == ("adt", "10.0.0.9:5000")
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert entry["exc_type"] == "ValueError"
    assert entry["exc_where"][-1].startswith("test_logs.py:")
    assert "Quetzalcoatlova" not in line and "ZQX9182736" not in line


def test_auto_writes_json_when_not_on_a_terminal() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure("INFO", "auto", stream)
        logging.getLogger("thumpflow.test.auto").info("hello %d", 3)
        logging.getLogger("thumpflow.test.auto").debug("not at INFO")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "hello 3"


def test_text_lines_name_the_exception_and_its_frames_not_its_text() -> None:
    text = TextFormatter().format(_record_with_exception())
    assert "channel adt: could not commit" in text
    assert "ValueError at test_logs.py:" in text
    assert "Quetzalcoatlova" not in text and "ZQX9182736" not in text
