//! An image size as OpenAI writes it (`WxH`), one type for the browser and the server.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    /// ComfyUI's own ceiling for image and latent sides.
    pub const MAX_SIDE: u32 = 16384;

    pub const fn new(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeParseError(String);

impl fmt::Display for SizeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid size {:?}: expected WxH with each side 1..=16384, e.g. 1024x1024",
            self.0
        )
    }
}

impl std::error::Error for SizeParseError {}

impl FromStr for Size {
    type Err = SizeParseError;

    fn from_str(s: &str) -> Result<Size, SizeParseError> {
        let err = || SizeParseError(s.to_owned());
        let (w, h) = s.split_once('x').ok_or_else(err)?;
        // u32::from_str would accept a leading '+'; sizes are plain digits only.
        let side = |t: &str| -> Option<u32> {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse::<u32>()
                .ok()
                .filter(|v| (1..=Size::MAX_SIDE).contains(v))
        };
        match (side(w), side(h)) {
            (Some(width), Some(height)) => Ok(Size { width, height }),
            _ => Err(err()),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_strictly_and_round_trip() {
        assert_eq!("1024x768".parse(), Ok(Size::new(1024, 768)));
        for bad in [
            "", "x", "1024", "+1x1", "0x5", "16385x1", "1024X768", "12x12x", "000001x1",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&Size::new(64, 32)).unwrap();
        assert_eq!(json, "\"64x32\"");
        assert_eq!(
            serde_json::from_str::<Size>(&json).unwrap(),
            Size::new(64, 32)
        );
        assert_eq!(Size::new(16384, 10000).pixels(), 163_840_000);
    }
}
