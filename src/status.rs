//! A stream's state and the reason it is not live, as shown to users: the one state
//! machine's vocabulary (`supervise.rs` drives it), read by the hub, LEDs, API and page.
//! Its own module so that the hub can hold it without depending on the supervisor.

use std::time::{Duration, Instant};

/// Where a stream is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Opening the device or connecting.
    Starting,
    /// Frames (or signs of life) are arriving.
    Live,
    /// Connected but silent for `stall_after`; the connection is being torn down.
    Stalled,
    /// Waiting before reconnect attempt `attempt` (1-based).
    Backoff { attempt: u32, retry_at: Instant },
    /// Will not work as configured; not retried.
    Failed,
    /// Turned off in the config.
    Disabled,
}

impl State {
    /// The short lowercase name used by the API, metrics and page.
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Live => "live",
            State::Stalled => "stalled",
            State::Backoff { .. } => "backoff",
            State::Failed => "failed",
            State::Disabled => "disabled",
        }
    }

    /// Every state name, for one-hot metrics.
    pub const NAMES: [&'static str; 6] = [
        "starting", "live", "stalled", "backoff", "failed", "disabled",
    ];
}

/// A stream's state with the reason it is not live (if any), as shown to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// The most recent error, kept after recovery so users can see what happened.
    pub last_error: Option<String>,
}

impl Status {
    pub fn new(state: State) -> Status {
        Status {
            state,
            last_error: None,
        }
    }

    /// Seconds until the next reconnect attempt, while in Backoff.
    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Backoff { retry_at, .. } => Some(retry_at.saturating_duration_since(now)),
            _ => None,
        }
    }
}
