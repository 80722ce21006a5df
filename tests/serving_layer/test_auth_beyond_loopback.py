"""The API and the dashboard refuse to listen beyond loopback without a token, and then require it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from contracts.errors import ConfigError
from contracts.settings import PROJECT_ROOT, Settings
from serving_layer.api import create_app
from serving_layer.auth import authorized, check_exposure, host_allowed, is_loopback
from serving_layer.dashboard.app import create_app as create_dashboard
from serving_layer.service import ServingLayer
from tests.conftest import free_port

TOKEN = "s3cret-token"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("10.0.0.5", False), ("shop.example", False)],
)  # fmt: skip
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    settings = Settings(bind_host=host)
    if loopback:
        assert check_exposure(settings, "API") is None
    else:
        with pytest.raises(ConfigError, match="RETAIL_SERVING_AUTH_TOKEN"):
            check_exposure(settings, "API")
        assert check_exposure(Settings(bind_host=host, serving_auth_token=SecretStr(TOKEN)), "API") == TOKEN


@pytest.mark.parametrize("command", ["serve", "dashboard"])
def test_the_commands_refuse_a_wildcard_bind_without_a_token(tmp_path, command: str) -> None:
    env = {**os.environ, "RETAIL_BIND_HOST": "0.0.0.0", "RETAIL_LAKE_ROOT": str(tmp_path)}
    env.pop("RETAIL_SERVING_AUTH_TOKEN", None)
    env["RETAIL_API_PORT"] = env["RETAIL_DASHBOARD_PORT"] = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "retail_cli.main", command],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "RETAIL_SERVING_AUTH_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_header_forms() -> None:
    basic = "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()
    assert authorized(f"Bearer {TOKEN}", TOKEN)
    assert not authorized("Bearer wrong", TOKEN) and not authorized(None, TOKEN) and not authorized("", TOKEN)
    assert not authorized(basic, TOKEN), "the API takes only Bearer"
    assert authorized(basic, TOKEN, basic=True)
    assert not authorized("Basic !!notbase64", TOKEN, basic=True)


def test_with_a_token_the_api_and_the_dashboard_require_it(tmp_path) -> None:
    settings = Settings(lake_root=str(tmp_path), serving_auth_token=SecretStr(TOKEN))
    with ServingLayer(str(tmp_path)) as serving:
        api = TestClient(base_url="http://127.0.0.1", app=create_app(serving, TOKEN))
        refused = api.get("/api/health")
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        assert TOKEN not in refused.text
        assert api.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200

        dashboard = create_dashboard(serving, settings).server.test_client()
        page = dashboard.get("/")
        assert page.status_code == 401 and page.headers["WWW-Authenticate"].startswith("Basic")
        login = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
        assert dashboard.get("/", headers={"Authorization": f"Basic {login}"}).status_code == 200


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The API and the dashboard with a token, as test clients."""
    lake = tmp_path_factory.mktemp("guarded")
    with ServingLayer(str(lake)) as serving:
        api = TestClient(base_url="http://127.0.0.1", app=create_app(serving, TOKEN))
        dashboard = create_dashboard(serving, Settings(lake_root=str(lake), serving_auth_token=SecretStr(TOKEN)))
        yield api, dashboard.server.test_client()


# what a client can put in a header: Latin-1 text, which is what WSGI and ASGI hand to the check
_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)


@hypothesis_settings(max_examples=150, deadline=None)
@given(header=_HEADER_TEXT)
def test_any_malformed_header_gets_a_401_never_a_500(guarded, header: str) -> None:  # type: ignore[no-untyped-def]
    """Any Authorization header that does not carry the token is a 401 from both, never a 500 ("Basic é" once
    crashed the dashboard's check)."""
    assume(TOKEN not in header)
    api, dashboard = guarded
    for value in (header, f"Basic {header}", f"Bearer {header}"):
        assert not authorized(value, TOKEN) and not authorized(value, TOKEN, basic=True)
        assert dashboard.get("/", headers={"Authorization": value}).status_code == 401
        answer = api.get("/api/health", headers={"Authorization": value.encode("latin-1")})
        assert answer.status_code == 401


def test_a_non_ascii_basic_header_is_a_401(guarded) -> None:  # type: ignore[no-untyped-def]
    _, dashboard = guarded
    assert dashboard.get("/", headers={"Authorization": "Basic é"}).status_code == 401


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1:8000", True), ("localhost:8050", True), ("localhost", True), ("[::1]:8000", True),
     ("127.0.0.2", True), (None, True), ("evil.example:8000", False), ("evil.example", False),
     ("127.0.0.1.evil.example", False), ("localhost.evil.example:8000", False), ("[::1", False), ("", False),
     ("0.0.0.0:8000", False), ("10.0.0.5:8000", False), ("::1", True)],
)  # fmt: skip
def test_without_a_token_only_requests_addressed_to_loopback_are_answered(tmp_path, host, allowed) -> None:  # type: ignore[no-untyped-def]
    """DNS rebinding: a page whose own name now resolves to 127.0.0.1 makes the browser send that name as Host."""
    assert host_allowed(host) is allowed
    if host is None:
        return
    with ServingLayer(str(tmp_path)) as serving:
        api = TestClient(base_url="http://127.0.0.1", app=create_app(serving))
        answer = api.get("/api/health", headers={"Host": host})
        assert (answer.status_code != 400) is allowed, answer.text
        dashboard = create_dashboard(serving, Settings(lake_root=str(tmp_path))).server.test_client()
        page = dashboard.get("/", headers={"Host": host})
        assert (page.status_code == 200) is allowed, page.status_code
