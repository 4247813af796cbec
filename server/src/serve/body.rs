//! The minimum rate of a request body: once `body_timeout` has passed since the request
//! arrived, the body must have come at an average of at least `min_body_rate` bytes a second
//! since then, or reading it fails with [`BodyTooSlow`].

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{BoxError, body::Bytes};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

/// The error a too slow body yields. Extractors see it wrapped in axum's rejections; find it
/// with [`body_too_slow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request body arrived too slowly: after {} s it must average at least {min_rate} bytes/s",
    after.as_secs()
)]
pub struct BodyTooSlow {
    pub after: Duration,
    pub min_rate: u64,
}

impl From<&BodyTooSlow> for ApiError {
    fn from(slow: &BodyTooSlow) -> Self {
        ApiError::RequestTimeout {
            after_secs: slow.after.as_secs(),
            min_rate: slow.min_rate,
        }
    }
}

/// The [`BodyTooSlow`] in `err`'s chain of sources, if any: axum wraps body errors in its own
/// error type inside its rejections, multer in its own.
pub fn body_too_slow<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTooSlow> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(slow) = err.downcast_ref::<BodyTooSlow>() {
            return Some(slow);
        }
        next = err.source();
    }
    None
}

/// Whether reading a body failed because it came too slowly.
// The extractors need the limits for their message and use `body_too_slow`; this is for code
// that only branches on it.
#[cfg_attr(not(test), allow(dead_code))]
pub fn is_body_too_slow(err: &(dyn std::error::Error + 'static)) -> bool {
    body_too_slow(err).is_some()
}

/// A request body held to the minimum rate.
pub struct RateLimitedBody<B> {
    inner: B,
    arrived: Instant,
    rule: BodyTooSlow,
    received: u64,
    /// Wakes the reader when the rule would be broken if nothing more came; made the first
    /// time the body has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl<B> RateLimitedBody<B> {
    pub fn new(inner: B, body_timeout: Duration, min_rate: u64) -> Self {
        RateLimitedBody {
            inner,
            arrived: Instant::now(),
            rule: BodyTooSlow {
                after: body_timeout,
                min_rate,
            },
            received: 0,
            timer: None,
            failed: false,
        }
    }
}

/// When the body breaks the rule if nothing more arrives: `received` bytes keep the average up
/// until `received / min_rate` seconds after arrival, and nothing is due before `after`.
/// `None` when there is no minimum.
fn deadline(arrived: Instant, rule: BodyTooSlow, received: u64) -> Option<Instant> {
    if rule.min_rate == 0 {
        return None;
    }
    let covered = Duration::from_secs_f64(received as f64 / rule.min_rate as f64);
    Some(arrived + covered.max(rule.after))
}

impl<B> Body for RateLimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                let Some(due) = deadline(this.arrived, this.rule, this.received) else {
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                if timer.deadline() != due {
                    timer.as_mut().reset(due);
                }
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.failed = true;
                tracing::debug!(received = this.received, "a request body came too slowly");
                return Poll::Ready(Some(Err(Box::new(this.rule))));
            }
        };
        Poll::Ready(frame.map(|frame| {
            let frame = frame.map_err(Into::into)?;
            if let Some(data) = frame.data_ref() {
                this.received += data.len() as u64;
            }
            Ok(frame)
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body as AxumBody,
        extract::{FromRequest, Multipart, Request},
    };
    use futures::StreamExt;
    use tokio::sync::mpsc;

    use super::*;

    const AFTER: Duration = Duration::from_secs(30);
    const RATE: u64 = 1000;

    /// A body fed through a channel, held to the rule, as axum's extractors see it.
    fn slow_body() -> (mpsc::Sender<&'static [u8]>, AxumBody) {
        let (tx, rx) = mpsc::channel(1);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(chunk)), rx))
        });
        let body = RateLimitedBody::new(AxumBody::from_stream(stream), AFTER, RATE);
        (tx, AxumBody::new(body))
    }

    /// Reads `body` to its end and returns how long that took, and its error if any.
    async fn read_all(body: AxumBody) -> (Duration, Result<usize, axum::Error>) {
        let start = Instant::now();
        let mut stream = body.into_data_stream();
        let mut total = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => total += chunk.len(),
                Err(e) => return (start.elapsed(), Err(e)),
            }
        }
        (start.elapsed(), Ok(total))
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_body_fails_when_the_grace_ends() {
        let (_tx, body) = slow_body();
        let (took, result) = read_all(body).await;
        assert_eq!(took, AFTER);
        assert!(is_body_too_slow(&result.unwrap_err()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_when_its_average_drops_below_the_rate() {
        let (tx, body) = slow_body();
        tx.send(&[0; 45_000]).await.unwrap();
        // 45 000 bytes keep a 1000 bytes/s average for 45 s: past the 30 s grace.
        let (took, result) = read_all(body).await;
        assert_eq!(took, Duration::from_secs(45));
        assert!(result.is_err());
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_is_read_whole_however_long_it_takes() {
        let (tx, body) = slow_body();
        let feed = tokio::spawn(async move {
            for _ in 0..120 {
                tx.send(&[0; 1100]).await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let (took, result) = read_all(body).await;
        assert_eq!(result.unwrap(), 120 * 1100);
        assert!(took >= Duration::from_secs(119), "{took:?}");
        feed.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_small_body_that_ends_in_the_grace_is_fine() {
        let (tx, body) = slow_body();
        let feed = tokio::spawn(async move {
            for _ in 0..25 {
                tx.send(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        assert_eq!(read_all(body).await.1.unwrap(), 25);
        feed.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn no_minimum_means_no_limit() {
        let (_tx, rx) = mpsc::channel::<Bytes>(1);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            Some((Ok::<_, std::io::Error>(rx.recv().await?), rx))
        });
        let body = RateLimitedBody::new(AxumBody::from_stream(stream), AFTER, 0);
        let read = read_all(AxumBody::new(body));
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), read)
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_error_is_found_inside_axums_rejections() {
        let (_tx, body) = slow_body();
        let rejection = Bytes::from_request(Request::new(body), &())
            .await
            .unwrap_err();
        assert_eq!(
            body_too_slow(&rejection),
            Some(&BodyTooSlow {
                after: AFTER,
                min_rate: RATE
            })
        );

        let (tx, body) = slow_body();
        let mut req = Request::new(body);
        req.headers_mut().insert(
            "content-type",
            "multipart/form-data; boundary=b".parse().unwrap(),
        );
        tx.send(b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nab")
            .await
            .unwrap();
        let mut form = Multipart::from_request(req, &()).await.unwrap();
        let mut field = form.next_field().await.unwrap().unwrap();
        let error = loop {
            match field.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the part ended"),
                Err(e) => break e,
            }
        };
        assert!(is_body_too_slow(&error));
        assert!(!is_body_too_slow(&std::io::Error::other("x")));
    }
}
