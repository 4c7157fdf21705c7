"""What qgtflow may write, which names may become paths, and which directories it trusts.

Standard library only (the command line checks these before numpy/numba are imported).

- :func:`output_target`: an output path (``--out``, a stage's store, ``results_dir``) may only be
  absent, an empty directory, or a store qgtflow wrote (its ``zarr.json`` carries the
  ``qgtflow_complete`` attr, present from the first metadata write). Anything else — a file, a
  foreign directory or zarr store, a character/block device, a FIFO, a socket, a symlink to one of
  them or to nothing — is refused, never renamed or removed. The returned path is resolved, so a
  symlink alias cannot bypass the per-store lock.
- :class:`ResultsLock`: one writer per results directory, across checkouts and hosts: a lock file
  inside the directory (``.qgtflow-run.lock``: host, pid, start time, command), created with
  ``O_EXCL``. It is stale — and taken over — when its process is gone (same host) or when its
  heartbeat (the file's mtime, renewed every :data:`HEARTBEAT_S`) is older than :data:`STALE_S`
  (another host).
- :func:`check_name`: a study name becomes a file name: no ``.``, ``..`` or separators.
- :func:`private_dir`: a cache whose files are loaded as code (numba's index is a pickle) must be
  owned by this user and closed to others (mode 0700).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

from qgtflow.errors import ConfigError, StoreError

MARKER = "qgtflow_complete"  # attr of every store qgtflow writes (False until the store is complete)
LOCK_NAME = ".qgtflow-run.lock"
HEARTBEAT_S = 30.0
STALE_S = 300.0
_ZARR_JSON_MAX = 64 << 20  # a zarr.json larger than this is not one of ours

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a file"))


def file_kind(mode: int) -> str | None:
    """'a FIFO', 'a socket', ... for anything that is not a directory (None for a directory)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISDIR(mode) else "not a regular file or directory"


def store_attrs_json(path: Path) -> dict | None:
    """The root attrs of the zarr v3 store at ``path`` read from its zarr.json (None: not a zarr store)."""
    meta = Path(path) / "zarr.json"
    try:
        st = os.lstat(meta)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _ZARR_JSON_MAX:
            return None
        with open(meta, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    attrs = doc.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def is_qgtflow_store(path: Path) -> bool:
    attrs = store_attrs_json(path)
    return attrs is not None and MARKER in attrs


def output_target(path, what: str = "output") -> Path:
    """The resolved ``path`` if qgtflow may create or replace it there; else :class:`StoreError` (one line)."""
    given = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    try:
        st = os.lstat(given)
    except (FileNotFoundError, NotADirectoryError):  # a parent that is a file is reported on creation
        return Path(os.path.realpath(given))
    except OSError as exc:
        raise StoreError(f"cannot write {what} {path}: {exc.strerror}") from None
    real = Path(os.path.realpath(given))
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(real)
        except OSError:
            raise StoreError(f"{what} {path} is a symlink to {real}, which does not exist; not writing through "
                             "it (remove the link or choose another path)") from None
    kind = file_kind(st.st_mode)
    alias = f" (a symlink to {real})" if real != given else ""
    if kind == "a file":
        raise StoreError(f"{what} {path}{alias} exists and is not a zarr store; not overwriting it (remove it or "
                         "choose another path)")
    if kind is not None:
        raise StoreError(f"{what} {path}{alias} is {kind}; qgtflow writes only new directories or its own "
                         "stores (choose another path)")
    if is_qgtflow_store(real):
        return real
    try:
        empty = not any(os.scandir(real))
    except OSError as exc:
        raise StoreError(f"cannot write {what} {path}: {exc.strerror}") from None
    if empty:
        return real
    if store_attrs_json(real) is not None:
        raise StoreError(f"{what} {path}{alias} is a zarr store not written by qgtflow; not overwriting it (remove "
                         "it or choose another path)")
    raise StoreError(f"{what} {path}{alias} exists and is not a zarr store; not overwriting it (remove it or choose "
                     "another path)")


def removable(path: Path, what: str = "store") -> bool:
    """True if ``path`` exists and may be removed (a qgtflow store or an empty directory; not a symlink);
    False if it is absent; :class:`StoreError` for anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode) and (is_qgtflow_store(path) or not any(os.scandir(path))):
        return True
    kind = "a symlink" if stat.S_ISLNK(st.st_mode) else (file_kind(st.st_mode) or "a directory not written by qgtflow")
    raise StoreError(f"{what} {path} is {kind}; not removing it (remove it yourself or choose another path)")


def open_lock_file(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """Open (create) a lock file without following a symlink or blocking on a FIFO; only a regular file passes."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise StoreError(f"lock {path} is {file_kind(mode) or 'a directory'}, not a lock file; remove it")
    return fd


# ---------------------------------------------------------------- names


def check_name(name, key: str = "name") -> str:
    """A study name that is safe as one path component."""
    text = str(name)
    if text in (".", "..") or not text or "/" in text or "\\" in text or "\0" in text or text.startswith("-"):
        raise ConfigError(key, name, "a name usable as a file name (letters, digits, _ . -; not '.' or '..', "
                          "no '/', not starting with '-')")
    return text


# ---------------------------------------------------------------- one writer per results directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(lock: Path) -> tuple[dict, float] | None:
    """(holder info, mtime) of a lock file; None if absent."""
    try:
        st = os.lstat(lock)
    except OSError:  # absent, or a parent that is not a directory
        return None
    info: dict = {}
    if stat.S_ISREG(st.st_mode) and st.st_size < 65536:
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(Path(lock).read_text())
    return (info if isinstance(info, dict) else {}), st.st_mtime


def lock_is_stale(info: dict, mtime: float, now: float | None = None) -> bool:
    """Same host: stale when its process is gone; otherwise (or unreadable): no heartbeat for STALE_S."""
    now = time.time() if now is None else now
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return not any(_alive(p) for p in (info["pid"], info.get("child")) if isinstance(p, int))
    return now - mtime > STALE_S


def holder_text(info: dict, lock: Path) -> str:
    if not info:
        return f"lock {lock}"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"{info.get('command', 'qgtflow')} pid {info.get('pid')} on {info.get('host')} since {since}; lock {lock}"


def active_run_lock(path: Path) -> tuple[Path, dict] | None:
    """The live results-directory lock held over ``path`` (an ancestor's), if any."""
    for parent in [Path(path), *Path(path).parents]:
        lock = parent / LOCK_NAME
        found = read_lock(lock)
        if found is not None and not lock_is_stale(*found):
            return lock, found[0]
    return None


class ResultsLock:
    """Exclusive, cross-host lock of a results directory (see the module docstring)."""

    def __init__(self, directory, command: str = "qgtflow run"):
        self.directory = Path(directory)
        self.lock = self.directory / LOCK_NAME
        self.command = command
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token = f"{socket.gethostname()}:{os.getpid()}:{time.time()}"

    def acquire(self) -> None:
        target = output_target(self.directory, "results directory") if not self.directory.is_dir() else \
            Path(os.path.realpath(self.directory))
        self.directory = target
        self.lock = target / LOCK_NAME
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create results directory {target}: {exc.strerror}") from None
        info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "command": self.command,
                "cwd": os.getcwd(), "token": self._token}
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                found = read_lock(self.lock)
                if found is None:
                    continue
                holder, mtime = found
                if not lock_is_stale(holder, mtime):
                    raise StoreError(f"results directory {target} is being written by another qgtflow run "
                                     f"({holder_text(holder, self.lock)}); wait for it to finish, or remove the lock "
                                     "file if that run is gone") from None
                st = os.lstat(self.lock)
                if not stat.S_ISREG(st.st_mode):
                    raise StoreError(f"lock {self.lock} is {file_kind(st.st_mode) or 'a directory'}; remove it") \
                        from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.lock)  # stale: its run is gone
                continue
            except OSError as exc:
                raise StoreError(f"cannot write results directory {target}: {exc.strerror}") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(info, fh)
            self._info = info
            self._thread = threading.Thread(target=self._beat, name="qgtflow-lock-heartbeat", daemon=True)
            self._thread.start()
            return
        raise StoreError(f"results directory {target}: could not take the lock {self.lock}")

    def add_child(self, pid: int) -> None:
        """Record a child (Snakemake) that writes the directory too: the lock is stale only when both are gone."""
        self._info["child"] = int(pid)
        tmp = self.lock.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self._info))
            os.replace(tmp, self.lock)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.lock)

    def release(self) -> None:
        self._stop.set()
        found = read_lock(self.lock)
        if found is not None and found[0].get("token") == self._token:
            with contextlib.suppress(OSError):
                os.unlink(self.lock)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------- caches loaded as code


def private_dir(path, what: str = "cache directory") -> Path:
    """Create ``path`` (mode 0700) or check that it is a directory owned by this user that nobody
    else may write; a directory of ours that others could write is emptied and closed (its contents
    cannot be trusted), one of another user is refused."""
    import shutil

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"{what} {path} cannot be created: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{what} {path} is {'a symlink' if stat.S_ISLNK(st.st_mode) else file_kind(st.st_mode)}; "
                         "expected a directory of yours (numba loads code from it)")
    if st.st_uid != os.geteuid():
        raise StoreError(f"{what} {path} belongs to uid {st.st_uid}, not to you (uid {os.geteuid()}); numba loads "
                         "code from it: use a directory of your own (QGTFLOW_CACHE_DIR / NUMBA_CACHE_DIR)")
    if st.st_mode & 0o022:
        shutil.rmtree(path)  # others could have written it: start it afresh
        path.mkdir(mode=0o700)
    elif st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


# ---------------------------------------------------------------- scratch of killed processes


def sweep_scratch(tmpdir, prefix: str) -> list[Path]:
    """Remove ``<tmpdir>/<prefix><pid>-*`` directories of this user whose process is gone (a killed
    evaluate: SIGKILL leaves no chance to clean up). Returns what was removed."""
    import shutil

    removed = []
    for entry in Path(tmpdir).glob(f"{prefix}*-*"):
        pid = entry.name[len(prefix):].split("-", 1)[0]
        try:
            st = os.lstat(entry)
        except OSError:
            continue
        if not pid.isdigit() or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)  # a private temporary directory of ours (mkdtemp, 0700)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def handling_signals(signals, handler):
    """``handler`` for ``signals`` while the block runs (main thread only; elsewhere unchanged), then the
    previous handlers again."""
    import signal

    previous = {}
    for sig in signals:
        with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_deferred():
    """SIGINT/SIGTERM/SIGHUP arriving while the block runs are held and re-raised right after it (main thread
    only): a zarr write interrupted half-way leaves writes pending on zarr's I/O thread, which land after the
    cleanup has removed their store."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    with handling_signals((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), lambda signum, frame: held.append(signum)):
        yield
    for signum in dict.fromkeys(held):
        signal.raise_signal(signum)  # to the handler in force again (SystemExit, KeyboardInterrupt, default)


def exit_on_signals():
    """SIGTERM/SIGHUP raise SystemExit in the main thread while the block runs, so ``finally`` blocks and
    context managers (temporary stores, locks, Dask clusters) clean up, as for Ctrl-C."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    return handling_signals((signal.SIGTERM, signal.SIGHUP), handler)
