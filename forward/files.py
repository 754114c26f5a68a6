"""Safe file writing shared by every writer: no silent overwrite, no half-written file.

Three pieces, used by every writer of invsim (event files, model directories, NetCDF,
CSV, JSON, plots) and by the command-line commands:

* :func:`atomic_target` / :func:`atomic_directory`: the output is written under a
  temporary name beside the target, ``.<name>.<pid>-<token>.tmp<suffix>``, and moved
  into place (``os.replace``; directories are exchanged atomically where the system
  allows) only when complete. The temporary file is removed on any error, on Ctrl-C
  (``SIGINT``) and on ``SIGTERM``; one left by a killed run (``SIGKILL``, power loss) is
  recognised by its prefix and its dead process id and removed by the next write of the
  same target (with a ``UserWarning`` naming it).
* :func:`check_output`: before any work starts, the output's folder exists and is
  writable, the output is none of the inputs, it does not exist unless ``overwrite``,
  and no other live process writes it: a lock file ``.<name>.lock`` beside it holds the
  writer's process id until the run ends.
* :func:`sha256_file` and the directory manifest (:func:`write_manifest`,
  :func:`verify_manifest`): per-file SHA-256 content hashes that readers check.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "MANIFEST",
    "OutputBusyError",
    "OutputLock",
    "atomic_directory",
    "atomic_target",
    "check_output",
    "check_target",
    "clean_stale",
    "same_file",
    "sha256_file",
    "temp_name",
    "verify_manifest",
    "write_manifest",
]

#: name of the per-file SHA-256 manifest of a directory output (written last)
MANIFEST = "MANIFEST.sha256.json"
_MANIFEST_FORMAT = "invsim-manifest"
# this release's names carry "-<token>"; older ones were ".<name>.<pid>.tmp<suffix>"
_TEMP_RE = r"^\.{name}\.(\d+)(?:-[0-9a-f]+)?\.(?:tmp|old)"


class OutputBusyError(RuntimeError):
    """Another live process holds the lock of an output."""


def _check_path_args(path, overwrite) -> Path:
    """``path`` as an absolute :class:`Path`; TypeError for a non-path ``path`` or a
    non-bool ``overwrite``."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"path: expected a non-empty str or os.PathLike, got {path!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite: expected True or False, got {overwrite!r}")
    return Path(os.path.abspath(os.fspath(path)))


def check_target(path: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is false
    (TypeError for a non-path ``path`` or a non-bool ``overwrite``)."""
    path = _check_path_args(path, overwrite)
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {str(path)!r} exists; pass overwrite=True to replace it")


def temp_name(path: str | os.PathLike, suffix: str = "", kind: str = "tmp") -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<pid>-<token>.<kind><suffix>``.

    Args:
        path: the final file or directory.
        suffix: appended (writers that infer the format from the name need it).
        kind: ``"tmp"`` (being written) or ``"old"`` (being replaced).

    Returns:
        The temporary path (not created).
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}{suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``path`` left by writers that no longer run.

    A temporary name (see :func:`temp_name`) carries its writer's process id; those of
    a live process (another run writing now) are kept.

    Args:
        path: the final file or directory whose leftovers to look for.

    Returns:
        The paths removed (a ``UserWarning`` names them).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(_TEMP_RE.format(name=re.escape(path.name)))
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pattern.match(p.name)
        if m and not _alive(int(m.group(1))):
            _remove(p)
            removed.append(p)
    if removed:
        warnings.warn(f"removed {len(removed)} temporary file(s) of {str(path)!r} left by an "
                      f"interrupted run: {[p.name for p in removed]}", UserWarning,
                      stacklevel=3)
    return removed


_TERMINATED: list[int] = []  # the SIGTERM received while a write was going on


def _stop_if_terminated() -> None:
    """Raise ``SystemExit(143)`` if SIGTERM arrived (its exception may have been lost)."""
    if _TERMINATED:
        raise SystemExit(128 + _TERMINATED[0])


@contextmanager
def _terminate_raises() -> Iterator[None]:
    """While active, SIGTERM raises ``SystemExit(143)`` instead of killing at once.

    So ``finally`` clauses (temporary files, lock files) run, as they do for SIGINT's
    ``KeyboardInterrupt``, and the process still exits with status 128 + 15. The signal
    is also remembered: an exception raised where Python ignores it (a weakref callback,
    a ``__del__``) is raised again before the output is committed
    (:func:`_stop_if_terminated`) and when the block ends. Only in the main thread and
    only if SIGTERM has its default action; restored on exit.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        _TERMINATED.append(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _stop_if_terminated()


def _refuse_foreign_lock(path: Path) -> None:
    lock = _lock_path(path)
    pid = _lock_owner(lock)
    if pid is not None and pid != os.getpid() and _alive(pid):
        raise OutputBusyError(f"{str(path)!r} is being written by process {pid} (lock file "
                              f"{str(lock)!r}); wait for it to finish or remove the lock")


@contextmanager
def atomic_target(path: Path, overwrite: bool, suffix: str = "") -> Iterator[Path]:
    """Write to a temporary file beside ``path`` and move it into place on success.

    The target is checked before writing starts and again just before the move (another
    process may have created it meanwhile); the temporary file is removed on any error,
    on SIGINT and on SIGTERM. Temporary files of killed earlier writes of ``path`` are
    removed first (:func:`clean_stale`).

    Args:
        path: the final file.
        overwrite: allow replacing an existing ``path``.
        suffix: suffix of the temporary name, for writers that infer the format from it.

    Yields:
        The temporary path to write.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        FileNotFoundError: the folder of ``path`` does not exist (it is not created).
        OutputBusyError: another live process holds the lock of ``path``.
    """
    path = _check_path_args(path, overwrite)
    check_target(path, overwrite)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    _refuse_foreign_lock(path)
    clean_stale(path)
    tmp = temp_name(path, suffix)
    with _terminate_raises():
        try:
            yield tmp
            check_target(path, overwrite)
            _stop_if_terminated()
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # not supported: fall back
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


@contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool, *,
                     replaceable: Callable[[Path], bool] | None = None,
                     kind: str = "directory this writer made",
                     manifest: bool = True) -> Iterator[Path]:
    """Write a directory under a temporary name beside ``path`` and swap it in at the end.

    A :data:`MANIFEST` of every file's SHA-256 is written into the new directory last
    (:func:`write_manifest`), then it replaces ``path`` in one atomic exchange where the
    system supports it (Linux), else by two renames; the old directory is removed after.
    On any error, SIGINT or SIGTERM the temporary directory is removed and ``path`` is
    left as it was. Leftovers of killed earlier writes are removed first.

    Args:
        path: the final directory.
        overwrite: allow replacing an existing non-empty ``path``.
        replaceable: called with an existing non-empty ``path`` when ``overwrite``; False
            refuses to replace it (e.g. a folder that is not a saved model).
        kind: what ``replaceable`` accepts, for the message.
        manifest: write the :data:`MANIFEST` (for readers that verify it).

    Yields:
        The temporary directory (created, empty) to write into.

    Raises:
        FileExistsError: ``path`` is a file, or a non-empty directory and not
            ``overwrite`` (or not ``replaceable``).
        FileNotFoundError: the folder of ``path`` does not exist.
        OutputBusyError: another live process holds the lock of ``path``.
    """
    path = _check_path_args(path, overwrite)
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"path: {str(path)!r} exists and is not a directory")
        if any(path.iterdir()):
            if not overwrite:
                raise FileExistsError(f"path: {str(path)!r} exists and is not empty; pass "
                                      "overwrite=True to replace it")
            if replaceable is not None and not replaceable(path):
                raise FileExistsError(f"path: {str(path)!r} is not a {kind}; refusing to "
                                      "replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    _refuse_foreign_lock(path)
    clean_stale(path)
    tmp = temp_name(path)
    with _terminate_raises():
        tmp.mkdir()
        try:
            yield tmp
            if manifest:
                write_manifest(tmp)
            _stop_if_terminated()
            if path.exists():
                if not _exchange(tmp, path):
                    old = temp_name(path, kind="old")
                    os.replace(path, old)
                    try:
                        os.replace(tmp, path)
                    except BaseException:
                        os.replace(old, path)
                        raise
                    os.replace(old, tmp)
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder).as_posix()) for p in folder.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def write_manifest(folder: str | os.PathLike) -> Path:
    """Write ``folder/MANIFEST.sha256.json``: the SHA-256 of every file below ``folder``.

    Returns:
        The manifest's path.
    """
    folder = Path(folder)
    files = {name: sha256_file(folder / name) for name in _files(folder)}
    out = folder / MANIFEST
    out.write_text(json.dumps({"format": _MANIFEST_FORMAT, "files": files}, indent=1) + "\n")
    return out


def verify_manifest(folder: str | os.PathLike, *, required: bool = True) -> bool:
    """Check every file below ``folder`` against its manifest.

    Args:
        folder: a directory written by :func:`atomic_directory`.
        required: a missing manifest is an error; else it returns False.

    Returns:
        True if the manifest exists and matches, False if there is none (and not
        ``required``).

    Raises:
        ValueError: an unreadable manifest, a file missing, changed (SHA-256 differs) or
            not listed; the message names the directory and the file.
    """
    folder = Path(folder)
    man = folder / MANIFEST
    if not man.exists():
        if required:
            raise ValueError(f"{str(folder)!r}: no {MANIFEST}; the directory is incomplete "
                             "(an interrupted write?)")
        return False
    try:
        desc = json.loads(man.read_text(encoding="utf-8"))
        listed = desc["files"]
        ok = desc.get("format") == _MANIFEST_FORMAT and isinstance(listed, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in listed.items())
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{str(folder)!r}: {MANIFEST} is corrupted ({err})") from None
    if not ok:
        raise ValueError(f"{str(folder)!r}: {MANIFEST} is not an invsim manifest")
    present = _files(folder)
    extra = sorted(set(present) - set(listed))
    if extra:
        raise ValueError(f"{str(folder)!r}: files {extra} are not in {MANIFEST}; the directory "
                         "mixes files of different writes")
    for name, digest in sorted(listed.items()):
        file = folder / name
        if not file.is_file():
            raise ValueError(f"{str(folder)!r}: file {name!r} listed in {MANIFEST} is missing")
        if sha256_file(file) != digest:
            raise ValueError(f"{str(folder)!r}: file {name!r} is corrupted (its SHA-256 differs "
                             f"from {MANIFEST})")
    return True


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _lock_owner(lock: Path) -> int | None:
    try:
        text = lock.read_text().split()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return -1
    try:
        return int(text[0])
    except (IndexError, ValueError):
        return -1  # being written, or garbage: treated as dead


_HELD: set[Path] = set()


class OutputLock:
    """The lock file ``.<name>.lock`` beside an output; see :func:`check_output`.

    Usable as a context manager; :meth:`release` removes the lock (also at interpreter
    exit, on SIGINT and on SIGTERM inside the ``with`` block).

    Attributes:
        path: the output.
        lock: the lock file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = _lock_path(path)
        self._owned = False
        self._signals = None
        if self.lock in _HELD:  # taken by an outer caller in this process
            return
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = _lock_owner(self.lock)
                if pid is not None and pid > 0 and pid != os.getpid() and _alive(pid):
                    raise OutputBusyError(
                        f"{str(path)!r} is being written by process {pid} (lock file "
                        f"{str(self.lock)!r}); wait for it to finish or remove the lock"
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    self.lock.unlink()  # stale: its writer is gone
                continue
            except OSError as err:
                raise PermissionError(f"{str(path)!r}: cannot create the lock file "
                                      f"{str(self.lock)!r} ({err.strerror})") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self._owned = True
            _HELD.add(self.lock)
            import atexit

            atexit.register(self.release)
            return
        raise OutputBusyError(f"{str(path)!r}: could not take the lock {str(self.lock)!r}")

    def release(self) -> None:
        """Remove the lock file (if this object took it)."""
        if self._owned:
            self._owned = False
            _HELD.discard(self.lock)
            if _lock_owner(self.lock) == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.lock.unlink()

    def __enter__(self) -> OutputLock:
        self._signals = _terminate_raises()
        self._signals.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.release()
        finally:
            if self._signals is not None:
                self._signals.__exit__(*exc)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file or directory (after resolving links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_output(path: str | os.PathLike, *, inputs: Iterable = (), overwrite: bool = False,
                 directory: bool = False) -> OutputLock:
    """Check an output before any work starts, and lock it.

    Args:
        path: the output file (or directory, with ``directory=True``).
        inputs: files or directories the run reads (None entries are skipped); the
            output may be none of them (compared after resolving links), and a
            directory output may not contain one.
        overwrite: allow an existing output (a non-empty directory for ``directory``).
        directory: the output is a directory.

    Returns:
        The :class:`OutputLock` taken; release it at the end (``with check_output(...)``).

    Raises:
        FileNotFoundError: the output's folder does not exist.
        PermissionError: the folder is not writable.
        FileExistsError: the output exists and ``overwrite`` is false, or it is a
            directory where a file is expected (or the reverse).
        ValueError: the output is one of ``inputs`` (or contains one).
        OutputBusyError: another live process holds the lock (the message names it).
    """
    path = Path(os.path.abspath(os.fspath(path)))
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"output {str(path)!r}: the folder {str(folder)!r} does not "
                                "exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"output {str(path)!r}: the folder {str(folder)!r} is not "
                              "writable")
    real = Path(os.path.realpath(path))
    for inp in inputs:
        if inp is None:
            continue
        src = Path(os.path.realpath(os.fspath(inp)))
        same = same_file(path, inp)
        if same or (directory and real in src.parents):
            raise ValueError(f"output {str(path)!r} is the input {os.fspath(inp)!r}"
                             + ("" if same else " (or contains it)")
                             + "; choose another output")
    if path.exists():
        if directory and not path.is_dir():
            raise FileExistsError(f"output {str(path)!r} exists and is not a directory")
        if not directory and path.is_dir():
            raise FileExistsError(f"output {str(path)!r} is a directory; expected a file")
        if not overwrite and (not directory or any(path.iterdir())):
            raise FileExistsError(f"output {str(path)!r} exists" + (" and is not empty" if
                                  directory else "") + "; pass --overwrite (overwrite=True) "
                                  "to replace it")
        if not os.access(path, os.W_OK):
            raise PermissionError(f"output {str(path)!r} is not writable")
    return OutputLock(path)
