"""``storage.output_dir`` as a local path or a ``file://`` URI; object stores refused clearly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from spx_dagster.core.session_stages import PipelineSettings
from spx_dagster.core.storage import (
    Manifest,
    SourceInfo,
    UnsupportedStorageLocation,
    Versions,
    check_session_space,
    commit_manifest,
    load_manifest,
    local_path,
    location_problem,
    publish_dataset,
    published_sessions,
    session_lock,
    verify_all,
    verify_session,
)
from spx_dagster.core.storage.layout import OutputLayout
from spx_dagster_tests.factories import make_table

SESSION = dt.date(2024, 3, 15)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/data/spx", "/data/spx"),
        ("  /data/spx  ", "/data/spx"),
        ("relative/dir", "relative/dir"),
        ("file:///data/spx", "/data/spx"),
        ("FILE:///data/spx", "/data/spx"),
        ("file://localhost/data/spx", "/data/spx"),
        ("file:///data/with%20space", "/data/with space"),
        # What pathlib makes of a URI (Path("file:///data/spx") == Path("file:/data/spx")).
        (Path("file:///data/spx"), "/data/spx"),
        ("file:/data/spx", "/data/spx"),
    ],
)
def test_local_paths_and_file_uris_resolve_to_the_same_directory(given, expected):
    assert local_path(given) == Path(expected)
    assert location_problem(given) is None


def test_a_home_relative_path_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert local_path("~/spx") == tmp_path / "spx"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("s3://bucket/spx", "s3:// object stores are not supported yet"),
        ("gs://bucket/spx", "gs:// object stores are not supported yet"),
        ("file://nas.local/spx", "names the host 'nas.local'"),
        ("file:relative", "must hold an absolute path"),
        ("sftp://host/spx", "not a storage scheme"),
    ],
)
def test_other_locations_are_refused_with_the_value_the_reason_and_a_fix(given, says):
    with pytest.raises(UnsupportedStorageLocation) as raised:
        local_path(given)
    message = str(raised.value)
    assert given in message and says in message
    assert raised.value.fix  # what to do instead
    assert says in location_problem(given)


def _publish(output: str | Path) -> Manifest:
    with session_lock(output, SESSION):
        entries = {
            ds: publish_dataset(output, SESSION, ds, [make_table(ds, SESSION)])
            for ds in ("eod", "open_interest")
        }
        manifest = Manifest(
            session=SESSION,
            source=SourceInfo("simulator", "http://127.0.0.1:25503", "v3"),
            versions=Versions("0.1.0", "test", "test", "test-calendar"),
            datasets=entries,
            roots=["SPXW"],
        )
        commit_manifest(output, manifest)
    return manifest


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_publish_and_verify_work_the_same_on_a_path_and_a_file_uri(tmp_path, as_uri):
    directory = tmp_path / "published data"
    output = directory.as_uri() if as_uri else str(directory)
    manifest = _publish(output)

    # The files are where the local path says, whichever way the location was written.
    assert OutputLayout.of(directory).manifest_path(SESSION).is_file()
    assert not (tmp_path / "file:").exists()
    for entry in manifest.files:
        assert (directory / entry.path).is_file()
    for location in (output, directory, directory.as_uri()):
        assert load_manifest(location, SESSION) == load_manifest(directory, SESSION)
        assert list(published_sessions(location)) == [SESSION]
        assert verify_session(location, SESSION).ok
        assert [r.ok for r in verify_all(location)] == [True]
    check_session_space(output, output, published_bytes=1)


def test_verify_through_a_file_uri_still_finds_corruption(tmp_path):
    directory = tmp_path / "out"
    manifest = _publish(directory)
    target = directory / manifest.files[0].path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = verify_session(directory.as_uri(), SESSION)
    assert not report.ok
    assert any(p.kind == "checksum_mismatch" for p in report.errors)


def test_pipeline_settings_resolve_file_uris(tmp_path):
    storage = SimpleNamespace(
        output_dir=(tmp_path / "out").as_uri(),
        temp_dir=Path((tmp_path / "tmp").as_uri()),  # as a Path-typed setting would hold it
        min_free_gb=0,
        file_mode="640",
    )
    settings = SimpleNamespace(
        thetadata=SimpleNamespace(
            subscription_tier="standard", base_url="http://127.0.0.1:25503", api_version="v3"
        ),
        processing=SimpleNamespace(roots=["SPXW"], datasets=["eod"], interval="1m", max_dte=None),
        storage=storage,
        effective_concurrency=4,
    )
    cfg = PipelineSettings.from_settings(settings)
    assert cfg.output_dir == tmp_path / "out"
    assert cfg.temp_dir == tmp_path / "tmp"


def test_pipeline_settings_refuse_an_object_store(tmp_path):
    settings = SimpleNamespace(
        thetadata=SimpleNamespace(
            subscription_tier="standard", base_url="http://127.0.0.1:25503", api_version="v3"
        ),
        processing=SimpleNamespace(roots=["SPXW"], datasets=["eod"], interval="1m", max_dte=None),
        storage=SimpleNamespace(
            output_dir="s3://bucket/spx", temp_dir=str(tmp_path), min_free_gb=0, file_mode="640"
        ),
        effective_concurrency=4,
    )
    with pytest.raises(UnsupportedStorageLocation, match="s3://bucket/spx"):
        PipelineSettings.from_settings(settings)
