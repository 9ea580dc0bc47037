//! Learning-rate schedules with a linear warm-up, updated per optimizer step or per epoch.
//!
//! The warm-up is a prefix, as timm's `warmup_prefix=True` and torch's
//! `SequentialLR([LinearLR, main])`: it rises linearly from `warmup_lr` to `lr`, and the main
//! schedule then starts from its own beginning, its length the rest of the run. Decay epochs,
//! milestones and restart periods therefore count from the end of the warm-up.
//!
//! Each schedule matches a reference (tests/schedule_parity.rs, on committed fixtures):
//! step, cosine, cosine-restarts and poly are timm's StepLRScheduler, CosineLRScheduler and
//! PolyLRScheduler; multistep, exponential and onecycle are torch's MultiStepLR, ExponentialLR
//! and OneCycleLR (without momentum cycling).

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// × `decay_rate` every `decay_epochs`.
    Step,
    /// × `decay_rate` at each of `decay_milestones`.
    Multistep,
    /// × `decay_rate` per epoch, continuously.
    Exponential,
    /// Cosine annealing from `lr` to `min_lr` over the run.
    Cosine,
    /// SGDR: cosine cycles of `restart_epochs` × `restart_mult`^i, each peak × `restart_decay`.
    CosineRestarts,
    /// Cosine up from `lr / onecycle_div` to `lr` over `onecycle_pct` of the run, then down to
    /// `min_lr`.
    Onecycle,
    /// `min_lr + (lr − min_lr)·(1 − t/T)^poly_power`.
    Poly,
    Constant,
}

impl std::fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScheduleKind::Step => "step",
            ScheduleKind::Multistep => "multistep",
            ScheduleKind::Exponential => "exponential",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::CosineRestarts => "cosine-restarts",
            ScheduleKind::Onecycle => "onecycle",
            ScheduleKind::Poly => "poly",
            ScheduleKind::Constant => "constant",
        })
    }
}

pub const SCHEDULE_NAMES: &str =
    "step, multistep, exponential, cosine, cosine-restarts, onecycle, poly, constant";

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "step" => ScheduleKind::Step,
            "multistep" => ScheduleKind::Multistep,
            "exponential" => ScheduleKind::Exponential,
            "cosine" => ScheduleKind::Cosine,
            "cosine-restarts" => ScheduleKind::CosineRestarts,
            "onecycle" => ScheduleKind::Onecycle,
            "poly" => ScheduleKind::Poly,
            "constant" => ScheduleKind::Constant,
            other => {
                return Err(format!(
                    "unknown schedule '{other}'; valid: {SCHEDULE_NAMES}"
                ))
            }
        })
    }
}

/// When the learning rate changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulePer {
    /// Every optimizer step (timm's `--sched-on-updates`).
    #[default]
    Step,
    /// Once per epoch, constant within it (timm's default).
    Epoch,
}

impl std::str::FromStr for SchedulePer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "step" => Ok(SchedulePer::Step),
            "epoch" => Ok(SchedulePer::Epoch),
            other => Err(format!(
                "unknown schedule update '{other}'; valid: step, epoch"
            )),
        }
    }
}

/// A schedule in epochs, as the user writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    pub per: SchedulePer,
    pub lr: f64,
    /// The floor of cosine, cosine-restarts and poly, and onecycle's final lr.
    pub min_lr: f64,
    pub warmup_epochs: f64,
    /// The first warm-up lr; None: 1% of `lr`.
    pub warmup_lr: Option<f64>,
    pub decay_epochs: f64,
    pub decay_milestones: Vec<f64>,
    pub decay_rate: f64,
    pub restart_epochs: f64,
    pub restart_mult: f64,
    pub restart_decay: f64,
    pub poly_power: f64,
    pub onecycle_pct: f64,
    pub onecycle_div: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            kind: ScheduleKind::Cosine,
            per: SchedulePer::Step,
            lr: 1e-3,
            min_lr: 0.0,
            warmup_epochs: 0.0,
            warmup_lr: None,
            decay_epochs: 30.0,
            decay_milestones: vec![30.0, 60.0, 90.0],
            decay_rate: 0.1,
            restart_epochs: 10.0,
            restart_mult: 1.0,
            restart_decay: 1.0,
            poly_power: 1.0,
            onecycle_pct: 0.3,
            onecycle_div: 25.0,
        }
    }
}

/// A schedule resolved to update units (steps or epochs) for one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Schedule {
    pub config: ScheduleConfig,
    /// Updates per epoch: the steps per epoch, or 1 when updated per epoch.
    pub units_per_epoch: usize,
    pub total_units: usize,
    pub warmup_units: usize,
    /// The warm-up asked for, when it was cut to half the run.
    pub warmup_clamped_from: Option<usize>,
}

impl Schedule {
    pub fn new(
        config: &ScheduleConfig,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let units_per_epoch = match config.per {
            SchedulePer::Step => steps_per_epoch.max(1),
            SchedulePer::Epoch => 1,
        };
        let total_units = (epochs * units_per_epoch).max(1);
        let asked = (config.warmup_epochs * units_per_epoch as f64).round() as usize;
        // A warm-up as long as the run never reaches the peak lr (`--epochs 1` with the default
        // one-epoch warm-up did that); at most half the run warms up.
        let limit = total_units / 2;
        let (warmup_units, warmup_clamped_from) = if asked > limit {
            (limit, Some(asked))
        } else {
            (asked, None)
        };
        Ok(Schedule {
            config: config.clone(),
            units_per_epoch,
            total_units,
            warmup_units,
            warmup_clamped_from,
        })
    }

    /// The lr of the optimizer step `step` (counted over the run) in epoch `epoch` (from 0).
    pub fn lr_at(&self, epoch: usize, step: usize) -> f64 {
        match self.config.per {
            SchedulePer::Step => self.lr(step),
            SchedulePer::Epoch => self.lr(epoch),
        }
    }

    /// The lr at update unit `t` (a step or an epoch, from 0).
    pub fn lr(&self, t: usize) -> f64 {
        let c = &self.config;
        let base = c.lr;
        if t < self.warmup_units {
            let start = c.warmup_lr.unwrap_or(0.01 * base);
            return start + t as f64 * (base - start) / self.warmup_units as f64;
        }
        let upe = self.units_per_epoch as f64;
        let u = (t - self.warmup_units) as f64;
        // The main schedule's length: the rest of the run (at least one unit).
        let horizon = (self.total_units - self.warmup_units).max(1) as f64;
        let min = c.min_lr;
        match c.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Step => {
                let decays = (u / (c.decay_epochs * upe)).floor();
                base * c.decay_rate.powf(decays)
            }
            ScheduleKind::Multistep => {
                let passed = c
                    .decay_milestones
                    .iter()
                    .filter(|&&m| (m * upe).round() <= u)
                    .count();
                base * c.decay_rate.powi(passed as i32)
            }
            ScheduleKind::Exponential => base * c.decay_rate.powf(u / upe),
            ScheduleKind::Cosine => {
                let t = (u / horizon).min(1.0);
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            ScheduleKind::CosineRestarts => {
                let period = (c.restart_epochs * upe).round().max(1.0);
                let mult = c.restart_mult;
                // timm CosineLRScheduler's cycle arithmetic, kept formula for formula so the
                // cycle boundaries land on the same steps.
                let (cycle, cycle_len, into_cycle) = if mult != 1.0 {
                    let i = (1.0 - u / period * (1.0 - mult)).ln() / mult.ln();
                    let i = i.floor();
                    let len = mult.powf(i) * period;
                    (i, len, u - (1.0 - mult.powf(i)) / (1.0 - mult) * period)
                } else {
                    let i = (u / period).floor();
                    (i, period, u - period * i)
                };
                let peak = base * c.restart_decay.powf(cycle);
                min + 0.5
                    * (peak - min)
                    * (1.0 + (std::f64::consts::PI * into_cycle / cycle_len).cos())
            }
            ScheduleKind::Poly => {
                let t = (u / horizon).min(1.0);
                min + (base - min) * (1.0 - t).powf(c.poly_power)
            }
            ScheduleKind::Onecycle => {
                // torch OneCycleLR, two phases, cosine annealing.
                let initial = base / c.onecycle_div;
                let rise_end = c.onecycle_pct * horizon - 1.0;
                let fall_end = horizon - 1.0;
                let anneal = |start: f64, end: f64, pct: f64| {
                    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
                };
                if u <= rise_end && rise_end > 0.0 {
                    anneal(initial, base, u / rise_end)
                } else {
                    let span = fall_end - rise_end.max(0.0);
                    let pct = if span > 0.0 {
                        (u - rise_end.max(0.0)) / span
                    } else {
                        1.0
                    };
                    anneal(base, min, pct.min(1.0))
                }
            }
        }
    }
}

impl crate::trainer::TrainConfig {
    /// The lr schedule settings of this training config.
    pub fn schedule_config(&self) -> ScheduleConfig {
        ScheduleConfig {
            kind: self.schedule,
            per: self.schedule_per,
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_epochs: self.warmup_epochs,
            warmup_lr: self.warmup_lr,
            decay_epochs: self.decay_epochs,
            decay_milestones: self.decay_milestones.clone(),
            decay_rate: self.decay_rate,
            restart_epochs: self.restart_epochs,
            restart_mult: self.restart_mult,
            restart_decay: self.restart_decay,
            poly_power: self.poly_power,
            onecycle_pct: self.onecycle_pct,
            onecycle_div: self.onecycle_div,
        }
    }
}

impl ScheduleConfig {
    /// Checks every value the schedule uses, naming the CLI flag in the error.
    pub fn validate(&self) -> Result<(), TrainError> {
        validate(self)
    }
}

fn validate(c: &ScheduleConfig) -> Result<(), TrainError> {
    let bad = |flag: &str, value: f64, want: &str| {
        Err(TrainError::Config(format!(
            "{flag} {value}: must be {want}"
        )))
    };
    let positive = |v: f64| v > 0.0 && v.is_finite();
    if !positive(c.lr) {
        return bad("--lr", c.lr, "a positive number");
    }
    if !(c.min_lr >= 0.0 && c.min_lr <= c.lr) {
        return bad("--min-lr", c.min_lr, "in [0, --lr]");
    }
    if !(c.warmup_epochs >= 0.0 && c.warmup_epochs.is_finite()) {
        return bad("--warmup-epochs", c.warmup_epochs, "a number ≥ 0");
    }
    if let Some(w) = c.warmup_lr {
        if !(w >= 0.0 && w.is_finite()) {
            return bad("--warmup-lr", w, "a number ≥ 0");
        }
    }
    match c.kind {
        ScheduleKind::Step | ScheduleKind::Multistep | ScheduleKind::Exponential => {
            if !positive(c.decay_rate) {
                return bad("--decay-rate", c.decay_rate, "a positive number");
            }
        }
        _ => {}
    }
    match c.kind {
        ScheduleKind::Step if !positive(c.decay_epochs) => {
            bad("--decay-epochs", c.decay_epochs, "a positive number")
        }
        ScheduleKind::Multistep => {
            if let Some(&m) = c
                .decay_milestones
                .iter()
                .find(|m| !(**m >= 0.0 && m.is_finite()))
            {
                return bad("--decay-milestones", m, "epochs ≥ 0");
            }
            if c.decay_milestones.windows(2).any(|w| w[0] > w[1]) {
                return Err(TrainError::Config(format!(
                    "--decay-milestones {:?}: must be in increasing order",
                    c.decay_milestones
                )));
            }
            Ok(())
        }
        ScheduleKind::CosineRestarts => {
            if !positive(c.restart_epochs) {
                return bad("--restart-epochs", c.restart_epochs, "a positive number");
            }
            if !(c.restart_mult >= 1.0 && c.restart_mult.is_finite()) {
                return bad("--restart-mult", c.restart_mult, "a number ≥ 1");
            }
            if !positive(c.restart_decay) {
                return bad("--restart-decay", c.restart_decay, "a positive number");
            }
            Ok(())
        }
        ScheduleKind::Poly if !positive(c.poly_power) => {
            bad("--poly-power", c.poly_power, "a positive number")
        }
        ScheduleKind::Onecycle => {
            if !(c.onecycle_pct > 0.0 && c.onecycle_pct < 1.0) {
                return bad("--onecycle-pct", c.onecycle_pct, "in (0, 1)");
            }
            if !(c.onecycle_div >= 1.0 && c.onecycle_div.is_finite()) {
                return bad("--onecycle-div", c.onecycle_div, "a number ≥ 1");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(epochs: usize, steps: usize, warmup: f64) -> Schedule {
        let config = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            lr: 0.1,
            min_lr: 0.0,
            warmup_epochs: warmup,
            warmup_lr: Some(0.0),
            ..ScheduleConfig::default()
        };
        Schedule::new(&config, epochs, steps).unwrap()
    }

    #[test]
    fn cosine_hits_its_endpoints_and_midpoint() {
        let s = cosine(11, 10, 1.0);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 0.05).abs() < 1e-12); // halfway through a linear warm-up
        assert!((s.lr(10) - 0.1).abs() < 1e-12);
        assert!((s.lr(60) - 0.05).abs() < 1e-12); // cos(pi/2) = 0 -> half the LR
        assert!(s.lr(110).abs() < 1e-12);
    }

    #[test]
    fn a_warmup_as_long_as_the_run_is_cut_to_half_of_it() {
        // `--epochs 1` with the default one-epoch warm-up: the peak lr is reached mid-run.
        let s = cosine(1, 10, 1.0);
        assert_eq!(s.warmup_units, 5);
        assert_eq!(s.warmup_clamped_from, Some(10));
        assert!((s.lr(5) - 0.1).abs() < 1e-12);
        // A single update per run: no warm-up at all.
        let config = ScheduleConfig {
            per: SchedulePer::Epoch,
            warmup_epochs: 1.0,
            ..ScheduleConfig::default()
        };
        let s = Schedule::new(&config, 1, 10).unwrap();
        assert_eq!(s.warmup_units, 0);
        assert_eq!(s.lr_at(0, 9), config.lr);
    }

    #[test]
    fn per_epoch_schedules_hold_the_lr_within_an_epoch() {
        let config = ScheduleConfig {
            kind: ScheduleKind::Step,
            per: SchedulePer::Epoch,
            lr: 1.0,
            decay_epochs: 2.0,
            decay_rate: 0.5,
            ..ScheduleConfig::default()
        };
        let s = Schedule::new(&config, 6, 10).unwrap();
        assert_eq!(s.lr_at(1, 19), 1.0);
        assert_eq!(s.lr_at(2, 20), 0.5);
        assert_eq!(s.lr_at(5, 59), 0.25);
    }

    #[test]
    fn bad_values_are_errors_naming_the_flag() {
        let cases: Vec<(ScheduleConfig, &str)> = vec![
            (
                ScheduleConfig {
                    lr: -0.1,
                    ..Default::default()
                },
                "--lr",
            ),
            (
                ScheduleConfig {
                    min_lr: -1.0,
                    ..Default::default()
                },
                "--min-lr",
            ),
            (
                ScheduleConfig {
                    warmup_epochs: -1.0,
                    ..Default::default()
                },
                "--warmup-epochs",
            ),
            (
                ScheduleConfig {
                    kind: ScheduleKind::Step,
                    decay_rate: 0.0,
                    ..Default::default()
                },
                "--decay-rate",
            ),
            (
                ScheduleConfig {
                    kind: ScheduleKind::Multistep,
                    decay_milestones: vec![5.0, 2.0],
                    ..Default::default()
                },
                "--decay-milestones",
            ),
            (
                ScheduleConfig {
                    kind: ScheduleKind::CosineRestarts,
                    restart_epochs: 0.0,
                    ..Default::default()
                },
                "--restart-epochs",
            ),
            (
                ScheduleConfig {
                    kind: ScheduleKind::Onecycle,
                    onecycle_pct: 1.5,
                    ..Default::default()
                },
                "--onecycle-pct",
            ),
        ];
        for (config, flag) in cases {
            let err = Schedule::new(&config, 3, 4).unwrap_err().to_string();
            assert!(err.contains(flag), "{err} should name {flag}");
        }
    }
}
