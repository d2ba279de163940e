//! `#[vaxila::instrument]` on every shape of plain (not `async`) function,
//! asserted on the spans it exports.

use std::borrow::Cow;
use std::fmt;
use std::panic::catch_unwind;

use vaxila::opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use vaxila::opentelemetry::{Array, Context, StringValue, Value};
use vaxila::testing::{CapturedSpan, capture};

/// The only span `f` finished, and what `f` returned.
fn only<R>(f: impl FnOnce() -> R) -> (CapturedSpan, R) {
    let mut out = None;
    let mut spans = capture(|| out = Some(f())).into_vec();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    (spans.remove(0), out.unwrap())
}

fn string(s: &str) -> Value {
    Value::String(s.to_owned().into())
}

fn strings(items: &[&str]) -> Value {
    Value::Array(Array::String(
        items
            .iter()
            .map(|s| StringValue::from((*s).to_owned()))
            .collect(),
    ))
}

/// The attribute keys of a span, without the `code.*` ones every span has.
fn keys(span: &CapturedSpan) -> Vec<&str> {
    span.attributes
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !k.starts_with("code."))
        .collect()
}

const PLAIN_LINE: u32 = line!() + 2;
#[vaxila::instrument]
fn plain(id: i64) -> i64 {
    id * 2
}

#[test]
fn plain_fn_makes_one_span_named_after_it_with_code_attributes_and_nothing_else() {
    let (span, ret) = only(|| plain(21));
    assert_eq!(ret, 42);
    assert_eq!(span.name, "plain");
    assert_eq!(span.kind, SpanKind::Internal);
    assert!(span.is_root());
    assert_eq!(span.status, Status::Unset);
    assert!(span.events.is_empty());
    assert_eq!(
        span.attr("code.function.name"),
        Some(&string("instrument_sync::plain"))
    );
    assert_eq!(
        span.attr("code.file.path"),
        Some(&string("tests/instrument_sync.rs"))
    );
    assert_eq!(
        span.attr("code.line.number"),
        Some(&Value::I64(PLAIN_LINE.into()))
    );
    assert_eq!(keys(&span), Vec::<&str>::new());
}

#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)]
#[vaxila::instrument(args(
    int, big, float, flag, text, owned, letter, some, none, list, slice, array, cow
))]
fn typed(
    int: i64,
    big: u64,
    float: f64,
    flag: bool,
    text: &str,
    owned: String,
    letter: char,
    some: Option<u32>,
    none: Option<u32>,
    list: Vec<i64>,
    slice: &[bool],
    array: [&str; 2],
    cow: Cow<'_, str>,
) -> usize {
    text.len() + owned.len() + list.len() + slice.len() + array.len() + cow.len()
}

#[test]
fn typed_values_keep_their_types() {
    let (span, ret) = only(|| {
        typed(
            -7,
            u64::MAX,
            1.5,
            true,
            "ab",
            "cd".to_owned(),
            'é',
            Some(3),
            None,
            vec![1, 2],
            &[true, false],
            ["x", "y"],
            Cow::Borrowed("z"),
        )
    });
    assert_eq!(ret, 11);
    assert_eq!(span.attr("int"), Some(&Value::I64(-7)));
    assert_eq!(span.attr("big"), Some(&string("18446744073709551615")));
    assert_eq!(span.attr("float"), Some(&Value::F64(1.5)));
    assert_eq!(span.attr("flag"), Some(&Value::Bool(true)));
    assert_eq!(span.attr("text"), Some(&string("ab")));
    assert_eq!(span.attr("owned"), Some(&string("cd")));
    assert_eq!(span.attr("letter"), Some(&string("é")));
    assert_eq!(span.attr("some"), Some(&Value::I64(3)));
    assert_eq!(span.attr("none"), None);
    assert_eq!(
        span.attr("list"),
        Some(&Value::Array(Array::I64(vec![1, 2])))
    );
    assert_eq!(
        span.attr("slice"),
        Some(&Value::Array(Array::Bool(vec![true, false])))
    );
    assert_eq!(span.attr("array"), Some(&strings(&["x", "y"])));
    assert_eq!(span.attr("cow"), Some(&string("z")));
    assert_eq!(
        keys(&span),
        [
            "int", "big", "float", "flag", "text", "owned", "letter", "some", "list", "slice",
            "array", "cow"
        ]
    );
}

#[derive(Debug)]
struct Point {
    x: i32,
    y: i32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

#[vaxila::instrument(args(%shown, ?debugged))]
fn sigils(shown: &Point, debugged: Point) -> i32 {
    shown.x + debugged.y
}

#[test]
fn percent_records_display_and_question_mark_records_debug() {
    let (span, ret) = only(|| sigils(&Point { x: 1, y: 2 }, Point { x: 3, y: 4 }));
    assert_eq!(ret, 5);
    assert_eq!(span.attr("shown"), Some(&string("(1, 2)")));
    assert_eq!(span.attr("debugged"), Some(&string("Point { x: 3, y: 4 }")));
}

#[allow(clippy::needless_pass_by_value)]
#[vaxila::instrument(args(..))]
fn rest(id: u32, point: Point, label: &str, tags: Vec<&str>) -> i32 {
    point.x + i32::try_from(id).unwrap() + i32::try_from(label.len() + tags.len()).unwrap()
}

#[test]
fn args_rest_records_every_recordable_parameter_and_passes_over_the_others() {
    let (span, ret) = only(|| rest(1, Point { x: 2, y: 0 }, "abc", vec!["t"]));
    assert_eq!(ret, 7);
    assert_eq!(keys(&span), ["id", "label", "tags"]);
    assert_eq!(span.attr("tags"), Some(&strings(&["t"])));
}

#[vaxila::instrument(args(.., %point), skip(label))]
fn rest_with_skip(id: u32, point: &Point, label: &str) -> usize {
    id as usize + label.len() + point.y.unsigned_abs() as usize
}

#[test]
fn skip_leaves_parameters_out_of_args_rest_and_named_ones_keep_their_sigil() {
    let (span, ret) = only(|| rest_with_skip(1, &Point { x: 0, y: 1 }, "ab"));
    assert_eq!(ret, 4);
    assert_eq!(keys(&span), ["id", "point"]);
    assert_eq!(span.attr("point"), Some(&string("(0, 1)")));
}

#[vaxila::instrument(args(..))]
fn login(user: &str, password: &str, api_key: &str, session_id: u64, author: &str) -> usize {
    user.len()
        + password.len()
        + api_key.len()
        + author.len()
        + usize::try_from(session_id).unwrap()
}

#[vaxila::instrument(args(.., token))]
fn named_secret(token: &str, access_token: &str) -> usize {
    token.len() + access_token.len()
}

#[test]
fn args_rest_redacts_secret_looking_parameters_unless_named() {
    let (span, ret) = only(|| login("ann", "hunter2", "k", 9, "bo"));
    assert_eq!(ret, 3 + 7 + 1 + 2 + 9);
    let redacted = string("[REDACTED]");
    assert_eq!(span.attr("user"), Some(&string("ann")));
    assert_eq!(span.attr("password"), Some(&redacted));
    assert_eq!(span.attr("api_key"), Some(&redacted));
    assert_eq!(span.attr("session_id"), Some(&redacted));
    assert_eq!(span.attr("author"), Some(&string("bo")));

    let (span, _) = only(|| named_secret("shown", "hidden"));
    assert_eq!(span.attr("token"), Some(&string("shown")));
    assert_eq!(span.attr("access_token"), Some(&redacted));
}

#[vaxila::instrument(fields(user.id = id + 1, "http.route" = "/users/{id}", shown = %Point { x: id, y: 0 }, debugged = ?Some(id)))]
fn with_fields(id: i32) -> i32 {
    id
}

#[test]
fn fields_take_dotted_and_string_keys_and_any_expression() {
    let (span, ret) = only(|| with_fields(4));
    assert_eq!(ret, 4);
    assert_eq!(keys(&span), ["user.id", "http.route", "shown", "debugged"]);
    assert_eq!(span.attr("user.id"), Some(&Value::I64(5)));
    assert_eq!(span.attr("http.route"), Some(&string("/users/{id}")));
    assert_eq!(span.attr("shown"), Some(&string("(4, 0)")));
    assert_eq!(span.attr("debugged"), Some(&string("Some(4)")));
}

#[vaxila::instrument(name = "GET /users/{id}")]
fn renamed() -> u8 {
    1
}

#[test]
fn name_sets_the_span_name_but_not_the_function_name() {
    let (span, ret) = only(renamed);
    assert_eq!(ret, 1);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(
        span.attr("code.function.name"),
        Some(&string("instrument_sync::renamed"))
    );
}

#[vaxila::instrument(kind = server)]
fn server() {}
#[vaxila::instrument(kind = client)]
fn client() {}
#[vaxila::instrument(kind = producer)]
fn producer() {}
#[vaxila::instrument(kind = consumer)]
fn consumer() {}
#[vaxila::instrument(kind = internal)]
fn internal() {}

#[test]
fn kind_sets_every_span_kind() {
    let kinds = [
        (server as fn(), SpanKind::Server),
        (client, SpanKind::Client),
        (producer, SpanKind::Producer),
        (consumer, SpanKind::Consumer),
        (internal, SpanKind::Internal),
    ];
    for (f, kind) in kinds {
        let (span, ()) = only(f);
        assert_eq!(span.kind, kind);
    }
}

#[vaxila::instrument(ret)]
fn ret_int(x: i64) -> i64 {
    x + 1
}

#[vaxila::instrument(ret)]
fn ret_debug() -> Point {
    Point { x: 1, y: 2 }
}

#[vaxila::instrument(ret)]
fn ret_result(ok: bool) -> Result<Vec<u8>, String> {
    if ok {
        Ok(vec![1])
    } else {
        Err("no".to_owned())
    }
}

#[vaxila::instrument(ret)]
fn ret_none() -> Option<i64> {
    None
}

#[test]
fn ret_records_the_return_value_typed_or_by_debug() {
    let (span, ret) = only(|| ret_int(1));
    assert_eq!(ret, 2);
    assert_eq!(span.attr("return"), Some(&Value::I64(2)));

    let (span, ret) = only(ret_debug);
    assert_eq!(ret.x, 1);
    assert_eq!(span.attr("return"), Some(&string("Point { x: 1, y: 2 }")));

    let (span, ret) = only(ret_none);
    assert_eq!(ret, None);
    assert_eq!(span.attr("return"), None);
}

#[test]
fn ret_records_the_ok_value_of_a_result_and_nothing_for_err() {
    let (span, ret) = only(|| ret_result(true));
    assert_eq!(ret, Ok(vec![1]));
    assert_eq!(
        span.attr("return"),
        Some(&Value::Array(Array::I64(vec![1])))
    );
    assert_eq!(span.status, Status::Unset);

    let (span, ret) = only(|| ret_result(false));
    assert_eq!(ret, Err("no".to_owned()));
    assert_eq!(span.attr("return"), None);
    assert_eq!(span.status, Status::error("no"));
}

#[derive(Debug)]
struct OnlyDebug;

struct Opaque;

type AppResult<T> = anyhow::Result<T>;

#[vaxila::instrument]
fn io_fails() -> std::io::Result<u8> {
    Err(std::io::Error::other("disk on fire"))
}

#[vaxila::instrument]
fn anyhow_fails() -> AppResult<u8> {
    Err(anyhow::anyhow!("out of coffee"))
}

#[vaxila::instrument]
fn debug_fails() -> Result<(), OnlyDebug> {
    Err(OnlyDebug)
}

#[vaxila::instrument]
fn opaque_fails() -> Result<(), Opaque> {
    Err(Opaque)
}

fn assert_failed(span: &CapturedSpan, type_name: &str, message: &str) {
    assert_eq!(span.status, Status::error(message.to_owned()));
    assert_eq!(span.attr("error.type"), Some(&string(type_name)));
    let event = span.event("exception").expect("an exception event");
    assert_eq!(event.attr("exception.type"), Some(&string(type_name)));
    assert_eq!(event.attr("exception.message"), Some(&string(message)));
}

#[test]
fn err_sets_status_error_type_and_exception_event_through_io_result() {
    let (span, ret) = only(io_fails);
    assert_eq!(ret.unwrap_err().to_string(), "disk on fire");
    assert_failed(
        &span,
        std::any::type_name::<std::io::Error>(),
        "disk on fire",
    );
}

#[test]
fn err_is_recorded_through_an_anyhow_result_alias() {
    let (span, ret) = only(anyhow_fails);
    assert_eq!(ret.unwrap_err().to_string(), "out of coffee");
    assert_failed(&span, "anyhow::Error", "out of coffee");
}

#[test]
fn err_without_display_is_described_by_debug_else_by_type_name() {
    let (span, _) = only(debug_fails);
    assert_failed(&span, std::any::type_name::<OnlyDebug>(), "OnlyDebug");
    let (span, _) = only(opaque_fails);
    let name = std::any::type_name::<Opaque>();
    assert_failed(&span, name, name);
}

#[vaxila::instrument(err = false)]
fn quiet_fails() -> std::io::Result<u8> {
    Err(std::io::Error::other("expected"))
}

#[test]
fn err_false_leaves_the_span_unset() {
    let (span, ret) = only(quiet_fails);
    assert!(ret.is_err());
    assert_eq!(span.status, Status::Unset);
    assert!(span.events.is_empty());
    assert_eq!(span.attr("error.type"), None);
}

#[vaxila::instrument(args(input), ret)]
fn early(input: &str) -> Result<u32, std::num::ParseIntError> {
    if input.is_empty() {
        return Ok(0);
    }
    let n: u32 = input.parse()?;
    Ok(n * 2)
}

#[test]
fn early_return_and_question_mark_keep_their_meaning() {
    let (span, ret) = only(|| early(""));
    assert_eq!(ret, Ok(0));
    assert_eq!(span.attr("return"), Some(&Value::I64(0)));

    let (span, ret) = only(|| early("21"));
    assert_eq!(ret, Ok(42));
    assert_eq!(span.attr("return"), Some(&Value::I64(42)));

    let (span, ret) = only(|| early("x"));
    assert_eq!(ret, "x".parse::<u32>().map(|_| 0));
    assert_eq!(span.status, Status::error("invalid digit found in string"));
}

/// `early` without the attribute.
fn early_bare(input: &str) -> Result<u32, std::num::ParseIntError> {
    if input.is_empty() {
        return Ok(0);
    }
    let n: u32 = input.parse()?;
    Ok(n * 2)
}

#[test]
fn instrumented_fns_return_exactly_what_the_bare_ones_return() {
    for input in ["", "21", "x", "99999999999", "-1"] {
        let (_, ret) = only(|| early(input));
        assert_eq!(ret, early_bare(input), "{input:?}");
    }
    let mut bare = vec![1, 2];
    let mut instrumented = bare.clone();
    bare[0] = 7;
    let (_, ()) = only(|| *first(&mut instrumented) = 7);
    assert_eq!(instrumented, bare);
}

#[vaxila::instrument]
fn boom(n: u8) -> u8 {
    assert!(n < 10, "{n} is too many");
    n
}

#[test]
fn panic_is_recorded_and_goes_on_to_the_caller() {
    let (span, caught) = only(|| catch_unwind(|| boom(12)));
    let payload = caught.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("12 is too many")
    );
    assert_eq!(span.status, Status::error("12 is too many"));
    let event = span.event("exception").expect("an exception event");
    assert_eq!(event.attr("exception.type"), Some(&string("panic")));
    assert_eq!(
        event.attr("exception.message"),
        Some(&string("12 is too many"))
    );
}

#[vaxila::instrument]
fn diverges() -> ! {
    panic!("never returns")
}

#[test]
fn never_returning_fn_records_its_panic() {
    let (span, caught) = only(|| catch_unwind(|| diverges()));
    assert!(caught.is_err());
    assert_eq!(span.status, Status::error("never returns"));
}

#[derive(Debug, Clone, PartialEq)]
struct Counter {
    count: u32,
}

impl Counter {
    #[vaxila::instrument(ret)]
    fn new() -> Self {
        Self { count: 0 }
    }

    #[vaxila::instrument(args(self), fields(count = self.count))]
    fn get(&self) -> u32 {
        self.count
    }

    #[vaxila::instrument(args(by))]
    fn bump(&mut self, by: u32) -> &mut Self {
        self.count += by;
        self
    }

    #[vaxila::instrument(fields(count = self.count))]
    fn into_count(self) -> u32 {
        self.count
    }
}

impl vaxila::AttributeValue for Counter {
    fn to_value(&self) -> Option<Value> {
        self.count.to_value()
    }
}

#[test]
fn methods_with_every_receiver_and_self_returns() {
    let (span, mut counter) = only(Counter::new);
    assert_eq!(counter, Counter { count: 0 });
    assert_eq!(span.name, "new");
    // Recordable types are recorded typed, even `Self`.
    assert_eq!(span.attr("return"), Some(&Value::I64(0)));

    let spans = capture(|| {
        counter.bump(2).bump(3);
    });
    let by: Vec<_> = spans.iter().map(|s| s.attr("by").cloned()).collect();
    assert_eq!(by, [Some(Value::I64(2)), Some(Value::I64(3))]);
    assert_eq!(counter.count, 5);

    let (span, count) = only(|| counter.get());
    assert_eq!(count, 5);
    assert_eq!(span.attr("self"), Some(&Value::I64(5)));
    assert_eq!(span.attr("count"), Some(&Value::I64(5)));

    let (span, count) = only(|| counter.into_count());
    assert_eq!(count, 5);
    assert_eq!(span.name, "into_count");
}

#[vaxila::instrument(args(..), ret)]
fn largest<'a, T>(items: &'a [T], label: &str) -> Option<&'a T>
where
    // In generic code `args(..)` sees what the bounds promise: without
    // `AttributeValue` here, `items` would be passed over.
    T: PartialOrd + fmt::Debug + vaxila::AttributeValue,
{
    let _ = label;
    items.iter().fold(None, |best, item| match best {
        Some(b) if b >= item => Some(b),
        _ => Some(item),
    })
}

#[test]
fn generics_with_where_clauses_and_lifetimes() {
    let (span, ret) = only(|| largest(&[1, 5, 3], "ints"));
    assert_eq!(ret, Some(&5));
    assert_eq!(
        span.attr("items"),
        Some(&Value::Array(Array::I64(vec![1, 5, 3])))
    );
    assert_eq!(span.attr("return"), Some(&Value::I64(5)));

    let (span, ret) = only(|| largest(&[Point { x: 1, y: 1 }.x], "points"));
    assert_eq!(ret, Some(&1));
    assert_eq!(span.attr("label"), Some(&string("points")));
}

#[vaxila::instrument(args(..), ret)]
fn impl_traits(
    items: impl IntoIterator<Item = u8>,
    shown: impl fmt::Display,
) -> impl Iterator<Item = u8> + fmt::Debug {
    let _ = shown.to_string();
    items
        .into_iter()
        .map(|x| x * 2)
        .collect::<Vec<_>>()
        .into_iter()
}

#[vaxila::instrument(err)]
fn impl_in_result(fail: bool) -> Result<impl fmt::Display, std::fmt::Error> {
    if fail {
        return Err(fmt::Error);
    }
    let n: u8 = "3".parse().map_err(|_| fmt::Error)?;
    Ok(n)
}

#[vaxila::instrument(err = false)]
fn impl_in_result_unrecorded(input: &str) -> Result<impl fmt::Display, std::num::ParseIntError> {
    let n: u8 = input.parse()?;
    Ok(n)
}

#[test]
fn impl_trait_in_argument_and_return_position() {
    let ret = impl_in_result_unrecorded("4").map(|d| d.to_string());
    assert_eq!(ret, Ok("4".to_owned()));

    let (span, ret) = only(|| impl_traits(vec![1, 2], 'x').collect::<Vec<_>>());
    assert_eq!(ret, [2, 4]);
    assert_eq!(span.attr("return"), Some(&string("IntoIter([2, 4])")));

    let (span, ret) = only(|| impl_in_result(false).map(|d| d.to_string()));
    assert_eq!(ret, Ok("3".to_owned()));
    assert_eq!(span.status, Status::Unset);
    let (span, _) = only(|| impl_in_result(true).map(|d| d.to_string()));
    assert_eq!(
        span.status,
        Status::error("an error occurred when formatting an argument")
    );
}

#[vaxila::instrument(args(..))]
fn destructured(
    (a, b): (i32, i32),
    Point { x, y: why }: Point,
    [first, ..]: [u8; 3],
    mut n: u32,
) -> i64 {
    n += 1;
    i64::from(a + b + x + why) + i64::from(first) + i64::from(n)
}

#[test]
fn destructured_and_mut_parameters_record_their_bindings() {
    let (span, ret) = only(|| destructured((1, 2), Point { x: 3, y: 4 }, [5, 6, 7], 8));
    assert_eq!(ret, 1 + 2 + 3 + 4 + 5 + 9);
    assert_eq!(keys(&span), ["a", "b", "x", "why", "first", "n"]);
    assert_eq!(span.attr("n"), Some(&Value::I64(8)));
}

#[allow(
    clippy::ptr_arg,
    reason = "the signature tracing-attributes once broke"
)]
#[vaxila::instrument]
fn first(v: &mut Vec<u8>) -> &mut u8 {
    &mut v[0]
}

#[test]
fn a_reference_derived_from_a_mut_argument_can_be_returned() {
    let mut v = vec![1, 2];
    let (_, ()) = only(|| *first(&mut v) = 9);
    assert_eq!(v, [9, 2]);
}

#[vaxila::instrument(args(n))]
fn factorial(n: u64) -> u64 {
    if n <= 1 { 1 } else { n * factorial(n - 1) }
}

#[test]
fn recursion_nests_each_call_under_its_caller() {
    let mut ret = 0;
    let spans = capture(|| ret = factorial(4));
    assert_eq!(ret, 24);
    // Children end first: the innermost call is the first span.
    let ns: Vec<_> = spans.iter().map(|s| s.attr("n").cloned()).collect();
    assert_eq!(
        ns,
        [4, 3, 2, 1]
            .map(|n| Some(Value::I64(n)))
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
    );
    for pair in spans.windows(2) {
        assert_eq!(pair[0].parent_span_id, pair[1].span_id);
        assert_eq!(pair[0].trace_id, pair[1].trace_id);
    }
    assert!(spans[3].is_root());
}

/// # Safety
///
/// `ptr` must be valid for reads.
#[vaxila::instrument]
unsafe fn read(ptr: *const u32) -> u32 {
    // SAFETY: the caller promises that `ptr` is valid for reads.
    unsafe { *ptr }
}

#[test]
fn unsafe_fn_keeps_working() {
    let x = 7;
    // SAFETY: `&x` is valid for reads.
    let (span, ret) = only(|| unsafe { read(&raw const x) });
    assert_eq!(ret, 7);
    assert_eq!(span.name, "read");
}

#[vaxila::instrument]
fn with_plain_otel_child() -> u8 {
    let tracer = vaxila::opentelemetry::global::tracer("plain");
    let _span = tracer.start("plain child");
    1
}

#[test]
fn a_plain_opentelemetry_span_inside_is_a_child() {
    let spans = capture(with_plain_otel_child);
    let [child, parent] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(child.name, "plain child");
    assert_eq!(child.parent_span_id, parent.span_id);
    assert_eq!(child.trace_id, parent.trace_id);
}

#[vaxila::instrument(parent = cx)]
fn with_parent(cx: &Context) -> u8 {
    let _ = cx;
    2
}

#[vaxila::instrument(root)]
fn new_trace() {}

#[vaxila::instrument]
fn outer_calls_root() {
    new_trace();
}

#[test]
fn parent_takes_an_explicit_context() {
    let remote = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let cx = Context::new().with_remote_span_context(remote.clone());
    let (span, ret) = only(|| with_parent(&cx));
    assert_eq!(ret, 2);
    assert_eq!(span.trace_id, remote.trace_id());
    assert_eq!(span.parent_span_id, remote.span_id());
}

#[test]
fn root_starts_a_new_trace_inside_another_span() {
    let spans = capture(outer_calls_root);
    let [root, outer] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(root.name, "new_trace");
    assert!(root.is_root());
    assert_ne!(root.trace_id, outer.trace_id);
}

#[vaxila::instrument]
#[must_use]
#[inline]
fn attributes_kept() -> u8 {
    #![allow(clippy::let_and_return)]
    let x = 3;
    x
}

#[test]
fn outer_and_inner_attributes_are_kept() {
    let (span, ret) = only(attributes_kept);
    assert_eq!(ret, 3);
    assert_eq!(span.name, "attributes_kept");
}
