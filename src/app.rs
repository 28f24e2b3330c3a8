//! Wiring: binds the listener, starts one supervised source thread per stream and the
//! HTTP executor threads, and stops them all on shutdown. Used by `main.rs` and by the
//! integration tests (which start it on port 0).

use crate::admin::Admin;
use crate::config::{default_pattern_stream, Config, StreamConfig};
use crate::error::{Error, Result};
use crate::http;
use crate::hub::Hub;
use crate::mdns::{self, Mdns};
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::streams::{Origin, Streams};
use smol::Executor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Threads running the HTTP executor. Serving is cheap (frames are shared, not copied);
/// two threads keep one slow handler from delaying the rest.
const HTTP_THREADS: usize = 2;
/// After shutdown, how long executor threads keep running so every connection task sees
/// the signal and closes its socket.
const HTTP_DRAIN: Duration = Duration::from_millis(100);

/// A running camhub.
pub struct App {
    hub: Arc<Hub>,
    streams: Arc<Streams>,
    mdns: Option<Mdns>,
    local_addr: SocketAddr,
    shutdown: Shutdown,
    threads: Vec<JoinHandle<()>>,
}

impl App {
    /// Binds `config.listen` and starts everything. Returns once the listener is bound
    /// and every source thread is started.
    pub fn start(config: &Config, shutdown: Shutdown) -> Result<App> {
        let listener = http::bind(config.listen)
            .map_err(|e| Error::io(format!("cannot listen on {}", config.listen), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        let listener = smol::net::TcpListener::try_from(listener)
            .map_err(|e| Error::io("registering the listener", e))?;

        // What runs: the config file's streams, then the cameras found (only when the
        // file lists none), else the test pattern, so there is always something to see.
        let mut wanted: Vec<(Origin, StreamConfig)> = config
            .streams
            .iter()
            .map(|s| (Origin::File, s.clone()))
            .collect();
        // Cameras saved from the page (an id the config file uses is skipped, loudly).
        let store = config
            .state_dir
            .as_deref()
            .map(|dir| Arc::new(Store::open(dir)));
        for camera in store.iter().flat_map(|s| s.list()) {
            match camera.stream_config() {
                Ok(c) if wanted.iter().any(|(_, w)| w.id == c.id) => tracing::warn!(
                    stream = %c.id,
                    "a saved camera's id is used in the config file; the file's stream wins"
                ),
                Ok(c) => wanted.push((Origin::Saved, c)),
                Err(e) => tracing::warn!("a saved camera cannot run: {e}"),
            }
        }
        if config.discover {
            let mut found = crate::discover::startup_streams();
            found.retain(|c| !wanted.iter().any(|(_, w)| w.id == c.id));
            wanted.extend(found.into_iter().map(|s| (Origin::Discovered, s)));
        }
        if wanted.is_empty() {
            wanted.push((Origin::Builtin, default_pattern_stream()));
        }
        let configs: Vec<StreamConfig> = wanted.iter().map(|(_, c)| c.clone()).collect();
        let hub = Arc::new(Hub::new(&configs));
        let streams = Streams::new(hub.clone(), shutdown.clone());
        for (origin, stream_config) in wanted {
            streams.start_existing(origin, stream_config)?;
        }
        let mut threads = Vec::new();

        if config.discover {
            // Nothing configured: cameras plugged in while running are added as well.
            let thread = crate::discover::spawn_hotplug(streams.clone(), shutdown.clone())
                .map_err(|e| Error::io("spawning the camera discovery thread", e))?;
            threads.push(thread);
        }

        if let Some(thread) = crate::leds::spawn(config, hub.clone(), shutdown.clone())
            .map_err(|e| Error::io("spawning LED thread", e))?
        {
            threads.push(thread);
        }

        // Serving matters more than being found: without mDNS the box still works by IP.
        let mdns = mdns::start(config, local_addr.port(), hub.clone(), shutdown.clone())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "mDNS unavailable; reach camhub by its IP address");
                Mdns::disabled(config)
            });
        if mdns.is_enabled() {
            tracing::info!(
                "announced on mDNS as http://{}.local:{}/",
                mdns.name_in_use(),
                local_addr.port()
            );
        }

        let executor = Arc::new(Executor::new());
        let ctx = Arc::new(http::Ctx {
            hub: hub.clone(),
            name: config.name.clone(),
            send_timeout: config.send_timeout,
            max_connections: config.max_connections,
            max_viewers: config.max_viewers,
            mdns: mdns.info(),
            auth: config.auth.clone(),
            streams: streams.clone(),
            store,
            admin: Arc::new(Admin::open(
                config.admin_password_hash.clone(),
                config.state_dir.clone(),
            )),
            shutdown: shutdown.clone(),
            // No multicast at all without mDNS (`--no-mdns`), WS-Discovery included.
            discovery_enabled: config.discovery_enabled && config.mdns_enabled,
            discovery: Default::default(),
        });
        executor
            .spawn(http::serve(
                listener,
                ctx,
                shutdown.clone(),
                executor.clone(),
            ))
            .detach();
        for i in 0..HTTP_THREADS {
            let executor = executor.clone();
            let shutdown = shutdown.clone();
            let thread = std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    smol::block_on(executor.run(async {
                        shutdown.wait().await;
                        async_io::Timer::after(HTTP_DRAIN).await;
                    }))
                })
                .map_err(|e| Error::io("spawning HTTP thread", e))?;
            threads.push(thread);
        }

        Ok(App {
            hub,
            streams,
            mdns: Some(mdns),
            local_addr,
            shutdown,
            threads,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Triggers shutdown and waits up to `timeout` for every thread. Returns false if
    /// some thread was still running at the deadline (the caller exits anyway).
    pub fn stop(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.shutdown.trigger();
        // Goodbyes first, so phones drop the box at once instead of at TTL expiry.
        if let Some(mdns) = self.mdns.take() {
            mdns.stop();
        }
        self.streams.join(deadline) && crate::streams::join_until(self.threads, deadline)
    }

    /// The live set of streams (add, replace, remove while running).
    pub fn streams(&self) -> &Arc<Streams> {
        &self.streams
    }
}
