//! The `#[vaxila::instrument]` attribute macro. Use it through the `vaxila` crate.
//!
//! `lib.rs` hands over to `expand`; `args` parses the attribute, `item` the
//! function (its body kept as tokens), `valid` checks one against the other,
//! and `ctxt` collects every mistake so that one build shows them all.

mod args;
mod ctxt;
mod expand;
mod item;
mod valid;

use proc_macro::TokenStream;

/// Wraps a function in a span.
///
/// The span is named after the function, is the current span while the body
/// runs (so spans started inside, by `#[instrument]`, `tracing` or the plain
/// OpenTelemetry API, are its children) and ends when the function returns or
/// unwinds. It always carries `code.function.name`, `code.file.path` and
/// `code.line.number`.
///
/// ```
/// #[vaxila::instrument]
/// fn awesome_action(id: i64) -> i64 {
///     id * 2
/// }
///
/// let spans = vaxila::testing::capture(|| assert_eq!(awesome_action(21), 42));
/// assert_eq!(spans[0].name, "awesome_action");
/// assert!(spans[0].attr("code.line.number").is_some());
/// ```
///
/// Until a tracer provider is installed (by `vaxila::init()`), an
/// instrumented function does what the bare one does, plus one atomic load.
///
/// # Shapes
///
/// Any function with a body: methods with any receiver, generics and `where`
/// clauses, `impl Trait` arguments and returns, destructured and `mut`
/// parameters, `unsafe fn`, early `return` and `?`. Attributes such as
/// `#[must_use]` and docs stay on the function, and lints such as `dead_code`
/// still see it.
///
/// For an `async fn`, a function whose body ends in an `async` block (`fn …
/// -> impl Future`) and an `#[async_trait]` method, the span starts when the
/// future is first polled, is current during every poll (never across an
/// `.await`), and ends when the future completes. A future dropped before it
/// completes ends the span with `vaxila.cancelled = true`.
///
/// In a function that returns an `async` block, `args` and `fields` are
/// evaluated in the block, at the first poll: the block captures what they
/// name, as if the block had used it.
///
/// `ret` and the `Err` check need the future's output type, which the macro
/// reads from the signature (`impl Future<Output = T>`,
/// `Pin<Box<dyn Future<Output = T>>>`). Behind an alias or an associated type
/// (`BoxFuture<'_, T>`, `Self::Future`) it cannot see it: the span is made as
/// usual, and the value is passed on without being recorded. Write the future
/// type out, or put the macro on an `async fn` the method calls, to have it
/// recorded.
///
/// ```
/// #[vaxila::instrument]
/// async fn fetch(id: u64) -> u64 {
///     id
/// }
///
/// #[vaxila::instrument]
/// fn spawnable(id: u64) -> impl Future<Output = u64> + Send + 'static {
///     async move { id } // the span starts at the first poll of this block
/// }
/// # let _ = (fetch(1), spawnable(1));
/// ```
///
/// # Outcomes
///
/// A function that returns `Err(e)`, whatever its `Result` type is called
/// (`io::Result`, `anyhow::Result`, an alias of your own), marks its span
/// failed: status Error with `e`'s `Display` text (else its `Debug` text,
/// else its type name), attribute `error.type`, and an `exception` event.
/// A panic does the same with `exception.type = "panic"`, and goes on.
///
/// ```
/// # use vaxila::opentelemetry::trace::Status;
/// #[vaxila::instrument]
/// fn read_config() -> std::io::Result<String> {
///     std::fs::read_to_string("/no/such/file")
/// }
///
/// let spans = vaxila::testing::capture(|| read_config());
/// assert!(matches!(spans[0].status, Status::Error { .. }));
/// assert!(spans[0].event("exception").is_some());
/// ```
///
/// # Arguments
///
/// ## `args(a, %b, ?c, ..)`: record parameters
///
/// `a` is recorded with its typed value through [`AttributeValue`]
/// (integers stay integers, `Vec`s become arrays, `None` records nothing); a
/// type that does not implement it is a compile error at `a`. `%b` records
/// `b`'s `Display` text, `?c` its `Debug` text.
///
/// ```
/// # use vaxila::opentelemetry::Value;
/// #[derive(Debug)]
/// struct Cart {
///     items: u32,
/// }
///
/// #[vaxila::instrument(args(user_id, %ip, ?cart))]
/// fn checkout(user_id: u64, ip: std::net::IpAddr, cart: &Cart) {}
///
/// let spans = vaxila::testing::capture(|| checkout(7, [127, 0, 0, 1].into(), &Cart { items: 2 }));
/// assert_eq!(spans[0].attr("user_id"), Some(&Value::I64(7)));
/// assert_eq!(spans[0].attr("ip"), Some(&Value::from("127.0.0.1")));
/// assert_eq!(spans[0].attr("cart"), Some(&Value::from("Cart { items: 2 }")));
/// ```
///
/// `..` records every other parameter whose type is recordable and passes
/// over the others without a word (in generic code, "recordable" is what the
/// bounds promise). Parameters whose names look secret (`password`, `token`,
/// `api_key`, `session`, …) are recorded as `"[REDACTED]"`, unless named
/// explicitly.
///
/// ```
/// # use vaxila::opentelemetry::Value;
/// struct Db;
///
/// #[vaxila::instrument(args(..))]
/// fn login(db: &Db, user: &str, password: &str) {}
///
/// let spans = vaxila::testing::capture(|| login(&Db, "ann", "hunter2"));
/// assert_eq!(spans[0].attr("db"), None); // not recordable: passed over
/// assert_eq!(spans[0].attr("user"), Some(&Value::from("ann")));
/// assert_eq!(spans[0].attr("password"), Some(&Value::from("[REDACTED]")));
/// ```
///
/// ## `skip(a, b)`: leave parameters out of `args(..)`
///
/// ```
/// # use vaxila::opentelemetry::Value;
/// #[vaxila::instrument(args(..), skip(body))]
/// fn upload(name: &str, body: &[u8]) {}
///
/// let spans = vaxila::testing::capture(|| upload("a.png", &[0; 1024]));
/// assert_eq!(spans[0].attr("name"), Some(&Value::from("a.png")));
/// assert_eq!(spans[0].attr("body"), None);
/// ```
///
/// ## `fields(key = expr, ...)`: record expressions
///
/// Keys may be dotted (`user.id`) or string literals (`"http.route"`);
/// values are typed, or `%expr` / `?expr`. The expressions are evaluated
/// only when the span is recording.
///
/// ```
/// # use vaxila::opentelemetry::Value;
/// struct User {
///     id: u64,
///     name: String,
/// }
///
/// #[vaxila::instrument(fields(user.id = user.id, "user.name" = %user.name, name.len = user.name.len()))]
/// fn greet(user: &User) {}
///
/// let spans = vaxila::testing::capture(|| greet(&User { id: 1, name: "ann".into() }));
/// assert_eq!(spans[0].attr("user.id"), Some(&Value::I64(1)));
/// assert_eq!(spans[0].attr("user.name"), Some(&Value::from("ann")));
/// assert_eq!(spans[0].attr("name.len"), Some(&Value::I64(3)));
/// ```
///
/// ## `name = "..."`: the span name
///
/// Keep it low-cardinality: put ids in attributes, not in the name.
///
/// ```
/// #[vaxila::instrument(name = "GET /users/{id}")]
/// fn get_user(id: u64) {}
///
/// let spans = vaxila::testing::capture(|| get_user(1));
/// assert_eq!(spans[0].name, "GET /users/{id}");
/// ```
///
/// ## `kind = server | client | producer | consumer | internal`
///
/// The span kind, `internal` unless given.
///
/// ```
/// #[vaxila::instrument(kind = client)]
/// fn call_payment_api() {}
///
/// let spans = vaxila::testing::capture(call_payment_api);
/// assert_eq!(spans[0].kind, vaxila::SpanKind::Client);
/// ```
///
/// ## `ret`: record the return value
///
/// As attribute `return`: typed if recordable, else its `Debug` text; for a
/// `Result`, the `Ok` value (an `Err` is recorded as an error anyway).
///
/// ```
/// # use vaxila::opentelemetry::Value;
/// #[vaxila::instrument(ret)]
/// fn parse(s: &str) -> Result<u16, std::num::ParseIntError> {
///     s.parse()
/// }
///
/// let spans = vaxila::testing::capture(|| parse("8080"));
/// assert_eq!(spans[0].attr("return"), Some(&Value::I64(8080)));
/// ```
///
/// ## `err = false`: an `Err` is not a failure
///
/// ```
/// # use vaxila::opentelemetry::trace::Status;
/// #[vaxila::instrument(err = false)]
/// fn cache_get(key: &str) -> Result<String, String> {
///     Err(format!("{key}: miss"))
/// }
///
/// let spans = vaxila::testing::capture(|| cache_get("k"));
/// assert_eq!(spans[0].status, Status::Unset);
/// ```
///
/// ## `parent = expr`: an explicit parent
///
/// `expr` is a `&vaxila::opentelemetry::Context`, for example one extracted
/// from incoming headers. It may use the parameters.
///
/// ```
/// use vaxila::opentelemetry::Context;
///
/// #[vaxila::instrument(parent = cx, kind = consumer)]
/// fn handle_message(cx: &Context, body: &[u8]) {}
///
/// # let spans = vaxila::testing::capture(|| handle_message(&Context::new(), b""));
/// # assert!(spans[0].is_root());
/// ```
///
/// ## `root`: start a new trace
///
/// Whatever span is current, this one has no parent.
///
/// ```
/// #[vaxila::instrument(root)]
/// fn background_job() {}
///
/// #[vaxila::instrument]
/// fn request() {
///     background_job();
/// }
///
/// let spans = vaxila::testing::capture(request);
/// assert!(spans[0].is_root());
/// assert_ne!(spans[0].trace_id, spans[1].trace_id);
/// ```
///
/// ## `crate = path`: where `vaxila` is
///
/// For a crate that re-exports `vaxila` to its users, or a dependency renamed
/// in `Cargo.toml`.
///
/// ```
/// mod telemetry {
///     pub use vaxila;
/// }
///
/// #[vaxila::instrument(crate = telemetry::vaxila)]
/// fn work() {}
/// # work();
/// ```
///
/// # Mistakes
///
/// An unknown or repeated argument, a parameter name that `args` or `skip`
/// does not find, `skip` without `args(..)`, `root` with `parent`, or a
/// `const fn`: each is one compile error at the offending token, and the
/// function is still emitted as written, so nothing else fails because of it.
///
/// [`AttributeValue`]: https://docs.rs/vaxila/latest/vaxila/trait.AttributeValue.html
#[proc_macro_attribute]
pub fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::instrument(args.into(), item.into()).into()
}
