//! `GET /stream/{id}`: multipart/x-mixed-replace MJPEG. Each viewer always gets the
//! newest frame (a slow one skips frames), holds at most one frame in flight, and sees an
//! OFFLINE placeholder about once a second while the stream is down.

use super::{empty, text, Body};
use crate::frame::Frame;
use crate::hub::{Stream, View};
use crate::supervise::State;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The multipart boundary (without the leading `--`).
pub const BOUNDARY: &str = "camhubframe";
/// Sent right after each frame. Browsers (Chromium, WebKit) only display a part once the
/// next boundary arrives; ending each part at once shows every frame without a one-frame
/// delay (the same fix as µStreamer's and go2rtc's).
const PART_END: &[u8] = b"\r\n--camhubframe\r\n";
const STREAM_START: &[u8] = b"--camhubframe\r\n";
/// How often the OFFLINE placeholder is repeated while the stream is down.
pub(super) const PLACEHOLDER_EVERY: Duration = Duration::from_secs(1);

/// Builds the response for one viewer. `query` may hold `fps=N` to cap this viewer and
/// `width=N` for a rendition at least N pixels wide (the full size without it).
/// `full` says the server's viewer limit is reached.
pub fn respond(stream: &Arc<Stream>, query: &str, head: bool, full: bool) -> Response<Body> {
    let width = match super::width_param(query) {
        Ok(w) => w,
        Err(msg) => return super::bad_request(&msg),
    };
    let fps_cap = match super::query_value(query, "fps") {
        None => None,
        Some(v) => match v.parse::<f64>() {
            Ok(fps) if (0.1..=120.0).contains(&fps) => Some(fps),
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "fps must be a number from 0.1 to 120\n",
                )
            }
        },
    };
    if !head && full {
        return super::too_many_viewers();
    }
    let body = if head {
        empty()
    } else {
        let viewer = Viewer {
            view: stream.view(width),
            last_seq: None,
            min_interval: fps_cap.map(|fps| Duration::from_secs_f64(1.0 / fps)),
            next_due: None,
            last_placeholder_at: None,
            sent_placeholder: false,
            pending: VecDeque::from([Bytes::from_static(STREAM_START)]),
        };
        // The body ends when the stream is removed or replaced (each part already ends
        // with the next boundary, so the end of the response is the clean end here).
        let chunks = futures_lite::stream::unfold(viewer, |mut v| async move {
            let chunk = v.next_chunk().await?;
            Some((Ok::<_, Infallible>(hyper::body::Frame::data(chunk)), v))
        });
        StreamBody::new(chunks).boxed_unsync()
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/x-mixed-replace; boundary=camhubframe"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies in front of camhub not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// When a viewer capped at one frame per `interval` may have its next frame, after one
/// sent at `now` for the slot due at `due`. Due times keep a fixed beat (`due +
/// interval`), so the wait for a fresh frame after a slot opens (up to a source frame,
/// e.g. for a rendition made on demand) is not added to every period: a 5 fps tile of a
/// 15 fps camera gets 5 fps, not 15/4. A viewer more than a period late restarts the beat.
pub(super) fn next_due(due: Option<Instant>, now: Instant, interval: Duration) -> Instant {
    match due {
        Some(due) if due + interval > now => due + interval,
        _ => now + interval,
    }
}

/// `X-Timestamp`: capture time as Unix seconds with milliseconds, for latency checks.
pub fn timestamp_header(frame: &Frame) -> HeaderValue {
    let t = frame
        .captured_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    HeaderValue::from_str(&format!("{}.{:03}", t.as_secs(), t.subsec_millis()))
        .expect("digits and a dot are a valid header value")
}

/// One watching client.
struct Viewer {
    /// The stream at the size asked for; counts the viewer until the body is dropped.
    view: View,
    /// The last real frame sent; `None` before the first.
    last_seq: Option<u64>,
    min_interval: Option<Duration>,
    /// When the fps cap next allows a frame.
    next_due: Option<Instant>,
    last_placeholder_at: Option<Instant>,
    /// The frame being sent is an OFFLINE placeholder.
    sent_placeholder: bool,
    /// Chunks of the part being sent (header, JPEG, boundary): at most one frame.
    pending: VecDeque<Bytes>,
}

impl Viewer {
    /// The next piece of the body; `None` once the stream is gone.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.pop_front() {
            return Some(chunk);
        }
        let frame = self.next_frame().await?;
        if let Some(interval) = self.min_interval {
            self.next_due = Some(next_due(self.next_due, Instant::now(), interval));
        }
        // A placeholder says so, so that a camhub pulling this stream shows the stream as
        // down (with its reason) instead of passing OFFLINE pictures on as live video.
        let offline = if self.sent_placeholder {
            format!(
                "X-Camhub-Offline: {}\r\n",
                offline_reason(self.view.stream())
            )
        } else if frame.is_stale() {
            // An old frame shown while a fresh one is made: never pass it off as live.
            "X-Camhub-Stale: 1\r\n".to_string()
        } else {
            String::new()
        };
        let header = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n{offline}\r\n",
            frame.jpeg.len(),
            timestamp_header(&frame).to_str().unwrap_or_default()
        );
        self.pending.push_back(frame.jpeg.clone());
        self.pending.push_back(Bytes::from_static(PART_END));
        Some(Bytes::from(header))
    }

    /// Waits for the next frame to send: the newest real one, or a placeholder while the
    /// stream is down.
    async fn next_frame(&mut self) -> Option<Arc<Frame>> {
        if let Some(due) = self.next_due {
            async_io::Timer::at(due).await;
        }
        loop {
            if self.view.stream().is_closed() {
                return None;
            }
            let placeholder_due = match self.last_placeholder_at {
                None => Instant::now(),
                Some(t) => t + PLACEHOLDER_EVERY,
            };
            if !self.view.is_live() && Instant::now() >= placeholder_due {
                if let Some(p) = placeholder(&self.view) {
                    self.last_placeholder_at = Some(Instant::now());
                    self.sent_placeholder = true;
                    // Don't replay a stale frame from before the outage after this.
                    if self.last_seq.is_none() {
                        self.last_seq = Some(self.view.latest().map_or(0, |f| f.seq));
                    }
                    return Some(p);
                }
            }
            // Live: sleep until a frame or a status change wakes us. Down: until the
            // next placeholder is due.
            let wait = if self.view.is_live() {
                PLACEHOLDER_EVERY
            } else {
                placeholder_due
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(50), PLACEHOLDER_EVERY)
            };
            let after = self.last_seq.unwrap_or(0);
            if let Some(frame) = self.view.next_frame(after, wait).await {
                if let Some(last) = self.last_seq {
                    // Capped viewers skip frames on purpose; only count real drops.
                    if self.min_interval.is_none() && last > 0 && frame.seq > last + 1 {
                        self.view.stream().add_dropped(frame.seq - last - 1);
                    }
                }
                self.last_seq = Some(frame.seq);
                self.last_placeholder_at = None;
                self.sent_placeholder = false;
                return Some(frame);
            }
        }
    }
}

/// The stream's OFFLINE frame for its current status (drawn once per distinct text and
/// shared by all viewers of the stream).
/// "state: reason" for the `X-Camhub-Offline` part header: printable ASCII only (the
/// reason can hold text from a camera) and bounded.
fn offline_reason(stream: &Stream) -> String {
    let status = stream.status();
    let text = match &status.last_error {
        Some(reason) => format!("{}: {reason}", status.state.as_str()),
        None => status.state.as_str().to_string(),
    };
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

pub(super) fn placeholder(view: &View) -> Option<Arc<Frame>> {
    let stream = view.stream();
    let status = stream.status();
    let title = format!("{} - OFFLINE", stream.name);
    let reason = status.last_error.as_deref().unwrap_or("");
    let detail = match &status.state {
        State::Live => return None,
        State::Starting => "connecting...".to_string(),
        State::Stalled => format!("{reason} - reconnecting"),
        State::Backoff { .. } => {
            let secs = status
                .retry_in(Instant::now())
                .unwrap_or_default()
                .as_secs_f64()
                .ceil();
            format!("{reason} - retrying in {secs} s")
        }
        State::Failed => format!("failed: {reason}"),
        State::Disabled => "disabled in the configuration".to_string(),
    };
    let (width, height) = view.size();
    stream.placeholder(&format!("{title}\n{detail}\n{width}x{height}"), || {
        match crate::draw::placeholder_jpeg(width, height, &title, &detail) {
            Ok(jpeg) => Some(Frame::new(jpeg, width, height)),
            Err(e) => {
                tracing::warn!(stream = %stream.id, error = %e, "cannot draw placeholder");
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_viewers_keep_a_fixed_beat() {
        let t0 = Instant::now();
        let period = Duration::from_millis(200);
        let ms = |n| Duration::from_millis(n);
        // First frame: due a period later.
        let d1 = next_due(None, t0, period);
        assert_eq!(d1, t0 + period);
        // Sent 60 ms late (waiting for a fresh rendition): the next is still on the beat.
        assert_eq!(next_due(Some(d1), d1 + ms(60), period), d1 + period);
        // More than a period late (a stalled viewer): the beat restarts from now.
        assert_eq!(next_due(Some(d1), d1 + ms(250), period), d1 + ms(450));
    }
}
