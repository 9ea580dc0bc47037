use anyhow::Result;
use burn::module::Module;
use burn::prelude::Device;
use clap::Args;
use kestrel_models::REGISTRY;
use serde::Serialize;

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only models whose name or family contains this text.
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    family: &'static str,
    params: usize,
    num_classes: usize,
    input_size: [usize; 3],
    mean: Vec<f32>,
    std: Vec<f32>,
    crop_pct: f32,
    interpolation: &'static str,
}

pub fn run(a: ModelsArgs) -> Result<()> {
    let device = Device::flex();
    let mut rows = Vec::new();
    for spec in REGISTRY {
        if let Some(f) = &a.filter {
            if !spec.name.contains(f.as_str()) && !spec.family.contains(f.as_str()) {
                continue;
            }
        }
        let dc = spec.data_config();
        // Parameters are counted on the real module, so the count cannot drift from the code.
        let params = spec.build(&spec.default_options(), &device).num_params();
        rows.push(Row {
            name: spec.name,
            family: spec.family,
            params,
            num_classes: spec.default_num_classes,
            input_size: dc.input_size,
            mean: dc.mean,
            std: dc.std,
            crop_pct: dc.crop_pct,
            interpolation: dc.interpolation,
        });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<20} {:<8} {:>12} {:>8} {:>12} {:>6} {:<9}", "model", "family", "params", "classes", "input", "crop", "interp");
    for r in rows {
        println!(
            "{:<20} {:<8} {:>12} {:>8} {:>12} {:>6.3} {:<9}",
            r.name,
            r.family,
            r.params,
            r.num_classes,
            format!("{}x{}x{}", r.input_size[0], r.input_size[1], r.input_size[2]),
            r.crop_pct,
            r.interpolation
        );
    }
    Ok(())
}
