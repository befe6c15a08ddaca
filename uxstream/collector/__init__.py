"""`uxstream collect`: the event collector (HTTP, WebSocket and gRPC endpoints → `ux.events`).

Layers: `logic` (pure rules), `settings` (typed configuration), `sink` (the Kafka producer),
`service` (a batch from any endpoint: auth, limits, validation, produce, wait for delivery), and the
endpoints `http` (Starlette: POST /v1/batch, WebSocket /v1/stream, /healthz, /readyz, /metrics) and
`grpc_server` (SendBatch, Stream); `commands` runs them (`uxstream collect`).
"""
