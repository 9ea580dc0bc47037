//! `kestrel train` with the optimizer, schedule and loss flags: every optimizer trains, the
//! log records the lr each epoch used, and bad values are clean errors naming the flag.

use crate::common;

use std::path::Path;

use common::{kestrel, read_json, s, solid_color_folder, tempdir, Run};

/// Two epochs of LeNet-5, batch 4 (6 steps an epoch), one loader thread.
fn train(data: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--epochs",
        "2",
        "--model",
        "lenet5",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--quiet",
        "--val-fraction",
        "0.2",
    ];
    args.extend_from_slice(extra);
    kestrel(args)
}

fn log(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_optimizer_trains_and_the_log_holds_the_lr_used() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 10, 3);
    for optimizer in ["sgd", "adam", "adamw", "rmsprop", "rmsproptf", "lamb"] {
        let out = tmp.path().join(optimizer);
        // Constant lr, no warm-up: every step uses exactly --lr.
        train(
            &data,
            &out,
            &[
                "--opt",
                optimizer,
                "--lr",
                "0.003",
                "--schedule",
                "constant",
                "--warmup-epochs",
                "0",
            ],
        )
        .ok();
        for entry in log(&out) {
            let loss = entry["train_loss"].as_f64().unwrap();
            assert!(loss.is_finite(), "{optimizer}: loss {loss}");
            assert_eq!(entry["lr"].as_f64(), Some(0.003), "{optimizer}: {entry}");
            assert_eq!(
                entry["lr_start"].as_f64(),
                Some(0.003),
                "{optimizer}: {entry}"
            );
        }
        assert!(read_json(&out.join("checkpoint.json"))["train_config"]["optimizer"] == optimizer);
    }
}

#[test]
fn a_per_epoch_step_schedule_decays_between_epochs_and_the_warmup_is_cut() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 10, 4);
    let out = tmp.path().join("out");
    // Warm-up 5 epochs of a 2-epoch run is cut to 1; then x0.5 every epoch, per epoch.
    let run = train(
        &data,
        &out,
        &[
            "--opt",
            "sgd",
            "--lr",
            "0.01",
            "--schedule",
            "step",
            "--decay-epochs",
            "1",
            "--decay-rate",
            "0.5",
            "--schedule-per",
            "epoch",
            "--warmup-epochs",
            "5",
            "--warmup-lr",
            "0.001",
        ],
    )
    .ok();
    assert!(
        run.stdout.contains("cut to half the run"),
        "{}",
        run.transcript()
    );
    let lrs: Vec<(f64, f64)> = log(&out)
        .iter()
        .map(|e| (e["lr_start"].as_f64().unwrap(), e["lr"].as_f64().unwrap()))
        .collect();
    assert_eq!(lrs, vec![(0.001, 0.001), (0.01, 0.01)]);
}

#[test]
fn bad_optimizer_and_schedule_values_name_the_flag() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 4, 5);
    let out = tmp.path().join("out");
    for (flags, needle) in [
        (&["--lr", "-0.1"][..], "--lr"),
        (&["--weight-decay", "-0.01"][..], "--weight-decay"),
        (&["--momentum", "1.5"][..], "--momentum"),
        (&["--opt-betas", "0.9", "1.5"][..], "--opt-betas"),
        (
            &["--opt", "lamb", "--lamb-max-grad-norm", "-1"][..],
            "--lamb-max-grad-norm",
        ),
        (
            &["--schedule", "multistep", "--decay-milestones", "4,2"][..],
            "--decay-milestones",
        ),
        (
            &["--schedule", "cosine-restarts", "--restart-epochs", "0"][..],
            "--restart-epochs",
        ),
        (&["--min-lr", "1"][..], "--min-lr"),
    ] {
        train(&data, &out, flags).fails_cleanly_naming(&[needle]);
    }
    // An unknown name is rejected by the argument parser, naming the flag and the valid names.
    let run = train(&data, &out, &["--optimizer", "adagrad"]);
    assert!(
        !run.success() && !run.stderr.contains("panicked"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("--optimizer") && run.stderr.contains("rmsproptf"),
        "{}",
        run.transcript()
    );
    let run = train(&data, &out, &["--schedule", "warp"]);
    assert!(
        run.stderr.contains("--schedule") && run.stderr.contains("cosine-restarts"),
        "{}",
        run.transcript()
    );
}
