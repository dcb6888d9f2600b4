"""The TCP API from another machine's point of view: the real CLI with ``CORRAL_URL`` and
``CORRAL_TOKEN`` (and no local home at all), bearer tokens refused in one line, TLS with
a self-signed certificate, and the loopback rule."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import pytest

from corral_harness import CORRAL


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remote(c, url: str, token: str | None, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in c.env.items() if not k.startswith("CORRAL_")}
    env.update({"CORRAL_URL": url, "CORRAL_HOME": "/nonexistent/corral-remote", **extra})
    if token:
        env["CORRAL_TOKEN"] = token
    return subprocess.run([*CORRAL, *args], capture_output=True, text=True, env=env, cwd=c.workdir, timeout=60)


def test_the_cli_against_a_remote_daemon(corral):
    c = corral
    port = _port()
    c.write_config(f"listen: 127.0.0.1:{port}\nsimulate_gpus: 2\n")
    c.up()
    token = c.ok("token", "create", "--name", "laptop").strip()
    url = f"http://127.0.0.1:{port}"
    res = _remote(c, url, token, "submit", "--json", "--gpus", "1", "--cpus", "100m", "--", "sh", "-c", "echo hi")
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout)["id"]
    assert _remote(c, url, token, "wait", str(job)).returncode == 0
    assert _remote(c, url, token, "logs", str(job)).stdout == "hi\n"
    shown = json.loads(_remote(c, url, token, "show", "--json", str(job)).stdout)
    assert shown["state"] == "Succeeded" and shown["id"] == job
    assert not os.path.exists("/nonexistent/corral-remote")
    # the same listing as over the socket
    assert _remote(c, url, token, "ps", "-a").stdout == c.ok("ps", "-a")

    res = _remote(c, url, None, "ps")
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        f"error: CORRAL_URL is {url}, but no token is given: set CORRAL_TOKEN (make one with `corral token create` "
        "where the daemon runs)"]
    res = _remote(c, url, "crl_000000000000_" + "A" * 43, "ps")
    assert (res.returncode, res.stderr) == (1, "error: unknown or revoked token\n")
    reader = c.ok("token", "create", "--scope", "read").strip()
    res = _remote(c, url, reader, "cancel", str(job))
    assert res.returncode == 1 and "this token's scope is read" in res.stderr
    c.ok("token", "revoke", "laptop")
    assert _remote(c, url, token, "ps").stderr == "error: unknown or revoked token\n"
    res = _remote(c, "ftp://x", token, "ps")
    assert res.stderr.startswith('error: invalid value for CORRAL_URL: "ftp://x" (expected http(s)://HOST:PORT')


def test_tls_with_a_self_signed_certificate_and_the_loopback_rule(corral, tmp_path):
    if shutil.which("openssl") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("openssl is missing (apt-get install openssl); CI=true: this test must run")
        pytest.skip("openssl is missing")
    c = corral
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=corral",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    c.write_config("listen: 0.0.0.0:8765\n")
    res = c.run("up")
    assert res.returncode == 1 and "invalid value for listen: \"0.0.0.0:8765\" (expected a loopback address" \
        in res.stderr and len(res.stderr.strip().splitlines()) == 1
    port = _port()
    c.write_config(f"listen: 127.0.0.1:{port}\ntls: {{cert: {cert}, key: {key}}}\n")
    c.up()
    token = c.ok("token", "create").strip()
    url = f"https://127.0.0.1:{port}"
    res = _remote(c, url, token, "ps", CORRAL_CA=str(cert))
    assert res.returncode == 0, res.stderr
    res = _remote(c, url, token, "ps")                       # not trusted without the certificate
    assert res.returncode == 1 and res.stderr.startswith(f"error: TLS with {url} failed:")
    assert "CORRAL_CA" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = _remote(c, f"http://127.0.0.1:{port}", token, "ps")   # plain HTTP to a TLS port: no answer
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
