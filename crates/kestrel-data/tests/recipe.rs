//! Recipes: presets, CLI overrides, JSON/TOML files, validation messages, the training
//! transform they build, and the augmentation preview grid.

use kestrel_data::recipe::{ErasingStyle, PRESETS};
use kestrel_data::{
    augment_preview, save_png, DataError, Image, Recipe, SampleTransform, TrainTransform,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn noise_image(h: usize, w: usize, c: usize, seed: u64) -> Image {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = (0..h * w * c).map(|_| rng.random()).collect();
    Image::new(h, w, c, data)
}

fn invalid_message(r: Result<Recipe, DataError>) -> String {
    match r {
        Err(DataError::Invalid(m)) => m,
        other => panic!("expected DataError::Invalid, got {other:?}"),
    }
}

#[test]
fn every_preset_builds_and_produces_the_input_shape() {
    for (name, _) in PRESETS {
        let recipe = Recipe::parse_cli(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(recipe, Recipe::preset(name).unwrap());
        let t = TrainTransform::from_recipe(&recipe).unwrap();
        let [c, h, w] = recipe.input_size;
        assert_eq!(t.output_shape(), Some((c, h, w)));
        for (ic, ih, iw) in [(3, 80, 120), (1, 40, 30), (3, 20, 20)] {
            for seed in 0..8 {
                let mut rng = StdRng::seed_from_u64(seed);
                let x = t
                    .apply(noise_image(ih, iw, ic, seed), &mut rng)
                    .unwrap_or_else(|e| panic!("{name} on {ic}x{ih}x{iw}: {e}"));
                assert_eq!((x.channels, x.height, x.width), (c, h, w), "{name}");
                assert!(x.data.iter().all(|v| v.is_finite()));
            }
        }
        let eval = recipe.eval_transform().unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let x = eval.apply(noise_image(50, 70, 3, 1), &mut rng).unwrap();
        assert_eq!((x.channels, x.height, x.width), (c, h, w));
    }
}

#[test]
fn train_transform_is_deterministic_per_seed() {
    let t = TrainTransform::from_recipe(&Recipe::preset("deit").unwrap()).unwrap();
    let img = noise_image(64, 80, 3, 2);
    let run = |seed| {
        t.apply(img.clone(), &mut StdRng::seed_from_u64(seed))
            .unwrap()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn cli_overrides_set_plain_and_nested_fields() {
    let r = Recipe::parse_cli(
        "basic, hflip=0.0, auto_augment=rand-m7-n3, random_erasing.prob=0.4, color_jitter=0.3",
    )
    .unwrap();
    assert_eq!(r.hflip, 0.0);
    assert_eq!(r.auto_augment.as_deref(), Some("rand-m7-n3"));
    let re = r.random_erasing.as_ref().unwrap();
    assert_eq!(re.prob, 0.4);
    assert_eq!(
        re.scale,
        [0.02, 0.33],
        "unset nested fields keep their defaults"
    );
    let cj = r.color_jitter.unwrap();
    assert_eq!(
        (cj.brightness, cj.contrast, cj.saturation, cj.hue),
        (0.3, 0.3, 0.3, 0.0)
    );
    let r = Recipe::parse_cli("cifar,random_crop.padding=2,mixup.cutmix_alpha=1.0").unwrap();
    assert_eq!(r.random_crop.unwrap().padding, 2);
    assert_eq!(r.mixup.unwrap().cutmix_alpha, 1.0);
    let r = Recipe::parse_cli("randaugment,auto_augment=null,random_erasing=null").unwrap();
    assert_eq!((r.auto_augment, r.random_erasing), (None, None));
}

#[test]
fn json_and_toml_files_load_with_an_optional_preset_base() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    std::fs::write(
        &json,
        r#"{"preset": "cifar", "auto_augment": "autoaugment-cifar10",
            "random_erasing": {"prob": 0.5, "value": "random"}}"#,
    )
    .unwrap();
    let r = Recipe::from_file(&json).unwrap();
    assert_eq!(r.input_size, [3, 32, 32]);
    assert_eq!(r.auto_augment.as_deref(), Some("autoaugment-cifar10"));
    assert!(r.random_crop.is_some(), "preset keys kept");
    assert_eq!(Recipe::parse_cli(json.to_str().unwrap()).unwrap(), r);

    let toml = dir.path().join("r.toml");
    std::fs::write(
        &toml,
        r#"
input_size = [3, 64, 64]
train_interpolation = "bicubic"
hflip = 0.5
auto_augment = "trivialaugment"
color_jitter = 0.4
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]

[random_resized_crop]
scale = [0.35, 1.0]

[random_erasing]
prob = 0.25
style = "timm"
mode = "pixel"

[mixup]
mixup_alpha = 0.8
cutmix_alpha = 1.0
label_smoothing = 0.1
"#,
    )
    .unwrap();
    let r = Recipe::parse_cli(&format!("{},vflip=0.1", toml.display())).unwrap();
    assert_eq!(r.input_size, [3, 64, 64]);
    assert_eq!(r.vflip, 0.1);
    assert_eq!(r.random_resized_crop.as_ref().unwrap().scale, [0.35, 1.0]);
    assert_eq!(
        r.random_resized_crop.as_ref().unwrap().ratio,
        [0.75, 4.0 / 3.0]
    );
    assert_eq!(r.random_erasing.as_ref().unwrap().style, ErasingStyle::Timm);
    let t = TrainTransform::from_recipe(&r).unwrap();
    assert!(t.mixup(10).unwrap().is_some());

    // A recipe serialises to JSON and reads back unchanged.
    let back = dir.path().join("back.json");
    std::fs::write(&back, serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(Recipe::from_file(&back).unwrap(), r);

    assert!(matches!(
        Recipe::from_file(dir.path().join("missing.toml")),
        Err(DataError::NotFound { .. })
    ));
    std::fs::write(dir.path().join("broken.json"), "{").unwrap();
    assert!(matches!(
        Recipe::from_file(dir.path().join("broken.json")),
        Err(DataError::Format { .. })
    ));
}

#[test]
fn unknown_names_and_out_of_range_values_say_what_is_valid() {
    let cases: &[(&str, &str)] = &[
        ("fancy", "basic"),
        ("basic,auto_augment=augmix", "trivialaugment"),
        ("basic,auto_augment=randaugment-m40", "0..=30"),
        ("basic,train_interpolation=cubic", "bicubic"),
        ("basic,hflipp=0.5", "hflip"),
        ("basic,hflip=1.5", "[0, 1]"),
        ("basic,color_jitter.hue=0.7", "[0, 0.5]"),
        ("basic,color_jitter.brightness=-1", "non-negative"),
        ("basic,random_erasing.prob=2", "[0, 1]"),
        ("basic,random_erasing.value=noise", "random"),
        ("basic,random_resized_crop.scale=[0.9,0.1]", "ordered pair"),
        ("basic,random_crop.padding=4", "not both"),
        ("basic,mean=[0.5]", "one per channel"),
        ("basic,mixup.prob=3", "[0, 1]"),
        ("basic,mixup.mode=chunk", "batch"),
        ("basic,eval_crop_pct=0", "(0, 1]"),
        ("basic,input_size=[4,32,32]", "1 or 3"),
        ("basic,random_crop", "key=value"),
    ];
    for (spec, hint) in cases {
        let msg = invalid_message(Recipe::parse_cli(spec));
        assert!(
            msg.contains(hint),
            "{spec}: '{msg}' should mention '{hint}'"
        );
    }
}

#[test]
fn colour_jitter_follows_timms_rule_with_auto_augment() {
    // timm drops colour jitter when an auto-augment policy is set, unless forced.
    let img = noise_image(40, 40, 3, 3);
    let base = "basic,random_resized_crop=null,input_size=[3,40,40],hflip=0";
    let off = Recipe::parse_cli(&format!(
        "{base},auto_augment=randaugment-n0,color_jitter=0.4"
    ))
    .unwrap();
    let t = TrainTransform::from_recipe(&off).unwrap();
    let out = t
        .apply_image(img.clone(), &mut StdRng::seed_from_u64(1))
        .unwrap();
    assert_eq!(out, img, "jitter skipped, RandAugment with 0 ops");
    let on = Recipe::parse_cli(&format!(
        "{base},auto_augment=randaugment-n0,color_jitter=0.4,force_color_jitter=true"
    ))
    .unwrap();
    let t = TrainTransform::from_recipe(&on).unwrap();
    let out = t
        .apply_image(img.clone(), &mut StdRng::seed_from_u64(1))
        .unwrap();
    assert_ne!(out, img);
}

#[test]
fn preview_grid_tiles_samples_and_saves_as_png() {
    let recipe = Recipe::parse_cli("randaugment,input_size=[3,48,64]").unwrap();
    let images = [noise_image(90, 120, 3, 4), noise_image(50, 50, 1, 5)];
    let grid = augment_preview(&images, &recipe, 3, 42).unwrap();
    assert_eq!(
        (grid.height, grid.width, grid.channels),
        (2 * 48 + 3 * 2, 3 * 64 + 4 * 2, 3)
    );
    assert_eq!(
        augment_preview(&images, &recipe, 3, 42).unwrap(),
        grid,
        "seeded"
    );
    assert_ne!(augment_preview(&images, &recipe, 3, 43).unwrap(), grid);
    // Tiles differ from each other (independent draws) and gaps are grey.
    assert_eq!(grid.pixel(0, 0, 0), 128);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.png");
    save_png(&grid, &path).unwrap();
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(
        (back.width() as usize, back.height() as usize),
        (grid.width, grid.height)
    );
    assert_eq!(back.into_raw(), grid.data);

    assert!(augment_preview(&[], &recipe, 3, 0).is_err());
    assert!(augment_preview(&images, &recipe, 0, 0).is_err());
}
