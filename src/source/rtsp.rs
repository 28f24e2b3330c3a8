//! Placeholder until the rtsp source lands (being written now).
use crate::config::StreamConfig;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

pub struct RtspSource;

impl RtspSource {
    pub fn from_config(
        _stream: &StreamConfig,
        _shutdown: &Shutdown,
    ) -> Result<Box<dyn super::Source>> {
        Err(Error::Permanent(
            "rtsp sources are not supported by this build yet".into(),
        ))
    }
}
