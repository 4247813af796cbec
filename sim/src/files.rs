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
    /// The asset database of newer ComfyUI (`--enable-assets`): asset id → the file it names.
    /// It lives on disk there, so it sits here with the files and survives a restart.
    assets: BTreeMap<String, FileKey>,
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
        self.assets.retain(|_, k| k != key);
    }
    /// The upload reply's `asset` object for a stored file, registering it on first sight; a
    /// file uploaded again (same name) keeps its id. `None` when no such file exists.
    pub(crate) fn asset(&mut self, key: &FileKey) -> Option<serde_json::Value> {
        let (bytes, _) = self.map.get(key)?;
        let id = match self.assets.iter().find(|(_, k)| *k == key) {
            Some((id, _)) => id.clone(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                self.assets.insert(id.clone(), key.clone());
                id
            }
        };
        Some(serde_json::json!({
            "id": id,
            "name": key.name,
            "asset_hash": format!("blake3:{}", content_hash(bytes)),
            "size": bytes.len(),
            "mime_type": content_type_for(&key.name),
            "tags": [key.dir.as_str()],
        }))
    }
    /// Drops an asset record, and its file too when `delete_content`. False for unknown ids.
    pub(crate) fn delete_asset(&mut self, id: &str, delete_content: bool) -> bool {
        match self.assets.remove(id) {
            Some(key) => {
                if delete_content {
                    self.remove(&key);
                }
                true
            }
            None => false,
        }
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

/// A stable 256-bit content hash in hex, standing in for blake3 (which the simulator does not
/// link): four FNV-1a lanes with different bases, each finished with a SplitMix64 mix.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for lane in 0..4u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ lane.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= bytes.len() as u64;
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
        out.push_str(&format!("{h:016x}"));
    }
    out
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
    fn assets_keep_their_id_and_go_with_their_file() {
        let mut f = Files::default();
        let key = FileKey::new(Dir::Input, "", "a.png").unwrap();
        assert!(f.asset(&key).is_none(), "no file, no asset");
        f.put(key.clone(), Bytes::from_static(b"abc"));
        let a = f.asset(&key).unwrap();
        assert_eq!(f.asset(&key).unwrap()["id"], a["id"]);
        assert_eq!(a["size"], 3);
        assert_eq!(a["mime_type"], "image/png");
        let hash = a["asset_hash"].as_str().unwrap();
        assert_eq!(hash.len(), "blake3:".len() + 64);
        assert_eq!(hash, format!("blake3:{}", content_hash(b"abc")));
        assert_ne!(content_hash(b"abc"), content_hash(b"abd"));

        let id = a["id"].as_str().unwrap().to_string();
        assert!(f.delete_asset(&id, false));
        assert!(f.contains(&key), "delete_content=false keeps the file");
        let id = f.asset(&key).unwrap()["id"].as_str().unwrap().to_string();
        assert!(f.delete_asset(&id, true));
        assert!(!f.contains(&key));
        assert!(!f.delete_asset(&id, true), "gone");
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
