//! The admin API: setting the admin password, logging in, and adding, testing, editing
//! and removing cameras while camhub runs (`/api/admin/*`, `/api/cameras*`,
//! `/api/state/start-over`). The page uses it; scripts can too (HTTP Basic
//! `admin:<password>`).
//!
//! Every change needs the admin (`admin.rs`: Basic or the page's session cookie, failed
//! logins throttled, requests from other sites refused) and goes through the state file
//! (`store.rs`) before the live set of streams (`streams.rs`) follows, so what the API
//! acknowledged is on disk. Errors are JSON `{"error": …}` with 400/401/403/404/409/413/
//! 429/503, never a 500 for bad input. Camera passwords are write-only: answers say
//! `has_password`, never the password; URLs are shown without credentials.
//!
//! Work that blocks (argon2 checks, fsync, connecting to a camera) runs on smol's
//! blocking pool, never on the HTTP executor's threads.

use super::{Body, Ctx};
use crate::admin::{self, Deny, RequestFacts};
use crate::config::redact_url;
use crate::probe;
use crate::store::SavedCamera;
use crate::streams::Origin;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request body the API reads: a camera is a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long `POST /api/cameras/test` may take, all candidates together.
const TEST_DEADLINE: Duration = Duration::from_secs(10);

/// A refusal as status and message, turned into the JSON answer at the end.
struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into())
    }

    fn into_response(self) -> Response<Body> {
        error(self.0, &self.1)
    }
}

/// Unwraps `Ok`, or returns the `Err`'s answer from the handler.
macro_rules! try_api {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return ApiError::into_response(e),
        }
    };
}

/// True for the paths this module answers.
pub fn owns(path: &str) -> bool {
    ["/api/admin", "/api/cameras", "/api/discover", "/api/onvif/"]
        .iter()
        .any(|p| path.starts_with(p))
        || path == "/api/state/start-over"
}

/// Answers one admin API request.
pub async fn respond(ctx: &Arc<Ctx>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let facts = RequestFacts::from_headers(method.as_str(), peer, |name| {
        req.headers().get(name).and_then(|v| v.to_str().ok())
    });
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = try_api!(read_body(req).await);
    match (&method, segments.as_slice()) {
        (&Method::GET, ["api", "admin"]) => admin_status(ctx, facts).await,
        (&Method::POST, ["api", "admin", "password"]) => set_password(ctx, facts, &body).await,
        (&Method::POST, ["api", "admin", "login"]) => login(ctx, facts, &body).await,
        (&Method::POST, ["api", "admin", "logout"]) => logout(ctx, &facts),
        (_, ["api", "admin", ..]) => not_allowed(),
        (m, ["api", "cameras" | "discover" | "onvif", ..])
        | (m, ["api", "state", "start-over"]) => {
            // Everything else here is the admin's only.
            let admin = ctx.admin.clone();
            let authorized = {
                let facts = facts.clone();
                smol::unblock(move || admin.authorize(&facts, Instant::now())).await
            };
            if let Err(deny) = authorized {
                return denied(deny, &facts);
            }
            match (m, &segments[1..]) {
                (&Method::GET, ["cameras"]) => list(ctx),
                (&Method::POST, ["cameras"]) => add(ctx, &body).await,
                (&Method::POST, ["cameras", "test"]) => test(ctx, &body).await,
                (&Method::PUT, ["cameras", id]) => edit(ctx, id, &body).await,
                (&Method::DELETE, ["cameras", id]) => remove(ctx, id).await,
                (&Method::POST, ["state", "start-over"]) => start_over(ctx).await,
                (&Method::GET, ["discover"]) => discover(ctx, &query).await,
                (&Method::POST, ["onvif", "streams"]) => onvif_streams(ctx, &body).await,
                (_, ["cameras"] | ["cameras", _] | ["state", "start-over"] | ["discover"])
                | (_, ["onvif", "streams"]) => not_allowed(),
                _ => error(StatusCode::NOT_FOUND, "not found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// The request body, at most [`MAX_BODY_BYTES`] (413 beyond).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body was cut short",
        )),
    }
}

/// Parses a JSON body into `T`, or a 400 saying what is wrong.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn admin_status(ctx: &Arc<Ctx>, facts: RequestFacts) -> Response<Body> {
    let admin = ctx.admin.clone();
    // Only a live session counts here: checking Basic credentials on a GET would let
    // anyone probe passwords without the POST's throttling… which authorize applies
    // anyway, but a page asking "am I logged in" needs no argon2 run.
    let logged_in = facts.cookie.is_some()
        && smol::unblock(move || {
            let mut facts = facts;
            facts.authorization = None;
            admin.authorize(&facts, Instant::now()).is_ok()
        })
        .await;
    json(
        StatusCode::OK,
        &json!({
            "password_set": ctx.admin.is_set(),
            "logged_in": logged_in,
            "problem": ctx.admin.problem(),
            "state_problem": state_problem(ctx),
        }),
    )
}

async fn set_password(ctx: &Arc<Ctx>, facts: RequestFacts, body: &[u8]) -> Response<Body> {
    let PasswordBody { password } = try_api!(parse(body));
    let admin = ctx.admin.clone();
    let result = smol::unblock(move || {
        admin.set_first_password(&facts, &password)?;
        // The page that set it is logged in at once.
        Ok(admin.login(&facts, &password, Instant::now()).ok())
    })
    .await;
    match result {
        Ok(cookie) => {
            let mut resp = json(StatusCode::CREATED, &json!({ "password_set": true }));
            if let Some(cookie) = cookie {
                set_cookie(&mut resp, &cookie.set_cookie());
            }
            resp
        }
        Err(e) => {
            let e: admin::SetError = e;
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            error(status, &e.to_string())
        }
    }
}

async fn login(ctx: &Arc<Ctx>, facts: RequestFacts, body: &[u8]) -> Response<Body> {
    let PasswordBody { password } = try_api!(parse(body));
    let admin = ctx.admin.clone();
    let for_deny = facts.clone();
    match smol::unblock(move || admin.login(&facts, &password, Instant::now())).await {
        Ok(cookie) => {
            let mut resp = json(StatusCode::OK, &json!({ "logged_in": true }));
            set_cookie(&mut resp, &cookie.set_cookie());
            resp
        }
        Err(deny) => denied(deny, &for_deny),
    }
}

fn logout(ctx: &Arc<Ctx>, facts: &RequestFacts) -> Response<Body> {
    if let Err(deny) = admin::check_same_site(facts) {
        return denied(deny, facts);
    }
    ctx.admin.logout(facts.cookie.as_deref());
    let mut resp = json(StatusCode::OK, &json!({ "logged_in": false }));
    set_cookie(&mut resp, &admin::clear_cookie());
    resp
}

/// `GET /api/cameras`: every camera, whoever wants it, with credentials left out.
fn list(ctx: &Arc<Ctx>) -> Response<Body> {
    let saved = ctx.store.as_ref().map(|s| s.list()).unwrap_or_default();
    let cameras: Vec<Value> = ctx
        .streams
        .configs()
        .into_iter()
        .map(|(origin, config)| {
            let saved = saved.iter().find(|c| c.id == config.id);
            camera_json(ctx, origin, &config, saved)
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({ "cameras": cameras, "problem": state_problem(ctx) }),
    )
}

/// One camera as the API shows it.
fn camera_json(
    ctx: &Ctx,
    origin: Origin,
    config: &crate::config::StreamConfig,
    saved: Option<&SavedCamera>,
) -> Value {
    let status = ctx.hub.get(&config.id).map(|s| s.status());
    let read_only = match origin {
        Origin::File => Some("defined in camhub.toml"),
        Origin::Discovered => Some("a camera plugged into this box"),
        Origin::Builtin => Some("the test pattern shown while there is no camera"),
        Origin::Saved => None,
    };
    json!({
        "id": config.id,
        "name": config.name,
        "url": redact_url(&config.url),
        "sub_url": config.sub_url.as_deref().map(redact_url),
        "username": config.username,
        "has_password": config.password.as_deref().is_some_and(|p| !p.is_empty())
            || url_has_password(&config.url),
        "sub_username": saved.and_then(|s| s.sub_username.clone()),
        "has_sub_password": config.sub_password.as_deref().is_some_and(|p| !p.is_empty())
            || config.sub_url.as_deref().is_some_and(url_has_password),
        "enabled": config.enabled,
        "source": origin.as_str(),
        "read_only": read_only,
        "state": status.as_ref().map(|s| s.state.as_str()),
        "last_error": status.and_then(|s| s.last_error),
    })
}

fn url_has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()))
}

/// A camera as the page sends it. `password: null` or absent keeps the saved one on
/// edit; `""` removes it.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct CameraBody {
    id: Option<String>,
    name: Option<String>,
    url: Option<String>,
    #[serde(default, deserialize_with = "some_value")]
    sub_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_value")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_value")]
    password: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_value")]
    sub_username: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_value")]
    sub_password: Option<Option<String>>,
    enabled: Option<bool>,
}

/// Tells a key sent as `null` (`Some(None)`) from a key not sent (`None`).
fn some_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// An empty string means "none".
fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl CameraBody {
    /// Applies the body to `camera`: keys not sent stay as they are.
    fn apply(self, camera: &mut SavedCamera) {
        if let Some(name) = self.name {
            camera.name = name.trim().to_string();
        }
        if let Some(url) = self.url {
            camera.url = url.trim().to_string();
        }
        if let Some(v) = self.sub_url {
            camera.sub_url = non_empty(v);
        }
        if let Some(v) = self.username {
            camera.username = non_empty(v);
        }
        if let Some(Some(v)) = self.password {
            camera.password = Some(v).filter(|p| !p.is_empty());
        }
        if let Some(v) = self.sub_username {
            camera.sub_username = non_empty(v);
        }
        if let Some(Some(v)) = self.sub_password {
            camera.sub_password = Some(v).filter(|p| !p.is_empty());
        }
        if let Some(enabled) = self.enabled {
            camera.enabled = enabled;
        }
    }
}

/// 400 unless `camera`'s URLs may be set from the web (no `exec:`, `v4l2:` only for
/// video devices).
fn check_urls(camera: &SavedCamera) -> Result<(), ApiError> {
    if camera.url.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "url is required"));
    }
    for url in std::iter::once(&camera.url).chain(camera.sub_url.as_ref()) {
        probe::check_web_url(url).map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, why))?;
    }
    Ok(())
}

async fn add(ctx: &Arc<Ctx>, body: &[u8]) -> Response<Body> {
    let body: CameraBody = try_api!(parse(body));
    let mut camera = SavedCamera::new("", "");
    camera.id = body.id.clone().unwrap_or_default().trim().to_string();
    body.apply(&mut camera);
    if camera.name.is_empty() && camera.id.is_empty() {
        return error(StatusCode::BAD_REQUEST, "name is required");
    }
    try_api!(check_urls(&camera));
    let store = try_api!(store(ctx));
    let ctx2 = ctx.clone();
    let saved = smol::unblock(move || {
        let hub = ctx2.hub.clone();
        let saved = store.add(camera, &|id| hub.get(id).is_some())?;
        let config = saved.stream_config()?;
        ctx2.streams.add(Origin::Saved, config)?;
        ctx2.streams.retire_builtin();
        Ok::<_, crate::Error>(saved)
    })
    .await;
    match saved {
        Ok(saved) => camera_answer(ctx, StatusCode::CREATED, &saved.id),
        Err(e) => store_error(&e),
    }
}

async fn edit(ctx: &Arc<Ctx>, id: &str, body: &[u8]) -> Response<Body> {
    let body: CameraBody = try_api!(parse(body));
    if body.id.as_deref().is_some_and(|new| new != id) {
        return error(StatusCode::BAD_REQUEST, "a camera's id cannot change");
    }
    if let Some(resp) = read_only(ctx, id) {
        return resp;
    }
    let store = try_api!(store(ctx));
    // Check the result before saving: the same rules as an add.
    let Some(mut preview) = store.get(id) else {
        return error(StatusCode::NOT_FOUND, "no such camera");
    };
    body.clone().apply(&mut preview);
    try_api!(check_urls(&preview));
    let (ctx2, id2) = (ctx.clone(), id.to_string());
    let saved = smol::unblock(move || {
        let saved = store.update(&id2, |camera| body.apply(camera))?;
        let config = saved.stream_config()?;
        ctx2.streams.replace(Origin::Saved, config)?;
        Ok::<_, crate::Error>(saved)
    })
    .await;
    match saved {
        Ok(saved) => camera_answer(ctx, StatusCode::OK, &saved.id),
        Err(e) => store_error(&e),
    }
}

async fn remove(ctx: &Arc<Ctx>, id: &str) -> Response<Body> {
    if let Some(resp) = read_only(ctx, id) {
        return resp;
    }
    let store = try_api!(store(ctx));
    let (ctx2, id2) = (ctx.clone(), id.to_string());
    let removed = smol::unblock(move || {
        store.remove(&id2)?;
        ctx2.streams.remove(&id2);
        Ok::<_, crate::Error>(())
    })
    .await;
    match removed {
        Ok(()) => json(StatusCode::OK, &json!({ "removed": id })),
        Err(e) => store_error(&e),
    }
}

/// 409 for a camera the config file or discovery owns, 404 for none at all.
fn read_only(ctx: &Ctx, id: &str) -> Option<Response<Body>> {
    match ctx.streams.origin(id) {
        Some(Origin::File) => Some(error(
            StatusCode::CONFLICT,
            "this camera is defined in camhub.toml: change it there",
        )),
        Some(Origin::Discovered) => Some(error(
            StatusCode::CONFLICT,
            "this camera is plugged into the box: unplug it to remove it",
        )),
        Some(Origin::Builtin) => Some(error(
            StatusCode::CONFLICT,
            "this is the test pattern shown while there is no camera; it goes when one is added",
        )),
        Some(Origin::Saved) => None,
        None if ctx.store.as_ref().is_some_and(|s| s.get(id).is_some()) => None,
        None => Some(error(StatusCode::NOT_FOUND, "no such camera")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    url: String,
    username: Option<String>,
    password: Option<String>,
}

async fn test(ctx: &Arc<Ctx>, body: &[u8]) -> Response<Body> {
    let body: TestBody = try_api!(parse(body));
    let input = body.url.trim().to_string();
    if input.is_empty() {
        return error(StatusCode::BAD_REQUEST, "url is required");
    }
    // A URL (not a bare address) is checked like a saved camera's: `exec:` is refused.
    let lower = input.to_ascii_lowercase();
    if input.contains("://")
        || ["exec:", "v4l2:", "pattern:"]
            .iter()
            .any(|p| lower.starts_with(p))
    {
        if let Err(why) = probe::check_web_url(&input) {
            return error(StatusCode::BAD_REQUEST, &why);
        }
    }
    let shutdown = ctx.shutdown.clone();
    let result = smol::unblock(move || {
        probe::test_address(
            &input,
            body.username.as_deref().filter(|u| !u.is_empty()),
            body.password.as_deref().filter(|p| !p.is_empty()),
            &shutdown,
            TEST_DEADLINE,
        )
    })
    .await;
    json(StatusCode::OK, &result.to_json())
}

/// `GET /api/discover[?address=IP]` (see `discover.rs`).
async fn discover(ctx: &Arc<Ctx>, query: &str) -> Response<Body> {
    let address = match super::query_value(query, "address") {
        None => None,
        Some(a) => match a
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
        {
            Ok(ip) => Some(ip),
            Err(_) => return error(StatusCode::BAD_REQUEST, "address must be an IP address"),
        },
    };
    match super::discover::discover(ctx, address).await {
        Ok(value) => json(StatusCode::OK, &value),
        Err(why) => error(StatusCode::FORBIDDEN, &why),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnvifBody {
    address: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /api/onvif/streams`: the camera's profiles, or `{ok: false, reason}` in plain
/// words (what the camera said is about the camera, not about this request: 200).
async fn onvif_streams(ctx: &Arc<Ctx>, body: &[u8]) -> Response<Body> {
    let body: OnvifBody = try_api!(parse(body));
    if body.address.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "address is required");
    }
    let shutdown = ctx.shutdown.clone();
    let result = smol::unblock(move || {
        crate::onvif::streams(
            body.address.trim(),
            &body.username,
            &body.password,
            &shutdown,
            super::discover::ONVIF_DEADLINE,
        )
    })
    .await;
    match result {
        Ok(streams) => {
            let mut value = serde_json::to_value(&streams).unwrap_or(Value::Null);
            if let Some(map) = value.as_object_mut() {
                map.insert("ok".into(), Value::Bool(true));
            }
            json(StatusCode::OK, &value)
        }
        Err(e) => json(
            StatusCode::OK,
            &json!({ "ok": false, "reason": e.reason() }),
        ),
    }
}

async fn start_over(ctx: &Arc<Ctx>) -> Response<Body> {
    let store = try_api!(store(ctx));
    match smol::unblock(move || store.start_over()).await {
        Ok(kept) => json(
            StatusCode::OK,
            &json!({ "kept_aside": kept.map(|p| p.display().to_string()) }),
        ),
        Err(e) => store_error(&e),
    }
}

/// The camera `id` as saved and running, with `status`.
fn camera_answer(ctx: &Arc<Ctx>, status: StatusCode, id: &str) -> Response<Body> {
    let saved = ctx.store.as_ref().and_then(|s| s.get(id));
    match ctx.streams.configs().into_iter().find(|(_, c)| c.id == id) {
        Some((origin, config)) => json(status, &camera_json(ctx, origin, &config, saved.as_ref())),
        None => json(status, &json!({ "id": id })),
    }
}

/// A store or stream error as the API's answer: the message (which names no password)
/// with the status its kind calls for.
fn store_error(e: &crate::Error) -> Response<Body> {
    use crate::Error;
    let status = match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Config { .. } | Error::Permanent(_) => StatusCode::BAD_REQUEST,
        Error::Io { .. } | Error::Source(_) | Error::Jpeg(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "saving a camera failed");
    }
    error(status, &e.to_string())
}

/// The state store, or a 503 when camhub runs without a state directory.
fn store(ctx: &Ctx) -> Result<Arc<crate::store::Store>, ApiError> {
    ctx.store.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "camhub has no state directory, so cameras cannot be saved (start it with --state-dir)",
        )
    })
}

/// Why the saved cameras could not be loaded, if so.
fn state_problem(ctx: &Ctx) -> Option<String> {
    ctx.store.as_ref().and_then(|s| s.problem())
}

fn denied(deny: Deny, facts: &RequestFacts) -> Response<Body> {
    let status = StatusCode::from_u16(deny.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = error(status, deny.message());
    if let Some(secs) = deny.retry_after_secs() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(value) = deny.www_authenticate(facts) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    resp
}

fn not_allowed() -> Response<Body> {
    error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

fn set_cookie(resp: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &json!({ "error": message }))
}

fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).expect("JSON values serialize");
    let mut resp = super::uncached("application/json", body);
    *resp.status_mut() = status;
    resp
}
