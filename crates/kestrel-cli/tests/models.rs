//! `kestrel models`: the JSON listing, checked against hand counts for LeNet-5.

use crate::common;

use common::kestrel;

fn models_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["models", "--json"];
    all.extend_from_slice(args);
    let run = kestrel(all).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("models --json is not JSON: {e}\n{}", run.stdout));
    v.as_array()
        .unwrap_or_else(|| panic!("models --json is not an array: {v}"))
        .clone()
}

#[test]
fn lenet5_params_and_macs() {
    // Only LeNet-5 (building all 90-odd models takes minutes on a small machine).
    let rows = models_json(&["--filter", "lenet5"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["name"], "lenet5");
    assert_eq!(r["num_classes"], 10);
    assert_eq!(r["input_size"], serde_json::json!([1, 32, 32]));
    // LeNet-5 from LeCun et al. 1998: 5×5 convs 1→6 (32→28), pool, 6→16 (14→10), pool, then
    // 400→120→84→10 fully connected. Weights + biases, and MACs at 1×32×32.
    let conv_params = |cin: u64, cout: u64| cout * (cin * 25 + 1);
    let fc_params = |i: u64, o: u64| o * (i + 1);
    let params = conv_params(1, 6)
        + conv_params(6, 16)
        + fc_params(400, 120)
        + fc_params(120, 84)
        + fc_params(84, 10);
    assert_eq!(r["params"], params, "{r}");
    let conv_macs = |cin: u64, cout: u64, out: u64| cout * out * out * cin * 25;
    let macs = conv_macs(1, 6, 28) + conv_macs(6, 16, 10) + 400 * 120 + 120 * 84 + 84 * 10;
    assert_eq!(r["macs"], macs, "{r}");
}

#[test]
fn json_lists_rows_with_every_field() {
    // --no-macs: params only, so the listing stays quick.
    let rows = models_json(&["--no-macs", "--filter", "cifar"]);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["resnet8_cifar", "resnet20_cifar", "vgg8_cifar"],
        "{rows:?}"
    );
    for (r, family) in rows.iter().zip(["resnet", "resnet", "vgg"]) {
        assert_eq!(r["family"], family, "{r}");
        assert!(r["macs"].is_null(), "--no-macs: {r}");
        assert_eq!(r["num_classes"], 10, "{r}");
        assert_eq!(r["input_size"], serde_json::json!([3, 32, 32]), "{r}");
        assert_eq!(r["mean"].as_array().unwrap().len(), 3, "{r}");
        assert_eq!(r["std"].as_array().unwrap().len(), 3, "{r}");
    }
    // He et al.'s ResNet-20 for CIFAR-10 (option-A shortcuts): 0.27M, exactly 272,474.
    assert_eq!(rows[1]["params"], 272_474, "{}", rows[1]);

    let rows = models_json(&["--no-macs", "--filter", "resnet18"]);
    let r18 = rows
        .iter()
        .find(|r| r["name"] == "resnet18")
        .unwrap_or_else(|| panic!("{rows:?}"));
    // torchvision's resnet18: 11,689,512 parameters.
    assert_eq!(r18["params"], 11_689_512, "{r18}");
    assert_eq!(r18["num_classes"], 1000);
    assert_eq!(r18["input_size"], serde_json::json!([3, 224, 224]));
}

/// The unfiltered listing (params only: counting every model's MACs takes minutes on 2 cores).
#[test]
fn full_listing_is_a_json_array_of_unique_models() {
    let rows = models_json(&["--no-macs"]);
    assert!(rows.len() >= 50, "only {} models", rows.len());
    let mut names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    for r in &rows {
        assert!(r["params"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(
            r["family"].is_string() && r["num_classes"].as_u64().unwrap_or(0) > 0,
            "{r}"
        );
    }
    let lenet = rows
        .iter()
        .find(|r| r["name"] == "lenet5")
        .expect("lenet5 listed");
    assert_eq!(lenet["params"], 61_706);
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate model names");
}

/// timm's pretrained tags: the bare name uses the default tag's data config.
#[test]
fn tags_list_timm_default_first() {
    let rows = models_json(&["--tags", "--filter", "resnet50"]);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {rows:?}"))
    };
    let a1 = row("resnet50.a1_in1k");
    assert_eq!(a1["default"], true, "{a1}");
    assert_eq!(
        (a1["crop_pct"].as_f64(), a1["interpolation"].as_str()),
        (Some(0.95), Some("bicubic"))
    );
    assert_eq!(
        a1["test_input_size"],
        serde_json::json!([3, 288, 288]),
        "{a1}"
    );
    let tv = row("resnet50.tv_in1k");
    assert_eq!(tv["default"], false, "{tv}");
    assert_eq!(
        (tv["crop_pct"].as_f64(), tv["interpolation"].as_str()),
        (Some(0.875), Some("bilinear"))
    );

    // The bare name lists the default tag's config.
    let models = models_json(&["--no-macs", "--filter", "resnet50"]);
    let r50 = models.iter().find(|r| r["name"] == "resnet50").unwrap();
    assert_eq!(
        (r50["crop_pct"].as_f64(), r50["interpolation"].as_str()),
        (Some(0.95), Some("bicubic"))
    );
}

/// ConvNeXt declares timm's tags in its own file: `convnext_tiny`'s default is
/// `in12k_ft_in1k` (crop 0.95, tested at 288 px crop 1.0), and the 384 px fine-tune squashes.
#[test]
fn tags_list_convnext_tags_from_its_family_file() {
    let rows = models_json(&["--tags", "--filter", "convnext_tiny"]);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {rows:?}"))
    };
    let default = row("convnext_tiny.in12k_ft_in1k");
    assert_eq!(default["default"], true, "{default}");
    assert_eq!(default["crop_pct"].as_f64(), Some(0.95), "{default}");
    assert_eq!(
        default["test_input_size"],
        serde_json::json!([3, 288, 288]),
        "{default}"
    );
    let r384 = row("convnext_tiny.fb_in22k_ft_in1k_384");
    assert_eq!(r384["default"], false, "{r384}");
    assert_eq!(
        r384["input_size"],
        serde_json::json!([3, 384, 384]),
        "{r384}"
    );
    assert_eq!(r384["crop_mode"].as_str(), Some("squash"), "{r384}");
}
