//! `kestrel recommend`: which model to pick for a scenario, judged on this machine.
//!
//! Each candidate is built (random weights: speed does not depend on them), run on the fast
//! engine at the user's batch size and threads, and timed ([`measure`]); its parameters and MACs
//! come from kestrel-models' counted stats. The ImageNet top-1 is joined from a committed table
//! of timm's published results ([`published_top1`], one cited source per row; a model without
//! a row has no figure, never an invented one). [`pareto_front`] keeps the candidates no other
//! beats on both top-1 and latency, and [`pick`] chooses by the scenario's rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::prelude::Device;
use kestrel_deploy::{EngineKind, Runner};
use kestrel_models::ModelSpec;
use serde::{Deserialize, Serialize};

/// The committed table: `scripts/make_imagenet_top1.py` writes it from timm's results CSV.
const IMAGENET_TOP1_CSV: &str = include_str!("../data/imagenet_top1.csv");

/// A published ImageNet-1k validation top-1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Published {
    /// timm's pretrained tag the figure is for (`resnet50.a1_in1k`).
    pub tag: String,
    /// The resolution timm evaluated it at.
    pub img_size: usize,
    /// Top-1, percent.
    pub top1: f64,
    /// Where the figure comes from.
    pub source: String,
}

/// timm's published top-1 for the default pretrained tag of `model`, if it has one.
pub fn published_top1(model: &str) -> Option<Published> {
    IMAGENET_TOP1_CSV.lines().skip(1).find_map(|line| {
        // model,timm_tag,img_size,top1,source (the source is last and may hold commas).
        let mut f = line.splitn(5, ',');
        if f.next()? != model {
            return None;
        }
        Some(Published {
            tag: f.next()?.to_string(),
            img_size: f.next()?.parse().ok()?,
            top1: f.next()?.parse().ok()?,
            source: f.next()?.to_string(),
        })
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Mobile,
    Realtime,
    Accuracy,
    SmallData,
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mobile" => Ok(Scenario::Mobile),
            "realtime" | "real-time" => Ok(Scenario::Realtime),
            "accuracy" => Ok(Scenario::Accuracy),
            "small-data" | "small_data" => Ok(Scenario::SmallData),
            other => Err(format!(
                "unknown scenario '{other}' (expected mobile, realtime, accuracy or small-data)"
            )),
        }
    }
}

/// Limits a pick must meet; `None` is no limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Constraints {
    /// Median latency of one batch, milliseconds.
    pub max_latency_ms: Option<f64>,
    /// Images per second at the batch size.
    pub min_fps: Option<f64>,
    pub max_params: Option<usize>,
    /// Multiply-accumulates of one image.
    pub max_macs: Option<u64>,
}

/// The scenario defaults, as `kestrel recommend --help` states them.
pub const SCENARIO_HELP: &str = "Scenarios (the design document's model-selection table; \
every default limit can be overridden by its flag):\n  \
mobile      MACs and params first: --max-macs 600M, --max-params 10M; picks the best top-1 \
within them (ties: fewer MACs).\n  \
realtime    FPS at --batch first: --min-fps 30; picks the best top-1 among the models that \
reach it.\n  \
accuracy    best top-1 within a latency budget: --max-latency-ms 100 (median, one batch).\n  \
small-data  models known to fine-tune well from pretrained weights: a published ImageNet \
top-1 (timm weights exist) and --max-params 30M (ImageNet top-1 predicts fine-tuned \
accuracy: Kornblith et al., 'Do Better ImageNet Models Transfer Better?', CVPR 2019); picks \
the best top-1 within --max-latency-ms 200.";

impl Scenario {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Mobile => "mobile",
            Scenario::Realtime => "realtime",
            Scenario::Accuracy => "accuracy",
            Scenario::SmallData => "small-data",
        }
    }

    pub fn defaults(self) -> Constraints {
        match self {
            Scenario::Mobile => Constraints {
                max_macs: Some(600_000_000),
                max_params: Some(10_000_000),
                ..Default::default()
            },
            Scenario::Realtime => Constraints {
                min_fps: Some(30.0),
                ..Default::default()
            },
            Scenario::Accuracy => Constraints {
                max_latency_ms: Some(100.0),
                ..Default::default()
            },
            Scenario::SmallData => Constraints {
                max_params: Some(30_000_000),
                max_latency_ms: Some(200.0),
                ..Default::default()
            },
        }
    }

    /// The models measured when `--candidates`/`--filter` is not given: the usual choices
    /// for the scenario, kept few so that a first run takes about a minute.
    pub fn default_candidates(self) -> &'static [&'static str] {
        match self {
            Scenario::Mobile => &[
                "mobilenetv3_small_100",
                "mobilenetv3_large_100",
                "mobilenetv2_100",
                "shufflenet_v2_x1_0",
                "efficientnet_lite0",
                "regnety_004",
                "convnext_atto",
                "efficientnet_b0",
            ],
            Scenario::Realtime => &[
                "resnet18",
                "resnet34",
                "resnet50",
                "mobilenetv3_large_100",
                "efficientnet_b0",
                "regnety_016",
                "convnext_nano",
            ],
            Scenario::Accuracy => &[
                "resnet50",
                "efficientnet_b3",
                "regnety_032",
                "convnext_tiny",
                "vit_small_patch16_224",
                "deit_small_patch16_224",
                "swin_tiny_patch4_window7_224",
            ],
            Scenario::SmallData => &[
                "resnet50",
                "efficientnet_b0",
                "regnety_016",
                "convnext_nano",
                "convnext_tiny",
                "vit_small_patch16_224",
            ],
        }
    }
}

/// One candidate measured on this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub model: String,
    /// (channels, height, width) of one image.
    pub input: [usize; 3],
    pub batch: usize,
    pub threads: usize,
    /// The engine that ran (`fast`, or `burn` where the fast engine does not cover the model).
    pub engine: String,
    /// Latency of one batch, milliseconds: median and 90th percentile of `runs` timed runs.
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub runs: usize,
    /// Images per second: batch / median latency.
    pub fps: f64,
    pub params: usize,
    pub macs: u64,
}

/// Times `spec` (random weights) at `batch` on `engine`: `warmup` untimed runs, then `runs`
/// timed ones.
pub fn measure(
    spec: &ModelSpec,
    batch: usize,
    runs: usize,
    engine: EngineKind,
    stats: &mut kestrel_models::stats::StatsCache,
) -> Result<Measurement, String> {
    let device = Device::flex();
    let model = spec.build(&spec.default_options(), &device);
    let input = spec.data_config().input_size;
    let [c, h, w] = input;
    let (runner, _) = Runner::new(model.valid(), c, &device, engine);
    let x: Vec<f32> = (0..batch * c * h * w)
        .map(|i| ((i % 251) as f32 - 125.0) / 125.0)
        .collect();
    let shape = [batch, c, h, w];
    for _ in 0..2 {
        runner
            .logits(&x, shape)
            .map_err(|e| format!("{}: {e}", spec.name))?;
    }
    let mut times: Vec<f64> = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        runner
            .logits(&x, shape)
            .map_err(|e| format!("{}: {e}", spec.name))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let p50 = nearest_rank(&times, 0.5);
    let s = stats.get_or_measure(spec, true);
    Ok(Measurement {
        model: spec.name.to_string(),
        input,
        batch,
        threads: kestrel_kernels_threads(),
        engine: runner.name().to_string(),
        latency_ms_p50: p50,
        latency_ms_p90: nearest_rank(&times, 0.9),
        runs: times.len(),
        fps: batch as f64 / (p50 / 1e3),
        params: s.params,
        macs: s.macs.unwrap_or(0),
    })
}

fn kestrel_kernels_threads() -> usize {
    kestrel_kernels::num_threads()
}

/// Nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Measurements of this machine and this kestrel binary, in one JSON file: a rebuilt binary or
/// another machine measures again; `--remeasure` does too.
pub struct MeasurementCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, Measurement>,
}

impl MeasurementCache {
    /// `~/.cache/kestrel/recommend-<host>-<binary size>-<binary mtime>.json`.
    pub fn default_path() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let meta = std::fs::metadata(&exe).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let home = std::env::var_os("HOME")?;
        Some(
            Path::new(&home)
                .join(".cache/kestrel")
                .join(format!("recommend-{host}-{}-{mtime}.json", meta.len())),
        )
    }

    /// The cache in `path` (`None`: in memory only); a missing or unreadable file is empty.
    pub fn open(path: Option<PathBuf>) -> Self {
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        MeasurementCache { path, entries }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn key(model: &str, batch: usize, threads: usize, engine: EngineKind, runs: usize) -> String {
        format!("{model}|b{batch}|t{threads}|{engine:?}|r{runs}")
    }

    pub fn get(
        &self,
        model: &str,
        batch: usize,
        engine: EngineKind,
        runs: usize,
    ) -> Option<&Measurement> {
        self.entries.get(&Self::key(
            model,
            batch,
            kestrel_kernels_threads(),
            engine,
            runs,
        ))
    }

    pub fn insert(&mut self, engine: EngineKind, m: Measurement) {
        let key = Self::key(&m.model, m.batch, m.threads, engine, m.runs);
        self.entries.insert(key, m);
    }

    /// Writes the cache back; failing to is not an error (it only saves time).
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string_pretty(&self.entries) {
            let _ = std::fs::write(path, text);
        }
    }
}

/// A measured candidate with its published accuracy.
#[derive(Clone, Debug, Serialize)]
pub struct Candidate {
    #[serde(flatten)]
    pub measured: Measurement,
    /// `None`: timm publishes no ImageNet top-1 for this model.
    pub imagenet: Option<Published>,
    /// Whether it meets the constraints.
    pub fits: bool,
    /// The limits it breaks, when it does not fit.
    pub misses: Vec<String>,
    /// On the Pareto front of top-1 against latency.
    pub pareto: bool,
}

impl Candidate {
    pub fn new(measured: Measurement) -> Self {
        Candidate {
            imagenet: published_top1(&measured.model),
            measured,
            fits: true,
            misses: vec![],
            pareto: false,
        }
    }

    pub fn top1(&self) -> Option<f64> {
        self.imagenet.as_ref().map(|p| p.top1)
    }
}

/// Indices of the candidates with a published top-1 that no other beats on both top-1
/// (higher) and median latency (lower), ordered by latency.
pub fn pareto_front(cands: &[Candidate]) -> Vec<usize> {
    let mut front: Vec<usize> = (0..cands.len())
        .filter(|&i| {
            let Some(a) = cands[i].top1() else {
                return false;
            };
            let la = cands[i].measured.latency_ms_p50;
            !cands.iter().enumerate().any(|(j, o)| {
                let Some(b) = o.top1() else { return false };
                let lb = o.measured.latency_ms_p50;
                j != i && b >= a && lb <= la && (b > a || lb < la)
            })
        })
        .collect();
    front.sort_by(|&i, &j| {
        cands[i]
            .measured
            .latency_ms_p50
            .total_cmp(&cands[j].measured.latency_ms_p50)
    });
    front
}

/// Marks which candidates fit `limits` (with the limits they miss) and which are on the front.
pub fn assess(cands: &mut [Candidate], scenario: Scenario, limits: &Constraints) {
    for c in cands.iter_mut() {
        let m = &c.measured;
        let mut misses = vec![];
        if let Some(l) = limits.max_latency_ms.filter(|&l| m.latency_ms_p50 > l) {
            misses.push(format!("latency {:.1} ms > {l} ms", m.latency_ms_p50));
        }
        if let Some(f) = limits.min_fps.filter(|&f| m.fps < f) {
            misses.push(format!("{:.1} FPS < {f} FPS", m.fps));
        }
        if let Some(p) = limits.max_params.filter(|&p| m.params > p) {
            misses.push(format!("{} params > {p}", m.params));
        }
        if let Some(x) = limits.max_macs.filter(|&x| m.macs > x) {
            misses.push(format!("{} MACs > {x}", m.macs));
        }
        if scenario == Scenario::SmallData && c.imagenet.is_none() {
            misses.push("no published pretrained top-1".into());
        }
        c.fits = misses.is_empty();
        c.misses = misses;
    }
    let front = pareto_front(cands);
    for (i, c) in cands.iter_mut().enumerate() {
        c.pareto = front.contains(&i);
    }
}

/// The scenario's choice among the fitting candidates (call [`assess`] first), with a
/// one-line reason; `None` when nothing fits.
pub fn pick(
    cands: &[Candidate],
    scenario: Scenario,
    limits: &Constraints,
) -> Option<(usize, String)> {
    let fitting: Vec<usize> = (0..cands.len()).filter(|&i| cands[i].fits).collect();
    let with_top1: Vec<usize> = fitting
        .iter()
        .copied()
        .filter(|&i| cands[i].top1().is_some())
        .collect();
    let limits_text = describe(limits);
    let by_top1 = |tie: &dyn Fn(usize) -> f64| {
        with_top1.iter().copied().max_by(|&i, &j| {
            let top1 = |k: usize| cands[k].top1().unwrap_or(f64::MIN);
            top1(i)
                .total_cmp(&top1(j))
                // A tie goes to the smaller tie-break value (fewer MACs, lower latency).
                .then(tie(j).total_cmp(&tie(i)))
        })
    };
    let m = |i: usize| &cands[i].measured;
    let chosen = match scenario {
        Scenario::Mobile => by_top1(&|i| m(i).macs as f64).map(|i| {
            (
                i,
                format!(
                    "{}: the best published top-1 ({:.1}%) within {limits_text}, at {:.0}M MACs and {:.1}M params",
                    m(i).model,
                    cands[i].top1().unwrap_or_default(),
                    m(i).macs as f64 / 1e6,
                    m(i).params as f64 / 1e6
                ),
            )
        }),
        Scenario::Realtime => by_top1(&|i| m(i).latency_ms_p50).map(|i| {
            (
                i,
                format!(
                    "{}: the best published top-1 ({:.1}%) among the models reaching {limits_text} at batch {}: {:.1} FPS here",
                    m(i).model,
                    cands[i].top1().unwrap_or_default(),
                    m(i).batch,
                    m(i).fps
                ),
            )
        }),
        Scenario::Accuracy | Scenario::SmallData => by_top1(&|i| m(i).latency_ms_p50).map(|i| {
            (
                i,
                format!(
                    "{}: the best published top-1 ({:.1}%) within {limits_text}{}: {:.1} ms here",
                    m(i).model,
                    cands[i].top1().unwrap_or_default(),
                    if scenario == Scenario::SmallData {
                        ", with pretrained weights to fine-tune"
                    } else {
                        ""
                    },
                    m(i).latency_ms_p50
                ),
            )
        }),
    };
    // Candidates without a published top-1 can still be picked on speed alone, saying so.
    chosen.or_else(|| {
        let i = fitting.iter().copied().min_by(|&i, &j| {
            m(i).latency_ms_p50.total_cmp(&m(j).latency_ms_p50)
        })?;
        (scenario != Scenario::SmallData).then(|| {
            (
                i,
                format!(
                    "{}: the fastest model within {limits_text} ({:.1} ms); no fitting candidate has a published top-1",
                    m(i).model,
                    m(i).latency_ms_p50
                ),
            )
        })
    })
}

/// The limits in words: "600M MACs, 10M params".
pub fn describe(limits: &Constraints) -> String {
    let mut parts = vec![];
    if let Some(l) = limits.max_latency_ms {
        parts.push(format!("{l} ms"));
    }
    if let Some(f) = limits.min_fps {
        parts.push(format!("{f} FPS"));
    }
    if let Some(p) = limits.max_params {
        parts.push(format!("{}M params", p as f64 / 1e6));
    }
    if let Some(x) = limits.max_macs {
        parts.push(format!("{}M MACs", x as f64 / 1e6));
    }
    if parts.is_empty() {
        "no limits".into()
    } else {
        parts.join(", ")
    }
}

/// A PNG scatter plot: median latency (x, log scale) against top-1 (y); every candidate with a
/// figure is a dot (filled when it fits the limits), the front is joined by a line, the pick is
/// ringed. The bitmap backend is built without fonts (no system font libraries), so the plot
/// has no text: the command prints the axis ranges next to the file name.
pub fn plot(cands: &[Candidate], picked: Option<usize>, path: &Path) -> Result<PlotRanges, String> {
    use plotters::prelude::*;
    let pts: Vec<(usize, f64, f64)> = cands
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.measured.latency_ms_p50.max(1e-6), c.top1()?)))
        .collect();
    if pts.is_empty() {
        return Err("no candidate has a published top-1 to plot".into());
    }
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
    // Margins so that points are not on the border (and one point still has a range).
    x0 /= 1.5;
    x1 *= 1.5;
    y0 -= 1.0;
    y1 += 1.0;
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    const SIZE: (u32, u32) = (800, 600);
    let mut buf = vec![255u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let area = root.margin(30, 30, 30, 30);
        let mut chart = ChartBuilder::on(&area)
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(|e| err(&e))?;
        // Grid: one line per decade of latency and per percentage point of top-1 (up to 20).
        let grey = RGBColor(220, 220, 220);
        let mut decade = 10f64.powf(x0.log10().floor());
        while decade <= x1 {
            if decade >= x0 {
                chart
                    .draw_series(LineSeries::new([(decade, y0), (decade, y1)], grey))
                    .map_err(|e| err(&e))?;
            }
            decade *= 10.0;
        }
        let step = ((y1 - y0) / 20.0).ceil().max(1.0);
        let mut y = y0.ceil();
        while y <= y1 {
            chart
                .draw_series(LineSeries::new([(x0, y), (x1, y)], grey))
                .map_err(|e| err(&e))?;
            y += step;
        }
        let front: Vec<(f64, f64)> = pareto_front(cands)
            .into_iter()
            .map(|i| {
                (
                    cands[i].measured.latency_ms_p50,
                    cands[i].top1().unwrap_or_default(),
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(front.iter().copied(), RED.stroke_width(2)))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(pts.iter().map(|&(i, x, y)| {
                let color = if cands[i].pareto { RED } else { BLUE };
                let style = if cands[i].fits {
                    color.filled()
                } else {
                    color.stroke_width(2)
                };
                Circle::new((x, y), 5, style)
            }))
            .map_err(|e| err(&e))?;
        if let Some(i) = picked {
            if let Some(t) = cands[i].top1() {
                chart
                    .draw_series([Circle::new(
                        (cands[i].measured.latency_ms_p50, t),
                        11,
                        GREEN.stroke_width(3),
                    )])
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    kestrel_train::plots::write_png(path, buf, SIZE).map_err(|e| e.to_string())?;
    Ok(PlotRanges {
        latency_ms: [x0, x1],
        top1: [y0, y1],
    })
}

/// The axis ranges of [`plot`]'s picture.
#[derive(Clone, Debug, Serialize)]
pub struct PlotRanges {
    pub latency_ms: [f64; 2],
    pub top1: [f64; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(model: &str, ms: f64, top1: Option<f64>, params: usize, macs: u64) -> Candidate {
        Candidate {
            measured: Measurement {
                model: model.into(),
                input: [3, 224, 224],
                batch: 1,
                threads: 1,
                engine: "fast".into(),
                latency_ms_p50: ms,
                latency_ms_p90: ms,
                runs: 1,
                fps: 1e3 / ms,
                params,
                macs,
            },
            imagenet: top1.map(|t| Published {
                tag: format!("{model}.x"),
                img_size: 224,
                top1: t,
                source: "test".into(),
            }),
            fits: true,
            misses: vec![],
            pareto: false,
        }
    }

    #[test]
    fn published_figures_are_timms_rows_and_missing_ones_are_none() {
        // Values read off timm's results-imagenet.csv (commit aa4b585) by hand.
        let r = published_top1("resnet50").expect("resnet50 has a row");
        assert_eq!(r.tag, "resnet50.a1_in1k");
        assert_eq!(r.top1, 80.382);
        assert_eq!(r.img_size, 224);
        assert!(r.source.contains("results-imagenet.csv"), "{}", r.source);
        assert_eq!(
            published_top1("mobilenetv3_small_100").unwrap().top1,
            67.636
        );
        assert!(published_top1("lenet5").is_none());
        assert!(published_top1("resnet8_cifar").is_none());
    }

    #[test]
    fn the_front_drops_dominated_and_figureless_models() {
        let c = vec![
            cand("fast_bad", 1.0, Some(60.0), 1, 1),
            cand("slow_good", 10.0, Some(80.0), 1, 1),
            cand("dominated", 12.0, Some(70.0), 1, 1), // slower and worse than slow_good
            cand("mid", 5.0, Some(75.0), 1, 1),
            cand("no_figure", 0.5, None, 1, 1),
            cand("tie_slower", 5.0, Some(74.0), 1, 1), // same latency as mid, worse
        ];
        let names: Vec<&str> = pareto_front(&c)
            .into_iter()
            .map(|i| c[i].measured.model.as_str())
            .collect();
        assert_eq!(names, ["fast_bad", "mid", "slow_good"]);
    }

    #[test]
    fn scenarios_pick_within_their_limits() {
        let mut c = vec![
            cand("tiny", 2.0, Some(67.0), 2_500_000, 60_000_000),
            cand("small", 6.0, Some(75.0), 5_000_000, 220_000_000),
            cand("big", 40.0, Some(80.0), 25_000_000, 4_100_000_000),
            cand("huge", 150.0, Some(82.0), 60_000_000, 11_000_000_000),
            cand("unknown", 1.0, None, 1_000_000, 10_000_000),
        ];
        let s = Scenario::Mobile;
        assess(&mut c, s, &s.defaults());
        assert_eq!(
            pick(&c, s, &s.defaults()).unwrap().0,
            1,
            "small: best top-1 under 600M MACs"
        );
        let s = Scenario::Accuracy;
        assess(&mut c, s, &s.defaults());
        let (i, why) = pick(&c, s, &s.defaults()).unwrap();
        assert_eq!(c[i].measured.model, "big", "huge is over 100 ms");
        assert!(why.contains("80.0%"), "{why}");
        assert_eq!(c[3].misses, ["latency 150.0 ms > 100 ms"]);
        // Realtime at 30 FPS: 40 ms is 25 FPS, too slow.
        let s = Scenario::Realtime;
        assess(&mut c, s, &s.defaults());
        assert_eq!(
            c[pick(&c, s, &s.defaults()).unwrap().0].measured.model,
            "small"
        );
        // Small data needs a published (pretrained) figure and ≤ 30M params.
        let s = Scenario::SmallData;
        assess(&mut c, s, &s.defaults());
        assert!(!c[4].fits);
        assert_eq!(
            c[pick(&c, s, &s.defaults()).unwrap().0].measured.model,
            "big"
        );
        // Nothing with a figure fits: the fastest fitting model, saying it has no figure.
        let limits = Constraints {
            max_latency_ms: Some(1.5),
            ..Default::default()
        };
        assess(&mut c, Scenario::Accuracy, &limits);
        let (i, why) = pick(&c, Scenario::Accuracy, &limits).unwrap();
        assert_eq!(c[i].measured.model, "unknown");
        assert!(
            why.contains("no fitting candidate has a published top-1"),
            "{why}"
        );
        // Nothing fits at all.
        let limits = Constraints {
            max_latency_ms: Some(0.1),
            ..Default::default()
        };
        assess(&mut c, Scenario::Accuracy, &limits);
        assert!(pick(&c, Scenario::Accuracy, &limits).is_none());
    }
}
