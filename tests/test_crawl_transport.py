"""bilipop.crawl.transport: the deadline starts no thread, the proxies are read once, and a bad port is a failed
request."""

from __future__ import annotations

import pytest

from bilipop.sim import SimServer


def test_deadlines_start_no_thread_and_the_proxies_are_read_once(tmp_path, monkeypatch):
    # The deadline is checked between the pieces of the body: no timer or watchdog thread per request (an earlier
    # version started one per request); and requests would re-read the environment each time.
    import threading

    import requests

    from bilipop.crawl import transport

    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # lower-case ones win over upper-case ones
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: NO_PROXY must be honoured
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    reads = []
    real = requests.utils.get_environ_proxies
    monkeypatch.setattr(requests.utils, "get_environ_proxies", lambda *a, **k: reads.append(1) or real(*a, **k))
    started, me = [], threading.current_thread()  # threads started by the crawling thread (not the sim's)
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (threading.current_thread() is me
                                                               and started.append(self.name)) or real_start(self))
    with SimServer(videos=20, seed=2) as sim:
        started.clear()  # the sim's own serving thread
        session = transport.new_session()
        for _ in range(30):
            reply = transport.get(session, sim.base_url + "/x/web-interface/popular?pn=1&ps=20", headers={},
                                  deadline_s=5, connect_timeout_s=5, read_timeout_s=5, max_bytes=1 << 20)
            assert reply.status == 200
    assert len(reads) == 1  # one host, read once
    assert transport._proxies(transport.new_session(), "http://example.com/")["http"] == "http://127.0.0.1:9"
    assert started == []
    # With NO_PROXY set, requests reads a URL's port while choosing the proxy: a bad port is a failed request
    # (InvalidURL, as without NO_PROXY), not a ValueError escaping the crawl.
    with pytest.raises(requests.exceptions.InvalidURL):
        transport.get(transport.new_session(), "http://i0.hdslb.com:99999/x.jpg", headers={}, deadline_s=5,
                      connect_timeout_s=5, read_timeout_s=5, max_bytes=1 << 20)
