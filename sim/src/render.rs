//! Pixel work: the image/mask tensors of the interpreter, weight-free image ops,
//! the deterministic "diffusion" picture, and PNG/JPEG/WebP encoding.

use std::io::Cursor;

use serde_json::Value;

/// IMAGE tensor `[batch, height, width, channels]` in 0..1, like ComfyUI's.
#[derive(Clone, Debug)]
pub struct Img {
    pub b: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

/// MASK tensor `[batch, height, width]`.
#[derive(Clone, Debug)]
pub struct Mask {
    pub b: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Img {
    pub fn filled(b: usize, h: usize, w: usize, rgb: [f32; 3]) -> Img {
        let mut data = Vec::with_capacity(b * h * w * 3);
        for _ in 0..b * h * w {
            data.extend_from_slice(&rgb);
        }
        Img {
            b,
            h,
            w,
            c: 3,
            data,
        }
    }
    fn frame_len(&self) -> usize {
        self.h * self.w * self.c
    }
    pub fn frame(&self, i: usize) -> &[f32] {
        let n = self.frame_len();
        &self.data[i * n..(i + 1) * n]
    }
    /// One batch entry as 8-bit samples, truncating like `np.clip(255*x).astype(uint8)`.
    pub fn frame_u8(&self, i: usize) -> Vec<u8> {
        self.frame(i).iter().map(|v| to_u8(*v)).collect()
    }
    pub fn map(&self, mut f: impl FnMut(f32) -> f32) -> Img {
        Img {
            data: self.data.iter().map(|v| f(*v)).collect(),
            ..*self
        }
    }
}

impl Mask {
    fn frame_len(&self) -> usize {
        self.h * self.w
    }
    pub fn frame(&self, i: usize) -> &[f32] {
        let n = self.frame_len();
        &self.data[i * n..(i + 1) * n]
    }
    /// The mask as a one-channel image, so the image resamplers apply to it.
    fn as_plane(&self) -> Img {
        Img {
            b: self.b,
            h: self.h,
            w: self.w,
            c: 1,
            data: self.data.clone(),
        }
    }
    fn from_plane(img: Img) -> Mask {
        Mask {
            b: img.b,
            h: img.h,
            w: img.w,
            data: img.data,
        }
    }
    /// `F.interpolate(mask, size, mode="bilinear")`, how ComfyUI fits a mask to an image.
    pub fn resized(&self, w: usize, h: usize) -> Mask {
        if (self.w, self.h) == (w, h) || self.data.is_empty() {
            return self.clone();
        }
        Mask::from_plane(resize(&self.as_plane(), w, h, false))
    }
    pub fn cropped(&self, x: usize, y: usize, w: usize, h: usize) -> Mask {
        if self.data.is_empty() {
            return self.clone();
        }
        Mask::from_plane(crop(&self.as_plane(), x, y, w, h))
    }
    /// `torch.round`, which rounds halves to even.
    pub fn rounded(&self) -> Mask {
        Mask {
            data: self.data.iter().map(|v| v.round_ties_even()).collect(),
            ..self.clone()
        }
    }
    pub fn to_image(&self) -> Img {
        let mut data = Vec::with_capacity(self.data.len() * 3);
        for v in &self.data {
            data.extend_from_slice(&[*v, *v, *v]);
        }
        Img {
            b: self.b,
            h: self.h,
            w: self.w,
            c: 3,
            data,
        }
    }
}

pub(crate) fn to_u8(v: f32) -> u8 {
    (v * 255.0).clamp(0.0, 255.0) as u8
}

/// SplitMix64: tiny, seedable, and stable across platforms and releases.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly standard normal from four 16-bit uniforms: cheap enough for
    /// megapixel noise in unoptimised test builds.
    pub fn gauss(&mut self) -> f32 {
        let r = self.next_u64();
        let s: u32 = (0..4).map(|k| ((r >> (16 * k)) & 0xFFFF) as u32).sum();
        (s as f32 / 65535.0 - 2.0) * 1.732_050_8
    }
}

/// FNV-1a, for turning prompt text into stable colours.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn empty_image(w: usize, h: usize, b: usize, color: u32) -> Img {
    let rgb = [
        ((color >> 16) & 0xFF) as f32 / 255.0,
        ((color >> 8) & 0xFF) as f32 / 255.0,
        (color & 0xFF) as f32 / 255.0,
    ];
    Img::filled(b, h, w, rgb)
}

/// `image + strength * noise`, clamped. The noise is zero-mean with unit
/// variance (a sum of two uniform bytes, four samples per random draw), cheap
/// enough for megapixel images in unoptimised builds.
pub fn add_noise(img: &Img, seed: u64, strength: f32) -> Img {
    let mut rng = Rng::new(seed);
    let scale = strength * 2.449_49 / 255.0;
    let mut data = Vec::with_capacity(img.data.len());
    for chunk in img.data.chunks(4) {
        let r = rng.next_u64();
        for (k, v) in chunk.iter().enumerate() {
            let a = ((r >> (16 * k)) & 0xFF) as f32;
            let b = ((r >> (16 * k + 8)) & 0xFF) as f32;
            data.push((v + (a + b - 255.0) * scale).clamp(0.0, 1.0));
        }
    }
    Img { data, ..*img }
}

pub fn invert(img: &Img) -> Img {
    img.map(|v| 1.0 - v)
}

/// Nearest-neighbour or bilinear resampling of every batch entry.
pub fn resize(img: &Img, w: usize, h: usize, nearest: bool) -> Img {
    let (w, h) = (w.max(1), h.max(1));
    let mut data = Vec::with_capacity(img.b * h * w * img.c);
    let sx = img.w as f32 / w as f32;
    let sy = img.h as f32 / h as f32;
    for bi in 0..img.b {
        let f = img.frame(bi);
        for y in 0..h {
            let fy = ((y as f32 + 0.5) * sy - 0.5).max(0.0);
            let y0 = (fy as usize).min(img.h - 1);
            let y1 = (y0 + 1).min(img.h - 1);
            let ty = fy - y0 as f32;
            for x in 0..w {
                let fx = ((x as f32 + 0.5) * sx - 0.5).max(0.0);
                let x0 = (fx as usize).min(img.w - 1);
                let x1 = (x0 + 1).min(img.w - 1);
                let tx = fx - x0 as f32;
                for ch in 0..img.c {
                    if nearest {
                        let nx = ((x as f32 * sx) as usize).min(img.w - 1);
                        let ny = ((y as f32 * sy) as usize).min(img.h - 1);
                        data.push(f[(ny * img.w + nx) * img.c + ch]);
                    } else {
                        let p = |yy: usize, xx: usize| f[(yy * img.w + xx) * img.c + ch];
                        let top = p(y0, x0) * (1.0 - tx) + p(y0, x1) * tx;
                        let bot = p(y1, x0) * (1.0 - tx) + p(y1, x1) * tx;
                        data.push(top * (1.0 - ty) + bot * ty);
                    }
                }
            }
        }
    }
    Img {
        b: img.b,
        h,
        w,
        c: img.c,
        data,
    }
}

/// Crops to the target aspect ratio around the centre (`crop: "center"`).
pub fn center_crop(img: &Img, w: usize, h: usize) -> Img {
    let old_aspect = img.w as f64 / img.h as f64;
    let new_aspect = w as f64 / h as f64;
    let (mut x, mut y, mut cw, mut ch) = (0, 0, img.w, img.h);
    if old_aspect > new_aspect {
        cw = ((img.w as f64 - img.w as f64 * (old_aspect - new_aspect) / old_aspect).round()
            as usize)
            .max(1);
        x = (img.w - cw.min(img.w)) / 2;
    } else if old_aspect < new_aspect {
        ch = ((img.h as f64 - img.h as f64 * (new_aspect - old_aspect) / new_aspect).round()
            as usize)
            .max(1);
        y = (img.h - ch.min(img.h)) / 2;
    }
    crop(img, x, y, cw, ch)
}

pub fn crop(img: &Img, x: usize, y: usize, w: usize, h: usize) -> Img {
    let x = x.min(img.w.saturating_sub(1));
    let y = y.min(img.h.saturating_sub(1));
    let w = w.min(img.w - x).max(1);
    let h = h.min(img.h - y).max(1);
    let mut data = Vec::with_capacity(img.b * w * h * img.c);
    for bi in 0..img.b {
        let f = img.frame(bi);
        for yy in y..y + h {
            let start = (yy * img.w + x) * img.c;
            data.extend_from_slice(&f[start..start + w * img.c]);
        }
    }
    Img {
        b: img.b,
        h,
        w,
        c: img.c,
        data,
    }
}

/// `node_helpers.image_alpha_fix` for the second image: extra channels are dropped, missing
/// ones (an alpha) are filled with 1.
pub fn match_channels(img: &Img, c: usize) -> Img {
    if img.c == c {
        return img.clone();
    }
    let mut data = Vec::with_capacity(img.b * img.h * img.w * c);
    for px in img.data.chunks(img.c.max(1)) {
        for ch in 0..c {
            data.push(px.get(ch).copied().unwrap_or(1.0));
        }
    }
    Img { c, data, ..*img }
}

/// ComfyUI's ImageBlend: `image1 * (1 - f) + mode(image1, image2) * f`. A second image of
/// another size is first cropped to the first one's aspect around its centre and resized, as
/// `common_upscale(..., crop="center")` does.
pub fn blend(a: &Img, b: &Img, factor: f32, mode: &str) -> Img {
    let b = match_channels(b, a.c);
    let b = if (b.w, b.h) != (a.w, a.h) {
        resize(&center_crop(&b, a.w, a.h), a.w, a.h, false)
    } else {
        b
    };
    let mut data = Vec::with_capacity(a.data.len());
    let n = a.frame_len();
    for (i, x) in a.data.iter().enumerate() {
        let y = b.frame((i / n) % b.b)[i % n];
        let m = match mode {
            "multiply" => x * y,
            "screen" => 1.0 - (1.0 - x) * (1.0 - y),
            "overlay" => {
                if *x <= 0.5 {
                    2.0 * x * y
                } else {
                    1.0 - 2.0 * (1.0 - x) * (1.0 - y)
                }
            }
            "soft_light" => {
                let d = if *x <= 0.25 {
                    ((16.0 * x - 12.0) * x + 4.0) * x
                } else {
                    x.sqrt()
                };
                if y <= 0.5 {
                    x - (1.0 - 2.0 * y) * x * (1.0 - x)
                } else {
                    x + (2.0 * y - 1.0) * (d - x)
                }
            }
            "difference" => x - y,
            _ => y,
        };
        data.push((x * (1.0 - factor) + m * factor).clamp(0.0, 1.0));
    }
    Img { data, ..*a }
}

/// ComfyUI's `composite` with multiplier 1 (ImageCompositeMasked): `src` is pasted onto `dst`
/// with its top-left corner at (x, y), weighted by `mask` (1 = source) bilinearly resized to
/// the source, and cut off at the destination's edges. Batches repeat to the destination's.
pub fn composite(
    dst: &Img,
    src: &Img,
    x: usize,
    y: usize,
    mask: Option<&Mask>,
    resize_source: bool,
) -> Img {
    let src = match_channels(src, dst.c);
    let src = if resize_source && (src.w, src.h) != (dst.w, dst.h) {
        resize(&src, dst.w, dst.h, false)
    } else {
        src
    };
    let mask = mask
        .filter(|m| !m.data.is_empty())
        .map(|m| m.resized(src.w, src.h));
    let (left, top) = (x.min(dst.w), y.min(dst.h));
    let (vis_w, vis_h) = (src.w.min(dst.w - left), src.h.min(dst.h - top));
    let mut out = dst.clone();
    let n = dst.frame_len();
    for bi in 0..dst.b {
        let sf = src.frame(bi % src.b);
        let mf = mask.as_ref().map(|m| m.frame(bi % m.b));
        let df = &mut out.data[bi * n..(bi + 1) * n];
        for yy in 0..vis_h {
            for xx in 0..vis_w {
                let m = mf.map_or(1.0, |f| f[yy * src.w + xx]);
                let d = ((top + yy) * dst.w + left + xx) * dst.c;
                let s = (yy * src.w + xx) * src.c;
                for ch in 0..dst.c {
                    df[d + ch] = m * sf[s + ch] + (1.0 - m) * df[d + ch];
                }
            }
        }
    }
    out
}

/// VAEEncodeForInpaint's `grow_mask_by`: a `g`×`g` box convolution (padding `ceil((g-1)/2)`)
/// of the rounded mask, clamped and rounded, i.e. a dilation whose window starts that padding
/// before each pixel.
pub fn grow_mask(m: &Mask, g: usize) -> Mask {
    let m = m.rounded();
    if g == 0 {
        return m;
    }
    let pad = (g - 1).div_ceil(2);
    // Whether any of `line[i - pad ..= i - pad + g - 1]` (clipped) is set, for every i.
    let dilate = |line: &[f32]| -> Vec<f32> {
        let mut count = vec![0usize; line.len() + 1];
        for (k, v) in line.iter().enumerate() {
            count[k + 1] = count[k] + usize::from(*v > 0.0);
        }
        (0..line.len())
            .map(|i| {
                let lo = i.saturating_sub(pad);
                let hi = (i + g).saturating_sub(pad).min(line.len());
                if hi > lo && count[hi] > count[lo] {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    };
    let mut out = m.clone();
    let n = m.frame_len();
    for bi in 0..m.b {
        let frame = &mut out.data[bi * n..(bi + 1) * n];
        for row in frame.chunks_mut(m.w) {
            let grown = dilate(row);
            row.copy_from_slice(&grown);
        }
        for x in 0..m.w {
            let column: Vec<f32> = (0..m.h).map(|y| frame[y * m.w + x]).collect();
            for (y, v) in dilate(&column).into_iter().enumerate() {
                frame[y * m.w + x] = v;
            }
        }
    }
    out
}

/// Separable box blur (running sums, so cost does not grow with the radius;
/// written over contiguous rows because tests run it unoptimised).
pub fn blur(img: &Img, radius: usize, sigma: f32) -> Img {
    let r = radius.min((sigma * 1.5).round().max(1.0) as usize).max(1);
    let mut out = img.clone();
    let n = img.frame_len();
    for bi in 0..img.b {
        let frame = &mut out.data[bi * n..(bi + 1) * n];
        blur_rows(frame, img.w, img.c, r);
        blur_columns(frame, img.w, img.h, img.c, r);
    }
    out
}

fn blur_rows(f: &mut [f32], w: usize, c: usize, r: usize) {
    let win = 1.0 / (2 * r + 1) as f32;
    let last = w as isize - 1;
    let mut line = vec![0.0f32; w * c];
    for row in f.chunks_mut(w * c) {
        line.copy_from_slice(row);
        for ch in 0..c {
            let at = |x: isize| line[x.clamp(0, last) as usize * c + ch];
            let mut sum = 0.0f32;
            for k in -(r as isize)..=(r as isize) {
                sum += at(k);
            }
            for x in 0..w as isize {
                row[x as usize * c + ch] = sum * win;
                sum += at(x + r as isize + 1) - at(x - r as isize);
            }
        }
    }
}

fn blur_columns(f: &mut [f32], w: usize, h: usize, c: usize, r: usize) {
    let stride = w * c;
    let win = 1.0 / (2 * r + 1) as f32;
    let src = f.to_vec();
    let row = |y: isize| {
        let y = y.clamp(0, h as isize - 1) as usize;
        &src[y * stride..(y + 1) * stride]
    };
    let mut acc = vec![0.0f32; stride];
    for k in -(r as isize)..=(r as isize) {
        for (a, v) in acc.iter_mut().zip(row(k)) {
            *a += v;
        }
    }
    for y in 0..h {
        let out = &mut f[y * stride..(y + 1) * stride];
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = a * win;
        }
        let (add, sub) = (
            row(y as isize + r as isize + 1),
            row(y as isize - r as isize),
        );
        for ((a, p), m) in acc.iter_mut().zip(add).zip(sub) {
            *a += p - m;
        }
    }
}

fn hsv(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let i = h.floor();
    let f = h - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// What a sampler "generates": a soft abstract picture. The palette comes from
/// the positive prompt (and model), the composition from the seed, so prompts and
/// seeds are both visible in the result, and equal inputs give equal pixels.
pub fn picture(w: usize, h: usize, seed: u64, text: &str, model: &str) -> Img {
    let th = hash_str(text);
    let base_hue = (th % 360) as f32 / 360.0 + (hash_str(model) % 40) as f32 / 360.0;
    let scheme = [0.0, 0.08, 0.5, 0.33, 0.58];
    let palette: Vec<[f32; 3]> = (0..5)
        .map(|k| {
            let s = 0.45 + ((th >> (8 + k * 5)) & 31) as f32 / 80.0;
            let v = 0.55 + ((th >> (30 + k * 5)) & 31) as f32 / 80.0;
            hsv(base_hue + scheme[k], s.min(0.95), v.min(0.98))
        })
        .collect();
    let mut rng = Rng::new(seed);
    let angle = rng.unit() * std::f32::consts::TAU;
    let (dx, dy) = (angle.cos(), angle.sin());
    let bg0 = palette[0].map(|c| c * 0.35);
    let bg1 = palette[1];
    let nblobs = 5 + (rng.next_u64() % 5) as usize;
    let blobs: Vec<(f32, f32, f32, [f32; 3], f32)> = (0..nblobs)
        .map(|_| {
            let x = rng.unit();
            let y = rng.unit();
            let r = 0.08 + rng.unit() * 0.3;
            let col = palette[2 + (rng.next_u64() % 3) as usize];
            let a = 0.5 + rng.unit() * 0.5;
            (x, y, r, col, a)
        })
        .collect();
    let mut grain = Rng::new(seed ^ th);
    let mut data = Vec::with_capacity(w * h * 3);
    let scale = w.max(h).max(1) as f32;
    for py in 0..h {
        for px in 0..w {
            let u = px as f32 / scale;
            let v = py as f32 / scale;
            let t = ((u - 0.5) * dx + (v - 0.5) * dy + 0.5).clamp(0.0, 1.0);
            let mut c = [0.0f32; 3];
            for k in 0..3 {
                c[k] = bg0[k] + (bg1[k] - bg0[k]) * t;
            }
            for (bx, by, br, col, a) in &blobs {
                let d2 = ((u - bx) * (u - bx) + (v - by) * (v - by)) / (br * br);
                let wgt = a / (1.0 + d2 * d2 * 2.0);
                for k in 0..3 {
                    c[k] += (col[k] - c[k]) * wgt;
                }
            }
            let g = (grain.unit() - 0.5) * 0.03;
            for v in c {
                data.push((v + g).clamp(0.0, 1.0));
            }
        }
    }
    Img {
        b: 1,
        h,
        w,
        c: 3,
        data,
    }
}

/// A step-`i`-of-`n` preview: the final picture shrunk to fit 512 and mixed with
/// seeded noise that fades out, so previews converge to the result.
pub fn preview_frame(small: &Img, seed: u64, step: usize, steps: usize) -> Img {
    let t = (step + 1) as f32 / steps.max(1) as f32;
    let keep = t.powf(0.7);
    let mut rng = Rng::new(seed.wrapping_add(step as u64 * 7919));
    small.map(|v| (v * keep + (0.5 + 0.25 * rng.gauss()) * (1.0 - keep)).clamp(0.0, 1.0))
}

pub fn fit_within(img: &Img, max_side: usize) -> Img {
    let side = img.w.max(img.h);
    if side <= max_side {
        return img.clone();
    }
    let s = max_side as f32 / side as f32;
    resize(
        img,
        ((img.w as f32 * s) as usize).max(1),
        ((img.h as f32 * s) as usize).max(1),
        true,
    )
}

pub fn encode_png(
    data: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    texts: &[(String, String)],
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(match channels {
            1 => png::ColorType::Grayscale,
            4 => png::ColorType::Rgba,
            _ => png::ColorType::Rgb,
        });
        enc.set_depth(png::BitDepth::Eight);
        // Deflate in an unoptimised build costs seconds per megapixel; tests
        // only need valid PNGs, releases get real compression.
        enc.set_compression(if cfg!(debug_assertions) {
            png::Compression::NoCompression
        } else {
            png::Compression::Fast
        });
        for (k, v) in texts {
            enc.add_text_chunk(k.clone(), v.clone())
                .map_err(|e| e.to_string())?;
        }
        let mut wr = enc.write_header().map_err(|e| e.to_string())?;
        wr.write_image_data(data).map_err(|e| e.to_string())?;
        wr.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

pub(crate) fn encode_jpeg(rgb: &[u8], w: usize, h: usize, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn encode_webp(rgba: &[u8], w: usize, h: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(rgba, w as u32, h as u32, image::ExtendedColorType::Rgba8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes an uploaded picture into RGBA8 (and whether it really had alpha).
pub(crate) fn decode(bytes: &[u8]) -> Result<(image::RgbaImage, bool), String> {
    let img = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let alpha = img.color().has_alpha();
    Ok((img.to_rgba8(), alpha))
}

/// The `tEXt` chunks of a PNG, in file order (SaveImage puts the queued graph
/// under `prompt`, as real ComfyUI does).
pub fn png_text_chunks(png: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if png.len() < 8 || &png[..8] != b"\x89PNG\r\n\x1a\n" {
        return out;
    }
    let mut pos = 8;
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes([png[pos], png[pos + 1], png[pos + 2], png[pos + 3]]) as usize;
        let kind = &png[pos + 4..pos + 8];
        let start = pos + 8;
        let Some(end) = start.checked_add(len).filter(|e| *e <= png.len()) else {
            break;
        };
        if kind == b"tEXt" {
            let body = &png[start..end];
            if let Some(z) = body.iter().position(|b| *b == 0) {
                let latin1 = |b: &[u8]| b.iter().map(|c| char::from(*c)).collect::<String>();
                out.push((latin1(&body[..z]), latin1(&body[z + 1..])));
            }
        }
        if kind == b"IEND" {
            break;
        }
        pos = end + 4;
    }
    out
}

/// `json.dumps(v)` as Python writes it (`", "`/`": "` separators, ASCII-only), so
/// metadata chunks read like real ComfyUI's.
pub(crate) fn py_json(v: &Value) -> String {
    let mut s = String::new();
    write_py_json(v, &mut s);
    s
}

fn write_py_json(v: &Value, s: &mut String) {
    match v {
        Value::Object(m) => {
            s.push('{');
            for (i, (k, val)) in m.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_py_str(k, s);
                s.push_str(": ");
                write_py_json(val, s);
            }
            s.push('}');
        }
        Value::Array(a) => {
            s.push('[');
            for (i, val) in a.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                write_py_json(val, s);
            }
            s.push(']');
        }
        Value::String(t) => write_py_str(t, s),
        other => s.push_str(&other.to_string()),
    }
}

fn write_py_str(t: &str, s: &mut String) {
    s.push('"');
    for ch in t.chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    s.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_deterministic_and_seed_dependent() {
        let a = picture(64, 48, 1, "a red fox", "m");
        let b = picture(64, 48, 1, "a red fox", "m");
        let c = picture(64, 48, 2, "a red fox", "m");
        let d = picture(64, 48, 1, "a blue whale", "m");
        assert_eq!(a.data, b.data);
        let diff = |x: &Img, y: &Img| {
            x.data
                .iter()
                .zip(&y.data)
                .map(|(p, q)| (p - q).abs())
                .sum::<f32>()
                / x.data.len() as f32
        };
        assert!(diff(&a, &c) > 0.02, "seeds should differ visibly");
        assert!(diff(&a, &d) > 0.02, "prompts should differ visibly");
    }

    #[test]
    fn png_text_roundtrip_and_python_json() {
        let v: Value = serde_json::json!({"a": [1, 2.5, "é\n"]});
        let text = py_json(&v);
        assert_eq!(text, r#"{"a": [1, 2.5, "\u00e9\n"]}"#);
        let png = encode_png(&[0u8; 12], 2, 2, 3, &[("prompt".into(), text.clone())]).unwrap();
        assert_eq!(png_text_chunks(&png), vec![("prompt".to_string(), text)]);
    }

    #[test]
    fn blur_keeps_flat_images_flat_and_smooths_noise() {
        let flat = empty_image(20, 10, 1, 0x336699);
        let b = blur(&flat, 5, 2.0);
        for (p, q) in flat.data.iter().zip(&b.data) {
            assert!((p - q).abs() < 1e-4);
        }
        let noisy = add_noise(&flat, 3, 0.5);
        let var = |i: &Img| {
            let m = i.data.iter().sum::<f32>() / i.data.len() as f32;
            i.data.iter().map(|v| (v - m) * (v - m)).sum::<f32>()
        };
        assert!(var(&blur(&noisy, 5, 2.0)) < var(&noisy) / 2.0);
    }

    fn mask(w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> Mask {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y));
        Mask {
            b: 1,
            h,
            w,
            data: data.collect(),
        }
    }

    #[test]
    fn composite_pastes_at_an_offset_and_cuts_at_the_edges() {
        let red = Img::filled(1, 4, 4, [1.0, 0.0, 0.0]);
        let blue = Img::filled(1, 3, 3, [0.0, 0.0, 1.0]);
        let out = composite(&red, &blue, 2, 1, None, false);
        for y in 0..4 {
            for x in 0..4 {
                let k = (y * 4 + x) * 3;
                let want = if x >= 2 && y >= 1 {
                    [0.0, 0.0, 1.0]
                } else {
                    [1.0, 0.0, 0.0]
                };
                assert_eq!(out.data[k..k + 3], want, "{x},{y}");
            }
        }
        // The mask is fitted to the source (1 = source) before blending.
        let half = mask(1, 1, |_, _| 0.25);
        let out = composite(&red, &blue, 0, 0, Some(&half), false);
        assert_eq!(out.data[..3], [0.75, 0.0, 0.25]);
        assert_eq!(
            out.data[(3 * 4 + 3) * 3..],
            [1.0, 0.0, 0.0],
            "outside the source"
        );
        let out = composite(&red, &blue, 0, 0, None, true);
        assert!(
            out.data.chunks(3).all(|p| p == [0.0, 0.0, 1.0]),
            "resized source covers all"
        );
        let out = composite(&red, &blue, 9, 9, None, false);
        assert_eq!(out.data, red.data, "placed past the edge: nothing visible");
    }

    #[test]
    fn grow_mask_is_vae_encode_for_inpaint_dilation() {
        let dot = mask(10, 10, |x, y| if (x, y) == (5, 5) { 1.0 } else { 0.0 });
        // Window [i - 3, i + 2] for grow_mask_by 6: rows and columns 3..=8.
        let grown = grow_mask(&dot, 6);
        for y in 0..10 {
            for x in 0..10 {
                let want = f32::from(u8::from((3..=8).contains(&x) && (3..=8).contains(&y)));
                assert_eq!(grown.data[y * 10 + x], want, "{x},{y}");
            }
        }
        assert_eq!(grow_mask(&dot, 1).data, dot.data);
        // torch.round: halves go to even, so 0.5 is not masked.
        let soft = mask(2, 1, |x, _| if x == 0 { 0.5 } else { 0.51 });
        assert_eq!(grow_mask(&soft, 0).data, [0.0, 1.0]);
    }

    #[test]
    fn resize_and_crop_shapes() {
        let img = empty_image(320, 200, 2, 0);
        let c = center_crop(&img, 256, 256);
        assert_eq!((c.w, c.h, c.b), (200, 200, 2));
        let r = resize(&c, 256, 256, false);
        assert_eq!((r.w, r.h), (256, 256));
        assert_eq!(r.data.len(), 2 * 256 * 256 * 3);
    }
}
