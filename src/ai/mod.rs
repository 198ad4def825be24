//! On-device inference: model loading, pre/post-processing, tasks and the
//! engine that schedules them. Knows nothing about HTTP.

pub mod align;
pub mod backend;
pub mod centerface;
pub mod detector;
pub mod engine;
pub mod error;
pub mod faces;
pub mod gate;
pub mod metrics;
pub mod nms;
pub mod preprocess;
pub mod task;
pub mod yolo;

pub use engine::{Admission, Engine, PersonTracker};
pub use error::AiError;
pub use task::{Params, Task};
