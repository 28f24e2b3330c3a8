//! Cameras saved from the phone page: camhub's own state file `cameras.toml`, written
//! whole and atomically (temp file, fsync, rename, fsync of the directory) under one lock,
//! so neither many clients adding at once nor `kill -9` at any moment loses a camera.
//!
//! The config file stays the administrator's; this file is camhub's. A state file that does
//! not parse never stops camhub: [`Store::problem`] says why (`file:line: key: message`),
//! the file is left exactly as it is, and saving is refused until [`Store::start_over`]
//! moves it aside.

use crate::config::{self, StreamConfig, StreamParts};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use toml::Spanned;

/// The state file's name inside the state directory.
pub const FILE_NAME: &str = "cameras.toml";

/// Written at the top of the file: it is rewritten whole on every save.
const HEADER: &str =
    "# Cameras saved from camhub's page. camhub rewrites this file on every change:\n\
                      # edit it only while camhub is stopped.\n\n";

/// Replaces the file at `path` with `bytes` so that a crash at any moment leaves either
/// the old or the new file, whole: writes `<path>.tmp` (created with `mode`, never
/// chmod-ed after), fsyncs it, renames it over `path`, fsyncs the directory. When this
/// returns `Ok`, the new content is durable. For every state file camhub owns (the saved
/// cameras, the admin password hash).
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or(OsStr::new("state")).to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // A `.tmp` left by a crash may have another mode: `mode` only applies on creation.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// One camera saved from the page, as it is in the file. Passwords are kept (camhub needs
/// them to connect) but `Debug` leaves them and the URLs' credentials out; there is no
/// `Serialize`, so it cannot end up in an API answer by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SavedCamera {
    /// Unique among all streams, part of `/stream/{id}`. Empty in [`Store::add`]: one is
    /// made from the name.
    pub id: String,
    /// Shown on the page; the id when empty.
    pub name: String,
    pub url: String,
    /// The camera's smaller second stream, if any (see [`StreamConfig::sub_url`]).
    pub sub_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub sub_username: Option<String>,
    pub sub_password: Option<String>,
    /// A disabled camera is listed but never started.
    pub enabled: bool,
}

impl SavedCamera {
    /// A camera with only a name and URL; enabled, no credentials, id to be assigned.
    pub fn new(name: &str, url: &str) -> SavedCamera {
        SavedCamera {
            id: String::new(),
            name: name.to_string(),
            url: url.to_string(),
            sub_url: None,
            username: None,
            password: None,
            sub_username: None,
            sub_password: None,
            enabled: true,
        }
    }

    /// The stream camhub runs for this camera. Every saved camera passed this check when
    /// it was saved or loaded.
    pub fn stream_config(&self) -> Result<StreamConfig> {
        self.check(&|key| format!("camera.{key}"))
    }

    /// The config file's rules for a stream (id, URL schemes, sub-stream), plus what only
    /// the config file may hold: `exec:` commands (a command added from a web page would
    /// be remote code execution) and `v4l2:` paths other than `/dev/video*` and
    /// `/dev/v4l/by-*`.
    fn check(&self, at: &dyn Fn(&str) -> String) -> Result<StreamConfig> {
        let stream = StreamConfig::from_parts(
            StreamParts {
                id: self.id.clone(),
                name: Some(self.name.clone()).filter(|n| !n.is_empty()),
                url: self.url.clone(),
                sub_url: self.sub_url.clone(),
                username: self.username.clone(),
                password: self.password.clone(),
                sub_username: self.sub_username.clone(),
                sub_password: self.sub_password.clone(),
                enabled: self.enabled,
            },
            at,
        )?;
        check_saved_url(&self.url).map_err(|msg| Error::Config { at: at("url"), msg })?;
        if let Some(sub) = &self.sub_url {
            check_saved_url(sub).map_err(|msg| Error::Config {
                at: at("sub_url"),
                msg,
            })?;
        }
        Ok(stream)
    }
}

impl fmt::Debug for SavedCamera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("SavedCamera")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &config::redact_url(&self.url))
            .field("sub_url", &self.sub_url.as_deref().map(config::redact_url))
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("sub_username", &self.sub_username)
            .field("sub_password", &secret(&self.sub_password))
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// The rules a saved camera's URLs follow on top of the config file's.
fn check_saved_url(url: &str) -> Result<(), String> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "exec" => Err("exec: commands can only be set in the config file (camhub.toml)".into()),
        "v4l2" => {
            let path = url["v4l2:".len()..].trim_start_matches("//");
            let allowed = ["/dev/video", "/dev/v4l/by-id/", "/dev/v4l/by-path/"];
            if allowed.iter().any(|p| path.starts_with(p)) && !path.contains("..") {
                Ok(())
            } else {
                Err("v4l2: only for /dev/video* and /dev/v4l/by-id|by-path/* devices".into())
            }
        }
        _ => Ok(()),
    }
}

// ---- the file, as written ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    #[serde(default)]
    camera: Vec<FileCameraIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCameraIn {
    id: Spanned<String>,
    name: Option<String>,
    url: Spanned<String>,
    sub_url: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<String>,
    sub_username: Option<String>,
    sub_password: Option<String>,
    enabled: Option<bool>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    camera: Vec<FileCameraOut<'a>>,
}

#[derive(Serialize)]
struct FileCameraOut<'a> {
    id: &'a str,
    name: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_password: Option<&'a str>,
    enabled: bool,
}

/// The file's text → cameras, each checked like [`SavedCamera::stream_config`]. The error
/// is `file:line: key: message`, never showing a password.
fn parse(text: &str, path: &Path) -> Result<Vec<SavedCamera>, String> {
    let file: FileIn = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| config::line_of(text, s.start));
        let key = e.span().and_then(|s| config::key_at(text, s.start));
        let key = key.as_deref().unwrap_or("toml");
        // A wrong-typed value is quoted in the message ("invalid type: integer `1234`").
        let msg = if key.ends_with("password") {
            "not a valid value (not shown: it is a password)".to_string()
        } else {
            e.message().trim().to_string()
        };
        format!("{}:{line}: {key}: {msg}", path.display())
    })?;
    let mut cameras: Vec<SavedCamera> = Vec::with_capacity(file.camera.len());
    for c in file.camera {
        let at = |key: &str| {
            let span = match key {
                "id" => c.id.span(),
                "sub_url" => c.sub_url.as_ref().map_or(c.url.span(), Spanned::span),
                _ => c.url.span(),
            };
            format!(
                "{}:{}: camera.{key}",
                path.display(),
                config::line_of(text, span.start)
            )
        };
        let camera = SavedCamera {
            id: c.id.get_ref().clone(),
            name: c.name.clone().unwrap_or_default(),
            url: c.url.get_ref().clone(),
            sub_url: c.sub_url.as_ref().map(|u| u.get_ref().clone()),
            username: c.username.clone(),
            password: c.password.clone(),
            sub_username: c.sub_username.clone(),
            sub_password: c.sub_password.clone(),
            enabled: c.enabled.unwrap_or(true),
        };
        match camera.check(&at) {
            Err(Error::Config { at, msg }) => return Err(format!("{at}: {msg}")),
            Err(e) => return Err(format!("{}: {e}", at("id"))),
            Ok(_) => {}
        }
        if cameras.iter().any(|o| o.id == camera.id) {
            return Err(format!(
                "{}: camera id {:?} is used twice",
                at("id"),
                camera.id
            ));
        }
        cameras.push(camera);
    }
    Ok(cameras)
}

fn render(cameras: &[SavedCamera]) -> String {
    let out = FileOut {
        camera: cameras
            .iter()
            .map(|c| FileCameraOut {
                id: &c.id,
                name: &c.name,
                url: &c.url,
                sub_url: c.sub_url.as_deref(),
                username: c.username.as_deref(),
                password: c.password.as_deref(),
                sub_username: c.sub_username.as_deref(),
                sub_password: c.sub_password.as_deref(),
                enabled: c.enabled,
            })
            .collect(),
    };
    let body = toml::to_string(&out).expect("saved cameras serialise to TOML");
    format!("{HEADER}{body}")
}

// ---- the store -----------------------------------------------------------------------------

/// The saved cameras: the list in memory and the file it is always equal to once a change
/// has returned. Share it (`Arc<Store>`) between the HTTP handlers and the owner of the
/// running streams.
pub struct Store {
    dir: PathBuf,
    path: PathBuf,
    /// One lock around every read-modify-write, so concurrent changes all persist.
    inner: Mutex<Inner>,
}

struct Inner {
    cameras: Vec<SavedCamera>,
    /// Why the file could not be loaded; while set, nothing is saved over it.
    problem: Option<String>,
}

impl Store {
    /// Opens the saved cameras in `dir` (created, mode 0700, when missing). Never fails:
    /// no file is an empty list, and a file or directory that cannot be read, parsed or
    /// validated is a [`Store::problem`] with an empty list.
    pub fn open(dir: &Path) -> Store {
        let path = dir.join(FILE_NAME);
        let (cameras, problem) = match load(dir, &path) {
            Ok(cameras) => (cameras, None),
            Err(problem) => (Vec::new(), Some(problem)),
        };
        if let Some(p) = &problem {
            tracing::warn!("saved cameras not loaded, saving refused until started over: {p}");
        }
        Store {
            dir: dir.to_path_buf(),
            path,
            inner: Mutex::new(Inner { cameras, problem }),
        }
    }

    /// The state file, `<dir>/cameras.toml`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the saved cameras could not be loaded (`file:line: key: message`), if so.
    /// Shown on the page and by the API; every change is refused until
    /// [`Store::start_over`].
    pub fn problem(&self) -> Option<String> {
        self.lock().problem.clone()
    }

    /// Every saved camera, in the order they were added.
    pub fn list(&self) -> Vec<SavedCamera> {
        self.lock().cameras.clone()
    }

    /// The saved camera `id`, if there is one.
    pub fn get(&self, id: &str) -> Option<SavedCamera> {
        self.lock().cameras.iter().find(|c| c.id == id).cloned()
    }

    /// Saves a new camera and returns it as saved. An empty `id` gets one made from the
    /// name (`front-door`, then `front-door-2`, …); an id already saved or for which
    /// `taken` says yes (config-file and discovered streams) is refused
    /// ([`Error::Conflict`]). `taken` is called with the store's lock held: it must not
    /// call back into the store. Returns once the camera is durable on disk.
    pub fn add(&self, camera: SavedCamera, taken: &dyn Fn(&str) -> bool) -> Result<SavedCamera> {
        let mut inner = self.writable()?;
        let mut camera = camera;
        camera.name = camera.name.trim().to_string();
        let in_use = |id: &str, cameras: &[SavedCamera]| -> bool {
            cameras.iter().any(|c| c.id == id) || taken(id)
        };
        if camera.id.is_empty() {
            let base = slug(&camera.name);
            camera.id = (1..)
                .map(|n| match n {
                    1 => base.clone(),
                    n => format!("{base}-{n}"),
                })
                .find(|id| !in_use(id, &inner.cameras))
                .expect("some suffix is free");
        } else if in_use(&camera.id, &inner.cameras) {
            return Err(Error::Conflict(format!(
                "a camera with id {:?} already exists",
                camera.id
            )));
        }
        if camera.name.is_empty() {
            camera.name = camera.id.clone();
        }
        camera.stream_config()?;
        let mut cameras = inner.cameras.clone();
        cameras.push(camera.clone());
        self.save(&mut inner, cameras)?;
        Ok(camera)
    }

    /// Changes the saved camera `id` with `edit`, run under the store's lock on a copy:
    /// what `edit` leaves alone stays as it was (a password the page did not send, since
    /// it never shows one). The id cannot change. Returns once the change is durable.
    pub fn update(&self, id: &str, edit: impl FnOnce(&mut SavedCamera)) -> Result<SavedCamera> {
        let mut inner = self.writable()?;
        let index = find(&inner.cameras, id)?;
        let mut camera = inner.cameras[index].clone();
        edit(&mut camera);
        if camera.id != id {
            return Err(Error::Config {
                at: "camera.id".into(),
                msg: format!("the id of saved camera {id:?} cannot change"),
            });
        }
        camera.name = camera.name.trim().to_string();
        if camera.name.is_empty() {
            camera.name = camera.id.clone();
        }
        camera.stream_config()?;
        let mut cameras = inner.cameras.clone();
        cameras[index] = camera.clone();
        self.save(&mut inner, cameras)?;
        Ok(camera)
    }

    /// Removes the saved camera `id` and returns it. Returns once the removal is durable.
    pub fn remove(&self, id: &str) -> Result<SavedCamera> {
        let mut inner = self.writable()?;
        let index = find(&inner.cameras, id)?;
        let mut cameras = inner.cameras.clone();
        let removed = cameras.remove(index);
        self.save(&mut inner, cameras)?;
        Ok(removed)
    }

    /// Gives up on a file that could not be loaded: moves it aside as
    /// `cameras.toml.damaged-<unix seconds>` (never over an earlier one), so nothing is
    /// lost, and starts with no saved cameras. Returns where the file went (`None` when
    /// there was no file, or no problem: then nothing changes).
    pub fn start_over(&self) -> Result<Option<PathBuf>> {
        let mut inner = self.lock();
        if inner.problem.is_none() {
            return Ok(None);
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        let aside = match fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("reading {}", self.path.display()), e)),
            Ok(_) => {
                let aside = self.aside_path();
                fs::rename(&self.path, &aside).map_err(|e| {
                    Error::io(
                        format!("moving {} to {}", self.path.display(), aside.display()),
                        e,
                    )
                })?;
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io(format!("syncing {}", self.dir.display()), e))?;
                tracing::warn!(
                    "saved cameras started over; the damaged file is kept as {}",
                    aside.display()
                );
                Some(aside)
            }
        };
        inner.cameras.clear();
        inner.problem = None;
        Ok(aside)
    }

    /// `cameras.toml.damaged-<secs>`, or with `-2`, `-3`, … when that name is taken.
    fn aside_path(&self) -> PathBuf {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        (1..)
            .map(|n| {
                let name = match n {
                    1 => format!("{FILE_NAME}.damaged-{secs}"),
                    n => format!("{FILE_NAME}.damaged-{secs}-{n}"),
                };
                self.dir.join(name)
            })
            .find(|p| fs::symlink_metadata(p).is_err())
            .expect("some suffix is free")
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The list only changes after a successful write, so it is whole even if a
        // thread panicked while holding the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock, unless saving is refused because the file could not be loaded.
    fn writable(&self) -> Result<MutexGuard<'_, Inner>> {
        let inner = self.lock();
        match &inner.problem {
            Some(problem) => Err(Error::Conflict(format!(
                "saved cameras cannot be changed: {problem}; the file is left as it is \
                 until you choose to start over (it is then kept aside)"
            ))),
            None => Ok(inner),
        }
    }

    /// Writes `cameras` as the whole file, durably, then makes them the list.
    fn save(&self, inner: &mut Inner, cameras: Vec<SavedCamera>) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        write_atomically(&self.path, render(&cameras).as_bytes(), 0o600)
            .map_err(|e| Error::io(format!("saving {}", self.path.display()), e))?;
        inner.cameras = cameras;
        Ok(())
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("cameras", &inner.cameras.len())
            .field("problem", &inner.problem)
            .finish()
    }
}

/// Creates `dir` if needed and reads the file; the error is the problem to show.
fn load(dir: &Path, path: &Path) -> Result<Vec<SavedCamera>, String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: cannot create the state directory: {e}", dir.display()))?;
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| {
                let offset = e.utf8_error().valid_up_to();
                let valid = std::str::from_utf8(&e.as_bytes()[..offset]).unwrap_or("");
                format!(
                    "{}:{}: toml: not UTF-8 text",
                    path.display(),
                    config::line_of(valid, offset)
                )
            })?;
            parse(&text, path)
        }
    }
}

fn find(cameras: &[SavedCamera], id: &str) -> Result<usize> {
    cameras
        .iter()
        .position(|c| c.id == id)
        .ok_or_else(|| Error::NotFound(format!("no saved camera {id:?}")))
}

/// A URL-safe id from a display name: lowercase ASCII letters and digits, other runs as
/// one `-`; `camera` when nothing is left.
fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
        if s.len() >= 48 {
            break;
        }
    }
    let s = s.trim_end_matches('-');
    if s.is_empty() {
        "camera".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    use std::sync::{mpsc, Barrier};
    use std::thread;
    use std::time::{Duration, Instant};

    fn nothing_taken(_: &str) -> bool {
        false
    }

    fn full_camera() -> SavedCamera {
        SavedCamera {
            id: "door".into(),
            name: "Front door".into(),
            url: "rtsp://10.0.0.5:554/main".into(),
            sub_url: Some("rtsp://10.0.0.5:554/sub".into()),
            username: Some("admin".into()),
            password: Some("p@ss \"quoted\" = [x]".into()),
            sub_username: Some("viewer".into()),
            sub_password: Some("sub-secret".into()),
            enabled: false,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        assert_eq!(store.problem(), None);
        assert!(store.list().is_empty());
        assert!(
            !store.path().exists(),
            "nothing is written until something is saved"
        );
        let door = store.add(full_camera(), &nothing_taken).unwrap();
        assert_eq!(door, full_camera());
        let phone = store
            .add(
                SavedCamera::new("Phone", "http://192.168.1.20:8080/video"),
                &nothing_taken,
            )
            .unwrap();
        let reopened = Store::open(dir.path());
        assert_eq!(reopened.problem(), None);
        assert_eq!(reopened.list(), [door.clone(), phone.clone()]);
        assert_eq!(reopened.get("phone"), Some(phone));

        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with('#'), "{text}");
        assert_eq!(text.matches("[[camera]]").count(), 2, "{text}");
        assert!(text.contains("enabled = false"), "{text}");
        assert!(
            !text.contains("sub_url = \"http"),
            "unset keys are left out: {text}"
        );

        let stream = door.stream_config().unwrap();
        assert_eq!(stream.kind, config::SourceKind::Rtsp);
        assert_eq!(stream.name, "Front door");
        assert!(!stream.enabled);
        let sub = stream.sub_config().unwrap();
        assert_eq!(sub.password.as_deref(), Some("sub-secret"));
    }

    #[test]
    fn ids_are_made_from_names_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let add = |name: &str, taken: &dyn Fn(&str) -> bool| {
            store
                .add(SavedCamera::new(name, "pattern:"), taken)
                .map(|c| c.id)
        };
        assert_eq!(add("Front Door", &nothing_taken).unwrap(), "front-door");
        assert_eq!(
            add(" front  door! ", &nothing_taken).unwrap(),
            "front-door-2"
        );
        let file_and_discovered = |id: &str| id == "front-door-3" || id == "usb-cam";
        assert_eq!(
            add("Front door", &file_and_discovered).unwrap(),
            "front-door-4"
        );
        assert_eq!(add("USB cam", &file_and_discovered).unwrap(), "usb-cam-2");
        assert_eq!(add("!!!", &nothing_taken).unwrap(), "camera");
        let unnamed = store
            .add(SavedCamera::new("", "pattern:"), &nothing_taken)
            .unwrap();
        assert_eq!(
            (unnamed.id.as_str(), unnamed.name.as_str()),
            ("camera-2", "camera-2")
        );
        assert_eq!(add("Küche", &nothing_taken).unwrap(), "k-che");
        let long = add(&"x".repeat(200), &nothing_taken).unwrap();
        assert!(long.len() <= 64 && long.starts_with("xxx"), "{long}");

        let with_id = |id: &str, taken: &dyn Fn(&str) -> bool| {
            let mut c = SavedCamera::new("Given", "pattern:");
            c.id = id.into();
            store.add(c, taken)
        };
        assert_eq!(with_id("given", &nothing_taken).unwrap().id, "given");
        let e = with_id("given", &nothing_taken).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        let e = with_id("from-file", &|id| id == "from-file").unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        let e = with_id("a b/c", &nothing_taken).unwrap_err();
        assert!(e.to_string().contains("camera.id"), "{e}");

        let ids: Vec<_> = Store::open(dir.path())
            .list()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids.len(), 9, "{ids:?}");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }

    #[test]
    fn the_config_files_rules_apply_and_exec_stays_in_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let add = |url: &str| store.add(SavedCamera::new("Cam", url), &nothing_taken);
        for (url, wanted) in [
            ("ftp://u:urlsecret@h/x", "unknown URL scheme"),
            ("rtsp://", "camera.url"),
            ("http:u:urlsecret@h/x", "write the URL as http://"),
            ("exec:rm -rf /", "config file"),
            ("EXEC:sh", "config file"),
            ("v4l2:///etc/passwd", "/dev/video"),
            ("v4l2:///dev/video0/../../etc/passwd", "/dev/video"),
        ] {
            let e = add(url).unwrap_err().to_string();
            assert!(e.contains("camera.url") && e.contains(wanted), "{url}: {e}");
            assert!(!e.contains("urlsecret"), "{e}");
        }
        let mut sub = SavedCamera::new("Cam", "rtsp://h/main");
        sub.sub_url = Some("exec:ffmpeg".into());
        let e = store.add(sub, &nothing_taken).unwrap_err().to_string();
        assert!(e.contains("camera.sub_url"), "{e}");
        assert!(store.list().is_empty());
        for ok in [
            "v4l2:///dev/video0",
            "v4l2:///dev/v4l/by-id/usb-cam-video-index0",
            "pattern:?fps=5",
        ] {
            add(ok).unwrap();
        }
        assert_eq!(Store::open(dir.path()).list().len(), 3);
    }

    #[test]
    fn update_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        store.add(full_camera(), &nothing_taken).unwrap();
        let updated = store
            .update("door", |c| {
                c.url = "rtsp://10.0.0.6/main".into();
                c.enabled = true;
            })
            .unwrap();
        assert_eq!(
            updated.password,
            full_camera().password,
            "what the edit leaves alone stays"
        );
        assert_eq!(
            Store::open(dir.path()).list(),
            std::slice::from_ref(&updated)
        );

        let e = store
            .update("door", |c| c.url = "gopher://h".into())
            .unwrap_err();
        assert!(e.to_string().contains("camera.url"), "{e}");
        let e = store.update("door", |c| c.id = "other".into()).unwrap_err();
        assert!(e.to_string().contains("cannot change"), "{e}");
        let e = store.update("nope", |_| {}).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert_eq!(
            Store::open(dir.path()).list(),
            std::slice::from_ref(&updated)
        );

        assert_eq!(store.remove("door").unwrap(), updated);
        assert!(matches!(store.remove("door"), Err(Error::NotFound(_))));
        assert!(Store::open(dir.path()).list().is_empty());
        assert!(store.path().exists(), "an empty list is a file too");
    }

    #[test]
    fn passwords_never_in_debug_or_errors() {
        let mut c = full_camera();
        c.url = "rtsp://u:urlsecret@h/main".into();
        c.password = Some("hunter2-secret".into());
        let debug = format!("{c:?}");
        for secret in ["urlsecret", "hunter2-secret", "sub-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(
            debug.contains("<redacted>") && debug.contains("Front door"),
            "{debug}"
        );

        // A wrong-typed password is quoted by the TOML parser: not in the problem.
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            "[[camera]]\nid = \"a\"\nurl = \"rtsp://h/s\"\npassword = 987654\n",
        )
        .unwrap();
        let store = Store::open(dir.path());
        let problem = store.problem().unwrap();
        assert!(problem.contains(":4: camera.password: "), "{problem}");
        assert!(!problem.contains("987654"), "{problem}");
        assert!(!format!("{store:?}").contains("987654"));
    }

    /// Writes `text` as the state file, checks that it is reported as `file:line: key:`
    /// with `what`, left alone and not saved over, then starts over.
    fn damaged_file_is_kept(text: &[u8], line: usize, key: &str, what: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::write(&path, text).unwrap();
        let store = Store::open(dir.path());
        let problem = store.problem().expect("a problem");
        let prefix = format!("{}:{line}: {key}: ", path.display());
        assert!(problem.starts_with(&prefix), "{problem:?} ≠ {prefix:?}…");
        assert!(problem.contains(what), "{problem}");
        assert!(store.list().is_empty());

        let e = store
            .add(SavedCamera::new("New", "pattern:"), &nothing_taken)
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
        assert!(e.to_string().contains("start over") && e.to_string().contains(&prefix));
        assert!(matches!(store.update("a", |_| {}), Err(Error::Conflict(_))));
        assert!(matches!(store.remove("a"), Err(Error::Conflict(_))));
        assert_eq!(fs::read(&path).unwrap(), text, "left exactly as it was");
        assert_eq!(Store::open(dir.path()).problem(), Some(problem));

        let aside = store.start_over().unwrap().expect("moved aside");
        assert!(aside
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("cameras.toml.damaged-"));
        assert_eq!(fs::read(&aside).unwrap(), text, "kept aside whole");
        assert_eq!(store.problem(), None);
        assert_eq!(store.start_over().unwrap(), None, "nothing more to do");
        store
            .add(SavedCamera::new("New", "pattern:"), &nothing_taken)
            .unwrap();
        let reopened = Store::open(dir.path());
        assert_eq!((reopened.problem(), reopened.list().len()), (None, 1));
        assert_eq!(fs::read(&aside).unwrap(), text);
    }

    #[test]
    fn unknown_key_is_a_problem() {
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nname = \"A\"\nurl = \"rtsp://h/s\"\ncolour = \"red\"\n",
            5,
            "camera.colour",
            "unknown field",
        );
        damaged_file_is_kept(b"version = 2\n", 1, "version", "unknown field");
    }

    #[test]
    fn bad_url_is_a_problem() {
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nname = \"A\"\nurl = \"rtsp://h/s\"\n[[camera]]\nid = \"b\"\nurl = \"ftp://x/y\"\n",
            7,
            "camera.url",
            "unknown URL scheme",
        );
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nurl = \"exec:sh -c reboot\"\n",
            3,
            "camera.url",
            "config file",
        );
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nurl = \"rtsp://h/s\"\nsub_url = \"nope\"\n",
            4,
            "camera.sub_url",
            "scheme",
        );
    }

    #[test]
    fn bad_toml_bad_ids_and_bad_bytes_are_problems() {
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nurl = \"rtsp://h/s\n",
            3,
            "camera.url",
            "",
        );
        damaged_file_is_kept(b"[[camera]\nid = \"a\"\n", 1, "toml", "unclosed");
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nurl = \"pattern:\"\n[[camera]]\nid = \"a\"\nurl = \"pattern:\"\n",
            5,
            "camera.id",
            "used twice",
        );
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a b\"\nurl = \"pattern:\"\n",
            2,
            "camera.id",
            "letters, digits",
        );
        damaged_file_is_kept(
            b"[[camera]]\nid = \"a\"\nname = \"\xff\"\nurl = \"pattern:\"\n",
            3,
            "toml",
            "UTF-8",
        );
    }

    #[test]
    fn starting_over_twice_keeps_both_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut asides = Vec::new();
        for text in ["first damage", "second damage"] {
            fs::write(&path, text).unwrap();
            let store = Store::open(dir.path());
            assert!(store.problem().is_some());
            asides.push(store.start_over().unwrap().unwrap());
        }
        assert_ne!(asides[0], asides[1]);
        assert_eq!(fs::read_to_string(&asides[0]).unwrap(), "first damage");
        assert_eq!(fs::read_to_string(&asides[1]).unwrap(), "second damage");
    }

    #[test]
    fn unreadable_state_is_a_problem_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        // A directory that cannot be created (its parent is a file): even root fails.
        let file = dir.path().join("a-file");
        fs::write(&file, "").unwrap();
        let store = Store::open(&file.join("state"));
        let problem = store.problem().unwrap();
        assert!(
            problem.contains("cannot create the state directory"),
            "{problem}"
        );
        assert!(store
            .add(SavedCamera::new("x", "pattern:"), &nothing_taken)
            .is_err());
        assert!(store.start_over().is_err(), "still cannot create it");

        // A state file that cannot be read (here: a directory).
        fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        let store = Store::open(dir.path());
        let problem = store.problem().unwrap();
        assert!(problem.contains("cannot read"), "{problem}");
        assert!(store
            .add(SavedCamera::new("x", "pattern:"), &nothing_taken)
            .is_err());
        assert!(store.start_over().unwrap().is_some());
        store
            .add(SavedCamera::new("x", "pattern:"), &nothing_taken)
            .unwrap();
    }

    #[test]
    fn file_is_0600_directory_0700_and_no_tmp_is_left() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state/camhub");
        let store = Store::open(&dir);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        store
            .add(SavedCamera::new("x", "pattern:"), &nothing_taken)
            .unwrap();
        assert_eq!(mode(store.path()), 0o600);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "no .tmp left behind");

        // A `.tmp` left by a crash, world-readable: the new file is still 0600.
        let tmp = dir.join("cameras.toml.tmp");
        fs::write(&tmp, "stale").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        store.remove("x").unwrap();
        assert_eq!(mode(store.path()), 0o600);
        assert!(!tmp.exists());

        let other = dir.join("admin.hash");
        write_atomically(&other, b"hash", 0o600).unwrap();
        write_atomically(&other, b"hash2", 0o600).unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"hash2");
        assert_eq!(mode(&other), 0o600);
    }

    #[test]
    fn concurrent_adds_all_persist() {
        const CLIENTS: usize = 24;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let start = Barrier::new(CLIENTS);
        let ids: Vec<String> = thread::scope(|s| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let (store, start) = (&store, &start);
                    s.spawn(move || {
                        start.wait();
                        let camera =
                            SavedCamera::new("Camera", &format!("rtsp://10.0.0.{i}/stream"));
                        store.add(camera, &nothing_taken).unwrap().id
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: HashSet<_> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), CLIENTS, "{ids:?}");
        let reopened = Store::open(dir.path());
        assert_eq!(reopened.problem(), None);
        let saved = reopened.list();
        assert_eq!(saved.len(), CLIENTS);
        let saved_ids: HashSet<_> = saved.iter().map(|c| c.id.clone()).collect();
        assert_eq!(saved_ids, unique);
        let mut wanted: HashSet<_> = (2..=CLIENTS).map(|n| format!("camera-{n}")).collect();
        wanted.insert("camera".into());
        assert_eq!(saved_ids, wanted);
        let urls: HashSet<_> = saved.iter().map(|c| c.url.clone()).collect();
        assert_eq!(urls.len(), CLIENTS);
    }

    // ---- kill -9 while saving ------------------------------------------------------------

    /// Tells [`crash_writer`] it runs as the child of [`kill_9_while_saving_loses_nothing`].
    const CRASH_DIR_VAR: &str = "CAMHUB_TEST_STORE_CRASH_DIR";

    /// The n-th camera the writer saves; big enough that each save writes many pages.
    fn crash_camera(n: usize) -> SavedCamera {
        let mut c = SavedCamera::new(
            &format!("Camera {n} {}", "x".repeat(300)),
            &format!("rtsp://cam{n}.lan:554/stream1"),
        );
        c.id = format!("cam-{n}");
        c.password = Some(format!("pw-{n}"));
        c
    }

    /// The child: saves camera after camera, printing "saved N" once each is durable,
    /// until it is killed. Does nothing when run without `CRASH_DIR_VAR`.
    #[test]
    #[ignore = "run by kill_9_while_saving_loses_nothing as its child"]
    fn crash_writer() {
        let Some(dir) = std::env::var_os(CRASH_DIR_VAR) else {
            return;
        };
        let store = Store::open(Path::new(&dir));
        assert_eq!(store.problem(), None);
        let deadline = Instant::now() + Duration::from_secs(60);
        for n in 1..=5000 {
            store.add(crash_camera(n), &nothing_taken).unwrap();
            println!("saved {n}");
            if Instant::now() > deadline {
                break;
            }
        }
    }

    #[test]
    fn kill_9_while_saving_loses_nothing() {
        let exe = std::env::current_exe().unwrap();
        let random = RandomState::new();
        for round in 0..20u64 {
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(&exe)
                .args(["store::tests::crash_writer", "--exact", "--ignored"])
                .args(["--nocapture", "--test-threads=1"])
                .env(CRASH_DIR_VAR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (first_tx, first) = mpsc::channel();
            let reader = thread::spawn(move || {
                let mut acked = 0;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("saved ") {
                        acked = n.parse().unwrap();
                        let _ = first_tx.send(());
                    }
                }
                acked
            });
            // Once saving has begun, kill it at a random moment.
            if first.recv_timeout(Duration::from_secs(60)).is_err() {
                let _ = child.kill();
                panic!(
                    "round {round}: the writer saved nothing: {:?}",
                    child.wait()
                );
            }
            let delay_us = random.hash_one(round) % 300_000;
            thread::sleep(Duration::from_micros(delay_us));
            child.kill().unwrap();
            let status = child.wait().unwrap();
            let acked = reader.join().unwrap();
            assert_eq!(
                status.signal(),
                Some(9),
                "round {round}: the writer stopped before the kill: {status}"
            );

            let store = Store::open(dir.path());
            assert_eq!(store.problem(), None, "round {round}: a torn file");
            let saved = store.list();
            assert!(
                saved.len() == acked || saved.len() == acked + 1,
                "round {round}: {} cameras in the file, {acked} acknowledged",
                saved.len()
            );
            for (i, camera) in saved.iter().enumerate() {
                assert_eq!(*camera, crash_camera(i + 1), "round {round}");
            }
            // Saving works after the crash, over any `.tmp` it left.
            store
                .add(SavedCamera::new("after", "pattern:"), &nothing_taken)
                .unwrap();
            assert!(!dir.path().join("cameras.toml.tmp").exists());
            assert_eq!(Store::open(dir.path()).list().len(), saved.len() + 1);
            eprintln!(
                "round {round}: {acked} acknowledged, {} in the file",
                saved.len()
            );
        }
    }
}
