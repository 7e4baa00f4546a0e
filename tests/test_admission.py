"""The generation gate on a real event loop: slots, the queue, leaving it, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from localmind_jupyter.server.admission import GenerationGate, ServerBusy
from localmind_jupyter.server.errors import ApiError


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_slots_then_queue_in_arrival_order_then_busy():
    async def scenario() -> None:
        gate = GenerationGate(max_running=2, max_waiting=2)
        first, second = await gate.acquire(), await gate.acquire()
        order: list[str] = []

        async def wait(name: str) -> None:
            slot = await gate.acquire()
            order.append(name)
            slot.release()

        third = asyncio.ensure_future(wait("third"))
        fourth = asyncio.ensure_future(wait("fourth"))
        await _settle()
        assert (gate.running, gate.waiting) == (2, 2)
        with pytest.raises(ServerBusy) as busy:
            await gate.acquire()
        assert busy.value.status == 503 and busy.value.headers["Retry-After"] == "5"
        assert "2 generations are running and 2 are waiting" in busy.value.message
        # Released from a generating thread, as GenerationPump does.
        threading.Thread(target=first.release).start()
        await asyncio.wait_for(third, 5)
        second.release()
        second.release()  # twice is harmless
        await asyncio.wait_for(fourth, 5)
        await _settle()
        assert order == ["third", "fourth"] and (gate.running, gate.waiting) == (0, 0)
        assert int((await _busy_after_one(gate)).headers["Retry-After"]) >= 1

    asyncio.run(scenario())


async def _busy_after_one(gate: GenerationGate) -> ServerBusy:
    """Fill a 1-slot, 0-queue gate of the same history and return its refusal."""
    gate.max_running, gate.max_waiting = 1, 0
    slot = await gate.acquire()
    try:
        await gate.acquire()
    except ServerBusy as exc:
        return exc
    finally:
        slot.release()
    raise AssertionError("not refused")


def test_a_waiter_that_leaves_frees_its_place_and_a_handed_slot_is_not_lost():
    async def scenario() -> None:
        gate = GenerationGate(max_running=1, max_waiting=1)
        slot = await gate.acquire()
        leaving = asyncio.ensure_future(gate.acquire())
        await _settle()
        leaving.cancel()
        await _settle()
        assert gate.waiting == 0
        # The slot is handed to a waiter just as it is cancelled: it must come back.
        handed = asyncio.ensure_future(gate.acquire())
        await _settle()
        slot.release()
        await asyncio.sleep(0)  # the release runs; the waiter has not resumed yet
        handed.cancel()
        await _settle()
        assert (gate.running, gate.waiting) == (0, 0)
        (await gate.acquire()).release()

    asyncio.run(scenario())


def test_shutdown_refuses_waiters_and_newcomers():
    async def scenario() -> None:
        gate = GenerationGate(max_running=1, max_waiting=4)
        await gate.acquire()
        waiting = asyncio.ensure_future(gate.acquire())
        await _settle()
        gate.close()
        with pytest.raises(ApiError, match="shutting down"):
            await waiting
        with pytest.raises(ApiError, match="shutting down"):
            await gate.acquire()

    asyncio.run(scenario())
