//! What the benchmarks share: a loopback OTLP/HTTP sink and the SDK pipelines they compare against.

#![allow(dead_code, unreachable_pub)]

#[cfg(unix)]
pub mod cpu;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

/// An OTLP/HTTP endpoint on 127.0.0.1 that reads each request whole,
/// counts the spans in it (gunzipped, and walked field by field rather than
/// decoded into structs, so that the receiving end costs as little as it
/// can), and answers `200 OK` with an empty body.
pub struct Sink {
    pub endpoint: String,
    pub requests: Arc<AtomicU64>,
    pub spans: Arc<AtomicU64>,
}

impl Sink {
    pub fn start() -> Self {
        Self::start_with(|| {})
    }

    /// A sink whose threads each call `on_thread` first (to tell a counting
    /// allocator to leave them out, say).
    pub fn start_with(on_thread: fn()) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let spans = Arc::new(AtomicU64::new(0));
        let counters = (requests.clone(), spans.clone());
        std::thread::spawn(move || {
            on_thread();
            for stream in listener.incoming().flatten() {
                let (requests, spans) = counters.clone();
                std::thread::spawn(move || {
                    on_thread();
                    serve(stream, &requests, &spans);
                });
            }
        });
        Self {
            endpoint,
            requests,
            spans,
        }
    }
}

/// The fields of one protobuf message: (number, length-delimited payload);
/// other wire types are skipped.
fn fields(mut buf: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first()?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }
    std::iter::from_fn(move || {
        loop {
            let key = varint(&mut buf)?;
            let skip = match key & 7 {
                0 => {
                    varint(&mut buf)?;
                    continue;
                }
                1 => 8,
                5 => 4,
                2 => {
                    let len = usize::try_from(varint(&mut buf)?).ok()?;
                    let (payload, rest) = buf.split_at_checked(len)?;
                    buf = rest;
                    return Some((key >> 3, payload));
                }
                _ => return None,
            };
            buf = buf.get(skip..)?;
        }
    })
}

/// Spans in an `ExportTraceServiceRequest`: resource_spans (1) →
/// scope_spans (2) → spans (2).
fn count_spans(request: &[u8]) -> u64 {
    fields(request)
        .filter(|(n, _)| *n == 1)
        .flat_map(|(_, resource)| fields(resource).filter(|(n, _)| *n == 2))
        .map(|(_, scope)| fields(scope).filter(|(n, _)| *n == 2).count() as u64)
        .sum()
}

fn serve(stream: TcpStream, requests: &AtomicU64, spans: &AtomicU64) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut gzip = false;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-encoding")
            {
                gzip = value.trim().eq_ignore_ascii_case("gzip");
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let count = if gzip {
            let mut plain = Vec::with_capacity(body.len() * 4);
            match flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain) {
                Ok(_) => count_spans(&plain),
                Err(_) => 0,
            }
        } else {
            count_spans(&body)
        };
        spans.fetch_add(count, Ordering::Relaxed);
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

/// The blocking HTTP client for the SDK's OTLP exporter: the one this
/// crate's pipeline uses, so the SDK pays the same for each request.
#[derive(Debug)]
pub struct Ureq(pub ureq::Agent);

impl Ureq {
    pub fn new() -> Self {
        Self(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .new_agent(),
        )
    }
}

#[async_trait::async_trait]
impl HttpClient for Ureq {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let response = self.0.run(Request::from_parts(parts, body.to_vec()))?;
        let (parts, body) = response.into_parts();
        let body = body.into_with_config().read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(body)))
    }
}

/// The SDK's own pipeline to `endpoint`: its batch processor and its OTLP/HTTP
/// exporter, gzip, with the SDK's default batch settings.
pub fn sdk_provider(endpoint: &str, sampler: Sampler) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Ureq::new())
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .build()
        .expect("the SDK's OTLP exporter");
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().build())
        .build();
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(processor)
        .build()
}

/// An exporter that drops every batch: the SDK's batch processor with no
/// export cost, to compare with vaxila's `none` exporter.
#[derive(Debug)]
pub struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

/// The SDK's batch processor in front of [`Discard`].
pub fn sdk_discarding() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(Discard).build())
        .build()
}
