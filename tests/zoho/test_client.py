"""The Zoho Analytics client against the sandbox over HTTP: OAuth refresh, the org header, imports of every kind
and their CONFIG semantics, the SQL export, metadata calls, per-minute limits, units and batch retries."""

from __future__ import annotations

import time

import httpx
import pytest

from gp_pipelines.connectors.zoho import (
    ZohoApiError,
    ZohoAuthError,
    ZohoCredentials,
    ZohoJobError,
    ZohoThrottledError,
    ZohoUnitsExhaustedError,
    forget_cached_tokens,
)
from gp_pipelines.sandbox.zoho import ZohoSandboxOptions, ZohoSandboxServer
from tests.zoho.conftest import FAST_LIMITS, make_client

COLUMNS = [("id", "NUMBER"), ("name", "PLAIN"), ("amount", "DECIMAL_NUMBER"), ("day", "DATE"), ("ok", "BOOLEAN")]
HEADER = "id,name,amount,day,ok\n"


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def _table(client, name: str = "t") -> str:
    return client.create_table(name, COLUMNS)


def _rows(client, table: str = "t") -> list[dict[str, str]]:
    return client.export_sql(f'SELECT * FROM "{table}" ORDER BY "id"')


def test_token_is_refreshed_once_when_it_expires(zoho_server, client):
    _table(client)
    assert zoho_server.state()["token_grants"] == 1
    client.list_views()
    assert zoho_server.state()["token_grants"] == 1  # cached, not asked for again
    zoho_server.inject(expire_tokens=True)
    assert [v.name for v in client.list_views()] == ["t"]  # 8535 -> refresh -> same call again
    assert zoho_server.state()["token_grants"] == 2
    assert client.stats.token_refreshes == 2


def test_a_token_about_to_expire_is_refreshed_before_it_is_refused():
    # The client renews a token 60 s before its announced expiry; a 61 s token is due after 1 s.
    with ZohoSandboxServer(ZohoSandboxOptions(per_minute=dict(FAST_LIMITS), token_lifetime_seconds=61)) as server:
        client = make_client(server)
        client.list_views()
        client.list_views()
        assert server.state()["token_grants"] == 1
        time.sleep(1.05)
        client.list_views()
        assert server.state()["token_grants"] == 2
        assert client.stats.requests == 3  # no call was refused with 8535 on the way


def test_bad_refresh_token_is_a_clear_auth_error(zoho_server):
    client = make_client(zoho_server)
    client.credentials = ZohoCredentials(client.credentials.client_id, client.credentials.client_secret, "1000.nope")
    forget_cached_tokens()
    with pytest.raises(ZohoAuthError, match=r"refused the refresh token \(invalid_code\).*data centre") as caught:
        client.list_views()
    assert "1000.nope" not in str(caught.value) and client.credentials.client_secret not in str(caught.value)
    assert "***" in repr(client.credentials)


def test_org_header_token_and_workspace_are_checked(zoho_server, client):
    token = client.access_token()
    base = f"{zoho_server.root_url}/restapi/v2/workspaces/{zoho_server.identity.workspace_id}/views"
    auth = {"Authorization": f"Zoho-oauthtoken {token}"}
    no_org = httpx.get(base, headers=auth).json()
    assert no_org["status"] == "failure" and no_org["data"]["errorCode"] == 8083
    no_token = httpx.get(base, headers={"ZANALYTICS-ORGID": zoho_server.identity.org_id}).json()
    assert no_token["data"]["errorCode"] == 8518
    wrong_ws = httpx.get(base.replace(zoho_server.identity.workspace_id, "1"),
                         headers={**auth, "ZANALYTICS-ORGID": zoho_server.identity.org_id}).json()
    assert wrong_ws["data"]["errorCode"] == 7103
    with pytest.raises(ZohoApiError, match="error 7138"):
        client.rename_view("42", "x")


def test_sync_import_types_and_summary(zoho_server, client):
    view = _table(client)
    summary = client.import_sync(view, _csv("1,a,1.50,2025-01-02,true", '2,"b, c",2.25,2025-02-03,false'),
                                 import_type="append")
    assert (summary.total_rows, summary.success_rows, summary.selected_columns) == (2, 2, 5)
    client.import_sync(view, _csv("3,c,3.00,,"), import_type="append")
    assert [r["id"] for r in _rows(client)] == ["1", "2", "3"]
    client.import_sync(view, _csv("2,B,9.00,2025-02-03,true", "4,d,4.00,2025-03-01,false"), import_type="updateadd",
                       matching_columns=["id"])
    rows = _rows(client)
    assert [(r["id"], r["name"], r["amount"]) for r in rows] == [("1", "a", "1.5"), ("2", "B", "9.0"),
                                                                  ("3", "c", "3.0"), ("4", "d", "4.0")]
    client.import_sync(view, _csv("9,z,0.10,2025-04-01,true"), import_type="truncateadd")
    assert [r["id"] for r in _rows(client)] == ["9"]
    with pytest.raises(ValueError, match="matching_columns"):
        client.import_sync(view, _csv("1,a,1,2025-01-01,true"), import_type="updateadd")


def test_on_error_abort_skiprow_setcolumnempty(zoho_server, client):
    view = _table(client)
    bad = _csv("1,a,1.00,2025-01-02,true", "2,b,not-a-number,2025-01-03,false")
    with pytest.raises(ZohoApiError, match=r"error 7507: .*line 3, column 'amount'"):
        client.import_sync(view, bad, import_type="append")
    assert _rows(client) == []  # abort: nothing written
    skipped = client.import_sync(view, bad, import_type="append", on_error="skiprow")
    assert (skipped.total_rows, skipped.success_rows) == (2, 1)
    emptied = client.import_sync(view, bad, import_type="truncateadd", on_error="setcolumnempty")
    assert emptied.success_rows == 2
    assert [r["amount"] for r in _rows(client)] == ["1.0", ""]
    with pytest.raises(ZohoApiError, match="error 7235: column 'amt'"):
        client.import_sync(view, b"id,amt\n1,2\n", import_type="append")


def test_async_bulk_import_is_polled_to_completion(zoho_server, client):
    zoho_server.control("settings", {"job_polls_until_done": 3})
    view = _table(client)
    job = client.start_bulk_import(view, _csv("1,a,1,2025-01-01,true", "2,b,2,2025-01-01,true"),
                                   import_type="truncateadd")
    assert client.import_job(job)["jobCode"] == "1002"
    summary = client.wait_for_import(job)
    assert summary.success_rows == 2 and summary.import_type == "TRUNCATEADD"
    assert client.import_job("123")["jobCode"] == "1005"


def test_batch_import_truncateadd_commits_only_after_the_last_batch(zoho_server, client):
    view = _table(client)
    client.import_sync(view, _csv("7,old,7,2025-01-01,true"), import_type="append")
    first = client._request("POST", f"{client._bulk}/views/{view}/data/batch", files=client._file(
        _csv("1,a,1,2025-01-01,true")), config={"importType": "truncateadd", "fileType": "csv",
                                               "autoIdentify": True, "batchKey": "start", "isLastBatch": False})
    assert [r["id"] for r in _rows(client)] == ["7"]  # nothing committed yet
    client._request("POST", f"{client._bulk}/views/{view}/data/batch", files=client._file(
        _csv("2,b,2,2025-01-01,true")), config={"importType": "truncateadd", "fileType": "csv",
                                               "autoIdentify": True, "batchKey": first["batchKey"],
                                               "isLastBatch": True})
    assert client.wait_for_import(first["jobId"]).success_rows == 2
    assert [r["id"] for r in _rows(client)] == ["1", "2"]


def test_batch_import_updateadd_and_a_failed_batch_is_sent_again(zoho_server, client):
    view = _table(client)
    batches = [_csv(*(f"{i},n{i},{i}.25,2025-0{1 + i % 3}-01,true" for i in range(start, start + 5)))
               for start in (0, 5, 10)]
    zoho_server.inject(fail_batch=2)  # the second batch request answers HTTP 500 once
    summary = client.wait_for_import(client.import_batches(view, batches, import_type="updateadd",
                                                           matching_columns=["id"]))
    assert summary.success_rows == 15
    assert client.stats.retries == 1
    assert zoho_server.state()["import_requests"] == 4  # three batches, one of them twice
    assert len(_rows(client)) == 15


def test_a_failed_job_is_reported(zoho_server, client):
    view = _table(client)
    zoho_server.inject(job_error=1)
    job = client.import_batches(view, [_csv("1,a,1,2025-01-01,true")], import_type="truncateadd")
    with pytest.raises(ZohoJobError, match=f"import job {job}: ERROR OCCURRED"):
        client.wait_for_import(job)
    assert _rows(client) == []  # truncateadd never committed


def test_sql_export_counts_sums_groups_and_filters(zoho_server, client):
    view = _table(client)
    client.import_sync(view, _csv("1,a,1.50,2025-01-02,true", "2,a,2.25,2025-01-03,false",
                                  "3,b,10.00,2025-02-01,true"), import_type="append")
    grouped = client.export_sql('SELECT "name", COUNT(*) AS "n", SUM("amount") AS "total" FROM "t" '
                                'WHERE "id" > 0 GROUP BY "name" ORDER BY "name"')
    assert grouped == [{"name": "a", "n": "2", "total": "3.75"}, {"name": "b", "n": "1", "total": "10.0"}]
    assert client.export_sql("""SELECT COUNT(*) AS "n" FROM "t" WHERE "ok" = 'true'""") == [{"n": "2"}]
    with pytest.raises(ZohoApiError, match="must be a SELECT"):
        client.export_sql('DELETE FROM "t"')
    with pytest.raises(ZohoApiError, match="invalid sqlQuery"):
        client.export_sql('SELECT * FROM "t"; DELETE FROM "t"')
    assert len(_rows(client)) == 3


def test_metadata_create_rename_delete_list(zoho_server, client):
    first = _table(client, "alpha")
    second = _table(client, "beta")
    with pytest.raises(ZohoApiError, match="already exists"):
        client.rename_view(first, "beta")
    client.rename_view(first, "gamma")
    assert {v.name for v in client.list_views()} == {"gamma", "beta"}
    assert client.find_view("GAMMA").view_id == first
    client.delete_view(second)
    assert [v.name for v in client.list_views()] == ["gamma"]
    with pytest.raises(ZohoApiError, match="DATATYPE"):
        client.create_table("bad", [("x", "MONEY")])


def test_forced_throttling_is_waited_out(zoho_server, client):
    client.list_views()
    zoho_server.inject(throttle=3)
    assert client.list_views() == []
    assert client.stats.throttle_waits == 3
    zoho_server.inject(throttle=10)
    client.throttle_retries = 2
    with pytest.raises(ZohoThrottledError, match="error 6045"):
        client.list_views()


def test_per_minute_window_is_waited_out():
    limits = {**FAST_LIMITS, "metadata": 3}
    with ZohoSandboxServer(ZohoSandboxOptions(per_minute=limits, window_seconds=0.3)) as server:
        client = make_client(server, throttle_wait_seconds=0.1)
        started = time.monotonic()
        for _ in range(7):
            client.list_views()
        assert client.stats.throttle_waits >= 2  # the 4th and 7th call each met a full window
        assert time.monotonic() - started >= 0.2
        assert server.state()["requests"]["metadata"] == 7 + client.stats.throttle_waits


def test_units_are_charged_and_the_daily_limit_refuses(zoho_server, client):
    view = _table(client)
    rows = [f"{i},n,1,2025-01-01,true" for i in range(1500)]
    client.import_sync(view, _csv(*rows), import_type="truncateadd")  # 15 units
    client.import_sync(view, _csv(*rows[:100]), import_type="updateadd", matching_columns=["id"])  # 2 units
    assert zoho_server.state()["units_used"] == 17
    zoho_server.control("settings", {"daily_units": 20})
    with pytest.raises(ZohoUnitsExhaustedError, match="error 6044"):
        client.import_sync(view, _csv(*rows[:1000]), import_type="append")
    zoho_server.control("settings", {"units_used": 20})
    with pytest.raises(ZohoUnitsExhaustedError, match="error 6043"):
        client.import_sync(view, _csv(rows[0]), import_type="append")
    assert client.stats.units_errors == 2
