"""OpenTelemetry spans reach an OTLP/HTTP collector: requests, and the storage and
database calls inside them, in one trace that continues the caller's."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.system.api.client import Client, repo_name
from tests.system.observability.conftest import ObservedRegistry, wait_for

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2")


class Collector:
    """The receiving end of OTLP/HTTP: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service.ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[Any]:
        return [span for span in self.spans if span.name == name]


@pytest.fixture
def collector() -> Iterator[Collector]:
    made = Collector()
    yield made
    made.server.shutdown()


def test_spans_for_requests_storage_and_database(serve: Callable[..., ObservedRegistry],
                                                 collector: Collector) -> None:
    server = serve({"tracing": {"enabled": True, "endpoint": collector.endpoint,
                                "servicename": "dockyard-test"}})
    client = Client(server.url)
    name = repo_name()
    client.push_image(name, "v1")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    pulled = requests.get(f"{server.url}/v2/{name}/manifests/v1", timeout=10, headers={
        "traceparent": f"00-{trace_id}-{parent}-01"})
    assert pulled.status_code == 200

    committed = "storage.append_and_commit"  # a blob pushed whole is committed in this call
    wait_for(lambda: collector.named("GET manifests") and collector.named(committed),
             timeout=15, message="spans to be exported")
    (pull,) = collector.named("GET manifests")
    assert pull.trace_id.hex() == trace_id  # the caller's trace continues
    assert pull.parent_span_id.hex() == parent
    attributes = {a.key: a.value for a in pull.attributes}
    assert attributes["http.route"].string_value == "manifests"
    assert attributes["http.response.status_code"].int_value == 200
    lookups = [span for span in collector.named("db.resolve_tag")
               if span.parent_span_id == pull.span_id]
    assert lookups, "the database call is a child of the request's span"
    (upload,) = [span for span in collector.named("PUT uploads")
                 if any(child.parent_span_id == span.span_id
                        for child in collector.named(committed))][:1]
    assert upload.kind == 2  # SPAN_KIND_SERVER
    client.close()


def test_tracing_is_off_by_default(serve: Callable[..., ObservedRegistry],
                                   collector: Collector) -> None:
    server = serve()
    assert requests.get(server.url + "/v2/", timeout=5).status_code == 200
    assert "tracing" not in server.log_text()
