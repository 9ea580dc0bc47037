use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use kestrel_serve::{ServeOptions, Server};

use super::common::{at_least_one, engine_notice, EngineArgs};
use super::source::{load, ModelSourceArgs};
use crate::device::{parse_device, DEVICE_HELP};

#[derive(Args, Debug)]
#[command(after_help = "Endpoints:\n  \
POST /v1/classify  an image as the raw body (Content-Type image/* or application/octet-stream)\n                     \
or a multipart/form-data file field -> JSON: model, top (class, index, probability),\n                     \
batch_size, timings (decode_ms, queue_ms, inference_ms, total_ms)\n  \
GET  /healthz      JSON: status, model, engine, input_size, classes\n  \
GET  /metrics      Prometheus text: kestrel_requests_total{status}, kestrel_queue_seconds,\n                     \
kestrel_inference_seconds, kestrel_batch_size, kestrel_in_flight_requests,\n                     \
kestrel_queued_requests\n  \
GET  /             a web page: drop or choose an image, see the top-5 as bars\n\n\
Errors are JSON {\"error\": ...}: 503 with Retry-After when --queue requests are already in,\n\
413 for a body over --max-body-mb, 415 for another Content-Type, 400 for a non-image or corrupt\n\
image. SIGINT/SIGTERM stops accepting, finishes the admitted requests and exits 0.\n\n\
Examples:\n  kestrel serve --checkpoint runs/lenet5\n  \
kestrel serve --model resnet50 --weights resnet50.safetensors --addr 0.0.0.0:8080\n  \
curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg' http://127.0.0.1:8080/v1/classify")]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    /// Serve a randomly initialised --model (no --weights): only for trying things out.
    #[arg(long, conflicts_with_all = ["weights", "checkpoint"])]
    pub random_weights: bool,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Most requests run as one batch (1: no batching).
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub max_batch: usize,
    /// Longest the first request of a batch waits for more, in milliseconds (0: run what is
    /// waiting at once).
    #[arg(long, default_value_t = 5.0, value_name = "MS")]
    pub max_delay_ms: f64,
    /// Most requests inside the server at once (being read, decoded, waiting or running); the
    /// next gets 503 with Retry-After. Bounds the server's memory.
    #[arg(long, default_value_t = 256, value_parser = at_least_one)]
    pub queue: usize,
    /// Largest request body in MiB; a larger one gets 413.
    #[arg(long, default_value_t = 10.0, value_name = "MB")]
    pub max_body_mb: f64,
    /// Classes returned per image.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub top_k: usize,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    #[command(flatten)]
    pub precision: crate::device::PrecisionArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub fn run(a: ServeArgs) -> Result<()> {
    let mut device = parse_device(&a.device)?;
    a.precision.configure(&mut device, &a.device)?;
    a.engine.apply()?;
    if !(a.max_delay_ms.is_finite() && a.max_delay_ms >= 0.0) {
        anyhow::bail!("--max-delay-ms {}: must be ≥ 0", a.max_delay_ms);
    }
    if !(a.max_body_mb.is_finite() && a.max_body_mb > 0.0) {
        anyhow::bail!("--max-body-mb {}: must be > 0", a.max_body_mb);
    }
    if a.source.model.is_some() && a.source.weights.is_none() {
        if !a.random_weights {
            anyhow::bail!(
                "--model {} without --weights would serve random weights; give --weights FILE \
                 (or --random-weights to try the model untrained)",
                a.source.model.as_deref().unwrap_or_default()
            );
        }
        eprintln!("warning: --random-weights: this server answers with an untrained model");
    }
    let loaded = load(&a.source, &device)?;
    let (runner, notice) = loaded.runner(&device, a.engine.engine);
    engine_notice(&loaded.name, notice);
    let name = loaded.name.clone();
    let opts = ServeOptions {
        max_batch: a.max_batch,
        max_delay: Duration::from_secs_f64(a.max_delay_ms / 1e3),
        queue: a.queue,
        max_body_bytes: (a.max_body_mb * (1 << 20) as f64) as usize,
        top_k: a.top_k,
    };
    let server = Server::bind(loaded, runner, a.addr, opts)?;
    // Tests and scripts read the port from this line (with --addr ...:0).
    println!(
        "kestrel serve: {name} listening on http://{}",
        server.local_addr()
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    server.run()?;
    eprintln!("kestrel serve: stopped");
    Ok(())
}
