//! The HTTP face of the explorer: routes, thin handlers (parse the request, call
//! [`App`], answer JSON), the guard every request passes, and the embedded page.
//!
//! **The guard.** On a loopback address without a token, a request's `Host` must name this
//! server (a page on another site cannot reach it through DNS rebinding). With a token,
//! every request carries it (header `X-Dagrun-Token`, query `token`, or the cookie the
//! page gets when it is opened with `?token=`). A POST whose `Origin` is not this server is
//! refused. **Never panics on a request**: bad input is a 4xx with a one-line reason
//! (`{"error": "…"}`), and a panic in a handler is caught and answered 500.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::state::{App, Unknown};
use crate::cache::io::TableFormat;
use crate::error::Error;
use crate::labels::{self, Action, Entry};

/// The largest request body (a label action over ~1M ids fits).
pub const MAX_BODY: usize = 16 << 20;
/// The most results a search returns.
pub const MAX_K: u32 = 10_000;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const LICENSES: &str = include_str!("assets/THIRD-PARTY-LICENSES.txt");

/// A refusal: status and a one-line reason.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1 }).to_string();
        (self.0, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

impl From<Unknown> for ApiError {
    fn from(u: Unknown) -> Self {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no galaxy with id `{}`", u.0),
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = if e.exit_code() == 2 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

pub fn router(app: Arc<App>) -> Router {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    // Points and cutouts are already dense: compressing them costs more than it saves on
    // the loopback and a LAN.
    let compress = SizeAbove::new(1024)
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::IMAGES);
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/licenses.txt",
            get(|| async { asset("text/plain; charset=utf-8", LICENSES) }),
        )
        .route("/api/info", get(info))
        .route("/api/classes", get(classes))
        .route("/api/points", get(points))
        .route("/api/galaxy/{id}", get(galaxy))
        .route("/api/galaxies", get(galaxies))
        .route("/api/cutout/{id}", get(cutout))
        .route("/api/similar", get(similar))
        .route("/api/labels", get(labels_get).post(labels_post))
        .route("/api/export", get(export))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such page or API route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here".into(),
            )
        })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(tower_http::compression::CompressionLayer::new().compress_when(compress))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server failed on this request (a bug: please report it)".into(),
            )
            .into_response()
        }))
        .with_state(app)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The query string's pairs, percent-decoded (`+` is a space).
pub fn query_pairs(q: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    let Some(q) = q else { return Ok(Vec::new()) };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> ApiResult<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(
                    hex.ok_or_else(|| ApiError::bad("malformed percent-encoding in the query"))?,
                );
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad("the query is not UTF-8"))
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token a request carries, and whether it came in the query (the page's first load:
/// answer with the cookie): the header first, then the query, then the cookie.
fn token_in(headers: &HeaderMap, query: Option<&str>) -> Option<(String, bool)> {
    if let Some(t) = headers.get("x-dagrun-token").and_then(|v| v.to_str().ok()) {
        return Some((t.to_owned(), false));
    }
    if let Some(t) = query_pairs(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
    {
        return Some((t, true));
    }
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("dagrun_token="));
    cookie.map(|t| (t.to_owned(), false))
}

async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match check(&app, &req) {
        Ok(set_cookie) => {
            let mut resp = next.run(req).await;
            if set_cookie {
                if let Some(v) = app.token.as_ref().and_then(|t| {
                    HeaderValue::from_str(&format!(
                        "dagrun_token={t}; Path=/; HttpOnly; SameSite=Strict"
                    ))
                    .ok()
                }) {
                    resp.headers_mut().insert(header::SET_COOKIE, v);
                }
            }
            resp.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// Whether the request may pass; `Ok(true)`: it carried the token in its query (set the cookie).
fn check(app: &App, req: &Request) -> ApiResult<bool> {
    let addr = app.addr.expect("bound");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut via_query = false;
    match &app.token {
        None => {
            // Loopback without a token: the Host must be this server, by address or as localhost.
            let port = addr.port();
            let ok = [
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
                format!("{}:{port}", addr.ip()),
            ];
            if !ok.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    format!("Host `{host}` is not this server: open {}", app.url()),
                ));
            }
        }
        Some(t) => match token_in(req.headers(), req.uri().query()) {
            Some((given, from_query)) if same(&given, t) => via_query = from_query,
            _ => {
                return Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    "this server needs its token: open the URL it printed (…/?token=…)".into(),
                ))
            }
        },
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
            {
                return Err(ApiError(
                    StatusCode::FORBIDDEN,
                    format!(
                        "a request from another site (Origin `{origin}`) may not change labels"
                    ),
                ));
            }
        }
    }
    Ok(via_query)
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn info(State(app): State<Arc<App>>) -> Response {
    json(app.info())
}

async fn classes(State(app): State<Arc<App>>) -> Response {
    json(app.classes_json.clone())
}

async fn points(State(app): State<Arc<App>>) -> ApiResult<Response> {
    let body = blocking(move || Ok(app.points())).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

async fn galaxy(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(app.galaxy(&id)?))
}

async fn galaxies(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let mut ids = Vec::new();
    for (k, v) in query_pairs(req.uri().query())? {
        match k.as_str() {
            "id" => ids.push(v),
            "token" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "unknown parameter `{other}` (takes id)"
                )))
            }
        }
    }
    if ids.len() > 1000 {
        return Err(ApiError::bad("at most 1000 ids a request"));
    }
    let out = ids
        .iter()
        .map(|id| app.galaxy(id))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(json(serde_json::json!({ "galaxies": out })))
}

async fn cutout(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Response> {
    let row = app.row(&id)?;
    let path = app.image_path(row).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("galaxy `{id}` has no cutout"),
        )
    })?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("galaxy `{id}`: its cutout cannot be read ({e})"),
        )
    })?;
    let kind = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("galaxy `{id}`: its cutout is neither JPEG nor PNG"),
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

async fn similar(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (mut ids, mut not, mut k) = (Vec::new(), Vec::new(), app.k);
    for (key, v) in query_pairs(req.uri().query())? {
        match key.as_str() {
            "id" => ids.push(v),
            "not" => not.push(v),
            "k" => {
                k = v
                    .parse()
                    .ok()
                    .filter(|k| (1..=MAX_K).contains(k))
                    .ok_or_else(|| {
                        ApiError::bad(format!(
                            "`k` must be a whole number from 1 to {MAX_K}, not `{v}`"
                        ))
                    })?
            }
            "token" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "unknown parameter `{other}` (takes id, not, k)"
                )))
            }
        }
    }
    if ids.is_empty() {
        return Err(ApiError::bad(
            "give at least one example: /api/similar?id=ID",
        ));
    }
    if ids.len() + not.len() > 10_000 {
        return Err(ApiError::bad("at most 10000 examples and counter-examples"));
    }
    for g in ids.iter().chain(&not) {
        app.row(g)?;
    }
    let slot = app.search_slot.clone().acquire_owned().await.map_err(|_| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping".into(),
        )
    })?;
    let v = blocking(move || {
        let _slot = slot;
        Ok(app.similar(ids, not, k)?)
    })
    .await?;
    Ok(json(v))
}

async fn labels_get(State(app): State<Arc<App>>) -> ApiResult<Response> {
    Ok(json(blocking(move || Ok(app.labels_json())).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRequest {
    action: Action,
    label: String,
    ids: Vec<String>,
}

async fn labels_post(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let body: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is over {} MiB", MAX_BODY >> 20),
            )
        })?;
    let r: LabelRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "not a label action {{\"action\": \"add\" | \"remove\", \"label\", \"ids\"}}: {e}"
        ))
    })?;
    labels::check_label(&r.label).map_err(ApiError::bad)?;
    if r.ids.is_empty() {
        return Err(ApiError::bad("`ids` is empty: label at least one galaxy"));
    }
    for g in &r.ids {
        app.row(g)?;
    }
    let count = r.ids.len();
    let entry = Entry {
        time: labels::now(),
        action: r.action,
        label: r.label,
        ids: r.ids,
    };
    // Written and fsynced before the answer; one writer at a time.
    let seq = blocking(move || {
        let mut w = app.labels.lock().unwrap_or_else(|e| e.into_inner());
        Ok(w.append(entry)?)
    })
    .await?;
    Ok(json(
        serde_json::json!({ "ok": true, "seq": seq, "count": count }),
    ))
}

async fn export(State(app): State<Arc<App>>, req: Request) -> ApiResult<Response> {
    let (mut format, mut globs) = (TableFormat::Csv, Vec::new());
    for (k, v) in query_pairs(req.uri().query())? {
        match (k.as_str(), v.as_str()) {
            ("format", "csv") => format = TableFormat::Csv,
            ("format", "parquet") => format = TableFormat::Parquet,
            ("format", _) => {
                return Err(ApiError::bad(format!(
                    "`format` is csv or parquet, not `{v}`"
                )))
            }
            ("columns", _) => {
                globs.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned))
            }
            ("token", _) => {}
            (other, _) => {
                return Err(ApiError::bad(format!(
                    "unknown parameter `{other}` (takes format, columns)"
                )))
            }
        }
    }
    let (ext, kind) = if format == TableFormat::Csv {
        ("csv", "text/csv")
    } else {
        ("parquet", "application/octet-stream")
    };
    let name = format!("{}-labels.{ext}", app.pipeline);
    let bytes = blocking(move || {
        let mut out = Vec::new();
        crate::cache::io::write_table(
            &mut out,
            &mut app.export(&globs)?,
            format,
            "the label export",
        )?;
        Ok(out)
    })
    .await?;
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_',
            "_"
        )
    ))
    .unwrap_or(HeaderValue::from_static("attachment"));
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    resp.headers_mut()
        .insert(header::CONTENT_DISPOSITION, disposition);
    Ok(resp)
}

/// Run CPU or disk work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed on this request (a bug: please report it)".into(),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_refuse_garbage() {
        let q = query_pairs(Some("id=a%20b&id=c+d&not=%2E%2E%2Fetc&k=5")).unwrap();
        assert_eq!(
            q,
            vec![
                ("id".into(), "a b".into()),
                ("id".into(), "c d".into()),
                ("not".into(), "../etc".into()),
                ("k".into(), "5".into())
            ]
        );
        assert!(query_pairs(Some("id=%zz")).is_err());
        assert!(query_pairs(Some("id=%ff")).is_err(), "not UTF-8");
        assert!(query_pairs(Some("id=%4")).is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
