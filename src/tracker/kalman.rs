//! Constant-velocity Kalman filter over `(cx, cy, aspect, h)`.
//!
//! This is the SORT/ByteTrack box filter: an 8-dim state (the four box
//! measurements plus their velocities), position noise scaled by 1/20 of the
//! box height and velocity noise by 1/160 of it.
//!
//! Because the transition only couples each measurement with its own velocity,
//! the process noise is diagonal and the measurement picks positions only, the
//! 8x8 covariance stays block-diagonal as four independent 2x2 blocks (one per
//! measured quantity) for ever. We therefore store and update exactly those four
//! 2x2 blocks instead of dense 8x8 matrices: the numbers are identical to the
//! dense filter, but there is no matrix inversion that could fail and the code
//! stays small enough to audit.
//!
//! All arithmetic is in `f64`, so extreme-but-finite pixel values cannot
//! overflow into infinities.

/// Position noise per unit of box height (SORT/ByteTrack value); height-relative
/// so that near (large) and far (small) objects get proportionate uncertainty.
const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
/// Velocity noise per unit of box height, for the same scale-invariance reason.
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

/// Lower bound on the height used for noise scaling, so a degenerate predicted
/// box (height shrinking through zero while coasting) cannot zero the noise and
/// make the filter overconfident or divide by zero.
const MIN_NOISE_HEIGHT: f64 = 1e-3;

/// Index of the aspect ratio among the four measured quantities; it gets fixed
/// (not height-relative) noise because it is dimensionless.
const ASPECT: usize = 2;

/// Covariance block of one measured quantity and its velocity.
///
/// Kept as three scalars because the block is symmetric, which also makes it
/// impossible to let the two off-diagonal entries drift apart numerically.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Block {
    /// Variance of the quantity itself.
    pp: f64,
    /// Covariance between the quantity and its velocity.
    pv: f64,
    /// Variance of the velocity.
    vv: f64,
}

/// Filter state of one track: the estimate the association step compares
/// detections against, plus how sure we are of it.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanBox {
    /// `(cx, cy, aspect, h)` estimate; kept separate from `vel` so the
    /// measured part reads as a box.
    pos: [f64; 4],
    /// Velocities of `pos`, in units per nominal frame.
    vel: [f64; 4],
    /// One covariance block per measured quantity (see module docs).
    cov: [Block; 4],
}

/// Noise standard deviations for one step, derived from the current height the
/// way ByteTrack does: `(position-like std, velocity-like std)` per quantity.
fn height_scaled(h: f64, pos_weight: f64, vel_weight: f64, aspect: (f64, f64)) -> [(f64, f64); 4] {
    let h = h.abs().max(MIN_NOISE_HEIGHT);
    let p = pos_weight * h;
    let v = vel_weight * h;
    let mut out = [(p, v); 4];
    out[ASPECT] = aspect;
    out
}

/// Converts an `x1,y1,x2,y2` box into the filter's measurement space.
///
/// Callers must pass a box with positive width and height; the tracker
/// validates detections before they reach the filter.
pub fn to_measurement(b: [f64; 4]) -> [f64; 4] {
    let w = b[2] - b[0];
    let h = b[3] - b[1];
    [b[0] + w / 2.0, b[1] + h / 2.0, w / h, h]
}

impl KalmanBox {
    /// Starts a filter at a first sighting: position known to measurement
    /// accuracy, velocity unknown (zero mean, wide variance), as in ByteTrack.
    pub fn new(measurement: [f64; 4]) -> Self {
        let h = measurement[3];
        let stds = height_scaled(
            h,
            2.0 * STD_WEIGHT_POSITION,
            10.0 * STD_WEIGHT_VELOCITY,
            (1e-2, 1e-5),
        );
        let mut cov = [Block {
            pp: 0.0,
            pv: 0.0,
            vv: 0.0,
        }; 4];
        for (block, (sp, sv)) in cov.iter_mut().zip(stds) {
            block.pp = sp * sp;
            block.vv = sv * sv;
        }
        Self {
            pos: measurement,
            vel: [0.0; 4],
            cov,
        }
    }

    /// Advances the estimate by `dt` nominal frames.
    ///
    /// `dt` may be fractional or larger than one because calls arrive
    /// irregularly. The per-frame process noise is scaled linearly by `dt`
    /// (a random-walk approximation): simple, monotone in elapsed time, and
    /// exactly ByteTrack's behaviour at `dt == 1`. A non-positive or non-finite
    /// `dt` leaves the filter untouched.
    pub fn predict(&mut self, dt: f64) {
        if !(dt.is_finite() && dt > 0.0) {
            return;
        }
        let stds = height_scaled(
            self.pos[3],
            STD_WEIGHT_POSITION,
            STD_WEIGHT_VELOCITY,
            (1e-2, 1e-5),
        );
        let states = self.pos.iter_mut().zip(&self.vel).zip(&mut self.cov);
        for (((pos, vel), block), (sp, sv)) in states.zip(stds) {
            *pos += vel * dt;
            let Block { pp, pv, vv } = *block;
            *block = Block {
                pp: pp + 2.0 * dt * pv + dt * dt * vv + dt * sp * sp,
                pv: pv + dt * vv,
                vv: vv + dt * sv * sv,
            };
        }
    }

    /// Folds in a new measurement (already in `(cx, cy, aspect, h)` space).
    pub fn update(&mut self, measurement: [f64; 4]) {
        let stds = height_scaled(self.pos[3], STD_WEIGHT_POSITION, 0.0, (1e-1, 0.0));
        for (i, &z) in measurement.iter().enumerate() {
            let Block { pp, pv, vv } = self.cov[i];
            let r = stds[i].0 * stds[i].0;
            // Innovation variance; strictly positive because r is, but keep a
            // floor so no input can make us divide by zero.
            let s = (pp + r).max(f64::MIN_POSITIVE);
            let k_pos = pp / s;
            let k_vel = pv / s;
            let innovation = z - self.pos[i];
            self.pos[i] += k_pos * innovation;
            self.vel[i] += k_vel * innovation;
            self.cov[i] = Block {
                pp: (1.0 - k_pos) * pp,
                pv: (1.0 - k_pos) * pv,
                vv: vv - k_vel * pv,
            };
        }
    }

    /// Stops the height from growing or shrinking while a track is unseen, as
    /// ByteTrack does, so a coasting box keeps a plausible size.
    pub fn freeze_height_velocity(&mut self) {
        self.vel[3] = 0.0;
    }

    /// Sets every velocity to zero: the object is taken to stand still (a
    /// held track, see `Tracker::hold`), so however long it goes unseen its
    /// predicted box stays where it was last seen.
    pub fn stop(&mut self) {
        self.vel = [0.0; 4];
    }

    /// The current estimate as `x1,y1,x2,y2`, which is what IoU association
    /// and API snapshots need.
    pub fn bbox(&self) -> [f64; 4] {
        let [cx, cy, a, h] = self.pos;
        let w = a * h;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    }

    /// Estimated centre velocity in pixels per nominal frame (test-only).
    #[cfg(test)]
    pub fn velocity(&self) -> [f64; 2] {
        [self.vel[0], self.vel[1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn measurement_round_trips_through_bbox() {
        let b = [10.0, 20.0, 60.0, 140.0];
        let k = KalmanBox::new(to_measurement(b));
        for (got, want) in k.bbox().iter().zip(b) {
            assert!(close(*got, want, 1e-9), "{got} vs {want}");
        }
    }

    #[test]
    fn learns_constant_velocity() {
        let mut k = KalmanBox::new(to_measurement([0.0, 0.0, 50.0, 100.0]));
        for step in 1..30 {
            k.predict(1.0);
            let x = 10.0 * step as f64;
            k.update(to_measurement([x, 0.0, x + 50.0, 100.0]));
        }
        let v = k.velocity();
        assert!(close(v[0], 10.0, 0.5), "vx {}", v[0]);
        assert!(close(v[1], 0.0, 0.5), "vy {}", v[1]);
        // Coast two frames: the box should have moved ~20px.
        let before = k.bbox()[0];
        k.predict(2.0);
        assert!(close(k.bbox()[0] - before, 20.0, 1.0));
    }

    #[test]
    fn uncertainty_grows_when_coasting_and_shrinks_on_update() {
        let mut k = KalmanBox::new(to_measurement([0.0, 0.0, 50.0, 100.0]));
        let p0 = k.cov[0].pp;
        k.predict(3.0);
        let p1 = k.cov[0].pp;
        assert!(p1 > p0);
        k.update(to_measurement([0.0, 0.0, 50.0, 100.0]));
        assert!(k.cov[0].pp < p1);
    }

    #[test]
    fn ignores_bad_dt() {
        let mut k = KalmanBox::new(to_measurement([0.0, 0.0, 50.0, 100.0]));
        let before = k.clone();
        k.predict(f64::NAN);
        k.predict(-1.0);
        k.predict(f64::INFINITY);
        k.predict(0.0);
        assert_eq!(k, before);
    }
}
