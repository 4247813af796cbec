//! A socket whose writes fail once they have made no progress for too long, so that a reader
//! who stopped reading ends the response (and, for a stream, the job behind it) instead of
//! holding the connection forever. A connection with nothing to write is never timed.

use std::{
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

pub struct StallGuard<T> {
    inner: T,
    limit: Duration,
    /// Made the first time a write has to wait; armed only while writes are waiting.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        StallGuard {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Passes a finished write through (any outcome is progress, or an error of its own) and
    /// turns a waiting one into `TimedOut` once writes have waited `limit` without progress.
    fn guard<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let timer = match &mut self.timer {
            Some(timer) if self.armed => timer,
            slot => {
                let due = Instant::now() + self.limit;
                let timer = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                timer.as_mut().reset(due);
                self.armed = true;
                timer
            }
        };
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::debug!(limit = ?self.limit, "the client stopped reading: closing");
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no write progress for {:?}", self.limit),
                )))
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// A guarded writer whose reader holds at most 64 bytes unread.
    fn pipe() -> (StallGuard<DuplexStream>, DuplexStream) {
        let (writer, reader) = duplex(64);
        (StallGuard::new(writer, LIMIT), reader)
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (mut writer, _reader) = pipe();
        let start = Instant::now();
        let err = writer.write_all(&[7; 1000]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_keeps_the_write_alive() {
        let (mut writer, mut reader) = pipe();
        let read = tokio::spawn(async move {
            let mut buf = [0; 16];
            let mut total = 0;
            while total < 1000 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                total += reader.read(&mut buf).await.unwrap();
            }
        });
        writer.write_all(&[7; 1000]).await.unwrap();
        read.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_to_write_is_never_a_stall() {
        let (mut writer, mut reader) = pipe();
        writer.write_all(&[1; 64]).await.unwrap();
        // Full, then drained, then silent for far longer than the limit: as a connection is
        // while a long generation runs.
        let mut buf = [0; 64];
        reader.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(LIMIT * 20).await;
        writer.write_all(&[2; 64]).await.unwrap();
        writer.flush().await.unwrap();
        reader.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [2; 64]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stall_is_counted_from_the_last_progress() {
        let (mut writer, mut reader) = pipe();
        let start = Instant::now();
        let read = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let mut buf = [0; 64];
            reader.read_exact(&mut buf).await.unwrap();
            reader
        });
        let err = writer.write_all(&[7; 1000]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // 20 s until the reader took 64 bytes, then 30 s with no more.
        assert_eq!(start.elapsed(), Duration::from_secs(50));
        drop(read.await.unwrap());
    }
}
