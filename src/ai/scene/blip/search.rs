//! Greedy and beam search over a decoder step, with the semantics of
//! transformers' `generate` for BLIP's settings (no sampling, no logits
//! processors): the prompt is `[DEC]`, a row ends at `[SEP]`, and nothing
//! runs past `max_length` tokens, prompt included.

use crate::ai::error::AiError;

/// One decoder step over a cache of rows (one row per beam).
pub trait Step {
    /// Next-token logits, `rows x vocab`, for each row's `last` token at
    /// `position`; the cache gains that position.
    fn step(&mut self, last: &[u32], position: usize) -> Result<Vec<f32>, AiError>;
    /// Cache row `i` becomes a copy of row `parents[i]` (beams re-ranked).
    fn reorder(&mut self, parents: &[usize]);
    /// Logits per row (known once a step has run).
    fn vocab(&self) -> usize;
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// The prompt token (`[DEC]`).
    pub bos: u32,
    /// The token that ends a caption (`[SEP]`).
    pub eos: u32,
    /// Most tokens in a caption, the prompt included (transformers'
    /// `max_length`).
    pub max_length: usize,
    /// 1: greedy; more: beam search with that many beams.
    pub beams: usize,
    /// Beam scores are divided by `length ^ length_penalty`.
    pub length_penalty: f64,
}

/// The first index of the largest value (`torch.argmax`).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Greedy decoding: the most likely token each step.
pub fn greedy(s: &mut impl Step, set: &Settings) -> Result<Vec<u32>, AiError> {
    let mut ids = vec![set.bos];
    while ids.len() < set.max_length {
        let logits = s.step(&ids[ids.len() - 1..], ids.len() - 1)?;
        let next = argmax(&logits[..s.vocab()]) as u32;
        ids.push(next);
        if next == set.eos {
            break;
        }
    }
    Ok(ids)
}

/// Score of a row that must not be chosen (transformers' `-1e9`).
const NEVER: f32 = -1.0e9;

/// `log_softmax` of one row, in f32 as torch computes it.
fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    let log_sum = sum.ln();
    row.iter().map(|&x| x - max - log_sum).collect()
}

/// Indices of the `k` largest `scores`, largest first; among equal scores
/// the lower index first.
fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| {
        scores[b].total_cmp(&scores[a]).then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Beam search as transformers' vectorised `_beam_search` runs it for one
/// picture: each step keeps the `2 x beams` best continuations; those that
/// end (at `[SEP]` or at `max_length`) and rank among the first `beams`
/// compete, length-normalised, for the finished list; the `beams` best that
/// did not end keep running. Stops when no running beam can beat the worst
/// finished one (`early_stopping = False`'s heuristic) or when every
/// candidate ended (always so at `max_length`).
/// Returns the best finished caption.
pub fn beam(s: &mut impl Step, set: &Settings) -> Result<Vec<u32>, AiError> {
    let nb = set.beams;
    let keep = 2 * nb;
    let prompt = 1usize;
    let mut running: Vec<Vec<u32>> = vec![vec![set.bos]; nb];
    let mut running_scores: Vec<f32> = (0..nb).map(|i| if i == 0 { 0.0 } else { NEVER }).collect();
    let mut done: Vec<Vec<u32>> = vec![Vec::new(); nb];
    let mut done_scores = vec![NEVER; nb];
    let mut done_flags = vec![false; nb];
    let mut improvable = true;
    let mut cur_len = prompt;
    loop {
        let last: Vec<u32> = running.iter().map(|r| r[r.len() - 1]).collect();
        let logits = s.step(&last, cur_len - 1)?;
        let vocab = s.vocab();
        let mut scores = Vec::with_capacity(nb * vocab);
        for (b, row) in logits.chunks_exact(vocab).enumerate() {
            scores.extend(log_softmax(row).into_iter().map(|x| x + running_scores[b]));
        }
        let top = top_k(&scores, keep);
        let cand: Vec<(usize, u32, f32)> = top
            .iter()
            .map(|&i| (i / vocab, (i % vocab) as u32, scores[i]))
            .collect();
        let ends: Vec<bool> = cand
            .iter()
            .map(|&(_, t, _)| t == set.eos || cur_len + 1 >= set.max_length)
            .collect();

        // Running beams: the best `nb` candidates that did not end.
        let alive: Vec<f32> = cand
            .iter()
            .zip(&ends)
            .map(|(&(_, _, sc), &e)| if e { sc + NEVER } else { sc })
            .collect();
        let next = top_k(&alive, nb);

        // Finished beams: the old ones and the candidates that just ended
        // among the first `nb`, length-normalised, best `nb` kept.
        let len = (cur_len + 1 - prompt) as f64;
        let norm = len.powf(set.length_penalty) as f32;
        let mut merged_scores = done_scores.clone();
        for (j, &(_, _, sc)) in cand.iter().enumerate() {
            let mut v = sc / norm;
            if !improvable {
                v += NEVER;
            }
            if !(ends[j] && j < nb) {
                v += NEVER;
            }
            merged_scores.push(v);
        }
        let best = top_k(&merged_scores, nb);
        let (mut nd, mut ns, mut nf) = (Vec::new(), Vec::new(), Vec::new());
        for &m in &best {
            if m < nb {
                nd.push(done[m].clone());
                ns.push(done_scores[m]);
                nf.push(done_flags[m]);
            } else {
                let (b, t, _) = cand[m - nb];
                let mut seq = running[b].clone();
                seq.push(t);
                nd.push(seq);
                ns.push(merged_scores[m]);
                nf.push(ends[m - nb] && m - nb < nb);
            }
        }
        (done, done_scores, done_flags) = (nd, ns, nf);

        let parents: Vec<usize> = next.iter().map(|&j| cand[j].0).collect();
        running = next
            .iter()
            .map(|&j| {
                let mut seq = running[cand[j].0].clone();
                seq.push(cand[j].1);
                seq
            })
            .collect();
        running_scores = next.iter().map(|&j| alive[j]).collect();
        s.reorder(&parents);
        cur_len += 1;

        // early_stopping = False: stop once the best running beam, scored
        // at the current length, cannot beat the worst finished one.
        let best_running =
            running_scores[0] / ((cur_len - prompt) as f64).powf(set.length_penalty) as f32;
        let worst_done = if done_flags.iter().all(|&f| f) {
            done_scores.iter().copied().fold(f32::INFINITY, f32::min)
        } else {
            NEVER
        };
        improvable = improvable && best_running > worst_done;
        // Every candidate ended (at max_length they all do): nothing to continue.
        if !improvable || ends.iter().all(|&e| e) {
            break;
        }
    }
    Ok(done.into_iter().next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy decoder over 4 tokens (0 = bos, 1 = eos, 2, 3) whose logits
    /// depend only on each row's last token; counts its steps.
    struct Table {
        logits: fn(u32) -> [f32; 4],
        rows: Vec<u32>,
        steps: usize,
    }

    impl Step for Table {
        fn step(&mut self, last: &[u32], _position: usize) -> Result<Vec<f32>, AiError> {
            self.steps += 1;
            self.rows = last.to_vec();
            Ok(last.iter().flat_map(|&t| (self.logits)(t)).collect())
        }
        fn reorder(&mut self, parents: &[usize]) {
            assert!(parents.iter().all(|&p| p < self.rows.len()));
        }
        fn vocab(&self) -> usize {
            4
        }
    }

    fn set(beams: usize, max_length: usize) -> Settings {
        Settings {
            bos: 0,
            eos: 1,
            max_length,
            beams,
            length_penalty: 1.0,
        }
    }

    fn table(logits: fn(u32) -> [f32; 4]) -> Table {
        Table {
            logits,
            rows: Vec::new(),
            steps: 0,
        }
    }

    #[test]
    fn greedy_stops_at_eos_and_at_max_length() {
        // bos -> 2 -> 3 -> eos
        let mut t = table(|last| match last {
            0 => [0.0, 0.0, 5.0, 0.0],
            2 => [0.0, 0.0, 0.0, 5.0],
            _ => [0.0, 5.0, 0.0, 0.0],
        });
        assert_eq!(greedy(&mut t, &set(1, 20)).unwrap(), vec![0, 2, 3, 1]);
        assert_eq!(t.steps, 3);
        let mut t = table(|_| [0.0, 0.0, 5.0, 0.0]);
        let ids = greedy(&mut t, &set(1, 6)).unwrap();
        assert_eq!(ids, vec![0, 2, 2, 2, 2, 2], "max_length counts the prompt");
        assert_eq!(t.steps, 5);
    }

    #[test]
    fn beam_search_escapes_the_greedy_trap() {
        // Greedy takes 2 (p ~ 0.5), after which everything is flat; 3 is a
        // little less likely first but then ends with near certainty.
        let lg = |last| match last {
            0 => [-9.0, -9.0, 1.0, 0.8],
            3 => [-9.0, 9.0, -9.0, -9.0],
            _ => [-9.0, 0.0, 0.0, 0.0],
        };
        let g = greedy(&mut table(lg), &set(1, 8)).unwrap();
        assert_eq!(&g[..2], &[0, 2]);
        let b = beam(&mut table(lg), &set(2, 8)).unwrap();
        assert_eq!(b, vec![0, 3, 1]);
    }

    #[test]
    fn beam_search_ends_at_max_length_with_a_full_row() {
        let mut t = table(|_| [-9.0, -9.0, 1.0, 0.5]);
        let b = beam(&mut t, &set(3, 5)).unwrap();
        assert_eq!(b, vec![0, 2, 2, 2, 2]);
        assert_eq!(t.steps, 4, "one decoder step per token");
    }

    #[test]
    fn top_k_orders_by_score_then_index() {
        assert_eq!(top_k(&[0.5, 2.0, 2.0, -1.0, 3.0], 3), vec![4, 1, 2]);
        let l = log_softmax(&[1.0, 2.0, 3.0]);
        let total: f32 = l.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
