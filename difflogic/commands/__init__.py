"""Subcommands of the ``difflogic`` CLI, one module each (see :mod:`difflogic.cli`).

Each module exposes ``add_parser(subparsers)`` (registers its arguments, sets ``func=run``)
and ``run(args) -> int``.  Heavy imports (torch, data sets, back ends) happen inside ``run``
so ``difflogic --help`` stays fast and one missing optional dependency only affects its
own command.
"""
