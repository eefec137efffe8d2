"""Each request form the vendor's texts disagree on: a setting of the client, a form the
simulator serves on request, and the key out of every log line when it travels in the URL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import requests

from de_pipeline.api import ApiAuthError, ApiSettings, DigitalEngagementClient, Window
from de_pipeline.api.settings import CUSTOMER_SESSION_PATH, PROVIDER_PATH
from de_pipeline.env import SettingsError
from de_pipeline.simulator import SimulatorConfig, simulator_config_from_env
from de_pipeline_tests.conftest import TEST_PROVIDER
from de_pipeline_tests.test_api_client import TRICKY_KEY, assert_secret_free, encodings

PARTNER = "partner-42"
SESSION_IN_PATH = CUSTOMER_SESSION_PATH + "/{customersessionid}"


SMALL_PAGE = 5  # the `limit` of the smallest page these tests ask for


def recent_day(simulator) -> Window:
    """The latest day up to yesterday that holds more than SMALL_PAGE messages: no outage, nor
    a quiet Sunday whose journeys began just before midnight (2028-09-24 held 4 at 40 a day)."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    while len(simulator.dataset.payloads_between(*simulator.dataset.day_bounds_ms(day))) <= SMALL_PAGE:
        day -= timedelta(days=1)
    return Window(*simulator.dataset.day_bounds_ms(day))


def rows(pages) -> list[bytes]:
    return [item for page in pages for item in orjson.loads(page.body)]


# ---- the settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DE_AUTH_IN", "cookie", "must be one of: bearer, query, header"),
        ("DE_API_KEY_PARAM", "api key", "must be a name of letters"),
        ("DE_API_KEY_PARAM", "offset", "already uses"),
        ("DE_API_KEY_HEADER", "providerid", "already uses"),
        ("DE_CUSTOMER_SESSION_METHOD", "put", "must be one of: get, post"),
        ("DE_CUSTOMER_SESSION_PATH", "/sessions/{id}", "{customersessionid} may stand in it once"),
        ("DE_CUSTOMER_SESSION_PATH", "/s/{customersessionid}/{customersessionid}", "may stand in it once"),
        ("DE_PROVIDER_PATH", "/p/{customersessionid}", "without braces"),
        ("DE_PARTNER_ID", "p1\nInjected: yes", "control character"),
    ],
)
def test_a_bad_request_form_setting_is_one_line_naming_it(name, value, expected):
    environ = {"DE_API_BASE_URL": "https://api.example.com", "DE_API_KEY": "k", "DE_PROVIDER_ID": "p", name: value}
    with pytest.raises(SettingsError) as info:
        ApiSettings.from_env(environ)
    assert name in str(info.value) and expected in str(info.value)
    assert "\n" not in str(info.value).replace(repr(value), "")


def test_the_request_forms_default_to_the_article_and_are_read_from_the_environment():
    base = {"DE_API_BASE_URL": "https://api.example.com", "DE_API_KEY": "k", "DE_PROVIDER_ID": "p"}
    default = ApiSettings.from_env(base)
    assert (default.auth_in, default.partner_id, default.customer_session_method) == ("bearer", None, "GET")
    chosen = ApiSettings.from_env(
        base
        | {
            "DE_AUTH_IN": "Header",
            "DE_API_KEY_HEADER": "X-Api-Key",
            "DE_PARTNER_ID": PARTNER,
            "DE_CUSTOMER_SESSION_METHOD": "post",
            "DE_CUSTOMER_SESSION_PATH": SESSION_IN_PATH,
        }
    )
    assert (chosen.auth_in, chosen.api_key_header, chosen.partner_id) == ("header", "X-Api-Key", PARTNER)
    assert (chosen.customer_session_method, chosen.customer_session_path) == ("POST", SESSION_IN_PATH)


def test_the_simulators_forms_follow_the_client_unless_de_sim_says_otherwise():
    client_side = {"DE_AUTH_IN": "query", "DE_EPOCH_UNIT": "ms", "DE_CUSTOMER_SESSION_PATH": SESSION_IN_PATH}
    config = simulator_config_from_env(client_side)
    assert (config.auth_in, config.epoch_unit, config.customer_session_path) == ("query", "ms", SESSION_IN_PATH)
    other = simulator_config_from_env(
        client_side
        | {
            "DE_SIM_AUTH_IN": "bearer",
            "DE_SIM_EPOCH_UNIT": "s",
            "DE_SIM_SESSIONID_TYPE": "number",
            "DE_SIM_TS_TYPE": "string",
            "DE_SIM_PARTNER_ID": PARTNER,
            "DE_SIM_PROVIDERID_IN": "query",
            "DE_SIM_CUSTOMER_SESSION_METHOD": "POST",
        }
    )
    assert (other.auth_in, other.epoch_unit, other.sessionid_type, other.ts_type) == ("bearer", "s", "number", "string")
    assert (other.partner_id, other.providerid_in, other.customer_session_method) == (PARTNER, "query", "POST")
    assert simulator_config_from_env({}) == SimulatorConfig()  # the contract, as before
    with pytest.raises(SettingsError, match="DE_SIM_TS_TYPE"):
        simulator_config_from_env({"DE_SIM_TS_TYPE": "float"})


# ---- the simulator serves each form --------------------------------------------------------------


def test_a_server_taking_the_key_as_query_parameters_refuses_the_bearer_form(start_simulator):
    simulator = start_simulator(messages_per_day=40, auth_in="query", providerid_in="query", partner_id=PARTNER)
    window = recent_day(simulator)
    body = orjson.dumps({"start": window.start_ms // 1000, "end": window.end_ms // 1000, "limit": SMALL_PAGE})
    key = simulator.config.api_key

    def post(params: dict[str, str], headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(simulator.base_url + PROVIDER_PATH, params=params, data=body, headers=headers, timeout=10)

    full = {"apiKey": key, "providerId": TEST_PROVIDER, "partnerId": PARTNER}
    assert post(full).status_code == 200 and len(post(full).json()) == SMALL_PAGE
    bearer = post({}, {"Authorization": f"Bearer {key}", "providerid": TEST_PROVIDER, "partnerid": PARTNER})
    assert bearer.status_code == 401 and bearer.json()["error"]
    assert post(full | {"providerId": "someone-else"}).status_code == 403
    without_partner = post({"apiKey": key, "providerId": TEST_PROVIDER})
    assert without_partner.status_code == 403 and "partner" in without_partner.json()["error"]
    provider_in_header = post({"apiKey": key, "partnerId": PARTNER}, {"providerid": TEST_PROVIDER})
    assert provider_in_header.status_code == 403


def test_sessionid_as_a_number_keeps_its_digits_and_ts_as_a_string(start_simulator):
    simulator = start_simulator(messages_per_day=40, sessionid_type="number", ts_type="string")
    window = recent_day(simulator)
    at = window.start_ms + 5_000
    record = {"text": "segment ten", "ts": at, "sessionid": "12.10", "customersessionid": "9.0001"}
    simulator.dataset.inject([(at, orjson.dumps(record))])
    body = orjson.dumps({"start": window.start_ms // 1000, "end": window.end_ms // 1000, "limit": 1000})
    headers = {"Authorization": f"Bearer {simulator.config.api_key}", "providerid": TEST_PROVIDER}
    answer = requests.post(simulator.base_url + PROVIDER_PATH, data=body, headers=headers, timeout=10)
    assert f'"ts":"{at}","sessionid":12.10,'.encode() in answer.content  # 12.10, not 12.1
    served = simulator.dataset.messages_between(window.start_ms, window.end_ms)
    got = answer.json()
    assert len(got) == len(served) and all(isinstance(m["ts"], str) for m in got)
    assert [m["ts"] for m in got] == [str(m["ts"]) for m in served]
    assert all(isinstance(m["sessionid"], float) for m in got)  # every well-formed "x.y" became a number


@pytest.mark.parametrize(
    ("served", "settings"),
    [
        ({"auth_in": "header", "api_key_header": "x-api-key"}, {"auth_in": "header", "api_key_header": "X-API-Key"}),
        (
            {"auth_in": "query", "providerid_in": "query", "partner_id": PARTNER},
            {"auth_in": "query", "providerid_in": "query", "partner_id": PARTNER},
        ),
        ({"partner_id": PARTNER}, {"partner_id": PARTNER}),
    ],
    ids=["key-in-a-header", "key-provider-partner-in-the-query", "bearer-and-partner-header"],
)
def test_the_client_sends_each_form_of_the_key(start_simulator, served, settings):
    simulator = start_simulator(messages_per_day=40, max_page_size=15, **served)
    window = recent_day(simulator)
    base = ApiSettings(simulator.base_url, simulator.config.api_key, TEST_PROVIDER)
    with DigitalEngagementClient(ApiSettings(**(base.__dict__ | settings))) as client:
        fetched = rows(client.provider_pages(window))
    assert fetched == simulator.dataset.messages_between(window.start_ms, window.end_ms)
    with DigitalEngagementClient(base) as client, pytest.raises(ApiAuthError, match="DE_AUTH_IN|DE_PROVIDER"):
        list(client.provider_pages(window))


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", SESSION_IN_PATH), ("POST", CUSTOMER_SESSION_PATH), ("POST", "/v2/{customersessionid}/messages")],
)
def test_the_customer_session_call_in_each_form(start_simulator, method, path):
    simulator = start_simulator(messages_per_day=40, customer_session_method=method, customer_session_path=path)
    window = recent_day(simulator)
    held = simulator.dataset.messages_between(window.start_ms, window.end_ms)
    csid = held[0]["customersessionid"]
    settings = ApiSettings(
        simulator.base_url,
        simulator.config.api_key,
        TEST_PROVIDER,
        customer_session_method=method,
        customer_session_path=path,
    )
    with DigitalEngagementClient(settings) as client:
        journey = rows(client.customer_session_pages(csid, window))
    assert journey == [m for m in held if m["customersessionid"] == csid]
    asked = [r for r in simulator.requests if r.method == method and r.customersessionid == csid]
    assert asked and all(r.status == 200 for r in asked)
    if "{customersessionid}" in path:  # the id went in the path, URL-quoted, and nowhere else
        assert all(r.path == path.replace("{customersessionid}", csid) for r in asked)


def test_a_key_in_the_query_string_never_reaches_a_log_line(start_simulator, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs each request's path and query at DEBUG
    simulator = start_simulator(messages_per_day=40, api_key=TRICKY_KEY, auth_in="query")
    window = recent_day(simulator)
    settings = ApiSettings(simulator.base_url, TRICKY_KEY, TEST_PROVIDER, auth_in="query")
    with DigitalEngagementClient(settings) as client:
        assert rows(client.provider_pages(window))
        answer = client.ask("POST", PROVIDER_PATH, {"start": window.start_ms // 1000, "end": window.end_ms // 1000})
    assert "apiKey=***" in caplog.text  # the lines are there, masked
    assert answer.request.query["apiKey"] == "***" and answer.status == 200
    text = caplog.text + repr(answer.request) + repr(settings)
    assert_secret_free(text, TRICKY_KEY)
    assert not [name for name, form in encodings(TRICKY_KEY).items() if form in text]
