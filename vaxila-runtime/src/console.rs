//! The console exporter: one readable line per finished span, indented by its depth in the trace.
//!
//! # How the indentation works
//!
//! Spans reach an exporter when they end, so children arrive before their
//! parents. Printing them in that order would put each trace upside down. The
//! exporter therefore holds the spans of a trace back until the trace's local
//! root (a span with no parent, or a parent in another process) ends, and
//! then prints the whole tree at once, parents first and siblings in start
//! order, each line indented two spaces per level. A span that ends after its
//! parent was printed (a spawned task that outlives its caller) is printed at
//! once, one level below that parent. Spans whose parent never arrives (it was
//! sampled out, dropped, or is still running at shutdown) are printed when the
//! exporter shuts down, or when more than 8192 spans wait, with
//! their parent's id so that nothing is lost.
//!
//! This works the same under a simple processor (what `init` uses for
//! [`Exporter::Console`](crate::Exporter::Console), so lines appear as the
//! root ends) and under a batch processor (lines appear per batch).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write};
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Spans held back waiting for their parent, at most; past this they are printed as they are.
pub(crate) const MAX_PENDING: usize = 8192;
/// How many printed spans are remembered, to indent children that end after their parent.
const REMEMBERED: usize = 4096;

/// A [`SpanExporter`] that prints one line per span, for debugging.
///
/// ```text
/// 4bf92f35 checkout 12.41ms span=00f067aa order.id=42 at src/main.rs:12
/// 4bf92f35   load_cart 1.20ms span=53995c3f parent=00f067aa cart.items=3 at src/main.rs:20
/// 4bf92f35   charge 3.02ms span=9c1e0a11 parent=00f067aa ERROR card declined at src/main.rs:31
/// ```
///
/// Each line: the short trace id, the span name indented by its depth, the
/// duration, the short span and parent ids, the kind unless internal, the
/// attributes, the status when it is not unset, and the source location.
/// Colour only when writing to a terminal.
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
/// use vaxila::opentelemetry::trace::{Tracer as _, TracerProvider as _};
/// use vaxila::opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
///
/// #[derive(Clone, Default)]
/// struct Buffer(Arc<Mutex<Vec<u8>>>);
/// impl Write for Buffer {
///     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().unwrap().write(bytes)
///     }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let buffer = Buffer::default();
/// let provider = SdkTracerProvider::builder()
///     .with_span_processor(SimpleSpanProcessor::new(vaxila::ConsoleExporter::new(buffer.clone())))
///     .build();
/// let tracer = provider.tracer("example");
/// tracer.in_span("parent", |_| tracer.in_span("child", |_| {}));
///
/// let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
/// let lines: Vec<&str> = text.lines().collect();
/// assert!(lines[0][9..].starts_with("parent "));
/// assert!(lines[1][9..].starts_with("  child "));
/// ```
pub struct ConsoleExporter {
    state: Mutex<State>,
}

enum Out {
    Stderr,
    Writer(Box<dyn Write + Send>),
}

struct State {
    out: Out,
    color: bool,
    /// Spans whose parent has not been printed yet, by trace.
    pending: HashMap<TraceId, Vec<SpanData>>,
    pending_count: usize,
    /// The depth of recently printed spans.
    printed: HashMap<SpanId, usize>,
    printed_order: VecDeque<SpanId>,
}

impl std::fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleExporter").finish_non_exhaustive()
    }
}

impl ConsoleExporter {
    /// Prints to stderr, in colour when stderr is a terminal (and `NO_COLOR`
    /// is not set), as plain text otherwise.
    #[must_use]
    pub fn stderr() -> Self {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self::with_out(Out::Stderr, color)
    }

    /// Prints plain text to `writer`.
    #[must_use]
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self::with_out(Out::Writer(Box::new(writer)), false)
    }

    /// Turns ANSI colours on or off.
    #[must_use]
    pub fn with_color(self, color: bool) -> Self {
        let mut state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        state.color = color;
        Self {
            state: Mutex::new(state),
        }
    }

    fn with_out(out: Out, color: bool) -> Self {
        Self {
            state: Mutex::new(State {
                out,
                color,
                pending: HashMap::new(),
                pending_count: 0,
                printed: HashMap::new(),
                printed_order: VecDeque::new(),
            }),
        }
    }

    fn print_all_pending(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        state.drain_pending(&mut text);
        state.write(&text);
    }
}

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        for span in batch {
            state.accept(span, &mut text);
        }
        if state.pending_count > MAX_PENDING {
            state.drain_pending(&mut text);
        }
        state.write(&text);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.print_all_pending();
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.print_all_pending();
        Ok(())
    }
}

impl State {
    fn accept(&mut self, span: SpanData, text: &mut String) {
        let parent = span.parent_span_id;
        let depth = if parent == SpanId::INVALID || span.parent_span_is_remote {
            Some(0)
        } else {
            self.printed.get(&parent).map(|d| d + 1)
        };
        match depth {
            Some(depth) => self.print_tree(span, depth, text),
            None => {
                self.pending_count += 1;
                self.pending
                    .entry(span.span_context.trace_id())
                    .or_default()
                    .push(span);
            }
        }
    }

    /// Prints `span`, then its waiting descendants below it.
    fn print_tree(&mut self, span: SpanData, depth: usize, text: &mut String) {
        let trace_id = span.span_context.trace_id();
        let span_id = span.span_context.span_id();
        self.line(&span, depth, text);
        self.remember(span_id, depth);
        let mut children = Vec::new();
        if let Some(waiting) = self.pending.get_mut(&trace_id) {
            let mut i = 0;
            while i < waiting.len() {
                if waiting[i].parent_span_id == span_id {
                    children.push(waiting.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            if waiting.is_empty() {
                self.pending.remove(&trace_id);
            }
        }
        self.pending_count -= children.len();
        children.sort_by_key(|c| c.start_time);
        for child in children {
            self.print_tree(child, depth + 1, text);
        }
    }

    /// Prints every waiting span: those whose parent is not waiting too start a tree.
    fn drain_pending(&mut self, text: &mut String) {
        let mut traces: Vec<_> = self.pending.drain().map(|(_, spans)| spans).collect();
        traces.sort_by_key(|spans| spans.iter().map(|s| s.start_time).min());
        self.pending_count = 0;
        for spans in traces {
            let ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
            let (mut tops, rest): (Vec<_>, Vec<_>) = spans
                .into_iter()
                .partition(|s| !ids.contains(&s.parent_span_id));
            if let Some(first) = rest.first() {
                let trace_id = first.span_context.trace_id();
                self.pending_count += rest.len();
                self.pending.insert(trace_id, rest);
            }
            tops.sort_by_key(|s| s.start_time);
            for top in tops {
                let depth = self.printed.get(&top.parent_span_id).map_or(0, |d| d + 1);
                self.print_tree(top, depth, text);
            }
        }
    }

    fn remember(&mut self, span_id: SpanId, depth: usize) {
        if self.printed_order.len() >= REMEMBERED
            && let Some(old) = self.printed_order.pop_front()
        {
            self.printed.remove(&old);
        }
        self.printed.insert(span_id, depth);
        self.printed_order.push_back(span_id);
    }

    fn write(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        // Write errors are ignored: a closed stderr must not break the program.
        let _ = match &mut self.out {
            Out::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
            Out::Writer(writer) => writer
                .write_all(text.as_bytes())
                .and_then(|()| writer.flush()),
        };
    }

    fn line(&self, span: &SpanData, depth: usize, text: &mut String) {
        let paint = |code: &str, s: &str| {
            if self.color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let trace = span.span_context.trace_id().to_string();
        let id = span.span_context.span_id().to_string();
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let _ = write!(
            text,
            "{} {:indent$}{} {}",
            paint("2", &trace[..8]),
            "",
            paint("1", &span.name),
            paint("36", &format_duration(duration)),
            indent = depth * 2,
        );
        let mut ids = format!(" span={}", &id[..8]);
        if span.parent_span_id != SpanId::INVALID {
            let parent = span.parent_span_id.to_string();
            let _ = write!(ids, " parent={}", &parent[..8]);
            if span.parent_span_is_remote {
                ids.push_str(" (remote)");
            }
        }
        text.push_str(&paint("2", &ids));
        if span.span_kind != SpanKind::Internal {
            let _ = write!(
                text,
                " [{}]",
                format!("{:?}", span.span_kind).to_lowercase()
            );
        }
        let (mut file, mut line) = (None, None);
        for kv in &span.attributes {
            match kv.key.as_str() {
                "code.file.path" | "code.filepath" => file = Some(kv.value.to_string()),
                "code.line.number" | "code.lineno" => line = Some(kv.value.to_string()),
                "code.function.name" | "code.function" | "code.namespace" => {}
                // What the `tracing` bridge adds about where and how a span
                // ran, exported but not worth a place on a one-line summary.
                "code.module.name" | "target" | "thread.id" | "thread.name" | "busy_ns"
                | "idle_ns" => {}
                key => {
                    let _ = write!(
                        text,
                        " {}{}",
                        paint("2", &format!("{key}=")),
                        format_value(&kv.value)
                    );
                }
            }
        }
        let events = span.events.iter().filter(|e| e.name != "exception").count();
        if events > 0 {
            let _ = write!(
                text,
                " ({events} event{})",
                if events == 1 { "" } else { "s" }
            );
        }
        match &span.status {
            Status::Error { description } => {
                // An `ERROR` event of the `tracing` bridge fails its span
                // without a description; its exception says what happened.
                let description = if description.is_empty() {
                    span.events
                        .iter()
                        .filter(|e| e.name == "exception")
                        .flat_map(|e| &e.attributes)
                        .find(|kv| kv.key.as_str() == "exception.message")
                        .map(|kv| kv.value.as_str())
                        .unwrap_or_default()
                } else {
                    Cow::Borrowed(description.as_ref())
                };
                let _ = write!(
                    text,
                    " {}",
                    paint("1;31", format!("ERROR {}", escape(&description)).trim_end())
                );
            }
            Status::Ok => {
                let _ = write!(text, " {}", paint("32", "OK"));
            }
            Status::Unset => {}
        }
        if let Some(file) = file {
            let at = match line {
                Some(line) => format!(" at {file}:{line}"),
                None => format!(" at {file}"),
            };
            text.push_str(&paint("2", &at));
        }
        text.push('\n');
    }
}

fn format_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.2}ms", duration.as_secs_f64() * 1e3)
    } else {
        format!("{:.3}s", duration.as_secs_f64())
    }
}

/// Strings quoted with control characters escaped, so one span stays one line.
fn format_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.as_str()),
        other => escape(&other.to_string()),
    }
}

fn escape(text: &str) -> String {
    text.chars()
        .flat_map(char::escape_debug)
        .collect::<String>()
        .replace("\\\"", "\"")
        .replace("\\'", "'")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SimpleSpanProcessor};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        /// The lines without the trace id column.
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(|l| l[9..].to_owned()).collect()
        }
    }

    fn nested(tracer: &opentelemetry_sdk::trace::SdkTracer) {
        tracer.in_span("root", |cx| {
            cx.span().set_attribute(KeyValue::new("user.id", 42));
            tracer.in_span("first", |_| tracer.in_span("grandchild", |_| {}));
            tracer.in_span("second", |cx| {
                cx.span().set_status(Status::error("boom\nbang"));
            });
        });
    }

    fn names_with_indent(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let depth = l.len() - l.trim_start().len();
                format!(
                    "{}{}",
                    " ".repeat(depth),
                    l.trim_start().split(' ').next().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn a_trace_prints_parents_first_indented_by_depth() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(ConsoleExporter::new(
                buffer.clone(),
            )))
            .build();
        nested(&provider.tracer("t"));
        let lines = buffer.lines();
        assert_eq!(
            names_with_indent(&lines),
            ["root", "  first", "    grandchild", "  second"]
        );
        assert!(lines[0].contains(" user.id=42"), "{}", lines[0]);
        assert!(lines[3].ends_with("ERROR boom\\nbang"), "{}", lines[3]);
        assert!(!lines[0].contains("parent="), "{}", lines[0]);
        assert!(lines[1].contains(" parent="), "{}", lines[1]);
    }

    #[test]
    fn batches_give_the_same_tree() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(ConsoleExporter::new(buffer.clone())).build(),
            )
            .build();
        nested(&provider.tracer("t"));
        provider.shutdown().unwrap();
        assert_eq!(
            names_with_indent(&buffer.lines()),
            ["root", "  first", "    grandchild", "  second"]
        );
    }

    #[test]
    fn a_child_that_outlives_its_parent_is_printed_under_it() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(ConsoleExporter::new(
                buffer.clone(),
            )))
            .build();
        let tracer = provider.tracer("t");
        let parent = tracer.start("parent");
        let cx = Context::current_with_span(parent);
        let mut late = tracer.start_with_context("late", &cx);
        cx.span().end();
        late.end();
        assert_eq!(names_with_indent(&buffer.lines()), ["parent", "  late"]);
    }

    #[test]
    fn orphans_are_printed_at_shutdown() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(ConsoleExporter::new(
                buffer.clone(),
            )))
            .build();
        let tracer = provider.tracer("t");
        let parent = tracer.start("never-ends");
        let cx = Context::current_with_span(parent);
        tracer.start_with_context("child", &cx).end();
        assert!(buffer.lines().is_empty());
        provider.shutdown().unwrap();
        assert_eq!(names_with_indent(&buffer.lines()), ["child"]);
        drop(cx);
    }

    #[test]
    fn an_error_without_a_description_shows_its_exception_message() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(ConsoleExporter::new(
                buffer.clone(),
            )))
            .build();
        let tracer = provider.tracer("t");
        tracer.in_span("logged", |cx| {
            cx.span().add_event(
                "exception",
                vec![KeyValue::new("exception.message", "db down")],
            );
            cx.span().set_status(Status::error(""));
        });
        tracer.in_span("bare", |cx| cx.span().set_status(Status::error("")));
        let lines = buffer.lines();
        assert!(lines[0].ends_with(" ERROR db down"), "{}", lines[0]);
        assert!(lines[1].ends_with(" ERROR"), "{}", lines[1]);
    }

    #[test]
    fn colour_only_when_asked() {
        let buffer = Buffer::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(
                ConsoleExporter::new(buffer.clone()).with_color(true),
            ))
            .build();
        provider.tracer("t").in_span("x", |_| {});
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("\x1b[1mx\x1b[0m"), "{text:?}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_micros(12)), "12µs");
        assert_eq!(format_duration(Duration::from_micros(12_345)), "12.35ms");
        assert_eq!(format_duration(Duration::from_millis(2_500)), "2.500s");
    }
}
