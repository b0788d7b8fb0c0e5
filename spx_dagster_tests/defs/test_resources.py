"""ThetaDataResource: typed config in, a configured client out."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import dagster as dg
import pytest

from spx_dagster.core.thetadata.client import ThetaClient
from spx_dagster.defs.resources import ThetaDataResource


def settings(**thetadata):
    values = dict(
        base_url="http://127.0.0.1:25999",
        api_version="v3",
        subscription_tier="pro",
        concurrency=8,
        timeout_s=30.0,
        connect_timeout_s=2.0,
        request_max_attempts=5,
        backoff_max_s=9.0,
    )
    values.update(thetadata)
    return SimpleNamespace(
        thetadata=SimpleNamespace(**values),
        effective_concurrency=2,
        processing=SimpleNamespace(end_time=dt.time(16, 15)),
    )


def test_resource_from_settings_builds_the_client():
    resource = ThetaDataResource.from_settings(settings())
    client = resource.get_client()
    assert isinstance(client, ThetaClient)
    assert client.base_url == "http://127.0.0.1:25999"
    assert client.concurrency == 2  # the effective (tier-capped) concurrency wins
    assert client.timeout_s == 30.0 and client.connect_timeout_s == 2.0
    assert client.policy.max_attempts == 5 and client.policy.backoff_max_s == 9.0
    assert client.end_time == dt.time(16, 15)


def test_client_from_settings_matches_the_resource():
    client = ThetaClient.from_settings(settings())
    resource_client = ThetaDataResource.from_settings(settings()).get_client()
    assert (client.base_url, client.concurrency, client.end_time) == (
        resource_client.base_url,
        resource_client.concurrency,
        resource_client.end_time,
    )


def test_resource_is_usable_by_an_asset():
    @dg.asset
    def probe_config(thetadata: ThetaDataResource) -> str:
        return thetadata.get_client().base_url

    result = dg.materialize(
        [probe_config], resources={"thetadata": ThetaDataResource(base_url="http://127.0.0.1:1")}
    )
    assert result.success
    assert result.output_for_node("probe_config") == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"api_version": "v4"}, "thetadata.api_version 'v4'"),
        ({"base_url": "http://127.0.0.1:25503/v3"}, "drop it"),
        ({"concurrency": 0}, "at least 1"),
        ({"end_time": "quarter past four"}, "HH:MM:SS"),
    ],
)
def test_bad_client_settings_say_what_to_do(kwargs, message):
    options = {"base_url": "http://127.0.0.1:25998", **kwargs}
    with pytest.raises(ValueError, match=message):
        ThetaDataResource(**options).get_client()
