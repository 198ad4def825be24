//! BLIP's two graphs on tract (see `models/export-blip.py` for the split):
//! the encoder (picture to every decoder layer's cross-attention keys and
//! values, once per image) and the decoder step (one token per beam against
//! a self-attention cache of fixed length, so each new token costs one
//! step). Shapes are fixed when a graph is planned: the encoder once, the
//! decoder once per beam count (at most [`MAX_BEAMS`] plans).
//!
//! The decoder takes five inputs (two of them i64), which the single-input
//! f32 [`Backend`](crate::ai::backend::Backend) seam does not carry, so
//! these graphs talk to tract directly, with the backend's thread setting.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::ai::error::AiError;
use crate::ai::lock;

/// Most beams a decoder plan is made for (each is a planned graph and a
/// cache of `layers x 2 x heads x slots x head_dim` floats per beam).
pub const MAX_BEAMS: usize = 8;

type Plan = Arc<TypedSimplePlan>;

/// The sizes both graphs agree on, read from the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Image tokens the encoder yields (patches + class token).
    pub tokens: usize,
    /// Positions the self-attention cache holds.
    pub slots: usize,
}

impl Geometry {
    /// Floats of one beam's row in the cache, per layer and K/V.
    pub fn row(&self) -> usize {
        self.heads * self.slots * self.head_dim
    }
}

/// A tract failure as an inference error, the chain kept.
fn failed(what: &str) -> impl Fn(TractError) -> AiError + '_ {
    move |e| AiError::inference(format!("{what}: {e:#}"))
}

/// The loaded graphs of one BLIP model.
pub struct Graphs {
    encoder: Plan,
    decoder: InferenceModel,
    plans: Mutex<HashMap<usize, Plan>>,
    pub geometry: Geometry,
    pub side: usize,
}

impl Graphs {
    /// Plans the encoder for a `side` x `side` picture and reads the
    /// decoder, whose plans are made per beam count on first use.
    pub fn load(encoder: &Path, decoder: &Path, side: usize) -> Result<Self, AiError> {
        let mut enc = tract_onnx::onnx()
            .model_for_path(encoder)
            .map_err(failed("reading the encoder"))?;
        enc.set_input_fact(0, f32::fact([1, 3, side, side]).into())
            .map_err(failed("encoder input"))?;
        let enc = enc
            .into_optimized()
            .map_err(failed("planning the encoder"))?;
        let kv = enc
            .output_fact(0)
            .map_err(failed("encoder output"))?
            .shape
            .as_concrete()
            .map(|s| s.to_vec())
            .ok_or_else(|| AiError::inference("encoder output shape is not fixed"))?;
        let [layers, 2, 1, heads, tokens, head_dim] = kv[..] else {
            return Err(AiError::inference(format!(
                "encoder output {kv:?} is not [layers, 2, 1, heads, tokens, head_dim]"
            )));
        };
        let encoder = enc
            .into_runnable()
            .map_err(failed("planning the encoder"))?;
        let decoder = tract_onnx::onnx()
            .model_for_path(decoder)
            .map_err(failed("reading the decoder"))?;
        let mask = declared(&decoder, 3)?;
        let Some(&Some(mask_len)) = mask.get(1) else {
            return Err(AiError::inference(format!(
                "decoder mask {mask:?} has no fixed length"
            )));
        };
        Ok(Self {
            encoder,
            decoder,
            plans: Mutex::new(HashMap::new()),
            geometry: Geometry {
                layers,
                heads,
                head_dim,
                tokens,
                slots: mask_len.saturating_sub(1),
            },
            side,
        })
    }

    /// Cross-attention keys and values for `pixels` (`[1, 3, side, side]`).
    pub fn encode(&self, pixels: Vec<f32>) -> Result<TValue, AiError> {
        let px = tract_ndarray::Array4::from_shape_vec((1, 3, self.side, self.side), pixels)
            .map_err(AiError::inference)?;
        let mut out = self
            .encoder
            .run(tvec!(Tensor::from(px).into()))
            .map_err(failed("encoder"))?;
        Ok(out.remove(0))
    }

    /// The decoder planned for `beams` rows.
    fn plan(&self, beams: usize) -> Result<Plan, AiError> {
        if !(1..=MAX_BEAMS).contains(&beams) {
            return Err(AiError::inference(format!(
                "{beams} beams: 1..={MAX_BEAMS} are supported"
            )));
        }
        let mut plans = lock(&self.plans);
        if let Some(p) = plans.get(&beams) {
            return Ok(p.clone());
        }
        let g = self.geometry;
        let mut m = self.decoder.clone();
        let facts: [InferenceFact; 5] = [
            i64::fact([beams, 1]).into(),
            i64::fact([1]).into(),
            f32::fact([g.layers, 2, beams, g.heads, g.slots, g.head_dim]).into(),
            f32::fact([1, g.slots + 1]).into(),
            f32::fact([g.layers, 2, 1, g.heads, g.tokens, g.head_dim]).into(),
        ];
        for (i, f) in facts.into_iter().enumerate() {
            m.set_input_fact(i, f).map_err(failed("decoder inputs"))?;
        }
        let plan = m
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(failed("planning the decoder"))?;
        plans.insert(beams, plan.clone());
        Ok(plan)
    }

    /// One decoder step for `ids.len()` beams at `position`: the logits
    /// (`[beams, vocab]`) and this step's keys and values
    /// (`[layers, 2, beams, heads, 1, head_dim]`).
    pub fn step(
        &self,
        ids: &[u32],
        position: usize,
        cache: Tensor,
        cross: &TValue,
    ) -> Result<(Tensor, Tensor), AiError> {
        let g = self.geometry;
        let plan = self.plan(ids.len())?;
        let ids = tract_ndarray::Array2::from_shape_vec(
            (ids.len(), 1),
            ids.iter().map(|&t| i64::from(t)).collect(),
        )
        .map_err(AiError::inference)?;
        let mut mask = vec![-1e9f32; g.slots + 1];
        mask[..position].fill(0.0);
        mask[g.slots] = 0.0;
        let mask = tract_ndarray::Array2::from_shape_vec((1, g.slots + 1), mask)
            .map_err(AiError::inference)?;
        let pos = tract_ndarray::arr1(&[position as i64]);
        let mut out = plan
            .run(tvec!(
                Tensor::from(ids).into(),
                Tensor::from(pos).into(),
                cache.into(),
                Tensor::from(mask).into(),
                cross.clone(),
            ))
            .map_err(failed("decoder"))?;
        match (out.pop(), out.pop(), out.is_empty()) {
            (Some(present), Some(logits), true) => {
                Ok((logits.into_tensor(), present.into_tensor()))
            }
            _ => Err(AiError::inference("the decoder gives logits and present")),
        }
    }
}

/// The dimensions input `i` declares in the file (`None` where symbolic).
fn declared(m: &InferenceModel, i: usize) -> Result<Vec<Option<usize>>, AiError> {
    let f = m.input_fact(i).map_err(failed("decoder inputs"))?;
    Ok(f.shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
        .collect())
}
