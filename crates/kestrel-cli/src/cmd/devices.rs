use anyhow::Result;
use clap::Args;

use crate::device::{all_devices, format_memory};

#[derive(Args, Debug)]
#[command(
    after_help = "`--device` takes the SPEC column: `cpu`, `wgpu:N`, or `wgpu` for the best adapter.\n\
A machine without a GPU driver lists only the CPU; on Debian/Ubuntu, `mesa-vulkan-drivers` adds a \
software Vulkan device (lavapipe) that runs everything, slowly."
)]
pub struct DevicesArgs {
    /// Print JSON (a list of {spec, backend, name, kind, driver, memory_bytes}) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: DevicesArgs) -> Result<()> {
    let devices = all_devices();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(());
    }
    println!(
        "{:<8} {:<8} {:<15} {:>10}  {:<40} DRIVER",
        "SPEC", "BACKEND", "KIND", "MEMORY", "NAME"
    );
    for d in &devices {
        let name = match d.threads {
            Some(t) => format!("{} ({t} threads)", d.name),
            None => d.name.clone(),
        };
        println!(
            "{:<8} {:<8} {:<15} {:>10}  {:<40} {}",
            d.spec,
            d.backend,
            d.kind,
            format_memory(d.memory_bytes),
            name,
            d.driver
        );
    }
    if devices.len() == 1 {
        println!("\nNo GPU adapter is visible: no Vulkan, Metal, DX12 or GL driver answered.");
    }
    Ok(())
}
