"""Locate the back-end templates of the top-level ``export/`` folder.

In a wheel they are installed as ``difflogic/_export/``; in a source checkout they are read
from ``<repo>/export/``.  One function so every back end finds them the same way.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def export_dir() -> Path:
    for cand in (_PKG / "_export", _PKG.parent / "export"):
        if cand.is_dir():
            return cand
    raise FileNotFoundError("difflogic export templates not found (expected difflogic/_export "
                            "in an installed package or export/ in a source checkout); reinstall "
                            "with `pip install .`")


def template(relpath: str) -> Path:
    p = export_dir() / relpath
    if not p.is_file():
        raise FileNotFoundError(f"difflogic export template {relpath!r} missing from {export_dir()}")
    return p
