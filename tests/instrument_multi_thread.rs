//! `async fn` spans on a multi-thread runtime, where tasks move between
//! threads: exported through a real `InMemorySpanExporter` installed with
//! `vaxila::set_tracer_provider` (process-global, so it has this binary to itself).

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use vaxila::opentelemetry::trace::SpanId;
use vaxila::opentelemetry::{KeyValue, Value};

#[vaxila::instrument(args(task, step))]
async fn step(task: u32, step: u32) -> u32 {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    task * 100 + step
}

#[vaxila::instrument(args(task))]
async fn job(task: u32) -> u32 {
    let mut sum = 0;
    for i in 0..3 {
        sum += step(task, i).await;
    }
    sum
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|KeyValue { key: k, .. }| k.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn nested_async_spans_keep_their_parents_when_tasks_move_between_threads() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    vaxila::set_tracer_provider(provider.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (1..=8).map(|t| tokio::spawn(job(t))).collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    });
    drop(runtime);
    // Instrumented functions return exactly what they compute.
    assert_eq!(results, (1..=8).map(|t| t * 300 + 3).collect::<Vec<_>>());

    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 8 * 4);
    let jobs: HashMap<i64, &SpanData> = spans
        .iter()
        .filter(|s| s.name == "job")
        .map(|s| match attr(s, "task") {
            Some(Value::I64(t)) => (*t, s),
            other => panic!("job without task: {other:?}"),
        })
        .collect();
    assert_eq!(jobs.len(), 8);
    for job in jobs.values() {
        assert_eq!(job.parent_span_id, SpanId::INVALID);
    }
    for step in spans.iter().filter(|s| s.name == "step") {
        let Some(Value::I64(task)) = attr(step, "task") else {
            panic!("{step:?}")
        };
        let job = jobs[task];
        assert_eq!(
            step.parent_span_id,
            job.span_context.span_id(),
            "step of task {task}"
        );
        assert_eq!(step.span_context.trace_id(), job.span_context.trace_id());
    }
    provider.shutdown().unwrap();
}
