"""The ``difflogic`` command line: ``difflogic {train,teacher,eval,info,export,verify,synth} ...``.

Each subcommand lives in ``difflogic/commands/<name>.py`` and exposes ``add_parser(subparsers)``
which registers its arguments and sets ``func=run``.  Command modules are imported one by
one and a module that fails to import (an optional back end not installed, a half-built
tree) only disables its own subcommand, with the reason shown when it is invoked.

Errors caused by bad input (``ValueError``, ``TypeError``, ``OSError``: a missing dataset, a
corrupt checkpoint, an unknown model) print one line to stderr and exit with status 2;
``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("train", "teacher", "eval", "info", "export", "verify", "synth")
EXIT_USAGE = 2


class FlagHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults only where they say something: not for on/off flags (``--no-optimize``
    would read "(default: True)", the value of the *destination*, not of the flag) and not
    for options whose default is "not given" (None)."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


class _Subparsers:
    """Proxy for argparse's subparsers action that adds the shared options (``--debug``) to
    every subcommand, including those defined by other modules."""

    def __init__(self, action, common):
        self._action, self._common = action, common

    def add_parser(self, name, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", []), self._common]
        kwargs.setdefault("formatter_class", FlagHelpFormatter)
        return self._action.add_parser(name, **kwargs)

    def __getattr__(self, attr):
        return getattr(self._action, attr)


def _unavailable(name: str, reason: str):
    def run(args):
        raise RuntimeError(f"the {name!r} command is not available in this installation: {reason}")
    return run


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
    parser = argparse.ArgumentParser(
        prog="difflogic",
        description="Train differentiable logic gate networks, inspect them, and compile them "
                    "to C and Verilog.")
    parser.add_argument("--version", action="version", version=f"difflogic {__version__}")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show full tracebacks on errors")
    action = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub = _Subparsers(action, common)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"difflogic.commands.{name}")
            module.add_parser(sub)
        except Exception as e:  # noqa: BLE001 - one broken command must not break the others
            reason = f"{type(e).__name__}: {e}"
            if name in action.choices:  # registered, then failed: replace it
                del action.choices[name]
            p = sub.add_parser(name, help="(unavailable here; run it to see why)", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=_unavailable(name, reason))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"difflogic {args.command}"
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as e:  # bad input: one line, exit 2
        if args.debug:
            raise
        msg = str(e).strip().replace("\n", " ") or type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
            msg = f"{e.filename}: {msg}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, ImportError) as e:  # environment / internal: one line, exit 1
        if args.debug:
            raise
        msg = str(e).strip().replace("\n", " ") or type(e).__name__
        print(f"{prog}: error: {msg} (run with --debug for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


def entry() -> None:  # pragma: no cover - thin wrapper for console scripts
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
