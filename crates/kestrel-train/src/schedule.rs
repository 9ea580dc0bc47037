//! Learning-rate schedules, evaluated per optimizer step.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Cosine annealing from the base LR to `min_lr` over the run (after warm-up).
    Cosine,
    Constant,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" => Ok(ScheduleKind::Cosine),
            "constant" => Ok(ScheduleKind::Constant),
            other => Err(format!(
                "unknown schedule '{other}'; valid: cosine, constant"
            )),
        }
    }
}

impl std::fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Constant => "constant",
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base_lr: f64,
    pub min_lr: f64,
    pub warmup_steps: usize,
    /// LR at the first warm-up step, as a fraction of base_lr (timm's warmup_lr / lr).
    pub warmup_start: f64,
    pub total_steps: usize,
}

impl Schedule {
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            let t = step as f64 / self.warmup_steps as f64;
            let start = self.base_lr * self.warmup_start;
            return start + (self.base_lr - start) * t;
        }
        match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let t = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                self.min_lr
                    + 0.5 * (self.base_lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_hits_its_endpoints_and_midpoint() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            base_lr: 0.1,
            min_lr: 0.0,
            warmup_steps: 10,
            warmup_start: 0.0,
            total_steps: 110,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.05).abs() < 1e-12); // halfway through a linear warm-up
        assert!((s.lr(10) - 0.1).abs() < 1e-12);
        assert!((s.lr(60) - 0.05).abs() < 1e-12); // cos(pi/2) = 0 -> half the LR
        assert!(s.lr(110).abs() < 1e-12);
    }
}
