//! The helper commands: `augment-preview` and `data-bench`.

use crate::common;

use common::{kestrel, read_json, s, solid_color_folder, tempdir, write_truncated_png};

#[test]
fn augment_preview_writes_the_grid_it_reports() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    solid_color_folder(&data, 2, 21);
    let grid = tmp.path().join("grid.png");
    let run = kestrel([
        "augment-preview",
        "--recipe",
        "basic",
        s(&data.join("red").join("000.png")),
        s(&data.join("blue").join("001.png")),
        "--samples",
        "3",
        "--output",
        s(&grid),
    ])
    .ok();
    let img = image::open(&grid).unwrap_or_else(|e| panic!("{}: {e}", grid.display()));
    let (w, h) = (img.width(), img.height());
    assert!(
        run.stdout.contains(&format!("{w}x{h}")),
        "printed size vs file {w}x{h}: {}",
        run.stdout
    );
    // Rows = 2 images, columns = 3 samples, square tiles.
    assert!(w > h && h > 0, "{w}x{h}");
    // Same seed, same grid; another seed, another grid.
    let again = tmp.path().join("again.png");
    let other = tmp.path().join("other.png");
    for (out, seed) in [(&again, "0"), (&other, "1")] {
        kestrel([
            "augment-preview",
            "--recipe",
            "basic",
            s(&data.join("red").join("000.png")),
            s(&data.join("blue").join("001.png")),
            "--samples",
            "3",
            "--seed",
            seed,
            "--output",
            s(out),
        ])
        .ok();
    }
    let pixels = |p: &std::path::Path| image::open(p).unwrap().to_rgb8().into_raw();
    assert!(
        pixels(&grid) == pixels(&again),
        "--seed 0 (the default) twice gave different grids"
    );
    assert!(
        pixels(&grid) != pixels(&other),
        "--seed 0 and --seed 1 gave the same grid"
    );
}

#[test]
fn data_bench_counts_images_and_skips() {
    let tmp = tempdir();
    let train = tmp.path().join("train");
    let val = tmp.path().join("val");
    solid_color_folder(&train, 5, 22);
    solid_color_folder(&val, 1, 23);
    let json = tmp.path().join("bench.json");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "data-bench".to_string(),
            "--data".into(),
            s(&train).into(),
            "--val-dir".into(),
            s(&val).into(),
            "--recipe".into(),
            "basic".into(),
            "--epochs".into(),
            "2".into(),
            "--batch-size".into(),
            "4".into(),
            "--workers".into(),
            "1".into(),
            "--json".into(),
            s(&json).into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    kestrel(args(&[])).ok();
    let v = read_json(&json);
    assert_eq!(v["images"], 15, "{v}");
    assert_eq!(v["skipped"], 0, "{v}");
    assert_eq!(
        v["epoch_images_per_second"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    assert!(v["best_images_per_second"].as_f64().unwrap() > 0.0, "{v}");

    let bad = train.join("green").join("002_bad.png");
    write_truncated_png(&bad, [25, 220, 35]);
    kestrel(args(&[])).fails_cleanly_naming(&[s(&bad), "cannot decode image"]);
    kestrel(args(&["--skip-bad-images"])).ok();
    let v = read_json(&json);
    assert_eq!(v["images"], 16, "{v}");
    // Two epochs over the training split, each meeting the bad file once.
    assert!(v["skipped"].as_u64().unwrap() >= 1, "{v}");
}
