"""The back-end interface and the registry of back ends, by name.

A back end turns a compiled :class:`~difflogic.compiler.ir.Netlist` into something that runs
it: files to build (:meth:`Backend.emit`, what ``difflogic export`` calls) and a loaded
runner that computes class counts (:meth:`Backend.load` / :meth:`Backend.run`, what
``difflogic verify`` calls).  Each back end declares its own command-line options
(:attr:`Backend.cli_options`); the commands list the targets and their options from the
registry, so adding a back end is one :func:`register` call and no command changes.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

#: The commands a back-end option can belong to: "export" passes it to emit(), "verify" to load().
COMMANDS = ("export", "verify")


@dataclass(frozen=True)
class Option:
    """One command-line option of a back end: ``flag`` (``--pipeline``), the keyword of
    emit()/load() it becomes (``dest``), the commands taking it, and its argparse keywords
    (``help``, ``type``, ``metavar``, ``choices``, ``action``; its default is always "not
    given", so that an option of another target can be recognised and refused)."""
    flag: str
    dest: str
    commands: tuple = COMMANDS
    kwargs: dict = field(default_factory=dict)


class Runner(abc.ABC):
    """A netlist loaded into a back end: ``counts(bits)`` -> int64 class counts (N, k) of
    encoded input bits (N, *input_shape).  ``compile_seconds``: the time load() took to
    make it ready (code generation, compilation), which a benchmark keeps apart."""

    compile_seconds: float = 0.0

    @abc.abstractmethod
    def counts(self, bits, threads: int | None = None) -> np.ndarray:
        """Class counts int64 (N, k); ``threads``: CPU threads where the back end uses them."""


class Backend(abc.ABC):
    """A named back end.  Subclasses set ``name``, ``help`` and ``cli_options`` and implement
    :meth:`emit` and :meth:`load`; :meth:`check` and :meth:`unavailable_reason` let the
    commands fail before any work."""

    name: str = ""
    help: str = ""
    cli_options: tuple = ()

    def add_arguments(self, group, command: str = "export", skip=()) -> None:
        """Add this back end's options for ``command`` to an argparse group (except the
        flags in ``skip``, already added for another back end)."""
        for opt in self.options_for(command):
            if opt.flag not in skip:
                group.add_argument(opt.flag, dest=opt.dest, default=None, **opt.kwargs)

    def options(self, args, command: str = "export") -> dict:
        """The keyword arguments of emit() (command "export") or load() ("verify") that
        ``args`` gives; options left out are absent, so each back end's defaults apply."""
        return {o.dest: getattr(args, o.dest) for o in self.options_for(command)
                if getattr(args, o.dest, None) is not None}

    def options_for(self, command: str) -> list:
        """The :class:`Option` declarations of ``command``."""
        if command not in COMMANDS:
            raise ValueError(f"command must be one of {COMMANDS}, got {command!r}")
        return [o for o in self.cli_options if command in o.commands]

    def describe(self, **opts) -> str:
        """The target and the options it runs with, for messages: ``c``, ``x (a=1, b=2)``."""
        given = ", ".join(f"{k}={v}" for k, v in sorted(opts.items()) if v is not None)
        return f"{self.name} ({given})" if given else self.name

    def unavailable_reason(self, **opts) -> str | None:
        """Why load() cannot work on this machine (with the fix), or None."""
        return None

    def check(self, netlist, command: str = "export", **opts) -> None:
        """Fail before any work (a too large design, a missing tool) with a clear error.
        The default: refuse to load where :meth:`unavailable_reason` says so."""
        if command == "verify":
            why = self.unavailable_reason(**opts)
            if why is not None:
                raise RuntimeError(f"--target {self.name} cannot run here: {why}")

    @abc.abstractmethod
    def emit(self, netlist, out_dir, *, reference=None, **opts) -> dict:
        """Write the back end's files into ``out_dir`` (never deleting files it did not write).
        ``reference(x) -> counts`` gives golden class counts of raw inputs ``x`` (the PyTorch
        hard forward) for back ends that ship test vectors.  Returns ``{"files": {name: path},
        "info": {...} (JSON-able details), "summary": "one line for people" or ""}``."""

    @abc.abstractmethod
    def load(self, netlist, **opts) -> Runner:
        """Make the netlist runnable (generate, compile, load) and return its :class:`Runner`."""

    def run(self, netlist, bits, **opts) -> np.ndarray:
        """load() and counts(): the back end's class counts int64 (N, k) of encoded ``bits``."""
        return np.asarray(self.load(netlist, **opts).counts(bits), dtype=np.int64)


# --------------------------------------------------------------------------- registry
_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend, replace: bool = False) -> Backend:
    """Make ``backend`` available by its name (``--target NAME``); returns it."""
    if not isinstance(backend, Backend):
        raise TypeError(f"register() takes a Backend instance, got {type(backend).__name__}")
    if not backend.name or not backend.name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a back end's name must be letters, digits, '-' or '_', got {backend.name!r}")
    if backend.name in _REGISTRY and not replace:
        raise ValueError(f"a back end named {backend.name!r} is already registered; pass replace=True")
    _REGISTRY[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    """Remove the back end ``name`` (unknown names: the same error as :func:`get_backend`)."""
    get_backend(name)
    del _REGISTRY[name]


def backend_names() -> tuple:
    """The registered back ends' names, in registration order."""
    return tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The back end registered as ``name``; unknown names: a one-line error listing them."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown target {name!r}; available targets: "
                         f"{', '.join(backend_names())}") from None


# --------------------------------------------------------------------------- command line
def add_target_arguments(parser, command: str, default: str = "c") -> None:
    """``--target`` (choices: the registry) and one option group per back end, for ``command``.

    A flag several back ends declare is added once; it belongs to each of them."""
    names = backend_names()
    parser.add_argument("--target", choices=names, default=default,
                        help="back end: " + "; ".join(f"{n}: {get_backend(n).help}" for n in names))
    seen: set = set()
    for name in names:
        backend = get_backend(name)
        flags = {o.flag for o in backend.options_for(command)} - seen
        if flags:
            group = parser.add_argument_group(f"{name} options (--target {name} only)")
            backend.add_arguments(group, command, skip=seen)
            seen |= flags


def target_options(args, command: str) -> tuple:
    """(back end of ``args.target``, its emit()/load() keywords); options of other targets
    given on the command line are a one-line error naming the targets they belong to."""
    backend = get_backend(args.target)
    mine = {o.flag for o in backend.options_for(command)}
    owners: dict[str, list] = {}
    for name in backend_names():
        for o in get_backend(name).options_for(command):
            if o.flag not in mine and getattr(args, o.dest, None) is not None:
                owners.setdefault(o.flag, []).append(name)
    if owners:
        by_target: dict[str, list] = {}
        for flag, names in owners.items():
            by_target.setdefault(" / ".join(f"--target {n}" for n in names), []).append(flag)
        parts = [f"{', '.join(flags)} only appl{'ies' if len(flags) == 1 else 'y'} to {t}"
                 for t, flags in by_target.items()]
        raise ValueError(f"{'; '.join(parts)}, not --target {backend.name}")
    return backend, backend.options(args, command)

