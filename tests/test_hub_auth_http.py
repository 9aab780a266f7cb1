"""`require(role)` on a real uvicorn server over real HTTP: 401 vs 403, the JSON error
shape, the WebSocket handshake, revocation by the CLI, and no token in any log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from broker import free_port
from cloud_hub import Role, TokenStore
from cloud_hub._auth import Identity, authorize_websocket, install_auth, require
from tests.test_hub_auth import hub_cli

ROLES = ("viewer", "supervisor", "planner", "admin")
# (method, path, least role): one route per role.
ROUTES = [("GET", "/api/v1/workflows", "viewer"),
          ("POST", "/api/v1/workflows/w1/pause", "supervisor"),
          ("POST", "/api/v1/workflows", "planner"),
          ("POST", "/api/v1/admin/check", "admin")]


def make_app(tokens: TokenStore) -> FastAPI:
    """A small API guarded like the hub's: one route per role, /health open, a WebSocket."""
    app = FastAPI()
    install_auth(app, tokens)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for method, path, role in ROUTES:
        app.add_api_route(path, _route(role), methods=[method])

    @app.websocket("/ws/workflows")
    async def ws(websocket: WebSocket) -> None:
        who = await authorize_websocket(websocket, Role.viewer)
        if who is None:
            return
        await websocket.accept()
        await websocket.send_json({"who": who.name})
        await websocket.close()

    return app


def _route(role: str) -> Callable[..., dict[str, str]]:
    """A route that needs ``role`` and answers with the caller's identity."""
    guard = require(role)

    def route(who: Identity = Depends(guard)) -> dict[str, str]:  # noqa: B008
        return {"who": who.name, "role": who.role.name}

    return route


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The hub's data directory."""
    return tmp_path / "hub"


@pytest.fixture
def tokens(data: Path) -> dict[str, str]:
    """One token per role, named after it."""
    store = TokenStore.in_dir(data)
    return {role: store.create(role, role) for role in ROLES}


@pytest.fixture
def url(data: Path, tokens: dict[str, str]) -> Iterator[str]:
    """A uvicorn server on a free port serving ``make_app``; stopped after the test."""
    port = free_port()
    config = uvicorn.Config(make_app(TokenStore.in_dir(data)), host="127.0.0.1", port=port,
                            log_config=None, log_level="debug", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def call(url: str, method: str, path: str, token: str | None = None,
         scheme: str = "Bearer") -> httpx.Response:
    """One request, with ``Authorization: SCHEME TOKEN`` if a token is given."""
    headers = {"Authorization": f"{scheme} {token}".strip()} if token is not None else {}
    return httpx.request(method, url + path, headers=headers, timeout=10)


def test_health_is_open(url: str) -> None:
    """/health answers without a token."""
    assert call(url, "GET", "/health").json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path", "least"), ROUTES)
def test_no_token_is_401(url: str, method: str, path: str, least: str) -> None:
    """Every guarded route, read or write, refuses a request without a token: 401, a
    Bearer challenge and the JSON error shape."""
    r = call(url, method, path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthorized"
    assert "bearer token" in r.json()["error"]["message"]


def test_bad_tokens_are_401(url: str, tokens: dict[str, str]) -> None:
    """A malformed, unknown or tampered token, or another auth scheme, is 401."""
    good = tokens["admin"]
    for token, scheme in (("nonsense", "Bearer"), ("ff_000000000000_" + "A" * 43, "Bearer"),
                          (good[:-1] + ("A" if good[-1] != "A" else "B"), "Bearer"),
                          (good, "Basic"), ("", "")):
        r = call(url, "GET", "/api/v1/workflows", token, scheme)
        assert r.status_code == 401, (token, scheme)
        assert "Bearer" in r.headers["www-authenticate"]
        assert good not in r.text


@pytest.mark.parametrize("have", ROLES)
def test_role_matrix_200_or_403(url: str, tokens: dict[str, str], have: str) -> None:
    """A token passes every route needing its role or a lower one, returning its identity,
    and gets 403 naming both roles on every route above it."""
    for method, path, least in ROUTES:
        r = call(url, method, path, tokens[have])
        if Role[have] >= Role[least]:
            assert r.status_code == 200, (have, path, r.text)
            assert r.json() == {"who": have, "role": have}
        else:
            assert r.status_code == 403, (have, path)
            err = r.json()["error"]
            assert err["code"] == "forbidden" and have in err["message"]
            assert least in err["message"]
            assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_revoke_by_cli_applies_at_next_request(url: str, data: Path,
                                               tokens: dict[str, str]) -> None:
    """`fleetflow hub token revoke` while the server runs: the next request is 401; a
    token created meanwhile works at once."""
    assert call(url, "POST", "/api/v1/workflows", tokens["planner"]).status_code == 200
    assert hub_cli("token", "revoke", "planner", "--data", str(data)).returncode == 0
    assert call(url, "POST", "/api/v1/workflows", tokens["planner"]).status_code == 401
    made = hub_cli("token", "create", "--data", str(data), "--name", "late", "--role", "viewer")
    assert call(url, "GET", "/api/v1/workflows", made.stdout.strip()).json()["who"] == "late"


def test_unreadable_token_file_fails_closed(url: str, data: Path,
                                            tokens: dict[str, str]) -> None:
    """A token file broken under a running server refuses every request (503), it does
    not let requests through."""
    (data / "tokens.json").write_text("{broken")
    r = call(url, "GET", "/api/v1/workflows", tokens["admin"])
    assert r.status_code == 503 and r.json()["error"]["code"] == "auth_unavailable"


def test_websocket_needs_a_token(url: str, tokens: dict[str, str]) -> None:
    """The WebSocket handshake is refused without a valid token and accepted with one."""
    ws_url = url.replace("http", "ws") + "/ws/workflows"
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(ws_url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 403
    auth = {"Authorization": f"Bearer {tokens['viewer']}"}
    with ws_connect(ws_url, additional_headers=auth, open_timeout=10) as ws:
        assert ws.recv(timeout=10) == '{"who":"viewer"}'


def test_openapi_declares_bearer_auth(url: str) -> None:
    """/openapi.json declares the bearer scheme on guarded routes, so /docs can send it."""
    spec = call(url, "GET", "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/workflows"]["get"]["security"] == [{"bearer": []}]


def test_tokens_never_logged(url: str, tokens: dict[str, str],
                             caplog: pytest.LogCaptureFixture) -> None:
    """Accepted, refused (401, 403) and WebSocket requests log no token, not even a part
    of its secret, while the access log and the refusal log do record them."""
    caplog.set_level(logging.DEBUG)
    call(url, "POST", "/api/v1/admin/check", tokens["viewer"])
    call(url, "GET", "/api/v1/workflows", tokens["admin"])
    call(url, "GET", "/api/v1/workflows", tokens["admin"][:-2] + "xx")
    ws_url = url.replace("http", "ws") + "/ws/workflows"
    with ws_connect(ws_url, additional_headers={"Authorization": f"Bearer {tokens['admin']}"},
                    open_timeout=10) as ws:
        ws.recv(timeout=10)
    time.sleep(0.2)  # the server thread logs after it answered
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/v1/admin/check" in logged and "refused viewer" in logged
    handshake = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
    assert [m for m in handshake if "authorization" in m] == ["< authorization: [redacted]"]
    for token in tokens.values():
        assert token not in logged and token.split("_", 2)[2][:8] not in logged
