//! The `kestrel` command: train, evaluate, inspect and run image classifiers.

mod cmd;
mod device;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kestrel",
    version,
    about = "Train, evaluate and run image classifiers; benchmark them and export them to ONNX (timm/torchvision models in Rust, on burn)",
    long_about = "kestrel trains and evaluates image classifiers with timm's model names and weight layouts.\n\n\
        With no arguments, `kestrel train` trains LeNet-5 on the embedded MNIST subset (10,000 real \
        digits) and prints the evaluation report."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (default: LeNet-5 on the embedded MNIST subset), then evaluate it on the test split.
    Train(cmd::train::TrainArgs),
    /// Evaluate a saved checkpoint: accuracy, top-5, precision/recall/F1, confusion matrix.
    Eval(cmd::eval::EvalArgs),
    /// Print the top-5 classes of images, from a checkpoint or a model + weights file.
    Predict(cmd::predict::PredictArgs),
    /// List the models kestrel can build: family, parameters, MACs, input and preprocessing.
    Models(cmd::models::ModelsArgs),
    /// Run a raw NCHW tensor (safetensors `input`) through a model; write `logits`.
    Forward(cmd::forward::ForwardArgs),
    /// Export a model as ONNX (NCHW, opset 17, dynamic batch, preprocessing in the metadata).
    Export(cmd::export::ExportArgs),
    /// Quantize a model to int8 (post-training, calibrated on a folder of images) into a run folder.
    Quantize(cmd::quantize::QuantizeArgs),
    /// Prune a model (magnitude pruning stored sparse, or channel pruning) into a run folder.
    Prune(cmd::prune::PruneArgs),
    /// Write the exact eval-time input tensor a model sees for an image.
    Preprocess(cmd::preprocess::PreprocessArgs),
    /// Write a grid of augmented samples to see what a recipe does.
    AugmentPreview(cmd::augment_preview::AugmentPreviewArgs),
    /// Benchmark a model: batch-1 latency, batch throughput, a training step, peak memory.
    Bench(cmd::bench::BenchArgs),
    /// List the devices `--device` can pick: the CPU and each GPU adapter (backend, name, memory).
    Devices(cmd::devices::DevicesArgs),
    /// Measure the input pipeline's throughput (decode + augment + batch), in images/s.
    DataBench(cmd::data_bench::DataBenchArgs),
    /// Train a student with a teacher's logits (knowledge distillation; DeiT's hard distillation).
    Distill(cmd::distill::DistillArgs),
    /// Redraw a run's plots (curves.png: loss, accuracy, lr; confusion_matrix.png) from its logs.
    Plot(cmd::plot::PlotArgs),
    /// Serve a model over HTTP: POST /v1/classify with dynamic batching, /metrics, a web page.
    Serve(cmd::serve::ServeArgs),
    /// Recommend a model for a scenario: measure candidates here, join timm's published top-1,
    /// print the Pareto front and the pick.
    Recommend(cmd::recommend::RecommendArgs),
}

fn main() {
    // Like any Unix filter, stop quietly when the reader goes away (`kestrel models | head`)
    // instead of panicking on a broken pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Training and batched inference free and reallocate the same multi-MiB activation buffers
    // every step. glibc's defaults hand them back to the OS (mmap/trim) and fault them in again,
    // zeroed, each time; keeping them in the heap removes those page faults without raising the
    // peak (the heap only keeps what the peak step needed).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KESTREL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // The matches are kept: `train --resume` tells flags given from defaults.
    // `distill` takes train's flags for the student, whose --model is spelled --student there.
    let matches = Cli::command()
        .mut_subcommand("distill", |c| {
            c.mut_arg("model", |a| {
                a.long("student")
                    .value_name("NAME")
                    .help("Student model name (see `kestrel models`)")
            })
        })
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(a) => {
            let train_matches = matches
                .subcommand_matches("train")
                .expect("train subcommand");
            cmd::train::run(a, train_matches)
        }
        Command::Eval(a) => cmd::eval::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Models(a) => cmd::models::run(a),
        Command::Forward(a) => cmd::forward::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Prune(a) => cmd::prune::run(a),
        Command::Preprocess(a) => cmd::preprocess::run(a),
        Command::AugmentPreview(a) => cmd::augment_preview::run(a),
        Command::DataBench(a) => cmd::data_bench::run(a),
        Command::Devices(a) => cmd::devices::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Plot(a) => cmd::plot::run(a),
        Command::Distill(a) => {
            let distill_matches = matches
                .subcommand_matches("distill")
                .expect("distill subcommand");
            cmd::distill::run(a, distill_matches)
        }
        Command::Serve(a) => cmd::serve::run(a),
        Command::Recommend(a) => cmd::recommend::run(a),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Large blocks on 64-byte boundaries: the kernels' 512-bit rows then never straddle two
/// cache lines (measured 5-10% per op on mobilenetv2_100 at batch 1).
#[global_allocator]
static ALLOCATOR: kestrel_kernels::CacheLineAligned = kestrel_kernels::CacheLineAligned;
