//! The GStreamer RTSP server peer (tests/peers/rtsp_server.py, run with Debian's
//! /usr/bin/python3, which has gi) on 127.0.0.1, shared by tests/rtsp.rs and
//! tests/probe.rs. The process is killed by PID when the handle drops, pass or fail.
//!
//! Not declared in `common/mod.rs`: the test files that need it include it with
//! `#[path = "common/rtsp.rs"] mod rtsp_server;`, so the others do not compile it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

const PYTHON: &str = "/usr/bin/python3";

/// A GStreamer RTSP server process, killed when dropped.
pub struct RtspServer {
    process: std::process::Child,
    pub port: u16,
}

impl RtspServer {
    /// Starts the server on `port` with `extra` arguments (e.g. `--auth digest`) and
    /// waits for its ready line. Retries briefly while the port is still being released.
    pub fn start(port: u16, extra: &[&str]) -> RtspServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/rtsp_server.py");
        for _ in 0..20 {
            let mut process = Command::new(PYTHON)
                .arg(script)
                .args(["--port", &port.to_string()])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("/usr/bin/python3 runs (Debian's, with gi)");
            let stdout = process.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            let server = RtspServer { process, port };
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.starts_with("ready") => return server,
                _ => {
                    drop(server);
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        panic!("RTSP server did not start on port {port}");
    }

    /// `rtsp://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}{path}", self.port)
    }

    /// Sends `signal` (e.g. `-STOP`) to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.process.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.process.kill(); // SIGKILL also ends a SIGSTOPped process
        let _ = self.process.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
