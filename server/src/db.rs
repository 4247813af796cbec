//! The database: SQLite under the data directory by default, or PostgreSQL at `DATABASE_URL`
//! for several bridges sharing one state. Both are reached through sqlx's `Any` driver, so
//! every query is written once; SQL that both take uses `$1`-style placeholders.

use std::{path::Path, time::Duration};

use anyhow::Context;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sqlx::{
    Any, AnyPool, Arguments, Encode, Executor, Type,
    any::{AnyArguments, AnyPoolOptions},
    postgres::PgListener,
};
use tokio::sync::broadcast;

/// Which engine a [`Db`] runs on; decides the migrations and the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
    /// Announcements of finished jobs (their ids), from this bridge and, on PostgreSQL, from
    /// every bridge on the database (`LISTEN`).
    events: broadcast::Sender<String>,
}

/// The PostgreSQL channel jobs are announced on.
const CHANNEL: &str = "bridge_jobs";

/// Characters kept as they are in a SQLite file path given as a URL; the rest are
/// percent-encoded (sqlx decodes them), so any directory name works.
const PATH_CHARS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_');

impl Db {
    /// Connects to `database_url` (PostgreSQL), or else opens `gallery.db` under `data_dir`,
    /// and brings the schema up to date.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let db = match database_url {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    anyhow::bail!("DATABASE_URL must be a postgres:// URL");
                }
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    // The URL holds the password: it is never part of the message.
                    .context("connecting to the PostgreSQL server at DATABASE_URL")?;
                let (events, _) = broadcast::channel(1024);
                let listener = PgListener::connect(url)
                    .await
                    .context("listening on the PostgreSQL server at DATABASE_URL")?;
                tokio::spawn(relay(listener, events.clone()));
                Db {
                    pool,
                    engine: Engine::Postgres,
                    events,
                }
            }
            None => {
                tokio::fs::create_dir_all(data_dir).await?;
                let file = data_dir.join("gallery.db");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    utf8_percent_encode(&file.to_string_lossy(), PATH_CHARS)
                );
                let pool = AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Readers do not wait for the writer, and a writer waits its turn
                            // rather than failing at once.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .with_context(|| format!("opening {}", file.display()))?;
                Db {
                    pool,
                    engine: Engine::Sqlite,
                    events: broadcast::channel(1024).0,
                }
            }
        };
        match db.engine {
            Engine::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&db.pool).await,
            Engine::Postgres => sqlx::migrate!("./migrations/postgres").run(&db.pool).await,
        }
        .context("bringing the database schema up to date")?;
        Ok(db)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Whether other bridges may share this database (and so its files, and its jobs).
    pub fn shared(&self) -> bool {
        self.engine == Engine::Postgres
    }

    /// Tells every bridge on this database that the job `id` changed.
    pub async fn announce(&self, id: &str) -> anyhow::Result<()> {
        match self.engine {
            Engine::Postgres => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            Engine::Sqlite => {
                let _ = self.events.send(id.to_string());
            }
        }
        Ok(())
    }

    /// Announcements from now on; subscribe before looking at a row, so a change just after
    /// is not missed.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }
}

/// Passes PostgreSQL's notifications on to this bridge's waiters. A lost connection is
/// reopened by the listener; what was announced meanwhile is lost, and waiters look again when
/// their wait runs out.
async fn relay(mut listener: PgListener, events: broadcast::Sender<String>) {
    if let Err(e) = listener.listen(CHANNEL).await {
        tracing::error!(error = %e, "could not listen for job announcements");
        return;
    }
    loop {
        match listener.recv().await {
            Ok(note) => {
                let _ = events.send(note.payload().to_string());
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the PostgreSQL connection for job announcements");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A statement built in pieces, with `$n` placeholders that both engines take (sqlx's own
/// builder writes `?` for `Any`, which PostgreSQL refuses).
pub struct Statement {
    sql: String,
    args: AnyArguments<'static>,
    count: usize,
}

impl Statement {
    pub fn new(sql: &str) -> Statement {
        Statement {
            sql: sql.to_string(),
            args: AnyArguments::default(),
            count: 0,
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Statement {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind<T>(&mut self, value: T) -> anyhow::Result<&mut Statement>
    where
        T: Encode<'static, Any> + Type<Any> + Send + 'static,
    {
        self.args
            .add(value)
            .map_err(|e| anyhow::anyhow!("binding a query value: {e}"))?;
        self.count += 1;
        self.sql.push_str(&format!("${}", self.count));
        Ok(self)
    }

    /// Placeholders for each of `values`, separated by commas.
    pub fn bind_list<T>(
        &mut self,
        values: impl IntoIterator<Item = T>,
    ) -> anyhow::Result<&mut Statement>
    where
        T: Encode<'static, Any> + Type<Any> + Send + 'static,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value)?;
        }
        Ok(self)
    }

    /// The statement, ready to run once: its values go with it.
    pub fn query(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.sql, std::mem::take(&mut self.args))
    }
}
