//! The `camhub` binary as a user runs it: `--check-config` on good and bad files, the
//! error messages they print, and a clean exit on SIGTERM while serving.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if the test fails midway, so no camhub outlives its test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn camhub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_camhub"))
}

fn check_config(toml: &str) -> (bool, String) {
    common::check_config_file("camhub.toml", toml)
}

#[test]
fn check_config_accepts_a_good_file_and_hides_credentials() {
    let (ok, text) = check_config(
        "[server]\nlisten = \"127.0.0.1:8081\"\n[[stream]]\nid = \"door\"\nname = \"Door\"\nurl = \"rtsp://admin:pw123@127.0.0.1/s\"\nled = 17\n",
    );
    assert!(ok, "{text}");
    assert!(text.contains("config OK"), "{text}");
    assert!(
        text.contains("door") && text.contains("rtsp://127.0.0.1/s"),
        "{text}"
    );
    assert!(!text.contains("pw123"), "{text}");
}

#[test]
fn check_config_rejects_bad_files_naming_key_and_line() {
    let cases = [
        ("[server]\nlisten = \"127.0.0.1:1\"\ncolour = \"red\"\n", ":3", "colour"),
        ("[[stream]]\nid = \"a\"\nurl = \"smb://x/y\"\n", ":3: stream.url", "unknown URL scheme"),
        ("[[stream]]\nid = \"a\"\nurl = \"pattern:\"\n[[stream]]\nid = \"a\"\nurl = \"pattern:\"\n", ":5: stream.id", "used twice"),
        ("[[stream]]\nid = \"a/b\"\nurl = \"pattern:\"\n", ":2: stream.id", "letters, digits"),
        ("[[stream]]\nid = \"a\"\nurl = \"pattern:?colour=red\"\n", ":3: stream.url", "colour"),
        ("[mdns]\nname = \"my box\"\n", ":2: mdns.name", "letters, digits"),
        ("not toml at all", ":1", "toml"),
    ];
    for (toml, at, msg) in cases {
        let (ok, text) = check_config(toml);
        assert!(!ok, "accepted:\n{toml}");
        assert!(
            text.contains(at) && text.contains(msg),
            "for\n{toml}\ngot: {text}"
        );
    }
}

#[test]
fn cli_sources_and_errors() {
    let out = camhub()
        .args([
            "--check-config",
            "--no-mdns",
            "--source",
            "a=pattern:",
            "--source",
            "b=pattern:?fps=5",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("streams: 2") && text.contains("mDNS off"),
        "{text}"
    );

    let out = camhub()
        .args(["--check-config", "--source", "a=ftp://x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source a="));

    let out = camhub().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn serves_then_exits_cleanly_on_sigterm() {
    let mut child = KillOnDrop(
        camhub()
            .args([
                "--no-mdns",
                "--listen",
                "127.0.0.1:0",
                "--source",
                "cam=pattern:?size=320x240&fps=15",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut addr = None;
    for _ in 0..50 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split('/').next().map(str::to_string);
            break;
        }
    }
    let addr = addr.expect("camhub logs its address");
    // Hold a streaming viewer open across the shutdown: it must not delay the exit.
    let mut viewer = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut viewer, b"GET /stream/cam HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    viewer.read_exact(&mut first).unwrap();

    let t0 = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            panic!("camhub did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    assert!(status.success(), "exit status {status}");
    // The requirement is 2 s; the margin absorbs a busy CI machine.
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(rest.contains("shutting down"), "{rest}");
}

#[test]
fn the_example_pi_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/board/rpi/camhub.toml");
    let out = camhub()
        .args(["--check-config", "--config", path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("streams: 4"), "{text}");
    assert!(
        !text.contains("change-me"),
        "passwords stay out of the summary: {text}"
    );
}

/// Type=notify: camhub tells systemd it is ready only once it serves.
#[test]
fn notifies_systemd_when_ready() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let child = camhub()
        .args([
            "--no-mdns",
            "--listen",
            "127.0.0.1:0",
            "--source",
            "cam=pattern:",
        ])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(buf[..n].trim_ascii(), b"READY=1");
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let n = socket.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(buf[..n].trim_ascii(), b"STOPPING=1");
}
