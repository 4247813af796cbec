//! Async jobs whose bridge died. Nobody retries an async job, so every bridge looks, each time a
//! claim could have run out, for running jobs whose claim did; the one that takes a job checks
//! its request again as it was accepted and runs it on, collecting the prompts already in
//! ComfyUI and running, with the first seeds, those never submitted.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    jobs::Durable,
    ledger::{Kept, KeptEdit, Orphan},
    state::AppState,
    validate::{self, Context, EditKind},
};

/// Looks for orphaned async jobs until shutdown, as often as a claim could run out.
pub fn spawn(state: AppState, lease: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(lease / 2) => {}
                () = shutdown.cancelled() => return,
            }
            loop {
                match state.delivery.ledger().adopt().await {
                    Ok(Some(orphan)) => {
                        tokio::spawn(run(state.clone(), orphan));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not look for orphaned jobs");
                        break;
                    }
                }
            }
        }
    });
}

async fn run(state: AppState, orphan: Orphan) {
    let Orphan {
        id,
        seeds,
        request,
        files,
    } = orphan;
    tracing::info!(job = %id, "taking over an async job whose bridge stopped");
    let ledger = state.delivery.ledger().clone();
    let kept: Kept = match serde_json::from_str(&request) {
        Ok(kept) => kept,
        Err(e) => {
            let e = crate::error::ApiError::Internal(format!("a kept request is unreadable: {e}"));
            return ledger.own_later(id, async { Err(e) }).await;
        }
    };
    let headers = kept.headers();
    let ctx = Context::new(
        state.checks.clone(),
        state.models.clone(),
        state.images.clone(),
        &headers,
    );
    let base = state.images.base(&headers);
    let request = match kept.edit {
        None => validate::generation(kept.fields, &ctx),
        Some(kind) => {
            let kind = match kind {
                KeptEdit::Edit => EditKind::Edit,
                KeptEdit::Variation => EditKind::Variation,
            };
            validate::edit(kept.upload(files), kind, &ctx).await
        }
    };
    let durable = Durable {
        id: id.clone(),
        resume: true,
        seeds,
    };
    let work = async {
        let job = request?.job;
        let images = state.jobs.run_durable(&job, &durable).await?;
        state.delivery.images_document(&base, &job, images).await
    };
    ledger.own_later(id, work).await;
}
