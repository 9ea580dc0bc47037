//! `kestrel distill`: `kestrel train` for a student, with a teacher's logits in the loss.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kestrel_train::DistillConfig;

use super::train::TrainArgs;

#[derive(Args, Debug)]
#[command(
    allow_negative_numbers = true,
    after_help = "Every `kestrel train` flag applies to the student (--student is train's --model).\n\n\
    Examples:\n  kestrel train --data /usr/share/datasets/fashion-mnist --model resnet20_cifar --out runs/teacher\n  \
    kestrel distill --data /usr/share/datasets/fashion-mnist --teacher runs/teacher --student resnet8_cifar\n  \
    kestrel distill --data photos/ --teacher-model resnet50 --teacher-weights r50.safetensors --student deit_tiny_distilled_patch16_224 --hard"
)]
pub struct DistillArgs {
    /// The teacher: a run folder of `kestrel train` on the same classes and input.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["teacher_model", "teacher_weights"])]
    pub teacher: Option<PathBuf>,
    /// The teacher as a registry model (with --teacher-weights: timm/torchvision weights whose
    /// classifier has the dataset's classes).
    #[arg(long, value_name = "NAME", requires = "teacher_weights")]
    pub teacher_model: Option<String>,
    /// Weights of --teacher-model, in any format `predict` loads.
    #[arg(long, value_name = "FILE", requires = "teacher_model")]
    pub teacher_weights: Option<PathBuf>,
    /// Soft distillation temperature T: the loss is KL(teacher/T ‖ student/T)·T²·α + CE·(1 − α).
    #[arg(long, value_name = "T", default_value_t = DistillConfig::default().temperature)]
    pub temperature: f64,
    /// The distillation term's weight α (default 0.7; 0.5 with --hard, as DeiT).
    #[arg(long, value_name = "F")]
    pub alpha: Option<f64>,
    /// DeiT's hard distillation: CE on the teacher's argmax instead of the KL term, through the
    /// distillation head of a distilled DeiT student (`deit_*_distilled_*`); for other students
    /// the class head takes both terms.
    #[arg(long, conflicts_with = "temperature")]
    pub hard: bool,
    #[command(flatten)]
    pub train: TrainArgs,
}

pub fn run(a: DistillArgs, matches: &clap::ArgMatches) -> Result<()> {
    if a.teacher.is_none() && a.teacher_model.is_none() {
        anyhow::bail!(
            "kestrel distill needs a teacher: --teacher RUN_DIR, or --teacher-model NAME with \
             --teacher-weights FILE"
        );
    }
    let distill = DistillConfig {
        teacher_run: a.teacher,
        teacher_model: a.teacher_model,
        teacher_weights: a.teacher_weights,
        temperature: a.temperature,
        alpha: a.alpha.unwrap_or(if a.hard { 0.5 } else { 0.7 }),
        hard: a.hard,
    };
    super::train::run_with(a.train, matches, Some(distill))
}
