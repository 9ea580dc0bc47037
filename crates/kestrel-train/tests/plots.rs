//! The run folder's PNG plots: they decode, have the documented size, and the confusion matrix
//! shows the counts where they are (rows = true class, columns = prediction) with class names.

use kestrel_eval::EvalReport;
use kestrel_train::plots::{
    cell_color, plot_confusion, plot_curves, plot_run, ConfusionLayout, CONFUSION_FILE,
    CURVES_FILE, CURVES_SIZE,
};
use kestrel_train::EpochLog;

/// Scores that make the classifier predict `pred` for each label.
fn report(pairs: &[(usize, usize)], names: &[&str]) -> EvalReport {
    let k = names.len();
    let labels: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    let mut scores = vec![0.0f32; pairs.len() * k];
    for (i, &(_, pred)) in pairs.iter().enumerate() {
        scores[i * k + pred] = 1.0;
    }
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    EvalReport::compute(&labels, &scores, &names).unwrap()
}

fn luminance(p: &image::Rgb<u8>) -> f64 {
    0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
}

#[test]
fn confusion_matrix_png_shades_each_cell_by_its_rows_fraction() {
    // Class 0: 4 right. Class 1: 2 right, 2 called "coat". Class 2: all 4 called class 0.
    let mut pairs = vec![(0, 0); 4];
    pairs.extend([(1, 1), (1, 1), (1, 2), (1, 2)]);
    pairs.extend([(2, 0); 4]);
    let r = report(&pairs, &["t-shirt", "trouser", "coat"]);
    assert_eq!(
        r.confusion_matrix,
        vec![vec![4, 0, 0], vec![0, 2, 2], vec![4, 0, 0]]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CONFUSION_FILE);
    plot_confusion(&r, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    let layout = ConfusionLayout::new(3);
    assert_eq!(img.dimensions(), (layout.width, layout.height));
    // A pixel inside each cell, clear of the count drawn at its centre and of the border.
    let sample = |row, col| {
        let (x, y) = layout.cell_origin(row, col);
        *img.get_pixel(x + 4, y + 4)
    };
    let full = cell_color(1.0);
    let half = cell_color(0.5);
    let white = image::Rgb([255, 255, 255]);
    let expect = [
        [full, cell_color(0.0), cell_color(0.0)],
        [cell_color(0.0), half, half],
        [full, cell_color(0.0), cell_color(0.0)],
    ];
    for (row, cols) in expect.iter().enumerate() {
        for (col, c) in cols.iter().enumerate() {
            assert_eq!(sample(row, col).0, [c.0, c.1, c.2], "cell ({row}, {col})");
        }
    }
    assert_eq!(sample(0, 1), white, "an empty cell is white");
    assert!(luminance(&sample(0, 0)) < luminance(&sample(1, 1)));
    assert!(luminance(&sample(1, 1)) < luminance(&sample(1, 0)));
    // The counts are drawn: the centre of a full cell has white text pixels on dark blue.
    let (x, y) = layout.cell_origin(2, 0);
    let c = layout.cell;
    let center_light = (x + c / 4..x + 3 * c / 4)
        .flat_map(|x| (y + c / 4..y + 3 * c / 4).map(move |y| (x, y)))
        .filter(|&(x, y)| luminance(img.get_pixel(x, y)) > 200.0)
        .count();
    assert!(center_light > 5, "the count 4 is written in cell (2, 0)");
    // Class names left of each row: dark pixels in the margin, at that row's height only.
    for row in 0..3 {
        let (_, y) = layout.cell_origin(row, 0);
        let dark = (10..layout.left - 4)
            .flat_map(|x| (y + 2..y + c - 2).map(move |y| (x, y)))
            .filter(|&(x, y)| luminance(img.get_pixel(x, y)) < 100.0)
            .count();
        assert!(
            dark > 20,
            "row {row}'s class name is drawn ({dark} dark pixels)"
        );
    }
}

fn epoch(epoch: usize, loss: f64, acc: f64, lr: f64) -> EpochLog {
    EpochLog {
        epoch,
        lr,
        lr_start: lr * 1.1,
        train_loss: loss,
        train_accuracy: acc,
        val_loss: loss * 1.2,
        val_accuracy: acc * 0.95,
        ema_val_loss: None,
        ema_val_accuracy: None,
        seconds: 1.0,
        images_per_second: 100.0,
    }
}

#[test]
fn curves_png_has_three_panels_and_plot_run_redraws_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let history: Vec<EpochLog> = (1..=5)
        .map(|e| epoch(e, 2.0 / e as f64, 0.5 + 0.08 * e as f64, 0.1 / e as f64))
        .collect();
    let path = dir.path().join(CURVES_FILE);
    plot_curves(&history, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), CURVES_SIZE);
    // Each third of the image holds a chart: coloured line pixels in every panel.
    let third = CURVES_SIZE.0 / 3;
    for panel in 0..3 {
        let coloured = (panel * third..(panel + 1) * third)
            .flat_map(|x| (0..CURVES_SIZE.1).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                let p = img.get_pixel(x, y);
                let (mx, mn) = (p.0.iter().max().unwrap(), p.0.iter().min().unwrap());
                mx - mn > 120
            })
            .count();
        assert!(coloured > 200, "panel {panel}: {coloured} coloured pixels");
    }
    // plot_run reads the logs a run leaves and writes both files.
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let log: String = history
        .iter()
        .map(|h| serde_json::to_string(h).unwrap() + "\n")
        .collect();
    std::fs::write(run.join("train_log.jsonl"), log).unwrap();
    report(&[(0, 0), (1, 0), (1, 1)], &["a", "b"])
        .write_json(run.join("metrics.json"))
        .unwrap();
    let written = plot_run(&run).unwrap();
    assert_eq!(
        written,
        vec![run.join(CURVES_FILE), run.join(CONFUSION_FILE)]
    );
    for p in written {
        image::open(&p).unwrap();
    }
    let err = plot_run(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(err.contains("train_log.jsonl"), "{err}");
}
