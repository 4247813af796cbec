//! The interpreter's values and the weight-free node implementations. Model
//! nodes pass descriptive tokens around; samplers turn them into pictures.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::render::{self, Img, Mask};

#[derive(Clone, Debug, Default)]
pub(crate) struct Token {
    pub kind: String,
    /// Model file (with LoRAs appended), sampler name, ...
    pub name: String,
    /// Prompt text for CONDITIONING and guiders.
    pub text: String,
    pub seed: u64,
    pub steps: u32,
    pub denoise: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct Latent {
    pub w: usize,
    pub h: usize,
    pub b: usize,
    /// Pixels this latent "decodes" to once sampled.
    pub samples: Option<Arc<Img>>,
    /// The encoded input picture (img2img / inpainting).
    pub source: Option<Arc<Img>>,
    pub mask: Option<Arc<Mask>>,
}

#[derive(Clone, Debug)]
pub(crate) enum Val {
    Image(Arc<Img>),
    Mask(Arc<Mask>),
    Latent(Arc<Latent>),
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
    Json(Value),
    Token(Arc<Token>),
}

impl Val {
    pub(crate) fn from_json(v: &Value) -> Val {
        match v {
            Value::Bool(b) => Val::Bool(*b),
            Value::String(s) => Val::Str(s.clone()),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Val::Int(i128::from(i)),
                (_, Some(u)) => Val::Int(i128::from(u)),
                _ => Val::Float(n.as_f64().unwrap_or(0.0)),
            },
            other => Val::Json(other.clone()),
        }
    }

    fn type_name(&self) -> &str {
        match self {
            Val::Image(_) => "IMAGE",
            Val::Mask(_) => "MASK",
            Val::Latent(_) => "LATENT",
            Val::Int(_) => "INT",
            Val::Float(_) => "FLOAT",
            Val::Str(_) => "STRING",
            Val::Bool(_) => "BOOLEAN",
            Val::Json(_) => "*",
            Val::Token(t) => &t.kind,
        }
    }

    /// Python's `str(value)` of what the node would have received.
    pub(crate) fn py_repr(&self) -> String {
        match self {
            Val::Image(i) => tensor_repr(&[i.b, i.h, i.w, i.c], &i.data),
            Val::Mask(m) => tensor_repr(&[m.b, m.h, m.w], &m.data),
            Val::Latent(l) => format!(
                "{{'samples': tensor(shape=[{}, 4, {}, {}])}}",
                l.b,
                l.h / 8,
                l.w / 8
            ),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => crate::validate::py_num(&json!(f)),
            Val::Str(s) => s.clone(),
            Val::Bool(b) => if *b { "True" } else { "False" }.into(),
            Val::Json(v) => crate::render::py_json(v),
            Val::Token(t) => format!("<comfy.{} object>", t.kind.to_lowercase()),
        }
    }

    /// What PreviewAny shows: strings as-is, numbers via `str`, the rest via
    /// `json.dumps` or `str`.
    pub(crate) fn preview_text(&self) -> String {
        self.py_repr()
    }
}

/// torch's tensor repr, summarised with 3 edge items like `print(tensor)`.
fn tensor_repr(shape: &[usize], data: &[f32]) -> String {
    let summarize = data.len() > 1000;
    let all_int = data.iter().all(|v| v.fract() == 0.0);
    let fmt = |v: f32| {
        if all_int {
            format!("{v:.0}.")
        } else {
            format!("{v:.4}")
        }
    };
    let width = data
        .iter()
        .take(4096)
        .map(|v| fmt(*v).len())
        .max()
        .unwrap_or(1);
    fn rec(
        shape: &[usize],
        data: &[f32],
        indent: usize,
        summarize: bool,
        f: &dyn Fn(f32) -> String,
    ) -> String {
        let n = shape.first().copied().unwrap_or(0);
        let stride: usize = shape[1..].iter().product();
        let idx: Vec<Option<usize>> = if summarize && n > 6 {
            (0..3)
                .map(Some)
                .chain([None])
                .chain((n - 3..n).map(Some))
                .collect()
        } else {
            (0..n).map(Some).collect()
        };
        if shape.len() == 1 {
            let parts: Vec<String> = idx
                .iter()
                .map(|i| {
                    i.map_or("...".to_string(), |i| {
                        f(data.get(i).copied().unwrap_or(0.0))
                    })
                })
                .collect();
            return format!("[{}]", parts.join(", "));
        }
        let parts: Vec<String> = idx
            .iter()
            .map(|i| match i {
                Some(i) => {
                    let start = (i * stride).min(data.len());
                    let end = ((i + 1) * stride).min(data.len());
                    rec(&shape[1..], &data[start..end], indent + 1, summarize, f)
                }
                None => "...".to_string(),
            })
            .collect();
        let sep = format!(
            ",{}{}",
            "\n".repeat(shape.len() - 1),
            " ".repeat(indent + 1)
        );
        format!("[{}]", parts.join(&sep))
    }
    let f = move |v: f32| format!("{:>width$}", fmt(v));
    format!("tensor({})", rec(shape, data, 7, summarize, &f))
}

pub(crate) type Inputs = HashMap<String, Val>;

/// A Python exception raised by a node.
#[derive(Debug, Clone)]
pub(crate) struct NodeError {
    pub kind: String,
    pub message: String,
}

pub(crate) fn err(kind: &str, message: impl Into<String>) -> NodeError {
    NodeError {
        kind: kind.to_string(),
        message: message.into(),
    }
}

fn missing(name: &str) -> NodeError {
    err(
        "TypeError",
        format!("missing required positional argument: '{name}'"),
    )
}

pub(crate) fn image(i: &Inputs, name: &str) -> Result<Arc<Img>, NodeError> {
    match i.get(name) {
        Some(Val::Image(img)) => Ok(img.clone()),
        Some(Val::Mask(m)) => Ok(Arc::new(m.to_image())),
        Some(Val::Latent(l)) => Ok(decode_latent(l)),
        _ => Err(missing(name)),
    }
}

fn mask(i: &Inputs, name: &str) -> Result<Arc<Mask>, NodeError> {
    match i.get(name) {
        Some(Val::Mask(m)) => Ok(m.clone()),
        _ => Err(missing(name)),
    }
}

fn latent(i: &Inputs, name: &str) -> Result<Arc<Latent>, NodeError> {
    match i.get(name) {
        Some(Val::Latent(l)) => Ok(l.clone()),
        _ => Err(missing(name)),
    }
}

fn token(i: &Inputs, name: &str) -> Arc<Token> {
    match i.get(name) {
        Some(Val::Token(t)) => t.clone(),
        _ => Arc::new(Token::default()),
    }
}

pub(crate) fn int(i: &Inputs, name: &str, default: i128) -> i128 {
    match i.get(name) {
        Some(Val::Int(v)) => *v,
        Some(Val::Float(f)) => *f as i128,
        Some(Val::Bool(b)) => i128::from(*b),
        _ => default,
    }
}

pub(crate) fn float(i: &Inputs, name: &str, default: f64) -> f64 {
    match i.get(name) {
        Some(Val::Float(f)) => *f,
        Some(Val::Int(v)) => *v as f64,
        _ => default,
    }
}

fn boolean(i: &Inputs, name: &str, default: bool) -> bool {
    match i.get(name) {
        Some(Val::Bool(b)) => *b,
        Some(Val::Int(v)) => *v != 0,
        _ => default,
    }
}

pub(crate) fn string(i: &Inputs, name: &str) -> String {
    match i.get(name) {
        Some(Val::Str(s)) => s.clone(),
        Some(v) => v.py_repr(),
        None => String::new(),
    }
}

/// The simulator keeps pixels in memory as f32; refuse what would not fit
/// instead of aborting the process, the way ComfyUI reports an OOM.
const MAX_PIXELS: usize = 48 * 1024 * 1024;

fn check_alloc(b: usize, w: usize, h: usize) -> Result<(), NodeError> {
    match b.checked_mul(w).and_then(|n| n.checked_mul(h)) {
        Some(n) if n <= MAX_PIXELS => Ok(()),
        _ => Err(err(
            "torch.OutOfMemoryError",
            format!(
                "Allocation on device: {b}x{h}x{w} images do not fit in the simulator's memory"
            ),
        )),
    }
}

fn dim(v: i128) -> usize {
    v.clamp(1, 16384) as usize
}

fn seed_of(v: i128) -> u64 {
    v.clamp(0, i128::from(u64::MAX)) as u64
}

fn tok(t: Token) -> Val {
    Val::Token(Arc::new(t))
}

/// Neutral gray, what decoding an all-zero latent looks like.
fn decode_latent(l: &Latent) -> Arc<Img> {
    if let Some(s) = &l.samples {
        return s.clone();
    }
    if let Some(s) = &l.source {
        return s.clone();
    }
    Arc::new(Img::filled(l.b, l.h, l.w, [0.47, 0.45, 0.42]))
}

/// ComfyUI's `pixel_space` VAE hands the latent tensor through as pixels: an SD latent is an
/// eighth of the image on a side with four channels, so it decodes to a small RGBA image, and
/// an empty latent (zeros) to mid grey, `(0 + 1) / 2`, alpha included.
fn pixel_space_decode(l: &Latent) -> Arc<Img> {
    let (w, h) = ((l.w / 8).max(1), (l.h / 8).max(1));
    let img = match (&l.samples, &l.source) {
        (Some(px), _) | (None, Some(px)) => {
            render::match_channels(&render::resize(px, w, h, false), 4)
        }
        (None, None) => Img {
            b: l.b,
            h,
            w,
            c: 4,
            data: vec![0.5; l.b * h * w * 4],
        },
    };
    Arc::new(img)
}

/// What `VAE.encode` keeps of the pixels: each side cut down to a multiple of 8 around the
/// centre (`vae_encode_crop_pixels`), as (x offset, y offset, width, height).
fn vae_crop(px: &Img) -> (usize, usize, usize, usize) {
    // Below 8 pixels real ComfyUI fails on an empty tensor; the simulator keeps one block.
    let side = |n: usize| {
        if n < 8 {
            (8, 0)
        } else {
            (n / 8 * 8, (n % 8) / 2)
        }
    };
    let ((w, x), (h, y)) = (side(px.w), side(px.h));
    (x, y, w, h)
}

fn empty_latent(w: i128, h: i128, b: i128) -> Val {
    Val::Latent(Arc::new(Latent {
        w: dim(w) / 8 * 8,
        h: dim(h) / 8 * 8,
        b: b.clamp(1, 4096) as usize,
        samples: None,
        source: None,
        mask: None,
    }))
}

fn with_lora(model: &Token, lora: &str) -> Token {
    Token {
        name: format!("{}+{}", model.name, lora),
        ..model.clone()
    }
}

/// Evaluates a node that needs no events or files. Unknown classes pass a
/// matching input through or give a neutral value of each return type.
pub(crate) fn eval(
    class: &str,
    i: &Inputs,
    return_types: &[String],
) -> Result<Vec<Val>, NodeError> {
    let batch = int(i, "batch_size", 1).clamp(1, 4096) as usize;
    match class {
        "EmptyImage"
        | "EmptyLatentImage"
        | "EmptySD3LatentImage"
        | "EmptyHunyuanLatentVideo"
        | "SolidMask" => check_alloc(batch, dim(int(i, "width", 512)), dim(int(i, "height", 512)))?,
        "ImageScale" => check_alloc(
            image(i, "image")?.b,
            dim(int(i, "width", 512)),
            dim(int(i, "height", 512)),
        )?,
        "ImageScaleBy" => {
            let img = image(i, "image")?;
            let s = float(i, "scale_by", 1.0).clamp(0.0, 8.0);
            check_alloc(
                img.b,
                (img.w as f64 * s) as usize + 1,
                (img.h as f64 * s) as usize + 1,
            )?
        }
        _ => {}
    }
    let out = match class {
        "EmptyImage" => vec![Val::Image(Arc::new(render::empty_image(
            dim(int(i, "width", 512)),
            dim(int(i, "height", 512)),
            int(i, "batch_size", 1).clamp(1, 4096) as usize,
            int(i, "color", 0).clamp(0, 0xFF_FFFF) as u32,
        )))],
        "ImageAddNoise" => vec![Val::Image(Arc::new(render::add_noise(
            &*image(i, "image")?,
            seed_of(int(i, "seed", 0)),
            float(i, "strength", 0.5) as f32,
        )))],
        "ImageInvert" => vec![Val::Image(Arc::new(render::invert(&*image(i, "image")?)))],
        "ImageBlend" => vec![Val::Image(Arc::new(render::blend(
            &*image(i, "image1")?,
            &*image(i, "image2")?,
            float(i, "blend_factor", 0.5) as f32,
            &string(i, "blend_mode"),
        )))],
        "ImageScale" => {
            let img = image(i, "image")?;
            let (mut w, mut h) = (
                int(i, "width", 512).max(0) as usize,
                int(i, "height", 512).max(0) as usize,
            );
            if w == 0 && h == 0 {
                return Ok(vec![Val::Image(img)]);
            }
            if w == 0 {
                w = ((img.w as f64 * h as f64 / img.h as f64).round() as usize).max(1);
            } else if h == 0 {
                h = ((img.h as f64 * w as f64 / img.w as f64).round() as usize).max(1);
            }
            let src = if string(i, "crop") == "center" {
                render::center_crop(&img, w, h)
            } else {
                (*img).clone()
            };
            let nearest = string(i, "upscale_method") == "nearest-exact";
            vec![Val::Image(Arc::new(render::resize(
                &src,
                w.min(16384),
                h.min(16384),
                nearest,
            )))]
        }
        "ImageScaleBy" => {
            let img = image(i, "image")?;
            let s = float(i, "scale_by", 1.0);
            let w = ((img.w as f64 * s).round() as usize).clamp(1, 16384);
            let h = ((img.h as f64 * s).round() as usize).clamp(1, 16384);
            let nearest = string(i, "upscale_method") == "nearest-exact";
            vec![Val::Image(Arc::new(render::resize(&img, w, h, nearest)))]
        }
        "ImageBlur" => vec![Val::Image(Arc::new(render::blur(
            &*image(i, "image")?,
            int(i, "blur_radius", 1).clamp(1, 31) as usize,
            float(i, "sigma", 1.0) as f32,
        )))],
        "ImageToMask" => {
            let img = image(i, "image")?;
            let ch = match string(i, "channel").as_str() {
                "green" => 1,
                "blue" => 2,
                "alpha" => 3,
                _ => 0,
            };
            if ch >= img.c {
                return Err(err(
                    "IndexError",
                    format!(
                        "index {ch} is out of bounds for dimension 3 with size {}\n",
                        img.c
                    ),
                ));
            }
            let data = img.data.iter().skip(ch).step_by(img.c).copied().collect();
            vec![Val::Mask(Arc::new(Mask {
                b: img.b,
                h: img.h,
                w: img.w,
                data,
            }))]
        }
        "MaskToImage" => vec![Val::Image(Arc::new(mask(i, "mask")?.to_image()))],
        "InvertMask" => {
            let m = mask(i, "mask")?;
            vec![Val::Mask(Arc::new(Mask {
                data: m.data.iter().map(|v| 1.0 - v).collect(),
                ..(*m).clone()
            }))]
        }
        "SolidMask" => {
            let (w, h) = (dim(int(i, "width", 512)), dim(int(i, "height", 512)));
            vec![Val::Mask(Arc::new(Mask {
                b: 1,
                h,
                w,
                data: vec![float(i, "value", 1.0) as f32; w * h],
            }))]
        }
        "PrimitiveInt" => vec![Val::Int(int(i, "value", 0))],
        "PrimitiveFloat" => vec![Val::Float(float(i, "value", 0.0))],
        "PrimitiveBoolean" => vec![i.get("value").cloned().unwrap_or(Val::Bool(false))],
        "PrimitiveString" | "PrimitiveStringMultiline" => vec![Val::Str(string(i, "value"))],
        "StringConcatenate" => vec![Val::Str(format!(
            "{}{}{}",
            string(i, "string_a"),
            string(i, "delimiter"),
            string(i, "string_b")
        ))],
        "CheckpointLoaderSimple" => {
            let name = string(i, "ckpt_name");
            vec![
                tok(Token {
                    kind: "MODEL".into(),
                    name: name.clone(),
                    ..Default::default()
                }),
                tok(Token {
                    kind: "CLIP".into(),
                    name: name.clone(),
                    ..Default::default()
                }),
                tok(Token {
                    kind: "VAE".into(),
                    name,
                    ..Default::default()
                }),
            ]
        }
        "UNETLoader" => vec![tok(Token {
            kind: "MODEL".into(),
            name: string(i, "unet_name"),
            ..Default::default()
        })],
        "CLIPLoader" => vec![tok(Token {
            kind: "CLIP".into(),
            name: string(i, "clip_name"),
            ..Default::default()
        })],
        "VAELoader" => vec![tok(Token {
            kind: "VAE".into(),
            name: string(i, "vae_name"),
            ..Default::default()
        })],
        "LoraLoader" => {
            let lora = string(i, "lora_name");
            vec![
                tok(with_lora(&token(i, "model"), &lora)),
                tok(with_lora(&token(i, "clip"), &lora)),
            ]
        }
        "LoraLoaderModelOnly" => vec![tok(with_lora(&token(i, "model"), &string(i, "lora_name")))],
        "CLIPTextEncode" => vec![tok(Token {
            kind: "CONDITIONING".into(),
            text: string(i, "text"),
            ..Default::default()
        })],
        "ConditioningZeroOut" => vec![tok(Token {
            kind: "CONDITIONING".into(),
            ..Default::default()
        })],
        "EmptyLatentImage" | "EmptySD3LatentImage" | "EmptyHunyuanLatentVideo" => {
            vec![empty_latent(
                int(i, "width", 512),
                int(i, "height", 512),
                int(i, "batch_size", 1),
            )]
        }
        "VAEDecode" => {
            let l = latent(i, "samples")?;
            let decoded = if token(i, "vae").name == "pixel_space" {
                pixel_space_decode(&l)
            } else {
                decode_latent(&l)
            };
            vec![Val::Image(decoded)]
        }
        "VAEEncode" => {
            let px = image(i, "pixels")?;
            let (x, y, w, h) = vae_crop(&px);
            let src = if (w, h) != (px.w, px.h) {
                Arc::new(render::crop(&px, x, y, w, h))
            } else {
                px
            };
            vec![Val::Latent(Arc::new(Latent {
                w,
                h,
                b: src.b,
                samples: None,
                source: Some(src),
                mask: None,
            }))]
        }
        // The masked pixels are greyed out before encoding (so only a full denoise paints
        // them properly) and the noise mask is the rounded mask grown by `grow_mask_by`.
        "VAEEncodeForInpaint" => {
            let px = image(i, "pixels")?;
            let m = mask(i, "mask")?.resized(px.w, px.h);
            let (x, y, w, h) = vae_crop(&px);
            let (px, m) = if (w, h) != (px.w, px.h) {
                (render::crop(&px, x, y, w, h), m.cropped(x, y, w, h))
            } else {
                ((*px).clone(), m)
            };
            let repaint = m.rounded();
            let mut grey = px;
            let n = grey.h * grey.w;
            for bi in 0..grey.b {
                let masked = repaint.frame(bi % repaint.b);
                let frame = &mut grey.data[bi * n * grey.c..(bi + 1) * n * grey.c];
                for (k, pixel) in frame.chunks_mut(grey.c).enumerate() {
                    let stay = 1.0 - masked.get(k).copied().unwrap_or(0.0);
                    for v in pixel.iter_mut().take(3) {
                        *v = (*v - 0.5) * stay + 0.5;
                    }
                }
            }
            let grow = int(i, "grow_mask_by", 6).clamp(0, 64) as usize;
            vec![Val::Latent(Arc::new(Latent {
                w,
                h,
                b: grey.b,
                samples: None,
                source: Some(Arc::new(grey)),
                mask: Some(Arc::new(render::grow_mask(&m, grow))),
            }))]
        }
        "ImageCompositeMasked" => {
            let m = match i.get("mask") {
                Some(Val::Mask(m)) => Some(m.clone()),
                _ => None,
            };
            vec![Val::Image(Arc::new(render::composite(
                &*image(i, "destination")?,
                &*image(i, "source")?,
                int(i, "x", 0).clamp(0, 16384) as usize,
                int(i, "y", 0).clamp(0, 16384) as usize,
                m.as_deref(),
                boolean(i, "resize_source", false),
            )))]
        }
        "SetLatentNoiseMask" => {
            let l = latent(i, "samples")?;
            vec![Val::Latent(Arc::new(Latent {
                mask: Some(mask(i, "mask")?),
                ..(*l).clone()
            }))]
        }
        "RandomNoise" => vec![tok(Token {
            kind: "NOISE".into(),
            seed: seed_of(int(i, "noise_seed", 0)),
            ..Default::default()
        })],
        "BasicGuider" => vec![tok(Token {
            kind: "GUIDER".into(),
            name: token(i, "model").name.clone(),
            text: token(i, "conditioning").text.clone(),
            ..Default::default()
        })],
        "CFGGuider" => vec![tok(Token {
            kind: "GUIDER".into(),
            name: token(i, "model").name.clone(),
            text: token(i, "positive").text.clone(),
            ..Default::default()
        })],
        "KSamplerSelect" => vec![tok(Token {
            kind: "SAMPLER".into(),
            name: string(i, "sampler_name"),
            ..Default::default()
        })],
        "BasicScheduler" => vec![tok(Token {
            kind: "SIGMAS".into(),
            steps: int(i, "steps", 20).clamp(1, 10000) as u32,
            denoise: float(i, "denoise", 1.0),
            ..Default::default()
        })],
        "GetImageSize" => {
            let img = image(i, "image")?;
            vec![
                Val::Int(img.w as i128),
                Val::Int(img.h as i128),
                Val::Int(img.b as i128),
            ]
        }
        _ => return Ok(fallback(i, return_types)),
    };
    Ok(out)
}

fn fallback(i: &Inputs, return_types: &[String]) -> Vec<Val> {
    let mut inputs: Vec<(&String, &Val)> = i.iter().collect();
    inputs.sort_by(|a, b| a.0.cmp(b.0));
    return_types
        .iter()
        .map(|t| {
            if let Some((_, v)) = inputs.iter().find(|(_, v)| v.type_name() == t) {
                return (*v).clone();
            }
            match t.as_str() {
                "IMAGE" => Val::Image(Arc::new(Img::filled(1, 64, 64, [0.0; 3]))),
                "MASK" => Val::Mask(Arc::new(Mask {
                    b: 1,
                    h: 64,
                    w: 64,
                    data: vec![0.0; 64 * 64],
                })),
                "LATENT" => empty_latent(512, 512, 1),
                "INT" => Val::Int(0),
                "FLOAT" => Val::Float(0.0),
                "STRING" => Val::Str(String::new()),
                "BOOLEAN" => Val::Bool(false),
                other => tok(Token {
                    kind: other.to_string(),
                    ..Default::default()
                }),
            }
        })
        .collect()
}

pub(crate) fn is_sampler(class: &str) -> bool {
    matches!(
        class,
        "KSampler" | "KSamplerAdvanced" | "SamplerCustom" | "SamplerCustomAdvanced"
    )
}

/// Nodes too cheap to deserve the simulated per-node latency.
pub(crate) fn is_trivial(class: &str) -> bool {
    class.starts_with("Primitive")
        || matches!(
            class,
            "StringConcatenate"
                | "KSamplerSelect"
                | "RandomNoise"
                | "BasicScheduler"
                | "BasicGuider"
                | "CFGGuider"
                | "ConditioningZeroOut"
                | "PreviewAny"
                | "GetImageSize"
        )
}

/// What a sampler node will produce and how many progress ticks it takes.
pub(crate) struct SamplerPlan {
    pub steps: usize,
    pub seed: u64,
    pub text: String,
    pub model: String,
    pub denoise: f64,
    pub latent: Arc<Latent>,
    pub outputs: usize,
}

pub(crate) fn sampler_plan(class: &str, i: &Inputs) -> Result<SamplerPlan, NodeError> {
    let lat = latent(i, "latent_image")?;
    let plan = match class {
        "KSampler" => SamplerPlan {
            steps: int(i, "steps", 20).clamp(1, 10000) as usize,
            seed: seed_of(int(i, "seed", 0)),
            text: token(i, "positive").text.clone(),
            model: token(i, "model").name.clone(),
            denoise: float(i, "denoise", 1.0),
            latent: lat,
            outputs: 1,
        },
        "KSamplerAdvanced" => {
            let steps = int(i, "steps", 20).clamp(1, 10000);
            let start = int(i, "start_at_step", 0).clamp(0, steps);
            let end = int(i, "end_at_step", 10000).clamp(start, steps);
            SamplerPlan {
                steps: (end - start) as usize,
                seed: seed_of(int(i, "noise_seed", 0)),
                text: token(i, "positive").text.clone(),
                model: token(i, "model").name.clone(),
                denoise: 1.0 - start as f64 / steps as f64,
                latent: lat,
                outputs: 1,
            }
        }
        "SamplerCustom" => {
            let sig = token(i, "sigmas");
            SamplerPlan {
                steps: sig.steps.max(1) as usize,
                seed: seed_of(int(i, "noise_seed", 0)),
                text: token(i, "positive").text.clone(),
                model: token(i, "model").name.clone(),
                denoise: if sig.steps == 0 { 1.0 } else { sig.denoise },
                latent: lat,
                outputs: 2,
            }
        }
        _ => {
            let sig = token(i, "sigmas");
            let guider = token(i, "guider");
            SamplerPlan {
                steps: sig.steps.max(1) as usize,
                seed: token(i, "noise").seed,
                text: guider.text.clone(),
                model: guider.name.clone(),
                denoise: if sig.steps == 0 { 1.0 } else { sig.denoise },
                latent: lat,
                outputs: 2,
            }
        }
    };
    Ok(plan)
}

/// The "denoised" result: one picture per batch entry (seed + index), pulled
/// toward the encoded input by `1 - denoise`, only inside the noise mask.
pub(crate) fn run_sampler(plan: &SamplerPlan) -> Arc<Img> {
    let l = &plan.latent;
    let (w, h) = (l.w.max(8), l.h.max(8));
    let mut data = Vec::with_capacity(l.b * w * h * 3);
    let source = l.source.as_ref().map(|s| {
        if (s.w, s.h) != (w, h) {
            Arc::new(render::resize(s, w, h, false))
        } else {
            s.clone()
        }
    });
    let mask = l.mask.as_ref().map(|m| {
        let img = m.to_image();
        if (img.w, img.h) != (w, h) {
            render::resize(&img, w, h, false)
        } else {
            img
        }
    });
    let d = plan.denoise.clamp(0.0, 1.0) as f32;
    for bi in 0..l.b {
        let pic = render::picture(
            w,
            h,
            plan.seed.wrapping_add(bi as u64),
            &plan.text,
            &plan.model,
        );
        match &source {
            None => data.extend_from_slice(&pic.data),
            Some(src) => {
                let sf = src.frame(bi.min(src.b - 1));
                for (k, p) in pic.data.iter().enumerate() {
                    let s = sf[k];
                    let m = mask.as_ref().map_or(1.0, |m| {
                        let mf = m.frame(bi.min(m.b - 1));
                        mf[k]
                    });
                    let generated = s + (p - s) * d;
                    data.push(s + (generated - s) * m);
                }
            }
        }
    }
    Arc::new(Img {
        b: l.b,
        h,
        w,
        c: 3,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, Val)]) -> Inputs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn image_to_mask_alpha_raises_index_error_like_trace_05() {
        let img = eval(
            "EmptyImage",
            &inputs(&[("width", Val::Int(4)), ("height", Val::Int(4))]),
            &[],
        )
        .unwrap();
        let e = eval(
            "ImageToMask",
            &inputs(&[
                ("image", img[0].clone()),
                ("channel", Val::Str("alpha".into())),
            ]),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.kind, "IndexError");
        assert_eq!(
            e.message,
            "index 3 is out of bounds for dimension 3 with size 3\n"
        );
    }

    #[test]
    fn pixel_space_decodes_an_empty_latent_to_an_eighth_in_rgba() {
        let latent = eval(
            "EmptyLatentImage",
            &inputs(&[
                ("width", Val::Int(512)),
                ("height", Val::Int(512)),
                ("batch_size", Val::Int(1)),
            ]),
            &[],
        )
        .unwrap();
        let decode = |vae_name: &str| {
            let vae = eval(
                "VAELoader",
                &inputs(&[("vae_name", Val::Str(vae_name.into()))]),
                &[],
            )
            .unwrap();
            let out = eval(
                "VAEDecode",
                &inputs(&[("samples", latent[0].clone()), ("vae", vae[0].clone())]),
                &[],
            )
            .unwrap();
            match &out[0] {
                Val::Image(img) => (img.w, img.h, img.c, img.data[3]),
                _ => panic!("VAEDecode gave no image"),
            }
        };
        // Scaled by 8 afterwards, as the weight-free latent graph does, that is 512² RGBA.
        assert_eq!(decode("pixel_space"), (64, 64, 4, 0.5));
        assert_eq!(decode("ae.safetensors").0, 512);
    }

    #[test]
    fn tensor_repr_matches_torch_layout() {
        let s = tensor_repr(&[1, 64, 64, 3], &vec![0.0; 64 * 64 * 3]);
        assert!(
            s.starts_with("tensor([[[[0., 0., 0.],\n          [0., 0., 0.],"),
            "{s}"
        );
        assert!(s.contains("...,\n"));
        assert!(s.ends_with("]]]])"));
    }

    #[test]
    fn img2img_keeps_the_source_at_low_denoise() {
        let src = Arc::new(Img::filled(1, 16, 16, [1.0, 0.0, 0.0]));
        let lat = Arc::new(Latent {
            w: 16,
            h: 16,
            b: 1,
            samples: None,
            source: Some(src),
            mask: None,
        });
        let plan = |d| SamplerPlan {
            steps: 1,
            seed: 1,
            text: "x".into(),
            model: "m".into(),
            denoise: d,
            latent: lat.clone(),
            outputs: 1,
        };
        let low = run_sampler(&plan(0.0));
        assert!(low.data.chunks(3).all(|p| p == [1.0, 0.0, 0.0]));
        let high = run_sampler(&plan(1.0));
        assert!(high.data.chunks(3).any(|p| p != [1.0, 0.0, 0.0]));
    }

    #[test]
    fn vae_encode_for_inpaint_greys_the_mask_and_grows_the_noise_mask() {
        // 12x10 pixels: cropped around the centre to 8x8, offsets (2, 1).
        let px = Img {
            b: 1,
            h: 10,
            w: 12,
            c: 3,
            data: (0..10 * 12)
                .flat_map(|k| [(k % 12) as f32 / 12.0, (k / 12) as f32 / 10.0, 1.0])
                .collect(),
        };
        // Mask the left half of the full picture.
        let m = Mask {
            b: 1,
            h: 10,
            w: 12,
            data: (0..10 * 12)
                .map(|k| if k % 12 < 6 { 1.0 } else { 0.0 })
                .collect(),
        };
        let out = eval(
            "VAEEncodeForInpaint",
            &inputs(&[
                ("pixels", Val::Image(Arc::new(px))),
                ("mask", Val::Mask(Arc::new(m))),
                ("grow_mask_by", Val::Int(2)),
            ]),
            &[],
        )
        .unwrap();
        let Val::Latent(l) = &out[0] else {
            panic!("not a latent")
        };
        assert_eq!((l.w, l.h), (8, 8));
        let src = l.source.as_ref().unwrap();
        // Cropped column 0 is picture column 2 (masked: grey); column 4 is 6 (kept).
        assert_eq!(src.data[..3], [0.5, 0.5, 0.5]);
        let kept = &src.data[4 * 3..4 * 3 + 3];
        assert!(
            kept.iter()
                .zip([0.5, 0.1, 1.0])
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "{kept:?}"
        );
        let noise = l.mask.as_ref().unwrap();
        let row: Vec<f32> = noise.data[..8].to_vec();
        // Masked columns 0..=3, grown one to the right by the 2x2 box (padding 1).
        assert_eq!(row, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn image_composite_masked_uses_the_mask_and_defaults_to_the_source() {
        let dst = Val::Image(Arc::new(Img::filled(1, 2, 2, [1.0, 1.0, 1.0])));
        let src = Val::Image(Arc::new(Img::filled(1, 2, 2, [0.0, 0.0, 0.0])));
        let base = [
            ("destination", dst),
            ("source", src),
            ("x", Val::Int(0)),
            ("y", Val::Int(0)),
            ("resize_source", Val::Bool(false)),
        ];
        let out = eval("ImageCompositeMasked", &inputs(&base), &[]).unwrap();
        let Val::Image(img) = &out[0] else {
            panic!("not an image")
        };
        assert!(img.data.iter().all(|v| *v == 0.0), "no mask: all source");
        let mut with_mask = base.to_vec();
        let m = Mask {
            b: 1,
            h: 2,
            w: 2,
            data: vec![1.0, 0.0, 0.0, 1.0],
        };
        with_mask.push(("mask", Val::Mask(Arc::new(m))));
        let out = eval("ImageCompositeMasked", &inputs(&with_mask), &[]).unwrap();
        let Val::Image(img) = &out[0] else {
            panic!("not an image")
        };
        let firsts: Vec<f32> = img.data.chunks(3).map(|p| p[0]).collect();
        assert_eq!(firsts, [0.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn huge_images_fail_like_an_oom_instead_of_aborting() {
        let big = inputs(&[
            ("width", Val::Int(16384)),
            ("height", Val::Int(16384)),
            ("batch_size", Val::Int(4096)),
        ]);
        assert_eq!(
            eval("EmptyImage", &big, &[]).unwrap_err().kind,
            "torch.OutOfMemoryError"
        );
    }

    #[test]
    fn unknown_classes_pass_matching_inputs_through() {
        let out = fallback(
            &inputs(&[("x", Val::Int(5))]),
            &["INT".into(), "IMAGE".into()],
        );
        assert!(matches!(out[0], Val::Int(5)));
        assert!(matches!(out[1], Val::Image(_)));
    }
}
