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

/// Any size within limits, for models that take more than a fixed list (a sidecar's
/// `[size_rule]`): each side from `min` to `max` in steps of `multiple_of`, optionally bounded in
/// pixels and in how far from square it may be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeRule {
    pub min: u32,
    pub max: u32,
    #[serde(default = "one")]
    pub multiple_of: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pixels: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<u64>,
    /// The longer side over the shorter one, at most (3.0 allows 3:1 and 1:3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_aspect: Option<f64>,
}

fn one() -> u32 {
    1
}

impl SizeRule {
    pub fn allows(&self, s: Size) -> bool {
        let side = |v: u32| {
            (self.min..=self.max).contains(&v) && v.is_multiple_of(self.multiple_of.max(1))
        };
        let aspect = f64::from(s.width.max(s.height)) / f64::from(s.width.min(s.height).max(1));
        side(s.width)
            && side(s.height)
            && self.min_pixels.is_none_or(|p| s.pixels() >= p)
            && self.max_pixels.is_none_or(|p| s.pixels() <= p)
            && self.max_aspect.is_none_or(|a| aspect <= a + 1e-9)
    }

    /// What is wrong with the rule itself, such as limits that allow no size at all.
    pub fn problem(&self) -> Option<String> {
        if self.multiple_of == 0 {
            return Some("multiple_of must be at least 1".into());
        }
        if self.min == 0 || self.max > Size::MAX_SIDE || self.min > self.max {
            return Some(format!(
                "min and max must satisfy 1 <= min <= max <= {}",
                Size::MAX_SIDE
            ));
        }
        if self
            .max_aspect
            .is_some_and(|a| !(a >= 1.0 && a.is_finite()))
        {
            return Some("max_aspect must be 1 or more".into());
        }
        if self.fit(Size::new(self.max, self.max)).is_none() {
            return Some("no size satisfies every limit".into());
        }
        None
    }

    /// The allowed size closest to `want`: its shape (as far as the aspect limit lets it), at
    /// its pixel count within the limits, each side rounded to the multiple. `None` when the
    /// rule allows nothing of that shape.
    pub fn fit(&self, want: Size) -> Option<Size> {
        let m = f64::from(self.multiple_of.max(1));
        let mut aspect = f64::from(want.width) / f64::from(want.height.max(1));
        if let Some(limit) = self.max_aspect {
            aspect = aspect.clamp(1.0 / limit, limit);
        }
        let mut pixels = want.pixels() as f64;
        if let Some(p) = self.min_pixels {
            pixels = pixels.max(p as f64);
        }
        if let Some(p) = self.max_pixels {
            pixels = pixels.min(p as f64);
        }
        let (lo, hi) = (
            (f64::from(self.min) / m).ceil() * m,
            (f64::from(self.max) / m).floor() * m,
        );
        if lo > hi {
            return None;
        }
        let w = (pixels * aspect).sqrt();
        let h = w / aspect;
        // Whole multiples around the ideal, nearest first: the first allowed one wins.
        let around = |v: f64| {
            let base = (v / m).round();
            [0.0, -1.0, 1.0, -2.0, 2.0, -3.0, 3.0].map(|d| ((base + d) * m).clamp(lo, hi) as u32)
        };
        let mut best: Option<(f64, Size)> = None;
        for w in around(w) {
            for h in around(h) {
                let s = Size::new(w, h);
                if !self.allows(s) {
                    continue;
                }
                let off = ((f64::from(w) / f64::from(h)).ln() - aspect.ln()).abs()
                    + ((s.pixels() as f64).ln() - pixels.ln()).abs();
                if best.is_none_or(|(b, _)| off < b) {
                    best = Some((off, s));
                }
            }
        }
        best.map(|(_, s)| s)
    }
}

impl fmt::Display for SizeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "any WxH with each side from {} to {}",
            self.min, self.max
        )?;
        if self.multiple_of > 1 {
            write!(f, " in multiples of {}", self.multiple_of)?;
        }
        if let Some(p) = self.min_pixels {
            write!(f, ", at least {p} pixels")?;
        }
        if let Some(p) = self.max_pixels {
            write!(f, ", at most {p} pixels")?;
        }
        if let Some(a) = self.max_aspect {
            write!(f, ", no more than {a}:1 either way")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai_like() -> SizeRule {
        SizeRule {
            min: 256,
            max: 3840,
            multiple_of: 16,
            min_pixels: Some(655_360),
            max_pixels: Some(8_294_400),
            max_aspect: Some(3.0),
        }
    }

    #[test]
    fn a_rule_allows_what_it_says() {
        let rule = openai_like();
        assert!(rule.allows(Size::new(3840, 2160)));
        assert!(rule.allows(Size::new(1024, 1024)));
        assert!(!rule.allows(Size::new(1000, 1000)), "not a multiple of 16");
        assert!(!rule.allows(Size::new(3840, 3840)), "too many pixels");
        assert!(!rule.allows(Size::new(512, 512)), "too few pixels");
        assert!(!rule.allows(Size::new(3072, 768)), "4:1");
        assert_eq!(rule.problem(), None);
        assert_eq!(
            rule.to_string(),
            "any WxH with each side from 256 to 3840 in multiples of 16, at least 655360 pixels, \
             at most 8294400 pixels, no more than 3:1 either way"
        );
        let empty = SizeRule {
            max_pixels: Some(1000),
            ..openai_like()
        };
        assert!(empty.problem().is_some());
    }

    #[test]
    fn fit_keeps_the_shape_within_the_rule() {
        let rule = openai_like();
        assert_eq!(rule.fit(Size::new(1024, 1024)), Some(Size::new(1024, 1024)));
        // A photo's shape, rounded to multiples of 16.
        assert_eq!(rule.fit(Size::new(1000, 750)), Some(Size::new(1008, 752)));
        // Too big: scaled down to the pixel limit, shape kept.
        let big = rule.fit(Size::new(8000, 4500)).unwrap();
        assert!(rule.allows(big) && big.width > big.height, "{big}");
        // Too narrow: the aspect limit wins.
        let narrow = rule.fit(Size::new(4000, 500)).unwrap();
        assert!(rule.allows(narrow), "{narrow}");
        for w in (16..4000).step_by(97) {
            for h in (16..4000).step_by(89) {
                let s = rule.fit(Size::new(w, h)).unwrap();
                assert!(rule.allows(s), "{w}x{h} -> {s}");
            }
        }
    }

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
