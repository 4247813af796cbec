//! The simulator's input/output/temp directories, kept in memory so a demo or a
//! test run never touches the disk.

use std::collections::BTreeMap;

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Dir {
    Input,
    Output,
    Temp,
}

impl Dir {
    pub(crate) fn parse(s: &str) -> Option<Dir> {
        match s {
            "input" => Some(Dir::Input),
            "output" => Some(Dir::Output),
            "temp" => Some(Dir::Temp),
            _ => None,
        }
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Dir::Input => "input",
            Dir::Output => "output",
            Dir::Temp => "temp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FileKey {
    pub dir: Dir,
    /// Normalised: no leading/trailing `/`, no `.` or empty segments.
    pub subfolder: String,
    pub name: String,
}

impl FileKey {
    pub(crate) fn new(dir: Dir, subfolder: &str, name: &str) -> Option<FileKey> {
        Some(FileKey {
            dir,
            subfolder: normalize_subfolder(subfolder)?,
            name: name.to_string(),
        })
    }
}

/// Normalises a relative folder the way `os.path.normpath` + the commonpath check
/// do: `None` when it would escape its base directory.
pub(crate) fn normalize_subfolder(sub: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if sub.starts_with('/') {
        return None;
    }
    for seg in sub.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// `"name.png [output]"` → (`"name.png"`, Some(Output)), as `folder_paths.annotated_filepath`.
pub(crate) fn split_annotated(name: &str) -> (&str, Option<Dir>) {
    for (suffix, dir) in [
        (" [output]", Dir::Output),
        (" [input]", Dir::Input),
        (" [temp]", Dir::Temp),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            return (base, Some(dir));
        }
    }
    (name, None)
}

/// Resolves a LoadImage-style reference (`sub/name.png`, `name.png [output]`).
pub(crate) fn resolve_image_ref(reference: &str) -> Option<FileKey> {
    let (path, dir) = split_annotated(reference);
    let dir = dir.unwrap_or(Dir::Input);
    let (sub, name) = match path.rsplit_once('/') {
        Some((s, n)) => (s, n),
        None => ("", path),
    };
    if name.is_empty() || name == ".." || name == "." {
        return None;
    }
    FileKey::new(dir, sub, name)
}

#[derive(Default)]
pub(crate) struct Files {
    map: BTreeMap<FileKey, (Bytes, u64)>,
    clock: u64,
}

impl Files {
    pub(crate) fn get(&self, key: &FileKey) -> Option<Bytes> {
        self.map.get(key).map(|(b, _)| b.clone())
    }
    pub(crate) fn contains(&self, key: &FileKey) -> bool {
        self.map.contains_key(key)
    }
    pub(crate) fn put(&mut self, key: FileKey, bytes: Bytes) {
        self.clock += 1;
        self.map.insert(key, (bytes, self.clock));
    }
    pub(crate) fn remove(&mut self, key: &FileKey) {
        self.map.remove(key);
    }
    pub(crate) fn retain_dirs(&mut self, keep: impl Fn(Dir) -> bool) {
        self.map.retain(|k, _| keep(k.dir));
    }
    /// Top-level names in the input directory, what LoadImage offers as its combo.
    pub(crate) fn input_names(&self) -> Vec<String> {
        self.map
            .keys()
            .filter(|k| k.dir == Dir::Input && k.subfolder.is_empty())
            .map(|k| k.name.clone())
            .collect()
    }
    /// Every file of a directory, newest first (what `/internal/files/{dir}` lists).
    pub(crate) fn names_newest_first(&self, dir: Dir) -> Vec<String> {
        let mut v: Vec<(&FileKey, u64)> = self
            .map
            .iter()
            .filter(|(k, _)| k.dir == dir)
            .map(|(k, (_, t))| (k, *t))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.into_iter()
            .map(|(k, _)| {
                if k.subfolder.is_empty() {
                    k.name.clone()
                } else {
                    format!("{}/{}", k.subfolder, k.name)
                }
            })
            .collect()
    }
    /// Next SaveImage counter for `<prefix>_NNNNN_.png` in a folder: one past the
    /// highest present, like `folder_paths.get_save_image_path`.
    pub(crate) fn next_counter(&self, dir: Dir, subfolder: &str, prefix: &str) -> u64 {
        let start = format!("{prefix}_");
        let mut max = 0;
        for k in self.map.keys() {
            if k.dir != dir || k.subfolder != subfolder {
                continue;
            }
            if let Some(rest) = k.name.strip_prefix(&start) {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                if digits.len() == 5
                    && rest[5..].starts_with('_')
                    && let Ok(n) = digits.parse::<u64>()
                {
                    max = max.max(n);
                }
            }
        }
        max + 1
    }
}

pub(crate) fn content_type_for(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/x-wav",
        "flac" => "audio/flac",
        "json" => "application/json",
        "txt" => "text/plain",
        // ComfyUI forces these to octet-stream so /view cannot serve active content.
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subfolders_normalise_and_reject_escapes() {
        assert_eq!(normalize_subfolder("a/b/").as_deref(), Some("a/b"));
        assert_eq!(normalize_subfolder("a/../b").as_deref(), Some("b"));
        assert_eq!(normalize_subfolder("").as_deref(), Some(""));
        assert_eq!(normalize_subfolder("../x"), None);
        assert_eq!(normalize_subfolder("/etc"), None);
    }

    #[test]
    fn image_refs_resolve() {
        let k = resolve_image_ref("sub/a.png").unwrap();
        assert_eq!(
            (k.dir, k.subfolder.as_str(), k.name.as_str()),
            (Dir::Input, "sub", "a.png")
        );
        let k = resolve_image_ref("x_00001_.png [output]").unwrap();
        assert_eq!(k.dir, Dir::Output);
        assert!(resolve_image_ref("../../etc/passwd").is_none());
    }

    #[test]
    fn counters_continue_from_existing_files() {
        let mut f = Files::default();
        assert_eq!(f.next_counter(Dir::Output, "s", "p"), 1);
        f.put(
            FileKey::new(Dir::Output, "s", "p_00007_.png").unwrap(),
            Bytes::new(),
        );
        f.put(
            FileKey::new(Dir::Output, "s", "px_00009_.png").unwrap(),
            Bytes::new(),
        );
        assert_eq!(f.next_counter(Dir::Output, "s", "p"), 8);
    }
}
