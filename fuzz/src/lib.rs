//! The fuzz target bodies and the invariants they check, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/`, run by `scripts/fuzz.sh`) and the stable replay in
//! `tests/bad_input.rs` (which includes this file as a module), so CI exercises the same
//! checks over the seed corpus on every run.
//!
//! A failed invariant panics: libFuzzer saves the input as a crash artifact. Minimized
//! failing inputs go into `fuzz/corpus/<target>/` (named after their issue), so the
//! replay keeps checking them once fixed.

use camhub::config::{Config, SourceKind};
use camhub::multipart::MAX_PART_HEADERS_BYTES;
use camhub::source::http_mjpeg::{fuzz_body, BodyRun, MAX_PART_BYTES};
use std::path::Path;

/// Part caps the multipart target picks from: small ones so inputs of a few KiB reach
/// them, and the real one.
const PART_CAPS_BYTES: [usize; 4] = [512, 4096, 65536, MAX_PART_BYTES];
/// Largest read the multipart target picks from (a socket read is at most 64 KiB; the
/// last entry is "everything at once").
const READ_CAPS_BYTES: [usize; 8] = [1, 3, 16, 100, 1000, 4096, 65536, usize::MAX];
/// Boundaries the multipart target picks from (None: sniffed from the body). The seed
/// corpus uses `frame` and `x`.
const BOUNDARIES: [Option<&str>; 4] = [None, Some("frame"), Some("--frame"), Some("x")];

/// The multipart target. Input: `[split seed, mode, body…]`; `mode` picks the largest
/// read (bits 0-2), the boundary (bits 3-4), the chunked transfer coding (bit 5) and the
/// part cap (bits 6-7). The body is fed in reads of pseudo-random sizes drawn from the
/// split seed, as a socket delivers it: the parser keeps state across reads.
pub fn multipart(data: &[u8]) {
    let [seed, mode, body @ ..] = data else {
        return;
    };
    let max_read_bytes = READ_CAPS_BYTES[usize::from(mode & 7)];
    let boundary = BOUNDARIES[usize::from((mode >> 3) & 3)];
    let chunked = mode & 0x20 != 0;
    let max_part_bytes = PART_CAPS_BYTES[usize::from(mode >> 6)];
    let reads = split_reads(body, *seed, max_read_bytes);
    let run = fuzz_body(chunked, boundary, max_part_bytes, reads.iter().copied());
    check_body_run(&run, body.len(), chunked, max_part_bytes);
}

/// Cuts `body` into reads of 1..=`max_read_bytes` bytes, sizes drawn from `seed`
/// (`usize::MAX`: the whole body in one read).
fn split_reads(body: &[u8], seed: u8, max_read_bytes: usize) -> Vec<&[u8]> {
    if max_read_bytes == usize::MAX {
        return vec![body];
    }
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut reads = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = 1 + state as usize % max_read_bytes.min(rest.len());
        let (read, tail) = rest.split_at(n);
        reads.push(read);
        rest = tail;
    }
    reads
}

/// What the parser promises, whatever the input (besides not panicking).
fn check_body_run(run: &BodyRun, body_bytes: usize, chunked: bool, max_part_bytes: usize) {
    // Memory is bounded by the documented caps: a part, or a part-header block.
    let max_buffered_bytes = max_part_bytes.max(MAX_PART_HEADERS_BYTES);
    assert!(
        run.max_buffered_bytes <= max_buffered_bytes,
        "the parser held {} bytes between reads; the caps allow {max_buffered_bytes}",
        run.max_buffered_bytes
    );
    let mut part_bytes = 0;
    for part in &run.parts {
        assert!(
            part.len() <= max_part_bytes,
            "a part of {} bytes passed the {max_part_bytes}-byte cap",
            part.len()
        );
        part_bytes += part.len();
        // The source turns exactly the parts that pass jpeg::check into frames: those
        // must be whole JPEGs with a real size.
        if let Ok((width, height)) = camhub::jpeg::check(part) {
            assert!(width > 0 && height > 0, "frame of {width}x{height}");
            assert!(part.starts_with(&[0xFF, 0xD8]), "frame without SOI");
            let end = part.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            assert!(part[..end].ends_with(&[0xFF, 0xD9]), "frame without EOI");
        }
    }
    // Parts are pieces of the body (without the chunk framing), never invented bytes.
    if !chunked {
        assert!(
            part_bytes <= body_bytes,
            "{part_bytes} part bytes from {body_bytes}"
        );
    }
    if let Some(e) = &run.error {
        assert!(!e.trim().is_empty(), "an empty error message");
    }
}

/// The name config errors are reported against.
const CONFIG_PATH: &str = "fuzz.toml";

/// The config target: `Config::parse` on any text returns a config or a config error that
/// names the file and a line of it, never panics, and no password or `[server] auth`
/// secret shows in the summary or an error message.
pub fn config(data: &[u8]) {
    check_config(&String::from_utf8_lossy(data));
}

/// See [`config`].
pub fn check_config(text: &str) {
    let secrets = secrets(text);
    match Config::parse(text, Some(Path::new(CONFIG_PATH))) {
        Ok(config) => check_summary(&config, &secrets),
        Err(camhub::Error::Config { at, msg }) => {
            let line = at
                .strip_prefix(CONFIG_PATH)
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<usize>().ok());
            let lines = text.split('\n').count();
            assert!(
                line.is_some_and(|l| (1..=lines).contains(&l)),
                "the error names no line of the {lines}-line file: at {at:?}: {msg}"
            );
            assert!(!msg.trim().is_empty(), "an empty message at {at:?}");
            let shown = format!("{at}: {msg}");
            for secret in &secrets {
                assert!(
                    !shown.to_lowercase().contains(&secret.value.to_lowercase()),
                    "the error shows the {}: {shown}",
                    secret.from
                );
            }
        }
        Err(other) => panic!("not a config error: {other}"),
    }
}

/// A credential in a config file that must never be shown.
struct Secret {
    value: String,
    /// Where it is, for the panic message.
    from: &'static str,
}

/// The `password` keys, the passwords in `scheme://user:password@host` URLs and the
/// `[server] auth` password of a file that is valid TOML. Only secrets that can be told
/// apart from everything else shown are kept: at least 4 letters and digits with a
/// letter, found (case-insensitively, also as Rust debug-escaped text) in no other
/// string or key of the file, nor elsewhere in their own string.
fn secrets(text: &str) -> Vec<Secret> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut strings = Vec::new();
    collect_strings(&toml::Value::Table(table.clone()), &mut strings);
    let mut found = Vec::new();
    if let Some(auth) = table
        .get("server")
        .and_then(|s| s.get("auth"))
        .and_then(toml::Value::as_str)
    {
        if let Some((_, password)) = auth.split_once(':') {
            found.push((
                password.to_string(),
                auth.to_string(),
                "[server] auth password",
            ));
        }
    }
    for stream in table
        .get("stream")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(password) = stream.get("password").and_then(toml::Value::as_str) {
            found.push((
                password.to_string(),
                password.to_string(),
                "stream password",
            ));
        }
        if let Some(url) = stream.get("url").and_then(toml::Value::as_str) {
            if let Some(password) = url::Url::parse(url)
                .ok()
                .and_then(|u| u.password().map(str::to_string))
            {
                found.push((password, url.to_string(), "password in a stream URL"));
            }
        }
    }
    found
        .into_iter()
        .filter(|(value, own, _)| {
            let lower = value.to_lowercase();
            value.len() >= 4
                && value.chars().all(|c| c.is_ascii_alphanumeric())
                && value.chars().any(|c| c.is_ascii_alphabetic())
                && !SUMMARY_WORDS.contains(&lower.as_str())
                && strings
                    .iter()
                    // Its own string counts without the secret itself: the rest of a
                    // URL may contain the same letters.
                    .map(|s| match s == own {
                        true => s.replacen(value.as_str(), "", 1),
                        false => s.clone(),
                    })
                    .all(|s| {
                        !s.to_lowercase().contains(&lower)
                            && !format!("{s:?}").to_lowercase().contains(&lower)
                    })
        })
        .map(|(value, _, from)| Secret { value, from })
        .collect()
}

/// Words of the summary and error templates, which a password may happen to equal.
const SUMMARY_WORDS: [&str; 4] = ["config", "listen", "streams", "name"];

/// Every string value and key in `value`.
fn collect_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(table) => {
            for (key, v) in table {
                out.push(key.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// The summary (`--check-config`) shows no secret, and the URLs it shows carry no
/// credentials as a URL parser reads them.
fn check_summary(config: &Config, secrets: &[Secret]) {
    let summary = config.summary();
    let lower = summary.to_lowercase();
    for secret in secrets {
        let is_template_text = ["defaults (no file)", "http auth", "mdns", "disabled"]
            .iter()
            .any(|t| t.contains(&secret.value.to_lowercase()));
        assert!(
            is_template_text || !lower.contains(&secret.value.to_lowercase()),
            "the summary shows the {}:\n{summary}",
            secret.from
        );
    }
    for stream in &config.streams {
        if !matches!(stream.kind, SourceKind::Rtsp | SourceKind::HttpMjpeg) {
            continue;
        }
        let Ok(url) = url::Url::parse(&stream.url) else {
            continue;
        };
        if url.username().is_empty() && url.password().is_none() {
            continue;
        }
        let shown = stream.redacted_url();
        if let Ok(shown_url) = url::Url::parse(&shown) {
            assert!(
                shown_url.username().is_empty() && shown_url.password().is_none(),
                "stream {:?} is shown with its credentials: {shown}",
                stream.id
            );
        }
    }
}
