"""The one command-line convention of every ``python -m train.*`` and
``python -m benchmarks.*`` program: absl flags, run by :func:`run`.

An entry point defines its flags in a function that only its ``__main__``
block calls (importing the module defines no flag), and hands it to
:func:`run` with its ``main``::

    def define_flags() -> None:
        flags.DEFINE_string("workdir", None, "Workdir of a training run.", required=True)

    def main(argv: list[str]) -> None:
        cli.no_arguments(argv)
        print(do_the_work(flags.FLAGS.workdir))

    if __name__ == "__main__":
        cli.run(main, define_flags)

Errors are one line on stderr (``error: <message>``), never a traceback, for
every expected fault. Exit status 2: a usage error (a bad or unknown flag, a
missing required flag, an unexpected argument, an unknown config field, a
config file that cannot be loaded, a bad config value or workdir; nothing has
been created or compiled). Exit status 1: a run error (no usable checkpoint,
the dataset not prepared, a non-finite training step, a file-system error).
``--verbose`` or the environment variable ``SNNJAX_TRACEBACK=1`` shows the
traceback instead. Unexpected exceptions (bugs) keep their traceback.
``--help`` lists the program's flags and exits 0.

This module imports only absl: the training program's error types are looked
up in the modules already imported (an error of a module that was never
imported cannot have been raised), so the benchmarks and the device scripts
use it without JAX's or the data pipeline's imports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from absl import app, flags

TRACEBACK_ENV = "SNNJAX_TRACEBACK"
# (module, name) of the training program's error types, wherever they live.
USAGE_ERROR_TYPES = (("train.train", "ConfigError"), ("train.schema", "ConfigError"))
RUN_ERROR_TYPES = (
    ("train.checkpointing", "CheckpointError"),
    ("train.input_pipeline", "DataError"),
    ("train.train", "NonFiniteError"),
    ("train.steps", "NonFiniteError"),
)
HELP_FLAGS = frozenset({"help", "?", "helpshort", "helpfull", "helpxml"})


def _loaded(names: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    found = []
    for module, name in names:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def usage_errors() -> tuple[type, ...]:
    return (app.UsageError, flags.Error) + _loaded(USAGE_ERROR_TYPES)


def run_errors() -> tuple[type, ...]:
    return _loaded(RUN_ERROR_TYPES) + (OSError, ValueError)


def tracebacks_wanted(argv: list[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    if flags.FLAGS.is_parsed() and "verbose" in flags.FLAGS:
        return flags.FLAGS.verbose
    return any(a in ("--verbose", "-verbose", "--verbose=true") for a in argv)


def fail(error: BaseException, code: int) -> None:
    """Prints ``error: <message>`` to stderr and exits with ``code``."""
    message = str(error).strip() or type(error).__name__
    own = _loaded(USAGE_ERROR_TYPES + RUN_ERROR_TYPES)
    if type(error).__name__ == "CheckpointError" and isinstance(error, own):
        message = f"CheckpointError: {message}"
    elif isinstance(error, own + (app.UsageError,)):
        pass
    elif isinstance(error, OSError) and error.strerror:
        message = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        message = f"{type(error).__name__}: {message.splitlines()[0]}"
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def no_arguments(argv: list[str]) -> None:
    """A usage error if anything but flags was given."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def _help_asked(argv: list[str]) -> bool:
    for arg in argv[1:]:
        if arg == "--":
            return False
        if arg.startswith("-") and arg.lstrip("-").split("=")[0] in HELP_FLAGS:
            return True
    return False


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every error as one line (status 2) and
    ``--help`` exiting 0; loads the ``--config`` file, if the program has one,
    so that a missing file or an unknown field is reported before anything
    else happens."""
    try:
        rest = flags.FLAGS(argv)
        if "config" in flags.FLAGS and flags.FLAGS.config is not None:
            flags.FLAGS.config.to_dict()  # A file that failed to load raises here.
    except SystemExit:
        if _help_asked(argv):  # absl's help flags print the help and exit 1
            sys.exit(0)
        raise
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


def define_verbose() -> None:
    """``--verbose``, listed in ``--help`` with the program's own flags."""
    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool(
            "verbose", False, f"Show the traceback of errors (also: {TRACEBACK_ENV}=1)."
        )
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS["verbose"])


def run(
    main: Callable[[list[str]], object], define_flags: Callable[[], None] | None = None
) -> None:
    """Defines the program's flags (``define_flags()``) and ``--verbose``, then
    ``absl.app.run(main)`` with one-line errors and exit statuses 2 / 1."""
    before = set(flags.FLAGS)
    if define_flags is not None:
        define_flags()
    define_verbose()
    for name in set(flags.FLAGS) - before:  # --help lists them, wherever defined
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except usage_errors() as e:
            if tracebacks_wanted():
                raise
            fail(e, 2)
        except run_errors() as e:
            if tracebacks_wanted():
                raise
            fail(e, 1)

    app.run(guarded, flags_parser=parse_flags)
