"""Crash-safe file output, the one place for it: a file appears complete or not at all.

:func:`atomic_write` writes one file (checkpoints, plots, JSON); :func:`write_files` writes the
set of files of an export into a folder.  Both write aside in the destination folder, fsync,
and rename into place, so an interrupted or failing write never leaves a truncated file where
a good one was, and neither ever deletes a file it was not asked to replace.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path


def _final_mode(path: Path) -> int:
    """The permission bits ``path`` should get: those of the file it replaces, else what a plain
    ``open(path, "w")`` would give (0666 less the umask); mkstemp's 0600 must not leak."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mask = os.umask(0)  # the only portable way to read the umask: set it and put it back
        os.umask(mask)
        return 0o666 & ~mask


def _os_error(e: OSError, what: str) -> OSError:
    """``e`` as the same OSError subclass, its message saying what failed and why (the temp
    file's name in the original message would only confuse)."""
    reason = e.strerror or str(e) or type(e).__name__
    err = type(e)(f"{what} ({reason})")
    err.errno = e.errno
    return err


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write(path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, fsync, then rename over ``path``.

    On any failure the temp file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is an existing directory; give a file name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(e, f"cannot write {path}: cannot create the directory {folder}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise _os_error(e, f"cannot write {path}: the directory {folder} is not writable") from None
    try:
        os.fchmod(fd, _final_mode(path))
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):  # name the target, not the temp file, in the message
            raise _os_error(e, f"cannot write {path}") from None
        raise
    _fsync_dir(folder)


def save_png(path, fig, dpi: int = 100) -> None:
    """Write the matplotlib figure ``fig`` to ``path`` as a PNG with :func:`atomic_write`, then
    close it (also on failure: an open figure holds its memory until the process ends)."""
    import matplotlib.pyplot as plt
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- a set of files
def _check_names(names) -> None:
    bad = [n for n in names if not n or n in (".", "..") or "/" in n or "\\" in n or "\0" in n]
    if bad:
        raise ValueError(f"file names must be plain names without a folder, got {bad!r}")


def _make_dir(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` (and missing parents); returns the folders created, innermost first."""
    created, d = [], out_dir
    while not d.exists() and d != d.parent:
        created.append(d)
        d = d.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_dirs(created)
        raise OSError(f"cannot create output directory {str(out_dir)!r}: {e.strerror or e}") from None
    if not os.access(out_dir, os.W_OK):
        _remove_dirs(created)
        raise PermissionError(f"output directory {str(out_dir)!r} is not writable")
    return created


def _remove_dirs(dirs) -> None:
    """Remove the (innermost first) folders a write created, as long as they are empty."""
    for d in dirs:
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def _stage(tmp: Path, files: dict, executable) -> None:
    """Write every file completely (and fsync it) into the staging folder ``tmp``."""
    for name, data in files.items():
        p = tmp / name
        with open(p, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else bytes(data))
            fh.flush()
            os.fsync(fh.fileno())
        if name in executable:
            p.chmod(p.stat().st_mode | 0o111)


def _install(tmp: Path, out_dir: Path, names) -> None:
    """Rename the staged files into place, all or none: a file about to be replaced is first
    hard-linked aside, so a failure part-way puts every earlier file back as it was."""
    done = []   # (target, backup or None, whether the target is new)
    try:
        for name in names:
            target, backup = out_dir / name, None
            was_new = not target.exists()
            if not was_new:
                backup = tmp / f".old.{name}"
                try:
                    os.link(target, backup)
                except OSError:   # no hard links here: the replaced file cannot be restored
                    backup = None
            os.replace(tmp / name, target)
            done.append((target, backup, was_new))
    except BaseException:
        for target, backup, was_new in reversed(done):
            try:
                if backup is not None:
                    os.replace(backup, target)
                elif was_new:
                    target.unlink(missing_ok=True)
            except OSError:
                pass
        raise


def write_files(out_dir, files: dict, executable=(), stale=()) -> dict:
    """Write ``files`` ({name: str | bytes}) into ``out_dir``; returns {name: path}.

    Each file appears complete or not at all, and the set as a whole: when any file fails,
    the ones already renamed are put back as they were and folders this call created are
    removed.  Nothing else in ``out_dir`` is touched, except the names in ``stale`` (files of
    an earlier export, as listed in that export's own manifest) that this set does not
    rewrite: they are removed once the new set is in place.  ``executable``: names to mark
    executable.
    """
    out_dir = Path(out_dir)
    _check_names([*files, *stale])
    blocked = [n for n in files if (out_dir / n).exists() and not (out_dir / n).is_file()]
    if blocked:  # checked first, so that no file of the set is replaced before the failure
        raise IsADirectoryError(f"cannot write into {str(out_dir)!r}: {', '.join(blocked)} "
                                "exist(s) there and is not a regular file")
    created = _make_dir(out_dir)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".difflogic-tmp-", dir=out_dir))
        _stage(tmp, files, set(executable))
        _install(tmp, out_dir, list(files))
    except BaseException as e:
        if tmp is not None:   # first, so that the folders this call created are empty again
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_dirs(created)
        if isinstance(e, OSError):
            raise OSError(f"failed writing into {str(out_dir)!r}: {e.strerror or e}") from None
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    for name in stale:
        p = out_dir / name
        if name not in files and p.is_file() and not p.is_symlink():
            p.unlink()
    _fsync_dir(out_dir)
    return {name: out_dir / name for name in files}
