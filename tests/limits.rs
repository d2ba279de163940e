//! `[limits]`: what one span may hold, as it arrives at a real OTLP receiver.

use std::time::Duration;

use vaxila_test_support::{Receiver, attr, text};

#[test]
fn long_values_are_cut_on_a_character_boundary_and_counts_are_bounded() {
    let receiver = Receiver::start();
    let guard = vaxila::Config::from_toml_str(
        r"
        [limits]
        attribute_value_length = 9
        attributes_per_span = 16
        events_per_span = 100
        ",
    )
    .unwrap()
    .with_endpoint(receiver.endpoint())
    .with_scheduled_delay(Duration::from_secs(3600))
    .init()
    .unwrap();

    vaxila::span("big")
        // 2 bytes a character: 9 bytes fall inside the fifth.
        .attr("text", "éééééééé")
        .attr("short", "fits")
        .attr("list", vec!["abcdefghijkl", "ok"])
        .attr("number", 1_234_567_890_i64)
        .in_scope(|span| {
            for i in 0..40 {
                span.set_attribute(format!("extra.{i}"), i);
            }
            for i in 0..5_000 {
                span.add_event("tick", [("message", "x".repeat(50)), ("i", i.to_string())]);
            }
        });
    guard.flush().unwrap();
    drop(guard);

    let spans = receiver.spans();
    let big = spans
        .iter()
        .find(|s| s.name == "big")
        .expect("the span arrived");
    assert_eq!(attr(big, "text").as_deref(), Some("éééé"));
    assert_eq!(attr(big, "short").as_deref(), Some("fits"));
    assert_eq!(attr(big, "list").as_deref(), Some("[abcdefghi, ok]"));
    assert_eq!(attr(big, "number").as_deref(), Some("1234567890"));

    assert_eq!(big.attributes.len(), 16, "attributes_per_span");
    assert!(big.dropped_attributes_count > 0);
    assert_eq!(big.events.len(), 100, "events_per_span");
    assert_eq!(big.dropped_events_count, 4_900);
    let message = big.events[0]
        .attributes
        .iter()
        .find(|kv| kv.key == "message")
        .map(|kv| text(kv.value.as_ref()));
    assert_eq!(
        message.as_deref(),
        Some("xxxxxxxxx"),
        "event values are cut too"
    );
}
