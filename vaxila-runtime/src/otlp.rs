//! The OTLP/HTTP exporter: spans encoded as protobuf by hand, gzip, and the retries the OTLP specification asks for.
