//! Serving HTTP/1 connections with limits a slow or hostile client cannot outlast: how long a
//! request head and an idle connection may take, how slowly a body may arrive, how long a
//! response may wait for a reader, and how many connections may be open at once.
//!
//! `axum::serve` has none of these: a client that sends a byte a second keeps its socket and
//! task for as long as it likes, and a few hundred such clients exhaust the open-file limit,
//! after which the health check and every generation fail too.

pub mod body;
mod limits;
mod requests;
mod stall;

use std::{
    io,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use body::body_too_slow;
pub use limits::{ServeLimits, limits};

use requests::RequestService;
use stall::StallGuard;

/// Connections refused at the cap that may be answered at once. Past this the socket is
/// closed unanswered: answering costs a socket and a task for up to `REJECT_TIME`, and a flood
/// must not turn the refusals themselves into the resource it exhausts.
const MAX_REJECTING: usize = 64;

/// The longest a refused connection is kept: writing the 503 and reading what the client sent.
const REJECT_TIME: Duration = Duration::from_secs(1);

/// What a refused connection may send before it is closed regardless.
const REJECT_DRAIN_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting and waits for
/// the open requests to finish, as `axum::serve(..).with_graceful_shutdown(..)` did.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper arms this timer whenever a connection waits for a request head, and that includes a
    // keep-alive connection waiting for its next request (hyper 1.12, src/proto/h1/conn.rs:
    // `State::idle` sets `notify_read` when a header timeout is set, and `poll_read_head` starts
    // the timer on every read of a head until the head parses). So it is the idle limit too.
    // It is not armed while a request is being handled, so a long generation is never cut.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(MAX_REJECTING));
    let busy = requests::too_many_connections();
    let connections = TaskTracker::new();
    let mut at_cap = false;
    let mut backoff = AcceptBackoff::default();

    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.reset();
                    stream
                }
                Err(e) => {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = backoff.wait(e) => continue,
                    }
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                at_cap = false;
                connections.spawn(connection(
                    stream,
                    app.clone(),
                    limits,
                    builder.clone(),
                    shutdown.clone(),
                    slot,
                ));
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!(
                        max = limits.max_connections,
                        "the connection limit is reached (MAX_CONNECTIONS): new connections get 503"
                    );
                    at_cap = true;
                }
                refuse(stream, &rejecting, busy);
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One connection, from accept to close. `_slot` is its place under the connection cap.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ServeLimits,
    builder: Arc<Builder<TokioExecutor>>,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    // Event streams write small frames one after another: with Nagle's algorithm on, each
    // waited for the client's delayed ACK of the one before, some 40 ms.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not turn off Nagle's algorithm on a connection");
    }
    let first_request = Arc::new(AtomicBool::new(false));
    let service = RequestService::new(app, limits, first_request.clone());
    let io = TokioIo::new(StallGuard::new(stream, limits.send_stall));
    let mut conn =
        pin!(builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service)));
    // Before hyper's HTTP/1 timer starts, hyper-util reads the first bytes to tell HTTP/1 from
    // HTTP/2, with no time limit: a client that connects and sends nothing would be kept
    // forever. The first request must therefore come within the header limit of the accept.
    let mut first_deadline = pin!(tokio::time::sleep(limits.header_timeout));
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            () = first_deadline.as_mut(), if !first_request.load(Ordering::Acquire) => {
                // The request may have come while this wait was already under way.
                if first_request.load(Ordering::Acquire) {
                    continue;
                }
                tracing::debug!("no request within the header limit: closing the connection");
                break;
            }
        }
    }
}

/// Answers a connection over the cap with a 503 and closes it, without the router. The
/// request head is read first, since an HTTP client fails on an answer that comes before its
/// request; then the answer is written, the write side shut, and the rest of what the client
/// sent read and dropped, so that the close is a FIN: closing with unread input sends a reset,
/// which can make the client lose the answer.
fn refuse(mut stream: TcpStream, rejecting: &Arc<Semaphore>, answer: &'static [u8]) {
    let Ok(permit) = rejecting.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REJECT_TIME, async {
            let mut buf = [0u8; 4096];
            let mut tail = Vec::with_capacity(4096 + 3);
            let mut read = 0;
            while !tail.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await?;
                read += n;
                if n == 0 || read > REJECT_DRAIN_BYTES {
                    return Ok(());
                }
                // Only the last three bytes can begin the blank line that ends the head.
                tail.drain(..tail.len().saturating_sub(3));
                tail.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer).await?;
            stream.shutdown().await?;
            while read < REJECT_DRAIN_BYTES {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => read += n,
                }
            }
            io::Result::Ok(())
        })
        .await;
    });
}

/// The pause after a failed accept. EMFILE and ENFILE leave the connection in the backlog, so
/// retrying at once would spin; the pause doubles from 5 ms to 1 s while accepts keep failing
/// and returns to 5 ms after one succeeds.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MOST: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        self.pause = None;
    }

    async fn wait(&mut self, error: io::Error) {
        // These concern one connection, which the client already gave up: accept the next.
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        let pause = self.pause.map_or(Self::FIRST, |p| (p * 2).min(Self::MOST));
        self.pause = Some(pause);
        tracing::error!(error = %error, ?pause, "accepting a connection failed");
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_up_to_a_second_and_recover() {
        let mut backoff = AcceptBackoff::default();
        let too_many_files = || io::Error::from_raw_os_error(24);
        let mut pauses = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            backoff.wait(too_many_files()).await;
            pauses.push(start.elapsed().as_millis());
        }
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);

        // A client that gave up costs no pause.
        let start = Instant::now();
        backoff
            .wait(io::Error::from(io::ErrorKind::ConnectionAborted))
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);

        backoff.reset();
        let start = Instant::now();
        backoff.wait(too_many_files()).await;
        assert_eq!(start.elapsed(), AcceptBackoff::FIRST);
    }
}
