//! The run folder's plots: training curves (loss, accuracy, lr per epoch) and the test split's
//! confusion matrix with class names, as PNG files. `kestrel plot RUN_DIR` redraws them from the
//! run's logs (`train_log.jsonl`, `metrics.json`).
//!
//! plotters draws into an RGB buffer with its own rasteriser and ab_glyph text in an embedded
//! font (a Latin-1 subset of DejaVu Sans, fonts/LICENSE.txt), so no system font or library is
//! needed; the `image` crate encodes the PNG.

use std::path::{Path, PathBuf};
use std::sync::Once;

use kestrel_eval::EvalReport;
use plotters::prelude::*;

use crate::atomic::write_atomic;
use crate::error::TrainError;
use crate::trainer::EpochLog;

pub const CURVES_FILE: &str = "curves.png";
pub const CONFUSION_FILE: &str = "confusion_matrix.png";
/// Three panels side by side: loss, accuracy, lr.
pub const CURVES_SIZE: (u32, u32) = (1500, 450);

static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");
static REGISTER_FONT: Once = Once::new();

/// The embedded sans-serif font at `size` pixels: every kestrel plot (these, `kestrel
/// recommend`'s scatter) draws its text with it.
pub fn font(size: f64) -> FontDesc<'static> {
    REGISTER_FONT.call_once(|| {
        // The embedded font is known to parse; plotters keeps it for the process.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    ("sans-serif", size).into_font()
}

/// Where the confusion matrix's cells are, for `num_classes` classes: the grid's top-left
/// corner and the side of one cell, in pixels; rows are true classes, columns predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfusionLayout {
    pub left: u32,
    pub top: u32,
    pub cell: u32,
    pub width: u32,
    pub height: u32,
}

impl ConfusionLayout {
    pub fn new(num_classes: usize) -> Self {
        let n = num_classes.max(1) as u32;
        // Cells shrink as classes grow, but stay readable; the image is at most ~2000 px.
        let cell = (640 / n).clamp(12, 72);
        let (left, top) = (170, 70);
        ConfusionLayout {
            left,
            top,
            cell,
            width: left + n * cell + 40,
            height: top + n * cell + 150,
        }
    }

    /// The top-left pixel of the cell (true class `row`, predicted `col`).
    pub fn cell_origin(&self, row: usize, col: usize) -> (u32, u32) {
        (
            self.left + col as u32 * self.cell,
            self.top + row as u32 * self.cell,
        )
    }
}

/// A cell's colour: white for none of the row's images, up to dark blue for all of them
/// (a linear ramp, like matplotlib's `Blues`).
pub fn cell_color(fraction: f64) -> RGBColor {
    let t = fraction.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!("{}: drawing the plot: {e}", path.display()))
}

/// Writes the `w × h` RGB buffer a plotters `BitMapBackend::with_buffer` drew into as a PNG,
/// atomically (the encoder is the `image` crate the workspace already has).
pub fn write_png(path: &Path, buf: Vec<u8>, (w, h): (u32, u32)) -> Result<(), TrainError> {
    let img = image::RgbImage::from_raw(w, h, buf).expect("buffer of w×h×3 bytes");
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| draw_err(path, e))?;
    write_atomic(path, &png)
}

/// Shortens a class name to `max` characters with an ellipsis (a cut is marked, never silent).
fn fit(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Draws the confusion matrix of `report` (counts in the cells, shaded by the row's fraction,
/// class names on both axes) to `path`.
pub fn plot_confusion(report: &EvalReport, path: &Path) -> Result<(), TrainError> {
    let n = report.num_classes;
    let layout = ConfusionLayout::new(n);
    let size = (layout.width, layout.height);
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        let e = |err| draw_err(path, err);
        root.fill(&WHITE).map_err(e)?;
        let title = format!(
            "Confusion matrix ({} images, accuracy {:.2}%)",
            report.num_samples,
            100.0 * report.accuracy
        );
        root.draw(&Text::new(title, (layout.left as i32, 20), font(22.0)))
            .map_err(e)?;
        let label_size = (layout.cell as f64 * 0.45).clamp(10.0, 16.0);
        for (row, counts) in report.confusion_matrix.iter().enumerate() {
            let total: u64 = counts.iter().sum();
            for (col, &count) in counts.iter().enumerate() {
                let fraction = if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                };
                let (x, y) = layout.cell_origin(row, col);
                let (x, y, c) = (x as i32, y as i32, layout.cell as i32);
                root.draw(&Rectangle::new(
                    [(x, y), (x + c, y + c)],
                    cell_color(fraction).filled(),
                ))
                .map_err(e)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + c, y + c)],
                    RGBColor(200, 200, 200),
                ))
                .map_err(e)?;
                if count > 0 && layout.cell >= 18 {
                    let color = if fraction > 0.5 { WHITE } else { BLACK };
                    let style =
                        font(label_size)
                            .color(&color)
                            .pos(plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Center,
                                plotters::style::text_anchor::VPos::Center,
                            ));
                    root.draw(&Text::new(count.to_string(), (x + c / 2, y + c / 2), style))
                        .map_err(e)?;
                }
            }
        }
        let name_size = (layout.cell as f64 * 0.5).clamp(10.0, 15.0);
        for (i, name) in report.class_names.iter().enumerate() {
            let (x, y) = layout.cell_origin(i, 0);
            let c = layout.cell as i32;
            let right = font(name_size)
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ));
            root.draw(&Text::new(
                fit(name, 22),
                (x as i32 - 6, y as i32 + c / 2),
                right,
            ))
            .map_err(e)?;
            let (x, y) = layout.cell_origin(n, i);
            let below = font(name_size)
                .transform(FontTransform::Rotate90)
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                ));
            root.draw(&Text::new(
                fit(name, 18),
                (x as i32 + c / 2, y as i32 + 6),
                below,
            ))
            .map_err(e)?;
        }
        root.draw(&Text::new(
            "true class",
            (8, layout.top as i32 - 22),
            font(15.0),
        ))
        .map_err(e)?;
        let bottom = (layout.top + n as u32 * layout.cell) as i32;
        root.draw(&Text::new(
            "predicted class",
            (layout.left as i32, bottom + 128),
            font(15.0),
        ))
        .map_err(e)?;
        root.present().map_err(e)?;
    }
    write_png(path, buf, size)
}

/// Draws the per-epoch loss, accuracy and lr of `history` to `path`.
pub fn plot_curves(history: &[EpochLog], path: &Path) -> Result<(), TrainError> {
    let mut buf = vec![255u8; (CURVES_SIZE.0 * CURVES_SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, CURVES_SIZE).into_drawing_area();
        let e = |err| draw_err(path, err);
        root.fill(&WHITE).map_err(e)?;
        let panels = root.split_evenly((1, 3));
        let epochs: Vec<f64> = history.iter().map(|h| h.epoch as f64).collect();
        let last_epoch = epochs.last().copied().unwrap_or(1.0).max(1.0);
        let series = |f: &dyn Fn(&EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter_map(|h| f(h).map(|v| (h.epoch as f64, v)))
                .collect()
        };
        let loss = [
            ("train", series(&|h| Some(h.train_loss)), BLUE),
            ("val", series(&|h| Some(h.val_loss)), RED),
            ("EMA val", series(&|h| h.ema_val_loss), GREEN),
        ];
        let accuracy = [
            ("train", series(&|h| Some(100.0 * h.train_accuracy)), BLUE),
            ("val", series(&|h| Some(100.0 * h.val_accuracy)), RED),
            (
                "EMA val",
                series(&|h| h.ema_val_accuracy.map(|a| 100.0 * a)),
                GREEN,
            ),
        ];
        let lr = [
            ("at epoch start", series(&|h| Some(h.lr_start)), MAGENTA),
            ("at epoch end", series(&|h| Some(h.lr)), BLACK),
        ];
        let specs: [(&str, &str, &[(&str, Vec<(f64, f64)>, RGBColor)]); 3] = [
            ("Loss", "loss", &loss),
            ("Accuracy", "accuracy (%)", &accuracy),
            ("Learning rate", "lr", &lr),
        ];
        for (area, (title, y_label, lines)) in panels.iter().zip(specs) {
            let values: Vec<f64> = lines
                .iter()
                .flat_map(|(_, pts, _)| pts.iter().map(|p| p.1))
                .filter(|v| v.is_finite())
                .collect();
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if values.is_empty() {
                (0.0, 1.0)
            } else {
                let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.01).max(1e-12);
                (lo - pad, hi + pad)
            };
            let x_hi = if last_epoch > 1.0 { last_epoch } else { 2.0 };
            let mut chart = ChartBuilder::on(area)
                .caption(title, font(22.0))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(1.0..x_hi, lo..hi)
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(y_label)
                .label_style(font(13.0))
                .axis_desc_style(font(14.0))
                .x_labels(epochs.len().clamp(2, 10))
                .y_label_formatter(&|v| {
                    if hi < 0.01 {
                        format!("{v:.1e}")
                    } else {
                        format!("{v:.3}")
                    }
                })
                .draw()
                .map_err(e)?;
            for (name, points, color) in lines.iter() {
                if points.is_empty() {
                    continue;
                }
                let color = *color;
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(e)?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
                    )
                    .map_err(e)?;
            }
            chart
                .configure_series_labels()
                .label_font(font(13.0))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    write_png(path, buf, CURVES_SIZE)
}

/// Redraws the plots of the run in `dir` from its logs: the curves from `train_log.jsonl` and,
/// when the run has finished (`metrics.json`), the confusion matrix. Returns the files written.
pub fn plot_run(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let log_path = dir.join("train_log.jsonl");
    let text = std::fs::read_to_string(&log_path).map_err(|e| TrainError::io(&log_path, e))?;
    let mut history = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let entry: EpochLog = serde_json::from_str(line).map_err(|e| {
            TrainError::Config(format!("{}: line {}: {e}", log_path.display(), i + 1))
        })?;
        history.push(entry);
    }
    if history.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: no epoch has finished yet; nothing to plot",
            log_path.display()
        )));
    }
    let mut written = vec![dir.join(CURVES_FILE)];
    plot_curves(&history, &written[0])?;
    let metrics = dir.join("metrics.json");
    if metrics.exists() {
        let report = EvalReport::read_json(&metrics)
            .map_err(|e| TrainError::Config(format!("{}: {e}", metrics.display())))?;
        let path = dir.join(CONFUSION_FILE);
        plot_confusion(&report, &path)?;
        written.push(path);
    }
    Ok(written)
}
