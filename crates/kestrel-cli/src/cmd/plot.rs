use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  kestrel plot runs/resnet20_cifar")]
pub struct PlotArgs {
    /// Run folder written by `kestrel train` (or `kestrel distill`).
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
}

pub fn run(a: PlotArgs) -> Result<()> {
    for path in kestrel_train::plots::plot_run(&a.run)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
