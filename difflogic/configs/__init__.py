"""Recipes as data: the tuned training recipes shipped with the package, one JSON file each.

A recipe file holds ``description``, ``result`` (what it reached, and where that is recorded),
``dataset``, ``model`` (a model name or a whole model config), ``train`` (training options)
and optionally ``then`` (later stages, run as resumes of the same run).  This module only
finds and reads the files; :mod:`difflogic.training.recipes` checks them and
:mod:`difflogic.models` serves their models as presets.
"""
from __future__ import annotations

import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def names() -> list[str]:
    """The recipes shipped with the package (file stems of ``difflogic/configs/*.json``)."""
    return sorted(p.stem for p in FOLDER.glob("*.json"))


def locate(name_or_path) -> Path:
    """A shipped recipe's file, or a path to a JSON file; a one-line error otherwise."""
    text = str(name_or_path)
    if text.endswith(".json") or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"--config {text}: no such JSON file")
        return path
    path = FOLDER / f"{text}.json"
    if not path.is_file():
        raise ValueError(f"--config {text}: unknown recipe; shipped: {', '.join(names())} "
                         "(or give a JSON file)")
    return path


def read(name_or_path) -> tuple[str, dict]:
    """(name, the file's JSON object) of a recipe; its name defaults to the file stem."""
    path = locate(name_or_path)
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"--config {path}: invalid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"--config {path}: expected a JSON object (a recipe), "
                         f"got {type(raw).__name__}")
    return raw.get("name", path.stem), raw
