"""The one hosted HTTP client: how each way a call can end is told apart, on a real local HTTP server."""

from __future__ import annotations

import gzip
import http.server
import json
import threading

import httpx
import pytest

from mediamill.backends import PermanentError
from mediamill.backends.hosted import NotSent, Uncertain, error_text, json_object, request_sync, retry_wait


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        routes = {
            "/gzip": (200, {"Content-Encoding": "gzip"}, gzip.compress(b'{"ok": true}')),
            "/big": (200, {}, b"x" * 5000),
            "/list": (200, {}, b"[1, 2]"),
            "/redirect": (302, {"Location": "http://elsewhere.example/steal"}, b""),
            "/busy": (503, {"Retry-After": "7"}, json.dumps({"error": {"message": "overloaded"}}).encode()),
            "/detail": (422, {}, json.dumps({"detail": [{"msg": "text too long"}]}).encode()),
        }
        status, headers, body = routes[self.path]
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def client():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}", timeout=5) as made:
        yield made
    server.shutdown()


def call(client, path, max_bytes=10_000):
    return request_sync(client, "GET", path, f"test {path}", setting="TEST_URL", max_bytes=max_bytes)


def test_an_answer_is_read_whole_and_decoded_once(client):
    assert json_object(call(client, "/gzip"), "test") == {"ok": True}


def test_a_body_over_the_limit_is_refused_before_it_is_read(client):
    with pytest.raises(PermanentError, match="5000 bytes exceeds the 1000-byte limit"):
        call(client, "/big", max_bytes=1000)


def test_a_redirect_is_refused_naming_the_setting_not_the_path(client):
    with pytest.raises(PermanentError, match="redirect.*elsewhere.example.*check TEST_URL") as caught:
        call(client, "/redirect")
    assert "steal" not in str(caught.value)


def test_a_json_that_is_no_object_is_uncertain(client):
    with pytest.raises(Uncertain, match="JSON list"):
        json_object(call(client, "/list"), "test")


def test_services_error_texts_and_retry_after_are_read(client):
    busy = call(client, "/busy")
    assert error_text(busy) == "overloaded" and retry_wait(busy, attempt=0) == 7.0
    assert "text too long" in error_text(call(client, "/detail"))


def test_a_request_that_never_left_is_told_from_one_that_may_have_arrived():
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=2) as nowhere:  # the discard port: nothing listens
        with pytest.raises(NotSent, match="request not sent"):
            request_sync(nowhere, "GET", "/", "test", setting="TEST_URL", max_bytes=10)
