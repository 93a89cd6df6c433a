"""The terminal of the commands that load TensorFlow (train, export, eval, explore, listener
train): snaresynth's own lines and the progress bar, TensorFlow's at debug level.

TensorFlow's C++ lines before absl::InitializeLog (oneDNN, printed twice) ignore
``TF_CPP_MIN_LOG_LEVEL`` (TF 2.21), so ``import_quietly`` catches fd 2 during the import; its
Python logger and absl's (``Sharding callback duration`` at every checkpoint) are demoted. All
of it reaches the log at debug level, shown with -v.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import tempfile
from types import ModuleType


class _Demote(logging.Filter):
    """A library's info and warnings at debug level, so shown with -v only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= logging.getLogger().getEffectiveLevel()


def at_debug(*names: str) -> None:
    """These libraries' loggers through the root's handler only (no handler of their own: no
    line twice), their info and warnings at debug level."""
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        if not any(isinstance(f, _Demote) for f in logger.filters):
            logger.addFilter(_Demote())
        logger.propagate = True


def import_quietly(module: str) -> ModuleType:
    """Import ``module`` with what native code writes to fd 2 meanwhile logged at debug level."""
    if module in sys.modules:
        return sys.modules[module]
    for handler in logging.getLogger().handlers:
        handler.flush()  # our own lines written before fd 2 is taken
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            return importlib.import_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            native = logging.getLogger(f"{module}.native")
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip():
                    native.debug("%s", line)


def quiet_tensorflow(required: bool = True) -> ModuleType | None:
    """TensorFlow imported with its start-up lines and its loggers at debug level.

    ``required=False``: None where it is not installed (a command that can run on the numpy
    inference form alone, e.g. explore in a serve-only install).
    """
    if not required and "tensorflow" not in sys.modules \
            and importlib.util.find_spec("tensorflow") is None:
        return None
    tf = import_quietly("tensorflow")
    tf.get_logger()  # made now, so that its own handler (if any) goes in at_debug
    at_debug("tensorflow", "absl")  # e.g. absl's "Sharding callback duration" per save
    return tf
