//! A small instrumented web service: axum, SQLite through sqlx, and a call to
//! another service with reqwest, all in one trace.
//!
//! ```sh
//! cargo run --example axum_service --features axum,reqwest,sqlx
//! curl localhost:3000/orders/1     # server span → handler → database spans → client span → inventory
//! curl localhost:3000/orders/99    # 404, not an error
//! curl localhost:3000/boom         # 500, marked Error
//! ```
//!
//! The orders routes call the inventory routes over HTTP; here the inventory
//! is the same program (`INVENTORY_URL`, by default this service itself), so
//! one request shows a trace that crosses two services.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use sqlx::{Row as _, Sqlite, SqlitePool};
use vaxila::sqlx::Traced;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    db: Traced<Sqlite>,
    http: ClientWithMiddleware,
    inventory_url: String,
}

impl AppState {
    /// A state over `pool`, calling the inventory at `inventory_url`.
    pub fn new(pool: SqlitePool, inventory_url: String) -> Self {
        Self {
            db: Traced::new(pool).with_namespace("shop"),
            http: ClientBuilder::new(reqwest::Client::new())
                .with(vaxila::reqwest::TraceMiddleware::new())
                .build(),
            inventory_url,
        }
    }
}

/// The service's routes, traced.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/inventory/{sku}", get(get_stock))
        .route("/boom", get(boom))
        .with_state(state)
        .layer(vaxila::axum::TraceLayer::new())
}

/// The database the example starts with.
///
/// # Errors
///
/// When SQLite cannot be opened.
pub async fn database() -> Result<SqlitePool, sqlx::Error> {
    // A pool of connections to one in-memory database, as a service has to
    // its database: concurrent requests' queries do not queue behind one
    // connection. Each call makes a database of its own (tests make many).
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let name = DATABASES.fetch_add(1, Ordering::Relaxed);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        // The database lives as long as one of its connections does.
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect(&format!("sqlite:file:shop{name}?mode=memory&cache=shared"))
        .await?;
    for statement in [
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL)",
        "CREATE TABLE stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL)",
        "INSERT INTO orders (id, sku, quantity) VALUES (1, 'kettle', 2), (2, 'teapot', 1)",
        "INSERT INTO stock (sku, available) VALUES ('kettle', 12), ('teapot', 0)",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    Ok(pool)
}

/// A missing order is an answer (404), not a failure: only `Err` marks the span.
#[vaxila::instrument(args(id))]
async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, String), StatusCode> {
    let Some((sku, quantity)) = load_order(&state.db, id).await.map_err(internal)? else {
        return Ok((StatusCode::NOT_FOUND, format!("no order {id}\n")));
    };
    let available = stock_of(&state, &sku).await?;
    vaxila::current_span().set_attribute("order.in_stock", available >= quantity);
    Ok((
        StatusCode::OK,
        format!("order {id}: {quantity} × {sku}, {available} in stock\n"),
    ))
}

/// The data-access function: its span is the parent of the query's.
#[vaxila::instrument(args(id))]
async fn load_order(db: &Traced<Sqlite>, id: i64) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query("SELECT sku, quantity FROM orders WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|row| (row.get("sku"), row.get("quantity"))))
}

/// Asks the inventory service, with `traceparent`.
#[vaxila::instrument(args(sku))]
async fn stock_of(state: &AppState, sku: &str) -> Result<i64, StatusCode> {
    let url = format!("{}/inventory/{sku}", state.inventory_url);
    let response = state.http.get(url).send().await.map_err(internal)?;
    let body = response.text().await.map_err(internal)?;
    body.trim().parse().map_err(internal)
}

#[vaxila::instrument(args(sku))]
async fn get_stock(
    State(state): State<AppState>,
    Path(sku): Path<String>,
) -> Result<String, StatusCode> {
    let available: Option<i64> = sqlx::query_scalar("SELECT available FROM stock WHERE sku = ?")
        .bind(&sku)
        .fetch_optional(&state.db)
        .await
        .map_err(internal)?;
    available
        .map(|n| n.to_string())
        .ok_or(StatusCode::NOT_FOUND)
}

#[vaxila::instrument]
async fn boom() -> Result<String, StatusCode> {
    Err(StatusCode::INTERNAL_SERVER_ERROR)
}

fn internal(error: impl std::fmt::Display) -> StatusCode {
    vaxila::current_span().add_event("failure", [("message", error.to_string())]);
    StatusCode::INTERNAL_SERVER_ERROR
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _guard = vaxila::Config::load()?
        .with_service_name("axum_service")
        .init()?;
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let inventory_url = std::env::var("INVENTORY_URL").unwrap_or_else(|_| format!("http://{addr}"));
    let state = AppState::new(database().await?, inventory_url);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on http://{addr}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
    // `_guard` drops here, after the server stopped: the last spans are exported.
}
