"""The ``difflogic`` command line: ``difflogic {train,teacher,eval,info,export,verify,synth} ...``.

Each subcommand lives in a module (``difflogic/commands/<name>.py``) that exposes
``add_parser(subparsers)``, which registers its arguments and sets ``func=run``.  The table
:data:`COMMANDS` names each command's module and its one-line help; only the module of the
command being run is imported, so ``difflogic --help`` lists the commands without importing
torch, and adding a command is one line there.  A command module that fails to import only
disables its own subcommand, with the reason shown when it is invoked.

Errors caused by bad input (``ValueError``, ``TypeError``, ``OSError``: a missing dataset, a
corrupt checkpoint, an unknown model) print one line to stderr and exit with status 2;
environment and internal errors (``RuntimeError``, ``ImportError``) print one line and exit
with status 1; ``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module defining add_parser/run, one-line help shown by `difflogic --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("difflogic.commands.train",
              "train a logic gate network (writes RUN/model.pt, last.pt, metrics, curves)"),
    "teacher": ("difflogic.commands.teacher",
                "train a CNN teacher; write its class scores for `train --teacher`"),
    "eval": ("difflogic.commands.eval",
             "test accuracy (relaxed and hard) and gate count of a checkpoint"),
    "info": ("difflogic.commands.info",
             "architecture, gate counts and gate-type histogram of a checkpoint"),
    "export": ("difflogic.commands.export", "compile a checkpoint to C or Verilog"),
    "verify": ("difflogic.commands.verify",
               "check torch == IR simulator == optimized IR == C/Verilog on class counts"),
    "synth": ("difflogic.commands.synth",
              "synthesize a Verilog export with yosys (LUT count, FFs, depth)"),
    "bench": ("difflogic.commands.bench", "images/s and latency on every back end available here"),
}
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
    every subcommand and takes its one-line help from :data:`COMMANDS`, so the listing is the
    same whether or not the command's module was imported."""

    def __init__(self, action, common):
        self._action, self._common = action, common

    def add_parser(self, name, **kwargs):
        kwargs["parents"] = [*kwargs.get("parents", []), self._common]
        kwargs.setdefault("formatter_class", FlagHelpFormatter)
        if name in COMMANDS:
            kwargs["help"] = COMMANDS[name][1]
        return self._action.add_parser(name, **kwargs)

    def __getattr__(self, attr):
        return getattr(self._action, attr)


def _unavailable(name: str, reason: str):
    def run(args):
        raise RuntimeError(f"the {name!r} command is not available in this installation: {reason}")
    return run


def _add_command(sub: _Subparsers, name: str, load: bool) -> None:
    """Register ``name``: its real parser when ``load`` (importing its module), else a stub
    that only appears in the command list."""
    if not load:
        sub.add_parser(name, add_help=False)
        return
    try:
        importlib.import_module(COMMANDS[name][0]).add_parser(sub)
    except Exception as e:  # noqa: BLE001 - one broken command must not break the others
        reason = f"{type(e).__name__}: {e}"
        action = sub._action
        action.choices.pop(name, None)  # registered, then failed: replace it
        action._choices_actions[:] = [a for a in action._choices_actions if a.dest != name]
        # no option prefix: whatever follows (--help included) is taken, and the reason shown
        p = action.add_parser(name, help=COMMANDS[name][1], add_help=False, prefix_chars="\0")
        p.add_argument("rest", nargs="*")
        p.set_defaults(func=_unavailable(name, reason))


def build_parser(load=None) -> argparse.ArgumentParser:
    """The full argument parser; ``load`` names the commands whose modules are imported to
    register their options (default: all of them; the others are listed in the help only)."""
    from . import __version__

    load = set(COMMANDS) if load is None else set(load)
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
    sub = _Subparsers(parser.add_subparsers(dest="command", metavar="COMMAND"), common)
    for name in COMMANDS:
        _add_command(sub, name, name in load)
    return parser


def _command_in(argv) -> str | None:
    """The subcommand named in ``argv``: its first word that is not an option (the top-level
    options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _one_line(e: BaseException) -> str:
    return str(e).strip().replace("\n", " ") or type(e).__name__


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    parser = build_parser(load=[command] if command else [])
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
        msg = _one_line(e)
        if isinstance(e, OSError) and e.filename and str(e.filename) not in msg:
            msg = f"{e.filename}: {msg}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except (RuntimeError, ImportError) as e:  # environment / internal: one line, exit 1
        if args.debug:
            raise
        print(f"{prog}: error: {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return int(result or 0)


def entry() -> None:  # pragma: no cover - thin wrapper for console scripts
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
