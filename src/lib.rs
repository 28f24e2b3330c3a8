//! camhub: a Raspberry Pi camera box that serves every camera it can reach as MJPEG.
//!
//! # Layout
//! - [`config`]: TOML file + CLI → validated [`config::Config`].
//! - [`frame`]: a JPEG frame shared by every viewer.
//! - [`hub`]: per-stream latest-frame slot, viewers awaiting the next frame, counters.
//! - [`rendition`]: the smaller sizes a stream serves to phone grids (width ladder).
//! - [`status`]: a stream's state and last error, as users see them.
//! - [`supervise`]: the state machine, stall watchdog and backoff around any source.
//! - [`source`]: the `Source` trait and one module per kind of camera.
//! - [`multipart`]: the MJPEG part parser shared by the HTTP-MJPEG and exec sources.
//! - [`streams`]: the live set: which streams run (config file, saved, discovered),
//!   added, replaced and removed one at a time.
//! - [`store`]: cameras saved from the page, in camhub's state file (atomic writes).
//! - [`probe`]: "test this camera": a URL or bare address tried before it is saved.
//! - [`discover`]: finding local V4L2 cameras at startup and when they are plugged in.
//! - [`jpeg`] and [`draw`]: JPEG encoding/checks and the text drawn into test patterns
//!   and OFFLINE placeholders.
//! - [`jpeg_decode`]: decoding a camera's JPEG at 1/2, 1/4 or 1/8 size, for renditions.
//! - [`admin`]: who may change things: the admin password, sessions, throttled logins.
//! - [`http`]: the HTTP server (hyper on smol): MJPEG, snapshots, API, page.
//! - [`mdns`]: advertising on the LAN (`camhub.local`) and finding other boxes.
//! - [`onvif`]: an ONVIF camera's profiles and RTSP URLs, given its address and password.
//! - [`wsdiscovery`]: finding ONVIF cameras and phone webcam apps (WS-Discovery probes).
//! - [`leds`]: stream state → GPIO LED patterns (rppal on the Pi, no-op elsewhere).
//! - [`shutdown`]: the one shutdown signal shared by threads and async tasks.
//! - [`urls`]: URL grammar shared by config, hub and sources (sizes, pattern options).
//! - [`app`]: wiring of all of the above, used by `main.rs` and the integration tests.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod discover;
pub mod draw;
pub mod error;
pub mod frame;
pub mod http;
pub mod hub;
pub mod jpeg;
pub mod jpeg_decode;
#[cfg(feature = "turbojpeg")]
mod jpeg_turbo;
pub mod leds;
pub mod mdns;
pub mod multipart;
pub mod onvif;
pub mod probe;
pub mod rendition;
pub mod shutdown;
pub mod source;
pub mod status;
pub mod store;
pub mod streams;
pub mod supervise;
pub mod urls;
pub mod wsdiscovery;

pub use error::{Error, Result};
