//! Delivering async jobs' outcomes to their webhooks: only to hosts on `WEBHOOK_HOSTS`, signed
//! as Standard Webhooks are (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256
//! with `WEBHOOK_SECRET`), retried with backoff. A delivery is a claim in the database, so any
//! bridge finishes one whose bridge died; the id stays the same, so a receiver that saw an
//! attempt whose answer was lost can tell the repeat.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::Ledger;
use crate::{
    db::Engine as DbEngine,
    error::{ApiError, ErrorCode},
    hosts::{HostClient, HostList},
    objects::now_ms,
};

/// Attempts before a delivery is given up.
const MAX_ATTEMPTS: i64 = 8;
/// The longest wait between attempts, and between looks for deliveries other bridges left.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Webhooks {
    client: HostClient,
    hosts: HostList,
    secret: Option<Vec<u8>>,
}

impl Webhooks {
    pub fn new(hosts: &[String], secret: Option<&str>) -> Webhooks {
        Webhooks {
            client: HostClient::new(Duration::from_secs(10)),
            hosts: HostList::new(hosts),
            secret: secret.map(str::trim).filter(|s| !s.is_empty()).map(key),
        }
    }

    /// Checks a request's `webhook_url`: 400 unless webhooks are configured and its host is
    /// allowed.
    pub fn check(&self, url: &str) -> Result<(), ApiError> {
        let refuse = |why: &str| {
            ApiError::bad(
                ErrorCode::InvalidValue,
                Some("webhook_url"),
                format!("'webhook_url' {why}"),
            )
        };
        if self.secret.is_none() {
            return Err(refuse(
                "cannot be used: this server delivers no webhooks (set WEBHOOK_SECRET and \
                 WEBHOOK_HOSTS).",
            ));
        }
        if !self.hosts.allows(url) {
            return Err(refuse(
                "must be an http(s) URL on a host this server may call (WEBHOOK_HOSTS).",
            ));
        }
        Ok(())
    }

    /// The Standard Webhooks signature of one delivery.
    pub fn signature(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }
}

/// The HMAC key of a secret: a Standard Webhooks secret (`whsec_` and base64) is its decoded
/// bytes, as receivers' libraries take it; any other text is its own bytes.
fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// A delivery this bridge claimed.
struct Due {
    id: String,
    url: String,
    attempts: i64,
}

impl Ledger {
    /// Delivers pending webhooks until shutdown: when a job is announced, when a retry falls
    /// due, and when a delivery another bridge claimed was left when it died.
    pub fn spawn_deliveries(&self, shutdown: CancellationToken) {
        if self.0.webhooks.secret.is_none() {
            return;
        }
        let ledger = self.clone();
        tokio::spawn(async move {
            loop {
                let mut events = ledger.0.db.subscribe();
                let wait = match ledger.deliver_due().await {
                    Ok(wait) => wait,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not deliver webhooks");
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = events.recv() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Delivers every delivery due now; returns how long until the next may be.
    async fn deliver_due(&self) -> anyhow::Result<Duration> {
        while let Some(due) = self.claim_delivery().await? {
            self.deliver(due).await?;
        }
        let next: Option<i64> = sqlx::query(
            "SELECT MIN(CASE WHEN webhook_lease_until > webhook_next_at \
             THEN webhook_lease_until ELSE webhook_next_at END) \
             FROM jobs WHERE webhook_state = 'pending'",
        )
        .fetch_one(self.0.db.pool())
        .await?
        .try_get(0)?;
        let wait = next.map_or(MAX_WAIT, |at| {
            Duration::from_millis((at - now_ms()).max(50) as u64).min(MAX_WAIT)
        });
        Ok(wait)
    }

    /// Takes one due delivery no other bridge holds, and holds it for a lease.
    async fn claim_delivery(&self) -> anyhow::Result<Option<Due>> {
        let now = now_ms();
        // PostgreSQL: bridges skip each other's rows instead of waiting on them. SQLite has
        // one writer at a time and no such clause.
        let lock = match self.0.db.engine() {
            DbEngine::Postgres => " FOR UPDATE SKIP LOCKED",
            DbEngine::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "UPDATE jobs SET webhook_lease_until = $1 WHERE id = (SELECT id FROM jobs \
             WHERE webhook_state = 'pending' AND webhook_next_at <= $2 \
             AND webhook_lease_until < $2 ORDER BY webhook_next_at LIMIT 1{lock}) \
             RETURNING id, webhook_url, webhook_attempts"
        ))
        .bind(now + self.0.lease.as_millis() as i64)
        .bind(now)
        .fetch_optional(self.0.db.pool())
        .await?;
        row.map(|row| {
            Ok(Due {
                id: row.try_get("id")?,
                url: row.try_get("webhook_url")?,
                attempts: row.try_get("webhook_attempts")?,
            })
        })
        .transpose()
    }

    async fn deliver(&self, due: Due) -> anyhow::Result<()> {
        let Some(secret) = &self.0.webhooks.secret else {
            return Ok(());
        };
        let body = self.document(&due.id).await?;
        let timestamp = now_ms() / 1000;
        // One id per job's outcome: every attempt, from any bridge, carries the same.
        let delivery = format!("job_{}", due.id);
        let Some(client) = self.0.webhooks.client.get().await else {
            anyhow::bail!("no HTTP client for webhooks");
        };
        let sent = client
            .post(&due.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                Webhooks::signature(secret, &delivery, timestamp, &body),
            )
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(res) if res.status().is_success() => None,
            Ok(res) => Some(format!("answered {}", res.status())),
            Err(e) => Some(if e.is_timeout() {
                "timed out".to_string()
            } else {
                "no answer".to_string()
            }),
        };
        let attempts = due.attempts + 1;
        let db = self.0.db.pool();
        match failure {
            None => {
                sqlx::query(
                    "UPDATE jobs SET webhook_state = 'delivered', webhook_attempts = $1 \
                     WHERE id = $2",
                )
                .bind(attempts)
                .bind(&due.id)
                .execute(db)
                .await?;
            }
            Some(why) if attempts >= MAX_ATTEMPTS => {
                tracing::warn!(job = %due.id, attempts, why, "giving up a webhook delivery");
                sqlx::query(
                    "UPDATE jobs SET webhook_state = 'failed', webhook_attempts = $1 \
                     WHERE id = $2",
                )
                .bind(attempts)
                .bind(&due.id)
                .execute(db)
                .await?;
            }
            Some(why) => {
                let wait = Duration::from_secs(1 << attempts.min(8)).min(MAX_WAIT * 10);
                tracing::info!(job = %due.id, attempts, why, retry_in = ?wait, "webhook delivery failed");
                sqlx::query(
                    "UPDATE jobs SET webhook_attempts = $1, webhook_next_at = $2, \
                     webhook_lease_until = 0 WHERE id = $3",
                )
                .bind(attempts)
                .bind(now_ms() + wait.as_millis() as i64)
                .bind(&due.id)
                .execute(db)
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = Webhooks::signature(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn only_allowed_hosts_with_a_secret() {
        let hooks = Webhooks::new(&["hooks.example.com".into()], Some("s3cret"));
        assert!(hooks.check("https://hooks.example.com/done").is_ok());
        for bad in [
            "https://other.example.com/done",
            "file:///etc/passwd",
            "https://user:pw@hooks.example.com/",
            "not a url",
        ] {
            assert!(hooks.check(bad).is_err(), "{bad}");
        }
        let off = Webhooks::new(&["hooks.example.com".into()], None);
        assert!(off.check("https://hooks.example.com/done").is_err());
    }
}
