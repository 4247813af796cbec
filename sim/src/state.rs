//! Everything a ComfyUI process keeps in memory: queue, history, files, cache.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde_json::{Value, json};

use crate::files::{FileKey, Files};
use crate::nodes::Val;

/// ComfyUI's `MAXIMUM_HISTORY_SIZE`.
pub(crate) const MAX_HISTORY: usize = 10_000;

#[derive(Clone)]
pub(crate) struct QueueItem {
    /// The priority as the client sees it (int, or float when the client chose it).
    pub number: Value,
    pub sort: f64,
    pub prompt_id: String,
    pub prompt: Value,
    pub extra_data: Value,
    pub outputs: Vec<String>,
    pub create_time: u64,
}

impl QueueItem {
    pub(crate) fn to_json(&self) -> Value {
        json!([
            self.number,
            self.prompt_id,
            self.prompt,
            self.extra_data,
            self.outputs
        ])
    }
    pub(crate) fn client_id(&self) -> Option<String> {
        self.extra_data
            .get("client_id")
            .and_then(Value::as_str)
            .map(String::from)
    }
}

pub(crate) struct HistoryItem {
    pub entry: Value,
    /// Output/temp files this prompt wrote (freed with the entry).
    pub files: Vec<FileKey>,
    pub number: Value,
    pub create_time: u64,
    pub start_time: u64,
    pub end_time: u64,
}

#[derive(Clone)]
pub(crate) struct CacheEntry {
    pub outputs: Vec<Val>,
    pub ui: Option<Value>,
}

#[derive(Default)]
pub(crate) struct State {
    pub counter: i64,
    pub pending: Vec<QueueItem>,
    pub running: Option<QueueItem>,
    pub running_started: u64,
    /// Last `executing` node of the running prompt (for reconnect greetings).
    pub running_node: Option<String>,
    pub history_order: VecDeque<String>,
    pub history: HashMap<String, HistoryItem>,
    pub files: Files,
    pub submitted: Vec<(String, Value)>,
    pub cache: HashMap<String, CacheEntry>,
    pub models: BTreeSet<String>,
    /// `Some(class)` armed by `fail_next_execution`.
    pub fail_next: Option<Option<String>>,
}

impl State {
    pub(crate) fn queue_remaining(&self) -> usize {
        self.pending.len() + usize::from(self.running.is_some())
    }

    pub(crate) fn sorted_pending(&self) -> Vec<&QueueItem> {
        let mut v: Vec<&QueueItem> = self.pending.iter().collect();
        v.sort_by(|a, b| {
            a.sort
                .total_cmp(&b.sort)
                .then_with(|| a.prompt_id.cmp(&b.prompt_id))
        });
        v
    }

    pub(crate) fn pop_next(&mut self) -> Option<QueueItem> {
        let first = self.sorted_pending().first().map(|i| i.prompt_id.clone())?;
        let pos = self.pending.iter().position(|i| i.prompt_id == first)?;
        Some(self.pending.remove(pos))
    }

    /// Stores an entry. A reused prompt id overwrites in place (a Python dict
    /// keeps the key's position), and the oldest entries beyond the cap go.
    pub(crate) fn add_history(&mut self, id: String, item: HistoryItem) {
        if let Some(old) = self.history.insert(id.clone(), item) {
            for f in old.files {
                self.files.remove(&f);
            }
        } else {
            self.history_order.push_back(id);
        }
        while self.history_order.len() > MAX_HISTORY {
            if let Some(old) = self.history_order.pop_front() {
                self.delete_history(&old);
            }
        }
    }

    /// Deleting an entry also frees its output/temp files. Real ComfyUI keeps
    /// files on disk forever; the simulator drops them so long demo runs stay
    /// flat in memory. The output cache goes too, so a later identical prompt
    /// is computed again instead of pointing at a freed file.
    pub(crate) fn delete_history(&mut self, id: &str) {
        if let Some(item) = self.history.remove(id) {
            self.history_order.retain(|h| h != id);
            if !item.files.is_empty() {
                self.cache.clear();
            }
            for f in item.files {
                self.files.remove(&f);
            }
        }
    }

    pub(crate) fn clear_history(&mut self) {
        let ids: Vec<String> = self.history_order.iter().cloned().collect();
        for id in ids {
            self.delete_history(&id);
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
