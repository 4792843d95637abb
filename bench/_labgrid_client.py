"""labgrid's side of bench/peer_labgrid.py: CLIENTS sessions acquiring and releasing places.

Runs under the labgrid venv (``make bench`` makes it), never imported by the
agent's code: ``python bench/_labgrid_client.py ADDRESS CLIENTS SECONDS``.
Each client has its own gRPC channel and session (labgrid's ClientStream, as
``labgrid-client`` opens) and its own place; one cycle is AcquirePlace then
ReleasePlace. Prints one JSON line: cycles, seconds, latencies (s per cycle).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
from labgrid.remote.generated import labgrid_coordinator_pb2_grpc as pbg


async def client(address: str, name: str, until: float, latencies: list[float]) -> int:
    """One session looping over its own place until ``until``; the cycles it made."""
    # A connection of its own: labgrid keeps one session per peer address.
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = pbg.CoordinatorStub(channel)
        out: asyncio.Queue[Any] = asyncio.Queue()

        async def requests() -> AsyncIterator[Any]:
            while (message := await out.get()) is not None:
                yield message

        stream = stub.ClientStream(requests())
        out.put_nowait(pb.ClientInMessage(startup=pb.StartupDone(version="26.0.1", name=name)))
        out.put_nowait(pb.ClientInMessage(sync=pb.Sync(id=1)))
        async for message in stream:  # registered once the coordinator answers the sync
            if message.HasField("sync"):
                break
        await stub.AddPlace(pb.AddPlaceRequest(name=name.replace("/", "-")))
        place = name.replace("/", "-")
        done = 0
        while time.monotonic() < until:
            began = time.perf_counter()
            await stub.AcquirePlace(pb.AcquirePlaceRequest(placename=place))
            await stub.ReleasePlace(pb.ReleasePlaceRequest(placename=place))
            latencies.append(time.perf_counter() - began)
            done += 1
        await stub.DeletePlace(pb.DeletePlaceRequest(name=place))
        out.put_nowait(None)
        stream.cancel()
        return int(done)


async def main(address: str, clients: int, seconds: float) -> None:
    """Run the clients and print the figures as one JSON line."""
    latencies: list[float] = []
    began = time.monotonic()
    until = began + seconds
    counts = await asyncio.gather(
        *(client(address, f"bench/c{i}", until, latencies) for i in range(clients))
    )
    elapsed = time.monotonic() - began
    print(json.dumps({"cycles": sum(counts), "seconds": elapsed, "latencies": latencies}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
