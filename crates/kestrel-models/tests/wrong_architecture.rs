//! Issue 14: a weights file that belongs to another architecture is named in the error, as the
//! registry model whose tensor names and shapes match it best.

use kestrel_models::burn::prelude::*;
use kestrel_models::find;
use kestrel_models::weights::{load_weights, save_safetensors, LoadOptions};

/// Saves registry model `from` (at its defaults) and loads the file into registry model `into`.
fn load_error(from: &str, into: &str) -> String {
    let device = Device::flex();
    let spec = find(from).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(format!("{from}.safetensors"));
    save_safetensors(&spec.build(&spec.default_options(), &device), &path).unwrap();
    let target = find(into).unwrap();
    let mut model = target.build(&target.default_options(), &device);
    load_weights(&mut model, &path, &LoadOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_file_of_another_family_names_that_model() {
    let err = load_error("lenet5", "resnet8_cifar");
    assert!(err.contains("this file looks like `lenet5`"), "{err}");
    // LeNet-5 has 5 layers of weight and bias: all 10 of the file's tensors match.
    assert!(err.contains("10 of its 10 tensors"), "{err}");
}

#[test]
fn a_deeper_variant_of_the_same_family_names_the_deeper_model() {
    // resnet20_cifar's file holds every resnet8_cifar tensor and more: the best match is
    // resnet20_cifar itself, not the model it was loaded into.
    let err = load_error("resnet20_cifar", "resnet8_cifar");
    assert!(
        err.contains("this file looks like `resnet20_cifar`"),
        "{err}"
    );
    assert!(!err.contains("`resnet8_cifar`"), "{err}");
}
