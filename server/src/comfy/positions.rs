//! Live queue positions. ComfyUI's `status` messages say how long its queue is, not where a
//! prompt stands in it. So when the queue moves while jobs that show progress still wait, one
//! read of `/queue` tells each of them its place, and only when it changed.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::Value;

use super::{ComfyServer, JobUpdate, events::JobEvent};

/// The waiting prompts that want their position, with the position each was last told.
#[derive(Default)]
pub(crate) struct Positions {
    watching: Mutex<HashMap<String, Option<usize>>>,
    /// A read of `/queue` is under way; moves meanwhile mark it `stale` instead of starting
    /// another, so a burst of `status` messages costs one or two reads, not one each.
    busy: AtomicBool,
    stale: AtomicBool,
}

impl Positions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<usize>>> {
        self.watching.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `prompt_id` waits and was told `ahead`.
    pub(crate) fn watch(&self, prompt_id: &str, ahead: Option<usize>) {
        self.lock().insert(prompt_id.to_string(), ahead);
    }

    /// `prompt_id` started or ended: its position is of no more interest. Called before its
    /// start is passed on, so no position can follow the start.
    pub(crate) fn forget(&self, prompt_id: &str) {
        self.lock().remove(prompt_id);
    }
}

impl ComfyServer {
    /// The queue changed (a `status` message): tells waiting prompts where they stand now.
    pub(crate) fn queue_moved(self: &Arc<Self>) {
        let positions = &self.positions;
        if positions.lock().is_empty() {
            return;
        }
        positions.stale.store(true, Ordering::Release);
        if positions.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let server = self.clone();
        tokio::spawn(async move {
            let positions = &server.positions;
            loop {
                positions.stale.store(false, Ordering::Release);
                server.tell_positions().await;
                positions.busy.store(false, Ordering::Release);
                // A move that came during the read is told by another read, unless a newer
                // task already took that on.
                if !positions.stale.load(Ordering::Acquire)
                    || positions.busy.swap(true, Ordering::AcqRel)
                {
                    break;
                }
            }
        });
    }

    async fn tell_positions(&self) {
        let Ok(queue) = self.queue().await else {
            return;
        };
        let mut watching = self.positions.lock();
        for (prompt_id, told) in watching.iter_mut() {
            let now = waiting_position(&queue, prompt_id);
            if now.is_none() || now == *told {
                continue;
            }
            *told = now;
            // Sent under the lock, so a start (which first takes the prompt out of the map)
            // is never overtaken by an older position.
            if let Some(tx) = self
                .waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(prompt_id)
            {
                let _ = tx.send(JobEvent::Update(JobUpdate::Queued { ahead: now }));
            }
        }
    }
}

/// How many prompts run or wait ahead of a pending one, in a `/queue` reply; `None` when it is
/// not pending (running, or gone). ComfyUI runs pending prompts in order of their number, not
/// of the list it returns.
pub(crate) fn waiting_position(queue: &Value, prompt_id: &str) -> Option<usize> {
    let items = |key: &str| queue[key].as_array().map(Vec::as_slice).unwrap_or_default();
    let (running, pending) = (items("queue_running"), items("queue_pending"));
    let is_ours = |item: &Value| item.get(1).and_then(Value::as_str) == Some(prompt_id);
    let number = |item: &Value| item.get(0).and_then(Value::as_f64).unwrap_or(f64::MAX);
    let ours = pending.iter().find(|i| is_ours(i)).map(number)?;
    Some(running.len() + pending.iter().filter(|i| number(i) < ours).count())
}

/// As [`waiting_position`], with a running prompt at 0.
pub(crate) fn position(queue: &Value, prompt_id: &str) -> Option<usize> {
    let running = queue["queue_running"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if running
        .iter()
        .any(|item| item.get(1).and_then(Value::as_str) == Some(prompt_id))
    {
        return Some(0);
    }
    waiting_position(queue, prompt_id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn positions_count_what_runs_first() {
        let queue = json!({
            "queue_running": [[1, "a", {}, {}, []]],
            // Listed out of order: ComfyUI's list is a heap, its numbers say the order.
            "queue_pending": [[4, "d", {}, {}, []], [2, "b", {}, {}, []], [3, "c", {}, {}, []]],
        });
        assert_eq!(position(&queue, "a"), Some(0));
        assert_eq!(waiting_position(&queue, "a"), None, "running, not waiting");
        assert_eq!(waiting_position(&queue, "b"), Some(1));
        assert_eq!(waiting_position(&queue, "c"), Some(2));
        assert_eq!(position(&queue, "d"), Some(3));
        assert_eq!(position(&queue, "z"), None);
        assert_eq!(position(&json!({}), "a"), None);
    }
}
