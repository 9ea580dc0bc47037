//! `--config`: the whole training configuration as TOML (the keys are [`TrainConfig`]'s
//! fields, spelled as the CLI flags with `_`), read from a file or one of the built-in recipes,
//! and written back into each run folder as `config.toml`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::TrainError;
use crate::trainer::TrainConfig;

/// The recipes `--config NAME` names, embedded in the binary.
pub const BUILTIN_CONFIGS: &[(&str, &str)] = &[
    ("fashion-fast", include_str!("../configs/fashion-fast.toml")),
    ("fashion-best", include_str!("../configs/fashion-best.toml")),
];

/// The run folder's copy of the effective configuration.
pub const CONFIG_FILE: &str = "config.toml";

/// A parsed `--config`: the keys it sets (as JSON, in [`TrainConfig`]'s serde form) and where
/// they came from, for messages.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub origin: String,
    pub values: Map<String, Value>,
}

/// Reads `spec`: a built-in name ([`BUILTIN_CONFIGS`]) or a TOML file. A key that is not a
/// training setting is an error naming the key and the file.
pub fn read_config(spec: &str) -> Result<ConfigFile, TrainError> {
    let (origin, text) = match BUILTIN_CONFIGS.iter().find(|(name, _)| *name == spec) {
        Some((name, text)) => (format!("the built-in config {name}"), text.to_string()),
        None => {
            let path = Path::new(spec);
            if !path.exists() && !spec.ends_with(".toml") {
                let names: Vec<&str> = BUILTIN_CONFIGS.iter().map(|(n, _)| *n).collect();
                return Err(TrainError::Config(format!(
                    "--config {spec}: neither a built-in config ({}) nor a file",
                    names.join(", ")
                )));
            }
            let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
            (path.display().to_string(), text)
        }
    };
    parse_config(&text, &origin)
}

/// Parses TOML `text` (from `origin`, named in errors) into training settings.
pub fn parse_config(text: &str, origin: &str) -> Result<ConfigFile, TrainError> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| TrainError::Config(format!("{origin}: {e}")))?;
    let Value::Object(mut values) = serde_json::to_value(&table).expect("TOML converts to JSON")
    else {
        unreachable!("a TOML document is a table")
    };
    let known = default_values();
    let mut unknown: Vec<&String> = values.keys().filter(|k| !known.contains_key(*k)).collect();
    unknown.sort();
    if let Some(key) = unknown.first() {
        let mut valid: Vec<&String> = known.keys().collect();
        valid.sort();
        let valid: Vec<&str> = valid.into_iter().map(String::as_str).collect();
        return Err(TrainError::Config(format!(
            "{origin}: unknown key `{key}` (the keys are TrainConfig's: {})",
            valid.join(", ")
        )));
    }
    // TOML has no null: `lamb_max_grad_norm = 0` turns LAMB's clip off, as --lamb-max-grad-norm 0.
    if values.get("lamb_max_grad_norm").and_then(Value::as_f64) == Some(0.0) {
        values.insert("lamb_max_grad_norm".into(), Value::Null);
    }
    // Each value is checked by deserialising it alone over the defaults, so the error names it.
    for (key, value) in &values {
        let mut probe = known.clone();
        probe.insert(key.clone(), value.clone());
        if let Err(e) = serde_json::from_value::<TrainConfig>(Value::Object(probe)) {
            return Err(TrainError::Config(format!("{origin}: key `{key}`: {e}")));
        }
    }
    Ok(ConfigFile {
        origin: origin.to_string(),
        values,
    })
}

fn default_values() -> Map<String, Value> {
    match serde_json::to_value(TrainConfig::default()).expect("config serialises") {
        Value::Object(m) => m,
        _ => unreachable!("a struct serialises to an object"),
    }
}

/// `base` with every key of `file` set, then every key in `overrides` taken from `cli` (the
/// flags the user actually typed win over the file).
pub fn merge_config(
    cli: &TrainConfig,
    file: &ConfigFile,
    overrides: &[&str],
) -> Result<TrainConfig, TrainError> {
    let Value::Object(cli_values) = serde_json::to_value(cli).expect("config serialises") else {
        unreachable!("a struct serialises to an object")
    };
    let mut merged = default_values();
    merged.extend(file.values.clone());
    for key in overrides {
        if let Some(v) = cli_values.get(*key) {
            merged.insert(key.to_string(), v.clone());
        }
    }
    serde_json::from_value(Value::Object(merged))
        .map_err(|e| TrainError::Config(format!("{}: {e}", file.origin)))
}

/// The configuration as TOML, which `--config` reads back to the same configuration.
pub fn config_toml(cfg: &TrainConfig) -> String {
    let mut value = serde_json::to_value(cfg).expect("config serialises");
    if let Value::Object(m) = &mut value {
        if m.get("lamb_max_grad_norm") == Some(&Value::Null) {
            m.insert("lamb_max_grad_norm".into(), Value::from(0.0));
        }
    }
    strip_nulls(&mut value);
    let body = toml::to_string(&value).expect("a config serialises to TOML");
    format!(
        "# The effective training configuration of this run (kestrel {}). Start another run \
         with it: kestrel train --config config.toml\n{body}",
        env!("CARGO_PKG_VERSION")
    )
}

/// TOML cannot write null: an unset option is left out (it reads back as unset).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
