//! Finding local cameras: which `/dev/video*` nodes are real capture devices, what to call
//! them, and (when no streams are configured) a thread that adds cameras plugged in
//! while camhub runs. `--list-devices` prints what it sees.
//!
//! Only queries devices (VIDIOC_QUERYCAP and format enumeration); capturing is
//! `source/v4l2.rs`'s job.

use crate::config::StreamConfig;
use crate::hub::Hub;
use crate::shutdown::Shutdown;
use crate::source::v4l2::{self, fourcc_str, ModeOption, PixelFormat};
use crate::streams::{Origin, Streams};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where device nodes live.
pub const DEV_DIR: &str = "/dev";
/// udev's stable names for V4L2 devices (the same camera keeps its name whatever
/// /dev/videoN it gets, e.g. after being replugged into another port).
pub const BY_ID_DIR: &str = "/dev/v4l/by-id";
/// How often the hot-plug thread looks for new devices. Polling `/dev` is a directory
/// read; only nodes not seen before are opened.
pub const HOTPLUG_INTERVAL: Duration = Duration::from_secs(2);

/// What VIDIOC_QUERYCAP and VIDIOC_ENUM_FMT say about one node.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// `/dev/videoN`.
    pub node: PathBuf,
    /// The `/dev/v4l/by-id/…` link to it, if udev made one.
    pub by_id: Option<PathBuf>,
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// `device_caps` of VIDIOC_QUERYCAP (the node's own capabilities).
    pub device_caps: u32,
    /// Every pixel format the node offers.
    pub formats: Vec<[u8; 4]>,
    /// Sizes and rates in the formats camhub reads.
    pub modes: Vec<ModeOption>,
}

impl NodeInfo {
    /// The path a stream should open: the stable by-id link when there is one.
    pub fn stream_path(&self) -> &Path {
        self.by_id.as_deref().unwrap_or(&self.node)
    }
}

/// Why a node is not used as a camera, or `None` when it is one.
pub fn not_a_camera(info: &NodeInfo) -> Option<&'static str> {
    if !v4l2::is_video_capture(info.device_caps) {
        return Some("not a video capture node (output, metadata or codec)");
    }
    if v4l2::NOT_CAMERA_DRIVERS.contains(&info.driver.as_str()) {
        return Some("a codec/ISP block, not a camera");
    }
    if !info
        .formats
        .iter()
        .any(|f| PixelFormat::from_fourcc(f).is_some())
    {
        return Some("offers no pixel format camhub reads (raw Bayer sensors need libcamera)");
    }
    None
}

/// A URL-safe id from a card name: lowercase letters, digits and single dashes
/// ("HD Pro Webcam C920" → "hd-pro-webcam-c920"), at most 48 characters, "camera" if
/// nothing is left.
pub fn slug(card: &str) -> String {
    let mut out = String::new();
    for c in card.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(48);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "camera".to_string()
    } else {
        out
    }
}

/// `base`, or `base-2`, `base-3`, … whichever is not taken yet.
pub fn unique_id(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|id| !taken.contains(id))
        .expect("some suffix is free")
}

/// The stream for a discovered camera, with an id not in `taken` (which it is added to).
pub fn stream_config(info: &NodeInfo, taken: &mut HashSet<String>) -> StreamConfig {
    let id = unique_id(&slug(&info.card), taken);
    taken.insert(id.clone());
    let url = format!("v4l2://{}", info.stream_path().display());
    let mut config = StreamConfig::new(&id, &url).expect("discovered id and URL are valid");
    config.name = if info.card.trim().is_empty() {
        id
    } else {
        info.card.trim().to_string()
    };
    config
}

/// `/dev/videoN` nodes in `dir`, by number.
pub fn video_nodes(dir: &Path) -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// Node → its by-id link (the first by name, so `…-video-index0` wins).
fn by_id_links(dir: &Path) -> HashMap<PathBuf, PathBuf> {
    let mut links: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    links.sort();
    let mut map = HashMap::new();
    for link in links {
        if let Ok(node) = std::fs::canonicalize(&link) {
            map.entry(node).or_insert(link);
        }
    }
    map
}

/// Opens `node` and asks what it is. Never panics (the v4l crate unwraps card names
/// as UTF-8).
pub fn probe(node: &Path) -> io::Result<NodeInfo> {
    catch_unwind(AssertUnwindSafe(|| {
        let device = v4l::Device::with_path(node)?;
        let caps = device.query_caps()?;
        let mut info = NodeInfo {
            node: node.to_path_buf(),
            by_id: None,
            driver: caps.driver,
            card: caps.card,
            bus: caps.bus,
            device_caps: caps.capabilities.bits(),
            formats: Vec::new(),
            modes: Vec::new(),
        };
        if v4l2::is_video_capture(info.device_caps) {
            let (modes, formats) = v4l2::query_modes(&device, None)?;
            info.modes = modes;
            info.formats = formats;
        }
        Ok(info)
    }))
    .unwrap_or_else(|_| {
        Err(io::Error::other(format!(
            "{}: the device answered nonsense",
            node.display()
        )))
    })
}

/// Every node under `dev_dir` with what it is (or why it could not be opened).
pub fn scan(dev_dir: &Path, by_id_dir: &Path) -> Vec<(PathBuf, io::Result<NodeInfo>)> {
    let links = by_id_links(by_id_dir);
    video_nodes(dev_dir)
        .into_iter()
        .map(|node| {
            let info = probe_linked(&node, &links);
            (node, info)
        })
        .collect()
}

/// [`probe`], plus the node's by-id link from `links`.
fn probe_linked(node: &Path, links: &HashMap<PathBuf, PathBuf>) -> io::Result<NodeInfo> {
    let mut info = probe(node)?;
    let canonical = std::fs::canonicalize(node).unwrap_or_else(|_| node.to_path_buf());
    info.by_id = links.get(&canonical).cloned();
    Ok(info)
}

/// The streams for every camera found now (empty when there is none).
pub fn startup_streams() -> Vec<StreamConfig> {
    let mut taken = HashSet::new();
    scan(Path::new(DEV_DIR), Path::new(BY_ID_DIR))
        .into_iter()
        .filter_map(|(_, info)| info.ok())
        .filter(|info| not_a_camera(info).is_none())
        .map(|info| stream_config(&info, &mut taken))
        .collect()
}

/// The `--list-devices` report: every video node, whether camhub uses it, and its
/// formats with sizes and rates.
pub fn list_devices() -> String {
    render_list(&scan(Path::new(DEV_DIR), Path::new(BY_ID_DIR)))
}

fn render_list(found: &[(PathBuf, io::Result<NodeInfo>)]) -> String {
    let mut out = String::new();
    if found.is_empty() {
        out.push_str("no /dev/video* devices found\n");
        return out;
    }
    let mut taken = HashSet::new();
    for (node, info) in found {
        let info = match info {
            Ok(info) => info,
            Err(e) => {
                let _ = writeln!(out, "{}: cannot open: {e}", node.display());
                continue;
            }
        };
        let _ = writeln!(
            out,
            "{}: {:?} (driver {}, {})",
            node.display(),
            info.card,
            info.driver,
            info.bus
        );
        if let Some(link) = &info.by_id {
            let _ = writeln!(out, "  path: {}", link.display());
        }
        match not_a_camera(info) {
            Some(why) => {
                let _ = writeln!(out, "  skipped: {why}");
            }
            None => {
                let config = stream_config(info, &mut taken);
                let _ = writeln!(out, "  camera: id {} url {}", config.id, config.url);
            }
        }
        if !info.formats.is_empty() {
            let names: Vec<String> = info.formats.iter().map(fourcc_str).collect();
            let _ = writeln!(out, "  formats: {}", names.join(" "));
        }
        let mut by_format: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for mode in &info.modes {
            let mut rates: Vec<f64> = mode
                .intervals
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|&(n, d)| f64::from(d) / f64::from(n))
                .collect();
            rates.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
            let rate = rates
                .first()
                .map(|r| format!("@{r:.0}"))
                .unwrap_or_default();
            by_format
                .entry(fourcc_str(&mode.fourcc))
                .or_default()
                .push(format!("{}x{}{rate}", mode.width, mode.height));
        }
        for (format, sizes) in by_format {
            let _ = writeln!(out, "  {format}: {}", sizes.join(" "));
        }
        if not_a_camera(info).is_none() {
            if let Some(mode) = v4l2::choose_mode(&info.modes, None, None) {
                let fps = mode
                    .interval
                    .map(|(n, d)| format!(" at {:.0} fps", f64::from(d) / f64::from(n.max(1))))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  would capture: {} {}x{}{fps}",
                    fourcc_str(&mode.fourcc),
                    mode.width,
                    mode.height
                );
            }
        }
    }
    out
}

/// Starts the thread (named `discover`) that adds cameras plugged in after startup to
/// the live set of streams (each runs on its own supervised thread, stopped with it).
/// Used only when no streams are configured.
pub fn spawn_hotplug(streams: Arc<Streams>, shutdown: Shutdown) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("discover".into())
        .spawn(move || {
            let hub = streams.hub().clone();
            let mut watcher = Watcher::new(&hub);
            while !shutdown.sleep(HOTPLUG_INTERVAL) {
                let nodes = video_nodes(Path::new(DEV_DIR));
                let probe = |node: &Path| probe_linked(node, &by_id_links(Path::new(BY_ID_DIR)));
                for config in watcher.poll(&hub, &nodes, probe) {
                    tracing::info!(stream = %config.id, "camera plugged in");
                    if let Err(e) = streams.add(Origin::Discovered, config) {
                        tracing::warn!(error = %e, "cannot start the camera's stream");
                    }
                }
            }
        })
}

/// The hot-plug bookkeeping, apart from the thread so it is tested without devices.
struct Watcher {
    /// Nodes that belong to a stream (which reopens them itself when they come back).
    known: HashSet<PathBuf>,
    /// Nodes that are not cameras, until they disappear.
    ignored: HashSet<PathBuf>,
    /// Nodes seen once: probed on the next poll, so udev has made the by-id link.
    pending: HashSet<PathBuf>,
}

impl Watcher {
    fn new(hub: &Hub) -> Watcher {
        let mut known = HashSet::new();
        for stream in hub.streams().iter() {
            if let Some(path) = stream.url_redacted.strip_prefix("v4l2://") {
                known.insert(PathBuf::from(path));
                if let Ok(node) = std::fs::canonicalize(path) {
                    known.insert(node);
                }
            }
        }
        Watcher {
            known,
            ignored: HashSet::new(),
            pending: HashSet::new(),
        }
    }

    /// Looks at the nodes present now; returns streams for cameras that are new.
    fn poll(
        &mut self,
        hub: &Hub,
        nodes: &[PathBuf],
        probe: impl Fn(&Path) -> io::Result<NodeInfo>,
    ) -> Vec<StreamConfig> {
        let present: HashSet<&PathBuf> = nodes.iter().collect();
        self.ignored.retain(|n| present.contains(n));
        self.pending.retain(|n| present.contains(n));
        let mut taken: HashSet<String> = hub.streams().iter().map(|s| s.id.clone()).collect();
        let mut new = Vec::new();
        for node in nodes {
            if self.known.contains(node) || self.ignored.contains(node) {
                continue;
            }
            if self.pending.insert(node.clone()) {
                continue;
            }
            // Not openable yet (permissions settling, device busy): try again next time.
            let Ok(info) = probe(node) else { continue };
            self.pending.remove(node);
            if not_a_camera(&info).is_some() {
                self.ignored.insert(node.clone());
                continue;
            }
            // A stream's camera back under a new node number keeps its stream.
            let is_new = !self.known.contains(info.stream_path());
            self.known.insert(node.clone());
            self.known.insert(info.stream_path().to_path_buf());
            if is_new {
                new.push(stream_config(&info, &mut taken));
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceKind;

    const CAPTURE: u32 = 0x0400_0001;
    const META: u32 = 0x0480_0000;
    const M2M: u32 = 0x0400_8000;

    fn node(n: u32, driver: &str, card: &str, caps: u32, formats: &[&[u8; 4]]) -> NodeInfo {
        NodeInfo {
            node: PathBuf::from(format!("/dev/video{n}")),
            driver: driver.into(),
            card: card.into(),
            bus: "usb-0000:01:00.0-1.2".into(),
            device_caps: caps,
            formats: formats.iter().map(|f| **f).collect(),
            ..NodeInfo::default()
        }
    }

    #[test]
    fn only_real_capture_nodes_are_cameras() {
        let webcam = node(
            0,
            "uvcvideo",
            "HD Pro Webcam C920",
            CAPTURE,
            &[b"YUYV", b"MJPG"],
        );
        assert_eq!(not_a_camera(&webcam), None);
        let uvc_meta = node(1, "uvcvideo", "HD Pro Webcam C920", META, &[]);
        assert!(not_a_camera(&uvc_meta).is_some());
        let codec = node(10, "bcm2835-codec", "bcm2835-codec-decode", M2M, &[b"NV12"]);
        assert!(not_a_camera(&codec).is_some());
        // bcm2835-isp capture nodes claim plain VIDEO_CAPTURE.
        let isp = node(
            14,
            "bcm2835-isp",
            "bcm2835-isp-capture0",
            CAPTURE,
            &[b"YUYV"],
        );
        assert!(not_a_camera(&isp).is_some());
        let unicam = node(0, "unicam", "unicam", CAPTURE, &[b"pRAA", b"RG10"]);
        assert!(not_a_camera(&unicam).is_some());
        let vivid_out = node(1, "vivid", "vivid", 0x0400_0002, &[]);
        assert!(not_a_camera(&vivid_out).is_some());
        assert_eq!(
            not_a_camera(&node(0, "vivid", "vivid", CAPTURE, &[b"YUYV"])),
            None
        );
    }

    #[test]
    fn ids_are_url_safe_unique_and_named_after_the_card() {
        assert_eq!(slug("HD Pro Webcam C920"), "hd-pro-webcam-c920");
        assert_eq!(slug("UVC Camera (046d:0825)"), "uvc-camera-046d-0825");
        assert_eq!(slug("vivid"), "vivid");
        assert_eq!(slug("  --  "), "camera");
        assert_eq!(slug(&"x".repeat(100)).len(), 48);
        let mut taken = HashSet::new();
        let a = stream_config(&node(0, "vivid", "vivid", CAPTURE, &[b"YUYV"]), &mut taken);
        let b = stream_config(&node(2, "vivid", "vivid", CAPTURE, &[b"YUYV"]), &mut taken);
        assert_eq!((a.id.as_str(), b.id.as_str()), ("vivid", "vivid-2"));
        assert_eq!(a.name, "vivid");
        assert_eq!(a.url, "v4l2:///dev/video0");
        assert_eq!(a.kind, SourceKind::V4l2);
        let mut usb = node(0, "uvcvideo", "USB Webcam", CAPTURE, &[b"MJPG"]);
        usb.by_id = Some("/dev/v4l/by-id/usb-Foo_USB_Webcam-video-index0".into());
        let c = stream_config(&usb, &mut taken);
        assert_eq!(
            (c.id.as_str(), c.url.as_str()),
            (
                "usb-webcam",
                "v4l2:///dev/v4l/by-id/usb-Foo_USB_Webcam-video-index0"
            )
        );
    }

    #[test]
    fn nodes_are_listed_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["video10", "video2", "video0", "vbi0", "videox", "media0"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let nodes: Vec<String> = video_nodes(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(nodes, ["video0", "video2", "video10"]);
        assert!(video_nodes(Path::new("/nonexistent-camhub")).is_empty());
    }

    #[test]
    fn hotplug_adds_new_cameras_once_and_ignores_the_rest() {
        let hub = Hub::new(&[StreamConfig::new("vivid", "v4l2:///dev/video0").unwrap()]);
        let mut w = Watcher::new(&hub);
        let probe = |p: &Path| -> io::Result<NodeInfo> {
            let n: u32 = p.to_str().unwrap()["/dev/video".len()..].parse().unwrap();
            match n {
                1 => Ok(node(1, "vivid", "vivid", 0x0400_0002, &[])),
                3 => Ok(node(3, "uvcvideo", "USB Webcam", CAPTURE, &[b"MJPG"])),
                5 => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
                _ => Ok(node(n, "vivid", "vivid", CAPTURE, &[b"YUYV"])),
            }
        };
        let nodes = |ns: &[u32]| -> Vec<PathBuf> {
            ns.iter()
                .map(|n| PathBuf::from(format!("/dev/video{n}")))
                .collect()
        };
        // First sighting waits a round (udev links), the known node is never probed.
        assert!(w.poll(&hub, &nodes(&[0, 1]), probe).is_empty());
        assert!(w.poll(&hub, &nodes(&[0, 1]), probe).is_empty());
        assert!(w.ignored.contains(Path::new("/dev/video1")));
        assert!(w.poll(&hub, &nodes(&[0, 1, 2, 3, 5]), probe).is_empty());
        let added = w.poll(&hub, &nodes(&[0, 1, 2, 3, 5]), probe);
        let ids: Vec<&str> = added.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["vivid-2", "usb-webcam"],
            "unique against the hub's ids"
        );
        for c in &added {
            hub.add(c).unwrap();
        }
        // Added once; the unopenable node keeps being retried without being added.
        assert!(w.poll(&hub, &nodes(&[0, 1, 2, 3, 5]), probe).is_empty());
        // Unplugged and replugged under the same node: the stream reopens it itself.
        assert!(w.poll(&hub, &nodes(&[0, 1]), probe).is_empty());
        assert!(w.poll(&hub, &nodes(&[0, 1, 3]), probe).is_empty());
        assert!(w.poll(&hub, &nodes(&[0, 1, 3]), probe).is_empty());
        assert_eq!(hub.streams().len(), 3);
    }

    #[test]
    fn a_camera_replugged_under_a_new_node_keeps_its_stream() {
        let link = "/dev/v4l/by-id/usb-Foo_USB_Webcam-video-index0";
        let hub = Hub::new(&[StreamConfig::new("usb-webcam", &format!("v4l2://{link}")).unwrap()]);
        let mut w = Watcher::new(&hub);
        let probe = |p: &Path| -> io::Result<NodeInfo> {
            let mut info = node(4, "uvcvideo", "USB Webcam", CAPTURE, &[b"MJPG"]);
            info.node = p.to_path_buf();
            info.by_id = Some(link.into());
            Ok(info)
        };
        let nodes = [PathBuf::from("/dev/video4")];
        assert!(w.poll(&hub, &nodes, probe).is_empty());
        assert!(w.poll(&hub, &nodes, probe).is_empty());
        assert!(w.known.contains(Path::new("/dev/video4")));
    }

    #[test]
    fn list_renders_cameras_skipped_nodes_and_modes() {
        let mut cam = node(0, "vivid", "vivid", CAPTURE, &[b"YUYV", b"RGGB"]);
        cam.modes = vec![
            ModeOption {
                fourcc: *b"YUYV",
                width: 640,
                height: 480,
                intervals: vec![(1, 30), (1, 15)],
            },
            ModeOption {
                fourcc: *b"YUYV",
                width: 1280,
                height: 720,
                intervals: vec![(1, 15)],
            },
        ];
        let out = render_list(&[
            (cam.node.clone(), Ok(cam)),
            (
                "/dev/video1".into(),
                Ok(node(1, "vivid", "vivid", 0x0400_0002, &[])),
            ),
            ("/dev/video2".into(), Err(io::Error::other("busy"))),
        ]);
        assert!(
            out.contains("camera: id vivid url v4l2:///dev/video0"),
            "{out}"
        );
        assert!(out.contains("formats: YUYV RGGB"), "{out}");
        assert!(out.contains("YUYV: 640x480@30 1280x720@15"), "{out}");
        assert!(
            out.contains("would capture: YUYV 640x480 at 30 fps"),
            "{out}"
        );
        assert!(out.contains("/dev/video1: \"vivid\""), "{out}");
        assert!(out.contains("skipped: not a video capture node"), "{out}");
        assert!(out.contains("/dev/video2: cannot open: busy"), "{out}");
        assert_eq!(render_list(&[]), "no /dev/video* devices found\n");
    }
}
