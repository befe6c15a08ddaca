"""`uxstream collect`: run the collector (HTTP + WebSocket on --port, gRPC on --grpc-port)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from typing import Any, Final

from jobs.common.privacy import truncate_ip

_IPV4: Final = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})(?![\d.])")
_IPV6: Final = re.compile(r"(?<![\w:])((?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4})(?![\w:])")


def redact(text: str) -> str:
    """Every IP address in a log line truncated as SEMANTICS.md says (the raw address is never logged)."""

    def cut(match: re.Match[str]) -> str:
        try:
            return truncate_ip(match.group(1))
        except ValueError:
            return match.group(0)

    return _IPV6.sub(cut, _IPV4.sub(cut, text))


class RedactAddresses(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        return True


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "collect",
        help="run the event collector: HTTP/WebSocket and gRPC endpoints producing to ux.events",
        description=(
            "Serve POST /v1/batch, WebSocket /v1/stream, /healthz, /readyz and /metrics (HTTP), and the gRPC "
            "Collector service; produce the accepted events to ux.events (acks=all, idempotent) and answer "
            "once they are on Kafka. Configuration: UXSTREAM_COLLECTOR_* variables (README, 'Collector')."
        ),
    )
    p.add_argument("--host", help="bind address (default UXSTREAM_COLLECTOR_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default UXSTREAM_COLLECTOR_PORT or 18090)")
    p.add_argument("--grpc-port", type=int, help="gRPC port, 0 = none (default 18091)")
    p.add_argument("--topic", help="topic to produce to (default ux.events)")
    p.add_argument("--certfile", type=Path, help="TLS certificate chain (PEM): serve HTTPS and gRPC over TLS")
    p.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    p.add_argument(
        "--create-topic",
        type=int,
        metavar="PARTITIONS",
        help="create the topic with this many partitions if it does not exist (local runs; needs Kafka up)",
    )
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=_cmd_collect)


def _cmd_collect(args: argparse.Namespace) -> int:
    from uxstream.collector.settings import CollectorSettings

    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("host", args.host), ("port", args.port), ("grpc_port", args.grpc_port), ("topic", args.topic),
            ("certfile", args.certfile), ("keyfile", args.keyfile),
        )
        if value is not None
    }  # fmt: skip
    settings = CollectorSettings.from_env(**overrides)
    if args.create_topic:
        from jobs.common.topics import ensure_topics

        ensure_topics(settings.kafka, {settings.topic: args.create_topic})
    return serve(settings, args.log_level)


def serve(settings: Any, log_level: str = "info") -> int:
    import uvicorn

    from uxstream.collector.grpc_server import GrpcServer
    from uxstream.collector.http import create_app
    from uxstream.collector.metrics import Metrics
    from uxstream.collector.service import Collector
    from uxstream.collector.sink import KafkaSink

    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactAddresses())
    metrics = Metrics()
    sink = KafkaSink(settings, on_latency=metrics.produce_latency.observe)
    collector = Collector(settings, sink, metrics)
    metrics.bind(lambda: float(sink.pending()), lambda: 1.0 if sink.up else 0.0)
    grpc_server = None
    if settings.grpc_port:
        credentials = None
        if settings.certfile is not None and settings.keyfile is not None:
            import grpc

            credentials = grpc.ssl_server_credentials(
                [(settings.keyfile.read_bytes(), settings.certfile.read_bytes())]
            )
        grpc_server = GrpcServer(collector, settings.host, settings.grpc_port, credentials)
        port = grpc_server.start()
        logging.getLogger("uxstream.collector").info("gRPC on %s:%d", settings.host, port)
    config = uvicorn.Config(
        create_app(collector),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,  # access lines carry the client address
        proxy_headers=False,  # X-Forwarded-For is read by the collector, from trusted proxies only
        server_header=False,
        ws_max_size=settings.body.max_body_bytes,
        ssl_certfile=str(settings.certfile) if settings.certfile else None,
        ssl_keyfile=str(settings.keyfile) if settings.keyfile else None,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if grpc_server is not None:
            grpc_server.stop()
        left = sink.close()
        if left:
            logging.getLogger("uxstream.collector").error("%d records were not delivered at shutdown", left)
    return 0
