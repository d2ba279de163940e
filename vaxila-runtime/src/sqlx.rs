//! Database spans for sqlx: a pool wrapper that is an executor like the pool itself.
//!
//! ```no_run
//! # async fn run() -> Result<(), sqlx::Error> {
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let db = vaxila::sqlx::Traced::new(pool).with_namespace("shop");
//!
//! // Every query run on `&db` is a span.
//! let rows = sqlx::query("SELECT id, name FROM users WHERE id = ?")
//!     .bind(7)
//!     .fetch_all(&db)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! sqlx reports no query timings of its own, so the wrapper times each query
//! where it runs: a span of kind `client`, a child of the current span,
//! named `SELECT users` (the operation and the table, where the statement
//! names one simply; else the operation), with `db.system.name` (`sqlite`,
//! `postgresql`, `mysql`), `db.namespace` (when set), `db.operation.name`,
//! `db.collection.name` and `db.query.text`: the statement with its `?`/`$1`
//! placeholders, never the bound values, and with any literal written into
//! it (`'alice@example.com'`, `42`) replaced by `?`. The span starts when the
//! query is issued and lasts to the last row (or until the caller stops
//! reading). An error sets status Error, `error.type`, the SQLSTATE as
//! `db.response.status_code`, and an `exception` event whose message has
//! any quoted value in it replaced by `?`.
//!
//! Each thread works out a statement's name, operation, table and text once
//! and shares them among that statement's spans. It keeps this for at most
//! 128 statements of at most 1 KiB each, and starts over past that; a
//! statement written as a string literal is found again by its address
//! (checked against its text), without hashing its text.
//!
//! `Traced` derefs to the pool, so `db.begin()`, `db.acquire()` and the rest
//! are still there (queries run on a transaction or a connection taken from
//! it are not traced).

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::sqlx::{Database, Describe, Either, Error, Execute, Executor, Pool};
use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue, StringValue};

use crate::__private::Span;
use crate::record::Name;

/// A sqlx pool whose queries are spans; see the [module docs](self).
pub struct Traced<DB: Database> {
    pool: Pool<DB>,
    /// Shared by the spans, not copied into each.
    namespace: Option<StringValue>,
}

impl<DB: Database> Traced<DB> {
    /// Traces the queries run on `pool` through the wrapper.
    #[must_use]
    pub fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            namespace: None,
        }
    }

    /// Sets `db.namespace`: the database (or schema) the pool works in.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<Cow<'static, str>>) -> Self {
        self.namespace = Some(match namespace.into() {
            Cow::Borrowed(namespace) => StringValue::from(namespace),
            Cow::Owned(namespace) => StringValue::from(Arc::<str>::from(namespace)),
        });
        self
    }

    /// The pool itself, untraced.
    #[must_use]
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    fn span(&self, sql: &str) -> Span {
        // Looked up only if the span is recorded, once for its name and
        // attributes both.
        let statement = OnceCell::new();
        let described = || statement.get_or_init(|| Described::of(sql));
        Span::start_named(
            || described().span_name(system::<DB>()),
            SpanKind::Client,
            || {
                let described = described();
                [
                    Some(KeyValue::new("db.system.name", system::<DB>())),
                    (self.namespace.clone()).map(|n| KeyValue::new("db.namespace", n)),
                    (described.operation.clone()).map(|o| KeyValue::new("db.operation.name", o)),
                    (described.collection.clone()).map(|c| KeyValue::new("db.collection.name", c)),
                    Some(KeyValue::new("db.query.text", described.query.clone())),
                ]
                .into_iter()
                .flatten()
            },
            &Context::current(),
        )
    }
}

impl<DB: Database> Clone for Traced<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for Traced<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced")
            .field("pool", &self.pool)
            .field(
                "namespace",
                &self.namespace.as_ref().map(StringValue::as_str),
            )
            .finish()
    }
}

impl<DB: Database> Deref for Traced<DB> {
    type Target = Pool<DB>;

    fn deref(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<'p, DB: Database> Executor<'p> for &'p Traced<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        if !crate::global::enabled() {
            return self.pool.fetch_many(query);
        }
        let span = self.span(query.sql());
        let inner = self.pool.fetch_many(query);
        Box::pin(TracedStream { inner, span })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        if !crate::global::enabled() {
            return self.pool.fetch_optional(query);
        }
        let mut span = self.span(query.sql());
        let inner = self.pool.fetch_optional(query);
        Box::pin(async move {
            let result = span.instrument(inner).await;
            if let Err(error) = &result {
                record(&mut span, error);
            }
            result
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
    where
        'p: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

/// A query's stream of results, polled inside its span; the span ends when
/// the stream does, or when it is dropped.
struct TracedStream<'e, T> {
    inner: BoxStream<'e, Result<T, Error>>,
    span: Span,
}

impl<T> Stream for TracedStream<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        // A stream may stop being read at any row: its end is no cancellation.
        let poll = this
            .span
            .poll_in(&mut true, || inner.as_mut().poll_next(task));
        if let Poll::Ready(Some(Err(error))) = &poll {
            record(&mut this.span, error);
        }
        poll
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// `db.system.name`, from the driver's name.
fn system<DB: Database>() -> &'static str {
    match DB::NAME {
        "SQLite" => "sqlite",
        "PostgreSQL" => "postgresql",
        "MySQL" => "mysql",
        "MSSQL" => "microsoft.sql_server",
        _ => "other_sql",
    }
}

/// Marks the query's span failed. A database's message may quote the
/// values it refused (`Duplicate entry 'alice@example.com'`): quoted text in
/// it is replaced by `?`, and the SQLSTATE goes to `db.response.status_code`.
fn record(span: &mut Span, error: &Error) {
    let message = error.to_string();
    let message = sanitize(&sanitize(&message, '\''), '"').into_owned();
    if let Error::Database(database) = error
        && let Some(code) = database.code()
    {
        span.set_attribute(KeyValue::new("db.response.status_code", code.into_owned()));
    }
    span.record_error(error_type(error), &message);
}

/// `text` with every literal quoted by `quote` (and, for SQL, every number
/// that is not part of a name or a `$1` placeholder) replaced by `?`, so
/// that values written into a statement are never recorded.
fn sanitize(text: &str, quote: char) -> Cow<'_, str> {
    let numbers = quote == '\'';
    let has_digits = numbers && text.bytes().any(|b| b.is_ascii_digit());
    if !text.contains(quote) && !has_digits {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if c == quote {
            // To the closing quote; a doubled quote is an escaped one.
            while let Some(inner) = chars.next() {
                if inner == quote {
                    if chars.peek() == Some(&quote) {
                        chars.next();
                    } else {
                        break;
                    }
                }
            }
            out.push('?');
            previous = '?';
            continue;
        }
        let in_name = previous.is_alphanumeric() || previous == '_' || previous == '$';
        if numbers && c.is_ascii_digit() && !in_name {
            while chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '.')
            {
                chars.next();
            }
            out.push('?');
            previous = '?';
            continue;
        }
        out.push(c);
        previous = c;
    }
    Cow::Owned(out)
}

fn error_type(error: &Error) -> &'static str {
    match error {
        Error::Database(_) => "sqlx::Error::Database",
        Error::RowNotFound => "sqlx::Error::RowNotFound",
        Error::PoolTimedOut => "sqlx::Error::PoolTimedOut",
        Error::PoolClosed => "sqlx::Error::PoolClosed",
        Error::Io(_) => "sqlx::Error::Io",
        Error::Tls(_) => "sqlx::Error::Tls",
        Error::Protocol(_) => "sqlx::Error::Protocol",
        Error::ColumnNotFound(_) => "sqlx::Error::ColumnNotFound",
        Error::ColumnDecode { .. } => "sqlx::Error::ColumnDecode",
        Error::Decode(_) => "sqlx::Error::Decode",
        Error::Configuration(_) => "sqlx::Error::Configuration",
        _ => "sqlx::Error",
    }
}

/// What the span name and attributes say of a statement, read without a
/// SQL parser: the first keyword, and the table of a simple statement.
#[derive(Debug, PartialEq)]
struct Statement {
    operation: Option<String>,
    collection: Option<String>,
}

impl Statement {
    fn parse(sql: &str) -> Self {
        let mut words = sql
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .filter(|w| !w.is_empty());
        let operation = words
            .next()
            .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
            .map(str::to_ascii_uppercase);
        let after = match operation.as_deref() {
            Some("SELECT" | "DELETE") => Some("FROM"),
            Some("INSERT" | "REPLACE") => Some("INTO"),
            Some("UPDATE") => None,
            _ => {
                return Self {
                    operation,
                    collection: None,
                };
            }
        };
        let collection = match after {
            None => words.next(),
            Some(keyword) => {
                let mut words = words.skip_while(|w| !w.eq_ignore_ascii_case(keyword));
                words.next();
                words.next()
            }
        }
        // `items(id, name)` names `items`; `(SELECT ...)` names nothing.
        .map(|w| w.split('(').next().unwrap_or_default())
        .map(|w| w.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']'))
        .filter(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
        .map(str::to_owned);
        Self {
            operation,
            collection,
        }
    }

    /// `SELECT users`, or `SELECT`; `None` when it names no operation.
    fn name(&self) -> Option<String> {
        let operation = self.operation.as_ref()?;
        Some(match &self.collection {
            Some(collection) => format!("{operation} {collection}"),
            None => operation.clone(),
        })
    }
}

/// What a query's span records of its statement, worked out once per
/// thread for each statement text (a service runs the same few again and
/// again), and shared by the spans rather than copied into each.
struct Described {
    /// `None` when the statement names no operation: the span is named
    /// after the database system.
    name: Option<Arc<str>>,
    operation: Option<StringValue>,
    collection: Option<StringValue>,
    /// The statement, its literals replaced by `?`.
    query: StringValue,
}

/// Statements a thread keeps described; past it, it starts over.
const DESCRIBED_STATEMENTS: usize = 128;

/// Statements longer than this are described afresh each time: they are
/// mostly made at run time, each different.
const DESCRIBED_LENGTH: usize = 1024;

/// Places for statements found by where their text is.
const ADDRESS_SLOTS: usize = 64;

/// The statements a thread has described.
struct Statements {
    /// By text: a statement made at run time is at another address each
    /// time, and its text is what repeats.
    by_text: HashMap<Rc<str>, Rc<Described>>,
    /// By the address of the text, checked against the text: most
    /// statements are string literals, at one address for the program's
    /// life, so this finds them without hashing their text. A place is
    /// taken by the last statement whose address falls into it.
    by_address: [Option<AtAddress>; ADDRESS_SLOTS],
}

/// A statement kept by the address of its text.
struct AtAddress {
    address: usize,
    text: Rc<str>,
    described: Rc<Described>,
}

impl Statements {
    fn get(&mut self, sql: &str) -> Rc<Described> {
        let address = sql.as_ptr() as usize;
        let at = crate::address::place_of(address, ADDRESS_SLOTS);
        if let Some(kept) = &self.by_address[at]
            && kept.address == address
            && *kept.text == *sql
        {
            return kept.described.clone();
        }
        let (text, described) = match self.by_text.get_key_value(sql) {
            Some((text, described)) => (text.clone(), described.clone()),
            None => {
                if self.by_text.len() >= DESCRIBED_STATEMENTS {
                    // Both, so that what is kept stays within the bound.
                    self.by_text.clear();
                    self.by_address = [const { None }; ADDRESS_SLOTS];
                }
                let text = Rc::<str>::from(sql);
                let described = Rc::new(Described::new(sql));
                self.by_text.insert(text.clone(), described.clone());
                (text, described)
            }
        };
        self.by_address[at] = Some(AtAddress {
            address,
            text,
            described: described.clone(),
        });
        described
    }
}

std::thread_local! {
    static DESCRIBED: RefCell<Statements> = RefCell::new(Statements {
        by_text: HashMap::new(),
        by_address: [const { None }; ADDRESS_SLOTS],
    });
}

impl Described {
    fn of(sql: &str) -> Rc<Described> {
        if sql.len() > DESCRIBED_LENGTH {
            return Rc::new(Self::new(sql));
        }
        DESCRIBED
            .try_with(|described| Some(described.try_borrow_mut().ok()?.get(sql)))
            .ok()
            .flatten()
            .unwrap_or_else(|| Rc::new(Self::new(sql)))
    }

    fn new(sql: &str) -> Self {
        let statement = Statement::parse(sql);
        let shared = |text: &str| StringValue::from(Arc::<str>::from(text));
        Self {
            name: statement.name().map(Arc::from),
            operation: statement.operation.as_deref().map(shared),
            collection: statement.collection.as_deref().map(shared),
            query: shared(&sanitize(sql, '\'')),
        }
    }

    fn span_name(&self, system: &'static str) -> Name {
        match &self.name {
            Some(name) => Name::Shared(name.clone()),
            None => Name::Static(system),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::{DESCRIBED, DESCRIBED_LENGTH, DESCRIBED_STATEMENTS, Described, sanitize};

    fn name(sql: &str) -> String {
        Described::of(sql).span_name("sqlite").as_str().to_owned()
    }

    #[test]
    fn literals_are_never_recorded_and_placeholders_are_kept() {
        let q = |sql| sanitize(sql, '\'').into_owned();
        assert_eq!(
            q("SELECT * FROM users WHERE email = 'a@b.c' AND id = 42"),
            "SELECT * FROM users WHERE email = ? AND id = ?"
        );
        assert_eq!(
            q("INSERT INTO t VALUES ('it''s', 1.5e3, -7)"),
            "INSERT INTO t VALUES (?, ?, -?)"
        );
        assert_eq!(
            q("SELECT a FROM t2 WHERE b = $1 AND c = ?"),
            "SELECT a FROM t2 WHERE b = $1 AND c = ?"
        );
        assert_eq!(q("SELECT \"col1\" FROM t"), "SELECT \"col1\" FROM t");
        assert!(matches!(
            sanitize("SELECT a FROM t WHERE b = ?", '\''),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            sanitize("Duplicate entry 'alice@x.com' for key 'email'", '\''),
            "Duplicate entry ? for key ?"
        );
    }

    #[test]
    fn span_names_are_the_operation_and_the_table() {
        assert_eq!(
            name("SELECT id, name FROM users WHERE id = ?"),
            "SELECT users"
        );
        assert_eq!(name("select * from \"orders\""), "SELECT orders");
        assert_eq!(
            name("INSERT INTO items (id, name) VALUES ($1, $2)"),
            "INSERT items"
        );
        assert_eq!(name("UPDATE shop.items SET n = n + 1"), "UPDATE shop.items");
        assert_eq!(name("DELETE FROM sessions"), "DELETE sessions");
        assert_eq!(name("CREATE TABLE t (id INTEGER)"), "CREATE");
        assert_eq!(name("SELECT 1"), "SELECT");
        assert_eq!(name("INSERT INTO items(id) VALUES (1)"), "INSERT items");
        assert_eq!(name("SELECT * FROM (SELECT 1)"), "SELECT");
        assert_eq!(name("  "), "sqlite");
        assert_eq!(name("WITH x AS (SELECT 1) SELECT * FROM x"), "WITH");
    }

    #[test]
    fn a_statement_is_described_once_per_thread_with_its_literals_hidden() {
        let sql = "SELECT sku FROM orders WHERE id = 42 AND note = 'secret'";
        let first = Described::of(sql);
        assert!(Rc::ptr_eq(&first, &Described::of(sql)));
        assert_eq!(first.span_name("sqlite").as_str(), "SELECT orders");
        assert_eq!(first.operation.as_ref().map(|o| o.as_str()), Some("SELECT"));
        assert_eq!(
            first.collection.as_ref().map(|c| c.as_str()),
            Some("orders")
        );
        assert_eq!(
            first.query.as_str(),
            "SELECT sku FROM orders WHERE id = ? AND note = ?"
        );
        assert_eq!(
            Described::of("  ").span_name("postgresql").as_str(),
            "postgresql"
        );
    }

    #[test]
    fn a_statement_is_found_by_its_address_and_checked_by_its_text() {
        let literal = "SELECT id FROM by_address WHERE id = ?";
        let first = Described::of(literal);
        assert!(Rc::ptr_eq(&first, &Described::of(literal)));
        // The same text at another address: found by its text.
        let copy = literal.to_owned();
        assert!(Rc::ptr_eq(&first, &Described::of(&copy)));
        // Other text at the same address: described as itself.
        let mut reused = String::with_capacity(64);
        reused.push_str("SELECT a FROM reused_one");
        let address = reused.as_ptr();
        assert_eq!(name(&reused), "SELECT reused_one");
        reused.clear();
        reused.push_str("SELECT a FROM reused_two");
        assert_eq!(reused.as_ptr(), address);
        assert_eq!(name(&reused), "SELECT reused_two");
        // Both still kept by text.
        let two = Described::of(&reused);
        assert!(Rc::ptr_eq(&two, &Described::of("SELECT a FROM reused_two")));
    }

    #[test]
    fn the_described_statements_of_a_thread_are_bounded() {
        for n in 0..DESCRIBED_STATEMENTS * 2 + 7 {
            Described::of(&format!("SELECT c{n} FROM t"));
        }
        let kept = DESCRIBED.with(|d| d.borrow().by_text.len());
        assert!((1..=DESCRIBED_STATEMENTS).contains(&kept), "{kept}");
        // What the addresses keep is among what the texts keep.
        DESCRIBED.with(|d| {
            let d = d.borrow();
            for at_address in d.by_address.iter().flatten() {
                let kept = d.by_text.get(&*at_address.text);
                assert!(kept.is_some_and(|kept| Rc::ptr_eq(kept, &at_address.described)));
            }
        });

        let long = format!("SELECT {} FROM t", "c, ".repeat(DESCRIBED_LENGTH));
        let described = Described::of(&long);
        assert!(!Rc::ptr_eq(&described, &Described::of(&long)));
        assert_eq!(described.span_name("sqlite").as_str(), "SELECT t");
    }
}
