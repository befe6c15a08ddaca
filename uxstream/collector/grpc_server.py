"""The collector's gRPC endpoint (schemas/proto/collector.proto): unary SendBatch and the bidirectional
Stream with credits. It runs on its own asyncio loop in its own thread (grpc.aio beside uvicorn's loop)
and shares the `Collector` (one producer, one set of rate limits) with the HTTP endpoints."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc

from uxstream.collector.logic import (
    SKIP_DNT,
    Prepared,
    Refusal,
    Skipped,
    client_defaults,
    prepare_typed,
    truncated_ip,
)
from uxstream.collector.proto import collector_pb2 as pb
from uxstream.collector.proto import collector_pb2_grpc as pb_grpc
from uxstream.collector.service import Collector, Outcome, Principal

_STATUS: Final = {"accepted": pb.ACCEPTED, "rejected": pb.REJECTED, "skipped": pb.SKIPPED}
_CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def event_dict(event: Any) -> dict[str, Any]:
    """The fields a client set, by name (proto3 `optional` keeps presence; the map only when non-empty)."""
    out = {field.name: value for field, value in event.ListFields()}
    properties = out.get("properties")
    if properties is not None:
        out["properties"] = dict(properties)
    return out


_NAMES: Final = {field: field.name for field in pb.Event.DESCRIPTOR.fields}
"""Field descriptor → the event schema's field name (the names are the same: a test checks it)."""
_PROPERTIES: Final = "properties"
_DEFAULTS: Final = dict(client_defaults())


def prepare_proto(
    event: Any, *, project: str, received_at: int, client_ip: str | None, do_not_track: bool, truncate: bool
) -> Prepared:
    """`logic.prepare` of a Protocol Buffers event, without the JSON path's type checks: protobuf already
    guarantees each field's type (strings are valid UTF-8, int32/int64/double in range), so the set fields
    go straight into a record of defaults. Gives what `prepare(event_dict(event), …)` gives
    (tests/collector/test_grpc.py compares the two on generator and hostile events)."""
    if do_not_track:
        return Skipped(SKIP_DNT)
    record = _DEFAULTS.copy()
    names = _NAMES
    for field, value in event.ListFields():
        record[names[field]] = value
    properties = record[_PROPERTIES]
    record[_PROPERTIES] = dict(properties) if properties else {}
    ip = truncated_ip(client_ip) if truncate else client_ip
    return prepare_typed(
        record, lambda: event_dict(event), project=project, received_at=received_at, client_ip=ip
    )


def peer_ip(context: Any) -> str | None:
    """`ipv4:203.0.113.7:5555` / `ipv6:[2001:db8::1]:5555` → the address."""
    peer: str = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return None


def ack_message(batch_id: str, outcome: Outcome | Refusal) -> Any:
    if isinstance(outcome, Refusal):
        return pb.Ack(
            batch_id=batch_id, status=outcome.status, error=outcome.error, detail=outcome.detail,
            retry_after=outcome.retry_after or 0, credits=1,
        )  # fmt: skip
    ack = pb.Ack(
        batch_id=batch_id, status=200, credits=1, accepted=outcome.accepted, rejected=outcome.rejected,
        skipped=outcome.skipped,
    )  # fmt: skip
    add = ack.results.add  # in place: no EventResult objects to copy in
    accepted = pb.ACCEPTED
    for result in outcome.results:
        if result["status"] == "accepted":
            add(status=accepted, event_id=result["event_id"])
        else:
            add(status=_STATUS[result["status"]], reason=result["reason"], detail=result.get("detail", ""))
    return ack


class CollectorService(pb_grpc.CollectorServicer):  # type: ignore[misc,unused-ignore]
    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.metrics = collector.metrics

    def _principal(self, context: Any) -> Principal | Refusal:
        metadata = dict(context.invocation_metadata() or ())
        auth = metadata.get("authorization", "")
        scheme, _, value = str(auth).partition(" ")
        return self.collector.authenticate(value.strip() if scheme.lower() == "bearer" else None)

    async def _batch(self, batch: Any, principal: Principal, ip: str | None) -> Outcome | Refusal:
        limit = self.collector.settings.body.max_batch_events
        if len(batch.events) > limit:
            return Refusal(413, "batch_too_large", f"{len(batch.events)} events in one batch, limit {limit}")
        return await self.collector.ingest(
            batch.events, principal, ip, batch.do_not_track, prepare_one=prepare_proto
        )

    async def SendBatch(self, request: Any, context: Any) -> Any:
        principal = self._principal(context)
        outcome = (
            principal
            if isinstance(principal, Refusal)
            else await self._batch(request, principal, peer_ip(context))
        )
        if isinstance(outcome, Refusal):
            self.metrics.request("grpc", outcome.status)
            if outcome.retry_after is not None:
                context.set_trailing_metadata((("retry-after", str(outcome.retry_after)),))
            await context.abort(
                _CODES.get(outcome.status, grpc.StatusCode.UNKNOWN), f"{outcome.error}: {outcome.detail}"
            )
        self.metrics.request("grpc", 200)
        return ack_message(request.batch_id, outcome)

    async def Stream(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        principal = self._principal(context)
        if isinstance(principal, Refusal):
            self.metrics.request("grpc", principal.status)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{principal.error}: {principal.detail}")
            return
        credits = self.collector.settings.stream_credits
        ip = peer_ip(context)
        window = asyncio.Semaphore(credits)
        acks: asyncio.Queue[Any] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(batch: Any) -> None:
            outcome = await self._batch(batch, principal, ip)
            self.metrics.request("grpc", outcome.status if isinstance(outcome, Refusal) else 200)
            await acks.put(ack_message(batch.batch_id, outcome))

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    await window.acquire()  # no more than `credits` batches unacknowledged
                    task = asyncio.create_task(answer(batch))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.gather(*list(tasks))
            finally:
                acks.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            yield pb.Ack(credits=credits, status=200)
            while True:
                ack = await acks.get()
                if ack is None:
                    break
                yield ack  # returns once the ack is written: a client that stops reading stops us here
                window.release()
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()


class GrpcServer:
    """grpc.aio server on a thread of its own with its own event loop."""

    def __init__(self, collector: Collector, host: str, port: int, credentials: Any = None) -> None:
        self.collector = collector
        self.address = f"{host}:{port}"
        self._credentials = credentials
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="collector-grpc", daemon=True)

    def start(self) -> int:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._started.set()

    async def _serve(self) -> None:
        self._server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", self.collector.settings.body.max_body_bytes),
            # Fixed HTTP/2 windows: with BDP probing, grpc-core grows a stream's windows on its own and
            # buffers thousands of batches and acks of a client that reads no acks (measured: 5,227
            # batches of 20 vs 266 without it; tests/collector/test_streams.py).
            ("grpc.http2.bdp_probe", 0),
        ])  # fmt: skip
        pb_grpc.add_CollectorServicer_to_server(  # type: ignore[no-untyped-call,unused-ignore]
            CollectorService(self.collector), self._server
        )
        if self._credentials is None:
            self.port = self._server.add_insecure_port(self.address)
        else:
            self.port = self._server.add_secure_port(self.address, self._credentials)
        await self._server.start()
        self._started.set()
        await self._server.wait_for_termination()

    def stop(self, grace: float = 5.0) -> None:
        if self._server is None or not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop)
        try:
            future.result(grace + 5)
        except TimeoutError:
            # A stop must not hide why the collector is stopping (e.g. the HTTP port was taken): the
            # thread is a daemon and ends with the process.
            log = logging.getLogger("uxstream.collector")
            log.warning("the gRPC server did not stop in %.0f s", grace + 5)
            return
        self._thread.join(grace + 5)


def collector_stub(channel: Any) -> Any:
    """A client stub of the Collector service on `channel` (for clients, tests and the bench)."""
    return pb_grpc.CollectorStub(channel)  # type: ignore[no-untyped-call,unused-ignore]
