//! Shared by the parity tests: reading the committed fixtures of scripts/make_optim_fixtures.py.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

/// The fixture `name`, parsed; a missing or unreadable fixture fails the test, never skips it.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the fixture is committed, regenerate it with `python3 scripts/make_optim_fixtures.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn f64s(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

pub fn f32s(value: &serde_json::Value) -> Vec<f32> {
    f64s(value).into_iter().map(|v| v as f32).collect()
}

/// |a − b| ≤ rel·max(|a|, |b|), elementwise, with an absolute floor `abs` for values near 0.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = (rel * g.abs().max(w.abs())).max(abs);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: kestrel {g} vs reference {w} (diff {:e}, tolerance {tol:e})",
            (g - w).abs()
        );
    }
}
