"""The TCP API's front door: bearer tokens (no token, wrong, revoked, expired, wrong
scope -- each a one-line refusal with its status), a token acting as its user under the
socket's rules, the dashboard cookie, the rate limit, and where a listener may be."""

from __future__ import annotations

import pytest

from asgi_client import call
from corral.daemon import auth
from corral.daemon.api import create_app
from corral.addresses import check_listen
from corral.daemon.gateway import Gateway
from corral.daemon.tokens import Tokens
from corral.errors import ValidationError
from manager_helpers import manager

SYSTEM = auth.Access(mode=auth.SYSTEM, daemon_uid=0)
ALICE, BOB = (4001, 61001, 61001), (4002, 61002, 61001)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def env(tmp_path):
    clock = Clock()
    tokens = Tokens(str(tmp_path / "tokens.json"), clock=clock)
    m = manager()
    app = create_app(m, {"home": "/srv/corral"}, lambda: None, access=SYSTEM, tokens=tokens)
    return app, Gateway(app, tokens, rate=10, burst=3, clock=clock), tokens, clock


def token(app, peer, **body) -> str:
    answer = call(app, "POST", "/v1/tokens", body, peer=peer)
    assert answer.status == 201, answer.body
    return answer.json()["token"]


def bearer(text):
    return {"authorization": f"Bearer {text}"}


def job(command="true"):
    return {"jobs": [{"flags": {"command": command, "requests": {"cpu": "100m"}, "workdir": "/tmp"}}]}


def test_refusals_name_why(env):
    app, gw, tokens, clock = env
    good = token(app, ALICE, name="laptop", expires="1d")
    cases = {
        None: (401, "no token: send `Authorization: Bearer TOKEN` (make one with `corral token create`)"),
        "abc": (401, "not a corral token (expected crl_ID_SECRET, as `corral token create` prints it)"),
        good[:-1] + ("A" if good[-1] != "A" else "B"): (401, "unknown or revoked token"),
    }
    for text, (status, line) in cases.items():
        answer = call(gw, "GET", "/v1/jobs", headers=bearer(text) if text else None)
        assert (answer.status, answer.json()["lines"]) == (status, [line])
    assert answer.headers["www-authenticate"] == 'Bearer realm="corral"'
    assert call(gw, "GET", "/v1/jobs", headers=bearer(good)).status == 200
    clock.now += 86401
    answer = call(gw, "GET", "/v1/jobs", headers=bearer(good))
    assert (answer.status, answer.json()["error"]) == (401, "token laptop expired")


def test_a_token_acts_as_its_user_under_the_sockets_rules(env):
    app, gw, tokens, clock = env
    alice, bob = token(app, ALICE), token(app, BOB)
    answer = call(gw, "POST", "/v1/jobs", job(), headers=bearer(alice))
    assert answer.status == 201, answer.body
    [made] = answer.json()["jobs"]
    assert made["user"] == auth.user_name(61001)
    answer = call(gw, "POST", "/v1/jobs/cancel", {"ids": [made["id"]]}, headers=bearer(bob))
    assert answer.status == 403 and "belongs to" in answer.json()["error"]
    # a header cannot claim another identity: only the token says who calls
    answer = call(gw, "POST", "/v1/jobs/cancel", {"ids": [made["id"]]}, headers=bearer(bob), peer=ALICE)
    assert answer.status == 403


def test_scopes(env):
    app, gw, tokens, clock = env
    reader = token(app, ALICE, scope="read")
    submitter = token(app, ALICE, scope="submit")
    answer = call(gw, "POST", "/v1/jobs", job(), headers=bearer(reader))
    assert (answer.status, answer.json()["error"]) == (
        403, "permission denied: this token's scope is read; POST /v1/jobs needs submit or admin")
    assert call(gw, "GET", "/v1/nodes", headers=bearer(reader)).status == 200
    answer = call(gw, "POST", "/v1/tokens", {}, headers=bearer(submitter))
    assert (answer.status, answer.json()["error"]) == (
        403, "permission denied: POST /v1/tokens needs a token of scope admin (this one is submit)")
    assert call(gw, "POST", "/v1/shutdown", headers=bearer(submitter)).status == 403


def test_revoked_and_listing(env):
    app, gw, tokens, clock = env
    text = token(app, ALICE, name="ci")
    token(app, BOB, name="bobs")
    mine = call(app, "GET", "/v1/tokens", peer=ALICE).json()["tokens"]
    assert [t["name"] for t in mine] == ["ci"] and "digest" not in mine[0] and "token" not in mine[0]
    answer = call(app, "DELETE", "/v1/tokens/bobs", peer=ALICE)
    assert answer.status == 403 and answer.json()["error"].startswith("permission denied: token bobs belongs to")
    assert call(app, "DELETE", "/v1/tokens/ci", peer=ALICE).status == 200
    answer = call(gw, "GET", "/v1/jobs", headers=bearer(text))
    assert (answer.status, answer.json()["error"]) == (401, "unknown or revoked token")
    assert len(call(app, "GET", "/v1/tokens", peer=(1, 0, 0)).json()["tokens"]) == 1     # root sees all


def test_tokens_survive_a_restart_hashed(env, tmp_path):
    app, gw, tokens, clock = env
    text = token(app, ALICE)
    stored = (tmp_path / "tokens.json").read_text()
    assert text.split("_")[-1] not in stored and oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    again = Tokens(str(tmp_path / "tokens.json"), clock=clock)
    assert again.check(text).uid == 61001


def test_rate_limit(env):
    app, gw, tokens, clock = env
    text = token(app, ALICE)
    statuses = [call(gw, "GET", "/v1/health", headers=bearer(text)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    clock.now += 0.1                                            # 10/s: one more after 0.1 s
    assert call(gw, "GET", "/v1/health", headers=bearer(text)).status == 200


def test_the_dashboard_link_sets_a_cookie_and_drops_the_token_from_the_address(env):
    app, gw, tokens, clock = env
    text = token(app, ALICE, scope="read")
    answer = call(gw, "GET", f"/ui/?token={text}&tab=queue")
    assert answer.status == 303 and answer.headers["location"] == "/ui/?tab=queue"
    assert answer.headers["set-cookie"] == f"corral_token={text}; HttpOnly; SameSite=Strict; Path=/"
    assert call(gw, "GET", "/v1/jobs", headers={"cookie": f"other=1; corral_token={text}"}).status == 200


def test_where_a_listener_may_be():
    assert check_listen("127.0.0.1:8765", tls=False, insecure=False) == ("127.0.0.1", 8765)
    assert check_listen("[::1]:80", tls=False, insecure=False) == ("::1", 80)
    assert check_listen("0.0.0.0:8765", tls=True, insecure=False) == ("0.0.0.0", 8765)
    assert check_listen("0.0.0.0:8765", tls=False, insecure=True) == ("0.0.0.0", 8765)
    with pytest.raises(ValidationError, match=r'invalid value for listen: "0.0.0.0:8765" \(expected a loopback'):
        check_listen("0.0.0.0:8765", tls=False, insecure=False)
    with pytest.raises(ValidationError, match="expected HOST:PORT with a port from 1 to 65535"):
        check_listen("localhost:99999", tls=False, insecure=False)


def test_a_damaged_tokens_file_is_one_line(tmp_path):
    from corral.errors import CorralError

    path = tmp_path / "tokens.json"
    path.write_text("[{\"id\": 1")
    with pytest.raises(CorralError) as err:
        Tokens(str(path))
    assert str(err.value).startswith(f"cannot read the tokens in {path} (JSONDecodeError: ") and "\n" not in str(err.value)
