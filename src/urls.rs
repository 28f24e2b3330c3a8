//! The grammar of stream URLs that more than one module needs, with no dependency on the
//! rest of camhub: sizes (`640x480`) and the test pattern's options. Config validation,
//! the hub and the pattern source all use it, so none of them imports another for it.

use std::ops::RangeInclusive;

/// Parses "640x480".
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size {s:?} is not WIDTHxHEIGHT"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("size {s:?}: bad width"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("size {s:?}: bad height"))?;
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        return Err(format!("size {s:?}: width and height must be 16..=4096"));
    }
    Ok((w, h))
}

/// Frame size when neither the URL nor the stream's `size` sets one.
pub const DEFAULT_SIZE: (u32, u32) = (640, 480);
/// Frame rate when neither the URL nor the stream's `fps` sets one.
pub const DEFAULT_FPS: u32 = 15;
/// Frame rates the pattern accepts (the same bounds as a stream's `fps`).
pub const FPS_RANGE: RangeInclusive<u32> = 1..=120;

/// The settings of a test pattern, from its URL: checked by config validation without
/// building a source, used by the pattern source and for placeholder sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternOptions {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl PatternOptions {
    /// Parses `pattern:` or `pattern:?size=WxH&fps=N`, with defaults for what is not
    /// given. The error names the offending option and becomes a config error as is.
    pub fn parse(url: &str) -> Result<PatternOptions, String> {
        let given = UrlOptions::parse(url)?;
        let (width, height) = given.size.unwrap_or(DEFAULT_SIZE);
        Ok(PatternOptions {
            width,
            height,
            fps: given.fps.unwrap_or(DEFAULT_FPS),
        })
    }

    /// Rejects what the source cannot run with. Options from [`PatternOptions::parse`]
    /// always pass; this guards hints and options built in code.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !FPS_RANGE.contains(&self.fps) {
            return Err(format!("fps {} must be from 1 to 120", self.fps));
        }
        parse_size(&format!("{}x{}", self.width, self.height))?;
        Ok(())
    }
}

/// What the URL itself sets (None: not given), so that stream hints fill only the gaps.
#[derive(Debug, Default)]
pub(crate) struct UrlOptions {
    pub(crate) size: Option<(u32, u32)>,
    pub(crate) fps: Option<u32>,
}

impl UrlOptions {
    pub(crate) fn parse(url: &str) -> Result<UrlOptions, String> {
        const SCHEME: &str = "pattern:";
        let rest = match url.get(..SCHEME.len()) {
            Some(scheme) if scheme.eq_ignore_ascii_case(SCHEME) => &url[SCHEME.len()..],
            _ => return Err(format!("{url:?} is not a pattern: URL")),
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let query = match rest {
            "" => "",
            rest => rest.strip_prefix('?').ok_or_else(|| {
                format!(
                    "unexpected {rest:?} after \"pattern:\"; options go in a query, \
                     e.g. pattern:?size=640x480&fps=15"
                )
            })?,
        };
        let mut given = UrlOptions::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "size" => {
                    if given.size.is_some() {
                        return Err("pattern option \"size\" is given twice".into());
                    }
                    let size = parse_size(value)
                        .map_err(|e| format!("pattern option \"size\": {e} (e.g. size=640x480)"))?;
                    given.size = Some(size);
                }
                "fps" => {
                    if given.fps.is_some() {
                        return Err("pattern option \"fps\" is given twice".into());
                    }
                    let fps = value
                        .parse()
                        .ok()
                        .filter(|fps| FPS_RANGE.contains(fps))
                        .ok_or_else(|| {
                            format!(
                                "pattern option \"fps\": {value:?} is not a whole number \
                                 from 1 to 120"
                            )
                        })?;
                    given.fps = Some(fps);
                }
                other => {
                    return Err(format!(
                        "unknown pattern option {other:?} (known options: size, fps)"
                    ))
                }
            }
        }
        Ok(given)
    }
}
