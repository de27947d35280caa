"""bilipop serve against hostile web pages (bilipop.serve.guard): other host names and other sites are refused, and
every answer carries the security headers."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")


from helpers import CLIENT, site_client  # noqa: E402

from bilipop.serve import app as web  # noqa: E402
from bilipop.serve.guard import CSP, allowed_hosts, host_allowed, split_host  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TITLE = "一分钟看懂宇宙 讲解"


# -- other host names (DNS rebinding) ------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["rebind.attacker.test:8765", "rebind.attacker.test", "127.0.0.1.nip.io:8765",
                                  "localhost.attacker.test:8765", "192.168.1.5:8765"])
def test_a_page_of_another_host_name_is_refused_everywhere(served_app, host):
    with site_client(served_app, host) as client:
        for path in ("/api/model", "/", "/static/app.js"):
            response = client.get(path)
            assert response.status_code == 421, (path, response.status_code)
            assert "does not answer for the host name" in response.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST", "127.0.0.1"])
def test_loopback_names_are_accepted(served_app, host):
    with site_client(served_app, host) as client:
        assert client.get("/api/model").status_code == 200


def test_the_host_given_to_serve_is_accepted_too(served_run):
    named = web.create_app(served_run, host="studio.lan")
    with site_client(named, "studio.lan:8765") as client:
        assert client.get("/api/model").status_code == 200
    with site_client(named, "rebind.attacker.test:8765") as client:
        assert client.get("/api/model").status_code == 421
    everywhere = web.create_app(served_run, host="0.0.0.0")  # reached by this machine's address on the network
    with site_client(everywhere, "192.168.1.5:8765") as client:
        assert client.get("/api/model").status_code == 200
    with site_client(everywhere, "rebind.attacker.test:8765") as client:
        assert client.get("/api/model").status_code == 421


def test_host_names_are_compared_without_port_and_brackets():
    assert split_host("[::1]:8765") == "::1" and split_host("LocalHost:1") == "localhost"
    assert split_host("::1") == "::1"  # no brackets: an address, not a port
    loopback = allowed_hosts("127.0.0.1")
    assert host_allowed("localhost:8765", loopback, any_address=False)
    assert not host_allowed("", loopback, any_address=False)
    assert not host_allowed("10.0.0.1:8765", loopback, any_address=False)


# -- other web sites (CSRF) ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.test"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:9999"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}],
                         ids=["foreign-origin", "null-origin", "other-port", "cross-site", "same-site"])
def test_api_requests_from_other_sites_are_refused(served_app, cover_bytes, headers):
    with site_client(served_app, **CLIENT, **headers) as client:
        response = client.post("/api/predict", files=[("cover", ("a.jpg", cover_bytes, "image/jpeg"))],
                               data={"title": TITLE})
        assert response.status_code == 403, response.text
        assert "other web sites" in response.json()["error"]
        assert client.get("/api/model").status_code == 403


def test_an_api_post_without_the_client_header_is_refused(served_app, cover_bytes):
    with site_client(served_app) as client:
        response = client.post("/api/predict", files=[("cover", ("a.jpg", cover_bytes, "image/jpeg"))],
                               data={"title": TITLE})
        assert response.status_code == 403
        assert "X-Bilipop" in response.json()["error"]
        assert client.get("/api/model").status_code == 200  # reading needs no header: scripts and curl


def test_the_pages_own_requests_are_accepted(served_app, cover_bytes):
    same = {"Origin": "http://127.0.0.1:8765", "Sec-Fetch-Site": "same-origin", **CLIENT}
    with site_client(served_app, **same) as client:
        response = client.post("/api/predict", files=[("cover", ("a.jpg", cover_bytes, "image/jpeg"))],
                               data={"title": TITLE})
        assert response.status_code == 200, response.text
    with site_client(served_app, **{"Sec-Fetch-Site": "none"}) as client:  # typed into the address bar
        assert client.get("/api/model").status_code == 200
        assert client.get("/").status_code == 200


def test_the_page_sends_the_client_header():
    script = (web.STATIC / "app.js").read_text(encoding="utf-8")
    assert '"X-Bilipop": "1"' in script


# -- security headers on every answer --------------------------------------------------------------------------------
def test_every_answer_carries_nosniff_and_the_policy(served_app, cover_bytes, monkeypatch):
    def broken(*args):
        raise RuntimeError("model_info bug")

    with site_client(served_app, **CLIENT) as client:
        answers = {
            "page": client.get("/"),
            "static": client.get("/static/app.js"),
            "api": client.get("/api/model"),
            "404": client.get("/nope"),
            "static 404": client.get("/static/nope.js"),
            "405": client.get("/api/predict"),
            "400": client.post("/api/predict", files=[("cover", ("a.txt", b"text", "text/plain"))],
                               data={"title": TITLE}),
            "413": client.post("/api/rank", content=b"x", headers={"content-length": str(100 * 2**20)}),
            "predict": client.post("/api/predict", files=[("cover", ("a.jpg", cover_bytes, "image/jpeg"))],
                                   data={"title": TITLE}),
        }
        monkeypatch.setattr(web, "model_info", broken)
        answers["500"] = client.get("/api/model")
    with site_client(served_app, "rebind.attacker.test") as client:
        answers["421"] = client.get("/api/model")
    with site_client(served_app, **{"Sec-Fetch-Site": "cross-site"}) as client:
        answers["403"] = client.get("/api/model")
    expected = {"page": 200, "static": 200, "api": 200, "404": 404, "static 404": 404, "405": 405, "400": 400,
                "413": 413, "predict": 200, "500": 500, "421": 421, "403": 403}
    assert {name: r.status_code for name, r in answers.items()} == expected
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert response.headers.get("content-security-policy") == CSP, name
        assert response.headers.get("referrer-policy") == "no-referrer", name
