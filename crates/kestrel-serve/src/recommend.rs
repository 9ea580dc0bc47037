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
use kestrel_deploy::quant::{self, Calibration, Method};
use kestrel_deploy::{Engine, EngineKind, Runner};
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

/// One row of the design document's model-selection table (section 3.1, 场景化模型选择, of
/// the design document in `shared/seed/`), transcribed; English in brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DesignRow {
    /// The row's scenario as the document names it.
    pub scenario_zh: &'static str,
    /// Its recommended models (推荐模型), as the document spells them.
    pub recommended: &'static [&'static str],
    /// Registry name prefixes of those models, in the same order.
    #[serde(skip)]
    pub prefixes: &'static [&'static str],
    /// Its key factors (关键考量因素), translated.
    pub key_factors: &'static [&'static str],
}

impl DesignRow {
    /// Whether registry model `name` is one of the row's recommended models.
    pub fn recommends(&self, name: &str) -> bool {
        self.prefixes.iter().any(|p| name.starts_with(p))
    }
}

/// The scenario defaults, as `kestrel recommend --help` states them: the design document's
/// table for which models and which factors, the numbers kestrel's own where the table gives
/// none.
pub fn scenario_help() -> String {
    let mut s = String::from(
        "Scenarios follow the design document's model-selection table (section 3.1, \
         场景化模型选择): each scenario's \
         default candidates include the models the table recommends, and its default limits \
         measure the table's key factors. The table names no numbers; the limits below are \
         kestrel's, and every one can be overridden by its flag.\n",
    );
    for sc in Scenario::ALL {
        let row = sc.design_row();
        s.push_str(&format!(
            "  {:<11} table: {} -> {}; key factors: {}.\n              {}\n",
            sc.name(),
            row.scenario_zh,
            row.recommended.join(", "),
            row.key_factors.join(", "),
            sc.rule()
        ));
    }
    s
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Mobile,
        Scenario::Realtime,
        Scenario::Accuracy,
        Scenario::SmallData,
    ];

    /// The scenario's row of the design document's table.
    pub fn design_row(self) -> DesignRow {
        match self {
            Scenario::Mobile => DesignRow {
                scenario_zh: "移动端部署 [mobile deployment]",
                recommended: &["MobileNetV3", "EfficientNet"],
                prefixes: &["mobilenetv3_", "efficientnet_", "tf_efficientnet_"],
                key_factors: &["FLOPs", "parameters", "latency"],
            },
            Scenario::Realtime => DesignRow {
                scenario_zh: "实时分类 [real-time classification]",
                recommended: &["ShuffleNetV2", "RegNet"],
                prefixes: &["shufflenet_v2_", "regnet"],
                key_factors: &["FPS", "hardware fit"],
            },
            Scenario::Accuracy => DesignRow {
                scenario_zh: "高精度需求 [high accuracy]",
                recommended: &["ResNeXt", "Swin Transformer"],
                prefixes: &["resnext", "swin_"],
                key_factors: &["training data scale", "compute resources"],
            },
            Scenario::SmallData => DesignRow {
                scenario_zh: "小样本学习 [small-sample learning]",
                recommended: &["DeiT", "ConvNeXt"],
                prefixes: &["deit_", "convnext_"],
                key_factors: &[
                    "data augmentation strategy",
                    "quality of the pretrained weights",
                ],
            },
        }
    }

    /// How the scenario measures its row's key factors, with its default limits.
    pub fn rule(self) -> &'static str {
        match self {
            Scenario::Mobile => {
                "MACs (FLOPs) and params first: --max-macs 600M, --max-params 10M; picks the best \
                 top-1 within them (ties: fewer MACs); latency is measured and --max-latency-ms \
                 limits it."
            }
            Scenario::Realtime => {
                "FPS at --batch first, measured on this machine at --threads (the hardware fit): \
                 --min-fps 30; picks the best top-1 among the models that reach it."
            }
            Scenario::Accuracy => {
                "best top-1 within a compute budget: --max-latency-ms 100 (median, one batch)."
            }
            Scenario::SmallData => {
                "models known to fine-tune well from pretrained weights: a published ImageNet \
                 top-1 (timm weights exist; ImageNet top-1 predicts fine-tuned accuracy: \
                 Kornblith et al., CVPR 2019) and --max-params 30M; picks the best top-1 within \
                 --max-latency-ms 200."
            }
        }
    }

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

    /// The models measured when `--candidates`/`--filter` is not given: the design table's
    /// recommended models for the scenario ([`Scenario::design_row`]) beside the usual
    /// alternatives, kept few so that a first run takes a few minutes.
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
                "shufflenet_v2_x1_0",
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
                "resnext50_32x4d",
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
                "deit_small_patch16_224",
                "vit_small_patch16_224",
            ],
        }
    }
}

/// Which numbers a candidate runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The model as trained, on the fast engine (or burn where the fast engine does not cover it).
    #[default]
    Fp32,
    /// Its int8 twin: `kestrel quantize`'s post-training static quantization (kestrel-deploy's
    /// `quant`) of the fast engine's graph.
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 => "int8",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "int8" => Ok(Precision::Int8),
            other => Err(format!(
                "unknown precision '{other}' (expected fp32 or int8)"
            )),
        }
    }
}

/// One candidate measured on this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub model: String,
    /// fp32, or the int8 twin.
    #[serde(default)]
    pub precision: Precision,
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
    /// Bytes of the model file in the deploy format (kestrel-deploy's `quant::save` of the fast
    /// engine's graph, BatchNorm folded): f32 parameters for fp32, what `kestrel quantize`
    /// writes for int8. `None` where the fast engine does not cover the model.
    #[serde(default)]
    pub file_bytes: Option<u64>,
}

impl Measurement {
    /// `resnet50`, or `resnet50 (int8)` for the int8 twin.
    pub fn label(&self) -> String {
        match self.precision {
            Precision::Fp32 => self.model.clone(),
            Precision::Int8 => format!("{} (int8)", self.model),
        }
    }
}

/// Times `spec` (random weights: speed does not depend on them) at `batch` in `precision`:
/// 2 untimed runs, then `runs` timed ones. fp32 runs on `engine`; int8 runs on the fast engine
/// (the only one with int8 kernels), quantized as `kestrel quantize --method minmax` does but
/// calibrated on the synthetic timing batch: its latency and size are real, its accuracy is
/// not measured (no real weights or images here).
pub fn measure(
    spec: &ModelSpec,
    batch: usize,
    runs: usize,
    engine: EngineKind,
    precision: Precision,
    stats: &mut kestrel_models::stats::StatsCache,
) -> Result<Measurement, String> {
    let device = Device::flex();
    let model = spec.build(&spec.default_options(), &device).valid();
    let input = spec.data_config().input_size;
    let [c, h, w] = input;
    let x: Vec<f32> = (0..batch * c * h * w)
        .map(|i| ((i % 251) as f32 - 125.0) / 125.0)
        .collect();
    let shape = [batch, c, h, w];
    let (runner, file_bytes) = match (precision, engine) {
        (Precision::Fp32, EngineKind::Burn) => (Runner::new(model, c, &device, engine).0, None),
        (Precision::Fp32, EngineKind::Fast) => match kestrel_deploy::lower_graph(&model, c) {
            Ok(graph) => {
                let bytes = deploy_file_bytes(&graph, spec.name)?;
                (Runner::Fast(Box::new(Engine::new(&graph))), Some(bytes))
            }
            // The fallback (burn), as every command takes it.
            Err(_) => (Runner::new(model, c, &device, engine).0, None),
        },
        (Precision::Int8, _) => {
            let mut graph = kestrel_deploy::lower_graph(&model, c).map_err(|e| {
                format!(
                    "{}: no int8 twin (quantization goes through the fast engine's lowering): {e}",
                    spec.name
                )
            })?;
            let mut calib = Calibration::default();
            calib
                .observe_batch(&Engine::new(&graph), &x, shape)
                .map_err(|e| format!("{}: calibrating the int8 twin: {e}", spec.name))?;
            quant::quantize_graph(&mut graph, &calib, Method::MinMax)
                .map_err(|e| format!("{}: quantizing: {e}", spec.name))?;
            let bytes = deploy_file_bytes(&graph, spec.name)?;
            (Runner::Fast(Box::new(Engine::new(&graph))), Some(bytes))
        }
    };
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
        precision,
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
        file_bytes,
    })
}

/// The size of the file [`quant::save`] writes for `graph` (the one writer of deploy-format
/// model files), written to the temp folder and removed.
fn deploy_file_bytes(graph: &kestrel_deploy::Graph, model: &str) -> Result<u64, String> {
    let path = std::env::temp_dir().join(format!(
        "kestrel-recommend-{}-{model}.safetensors",
        std::process::id()
    ));
    let bytes = quant::save(graph, model, &[], &path);
    let _ = std::fs::remove_file(&path);
    bytes
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

    fn key(
        model: &str,
        precision: Precision,
        batch: usize,
        threads: usize,
        engine: EngineKind,
        runs: usize,
    ) -> String {
        let p = precision.name();
        format!("{model}|{p}|b{batch}|t{threads}|{engine:?}|r{runs}")
    }

    pub fn get(
        &self,
        model: &str,
        precision: Precision,
        batch: usize,
        engine: EngineKind,
        runs: usize,
    ) -> Option<&Measurement> {
        self.entries.get(&Self::key(
            model,
            precision,
            batch,
            kestrel_kernels_threads(),
            engine,
            runs,
        ))
    }

    pub fn insert(&mut self, engine: EngineKind, m: Measurement) {
        let key = Self::key(&m.model, m.precision, m.batch, m.threads, engine, m.runs);
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
    /// `None`: timm publishes no ImageNet top-1 for this model, or this is the int8 twin
    /// (timm's figures are for the fp32 weights; int8's is not measured here).
    pub imagenet: Option<Published>,
    /// Why `imagenet` is `None`, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_note: Option<String>,
    /// Whether it meets the constraints.
    pub fits: bool,
    /// The limits it breaks, when it does not fit.
    pub misses: Vec<String>,
    /// On the Pareto front of top-1 against latency.
    pub pareto: bool,
    /// One of the models the design document's table recommends for the scenario.
    pub doc_recommended: bool,
}

impl Candidate {
    pub fn new(measured: Measurement) -> Self {
        let published = published_top1(&measured.model);
        let (imagenet, accuracy_note) = match (measured.precision, published) {
            (Precision::Fp32, Some(p)) => (Some(p), None),
            (Precision::Fp32, None) => (
                None,
                Some("timm publishes no ImageNet top-1 for this model".to_string()),
            ),
            (Precision::Int8, p) => (
                None,
                Some(format!(
                    "int8 twin: its top-1 is unknown (not measured; no published int8 figure){}",
                    p.map(|p| format!(
                        "; timm's {:.2}% is for the fp32 weights ({})",
                        p.top1, p.tag
                    ))
                    .unwrap_or_default()
                )),
            ),
        };
        Candidate {
            imagenet,
            accuracy_note,
            measured,
            fits: true,
            misses: vec![],
            pareto: false,
            doc_recommended: false,
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
        c.doc_recommended = scenario.design_row().recommends(&m.model);
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
    let chosen = chosen.or_else(|| {
        let i = fitting.iter().copied().min_by(|&i, &j| {
            m(i).latency_ms_p50.total_cmp(&m(j).latency_ms_p50)
        })?;
        (scenario != Scenario::SmallData).then(|| {
            (
                i,
                format!(
                    "{}: the fastest model within {limits_text} ({:.1} ms); no fitting candidate has a published top-1",
                    m(i).label(),
                    m(i).latency_ms_p50
                ),
            )
        })
    });
    chosen.map(|(i, why)| {
        if scenario.design_row().recommends(&m(i).model) {
            let row = scenario.design_row();
            let doc = row.recommended.join(", ");
            (i, format!("{why}; the design table recommends {doc} here"))
        } else {
            (i, why)
        }
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

/// The scatter plot's size and where its axis text goes: the y axis's tick labels and title
/// are left of `PLOT_LEFT_AREA` pixels, the x axis's below the last `PLOT_BOTTOM_AREA` rows
/// (less the margin).
pub const PLOT_SIZE: (u32, u32) = (800, 600);
pub const PLOT_MARGIN: u32 = 20;
pub const PLOT_LEFT_AREA: u32 = 70;
pub const PLOT_BOTTOM_AREA: u32 = 50;

/// A PNG scatter plot: median latency (x, log scale) against top-1 (y), with a title, axis
/// titles and tick labels; every candidate with a figure is a dot (filled when it fits the
/// limits) named by its model, the front is joined by a red line, the pick is ringed in green.
/// Text is drawn in kestrel-train's embedded font ([`kestrel_train::plots::font`]), so no
/// system font is needed.
pub fn plot(cands: &[Candidate], picked: Option<usize>, path: &Path) -> Result<PlotRanges, String> {
    use kestrel_train::plots::font;
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
    let mut buf = vec![255u8; (PLOT_SIZE.0 * PLOT_SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "ImageNet top-1 against latency measured here (red: Pareto front, green ring: pick)",
                font(16.0),
            )
            .margin(PLOT_MARGIN)
            .x_label_area_size(PLOT_BOTTOM_AREA)
            .y_label_area_size(PLOT_LEFT_AREA)
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("median latency of one batch (ms, log scale)")
            .y_desc("ImageNet top-1 (%)")
            .label_style(font(13.0))
            .axis_desc_style(font(14.0))
            .x_label_formatter(&|v| {
                if *v >= 10.0 {
                    format!("{v:.0}")
                } else if *v >= 1.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            })
            .y_label_formatter(&|v| format!("{v:.1}"))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(|e| err(&e))?;
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
        chart
            .draw_series(pts.iter().map(|&(i, x, y)| {
                // The name just right of its dot.
                EmptyElement::at((x, y))
                    + Text::new(
                        cands[i].measured.model.clone(),
                        (8, -6),
                        font(12.0).color(&BLACK),
                    )
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
    kestrel_train::plots::write_png(path, buf, PLOT_SIZE).map_err(|e| e.to_string())?;
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
                precision: Precision::Fp32,
                file_bytes: None,
            },
            accuracy_note: None,
            imagenet: top1.map(|t| Published {
                tag: format!("{model}.x"),
                img_size: 224,
                top1: t,
                source: "test".into(),
            }),
            fits: true,
            misses: vec![],
            pareto: false,
            doc_recommended: false,
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

    #[test]
    fn scenario_defaults_follow_the_design_documents_table() {
        // Section 3.1 of the design document (shared/seed/), by hand: scenario | recommended
        // models | key factors.
        let table = [
            (
                Scenario::Mobile,
                "移动端部署",
                ["MobileNetV3", "EfficientNet"],
            ),
            (Scenario::Realtime, "实时分类", ["ShuffleNetV2", "RegNet"]),
            (
                Scenario::Accuracy,
                "高精度需求",
                ["ResNeXt", "Swin Transformer"],
            ),
            (Scenario::SmallData, "小样本学习", ["DeiT", "ConvNeXt"]),
        ];
        // Each recommended model, and a default candidate of that kind, by hand.
        let candidate_of = |doc: &str| match doc {
            "MobileNetV3" => "mobilenetv3_small_100",
            "EfficientNet" => "efficientnet_b0",
            "ShuffleNetV2" => "shufflenet_v2_x1_0",
            "RegNet" => "regnety_016",
            "ResNeXt" => "resnext50_32x4d",
            "Swin Transformer" => "swin_tiny_patch4_window7_224",
            "DeiT" => "deit_small_patch16_224",
            "ConvNeXt" => "convnext_tiny",
            other => panic!("{other}"),
        };
        for (sc, zh, models) in table {
            let row = sc.design_row();
            assert!(
                row.scenario_zh.starts_with(zh),
                "{sc:?}: {}",
                row.scenario_zh
            );
            assert_eq!(row.recommended, models, "{sc:?}");
            for doc in models {
                let name = candidate_of(doc);
                assert!(
                    sc.default_candidates().contains(&name),
                    "{sc:?}: the table recommends {doc}, but {name} is not a default candidate"
                );
                assert!(row.recommends(name), "{sc:?}: {name}");
                kestrel_models::find(name).expect("a registry model");
            }
            for name in sc.default_candidates() {
                kestrel_models::find(name).expect("a registry model");
            }
        }
        assert_eq!(
            Scenario::Mobile.design_row().key_factors,
            ["FLOPs", "parameters", "latency"]
        );
        assert_eq!(
            Scenario::Realtime.design_row().key_factors,
            ["FPS", "hardware fit"]
        );
        assert!(!Scenario::Mobile.design_row().recommends("resnet50"));
        assert!(!Scenario::Accuracy.design_row().recommends("resnet50"));
        // The table gives no numbers: the limits stay kestrel's.
        assert_eq!(Scenario::Mobile.defaults().max_macs, Some(600_000_000));
        assert_eq!(Scenario::Mobile.defaults().max_params, Some(10_000_000));
        assert_eq!(Scenario::Realtime.defaults().min_fps, Some(30.0));
        assert_eq!(Scenario::Accuracy.defaults().max_latency_ms, Some(100.0));
        let help = scenario_help();
        for needle in [
            "section 3.1",
            "ShuffleNetV2, RegNet",
            "FPS, hardware fit",
            "--min-fps 30",
        ] {
            assert!(help.contains(needle), "{needle}: {help}");
        }
        // A pick from the table says so; one outside it does not.
        let mut c = vec![
            cand(
                "mobilenetv3_small_100",
                2.0,
                Some(67.6),
                2_500_000,
                60_000_000,
            ),
            cand("resnet18", 3.0, Some(71.5), 11_700_000, 1_800_000_000),
        ];
        let s = Scenario::Mobile;
        assess(&mut c, s, &s.defaults());
        assert!(c[0].doc_recommended && !c[1].doc_recommended);
        let (i, why) = pick(&c, s, &s.defaults()).unwrap();
        assert_eq!(i, 0);
        assert!(
            why.ends_with("the design table recommends MobileNetV3, EfficientNet here"),
            "{why}"
        );
        let s = Scenario::Accuracy;
        assess(&mut c, s, &s.defaults());
        let (i, why) = pick(&c, s, &s.defaults()).unwrap();
        assert_eq!(i, 1);
        assert!(!why.contains("design table"), "{why}");
    }

    #[test]
    fn the_int8_twin_is_timed_and_sized_but_its_top1_is_unknown() {
        let spec = kestrel_models::find("lenet5").unwrap();
        let mut stats = kestrel_models::stats::StatsCache::open(None);
        let fp32 = measure(spec, 1, 1, EngineKind::Fast, Precision::Fp32, &mut stats).unwrap();
        let int8 = measure(spec, 1, 1, EngineKind::Fast, Precision::Int8, &mut stats).unwrap();
        assert_eq!(
            (fp32.precision, int8.precision),
            (Precision::Fp32, Precision::Int8)
        );
        assert_eq!(int8.engine, "fast");
        assert_eq!(int8.label(), "lenet5 (int8)");
        assert_eq!((fp32.params, int8.params), (61_706, 61_706));
        assert!(int8.latency_ms_p50 > 0.0 && int8.fps > 0.0);
        // File payloads by hand. LeNet-5: 5 convs/linears with 150 + 2400 + 48000 + 10080 + 840
        // = 61470 weights and 6 + 16 + 120 + 84 + 10 = 236 output channels. fp32: 61706 f32s.
        // int8: one byte a weight, a f32 scale and bias per channel, a (scale, zero) f32 pair
        // per conv input. The rest is the safetensors header (names, shapes, offsets).
        let fp32_payload = 61_706 * 4;
        let int8_payload = 61_470 + 236 * 4 + 236 * 4 + 5 * 2 * 4;
        for (m, payload) in [(&fp32, fp32_payload), (&int8, int8_payload)] {
            let b = m.file_bytes.expect("the fast engine covers lenet5");
            assert!(
                b >= payload && b < payload + 4096,
                "{}: {b} bytes for a payload of {payload}",
                m.label()
            );
        }
        let fp32_top1 = Candidate::new(Measurement {
            model: "resnet50".into(),
            ..fp32.clone()
        });
        assert_eq!(fp32_top1.top1(), Some(80.382));
        let twin = Candidate::new(Measurement {
            model: "resnet50".into(),
            ..int8.clone()
        });
        assert_eq!(twin.top1(), None, "int8's top-1 is not timm's fp32 figure");
        let note = twin.accuracy_note.clone().unwrap();
        assert!(
            note.contains("unknown") && note.contains("80.38% is for the fp32 weights"),
            "{note}"
        );
        // Off the front, and only picked on speed when nothing with a figure fits.
        let mut c = vec![fp32_top1, twin];
        c[0].measured.latency_ms_p50 = 10.0;
        c[1].measured.latency_ms_p50 = 4.0;
        assess(&mut c, Scenario::Accuracy, &Scenario::Accuracy.defaults());
        assert_eq!(pareto_front(&c), [0]);
        assert_eq!(
            pick(&c, Scenario::Accuracy, &Scenario::Accuracy.defaults())
                .unwrap()
                .0,
            0
        );
        let limits = Constraints {
            max_latency_ms: Some(5.0),
            ..Default::default()
        };
        assess(&mut c, Scenario::Accuracy, &limits);
        let (i, why) = pick(&c, Scenario::Accuracy, &limits).unwrap();
        assert_eq!(i, 1);
        assert!(why.starts_with("resnet50 (int8): the fastest"), "{why}");
    }

    fn dark(p: &image::Rgb<u8>) -> bool {
        p.0.iter().all(|&v| v < 90)
    }

    #[test]
    fn the_plot_has_axis_titles_and_tick_labels() {
        let mut c = vec![
            cand("fast", 2.0, Some(70.0), 1, 1),
            cand("slow", 40.0, Some(80.0), 1, 1),
        ];
        assess(&mut c, Scenario::Accuracy, &Scenario::Accuracy.defaults());
        let dir = std::env::temp_dir().join(format!("kestrel-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("front.png");
        let ranges = plot(&c, Some(1), &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(img.dimensions(), PLOT_SIZE);
        // x from 2/1.5 to 40·1.5 ms, y from 69 to 81 %.
        assert!((ranges.latency_ms[0] - 2.0 / 1.5).abs() < 1e-9);
        assert!((ranges.latency_ms[1] - 60.0).abs() < 1e-9);
        assert_eq!(ranges.top1, [69.0, 81.0]);
        let count = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
            xs.flat_map(|x| ys.clone().map(move |y| (x, y)))
                .filter(|&(x, y)| dark(img.get_pixel(x, y)))
                .count()
        };
        let (w, h) = PLOT_SIZE;
        // The y axis's title and tick labels are glyphs left of the axis line (which is at
        // PLOT_MARGIN + PLOT_LEFT_AREA); the x axis's below it. Without text these strips are
        // white (the axis lines themselves are excluded).
        let left = count(PLOT_MARGIN..PLOT_MARGIN + PLOT_LEFT_AREA - 3, 60..h - 80);
        let bottom = count(
            PLOT_MARGIN + PLOT_LEFT_AREA + 10..w - PLOT_MARGIN,
            h - PLOT_MARGIN - PLOT_BOTTOM_AREA + 3..h - PLOT_MARGIN,
        );
        let title = count(PLOT_MARGIN..w - PLOT_MARGIN, 0..PLOT_MARGIN + 30);
        assert!(left > 150, "y-axis text: {left} dark pixels");
        assert!(bottom > 150, "x-axis text: {bottom} dark pixels");
        assert!(title > 150, "caption: {title} dark pixels");
    }
}
