//! Heap allocations per request of the example service
//! (`examples/axum_service.rs`: a server span, three instrumented functions,
//! two database spans, a client span and the inventory's server span), with
//! the SDK disabled, recording only, and exporting:
//!
//! ```sh
//! cargo bench --bench service --features axum,reqwest,sqlx
//! ```
//!
//! Every thread of the service is counted (the runtime's workers, SQLite's,
//! the export threads); the load generator and the OTLP sink are not.
//! Requests are sent one at a time on one connection, so that each mode
//! does the same work and the count is the same from run to run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/axum_service.rs"]
mod service;
mod support;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the threads that are not the service's.
    static LEFT_OUT: Cell<bool> = const { Cell::new(false) };
}

fn leave_out() {
    LEFT_OUT.set(true);
}

fn count(size: usize) {
    if !LEFT_OUT.try_with(Cell::get).unwrap_or(true) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are atomics and a thread-local cell, which allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARM_UP: u64 = 2_000;
const REQUESTS: u64 = 5_000;

/// A keep-alive HTTP/1.1 connection that sends `GET path` and reads the
/// whole response, allocating nothing per request once it is warm.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr, path: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the service");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self {
            writer: stream.try_clone().expect("clone stream"),
            reader: BufReader::new(stream),
            request: format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: bench\r\n\r\n")
                .into_bytes(),
            line: String::new(),
            body: Vec::new(),
        }
    }

    fn get(&mut self) {
        self.writer.write_all(&self.request).expect("send request");
        let mut length = 0;
        loop {
            self.line.clear();
            self.reader
                .read_line(&mut self.line)
                .expect("read response");
            let header = self.line.trim_end();
            assert!(!self.line.is_empty(), "the service closed the connection");
            if header.is_empty() {
                break;
            }
            if header.starts_with("HTTP/1.1 ") {
                assert!(header.starts_with("HTTP/1.1 200"), "{header}");
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).expect("read body");
    }
}

/// Allocations and bytes per request, counted over `REQUESTS` requests
/// after `WARM_UP`.
fn per_request(addr: SocketAddr) -> (f64, f64) {
    std::thread::spawn(move || {
        leave_out();
        let mut client = Client::connect(addr, "/orders/1");
        for _ in 0..WARM_UP {
            client.get();
        }
        let (count, bytes) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        for _ in 0..REQUESTS {
            client.get();
        }
        (
            (ALLOCATIONS.load(Ordering::Relaxed) - count) as f64 / REQUESTS as f64,
            (BYTES.load(Ordering::Relaxed) - bytes) as f64 / REQUESTS as f64,
        )
    })
    .join()
    .expect("the load generator")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("service: bench");
        return;
    }
    // `cargo bench --bench service -- exporting` runs the modes named so only.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let sink = support::Sink::start_with(leave_out);
    let mut rows = Vec::new();
    for (mode, env) in [
        (
            "disabled (`OTEL_SDK_DISABLED=true`)",
            ("OTEL_SDK_DISABLED", "true"),
        ),
        (
            "recording (`VAXILA_EXPORTER=none`)",
            ("VAXILA_EXPORTER", "none"),
        ),
        ("exporting (OTLP/HTTP, gzip)", ("VAXILA_EXPORTER", "otlp")),
    ] {
        if !filters.is_empty() && !filters.iter().any(|f| mode.contains(f.as_str())) {
            continue;
        }
        let guard = vaxila::Config::default()
            .with_service_name("axum_service")
            .with_endpoint(sink.endpoint.clone())
            .with_env([env])
            .init()
            .expect("vaxila::init");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("its address");
            let pool = service::database().await.expect("the example's database");
            let state = service::AppState::new(pool, format!("http://{addr}"));
            tokio::spawn(async move { axum::serve(listener, service::app(state)).await });
            addr
        });
        rows.push((mode, per_request(addr)));
        runtime.shutdown_timeout(Duration::from_secs(1));
        drop(guard);
    }
    let spans = sink.spans.load(Ordering::Relaxed);
    println!("| service | heap allocations per request | bytes per request |");
    println!("|---|---:|---:|");
    for (mode, (count, bytes)) in rows {
        println!("| {mode} | {count:.1} | {bytes:.0} |");
    }
    println!("\n{spans} spans received");
}
