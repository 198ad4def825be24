//! On-device inference: model loading, pre/post-processing, tasks and the
//! engine that schedules them. Knows nothing about HTTP.

pub mod backend;
pub mod detector;
pub mod engine;
pub mod error;
pub mod nms;
pub mod preprocess;
pub mod task;
pub mod yolo;

pub use engine::Engine;
pub use error::AiError;
pub use task::{Params, Task};
