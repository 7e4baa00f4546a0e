"""The test servers take a burst of connections at once, as a batch or a comparison opens them.

With the standard library's listen backlog of 5, the kernel drops the SYNs beyond the queue
while the accept thread waits for a core, and each client sends its SYN again only after a
second: a batch row then starts a second late (a fresh-clone CI run failed on exactly that).
"""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler

import pytest

from tests.servers._loopback import LoopbackHTTPServer
from tests.servers.anthropic_server import AnthropicTestServer
from tests.servers.hub_server import HubTestServer
from tests.servers.ollama_server import OllamaTestServer
from tests.servers.openai_server import OpenAITestServer


def test_a_burst_of_connections_is_queued_while_the_accept_thread_is_busy() -> None:
    # Never served: the accept thread is as busy as it can be; the kernel's queue holds all.
    httpd = LoopbackHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    clients: list[socket.socket] = []
    try:
        for _ in range(24):
            clients.append(socket.create_connection(httpd.server_address[:2], timeout=0.5))
    finally:
        for client in clients:
            client.close()
        httpd.server_close()
    assert len(clients) == 24


@pytest.mark.parametrize(
    "server_class", [OllamaTestServer, OpenAITestServer, AnthropicTestServer, HubTestServer]
)
def test_every_test_server_listens_with_that_backlog(server_class: type) -> None:
    server = server_class().start()
    try:
        assert isinstance(server._httpd, LoopbackHTTPServer)
    finally:
        server.stop()
