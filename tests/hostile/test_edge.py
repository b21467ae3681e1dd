"""Hostile and careless clients at the socket edge (issue 9: items 3, 4, 7, 8, 9, 10): a real server on 127.0.0.1."""

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog
from bargein.signaling import directory as directory_module
from bargein.signaling.directory import load_directory
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings


@pytest.fixture
async def edge() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0, signin_timeout_s=0.3, max_unauthenticated_per_address=4,
                                 max_connections=12, reserved_for_signed_in=2))
    async with serving(srv) as base:
        yield srv, base


async def raw_ws(base: str, local: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare WebSocket handshake from ``local``; the caller then never reads or answers anything."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(local, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    assert b" 101 " in status or b" 429 " in status or b" 503 " in status, status
    return reader, writer


async def register(ws: aiohttp.ClientWebSocketResponse, token: str, cseq: int = 1) -> dict:
    await ws.send_json({"method": "REGISTER", "cseq": cseq, "token": token})
    return await ws.receive_json(timeout=10)


async def test_deep_json_gets_400_and_the_connection_lives(edge: tuple[BargeinServer, str]) -> None:
    _, base = edge
    async with aiohttp.ClientSession() as s, s.ws_connect(base + "/ws") as ws:
        assert (await register(ws, "agent1"))["status"] == 200
        await ws.send_str('{"cseq": 7, "method": "OPTIONS", "x": ' + "[" * 990 + "]" * 990 + "}")
        r = await ws.receive_json(timeout=10)
        assert r["status"] == 400 and r["cseq"] == 7 and "nested" in r["reason"]
        await ws.send_str("[" * 100_000 + "]" * 100_000)
        assert (await ws.receive_json(timeout=10))["status"] == 413
        await ws.send_json({"method": "OPTIONS", "cseq": 9})
        assert (await ws.receive_json(timeout=10))["status"] == 200  # still connected, still signed in


async def test_oversized_frame_names_its_cseq_and_exactly_1mib_is_not_closed(edge: tuple[BargeinServer, str]) -> None:
    _, base = edge
    async with aiohttp.ClientSession() as s, s.ws_connect(base + "/ws", max_msg_size=0) as ws:
        assert (await register(ws, "agent1"))["status"] == 200
        head = '{"cseq": 5, "method": "OPTIONS", "pad": "'
        frame = head + "x" * ((1 << 20) - len(head) - 2) + '"}'
        assert len(frame) == 1 << 20
        await ws.send_str(frame)
        r = await ws.receive_json(timeout=10)
        assert r["status"] == 413 and r["cseq"] == 5
        await ws.send_json({"method": "OPTIONS", "cseq": 6})
        assert (await ws.receive_json(timeout=10))["status"] == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://127.0.0.1.evil.example"])
async def test_cross_site_origin_is_refused_before_the_upgrade(edge: tuple[BargeinServer, str], origin: str) -> None:
    _, base = edge
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await s.ws_connect(base + "/ws", headers={"Origin": origin})
        assert err.value.status == 403


async def test_own_origin_and_configured_origins_are_allowed() -> None:
    srv = BargeinServer(Settings(port=0, allowed_origins=["https://console.example"]))
    async with serving(srv) as base, aiohttp.ClientSession() as s:
        for origin in (base, "https://console.example"):
            async with s.ws_connect(base + "/ws", headers={"Origin": origin}) as ws:
                assert (await register(ws, "supervisor1"))["status"] == 200


async def test_a_socket_that_never_signs_in_is_closed_even_if_it_never_reads(edge: tuple[BargeinServer, str]) -> None:
    srv, base = edge
    reader, writer = await raw_ws(base)
    # the server sends a close frame, gets no answer, and cuts the connection
    async def until_eof() -> None:
        while await reader.read(4096):
            pass
    await asyncio.wait_for(until_eof(), 30)
    writer.close()
    for _ in range(100):
        if not srv.peers:
            break
        await asyncio.sleep(0.05)
    assert not srv.peers and srv.admission.total == 0


async def test_unauthenticated_flood_from_one_address_leaves_room_for_a_supervisor(
        edge: tuple[BargeinServer, str]) -> None:
    srv, base = edge
    srv.settings.signin_timeout_s = 60  # the flood stays open for the whole test
    flood = []
    refused = 0
    for _ in range(12):
        reader, writer = await raw_ws(base, local="127.0.0.2")
        flood.append(writer)
    refused = 12 - srv.admission.unauthenticated
    assert srv.admission.unauthenticated == 4 and refused == 8
    async with aiohttp.ClientSession() as s, s.ws_connect(base + "/ws") as ws:
        assert (await register(ws, "supervisor1"))["status"] == 200
    for w in flood:
        w.close()


async def test_a_slow_reader_is_disconnected_once_and_its_legs_freed(edge: tuple[BargeinServer, str]) -> None:
    srv, base = edge
    async with aiohttp.ClientSession() as s, s.ws_connect(base + "/ws") as ws:
        assert (await register(ws, "agent1"))["status"] == 200
        (conn,) = srv.peers
        with structlog.testing.capture_logs() as logs:
            for i in range(2000):  # far more than the send queue holds, all before the writer runs
                srv._send(conn, {"type": "request", "method": "NOTIFY", "cseq": i})
            for _ in range(200):
                if conn not in srv.core.conns:
                    break
                await asyncio.sleep(0.05)
        assert conn not in srv.core.conns and conn not in srv.peers
        assert sum(1 for e in logs if e["event"] == "server.slow_client") == 1


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = directory_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(directory_module.hmac, "compare_digest", spy)
    d = load_directory(None)
    assert d.by_token("supervisor1") is not None and seen
    assert d.by_token("supervisor2x") is None and d.by_token("") is None


def test_settings_name_the_bad_field() -> None:
    with pytest.raises(ValueError, match="signin_timeout_s"):
        Settings(signin_timeout_s=0)
    assert json.loads(Settings().model_dump_json())["max_unauthenticated_per_address"] == 50
