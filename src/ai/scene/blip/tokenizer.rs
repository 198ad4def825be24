//! BLIP's text side: bert-base-uncased WordPiece plus `[DEC]` and `[ENC]`,
//! read from the model's `tokenizer.json` by the `tokenizers` crate, so ids
//! and decoded text are the reference tokenizer's own.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::ai::error::AiError;

/// The tokenizer of one installed BLIP model.
pub struct Vocab {
    inner: Tokenizer,
}

impl Vocab {
    /// Reads `tokenizer.json` (already checksummed by the caller).
    pub fn load(path: &Path) -> Result<Self, AiError> {
        let inner = Tokenizer::from_file(path)
            .map_err(|e| AiError::inference(format!("tokenizer {}: {e}", path.display())))?;
        Ok(Self { inner })
    }

    /// The id of a special token such as `[DEC]` or `[SEP]`.
    pub fn id_of(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Ids of `text` with `[CLS]` and `[SEP]`, as the processor encodes it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, AiError> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| AiError::inference(format!("tokenizer: {e}")))
    }

    /// Text of `ids`, special tokens dropped, WordPiece pieces joined.
    pub fn decode(&self, ids: &[u32]) -> Result<String, AiError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| AiError::inference(format!("tokenizer: {e}")))
    }
}
