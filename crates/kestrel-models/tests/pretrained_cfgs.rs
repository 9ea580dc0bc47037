//! The data config a name selects equals timm's `pretrained_cfg` for it (a bare name: timm's
//! default tag), test size included, for names of every family that declares timm's tags. Fixture: tests/fixtures/timm_pretrained_cfgs.json, written by
//! scripts/make_pretrained_cfg_fixture.py from timm 1.0.31.

use kestrel_models::find_pretrained;
use serde_json::Value;

#[test]
fn data_configs_equal_timm_pretrained_cfgs() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/timm_pretrained_cfgs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let timm: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    assert!(timm.len() >= 28, "fixture has {} names", timm.len());
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let size = |v: &Value| -> Option<[usize; 3]> {
        v.as_array().map(|a| {
            let s: Vec<usize> = a.iter().map(|x| x.as_u64().unwrap() as usize).collect();
            [s[0], s[1], s[2]]
        })
    };
    let close = |a: &[f64], b: &[f32]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - f64::from(*y)).abs() < 1e-6)
    };
    for (name, cfg) in &timm {
        let (spec, data) = find_pretrained(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Some(data.input_size), size(&cfg["input_size"]), "{name}");
        assert!(
            close(&floats(&cfg["mean"]), &data.mean),
            "{name}: mean {:?}",
            data.mean
        );
        assert!(
            close(&floats(&cfg["std"]), &data.std),
            "{name}: std {:?}",
            data.std
        );
        assert!(
            (cfg["crop_pct"].as_f64().unwrap() - data.crop_pct).abs() < 1e-9,
            "{name}: crop_pct {}",
            data.crop_pct
        );
        assert_eq!(
            cfg["interpolation"].as_str(),
            Some(data.interpolation.as_str()),
            "{name}"
        );
        assert_eq!(
            cfg["crop_mode"].as_str(),
            Some(data.crop_mode.as_str()),
            "{name}"
        );
        assert!(!spec.tags.is_empty(), "{name}: no tags");
        assert_eq!(
            data.test_input_size,
            size(&cfg["test_input_size"]),
            "{name}"
        );
        assert_eq!(data.test_crop_pct, cfg["test_crop_pct"].as_f64(), "{name}");
    }
}
