"""Errors of the command-line programs (``train.main``, ``train.evaluate``):
one line each, never a traceback, for every expected fault.

Exit status 2: a usage error (a bad flag, an unknown config field, a config
file that cannot be loaded, a bad config value or workdir; nothing has been
created or compiled). Exit status 1: a run error (no usable checkpoint, the
dataset not prepared, a non-finite training step, a file-system error).
``--verbose`` or the environment variable ``SNNJAX_TRACEBACK=1`` shows the
traceback instead. Unexpected exceptions (bugs) keep their traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import app, flags

from train import checkpointing, input_pipeline, train

TRACEBACK_ENV = "SNNJAX_TRACEBACK"
USAGE_ERRORS = (train.ConfigError, app.UsageError, flags.Error)
RUN_ERRORS = (
    checkpointing.CheckpointError,
    input_pipeline.DataError,
    train.NonFiniteError,
    OSError,
    ValueError,
)

flags.DEFINE_bool("verbose", False, f"Show the traceback of errors (also: {TRACEBACK_ENV}=1).")


def tracebacks_wanted(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    if flags.FLAGS.is_parsed():
        return flags.FLAGS.verbose
    return any(a in ("--verbose", "-verbose", "--verbose=true") for a in argv)


def fail(error: BaseException, code: int) -> None:
    """Prints ``error: <message>`` to stderr and exits with ``code``."""
    message = str(error).strip() or type(error).__name__
    if isinstance(error, checkpointing.CheckpointError):
        message = f"CheckpointError: {message}"
    elif isinstance(error, input_pipeline.DataError):
        pass
    elif isinstance(error, OSError) and error.strerror:
        message = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    elif not isinstance(error, (train.ConfigError, train.NonFiniteError, app.UsageError)):
        message = f"{type(error).__name__}: {message.splitlines()[0]}"
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every error as one line (status 2); loads
    the ``--config`` file, if the program has one, so that a missing file or
    an unknown field is reported before anything else happens."""
    try:
        rest = flags.FLAGS(argv)
        if "config" in flags.FLAGS and flags.FLAGS.config is not None:
            flags.FLAGS.config.to_dict()  # A file that failed to load raises here.
    except Exception as e:  # noqa: BLE001  (flags and config files raise anything)
        if tracebacks_wanted(argv):
            raise
        fail(_usage_error(e, argv), 2)
    return rest


def _usage_error(error: Exception, argv: list[str]) -> app.UsageError:
    text = str(error).strip()
    if isinstance(error, (AttributeError, KeyError)):
        field = text.strip("'\"")
        args = [a.split("=")[0] for a in argv if a.startswith("--config.")]
        given = [a for a in args if a.split(".")[-1] == field] or args
        return app.UsageError(
            f"unknown config field {field!r}" + (f" ({given[0]})" if given else "")
        )
    if "config file" in text or "Failed loading config" in text:
        detail = [line.strip() for line in text.splitlines() if line.strip()][-1]
        return app.UsageError(f"cannot load --config: {detail}")
    return app.UsageError(" ".join(text.split()) or type(error).__name__)


def run(main: Callable[[list[str]], None]) -> None:
    """``absl.app.run(main)`` with one-line errors and exit statuses 2 / 1."""

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except USAGE_ERRORS as e:
            if tracebacks_wanted():
                raise
            fail(e, 2)
        except RUN_ERRORS as e:
            if tracebacks_wanted():
                raise
            fail(e, 1)

    app.run(guarded, flags_parser=parse_flags)
