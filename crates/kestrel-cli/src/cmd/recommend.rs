use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use kestrel_models::stats::StatsCache;
use kestrel_serve::recommend::{
    assess, describe, measure, pick, plot, scenario_help, Candidate, DesignRow, MeasurementCache,
    Precision, Scenario,
};

use super::common::{at_least_one, EngineArgs};
use super::models::human_count;

#[derive(Args, Debug)]
#[command(after_help = recommend_help())]
pub struct RecommendArgs {
    /// mobile, realtime, accuracy or small-data (defaults below).
    #[arg(long)]
    pub scenario: Scenario,
    /// Most median latency of one batch, in milliseconds.
    #[arg(long, value_name = "F")]
    pub max_latency_ms: Option<f64>,
    /// Fewest images per second at --batch.
    #[arg(long, value_name = "F")]
    pub min_fps: Option<f64>,
    /// Most parameters (a number, or with k/M/G: 10M).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_params: Option<u64>,
    /// Most multiply-accumulates per image (a number, or with k/M/G: 600M).
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_macs: Option<u64>,
    /// Batch size the latency and FPS are measured at.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    pub batch: usize,
    /// Registry models to compare, comma-separated (default: the scenario's list below).
    #[arg(long, value_delimiter = ',', conflicts_with = "filter")]
    pub candidates: Vec<String>,
    /// Compare the registry models whose name, alias or family matches this glob
    /// (as `kestrel models --filter`).
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Precisions to measure each candidate in, comma-separated: fp32, and int8 (its twin as
    /// `kestrel quantize` makes it, on the fast engine: latency and file size measured here,
    /// top-1 unknown: timm publishes fp32 figures only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fp32,int8",
        value_name = "LIST"
    )]
    pub precision: Vec<Precision>,
    /// Timed runs per candidate (after 2 untimed ones).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub runs: usize,
    /// Measure again instead of using the cached measurements of this machine and binary
    /// (~/.cache/kestrel/recommend-*.json).
    #[arg(long)]
    pub remeasure: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where to write the scatter plot (median latency, log scale, against top-1; the Pareto
    /// front in red, the pick ringed in green, hollow dots break a limit).
    #[arg(long, value_name = "FILE.png", default_value = "recommend.png")]
    pub plot: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn recommend_help() -> String {
    let lists: Vec<String> = Scenario::ALL
        .iter()
        .map(|s| {
            format!(
                "  {:<11} {}",
                format!("{}:", s.name()),
                s.default_candidates().join(", ")
            )
        })
        .collect();
    format!(
        "{}\nDefault candidates (random weights: speed does not depend on them):\n{}\n\n\
         Top-1 is timm's ImageNet-1k validation result for each model's default pretrained tag \
         (timm's results-imagenet.csv, cited per row in --json); a model without one says so.\n\n\
         Examples:\n  kestrel recommend --scenario mobile\n  \
         kestrel recommend --scenario accuracy --max-latency-ms 50 --candidates resnet50,convnext_tiny --json",
        scenario_help(),
        lists.join("\n")
    )
}

/// `10M`, `600M`, `1.5G`, `61706`.
fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok((v * mult).round() as u64),
        _ => Err(format!(
            "'{s}': expected a count such as 61706, 600M or 1.5G"
        )),
    }
}

#[derive(serde::Serialize)]
struct Report<'a> {
    scenario: Scenario,
    /// The scenario's row of the design document's table.
    design_table: DesignRow,
    constraints: &'a kestrel_serve::recommend::Constraints,
    batch: usize,
    candidates: &'a [Candidate],
    /// Models on the Pareto front, fastest first.
    pareto_front: Vec<&'a str>,
    pick: Option<&'a str>,
    pick_precision: Option<Precision>,
    reason: String,
    plot: Option<String>,
    plot_ranges: Option<kestrel_serve::recommend::PlotRanges>,
}

pub fn run(a: RecommendArgs) -> Result<()> {
    a.engine.apply()?;
    let mut limits = a.scenario.defaults();
    if let Some(v) = a.max_latency_ms {
        limits.max_latency_ms = Some(v);
    }
    if let Some(v) = a.min_fps {
        limits.min_fps = Some(v);
    }
    if let Some(v) = a.max_params {
        limits.max_params = Some(v as usize);
    }
    if let Some(v) = a.max_macs {
        limits.max_macs = Some(v);
    }
    let specs: Vec<&'static kestrel_models::ModelSpec> = if let Some(f) = &a.filter {
        let s = super::models::filtered(f)?;
        if s.is_empty() {
            bail!("--filter '{f}': no model matches (see `kestrel models`)");
        }
        s
    } else if !a.candidates.is_empty() {
        a.candidates
            .iter()
            .map(|n| kestrel_models::find(n.trim()))
            .collect::<Result<_, _>>()?
    } else {
        a.scenario
            .default_candidates()
            .iter()
            .map(|n| kestrel_models::find(n))
            .collect::<Result<_, _>>()?
    };
    let mut cache = MeasurementCache::open(MeasurementCache::default_path());
    let mut stats = StatsCache::open(StatsCache::default_path());
    let mut cands = Vec::new();
    let mut precisions = a.precision.clone();
    precisions.dedup();
    if precisions.is_empty() {
        bail!("--precision: give fp32, int8 or both");
    }
    for spec in specs {
        let cached: Vec<Option<_>> = precisions
            .iter()
            .map(|&p| {
                (!a.remeasure)
                    .then(|| {
                        cache
                            .get(spec.name, p, a.batch, a.engine.engine, a.runs)
                            .cloned()
                    })
                    .flatten()
            })
            .collect();
        let missing: Vec<&str> = precisions
            .iter()
            .zip(&cached)
            .filter(|(_, c)| c.is_none())
            .map(|(p, _)| p.name())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "measuring {} ({}) at batch {} ...",
                spec.name,
                missing.join(", "),
                a.batch
            );
        }
        for (&p, cached) in precisions.iter().zip(cached) {
            let m = match cached {
                Some(m) => m,
                None => match measure(spec, a.batch, a.runs, a.engine.engine, p, &mut stats) {
                    Ok(m) => {
                        cache.insert(a.engine.engine, m.clone());
                        cache.save();
                        m
                    }
                    // A model the fast engine does not lower has no int8 twin; its fp32
                    // measurement still counts.
                    Err(e) if p == Precision::Int8 => {
                        eprintln!("note: {e}");
                        continue;
                    }
                    Err(e) => bail!(e),
                },
            };
            cands.push(Candidate::new(m));
        }
    }
    stats.save();
    assess(&mut cands, a.scenario, &limits);
    let picked = pick(&cands, a.scenario, &limits);
    let reason = picked.as_ref().map_or_else(
        || format!("no candidate fits {}", describe(&limits)),
        |p| p.1.clone(),
    );
    let picked_index = picked.as_ref().map(|p| p.0);
    let plotted = plot(&cands, picked_index, &a.plot);
    let front: Vec<&str> = kestrel_serve::recommend::pareto_front(&cands)
        .into_iter()
        .map(|i| cands[i].measured.model.as_str())
        .collect();
    if a.json {
        let report = Report {
            scenario: a.scenario,
            design_table: a.scenario.design_row(),
            constraints: &limits,
            batch: a.batch,
            candidates: &cands,
            pareto_front: front,
            pick: picked_index.map(|i| cands[i].measured.model.as_str()),
            pick_precision: picked_index.map(|i| cands[i].measured.precision),
            reason,
            plot: plotted.as_ref().ok().map(|_| a.plot.display().to_string()),
            plot_ranges: plotted.ok(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{:<37} {:>8} {:>9} {:>8} {:>9} {:>9} {:>8} {:>8}  {}",
        "model", "params", "MMACs", "file MB", "ms p50", "ms p90", "FPS", "top-1", "notes"
    );
    for (i, c) in cands.iter().enumerate() {
        let m = &c.measured;
        let mut notes = vec![];
        if Some(i) == picked_index {
            notes.push("PICK".to_string());
        }
        if c.pareto {
            notes.push("front".into());
        }
        if m.engine != "fast" {
            notes.push(format!("{} engine", m.engine));
        }
        notes.extend(c.misses.iter().cloned());
        println!(
            "{:<37} {:>8} {:>9.1} {:>8} {:>9.2} {:>9.2} {:>8.1} {:>8}  {}",
            m.label(),
            human_count(m.params),
            m.macs as f64 / 1e6,
            m.file_bytes
                .map_or_else(|| "n/a".to_string(), |b| format!("{:.2}", b as f64 / 1e6)),
            m.latency_ms_p50,
            m.latency_ms_p90,
            m.fps,
            c.top1()
                .map_or_else(|| "n/a".to_string(), |t| format!("{t:.2}%")),
            notes.join("; ")
        );
    }
    println!(
        "\nPareto front (top-1 vs latency, fastest first): {}",
        if front.is_empty() {
            "none (no candidate has a published top-1)".to_string()
        } else {
            front.join(", ")
        }
    );
    println!(
        "Pick for {} at batch {}: {reason}",
        a.scenario.name(),
        a.batch
    );
    let no_figure: Vec<&str> = cands
        .iter()
        .filter(|c| c.imagenet.is_none() && c.measured.precision == Precision::Fp32)
        .map(|c| c.measured.model.as_str())
        .collect();
    if !no_figure.is_empty() {
        println!(
            "No published ImageNet top-1 (timm has none for these): {}",
            no_figure.join(", ")
        );
    }
    if cands
        .iter()
        .any(|c| c.measured.precision == Precision::Int8)
    {
        println!(
            "int8 twins: latency and file size measured here; top-1 unknown (not measured, and \
             timm publishes fp32 figures only), so they are off the front. Make one with \
             `kestrel quantize` and measure it with `kestrel eval`."
        );
    }
    println!("Top-1: timm's results-imagenet.csv for each model's default pretrained tag (see --json for the tag and source).");
    match plotted {
        Ok(r) => println!(
            "Plot: {} (x: median latency {:.2}-{:.2} ms, log scale; y: top-1 {:.1}-{:.1}%)",
            a.plot.display(),
            r.latency_ms[0],
            r.latency_ms[1],
            r.top1[0],
            r.top1[1]
        ),
        Err(e) => println!("Plot: not written ({e})"),
    }
    Ok(())
}
