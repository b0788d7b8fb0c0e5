"""Published storage: layout, atomic writes, checksums, manifests, verification, disk checks.

Plain Python (no Dagster). The assets call, per session::

    with session_lock(output_dir, session):
        entries = {ds: publish_dataset(output_dir, session, ds,
                                       iter_validated_tables(temp_dir, session, ds))
                   for ds in datasets}
        commit_manifest(output_dir, Manifest(session=session, datasets=entries, ...))
    remove_session_temp(temp_dir, session)
"""

from spx_dagster.core.storage.atomic import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    atomic_write_bytes,
    atomic_writer,
    ensure_dir,
    sha256_file,
    write_checksum_sidecar,
)
from spx_dagster.core.storage.cleanup import (
    cleanup_orphans,
    find_tmp_leftovers,
    remove_session_temp,
    remove_tmp_leftovers,
    unlisted_files,
)
from spx_dagster.core.storage.disk import (
    DEFAULT_MIN_FREE_GB,
    InsufficientDiskSpace,
    check_free_space,
    check_session_space,
    estimate_session_bytes,
)
from spx_dagster.core.storage.layout import (
    OutputLayout,
    PartKey,
    StorageLayout,
    TempLayout,
    session_dirname,
)
from spx_dagster.core.storage.location import (
    UnsupportedStorageLocation,
    local_path,
    location_problem,
)
from spx_dagster.core.storage.locks import SessionLocked, session_lock
from spx_dagster.core.storage.manifest import (
    STATUS_COMPLETE,
    STATUS_NO_DATA,
    DatasetEntry,
    Durations,
    FileEntry,
    Manifest,
    ManifestError,
    ManifestSummary,
    QualitySummary,
    SourceInfo,
    Versions,
    load_manifest,
    manifest_sessions,
    published_sessions,
    read_manifest,
)
from spx_dagster.core.storage.parquet_io import (
    REASON_COLUMN,
    PublishedDatasetWriter,
    QuarantineEntry,
    QuarantineWriter,
    iter_validated_tables,
    publish_dataset,
    write_table_atomic,
)
from spx_dagster.core.storage.publish import (
    CommitResult,
    PublishError,
    commit_manifest,
    unpublish_session,
)
from spx_dagster.core.storage.verify import (
    Problem,
    ProblemKind,
    VerifyReport,
    sessions_on_disk,
    verify_all,
    verify_session,
)

__all__ = [
    "DEFAULT_DIR_MODE",
    "DEFAULT_FILE_MODE",
    "DEFAULT_MIN_FREE_GB",
    "REASON_COLUMN",
    "STATUS_COMPLETE",
    "STATUS_NO_DATA",
    "CommitResult",
    "DatasetEntry",
    "Durations",
    "FileEntry",
    "InsufficientDiskSpace",
    "Manifest",
    "ManifestError",
    "ManifestSummary",
    "OutputLayout",
    "PartKey",
    "Problem",
    "ProblemKind",
    "PublishError",
    "PublishedDatasetWriter",
    "QualitySummary",
    "QuarantineEntry",
    "QuarantineWriter",
    "SessionLocked",
    "SourceInfo",
    "StorageLayout",
    "TempLayout",
    "UnsupportedStorageLocation",
    "VerifyReport",
    "Versions",
    "atomic_write_bytes",
    "atomic_writer",
    "check_free_space",
    "check_session_space",
    "cleanup_orphans",
    "commit_manifest",
    "ensure_dir",
    "estimate_session_bytes",
    "find_tmp_leftovers",
    "iter_validated_tables",
    "load_manifest",
    "local_path",
    "location_problem",
    "manifest_sessions",
    "publish_dataset",
    "published_sessions",
    "read_manifest",
    "remove_session_temp",
    "remove_tmp_leftovers",
    "session_dirname",
    "session_lock",
    "sessions_on_disk",
    "sha256_file",
    "unlisted_files",
    "unpublish_session",
    "verify_all",
    "verify_session",
    "write_checksum_sidecar",
    "write_table_atomic",
]
