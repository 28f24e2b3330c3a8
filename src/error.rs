//! The one error type of camhub, with enough context (stream id, redacted URL, key and
//! line) that a user can act on the message without reading the code.

use std::io;

/// Every fallible camhub operation returns this.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem; `at` names the key and, where known, the line.
    #[error("config error at {at}: {msg}")]
    Config { at: String, msg: String },

    /// An I/O failure with what we were doing when it happened.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A source could not produce frames; the supervisor retries with backoff.
    #[error("{0}")]
    Source(String),

    /// A source can never work as configured (unsupported codec, scheme not built in).
    /// The supervisor marks the stream Failed instead of retrying in a tight loop.
    #[error("{0}")]
    Permanent(String),

    /// JPEG encoding or validation failed.
    #[error("jpeg: {0}")]
    Jpeg(String),

    /// A change names something that does not exist (a saved camera's id); HTTP 404.
    #[error("{0}")]
    NotFound(String),

    /// A change clashes with what is there (an id in use, a damaged state file that must
    /// be started over first); HTTP 409.
    #[error("{0}")]
    Conflict(String),
}

impl Error {
    /// Wraps an `io::Error` with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Permanent(_) | Error::Config { .. })
    }
}

/// camhub's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
