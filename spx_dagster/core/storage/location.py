"""Where published data lives: a local path or a ``file://`` URI, both resolved to a local path.

``storage.output_dir`` (and ``storage.temp_dir``) may be written as a plain path
(``/data/spx``, ``~/spx``) or as a ``file://`` URI (``file:///data/spx``,
``file://localhost/data/spx``). Everything in ``core/storage`` works on the local path, because
the atomic-publish guarantee rests on POSIX semantics: a temporary file on the same filesystem,
fsync, then rename, with the manifest written last as the commit point.

Object stores (``s3://``, ``gs://``, ``az://``, ...) are refused with a message that says what to
do instead. The design they would follow is written down in the README ("Scaling out"): data
objects are uploaded first (a PUT is atomic per object, so an object is whole or absent), the
manifest object last; a session without its manifest object does not exist, and readers list
manifests, never data prefixes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

FILE_SCHEME = "file"
# Schemes fsspec/pyarrow understand that are not a local filesystem: named in the error message.
OBJECT_STORE_SCHEMES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hdfs", "http", "https", "ftp"}
)
# A scheme is letters, digits, + - . after a letter (RFC 3986), followed by ":"; a Windows drive
# letter ("C:\\") is not one.
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]+):")
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1"})


class UnsupportedStorageLocation(ValueError):
    """A storage location that is neither a local path nor a ``file://`` URI on this machine."""

    def __init__(self, value: str, why: str, fix: str) -> None:
        self.value, self.why, self.fix = value, why, fix
        super().__init__(f"{value!r}: {why}. {fix}")


def storage_scheme(value: str | os.PathLike[str]) -> str | None:
    """The URI scheme of ``value`` in lower case (``"file"``, ``"s3"``), or None for a path."""
    match = _SCHEME.match(os.fspath(value).strip())
    return match.group("scheme").lower() if match else None


def local_path(value: str | os.PathLike[str]) -> Path:
    """The local directory ``value`` names: a path (``~`` expanded) or a ``file://`` URI.

    Also accepts what ``Path("file:///x")`` makes of a URI (``file:/x``), so a URI that went
    through ``pathlib`` on its way here still resolves.

    Raises:
        UnsupportedStorageLocation: an object-store URI (``s3://...``), another scheme, or a
            ``file://`` URI naming another host.
    """
    text = os.fspath(value).strip()
    scheme = storage_scheme(text)
    if scheme is None:
        return Path(text).expanduser()
    if scheme == FILE_SCHEME:
        return _file_uri_path(text)
    if scheme in OBJECT_STORE_SCHEMES:
        raise UnsupportedStorageLocation(
            text,
            f"{scheme}:// object stores are not supported yet as a storage location (only local "
            "paths and file:// URIs are), because publishing relies on an atomic rename",
            "Use a local path or a shared POSIX filesystem mounted on every worker (NFS, EFS, "
            "CephFS), e.g. `spx-data config set storage.output_dir /mnt/shared/spx`; see README "
            '"Scaling out"',
        )
    raise UnsupportedStorageLocation(
        text,
        f"{scheme}: is not a storage scheme spx-data knows",
        "Give a local path (/data/spx) or a file:// URI (file:///data/spx)",
    )


def _file_uri_path(text: str) -> Path:
    parts = urlsplit(text)
    if text.lower().startswith("file://") and parts.netloc.lower() not in _LOCAL_HOSTS:
        raise UnsupportedStorageLocation(
            text,
            f"the file:// URI names the host {parts.netloc!r}, and only this machine's "
            "filesystem can be written to",
            "Write it as file:///path (three slashes) or mount that host's share and give the "
            "local path",
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise UnsupportedStorageLocation(
            text,
            "a file: URI must hold an absolute path",
            "Write it as file:///absolute/path",
        )
    return Path(path)


def location_problem(value: str | os.PathLike[str]) -> str | None:
    """Why ``value`` cannot be a storage location (a sentence with the fix), or None if it can."""
    try:
        local_path(value)
    except UnsupportedStorageLocation as error:
        return f"{error.why}. {error.fix}"
    return None
