//! A model's sizes as people choose them: grouped by how many pixels they make (and so how
//! long they take), each labelled with its shape.

use crate::api::size::Size;

/// Up to this many pixels a size is Small (512x768 and below), up to the next Medium (around
/// one megapixel), and above it Large.
const SMALL_MAX: u64 = 512 * 768;
const MEDIUM_MAX: u64 = 1024 * 1024 + 65536;

pub struct SizeGroup {
    pub label: &'static str,
    /// `(value, label)`, e.g. `("768x1344", "768x1344 (portrait 4:7)")`.
    pub sizes: Vec<(String, String)>,
}

/// The sizes in Small, Medium and Large groups (empty groups left out), smallest first.
pub fn groups(sizes: &[Size]) -> Vec<SizeGroup> {
    let mut sorted = sizes.to_vec();
    sorted.sort_by_key(|s| (s.pixels(), s.width));
    let mut out = vec![
        SizeGroup {
            label: "Small (fast)",
            sizes: Vec::new(),
        },
        SizeGroup {
            label: "Medium",
            sizes: Vec::new(),
        },
        SizeGroup {
            label: "Large (slow)",
            sizes: Vec::new(),
        },
    ];
    for size in sorted {
        let group = match size.pixels() {
            p if p <= SMALL_MAX => 0,
            p if p <= MEDIUM_MAX => 1,
            _ => 2,
        };
        out[group].sizes.push((
            size.to_string(),
            format!("{size} ({})", shape(size.width, size.height)),
        ));
    }
    out.retain(|g| !g.sizes.is_empty());
    out
}

fn shape(w: u32, h: u32) -> String {
    let d = gcd(w, h).max(1);
    let (a, b) = (w / d, h / d);
    match w.cmp(&h) {
        std::cmp::Ordering::Equal => "square".into(),
        std::cmp::Ordering::Greater => format!("landscape {a}:{b}"),
        std::cmp::Ordering::Less => format!("portrait {a}:{b}"),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_grouped_and_labelled() {
        let sizes: Vec<Size> = [
            "1024x1024",
            "512x512",
            "768x512",
            "1536x1536",
            "576x1024",
            "768x1344",
            "junk",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        let g = groups(&sizes);
        let labels: Vec<&str> = g.iter().map(|g| g.label).collect();
        assert_eq!(labels, ["Small (fast)", "Medium", "Large (slow)"]);
        let values = |i: usize| {
            g[i].sizes
                .iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(0), ["512x512", "768x512"]);
        assert_eq!(values(1), ["576x1024", "768x1344", "1024x1024"]);
        assert_eq!(values(2), ["1536x1536"]);
        assert_eq!(g[0].sizes[1].1, "768x512 (landscape 3:2)");
        assert_eq!(g[1].sizes[0].1, "576x1024 (portrait 9:16)");
        assert_eq!(g[1].sizes[2].1, "1024x1024 (square)");
        assert!(groups(&[]).is_empty());
    }
}
