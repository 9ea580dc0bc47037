//! Each lr schedule, warm-up included, gives the lr sequence of its torch.optim.lr_scheduler /
//! timm.scheduler reference (scripts/make_optim_fixtures.py), per step and per epoch.

use crate::common;

use kestrel_train::schedule::{Schedule, ScheduleConfig, ScheduleKind, SchedulePer};
use serde_json::Value;

use common::{assert_close, f64s, fixture};

fn config(case: &Value) -> ScheduleConfig {
    let f = |key: &str, default: f64| case.get(key).and_then(Value::as_f64).unwrap_or(default);
    let d = ScheduleConfig::default();
    ScheduleConfig {
        kind: case["schedule"].as_str().unwrap().parse().unwrap(),
        per: case["per"].as_str().unwrap().parse().unwrap(),
        lr: f("lr", d.lr),
        min_lr: f("min_lr", d.min_lr),
        warmup_epochs: f("warmup_epochs", d.warmup_epochs),
        warmup_lr: case.get("warmup_lr").and_then(Value::as_f64),
        decay_epochs: f("decay_epochs", d.decay_epochs),
        decay_milestones: case
            .get("decay_milestones")
            .map(f64s)
            .unwrap_or(d.decay_milestones),
        decay_rate: f("decay_rate", d.decay_rate),
        restart_epochs: f("restart_epochs", d.restart_epochs),
        restart_mult: f("restart_mult", d.restart_mult),
        restart_decay: f("restart_decay", d.restart_decay),
        poly_power: f("poly_power", d.poly_power),
        onecycle_pct: f("onecycle_pct", d.onecycle_pct),
        onecycle_div: f("onecycle_div", d.onecycle_div),
    }
}

#[test]
fn every_schedule_matches_torch_and_timm() {
    let fixture = fixture("schedules.json");
    let cases = fixture["cases"].as_array().unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let config = config(case);
        kinds.insert(format!("{:?}", config.kind));
        let epochs = case["epochs"].as_u64().unwrap() as usize;
        let steps_per_epoch = case["steps_per_epoch"].as_u64().unwrap() as usize;
        let schedule = Schedule::new(&config, epochs, steps_per_epoch).unwrap();
        let want = f64s(&case["lrs"]);
        assert_eq!(schedule.total_units, want.len(), "{name}: units in the run");
        let got: Vec<f64> = (0..schedule.total_units).map(|t| schedule.lr(t)).collect();
        assert_close(name, &got, &want, 1e-9, 1e-15);
        // What the trainer asks for, step by step, is the same sequence.
        for epoch in 0..epochs {
            for s in 0..steps_per_epoch {
                let step = epoch * steps_per_epoch + s;
                let unit = match config.per {
                    SchedulePer::Step => step,
                    SchedulePer::Epoch => epoch,
                };
                assert_eq!(
                    schedule.lr_at(epoch, step),
                    got[unit],
                    "{name}: step {step}"
                );
            }
        }
    }
    assert_eq!(kinds.len(), 8, "a case for each schedule: {kinds:?}");
    let _ = ScheduleKind::Constant;
}
