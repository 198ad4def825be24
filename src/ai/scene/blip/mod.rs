//! BLIP (`Salesforce/blip-image-captioning-*`) on tract: a ViT encoder, a
//! BERT decoder with cross-attention and a self-attention cache (one
//! decoder step per token), greedy or beam search as transformers'
//! `generate` does it, and WordPiece decoding. Files, split and export:
//! `models/export-blip.py`; parity with transformers: `tests.rs` here.

mod graphs;
pub mod preprocess;
pub mod search;
pub mod tokenizer;

use image::RgbImage;
use tract_onnx::prelude::*;

use self::graphs::{Geometry, Graphs, MAX_BEAMS};
use self::search::{Settings, Step};
use self::tokenizer::Vocab;
use super::Captioner;
use crate::ai::detector::{unavailable, verified};
use crate::ai::error::AiError;
use crate::catalog::{Catalog, ModelEntry};
use crate::config::CaptionerConfig;

pub use self::graphs::MAX_BEAMS as BEAMS_CAP;

/// The manifest kind of a BLIP captioner.
pub const KIND: &str = "blip-caption";

/// A loaded BLIP model and the generation settings it runs with.
pub struct Blip {
    id: String,
    graphs: Graphs,
    vocab: Vocab,
    settings: Settings,
}

impl Blip {
    /// Verifies the entry's files (encoder, decoder, tokenizer) against
    /// their sha256s and plans the encoder; `cfg` is checked against the
    /// model's cache length and [`MAX_BEAMS`].
    pub fn load(
        catalog: &Catalog,
        entry: &ModelEntry,
        cfg: &CaptionerConfig,
    ) -> Result<Self, AiError> {
        verified(catalog, entry)?;
        if entry.kind != KIND {
            return Err(unavailable(
                entry,
                format!("not a captioner kind: {:?}", entry.kind),
            ));
        }
        let (Some(decoder), Some(tok)) = (&entry.sidecar, &entry.tokenizer) else {
            return Err(unavailable(
                entry,
                "a BLIP entry needs a decoder sidecar and a tokenizer",
            ));
        };
        let side = entry
            .input_size()
            .filter(|s| (16..=1024).contains(s))
            .ok_or_else(|| {
                unavailable(entry, "input shape must end in the image side (16..=1024)")
            })?;
        let graphs = Graphs::load(
            &catalog.path(&entry.file),
            &catalog.path(&decoder.file),
            side as usize,
        )
        .map_err(|e| unavailable(entry, e.to_string()))?;
        let vocab =
            Vocab::load(&catalog.path(&tok.file)).map_err(|e| unavailable(entry, e.to_string()))?;
        let (Some(bos), Some(eos)) = (vocab.id_of("[DEC]"), vocab.id_of("[SEP]")) else {
            return Err(unavailable(entry, "tokenizer has no [DEC] or [SEP]"));
        };
        let g = graphs.geometry;
        if cfg.max_length < 2 || cfg.max_length > g.slots + 1 {
            return Err(unavailable(
                entry,
                format!(
                    "captioner max_length {} outside 2..={}",
                    cfg.max_length,
                    g.slots + 1
                ),
            ));
        }
        if !(1..=MAX_BEAMS).contains(&cfg.num_beams) {
            return Err(unavailable(
                entry,
                format!(
                    "captioner num_beams {} outside 1..={MAX_BEAMS}",
                    cfg.num_beams
                ),
            ));
        }
        Ok(Self {
            id: entry.id.clone(),
            graphs,
            vocab,
            settings: Settings {
                bos,
                eos,
                max_length: cfg.max_length,
                beams: cfg.num_beams,
                length_penalty: cfg.length_penalty,
            },
        })
    }

    /// The settings from the config.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The tokenizer, for tests and tools.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Token ids of the caption of `image` under `set` (the prompt first).
    pub fn generate(&self, image: &RgbImage, set: &Settings) -> Result<Vec<u32>, AiError> {
        if set.max_length > self.graphs.geometry.slots + 1 || !(1..=MAX_BEAMS).contains(&set.beams)
        {
            return Err(AiError::BadRequest(format!(
                "max_length {} and beams {} must fit the model's cache and {MAX_BEAMS} beams",
                set.max_length, set.beams
            )));
        }
        let pixels = preprocess::pixel_values(image, self.graphs.side as u32);
        let cross = self.graphs.encode(pixels)?;
        let mut session = Session::new(&self.graphs, cross, set.beams);
        if set.beams == 1 {
            search::greedy(&mut session, set)
        } else {
            search::beam(&mut session, set)
        }
    }
}

impl Captioner for Blip {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn caption(&self, image: &RgbImage) -> Result<String, AiError> {
        let ids = self.generate(image, &self.settings)?;
        self.vocab.decode(&ids)
    }
}

/// A tensor's f32 values in row-major order.
fn floats(t: &Tensor) -> Result<Vec<f32>, AiError> {
    let view = t.to_plain_array_view::<f32>().map_err(AiError::inference)?;
    Ok(view.iter().copied().collect())
}

/// One caption's decoder state: the self-attention cache,
/// `[layers, 2, rows, heads, slots, head_dim]`, and the image's cross K/V.
struct Session<'a> {
    graphs: &'a Graphs,
    cross: TValue,
    rows: usize,
    cache: Vec<f32>,
    /// Logits per row, known from the first step.
    vocab: usize,
}

impl<'a> Session<'a> {
    fn new(graphs: &'a Graphs, cross: TValue, rows: usize) -> Self {
        let g = graphs.geometry;
        Self {
            graphs,
            cross,
            rows,
            cache: vec![0.0; g.layers * 2 * rows * g.row()],
            vocab: 0,
        }
    }

    fn geometry(&self) -> Geometry {
        self.graphs.geometry
    }
}

impl Step for Session<'_> {
    fn step(&mut self, last: &[u32], position: usize) -> Result<Vec<f32>, AiError> {
        let g = self.geometry();
        if last.len() != self.rows || position >= g.slots {
            return Err(AiError::inference("decoder step outside the cache"));
        }
        let shape = [g.layers, 2, self.rows, g.heads, g.slots, g.head_dim];
        let cache = Tensor::from_shape(&shape, &self.cache).map_err(AiError::inference)?;
        let (logits, present) = self.graphs.step(last, position, cache, &self.cross)?;
        let present = floats(&present)?;
        if present.len() != g.layers * 2 * self.rows * g.heads * g.head_dim {
            return Err(AiError::inference("decoder present has the wrong size"));
        }
        // present: [layers, 2, rows, heads, 1, head_dim] into slot `position`.
        for (i, chunk) in present.chunks_exact(g.head_dim).enumerate() {
            let at = (i * g.slots + position) * g.head_dim;
            self.cache[at..at + g.head_dim].copy_from_slice(chunk);
        }
        let logits = floats(&logits)?;
        let vocab = logits.len() / self.rows;
        if vocab == 0
            || logits.len() != self.rows * vocab
            || (self.vocab != 0 && vocab != self.vocab)
        {
            return Err(AiError::inference("decoder logits have the wrong size"));
        }
        self.vocab = vocab;
        Ok(logits)
    }

    fn reorder(&mut self, parents: &[usize]) {
        let row = self.geometry().row();
        let block = self.rows * row;
        for kv in self.cache.chunks_exact_mut(block) {
            let old = kv.to_vec();
            for (i, &p) in parents.iter().enumerate() {
                kv[i * row..(i + 1) * row].copy_from_slice(&old[p * row..(p + 1) * row]);
            }
        }
    }

    fn vocab(&self) -> usize {
        self.vocab
    }
}

#[cfg(test)]
mod tests;
