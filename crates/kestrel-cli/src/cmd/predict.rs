use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::TensorData;
use clap::Args;
use kestrel_data::decode::decode_image_file;
use kestrel_data::SampleTransform;
use kestrel_train::Checkpoint;
use rand::SeedableRng;

use crate::device::{parse_device, DEVICE_HELP};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Checkpoint folder written by `kestrel train`.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Images to classify (JPEG, PNG, WebP, BMP, GIF).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
}

#[derive(serde::Serialize)]
struct Prediction {
    image: String,
    top: Vec<(String, f32)>,
}

pub fn run(a: PredictArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let ckpt = Checkpoint::open(&a.checkpoint)?;
    let model = ckpt.load_model(&device)?;
    let tf = &ckpt.meta.preprocess;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut results = Vec::new();
    for path in &a.images {
        let image = decode_image_file(path)?;
        let chw = tf.apply(image, &mut rng).with_context(|| format!("{}", path.display()))?;
        let x = Tensor::<4>::from_data(
            TensorData::new(chw.data, [1, chw.channels, chw.height, chw.width]),
            &device,
        );
        let probs: Vec<f32> = softmax(model.forward(x), 1).into_data().try_to_vec().expect("f32 output");
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]).then(i.cmp(&j)));
        let top = order
            .iter()
            .take(a.top_k)
            .map(|&i| (ckpt.meta.class_names[i].clone(), probs[i]))
            .collect();
        results.push(Prediction { image: path.display().to_string(), top });
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            println!("{}", r.image);
            for (rank, (name, p)) in r.top.iter().enumerate() {
                println!("  {}. {:<24} {:6.2}%", rank + 1, name, 100.0 * p);
            }
        }
    }
    Ok(())
}
