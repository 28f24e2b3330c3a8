//! The live set of streams: the one owner that decides which streams run and reconciles
//! that with what runs. Three producers feed it: the config file (the administrator's,
//! read-only to camhub), the cameras saved from the page (`store.rs`), and USB cameras
//! found by hot-plug (`discover.rs`). Adding, replacing or removing one stream never
//! touches the others: each has its own stop signal (a child of the process's), its
//! source threads are stopped and joined off the caller's thread, and its hub entry is
//! swapped so its viewers end cleanly (`hub::Stream::close`).

use crate::config::StreamConfig;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use crate::supervise;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Who wants a stream to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `[[stream]]` in camhub.toml (or `--source`): changed only by editing the file.
    File,
    /// Saved from the page or the API, in the state file.
    Saved,
    /// A V4L2 camera found at startup or plugged in later.
    Discovered,
    /// The test pattern shown while there is no camera at all; it goes when the first
    /// camera is saved ([`Streams::retire_builtin`]).
    Builtin,
}

impl Origin {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Saved => "saved",
            Origin::Discovered => "discovered",
            Origin::Builtin => "builtin",
        }
    }
}

/// The running streams and who wants them.
pub struct Streams {
    hub: Arc<Hub>,
    shutdown: Shutdown,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Running>,
    /// Threads of stopped streams, still finishing (RTSP TEARDOWN, process groups being
    /// killed). Pruned as they end, joined at shutdown: bounded by what is stopping.
    stopping: Vec<JoinHandle<()>>,
}

struct Running {
    config: StreamConfig,
    origin: Origin,
    stop: Shutdown,
    threads: Vec<JoinHandle<()>>,
}

impl Streams {
    pub fn new(hub: Arc<Hub>, shutdown: Shutdown) -> Arc<Streams> {
        Arc::new(Streams {
            hub,
            shutdown,
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Starts `config` (from `origin`) as a new stream. Fails if its id is taken.
    pub fn add(&self, origin: Origin, config: StreamConfig) -> Result<()> {
        let mut inner = self.lock();
        if inner.running.contains_key(&config.id) || self.hub.get(&config.id).is_some() {
            return Err(taken(&config.id));
        }
        let stream = self.hub.replace(&config);
        let running = self.spawn(origin, config, stream)?;
        inner.running.insert(running.config.id.clone(), running);
        Ok(())
    }

    /// Adopts a stream already in the hub (created with it at startup) and starts it.
    pub fn start_existing(&self, origin: Origin, config: StreamConfig) -> Result<()> {
        let stream = self
            .hub
            .get(&config.id)
            .ok_or_else(|| Error::Source(format!("stream {:?} is not in the hub", config.id)))?;
        let running = self.spawn(origin, config, stream)?;
        self.lock()
            .running
            .insert(running.config.id.clone(), running);
        Ok(())
    }

    /// Restarts the stream with `config.id` with the new `config` (a new URL, say), in
    /// its place on the page; the other streams keep running untouched. Its viewers end
    /// and reconnect to the new one. Starts it if it was not running.
    pub fn replace(&self, origin: Origin, config: StreamConfig) -> Result<()> {
        let mut inner = self.lock();
        if let Some(old) = inner.running.remove(&config.id) {
            old.stop.trigger();
            inner.stopping.extend(old.threads);
        }
        let stream = self.hub.replace(&config);
        let running = self.spawn(origin, config, stream)?;
        inner.running.insert(running.config.id.clone(), running);
        inner.stopping.retain(|t| !t.is_finished());
        Ok(())
    }

    /// Stops the stream `id` and takes it off the page. Returns false if there is none.
    pub fn remove(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let running = inner.running.remove(id);
        let removed = self.hub.remove(id).is_some();
        if let Some(old) = running {
            old.stop.trigger();
            inner.stopping.extend(old.threads);
        }
        inner.stopping.retain(|t| !t.is_finished());
        removed
    }

    /// Removes the built-in test pattern, if it runs (a real camera was just added).
    pub fn retire_builtin(&self) {
        let builtin: Vec<String> = {
            let inner = self.lock();
            inner
                .running
                .iter()
                .filter(|(_, r)| r.origin == Origin::Builtin)
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in builtin {
            self.remove(&id);
        }
    }

    /// Who wants stream `id` (`None`: no such stream).
    pub fn origin(&self, id: &str) -> Option<Origin> {
        self.lock().running.get(id).map(|r| r.origin)
    }

    /// Every stream's configuration and origin, in page order.
    pub fn configs(&self) -> Vec<(Origin, StreamConfig)> {
        let inner = self.lock();
        self.hub
            .streams()
            .iter()
            .filter_map(|s| inner.running.get(&s.id))
            .map(|r| (r.origin, r.config.clone()))
            .collect()
    }

    /// Joins every source thread (after the process's shutdown was triggered); false if
    /// some thread was still running at `deadline`.
    pub fn join(&self, deadline: Instant) -> bool {
        let threads: Vec<JoinHandle<()>> = {
            let mut inner = self.lock();
            let mut all = std::mem::take(&mut inner.stopping);
            for (_, r) in inner.running.drain() {
                all.extend(r.threads);
            }
            all
        };
        join_until(threads, deadline)
    }

    fn spawn(
        &self,
        origin: Origin,
        config: StreamConfig,
        stream: Arc<crate::hub::Stream>,
    ) -> Result<Running> {
        tracing::info!(
            stream = %config.id,
            kind = stream.kind,
            url = %stream.url_redacted,
            origin = origin.as_str(),
            "starting source"
        );
        let stop = self.shutdown.child();
        let threads = supervise::spawn(config.clone(), stream, stop.clone())
            .map_err(|e| Error::io(format!("spawning thread for stream {}", config.id), e))?;
        Ok(Running {
            config,
            origin,
            stop,
            threads,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn taken(id: &str) -> Error {
    Error::Source(format!("stream id {id:?} is taken"))
}

/// Joins `threads`, waiting for each until `deadline`; false if one was still running.
pub fn join_until(threads: Vec<JoinHandle<()>>, deadline: Instant) -> bool {
    for thread in threads {
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                let name = thread.thread().name().unwrap_or("?").to_string();
                tracing::warn!(thread = %name, "did not stop in time");
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::State;

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn streams_are_added_replaced_and_removed_alone() {
        let shutdown = Shutdown::new();
        let hub = Arc::new(Hub::new(&[]));
        let streams = Streams::new(hub.clone(), shutdown.clone());
        let pattern = |id: &str, size: &str| {
            StreamConfig::new(id, &format!("pattern:?size={size}&fps=30")).unwrap()
        };
        streams.add(Origin::File, pattern("a", "160x120")).unwrap();
        streams.add(Origin::Saved, pattern("b", "160x120")).unwrap();
        assert!(streams.add(Origin::Saved, pattern("a", "160x120")).is_err());
        let a = hub.get("a").unwrap();
        assert!(wait_for(|| a.is_live() && hub.get("b").unwrap().is_live()));

        // Replace b: a new stream in its place, the old one closed; a untouched.
        let old_b = hub.get("b").unwrap();
        let _viewer = a.add_viewer();
        streams
            .replace(Origin::Saved, pattern("b", "320x240"))
            .unwrap();
        assert!(old_b.is_closed());
        assert_eq!(old_b.status().state, State::Disabled);
        let new_b = hub.get("b").unwrap();
        assert!(!Arc::ptr_eq(&old_b, &new_b));
        assert!(wait_for(
            || new_b.latest().is_some_and(|f| f.width == 320) || new_b.is_live()
        ));
        assert!(Arc::ptr_eq(&a, &hub.get("a").unwrap()), "a kept running");
        let ids: Vec<String> = hub.streams().iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, ["a", "b"], "b stays in its place");
        assert_eq!(streams.origin("b"), Some(Origin::Saved));

        assert!(streams.remove("b"));
        assert!(!streams.remove("b"));
        assert!(new_b.is_closed());
        assert!(hub.get("b").is_none());
        // a's frames never stopped.
        let before = a.frames();
        assert!(wait_for(|| a.frames() > before + 2));

        shutdown.trigger();
        assert!(streams.join(Instant::now() + Duration::from_secs(5)));
    }
}
