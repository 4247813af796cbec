//! Slow and idle clients over real sockets: what a client that sends or reads too slowly, or
//! one too many, sees, and that everyone else is still served meanwhile.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::{Instant, sleep, timeout},
};

/// Leeway for a busy machine on top of a limit.
const MARGIN: Duration = Duration::from_secs(3);

/// An answer as it came over the socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// One complete response at the start of `bytes`, if it is all there.
fn parse(bytes: &[u8]) -> Option<Raw> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut raw = Raw {
        status,
        head,
        body: Vec::new(),
    };
    let length: usize = raw.header("content-length")?.parse().ok()?;
    let body = bytes.get(end + 4..end + 4 + length)?;
    raw.body = body.to_vec();
    Some(raw)
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.bridge.addr).await.expect("connects")
}

/// Reads until the peer closes (end of stream or reset) and returns what came; fails if the
/// connection is still open after `within`.
async fn read_until_closed(rd: &mut (impl AsyncRead + Unpin), within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match timeout(deadline - Instant::now(), rd.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return seen,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection is still open after {within:?} ({} bytes read)",
                seen.len()
            ),
        }
    }
}

/// Sends a request on a kept-alive connection and reads its whole answer.
async fn exchange(stream: &mut TcpStream, request: &str) -> Raw {
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(raw) = parse(&seen) {
            return raw;
        }
        let n = timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed before a whole answer: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Writes `bytes` one a second, as a client on a bad link or an attacker would, until the
/// server closes or all are sent.
fn trickle(mut wr: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            sleep(Duration::from_secs(1)).await;
        }
    })
}

#[tokio::test]
async fn headers_sent_a_byte_a_second_are_cut_off_at_the_header_limit() {
    let h = start_with(|c| c.header_timeout_secs = 2).await;
    let (mut rd, wr) = connect(&h).await.into_split();
    let start = Instant::now();
    let writer = trickle(
        wr,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n".to_vec(),
    );

    // Others are served meanwhile.
    let (status, _) = h.get("/health").await;
    assert_eq!(status, 200);

    let answer = read_until_closed(&mut rd, Duration::from_secs(2) + MARGIN).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "closed early: {took:?}"
    );
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    writer.abort();
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_limit() {
    let h = start_with(|c| c.header_timeout_secs = 1).await;
    let mut stream = connect(&h).await;
    let start = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(1) + MARGIN).await;
    assert!(answer.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_body_sent_a_byte_a_second_gets_408_and_nothing_reaches_comfyui() {
    let h = start_with(|c| c.body_timeout_secs = 1).await;
    let (mut rd, mut wr) = connect(&h).await.into_split();
    wr.write_all(
        b"POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let writer = trickle(wr, vec![b' '; 10000]);

    let (status, _) = h.get("/health").await;
    assert_eq!(status, 200);
    let (status, models) = h.get("/v1/models").await;
    assert_eq!(status, 200, "{models}");

    let answer = read_until_closed(&mut rd, Duration::from_secs(1) + MARGIN).await;
    assert!(start.elapsed() >= Duration::from_millis(900));
    let raw = parse(&answer)
        .unwrap_or_else(|| panic!("no whole answer: {:?}", String::from_utf8_lossy(&answer)));
    assert_eq!(raw.status, 408, "{}", raw.head);
    assert_eq!(raw.header("connection"), Some("close"));
    let body = raw.json();
    assert_envelope(&body);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "request_timeout");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("8192 bytes per second"), "{message}");
    writer.abort();
    assert!(h.sim.sim.submitted().is_empty());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_header_limit() {
    let h = start_with(|c| c.header_timeout_secs = 2).await;
    let mut stream = connect(&h).await;
    let first = exchange(&mut stream, HEALTH).await;
    assert_eq!(first.status, 200);
    // Still open for a next request within the limit...
    sleep(Duration::from_millis(500)).await;
    assert_eq!(exchange(&mut stream, HEALTH).await.status, 200);
    // ...and closed once it has idled for the limit.
    let idle = Instant::now();
    let rest = read_until_closed(&mut stream, Duration::from_secs(2) + MARGIN).await;
    assert!(rest.is_empty());
    assert!(
        idle.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        idle.elapsed()
    );
}

#[tokio::test]
async fn a_long_generation_with_a_silent_client_is_not_cut() {
    let h = start_full(slow_sim(Duration::from_millis(100)), |c| {
        c.header_timeout_secs = 1;
        c.body_timeout_secs = 1;
        c.send_stall_secs = 1;
    })
    .await;
    let start = Instant::now();
    let (status, body) = h
        .generate(json!({"model": "sdxl", "prompt": "a slow one", "size": "512x512", "steps": 40}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["b64_json"].is_string());
    let took = start.elapsed();
    assert!(
        took > Duration::from_secs(3),
        "the job was too short to tell: {took:?}"
    );
}

#[tokio::test]
async fn connections_past_the_cap_get_503_until_some_close() {
    let h = start_with(|c| {
        c.max_connections = Some(8);
        c.header_timeout_secs = 30;
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&h).await;
        // An answer means the bridge accepted it and counts it.
        assert_eq!(exchange(&mut stream, HEALTH).await.status, 200);
        open.push(stream);
    }

    let mut extra = connect(&h).await;
    extra.write_all(HEALTH.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut extra, MARGIN).await;
    let raw = parse(&answer).expect("a whole answer");
    assert_eq!(raw.status, 503, "{}", raw.head);
    assert_eq!(raw.header("retry-after"), Some("1"));
    assert_eq!(raw.header("connection"), Some("close"));
    assert_eq!(raw.header("content-type"), Some("application/json"));
    let body = raw.json();
    assert_envelope(&body);
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], "too_many_connections");

    // An HTTP client sees the same, as an error it can read.
    let res = reqwest::Client::new()
        .get(format!("{}/health", h.url))
        .send()
        .await
        .expect("an answer, not a reset");
    let (status, body) = read(res).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "too_many_connections");

    // The kept connections are still served.
    assert_eq!(exchange(&mut open[0], HEALTH).await.status, 200);

    drop(open);
    let deadline = Instant::now() + MARGIN;
    loop {
        let res = reqwest::Client::new()
            .get(format!("{}/health", h.url))
            .send()
            .await
            .expect("an answer");
        if res.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the connections closed"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// A client socket whose buffers fill quickly. On loopback the server's send buffer grows with
/// the segment size (64 KB there) to megabytes; a small segment size, which the client
/// announces when it connects, keeps it to tens of kilobytes, as over a real network.
fn cramped_socket() -> TcpSocket {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_mss(536).unwrap();
    socket.set_nonblocking(true).unwrap();
    TcpSocket::from_std_stream(socket.into())
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_ends_and_its_job_is_cancelled() {
    let h = start_full(slow_sim(Duration::from_millis(50)), |c| {
        c.send_stall_secs = 1;
        c.sse_keepalive_secs = 1;
    })
    .await;
    let mut stream = cramped_socket().connect(h.bridge.addr).await.unwrap();
    // Partial images of noisy previews are large (about 1 MB each at 512x512): the first one
    // alone is more than the socket buffers hold.
    let body = json!({"model": "sdxl", "prompt": "x", "size": "512x512", "steps": 60,
                      "stream": true, "stream_progress": true, "partial_images": 3})
    .to_string();
    let request = format!(
        "POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    // The event's JSON names its type first, before the image data.
    while !String::from_utf8_lossy(&seen).contains(r#""type":"image_generation.partial_image""#) {
        let n = timeout(Duration::from_secs(60), stream.read(&mut buf))
            .await
            .expect("a partial image comes")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    let job = h.sim.sim.running_id().expect("the job is running");

    // The client stops reading in the middle of the partial image, and keeps the connection.
    let stopped = Instant::now();
    assert!(
        h.wait_until_idle(Duration::from_secs(1) + MARGIN).await,
        "the job kept running for a client that stopped reading"
    );
    let gone = stopped.elapsed();
    assert!(
        gone >= Duration::from_millis(900),
        "cancelled early: {gone:?}"
    );
    let history: Value = reqwest::get(format!("{}/history/{job}", h.sim.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = &history[&job]["status"];
    assert_ne!(
        status["status_str"], "success",
        "the job finished: {status}"
    );
    assert!(
        status.to_string().contains("execution_interrupted"),
        "{status}"
    );
    // What was sent before the close can still be read, and then the stream ends.
    let rest = read_until_closed(&mut stream, MARGIN).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("image_generation.completed"),
        "the job finished"
    );
}

#[tokio::test]
async fn a_compressed_body_gets_415_and_nothing_reaches_comfyui() {
    let h = start().await;
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(json!({"model": MODEL, "prompt": "x"}).to_string())
        .send()
        .await
        .expect("sent");
    let (status, body) = read(res).await;
    assert_eq!(status, 415);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "unsupported_content_encoding");
    assert!(body["error"]["message"].as_str().unwrap().contains("gzip"));
    assert!(h.sim.sim.submitted().is_empty());

    // `identity` is no encoding at all.
    let res = h
        .http
        .post(format!("{}/v1/images/generations", h.url))
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body(json!({"model": MODEL, "prompt": "x", "size": "64x64"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(read(res).await.0, 200);
}
