//! The admin API (issue #13) against the real camhub binary over real TCP: setting the
//! admin password, adding, editing and removing cameras while the others keep running,
//! saved cameras surviving a restart and a kill -9 in the middle of rapid saves, a
//! damaged state file, and the security rules (admin only, no cross-site changes,
//! throttled logins, camera passwords write-only: never in an answer, page, metric or log).

mod common;

use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ADMIN_PW: &str = "correct horse battery";
/// A camera password distinctive enough to grep for everywhere.
const CAM_PW: &str = "Zebra-Quokka-7731";
const TIMEOUT: Duration = Duration::from_secs(10);

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// A request as the admin (Basic), from a script (no Origin).
fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    send(addr, method, path, &[&basic("admin", ADMIN_PW)], body)
}

fn start_with(
    state: &std::path::Path,
    config: &std::path::Path,
) -> (Child, std::sync::Arc<std::sync::Mutex<String>>) {
    spawn_camhub_logged(&[
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("camhub.toml");
    std::fs::write(
        &path,
        "[[stream]]\nid = \"yard\"\nname = \"Yard\"\nurl = \"pattern:?size=320x240&fps=15\"\n",
    )
    .unwrap();
    path
}

fn set_password(addr: SocketAddr) {
    let r = send(
        addr,
        "POST",
        "/api/admin/password",
        &["Content-Type: application/json"],
        &format!("{{\"password\":\"{ADMIN_PW}\"}}"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn live(addr: SocketAddr, id: &str) -> bool {
    eventually(TIMEOUT, || {
        (api_stream(addr, id)["state"] == "live").then_some(())
    })
    .is_some()
}

#[test]
fn cameras_are_added_edited_and_removed_while_the_others_keep_running() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), config_file(dir.path()));
    let (child, log) = start_with(&state, &config);
    let addr = child.addr;

    // Before an admin password exists, no change is possible; the first one can be set.
    let status = json(&get(addr, "/api/admin"));
    assert_eq!(status["password_set"], false);
    let body = r#"{"name":"Door","url":"pattern:?size=640x480&fps=15"}"#;
    let r = send(addr, "POST", "/api/cameras", &[], body);
    assert_eq!(r.status, 403, "{}", r.text());
    set_password(addr);
    let again = send(
        addr,
        "POST",
        "/api/admin/password",
        &[],
        r#"{"password":"another one!"}"#,
    );
    assert_eq!(again.status, 409, "only while none is set");

    // Add a camera with credentials: 201, running, password never shown.
    let body = format!(
        r#"{{"name":"Front door","url":"pattern:?size=640x480&fps=15","username":"viewer","password":"{CAM_PW}"}}"#
    );
    let r = admin(addr, "POST", "/api/cameras", &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let cam = json(&r);
    let id = cam["id"].as_str().unwrap().to_string();
    assert_eq!(id, "front-door");
    assert_eq!(cam["source"], "saved");
    assert_eq!(cam["has_password"], true);
    assert!(live(addr, &id));
    let yard = camhub_frames(addr, "yard");

    let list = json(&admin(addr, "GET", "/api/cameras", ""));
    let sources: Vec<(&str, &str)> = list["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("yard", "file"), ("front-door", "saved")]);
    // A file camera is read-only here.
    assert_eq!(admin(addr, "DELETE", "/api/cameras/yard", "").status, 409);
    assert_eq!(
        admin(addr, "PUT", "/api/cameras/yard", r#"{"name":"x"}"#).status,
        409
    );
    assert_eq!(admin(addr, "DELETE", "/api/cameras/nope", "").status, 404);

    // Edit: the stream restarts with the new URL (a new size), the password is kept.
    let r = admin(
        addr,
        "PUT",
        &format!("/api/cameras/{id}"),
        r#"{"url":"pattern:?size=320x240&fps=15","name":"Front"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(json(&r)["has_password"], true);
    let resized = eventually(TIMEOUT, || {
        let r = get(addr, &format!("/snapshot/{id}"));
        (r.status == 200 && decode(&r.body).0 == 320).then_some(())
    });
    assert!(resized.is_some(), "the edited stream serves the new URL");

    // Remove: gone from the API and the page; the file's stream never stopped.
    assert_eq!(
        admin(addr, "DELETE", &format!("/api/cameras/{id}"), "").status,
        200
    );
    assert_eq!(get(addr, &format!("/snapshot/{id}")).status, 404);
    assert!(!get(addr, "/").text().contains("front-door"));
    let after = camhub_frames(addr, "yard");
    assert!(after > yard, "yard kept running: {yard} -> {after}");
    assert!(
        api_stream(addr, "yard")["state"] == "live",
        "{}",
        api_stream(addr, "yard")
    );

    // Bad input: clear 400s, never a 500.
    for (body, why) in [
        (r#"{"name":"x","url":"exec:rm -rf /"}"#, "exec"),
        (r#"{"name":"x","url":"v4l2:///etc/passwd"}"#, "/dev/video"),
        (r#"{"name":"x","url":"ftp://cam"}"#, "ftp"),
        (r#"{"name":"x"}"#, "url"),
        (r#"{"name":"x","url":"pattern:","bogus":1}"#, "bogus"),
        ("not json", "JSON"),
    ] {
        let r = admin(addr, "POST", "/api/cameras", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(
            json(&r)["error"].as_str().unwrap().contains(why),
            "{body}: {}",
            r.text()
        );
    }
    // Discovery is multicast: off with --no-mdns (as every test runs camhub), said so.
    assert_eq!(send(addr, "GET", "/api/discover", &[], "").status, 401);
    let r = admin(addr, "GET", "/api/discover", "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("discovery is off"));
    // ONVIF: an address that does not answer is a plain reason, not an error status.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = admin(
        addr,
        "POST",
        "/api/onvif/streams",
        &format!(r#"{{"address":"{closed}","username":"admin","password":"{CAM_PW}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("no answer"), "{v}");
    assert!(!r.text().contains(CAM_PW));
    let big = format!(r#"{{"name":"{}","url":"pattern:"}}"#, "x".repeat(70_000));
    assert_eq!(admin(addr, "POST", "/api/cameras", &big).status, 413);
    drop(child);
    assert!(!log.lock().unwrap().contains(CAM_PW));
}

/// Frames the stream `id` received so far.
fn camhub_frames(addr: SocketAddr, id: &str) -> u64 {
    // Being watched makes the pattern draw; read a snapshot to be sure it runs.
    let _ = get(addr, &format!("/snapshot/{id}"));
    api_stream(addr, id)["frames"].as_u64().unwrap()
}

#[test]
fn changes_need_the_admin_from_this_site_and_logins_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), config_file(dir.path()));
    let (child, log) = start_with(&state, &config);
    let addr = child.addr;
    set_password(addr);
    let body = format!(r#"{{"name":"Cam","url":"pattern:","password":"{CAM_PW}"}}"#);

    // No credentials, wrong ones, a viewer's: 401.
    assert_eq!(send(addr, "POST", "/api/cameras", &[], &body).status, 401);
    assert_eq!(send(addr, "GET", "/api/cameras", &[], "").status, 401);
    let wrong = basic("admin", "nope-nope");
    assert_eq!(
        send(addr, "POST", "/api/cameras", &[&wrong], &body).status,
        401
    );
    // From another site, even with the right password: 403.
    for h in [
        "Origin: http://evil.example",
        "Origin: null",
        "Sec-Fetch-Site: cross-site",
    ] {
        let r = send(
            addr,
            "POST",
            "/api/cameras",
            &[&basic("admin", ADMIN_PW), h],
            &body,
        );
        assert_eq!(r.status, 403, "{h}: {}", r.text());
    }
    // The same site is fine.
    let r = send(
        addr,
        "POST",
        "/api/cameras",
        &[&basic("admin", ADMIN_PW), "Origin: http://t"],
        &body,
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // The page's login: a session cookie, HttpOnly and SameSite=Strict.
    let r = send(
        addr,
        "POST",
        "/api/admin/login",
        &["Origin: http://t"],
        &format!(r#"{{"password":"{ADMIN_PW}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = format!("Cookie: {pair}");
    assert_eq!(
        send(addr, "GET", "/api/cameras", &[&with_cookie], "").status,
        200
    );
    assert_eq!(
        json(&send(addr, "GET", "/api/admin", &[&with_cookie], ""))["logged_in"],
        true
    );

    // Failed logins: 5 a minute per client, then 429 even for the right password.
    // (Repeating one wrong guess counts once; the success above cleared the wrong Basic.)
    let mut statuses = Vec::new();
    for i in 0..6 {
        let body = format!(r#"{{"password":"wrong password {i}"}}"#);
        statuses.push(send(addr, "POST", "/api/admin/login", &[], &body).status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let r = send(
        addr,
        "POST",
        "/api/admin/login",
        &[],
        &format!(r#"{{"password":"{ADMIN_PW}"}}"#),
    );
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    // The session still works (throttling is about guessing).
    assert_eq!(
        send(addr, "GET", "/api/cameras", &[&with_cookie], "").status,
        200
    );

    // The camera password appears nowhere.
    for path in [
        "/api/cameras",
        "/api/streams",
        "/metrics",
        "/",
        "/api/admin",
    ] {
        let r = send(addr, "GET", path, &[&with_cookie], "");
        assert!(
            !r.text().contains(CAM_PW),
            "{path} shows the camera password"
        );
    }
    drop(child);
    assert!(
        !log.lock().unwrap().contains(CAM_PW),
        "the log shows the camera password"
    );
    assert!(
        !log.lock().unwrap().contains(ADMIN_PW),
        "the log shows the admin password"
    );
    let saved = std::fs::read_to_string(state.join("cameras.toml")).unwrap();
    assert!(
        saved.contains(CAM_PW),
        "camhub needs the password: it is in the state file"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(state.join("cameras.toml"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn saved_cameras_survive_a_restart_concurrent_adds_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), config_file(dir.path()));
    let (child, _log) = start_with(&state, &config);
    let addr = child.addr;
    set_password(addr);

    // 24 adds from several clients at once: all persist.
    let threads: Vec<_> = (0..24)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!(r#"{{"name":"Cam {i}","url":"pattern:?size=160x120&fps=2"}}"#);
                admin(addr, "POST", "/api/cameras", &body).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");
    let saved = std::fs::read_to_string(state.join("cameras.toml")).unwrap();
    assert_eq!(saved.matches("[[camera]]").count(), 24);
    drop(child);

    // Restart: still there, running.
    let (child, _log) = start_with(&state, &config);
    let addr = child.addr;
    let list = json(&admin(addr, "GET", "/api/cameras", ""));
    assert_eq!(list["cameras"].as_array().unwrap().len(), 25, "{list}");
    assert!(live(addr, "cam-0"));

    // kill -9 during rapid saves: the file parses and holds every acknowledged camera.
    let started = Instant::now();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for i in 0..50 {
                let body = format!(r#"{{"name":"Rapid {i}","url":"pattern:?fps=1"}}"#);
                let r = std::panic::catch_unwind(|| admin(addr, "POST", "/api/cameras", &body));
                match r {
                    Ok(r) if r.status == 201 => acked
                        .lock()
                        .unwrap()
                        .push(json(&r)["id"].as_str().unwrap().to_string()),
                    _ => return,
                }
            }
        })
    };
    // Let some saves land, then kill it in the middle of the rest.
    while acked.lock().unwrap().len() < 10 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = std::process::Command::new("kill")
        .args(["-KILL", &child.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = writer.join();
    drop(child);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 10 && acked.len() < 50,
        "killed mid-way: {} acked",
        acked.len()
    );
    let text = std::fs::read_to_string(state.join("cameras.toml")).unwrap();
    let parsed: toml::Value = toml::from_str(&text).expect("the state file parses after kill -9");
    let ids: Vec<&str> = parsed["camera"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(
            ids.contains(&id.as_str()),
            "acknowledged {id} lost after kill -9"
        );
    }
    // And camhub starts from it.
    let (child, _log) = start_with(&state, &config);
    let list = json(&admin(child.addr, "GET", "/api/cameras", ""));
    assert!(list["cameras"].as_array().unwrap().len() >= 25 + acked.len());
}

#[test]
fn a_damaged_state_file_is_reported_kept_and_replaced_only_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (state, config) = (dir.path().join("state"), config_file(dir.path()));
    std::fs::create_dir_all(&state).unwrap();
    let damaged = "[[camera]]\nid = \"a\"\nname = \"A\"\nurl = \"pattern:\"\ncolour = \"red\"\n";
    std::fs::write(state.join("cameras.toml"), damaged).unwrap();
    let (child, log) = start_with(&state, &config);
    let addr = child.addr;
    // The file's cameras run; the problem is shown with file, line and key.
    assert!(live(addr, "yard"));
    let status = json(&get(addr, "/api/admin"));
    let problem = status["state_problem"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        problem.contains("cameras.toml:5") && problem.contains("colour"),
        "{status}"
    );
    assert!(log.lock().unwrap().contains("cameras.toml:5"));
    set_password(addr);
    // Saving is refused until the user starts over; the file is untouched.
    let r = admin(
        addr,
        "POST",
        "/api/cameras",
        r#"{"name":"B","url":"pattern:"}"#,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        std::fs::read_to_string(state.join("cameras.toml")).unwrap(),
        damaged
    );
    let r = admin(addr, "POST", "/api/state/start-over", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let kept = json(&r)["kept_aside"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        damaged,
        "the old file is kept aside"
    );
    let r = admin(
        addr,
        "POST",
        "/api/cameras",
        r#"{"name":"B","url":"pattern:"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}
