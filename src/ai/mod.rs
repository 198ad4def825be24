//! On-device inference: model loading, pre/post-processing, tasks and the
//! engine that schedules them. Knows nothing about HTTP.

pub mod align;
pub mod backend;
pub(crate) mod centerface;
pub(crate) mod crops;
pub mod detector;
pub(crate) mod engine;
pub(crate) mod error;
pub mod faces;
pub(crate) mod gate;
pub(crate) mod metrics;
mod models;
pub mod nms;
pub mod preprocess;
pub mod scene;
mod stats;
pub(crate) mod task;
pub(crate) mod yolo;

pub use engine::{Admission, CameraTurn, Engine, PersonTracker};
pub use error::AiError;
pub use models::AdapterInfo;
pub use stats::ModelHealth;
pub use task::{Params, Task};

/// Locks a mutex, recovering from a panic in another holder: the data
/// guarded in this module (loaded models, tracker state, the runner gate)
/// stays usable.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
