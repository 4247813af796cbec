//! Progress as a person reads it: the lines a streamed chat shows in its thinking block while
//! the images are made.

use crate::comfy::JobUpdate;

/// Turns job updates into short lines. Sampler steps are thinned to about one line per tenth
/// of the run, so a 50-step job does not bury the reader in 50 lines.
pub struct ProgressText {
    images: usize,
    /// Per image, the tenth of the run last reported.
    reported: Vec<Option<u64>>,
}

impl ProgressText {
    pub fn new(images: usize) -> Self {
        ProgressText {
            images,
            reported: vec![None; images],
        }
    }

    /// The line for an update, if it is worth one (ending in a newline).
    pub fn line(&mut self, index: usize, update: &JobUpdate) -> Option<String> {
        let text = match update {
            JobUpdate::Queued { ahead: Some(n) } if *n > 0 => {
                format!("Queued in ComfyUI, {n} {} ahead.", plural(*n, "job"))
            }
            JobUpdate::Queued { .. } => "Queued in ComfyUI.".to_string(),
            JobUpdate::Started => "Started.".to_string(),
            JobUpdate::Progress { value, max, .. } if *max > 0 => {
                let tenth = value.saturating_mul(10) / max;
                let last = self.reported.get_mut(index)?;
                if *last == Some(tenth) && value != max {
                    return None;
                }
                *last = Some(tenth);
                format!("Step {value} of {max}.")
            }
            JobUpdate::Progress { .. } | JobUpdate::Node { .. } | JobUpdate::Preview { .. } => {
                return None;
            }
        };
        Some(if self.images > 1 {
            format!("Image {}: {text}\n", index + 1)
        } else {
            format!("{text}\n")
        })
    }
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(value: u64, max: u64) -> JobUpdate {
        JobUpdate::Progress {
            node: Some("3".into()),
            value,
            max,
        }
    }

    #[test]
    fn queue_and_start_are_told() {
        let mut p = ProgressText::new(1);
        assert_eq!(
            p.line(0, &JobUpdate::Queued { ahead: Some(2) }).as_deref(),
            Some("Queued in ComfyUI, 2 jobs ahead.\n")
        );
        assert_eq!(
            p.line(0, &JobUpdate::Queued { ahead: Some(0) }).as_deref(),
            Some("Queued in ComfyUI.\n")
        );
        assert_eq!(
            p.line(0, &JobUpdate::Started).as_deref(),
            Some("Started.\n")
        );
        assert_eq!(p.line(0, &JobUpdate::Node { node: "4".into() }), None);
    }

    #[test]
    fn short_runs_report_every_step_long_runs_every_tenth() {
        let mut p = ProgressText::new(1);
        let lines: Vec<_> = (1..=9).filter_map(|v| p.line(0, &step(v, 9))).collect();
        assert_eq!(lines.len(), 9);
        assert_eq!(lines[8], "Step 9 of 9.\n");

        let mut p = ProgressText::new(1);
        let lines: Vec<_> = (1..=50).filter_map(|v| p.line(0, &step(v, 50))).collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines.first().unwrap(), "Step 1 of 50.\n");
        assert_eq!(lines.last().unwrap(), "Step 50 of 50.\n");
    }

    #[test]
    fn several_images_are_told_apart() {
        let mut p = ProgressText::new(2);
        assert_eq!(
            p.line(1, &step(1, 4)).as_deref(),
            Some("Image 2: Step 1 of 4.\n")
        );
        assert_eq!(
            p.line(0, &step(1, 4)).as_deref(),
            Some("Image 1: Step 1 of 4.\n")
        );
        // A second sampler starting over is reported again.
        assert!(p.line(0, &step(4, 4)).is_some());
        assert!(p.line(0, &step(1, 4)).is_some());
    }
}
