//! Placeholder until the http_mjpeg source lands (being written now).
use crate::config::StreamConfig;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

pub struct HttpMjpegSource;

impl HttpMjpegSource {
    pub fn from_config(
        _stream: &StreamConfig,
        _shutdown: &Shutdown,
    ) -> Result<Box<dyn super::Source>> {
        Err(Error::Permanent(
            "http_mjpeg sources are not supported by this build yet".into(),
        ))
    }
}
