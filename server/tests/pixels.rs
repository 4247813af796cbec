//! The pixel budget: an input image is measured from its header and refused above the limit
//! before a single pixel is decoded. Tiny files that declare huge images (a 38-byte WebP can
//! say 16000x8000) must cost the bridge nothing. The test reads the process's own resident
//! size, so nothing beside it in this file does more than read a few small files.

mod common;

use std::io::Cursor;

use base64::Engine;
use common::*;
use image::{DynamicImage, ImageFormat, RgbImage, codecs::webp::WebPEncoder};
use serde_json::json;

const WIDE: (u32, u32) = (16000, 8000);

fn encode(format: ImageFormat) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, image::Rgb([9, 99, 199])));
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::WebP => img
            .to_rgba8()
            .write_with_encoder(WebPEncoder::new_lossless(&mut out))
            .unwrap(),
        _ => img.write_to(&mut out, format).unwrap(),
    }
    out.into_inner()
}

/// Bits written least significant first, as DEFLATE and WebP's lossless format read them.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, bits: u32) {
        self.acc |= value << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which DEFLATE packs most significant bit first.
    fn code(&mut self, code: u32, bits: u32) {
        let reversed = code.reverse_bits() >> (32 - bits);
        self.put(u64::from(reversed), bits);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&out[4..]).to_be_bytes());
    out
}

/// A whole, valid 1-bit greyscale PNG of `w`x`h` black pixels: its zero bytes compress to
/// back-references of 258, so it is about a ten-thousandth of its decoded size.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let total = u64::from(h) * (1 + u64::from(w.div_ceil(8)));
    let mut bits = Bits::default();
    bits.put(1, 1); // the last block
    bits.put(1, 2); // fixed codes
    bits.code(0x30, 8); // literal 0
    let mut left = total - 1;
    while left >= 258 {
        bits.code(0b1100_0101, 8); // length 258
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    let mut zlib = vec![0x78, 0x01];
    zlib.extend(bits.finish());
    // Adler-32 of zeros: a stays 1, b counts them.
    let adler = ((total % 65521) as u32) << 16 | 1;
    zlib.extend_from_slice(&adler.to_be_bytes());

    let mut header = Vec::new();
    header.extend_from_slice(&w.to_be_bytes());
    header.extend_from_slice(&h.to_be_bytes());
    header.extend_from_slice(&[1, 0, 0, 0, 0]); // 1 bit, grey, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &header));
    png.extend(chunk(b"IDAT", &zlib));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// A real 8x8 baseline JPEG whose frame header says `w`x`h`.
fn jpeg_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut jpeg = encode(ImageFormat::Jpeg);
    let sof = jpeg
        .windows(2)
        .position(|m| m == [0xff, 0xc0])
        .expect("a baseline frame header");
    // Marker (2), length (2), precision (1), then height and width, big-endian.
    jpeg[sof + 5..sof + 7].copy_from_slice(&(h as u16).to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&(w as u16).to_be_bytes());
    jpeg
}

/// A whole, valid lossless WebP of `w`x`h` pixels of one colour, in 28 bytes: every prefix
/// code has a single symbol, so each pixel takes no bits at all.
fn webp_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(0x2f, 8); // signature
    bits.put(u64::from(w - 1), 14);
    bits.put(u64::from(h - 1), 14);
    bits.put(0, 1); // no alpha
    bits.put(0, 3); // version 0
    bits.put(0, 1); // no transform
    bits.put(0, 1); // no colour cache
    bits.put(0, 1); // one set of prefix codes
    for _ in 0..5 {
        // A simple code with one 1-bit symbol, 0.
        bits.put(1, 1);
        bits.put(0, 1);
        bits.put(0, 1);
        bits.put(0, 1);
    }
    let mut data = bits.finish();
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&(4 + 8 + data.len() as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBPVP8L");
    webp.extend_from_slice(&(data.len() as u32).to_le_bytes());
    webp.extend(data);
    webp
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The process's resident memory now, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn edit_form(name: &str, data: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("model", "weightfree-img2img")
        .text("prompt", "x")
        .part("image", file_part(data, name))
}

#[tokio::test]
async fn images_that_declare_too_many_pixels_cost_nothing() {
    let h = start().await;
    let (w, h_) = WIDE;
    let files = [
        ("wide.webp", webp_declaring(w, h_)),
        ("wide.png", png_declaring(w, h_)),
        ("wide.jpg", jpeg_declaring(w, h_)),
    ];
    for (name, data) in &files {
        assert!(data.len() < 200 * 1024, "{name} is {} bytes", data.len());
    }
    // Warm up everything a first request touches (an image decoded, then refused for want
    // of a mask), so that only the uploads are measured.
    let warm_up = reqwest::multipart::Form::new()
        .text("model", "weightfree-inpaint")
        .text("prompt", "x")
        .part("image", file_part(encode(ImageFormat::Png), "ok.png"));
    let (status, body) = h.post_form("/v1/images/edits", warm_up).await;
    assert_eq!(body["error"]["param"], "mask", "{body}");
    assert_eq!(status, 400);
    let before = rss_kib();

    // Three at once, as in the report that found it, and each kind alone.
    let mut tries = Vec::new();
    for round in 0..3 {
        for (name, data) in &files {
            tries.push((round, name.to_string(), data.clone()));
        }
    }
    let answers = futures::future::join_all(tries.into_iter().map(|(_, name, data)| {
        let h = &h;
        async move {
            let (status, body) = h
                .post_form("/v1/images/edits", edit_form(&name, data))
                .await;
            (name, status, body)
        }
    }))
    .await;
    for (name, status, body) in &answers {
        assert_eq!(*status, 400, "{name} → {body}");
        let error = &body["error"];
        assert_eq!(error["code"], "image_too_large", "{name} → {body}");
        assert_eq!(error["param"], "image", "{name}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("16000x8000"), "{name}: {message}");
        assert!(message.contains("16777216"), "{name}: {message}");
    }
    // The same through a JSON edit and a chat message.
    let data_url = format!(
        "data:image/webp;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&files[0].1)
    );
    let (status, body) = h
        .post(
            "/v1/images/edits",
            json!({"model": "weightfree-img2img", "prompt": "x", "image": data_url}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large");
    let (status, body) = h
        .post(
            "/v1/chat/completions",
            json!({"model": "weightfree-img2img", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": data_url}}
            ]}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large");

    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 8 * 1024,
        "the bridge grew by {grown} KiB refusing tiny files"
    );
    assert!(
        h.sim.sim.submitted().is_empty(),
        "a refused image reached ComfyUI"
    );
}

#[test]
fn the_test_files_are_what_they_claim() {
    // Each declares the size, and the small ones decode as such: the crafting is right.
    for data in [webp_declaring(40, 30), png_declaring(40, 30)] {
        let img = image::load_from_memory(&data).expect("decodes");
        assert_eq!((img.width(), img.height()), (40, 30));
    }
    assert_eq!(webp_declaring(16000, 8000).len(), 28);
    let reader = |data: Vec<u8>| {
        image::ImageReader::new(Cursor::new(data))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap()
    };
    assert_eq!(reader(png_declaring(WIDE.0, WIDE.1)), WIDE);
    assert_eq!(reader(jpeg_declaring(WIDE.0, WIDE.1)), WIDE);
    assert_eq!(reader(webp_declaring(WIDE.0, WIDE.1)), WIDE);
}
