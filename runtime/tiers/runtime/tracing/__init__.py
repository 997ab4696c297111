"""OpenTelemetry traces of the data plane: spans with W3C trace context, exported over
OTLP/HTTP (protobuf) in the background.

`config` is the contract the operator renders; `spans` holds the spans and the trace context
they take from and give to headers; `otlp` encodes them as OpenTelemetry's protobuf; `export`
queues and sends them without ever making a caller wait.
"""
