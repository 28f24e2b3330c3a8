//! Who may change things: the admin password (an argon2id hash), the page's admin sessions
//! (cookies), throttled password checks and the refusal of cross-site writes.
//!
//! Viewing is not decided here (it stays open, or `[server] auth` Basic, see `http`);
//! every change (cameras added, edited or removed, starting over) asks
//! [`Admin::authorize`] first. The rules, in the order they are applied:
//!
//! 1. A state-changing request (anything but GET, HEAD, OPTIONS) whose `Origin` names
//!    another site than its `Host`, or whose `Sec-Fetch-Site` is `cross-site`, is refused
//!    ([`Deny::CrossSite`], 403) before any credential is looked at (CSRF). Without
//!    `Origin` (curl, scripts) it may go on.
//! 2. Without an admin password nothing can be authorised ([`Deny::NoPasswordYet`]); the
//!    page first sets one ([`Admin::set_first_password`], once only).
//! 3. A live session cookie (`camhub_session`, from [`Admin::login`]) is the admin.
//! 4. HTTP Basic `admin:<password>` is the admin (scripts, curl). Password checks, by
//!    Basic or by login, are throttled per client: after 5 failures in a minute the
//!    answer is [`Deny::TooMany`] (429) without the password being checked at all.
//!
//! Independent of hyper: a request is described by [`RequestFacts`] (header values as
//! text and the peer address) and the time is an `Instant` handed in, so every rule is
//! unit-tested. Password checks are slow on purpose (argon2id, ~0.1 s on a Pi 4) and at
//! most [`MAX_CONCURRENT_CHECKS`] run at once (each takes 19 MiB), so `login`,
//! `authorize` and `set_first_password` block: call them from a blocking thread
//! (`smol::unblock`). Nothing here logs or returns a password or a session token, and
//! the types holding one print as `redacted`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Shortest admin password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted or checked, in bytes; longer ones are refused unhashed.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id memory cost in KiB: 19 MiB, t=2, p=1 is OWASP's minimum recommendation for
/// argon2id (Password Storage Cheat Sheet) and argon2's own default; it takes about a
/// tenth of a second on a Pi 4 (see the `hash_time` test's printout for this machine).
pub const ARGON2_M_KIB: u32 = 19 * 1024;
/// argon2id passes over memory.
pub const ARGON2_T: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P: u32 = 1;
/// A configured hash asking for more memory than this (KiB) is refused: each check would
/// take that much of the Pi's RAM.
const MAX_ACCEPTED_M_KIB: u32 = 256 * 1024;
/// Likewise for passes, so one check cannot take minutes.
const MAX_ACCEPTED_T: u32 = 32;
/// Likewise for lanes.
const MAX_ACCEPTED_P: u32 = 16;

/// The name of the page's session cookie.
pub const SESSION_COOKIE: &str = "camhub_session";
/// A session unused this long is over.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Live sessions kept at most; a new login beyond this ends the least recently used.
pub const MAX_SESSIONS: usize = 64;

/// Failed password checks allowed per client within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The sliding window over which failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Clients whose failures are remembered at most; beyond this the one that failed least
/// recently is forgotten, so the table cannot grow without bound.
pub const MAX_THROTTLED_CLIENTS: usize = 1024;
/// argon2 checks running at once at most (each takes [`ARGON2_M_KIB`] of memory); more
/// wait their turn, and re-check the throttle when it comes.
pub const MAX_CONCURRENT_CHECKS: usize = 2;

/// The file in camhub's state directory that holds the hash of a password set from the
/// page.
pub const STATE_FILE: &str = "admin.toml";

/// The `WWW-Authenticate` value of a 401 for clients that are not a browser's page.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"camhub admin\", charset=\"UTF-8\"";

/// An argon2 hash in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), checked
/// to be usable. Prints as `redacted`: a hash is still something to crack offline.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedPassword(String);

impl HashedPassword {
    /// Checks that `phc` is an argon2 (id, i or d) PHC string with a salt, a hash and
    /// parameters this box can afford to check. The error says what is wrong, never the
    /// string itself.
    pub fn parse(phc: &str) -> Result<HashedPassword, String> {
        const EXPECTED: &str = "expected an argon2 PHC string like \
            \"$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>\"";
        let hash = PasswordHash::new(phc).map_err(|e| format!("{EXPECTED}: {e}"))?;
        Algorithm::try_from(hash.algorithm).map_err(|_| {
            format!("{EXPECTED}: the algorithm must be argon2id, argon2i or argon2d")
        })?;
        if let Some(v) = hash.version {
            Version::try_from(v).map_err(|_| format!("{EXPECTED}: unknown version v={v}"))?;
        }
        let params = Params::try_from(&hash).map_err(|e| format!("{EXPECTED}: {e}"))?;
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err(format!("{EXPECTED}: the salt or the hash is missing"));
        }
        if params.m_cost() > MAX_ACCEPTED_M_KIB
            || params.t_cost() > MAX_ACCEPTED_T
            || params.p_cost() > MAX_ACCEPTED_P
        {
            return Err(format!(
                "argon2 parameters too costly for this box (at most m={MAX_ACCEPTED_M_KIB}, \
                 t={MAX_ACCEPTED_T}, p={MAX_ACCEPTED_P}; camhub uses m={ARGON2_M_KIB}, \
                 t={ARGON2_T}, p={ARGON2_P})"
            ));
        }
        Ok(HashedPassword(phc.to_string()))
    }

    /// The PHC string, to be written to a file.
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// True when `password` is the one hashed. argon2 compares the outputs in constant
    /// time; the time taken depends on the hash's parameters only.
    fn verify(&self, password: &str) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match PasswordHash::new(&self.0) {
            Ok(hash) => Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for HashedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedPassword(redacted)")
    }
}

/// Hashes `password` with argon2id (m=[`ARGON2_M_KIB`], t=[`ARGON2_T`], p=[`ARGON2_P`])
/// and a random 16-byte salt into a PHC string, for `admin.toml` or for the
/// `[server] admin_password_hash` key. Does not apply the length rules
/// ([`check_new_password`] does).
pub fn hash_password(password: &str) -> Result<String> {
    let fail = |what: &str, e: &dyn fmt::Display| {
        Error::io(
            "hashing the admin password",
            io::Error::other(format!("{what}: {e}")),
        )
    };
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| fail("the system's random source", &e))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| fail("salt", &e))?;
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .map_err(|e| fail("argon2 parameters", &e))?;
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| fail("argon2", &e))?;
    Ok(hash.to_string())
}

/// The length rules for a new admin password: at least [`MIN_PASSWORD_CHARS`]
/// characters, at most [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_new_password(password: &str) -> Result<(), SetError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(SetError::TooShort)
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(SetError::TooLong)
    } else {
        Ok(())
    }
}

/// What [`Admin`] needs to know about a request, taken from its headers as text so this
/// module does not depend on hyper. Missing headers (or ones that are not text) are
/// `None`. Prints with `Authorization` and `Cookie` redacted.
#[derive(Clone)]
pub struct RequestFacts {
    /// `GET`, `POST`, …
    pub method: String,
    pub host: Option<String>,
    pub origin: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    /// The TCP peer's address (the client, or a reverse proxy in front of camhub).
    pub peer: IpAddr,
}

impl RequestFacts {
    /// Facts from a method, the peer and a header lookup by lower-case name, e.g.
    /// `|n| req.headers().get(n).and_then(|v| v.to_str().ok())`.
    pub fn from_headers<'a>(
        method: &str,
        peer: IpAddr,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> RequestFacts {
        let get = |name: &str| header(name).map(str::to_string);
        RequestFacts {
            method: method.to_string(),
            host: get("host"),
            origin: get("origin"),
            sec_fetch_site: get("sec-fetch-site"),
            authorization: get("authorization"),
            cookie: get("cookie"),
            peer,
        }
    }

    /// True when the request comes from a page's script or a browser navigation rather
    /// than from curl or a script: browsers send `Origin` on every POST/PUT/DELETE and
    /// `Sec-Fetch-Site` on every request.
    fn is_from_browser(&self) -> bool {
        self.origin.is_some() || self.sec_fetch_site.is_some()
    }
}

impl fmt::Debug for RequestFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "redacted");
        f.debug_struct("RequestFacts")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("origin", &self.origin)
            .field("sec_fetch_site", &self.sec_fetch_site)
            .field("authorization", &redacted(&self.authorization))
            .field("cookie", &redacted(&self.cookie))
            .field("peer", &self.peer)
            .finish()
    }
}

/// The admin, and how they proved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// HTTP Basic `admin:<password>`.
    Basic,
    /// The page's session cookie.
    Session,
}

/// Why a change is refused. [`Deny::status`] is its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// A state-changing request from another site (CSRF): 403.
    CrossSite,
    /// No admin password exists yet, so no change can be authorised: 403, telling to
    /// set one first. (403 rather than 401: no credentials could help.)
    NoPasswordYet,
    /// No credentials, wrong ones, or an expired session: 401.
    Unauthorized,
    /// Too many failed password checks from this client: 429 with `Retry-After`.
    TooMany { retry_after_secs: u64 },
    /// The admin password cannot be checked (its state file is unreadable, see
    /// [`Admin::problem`], or the system's random source failed): 503.
    Unavailable,
}

impl Deny {
    /// The HTTP status for this refusal.
    pub fn status(self) -> u16 {
        match self {
            Deny::CrossSite | Deny::NoPasswordYet => 403,
            Deny::Unauthorized => 401,
            Deny::TooMany { .. } => 429,
            Deny::Unavailable => 503,
        }
    }

    /// A sentence for the JSON `{"error": …}` body.
    pub fn message(self) -> &'static str {
        match self {
            Deny::CrossSite => "refused: a change requested from another site",
            Deny::NoPasswordYet => {
                "no admin password is set yet: set one first (POST /api/admin/password)"
            }
            Deny::Unauthorized => "admin login required",
            Deny::TooMany { .. } => "too many failed logins: wait a minute",
            Deny::Unavailable => "the admin password cannot be checked (see the log)",
        }
    }

    /// The `Retry-After` value of a 429, in seconds.
    pub fn retry_after_secs(self) -> Option<u64> {
        match self {
            Deny::TooMany { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` header for a 401, only for clients that are not a browser.
    /// wget and some HTTP libraries send Basic credentials only after this challenge; a
    /// browser would answer it with its own login dialog over the page (which has its
    /// own login form) and then keep sending those credentials on its own.
    pub fn www_authenticate(self, facts: &RequestFacts) -> Option<&'static str> {
        (self == Deny::Unauthorized && !facts.is_from_browser()).then_some(WWW_AUTHENTICATE)
    }
}

impl fmt::Display for Deny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Why the first admin password was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    /// Requested from another site: 403.
    CrossSite,
    /// A password exists already (config file or state file): 409.
    AlreadySet,
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters: 400.
    TooShort,
    /// More than [`MAX_PASSWORD_BYTES`] bytes: 400.
    TooLong,
    /// Hashing or saving failed (no state directory, disk full, …); nothing was set: 500.
    Save(String),
}

impl SetError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            SetError::CrossSite => 403,
            SetError::AlreadySet => 409,
            SetError::TooShort | SetError::TooLong => 400,
            SetError::Save(_) => 500,
        }
    }
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::CrossSite => f.write_str(Deny::CrossSite.message()),
            SetError::AlreadySet => f.write_str("an admin password is set already"),
            SetError::TooShort => write!(
                f,
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            ),
            SetError::TooLong => write!(
                f,
                "the password must have at most {MAX_PASSWORD_BYTES} bytes"
            ),
            SetError::Save(why) => write!(f, "the password could not be saved: {why}"),
        }
    }
}

impl std::error::Error for SetError {}

/// A new session from [`Admin::login`], to be sent as a `Set-Cookie` header. Prints as
/// `redacted`.
pub struct SessionCookie {
    token_hex: String,
}

impl SessionCookie {
    /// The `Set-Cookie` value: `HttpOnly` (no script reads it), `SameSite=Strict` (no
    /// other site's request carries it), `Path=/`, kept by the browser as long as a
    /// session may idle. No `Secure`: camhub serves plain HTTP on the LAN.
    pub fn set_cookie(&self) -> String {
        format!(
            "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.token_hex,
            SESSION_IDLE.as_secs()
        )
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCookie(redacted)")
    }
}

/// The `Set-Cookie` value that makes the browser forget its session cookie (logout).
pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Where the admin password comes from.
enum Password {
    None,
    /// `[server] admin_password_hash`; wins over the state file.
    Config(HashedPassword),
    /// `admin.toml` in the state directory, set from the page.
    StateFile(HashedPassword),
    /// `admin.toml` exists but cannot be read or parsed. Treated as set (so it cannot be
    /// replaced from the page) but nothing can log in until it is fixed or removed.
    Broken(String),
}

/// The admin of one camhub: password, sessions and the throttle. Shared by every
/// connection (`Arc<Admin>`).
pub struct Admin {
    state_dir: Option<PathBuf>,
    password: Mutex<Password>,
    /// Serialises `set_first_password` so two first passwords cannot both win.
    setting: Mutex<()>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    throttle: Mutex<Throttle>,
    checks: Slots,
}

struct Session {
    last_used: Instant,
}

/// `admin.toml`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    password_hash: String,
}

impl Admin {
    /// The admin from the config file's hash, if any, else from `admin.toml` in
    /// `state_dir`. An `admin.toml` that cannot be read never stops camhub: the problem
    /// is kept for [`Admin::problem`] and no one can log in until the file is fixed or
    /// removed (and camhub restarted), or a hash is put in the config file.
    pub fn open(config_hash: Option<HashedPassword>, state_dir: Option<PathBuf>) -> Admin {
        let password = match (config_hash, &state_dir) {
            (Some(h), _) => Password::Config(h),
            (None, Some(dir)) => load_state_file(&dir.join(STATE_FILE)),
            (None, None) => Password::None,
        };
        Admin {
            state_dir,
            password: Mutex::new(password),
            setting: Mutex::new(()),
            sessions: Mutex::new(HashMap::new()),
            throttle: Mutex::new(Throttle::default()),
            checks: Slots::new(MAX_CONCURRENT_CHECKS),
        }
    }

    /// True once an admin password exists (or its file exists but cannot be read).
    pub fn is_set(&self) -> bool {
        !matches!(*lock(&self.password), Password::None)
    }

    /// Why the admin password cannot be checked, for the log and the page: `admin.toml`
    /// is unreadable or damaged (`path: line N: key: what`).
    pub fn problem(&self) -> Option<String> {
        match &*lock(&self.password) {
            Password::Broken(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// Sets the first admin password from the page (`POST /api/admin/password`), only
    /// while none exists, and saves its hash to `admin.toml` (0600, atomically) before it
    /// takes effect. Blocks for one argon2 hash.
    pub fn set_first_password(&self, facts: &RequestFacts, password: &str) -> Result<(), SetError> {
        check_same_site(facts).map_err(|_| SetError::CrossSite)?;
        if self.is_set() {
            return Err(SetError::AlreadySet);
        }
        check_new_password(password)?;
        let _setting = lock(&self.setting);
        if self.is_set() {
            return Err(SetError::AlreadySet);
        }
        let Some(dir) = &self.state_dir else {
            return Err(SetError::Save(
                "camhub has no state directory (--state-dir); set [server] \
                 admin_password_hash in the config file instead"
                    .into(),
            ));
        };
        let phc = hash_password(password).map_err(|e| SetError::Save(e.to_string()))?;
        let hash = HashedPassword::parse(&phc).map_err(SetError::Save)?;
        let text = format!(
            "# camhub's admin password, set from the page: only its argon2id hash.\n\
             # To set another one from the page, delete this file and restart camhub.\n{}",
            toml::to_string(&StateFile {
                password_hash: phc.clone(),
            })
            .map_err(|e| SetError::Save(e.to_string()))?
        );
        let path = dir.join(STATE_FILE);
        write_private_atomically(&path, text.as_bytes())
            .map_err(|e| SetError::Save(format!("writing {}: {e}", path.display())))?;
        *lock(&self.password) = Password::StateFile(hash);
        Ok(())
    }

    /// The page's login: checks `password` (throttled per client) and starts a session.
    /// Refused like any change when requested from another site. Blocks for one argon2
    /// check, or while [`MAX_CONCURRENT_CHECKS`] others run.
    pub fn login(
        &self,
        facts: &RequestFacts,
        password: &str,
        now: Instant,
    ) -> Result<SessionCookie, Deny> {
        check_same_site(facts)?;
        let hash = self.hash()?;
        self.check_password(&hash, facts.peer, password, now)?;
        let mut token = [0u8; 32];
        getrandom::fill(&mut token).map_err(|_| Deny::Unavailable)?;
        let token_hex = hex(&token);
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| now.saturating_duration_since(s.last_used) < SESSION_IDLE);
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => sessions.remove(&k),
                None => break,
            };
        }
        sessions.insert(sha256(token_hex.as_bytes()), Session { last_used: now });
        Ok(SessionCookie { token_hex })
    }

    /// Ends the sessions the `Cookie` header names; true when there was one. Send
    /// [`clear_cookie`] with the answer.
    pub fn logout(&self, cookie_header: Option<&str>) -> bool {
        let mut sessions = lock(&self.sessions);
        let mut ended = false;
        for token in session_tokens(cookie_header) {
            ended |= sessions.remove(&sha256(token.as_bytes())).is_some();
        }
        ended
    }

    /// Live sessions (after expiry at `now`), for the page and metrics.
    pub fn sessions(&self, now: Instant) -> usize {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| now.saturating_duration_since(s.last_used) < SESSION_IDLE);
        sessions.len()
    }

    /// Whether this request may change things: the rules in this module's header, in
    /// that order. Blocks for an argon2 check when it carries Basic credentials.
    pub fn authorize(&self, facts: &RequestFacts, now: Instant) -> Result<Who, Deny> {
        check_same_site(facts)?;
        let hash = self.hash()?;
        if self.session_is_live(facts.cookie.as_deref(), now) {
            return Ok(Who::Session);
        }
        // Only a Basic `admin` user is a guess at the admin password. A browser may send
        // a viewer's `[server] auth` credentials along on its own: not a failure.
        match facts.authorization.as_deref().and_then(basic_credentials) {
            Some((user, password)) if user == "admin" => self
                .check_password(&hash, facts.peer, &password, now)
                .map(|()| Who::Basic),
            _ => Err(Deny::Unauthorized),
        }
    }

    /// The hash to check against, or why there is none.
    fn hash(&self) -> Result<HashedPassword, Deny> {
        match &*lock(&self.password) {
            Password::None => Err(Deny::NoPasswordYet),
            Password::Config(h) | Password::StateFile(h) => Ok(h.clone()),
            Password::Broken(_) => Err(Deny::Unavailable),
        }
    }

    /// True when the `Cookie` header names a live session, which is then used at `now`.
    fn session_is_live(&self, cookie_header: Option<&str>, now: Instant) -> bool {
        let mut sessions = lock(&self.sessions);
        for token in session_tokens(cookie_header) {
            let key = sha256(token.as_bytes());
            match sessions.get_mut(&key) {
                Some(s) if now.saturating_duration_since(s.last_used) < SESSION_IDLE => {
                    s.last_used = now;
                    return true;
                }
                Some(_) => {
                    sessions.remove(&key);
                }
                None => {}
            }
        }
        false
    }

    /// One throttled password check for `peer`: refused unchecked while the client has
    /// [`MAX_FAILURES`] recent failures; a guess that already failed in the window is
    /// refused again without counting (a browser resending the same wrong credentials is
    /// not guessing); at most [`MAX_CONCURRENT_CHECKS`] argon2 checks at once, and the
    /// throttle is looked at again once a check's turn comes, so parallel guesses from
    /// one client cannot slip past it.
    fn check_password(
        &self,
        hash: &HashedPassword,
        peer: IpAddr,
        password: &str,
        now: Instant,
    ) -> Result<(), Deny> {
        let client = client_key(peer);
        let guess = sha256(password.as_bytes());
        lock(&self.throttle).before_check(client, &guess, now)?;
        let _turn = self.checks.acquire();
        lock(&self.throttle).before_check(client, &guess, now)?;
        if hash.verify(password) {
            lock(&self.throttle).forget(client);
            Ok(())
        } else {
            lock(&self.throttle).failed(client, guess, now);
            Err(Deny::Unauthorized)
        }
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = match &*lock(&self.password) {
            Password::None => "none",
            Password::Config(_) => "config file",
            Password::StateFile(_) => "state file",
            Password::Broken(_) => "unreadable",
        };
        f.debug_struct("Admin")
            .field("password", &password)
            .field("state_dir", &self.state_dir)
            .field("sessions", &lock(&self.sessions).len())
            .finish()
    }
}

/// Refuses a state-changing request from another site (rule 1 of the module header).
/// `Host` and `Origin` are compared as host and port (the port from the scheme when
/// absent); `Origin: null` (sandboxed frames, some redirects) is another site. Public so
/// that other admin-only endpoints without credentials can apply it too.
pub fn check_same_site(facts: &RequestFacts) -> Result<(), Deny> {
    let method = facts.method.to_ascii_uppercase();
    if matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") {
        return Ok(());
    }
    if facts
        .sec_fetch_site
        .as_deref()
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
    {
        return Err(Deny::CrossSite);
    }
    let Some(origin) = facts.origin.as_deref() else {
        return Ok(());
    };
    let same = parse_origin(origin).is_some_and(|(host, port, default_port)| {
        facts
            .host
            .as_deref()
            .and_then(split_host_port)
            .is_some_and(|(h, p)| h.eq_ignore_ascii_case(host) && p.unwrap_or(default_port) == port)
    });
    if same {
        Ok(())
    } else {
        Err(Deny::CrossSite)
    }
}

/// `scheme://host[:port]` → (host, port, the scheme's default port); `None` for `null`,
/// other schemes and anything malformed.
fn parse_origin(origin: &str) -> Option<(&str, u16, u16)> {
    let origin = origin.trim();
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some((host, port.unwrap_or(default_port), default_port))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` → (host with brackets, port).
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')? + 1;
        match &s[end..] {
            "" => (&s[..end], None),
            tail => (&s[..end], Some(tail.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

/// The user and password of an `Authorization: Basic …` value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The values of every `camhub_session` cookie in a `Cookie` header that look like one
/// of ours (64 hex digits).
fn session_tokens(cookie_header: Option<&str>) -> impl Iterator<Item = &str> {
    cookie_header
        .unwrap_or("")
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The throttle's key for a client: its IPv4 address, or its IPv6 /64 (one host may
/// hold a whole /64, so single addresses would let it guess without limit).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failed password checks per client within the last [`FAILURE_WINDOW`].
#[derive(Default)]
struct Throttle {
    clients: HashMap<IpAddr, VecDeque<Failure>>,
}

struct Failure {
    at: Instant,
    /// SHA-256 of the failed password, to recognise it being sent again.
    guess: [u8; 32],
}

impl Throttle {
    /// `TooMany` while the client is at its limit; `Unauthorized` for a guess that failed
    /// within the window already; else the check may go ahead.
    fn before_check(&mut self, client: IpAddr, guess: &[u8; 32], now: Instant) -> Result<(), Deny> {
        let Some(failures) = self.clients.get_mut(&client) else {
            return Ok(());
        };
        expire(failures, now);
        if failures.is_empty() {
            self.clients.remove(&client);
            return Ok(());
        }
        if failures.len() >= MAX_FAILURES {
            let free_at = failures[0].at + FAILURE_WINDOW;
            let wait = free_at.saturating_duration_since(now);
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Deny::TooMany {
                retry_after_secs: retry_after_secs.max(1),
            });
        }
        if failures.iter().any(|f| f.guess == *guess) {
            return Err(Deny::Unauthorized);
        }
        Ok(())
    }

    fn failed(&mut self, client: IpAddr, guess: [u8; 32], now: Instant) {
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_THROTTLED_CLIENTS {
            self.clients.retain(|_, f| {
                expire(f, now);
                !f.is_empty()
            });
            if self.clients.len() >= MAX_THROTTLED_CLIENTS {
                let stalest = self
                    .clients
                    .iter()
                    .min_by_key(|(_, f)| f.back().map(|f| f.at))
                    .map(|(k, _)| *k);
                if let Some(k) = stalest {
                    self.clients.remove(&k);
                }
            }
        }
        let failures = self.clients.entry(client).or_default();
        expire(failures, now);
        failures.push_back(Failure { at: now, guess });
        while failures.len() > MAX_FAILURES {
            failures.pop_front();
        }
    }

    fn forget(&mut self, client: IpAddr) {
        self.clients.remove(&client);
    }
}

fn expire(failures: &mut VecDeque<Failure>, now: Instant) {
    while failures
        .front()
        .is_some_and(|f| now.saturating_duration_since(f.at) >= FAILURE_WINDOW)
    {
        failures.pop_front();
    }
}

/// A counting semaphore for argon2 checks (blocking).
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            busy: Mutex::new(0),
            freed: Condvar::new(),
            max,
        }
    }

    fn acquire(&self) -> Slot<'_> {
        let mut busy = lock(&self.busy);
        while *busy >= self.max {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) -= 1;
        self.0.freed.notify_one();
    }
}

/// Locks, going on after a panic elsewhere: every critical section here leaves the data
/// consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `admin.toml`; a missing file is no password.
fn load_state_file(path: &Path) -> Password {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Password::None,
        Err(e) => return Password::Broken(format!("reading {}: {e}", path.display())),
    };
    let broken = |line: Option<usize>, msg: &str| {
        let at = match line {
            Some(l) => format!("{}:{l}", path.display()),
            None => path.display().to_string(),
        };
        Password::Broken(format!(
            "{at}: password_hash: {msg} (fix or delete the file and restart camhub)"
        ))
    };
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let file: StateFile = match toml::from_str(&text) {
        Ok(f) => f,
        Err(e) => return broken(e.span().map(|s| line_of(s.start)), e.message()),
    };
    match HashedPassword::parse(&file.password_hash) {
        Ok(h) => Password::StateFile(h),
        Err(msg) => {
            let line = text.find("password_hash").map(line_of);
            broken(line, &msg)
        }
    }
}

/// Writes `admin.toml` (0600) with [`crate::store::write_atomically`], creating the
/// state directory (0700) first if needed.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    crate::store::write_atomically(path, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PASSWORD: &str = "correct horse";

    /// A real argon2id PHC string of `PASSWORD` with tiny parameters (m=64 KiB, t=1), so
    /// the tests that check it many times are quick; verification takes the parameters
    /// from the string.
    fn cheap_hash(password: &str) -> HashedPassword {
        let params = Params::new(64, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string();
        HashedPassword::parse(&phc).unwrap()
    }

    fn admin() -> Admin {
        Admin::open(Some(cheap_hash(PASSWORD)), None)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, last))
    }

    fn facts(method: &str) -> RequestFacts {
        RequestFacts {
            method: method.into(),
            host: Some("camhub.local:8080".into()),
            origin: None,
            sec_fetch_site: None,
            authorization: None,
            cookie: None,
            peer: ip(10),
        }
    }

    fn basic(user: &str, password: &str) -> RequestFacts {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        RequestFacts {
            authorization: Some(format!("Basic {pair}")),
            ..facts("POST")
        }
    }

    fn with_cookie(cookie: &SessionCookie) -> RequestFacts {
        let set = cookie.set_cookie();
        let pair = set.split(';').next().unwrap().to_string();
        RequestFacts {
            cookie: Some(format!("theme=dark; {pair}")),
            ..facts("POST")
        }
    }

    #[test]
    fn hash_round_trip_and_wrong_password() {
        let started = Instant::now();
        let phc = hash_password(PASSWORD).unwrap();
        let took = started.elapsed();
        // Printed for the record (`cargo test --lib admin -- --nocapture`), not asserted.
        println!("argon2id m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P}: {took:?} per hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let hash = HashedPassword::parse(&phc).unwrap();
        assert!(hash.verify(PASSWORD));
        assert!(!hash.verify("correct horsE"));
        assert!(!hash.verify(""));
        assert_ne!(hash_password(PASSWORD).unwrap(), phc, "salts differ");
        assert_eq!(format!("{hash:?}"), "HashedPassword(redacted)");
    }

    #[test]
    fn phc_validation() {
        let good = cheap_hash(PASSWORD);
        assert!(HashedPassword::parse(good.as_phc()).is_ok());
        let argon2i = good.as_phc().replacen("argon2id", "argon2i", 1);
        assert!(HashedPassword::parse(&argon2i).is_ok());
        for bad in [
            "",
            "hunter22",
            "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7",
            "$argon2id$v=19$m=19456,t=2,p=1",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=8,t=0,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let e = HashedPassword::parse(bad).unwrap_err();
            assert!(!e.contains("f52fbd32") && !e.contains("c2FsdHNhbHQ"), "{e}");
        }
    }

    #[test]
    fn new_password_length_rules() {
        assert_eq!(check_new_password("1234567"), Err(SetError::TooShort));
        assert_eq!(check_new_password("ééééééé"), Err(SetError::TooShort));
        assert_eq!(check_new_password("éééééééé"), Ok(()));
        assert_eq!(check_new_password(&"x".repeat(1024)), Ok(()));
        assert_eq!(
            check_new_password(&"x".repeat(1025)),
            Err(SetError::TooLong)
        );
    }

    #[test]
    fn first_password_only_once_and_saved_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let admin = Admin::open(None, Some(state.clone()));
        assert!(!admin.is_set());
        let now = Instant::now();
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Err(Deny::NoPasswordYet)
        );
        assert_eq!(
            admin.login(&facts("POST"), PASSWORD, now).unwrap_err(),
            Deny::NoPasswordYet
        );
        assert_eq!(
            admin.set_first_password(&facts("POST"), "short"),
            Err(SetError::TooShort)
        );
        let mut cross = facts("POST");
        cross.origin = Some("http://evil.example".into());
        assert_eq!(
            admin.set_first_password(&cross, PASSWORD),
            Err(SetError::CrossSite)
        );
        assert!(!admin.is_set());

        admin.set_first_password(&facts("POST"), PASSWORD).unwrap();
        assert!(admin.is_set());
        let err = admin
            .set_first_password(&facts("POST"), "another password")
            .unwrap_err();
        assert_eq!(err, SetError::AlreadySet);
        assert_eq!(err.status(), 409);
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );

        let file = state.join(STATE_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("$argon2id$") && !text.contains(PASSWORD),
            "{text}"
        );
        assert_eq!(
            std::fs::read_dir(&state).unwrap().count(),
            1,
            "no temp file left"
        );

        // A restart reads it back, and the page cannot replace it.
        let again = Admin::open(None, Some(state.clone()));
        assert!(again.is_set());
        assert_eq!(
            again.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );
        assert_eq!(
            again.set_first_password(&facts("POST"), "another password"),
            Err(SetError::AlreadySet)
        );
    }

    #[test]
    fn config_hash_beats_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let from_page = Admin::open(None, Some(dir.path().to_path_buf()));
        from_page
            .set_first_password(&facts("POST"), "page password")
            .unwrap();
        let now = Instant::now();
        let admin = Admin::open(Some(cheap_hash(PASSWORD)), Some(dir.path().to_path_buf()));
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );
        assert_eq!(
            admin.authorize(&basic("admin", "page password"), now),
            Err(Deny::Unauthorized)
        );
        // A damaged state file does not matter when the config file has the hash.
        std::fs::write(dir.path().join(STATE_FILE), "password_hash = 1\n").unwrap();
        let admin = Admin::open(Some(cheap_hash(PASSWORD)), Some(dir.path().to_path_buf()));
        assert_eq!(admin.problem(), None);
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );
    }

    #[test]
    fn damaged_state_file_locks_changes_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STATE_FILE);
        std::fs::write(&file, "# x\npassword_hash = \"$argon2id$nope\"\n").unwrap();
        let admin = Admin::open(None, Some(dir.path().to_path_buf()));
        assert!(
            admin.is_set(),
            "a damaged file is not a free first password"
        );
        let problem = admin.problem().unwrap();
        assert!(problem.contains("admin.toml:2: password_hash"), "{problem}");
        assert!(!problem.contains("nope"), "{problem}");
        let now = Instant::now();
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Err(Deny::Unavailable)
        );
        assert_eq!(
            admin.set_first_password(&facts("POST"), PASSWORD),
            Err(SetError::AlreadySet)
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().lines().count(),
            2,
            "left as is"
        );
    }

    #[test]
    fn basic_only_for_admin_with_the_right_password() {
        let admin = admin();
        let now = Instant::now();
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );
        assert_eq!(
            admin.authorize(&basic("root", PASSWORD), now),
            Err(Deny::Unauthorized)
        );
        assert_eq!(
            admin.authorize(&basic("Admin", PASSWORD), now),
            Err(Deny::Unauthorized)
        );
        assert_eq!(
            admin.authorize(&basic("admin", "wrong one"), now),
            Err(Deny::Unauthorized)
        );
        assert_eq!(
            admin.authorize(&basic("admin", ""), now),
            Err(Deny::Unauthorized)
        );
        assert_eq!(
            admin.authorize(&facts("POST"), now),
            Err(Deny::Unauthorized)
        );
        let mut garbage = facts("POST");
        garbage.authorization = Some("Basic !!!".into());
        assert_eq!(admin.authorize(&garbage, now), Err(Deny::Unauthorized));
        let mut bearer = basic("admin", PASSWORD);
        bearer.authorization = bearer.authorization.map(|a| a.replace("Basic", "Bearer"));
        assert_eq!(admin.authorize(&bearer, now), Err(Deny::Unauthorized));
        let mut lower = basic("admin", PASSWORD);
        lower.authorization = lower.authorization.map(|a| a.replace("Basic", "basic"));
        assert_eq!(admin.authorize(&lower, now), Ok(Who::Basic));
        // Another user is not a guess at the admin password: never throttled.
        for _ in 0..10 {
            assert_eq!(
                admin.authorize(&basic("viewer", "x"), now),
                Err(Deny::Unauthorized)
            );
        }
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );
    }

    #[test]
    fn cookie_login_logout_and_expiry() {
        let admin = admin();
        let t0 = Instant::now();
        assert_eq!(
            admin.login(&facts("POST"), "wrong one", t0).unwrap_err(),
            Deny::Unauthorized
        );
        let cookie = admin.login(&facts("POST"), PASSWORD, t0).unwrap();
        let set = cookie.set_cookie();
        assert!(
            set.starts_with("camhub_session=")
                && set.contains("; HttpOnly; SameSite=Strict; Path=/"),
            "{set}"
        );
        let token = &set["camhub_session=".len()..set.find(';').unwrap()];
        assert_eq!(token.len(), 64);
        assert!(!format!("{cookie:?}").contains(token));
        let other = admin.login(&facts("POST"), PASSWORD, t0).unwrap();
        assert_ne!(other.set_cookie(), set, "tokens are random");

        assert_eq!(admin.authorize(&with_cookie(&cookie), t0), Ok(Who::Session));
        let mut forged = with_cookie(&cookie);
        forged.cookie = Some(format!("camhub_session={}", "0".repeat(64)));
        assert_eq!(admin.authorize(&forged, t0), Err(Deny::Unauthorized));

        // Idle expiry, sliding with use.
        let day = Duration::from_secs(24 * 3600);
        let t29 = t0 + 29 * day;
        assert_eq!(
            admin.authorize(&with_cookie(&cookie), t29),
            Ok(Who::Session)
        );
        assert_eq!(
            admin.authorize(&with_cookie(&cookie), t29 + 29 * day),
            Ok(Who::Session)
        );
        assert_eq!(
            admin.authorize(&with_cookie(&other), t29 + 29 * day),
            Err(Deny::Unauthorized),
            "unused for 58 days"
        );
        let t_late = t29 + 29 * day + SESSION_IDLE;
        assert_eq!(
            admin.authorize(&with_cookie(&cookie), t_late),
            Err(Deny::Unauthorized)
        );

        let fresh = admin.login(&facts("POST"), PASSWORD, t_late).unwrap();
        let facts = with_cookie(&fresh);
        assert!(admin.logout(facts.cookie.as_deref()));
        assert!(!admin.logout(facts.cookie.as_deref()));
        assert_eq!(admin.authorize(&facts, t_late), Err(Deny::Unauthorized));
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn session_cap_drops_the_least_recently_used() {
        let admin = admin();
        let t0 = Instant::now();
        let cookies: Vec<SessionCookie> = (0..MAX_SESSIONS)
            .map(|i| {
                admin
                    .login(&facts("POST"), PASSWORD, t0 + Duration::from_secs(i as u64))
                    .unwrap()
            })
            .collect();
        let later = t0 + Duration::from_secs(1000);
        // The first one is used again, so the second becomes the least recently used.
        assert_eq!(
            admin.authorize(&with_cookie(&cookies[0]), later),
            Ok(Who::Session)
        );
        assert_eq!(admin.sessions(later), MAX_SESSIONS);
        let newest = admin.login(&facts("POST"), PASSWORD, later).unwrap();
        assert_eq!(admin.sessions(later), MAX_SESSIONS);
        assert_eq!(
            admin.authorize(&with_cookie(&cookies[1]), later),
            Err(Deny::Unauthorized)
        );
        for c in [
            &cookies[0],
            &cookies[2],
            &cookies[MAX_SESSIONS - 1],
            &newest,
        ] {
            assert_eq!(admin.authorize(&with_cookie(c), later), Ok(Who::Session));
        }
    }

    #[test]
    fn five_failures_a_minute_then_too_many_per_client() {
        let admin = admin();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let wrong = format!("wrong guess {i}");
            let at = t0 + Duration::from_secs(i as u64);
            let denied = if i % 2 == 0 {
                admin.authorize(&basic("admin", &wrong), at).unwrap_err()
            } else {
                admin.login(&facts("POST"), &wrong, at).unwrap_err()
            };
            assert_eq!(denied, Deny::Unauthorized);
        }
        let t5 = t0 + Duration::from_secs(5);
        // Even the right password is not checked now, by Basic or by login.
        let denied = admin.authorize(&basic("admin", PASSWORD), t5).unwrap_err();
        assert_eq!(
            denied,
            Deny::TooMany {
                retry_after_secs: 55
            }
        );
        assert_eq!(denied.status(), 429);
        assert_eq!(denied.retry_after_secs(), Some(55));
        assert!(matches!(
            admin.login(&facts("POST"), PASSWORD, t5),
            Err(Deny::TooMany { .. })
        ));
        // Another client is not affected; a session already open still works.
        let mut other = basic("admin", PASSWORD);
        other.peer = ip(11);
        assert_eq!(admin.authorize(&other, t5), Ok(Who::Basic));
        let mut session = with_cookie(&admin.login(&other, PASSWORD, t5).unwrap());
        session.peer = ip(10);
        assert_eq!(admin.authorize(&session, t5), Ok(Who::Session));
        // The same IPv6 /64 is one client.
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, last));
        for i in 0..MAX_FAILURES {
            let mut f = basic("admin", &format!("guess {i}"));
            f.peer = v6(i as u16);
            assert_eq!(admin.authorize(&f, t5), Err(Deny::Unauthorized));
        }
        let mut f = basic("admin", PASSWORD);
        f.peer = v6(999);
        assert!(matches!(admin.authorize(&f, t5), Err(Deny::TooMany { .. })));

        // A minute after the first failure, one more try is allowed; it succeeds and
        // clears the slate.
        let t60 = t0 + FAILURE_WINDOW;
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), t60),
            Ok(Who::Basic)
        );
        for i in 0..MAX_FAILURES - 1 {
            let wrong = format!("again {i}");
            assert_eq!(
                admin.authorize(&basic("admin", &wrong), t60),
                Err(Deny::Unauthorized)
            );
        }
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), t60),
            Ok(Who::Basic)
        );
    }

    #[test]
    fn the_same_wrong_password_again_is_not_another_guess() {
        let admin = admin();
        let now = Instant::now();
        for _ in 0..3 * MAX_FAILURES {
            assert_eq!(
                admin.authorize(&basic("admin", "viewer password"), now),
                Err(Deny::Unauthorized)
            );
        }
        assert_eq!(
            admin.authorize(&basic("admin", PASSWORD), now),
            Ok(Who::Basic)
        );
    }

    #[test]
    fn throttle_table_is_bounded() {
        let mut throttle = Throttle::default();
        let t0 = Instant::now();
        let client = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..MAX_THROTTLED_CLIENTS as u32 + 10 {
            let at = t0 + Duration::from_millis(u64::from(i));
            throttle.failed(client(i), [0; 32], at);
            assert!(throttle.clients.len() <= MAX_THROTTLED_CLIENTS);
        }
        assert_eq!(throttle.clients.len(), MAX_THROTTLED_CLIENTS);
        assert!(
            !throttle.clients.contains_key(&client(0)),
            "the stalest went first"
        );
        assert!(throttle
            .clients
            .contains_key(&client(MAX_THROTTLED_CLIENTS as u32 + 9)));
        // Once their minute is over, entries make room without evicting live ones.
        let later = t0 + FAILURE_WINDOW + Duration::from_secs(2);
        throttle.failed(client(1 << 20), [0; 32], later);
        assert_eq!(throttle.clients.len(), 1);
    }

    #[test]
    fn cross_site_writes_are_refused_first() {
        let admin = admin();
        let now = Instant::now();
        let with = |method: &str, host: &str, origin: Option<&str>, site: Option<&str>| {
            let mut f = basic("admin", PASSWORD);
            f.method = method.into();
            f.host = Some(host.into());
            f.origin = origin.map(Into::into);
            f.sec_fetch_site = site.map(Into::into);
            admin.authorize(&f, now)
        };
        let ok = Ok(Who::Basic);
        let cross = Err(Deny::CrossSite);
        // Same site: host and port match, the port from the scheme when absent.
        assert_eq!(
            with(
                "POST",
                "camhub.local:8080",
                Some("http://camhub.local:8080"),
                Some("same-origin")
            ),
            ok
        );
        assert_eq!(
            with("PUT", "camhub.local", Some("http://camhub.local"), None),
            ok
        );
        assert_eq!(
            with(
                "DELETE",
                "CAMHUB.local:80",
                Some("http://camhub.local"),
                None
            ),
            ok
        );
        assert_eq!(with("PATCH", "box:443", Some("https://box"), None), ok);
        assert_eq!(
            with("POST", "[::1]:8080", Some("http://[::1]:8080"), None),
            ok
        );
        assert_eq!(
            with(
                "POST",
                "192.168.1.5:8080",
                Some("http://192.168.1.5:8080"),
                None
            ),
            ok
        );
        // No Origin: curl and scripts.
        assert_eq!(with("POST", "camhub.local:8080", None, None), ok);
        // Another site.
        assert_eq!(
            with(
                "POST",
                "camhub.local:8080",
                Some("http://evil.example"),
                None
            ),
            cross
        );
        assert_eq!(
            with(
                "POST",
                "camhub.local:8080",
                Some("http://camhub.local:8081"),
                None
            ),
            cross
        );
        // camhub behind an HTTPS proxy: the port comes from the Origin's scheme.
        assert_eq!(
            with("POST", "camhub.local", Some("https://camhub.local"), None),
            ok
        );
        assert_eq!(
            with(
                "POST",
                "camhub.local:80",
                Some("https://camhub.local"),
                None
            ),
            cross
        );
        assert_eq!(
            with("POST", "[::1]:8080", Some("http://[::1]:9090"), None),
            cross
        );
        assert_eq!(
            with("POST", "[::1]:8080", Some("http://[::2]:8080"), None),
            cross
        );
        assert_eq!(
            with("POST", "[::1]:8080", Some("http://127.0.0.1:8080"), None),
            cross
        );
        assert_eq!(with("POST", "camhub.local:8080", Some("null"), None), cross);
        assert_eq!(
            with("POST", "camhub.local:8080", Some("file://"), None),
            cross
        );
        assert_eq!(
            with("POST", "camhub.local:8080", Some("garbage"), None),
            cross
        );
        assert_eq!(
            with(
                "POST",
                "camhub.local:8080",
                Some("http://camhub.local:8080.evil.example"),
                None
            ),
            cross
        );
        assert_eq!(
            with("POST", "camhub.local:8080", None, Some("cross-site")),
            cross
        );
        assert_eq!(
            with(
                "POST",
                "camhub.local:8080",
                Some("http://camhub.local:8080"),
                Some("cross-site")
            ),
            cross
        );
        let mut no_host = basic("admin", PASSWORD);
        no_host.host = None;
        no_host.origin = Some("http://camhub.local:8080".into());
        assert_eq!(admin.authorize(&no_host, now), cross);
        // Reads are not state-changing.
        assert_eq!(
            with(
                "GET",
                "camhub.local:8080",
                Some("http://evil.example"),
                Some("cross-site")
            ),
            ok
        );
        // Checked before credentials: a cross-site guess costs no throttle budget.
        let mut guess = basic("admin", "wrong");
        guess.origin = Some("http://evil.example".into());
        for _ in 0..2 * MAX_FAILURES {
            assert_eq!(admin.authorize(&guess, now), cross);
        }
        assert_eq!(with("POST", "camhub.local:8080", None, None), ok);
        let mut login = facts("POST");
        login.origin = Some("http://evil.example".into());
        assert_eq!(
            admin.login(&login, PASSWORD, now).unwrap_err(),
            Deny::CrossSite
        );
        assert_eq!(Deny::CrossSite.status(), 403);
    }

    #[test]
    fn challenge_only_for_non_browsers() {
        let curl = facts("POST");
        assert_eq!(Deny::Unauthorized.status(), 401);
        assert_eq!(
            Deny::Unauthorized.www_authenticate(&curl),
            Some(WWW_AUTHENTICATE)
        );
        let mut page = facts("POST");
        page.origin = Some("http://camhub.local:8080".into());
        assert_eq!(Deny::Unauthorized.www_authenticate(&page), None);
        let mut nav = facts("GET");
        nav.sec_fetch_site = Some("none".into());
        assert_eq!(Deny::Unauthorized.www_authenticate(&nav), None);
        assert_eq!(Deny::CrossSite.www_authenticate(&curl), None);
        assert_eq!(Deny::NoPasswordYet.status(), 403);
    }

    #[test]
    fn secrets_never_print() {
        let admin = admin();
        let f = basic("admin", PASSWORD);
        let mut f = f;
        f.cookie = Some(format!("camhub_session={}", "ab".repeat(32)));
        let printed = format!("{f:?} {admin:?}");
        assert!(
            !printed.contains("Basic ") && !printed.contains("abab"),
            "{printed}"
        );
        assert!(printed.contains("redacted"));
        let header = f.authorization.clone().unwrap();
        let encoded = header.trim_start_matches("Basic ");
        assert!(!printed.contains(encoded));
    }

    #[test]
    fn admin_is_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Admin>();
        shared::<RequestFacts>();
    }

    #[test]
    fn from_headers_reads_by_lower_case_name() {
        let headers = [
            ("host", "camhub.local"),
            ("origin", "http://camhub.local"),
            ("sec-fetch-site", "same-origin"),
            ("cookie", "camhub_session=00"),
        ];
        let f = RequestFacts::from_headers("POST", ip(7), |name| {
            headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        });
        assert_eq!(f.host.as_deref(), Some("camhub.local"));
        assert_eq!(f.origin.as_deref(), Some("http://camhub.local"));
        assert_eq!(f.sec_fetch_site.as_deref(), Some("same-origin"));
        assert_eq!(f.authorization, None);
        assert_eq!(f.cookie.as_deref(), Some("camhub_session=00"));
        assert_eq!(f.peer, ip(7));
    }
}
