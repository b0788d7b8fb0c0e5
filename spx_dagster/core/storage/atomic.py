"""Atomic, durable, checksummed file writes.

Every file is written to a temporary name (``.tmp-...``) in its final directory (so the rename
cannot cross a filesystem), hashed while it is written, flushed and fsynced, renamed into place,
and the directory is fsynced so that the rename itself survives a power cut. A crash leaves at
worst a ``.tmp-`` file, which ``verify`` reports and the cleanup helpers remove.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from spx_dagster.core.storage.layout import TMP_PREFIX, checksum_path

DEFAULT_FILE_MODE = 0o640
DEFAULT_DIR_MODE = 0o750
HASH_CHUNK_BYTES = 1 << 20


def ensure_dir(path: Path, *, mode: int = DEFAULT_DIR_MODE) -> Path:
    """Create ``path`` and missing ancestors with ``mode`` (umask does not apply); return it.

    Directories that already exist keep their permissions: we never loosen or tighten what the
    user set up by hand.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # created concurrently by another process: fine
        os.chmod(directory, mode)
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingFile(io.RawIOBase):
    """A write-only file that computes SHA-256 and size of what passes through it.

    Handed to ``pyarrow.parquet.ParquetWriter`` (which only appends) so a published file is hashed
    while it is written, never re-read whole.
    """

    def __init__(self, path: Path, *, mode: int = DEFAULT_FILE_MODE) -> None:
        super().__init__()
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.fchmod(self._fd, mode)  # the umask would otherwise narrow or be narrowed by mode
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._hash.update(view)
        written = 0
        while written < len(view):
            written += os.write(self._fd, view[written:])
        self.size += written
        return written

    def tell(self) -> int:
        return self.size

    def fileno(self) -> int:
        return self._fd

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def sync_and_close(self) -> None:
        """fsync the data, then close the descriptor."""
        if not self.closed:
            os.fsync(self._fd)
            self.close()

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def temp_path_for(final: Path) -> Path:
    """A fresh temporary name beside ``final`` (same directory, so the same filesystem)."""
    final = Path(final)
    return final.with_name(f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:12]}")


def open_temp(directory: Path, final_name: str, *, mode: int = DEFAULT_FILE_MODE) -> HashingFile:
    """Open a hashing temp file in ``directory`` for a file to be called ``final_name``."""
    return HashingFile(temp_path_for(Path(directory) / final_name), mode=mode)


def commit_temp(temp: HashingFile, final: Path) -> Path:
    """fsync ``temp``, rename it to ``final`` (replacing it), fsync the directory; return final."""
    final = Path(final)
    temp.sync_and_close()
    os.replace(temp.path, final)
    fsync_dir(final.parent)
    return final


def discard_temp(temp: HashingFile) -> None:
    """Close and remove a temp file that will not be committed (errors are not masked)."""
    with contextlib.suppress(OSError):
        temp.close()
    with contextlib.suppress(FileNotFoundError):
        temp.path.unlink()


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = DEFAULT_FILE_MODE) -> Iterator[HashingFile]:
    """Write ``path`` atomically: yields a hashing temp file, renamed into place on success.

    On an exception the temp file is removed and ``path`` is untouched. After the block the
    yielded object still tells ``sha256`` and ``size``.
    """
    path = Path(path)
    temp = HashingFile(temp_path_for(path), mode=mode)
    try:
        yield temp
    except BaseException:
        discard_temp(temp)
        raise
    commit_temp(temp, path)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = DEFAULT_FILE_MODE) -> str:
    """Write ``data`` to ``path`` atomically; return its SHA-256."""
    with atomic_writer(path, mode=mode) as out:
        out.write(data)
    return out.sha256


def copy_atomic(source: Path, target: Path, *, mode: int = DEFAULT_FILE_MODE) -> tuple[int, str]:
    """Copy ``source`` to ``target`` atomically (any filesystem to any); return (bytes, sha256)."""
    with open(source, "rb") as src, atomic_writer(target, mode=mode) as out:
        while chunk := src.read(HASH_CHUNK_BYTES):
            out.write(chunk)
    return out.size, out.sha256


def sha256_file(path: Path, *, chunk_bytes: int = HASH_CHUNK_BYTES) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
    return digest.hexdigest()


def write_checksum_sidecar(path: Path, sha256_hex: str, *, mode: int = DEFAULT_FILE_MODE) -> Path:
    """Write ``<file>.sha256`` as ``<hex>  <file name>`` so ``sha256sum -c`` works in its dir."""
    sidecar = checksum_path(path)
    atomic_write_bytes(sidecar, f"{sha256_hex}  {Path(path).name}\n".encode(), mode=mode)
    return sidecar


def read_checksum_sidecar(path: Path) -> tuple[str, str] | None:
    """``(hex, file name)`` from the sidecar of ``path``; None if missing or malformed."""
    try:
        text = checksum_path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    fields = text.strip().split(maxsplit=1)
    if len(fields) != 2:
        return None
    return fields[0].lower(), fields[1].lstrip("*")
