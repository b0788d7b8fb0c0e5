"""Dagster resources: thin typed wrappers over the plain-Python parts in ``core/``.

Settings are read from the config store when a run starts (not when the code location loads), so
``spx-data config set`` takes effect on the next run without restarting ``spx-data serve``. A
value given in a resource's run config (e.g. in the launchpad) overrides the stored one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from spx_dagster.core.session_stages import PipelineSettings
from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.core.thetadata.health import terminal_kind


def load_user_settings(home: str | None = None) -> Any:
    """The user's settings: defaults ← config store ← ``SPX_DATA_*`` environment."""
    from spx_dagster.core.config import load_settings

    return load_settings(Path(home).expanduser() if home else None)


class SpxSettingsResource(dg.ConfigurableResource):
    """The spx-data settings of this run (``SPX_DATA_HOME`` unless ``home`` is given)."""

    home: str | None = None

    def load(self) -> Any:
        return load_user_settings(self.home)

    def pipeline(self, settings: Any | None = None) -> PipelineSettings:
        """The stage settings, with the data source (simulator or terminal) detected."""
        settings = settings if settings is not None else self.load()
        td = settings.thetadata
        kind = terminal_kind(str(td.base_url), str(td.api_version))
        return PipelineSettings.from_settings(settings, source_kind=kind)


class ThetaDataResource(dg.ConfigurableResource):
    """ThetaTerminal access for assets.

    Every field left unset is taken from the config store when the client is made. Concurrency
    here is per process (a semaphore shared by every client of the same terminal); across runs
    the ``thetadata`` Dagster pool, sized to the subscription tier, bounds the total.
    """

    base_url: str | None = None
    api_version: str | None = None
    concurrency: int | None = None
    connect_timeout_s: float | None = None
    timeout_s: float | None = None
    max_attempts: int | None = None
    backoff_max_s: float | None = None
    end_time: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ThetaDataResource:
        """The resource configured from the settings model (``core/config``)."""
        return cls(**_client_options(settings))

    def get_client(self, settings: Any | None = None) -> ThetaClient:
        """A new client for this configuration (cheap: the request limit is shared)."""
        options = self._explicit()
        if len(options) < len(_CLIENT_FIELDS):
            stored = _client_options(settings if settings is not None else load_user_settings())
            options = {**stored, **options}
        return ThetaClient(**options)

    def _explicit(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in _CLIENT_FIELDS}
        return {k: v for k, v in values.items() if v is not None}


_CLIENT_FIELDS = (
    "base_url",
    "api_version",
    "concurrency",
    "connect_timeout_s",
    "timeout_s",
    "max_attempts",
    "backoff_max_s",
    "end_time",
)


def _client_options(settings: Any) -> dict[str, Any]:
    td = settings.thetadata
    concurrency = getattr(settings, "effective_concurrency", None) or td.concurrency
    end_time = getattr(getattr(settings, "processing", None), "end_time", None)
    options = dict(
        base_url=str(td.base_url),
        api_version=str(td.api_version),
        concurrency=int(concurrency),
        connect_timeout_s=float(td.connect_timeout_s),
        timeout_s=float(td.timeout_s),
        max_attempts=int(td.request_max_attempts),
        backoff_max_s=float(td.backoff_max_s),
    )
    if end_time is not None:
        options["end_time"] = str(end_time)
    return options
