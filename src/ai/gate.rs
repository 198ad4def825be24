//! The runner gate: how many inferences run at once, with camera work
//! served before API work, so a busy `/infer` client cannot starve the
//! cameras' detection (they wait for the next free runner, not for the queue).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::error::AiError;
use super::lock;

/// Who is asking for a runner; cameras go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// The camera pipeline (bounded by one frame in flight per camera).
    Camera,
    /// An HTTP request (bounded by the engine's admission queue).
    Api,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    camera: VecDeque<oneshot::Sender<Pass>>,
    api: VecDeque<oneshot::Sender<Pass>>,
}

/// A counting semaphore with two priority classes.
#[derive(Debug)]
pub struct Gate {
    state: Mutex<State>,
}

/// One runner, held while the work runs; dropping it hands the runner to
/// the next waiter (cameras first) or frees it.
#[derive(Debug)]
pub struct Pass {
    gate: Option<Arc<Gate>>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(g) = self.gate.take() {
            Gate::release(g);
        }
    }
}

impl Gate {
    /// A gate with `runners` (at least 1) free runners.
    pub fn new(runners: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                free: runners.max(1),
                ..State::default()
            }),
        })
    }

    /// Waits for a runner. Cancel-safe: a waiter that goes away never keeps
    /// one (a runner sent to it comes back through [`Pass`]'s drop).
    pub async fn enter(self: &Arc<Self>, p: Priority) -> Result<Pass, AiError> {
        let rx = {
            let mut st = lock(&self.state);
            if st.free > 0 {
                st.free -= 1;
                return Ok(Pass {
                    gate: Some(self.clone()),
                });
            }
            let (tx, rx) = oneshot::channel();
            let queue = match p {
                Priority::Camera => &mut st.camera,
                Priority::Api => &mut st.api,
            };
            // Waiters that hung up leave closed senders; drop them so the
            // queue stays as long as the live waiters.
            queue.retain(|t| !t.is_closed());
            queue.push_back(tx);
            rx
        };
        rx.await
            .map_err(|_| AiError::inference("runner gate closed"))
    }

    fn release(gate: Arc<Gate>) {
        let mut st = lock(&gate.state);
        let mut pass = Pass {
            gate: Some(gate.clone()),
        };
        loop {
            let next = match st.camera.pop_front() {
                Some(t) => Some(t),
                None => st.api.pop_front(),
            };
            match next {
                Some(tx) => match tx.send(pass) {
                    Ok(()) => return,
                    Err(back) => pass = back,
                },
                None => {
                    st.free += 1;
                    pass.gate = None;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cameras_go_before_api_and_hang_ups_return_the_runner() {
        let g = Gate::new(1);
        let held = g.enter(Priority::Api).await.unwrap();
        let api = tokio::spawn({
            let g = g.clone();
            async move { g.enter(Priority::Api).await.map(|_| "api") }
        });
        let gone = {
            let g = g.clone();
            tokio::spawn(async move { g.enter(Priority::Camera).await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        let cam = tokio::spawn({
            let g = g.clone();
            async move {
                let p = g.enter(Priority::Camera).await;
                p.map(|_| "camera")
            }
        });
        // Let both waiters queue.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert_eq!(cam.await.unwrap().unwrap(), "camera");
        assert_eq!(api.await.unwrap().unwrap(), "api");
        // Every runner came back.
        assert_eq!(lock(&g.state).free, 1);
    }
}
