//! The integration tests of kestrel-models as one binary: each file of tests/ is a module here, so
//! the workspace links one test executable per crate instead of one per file (CI time).
//! `every_test_file_is_a_module_here` fails when a new file is not listed.

mod attention_parity;
mod common;
mod convnext_parity;
mod convnext_registry;
mod efficientnet_parity;
mod full_parity;
mod full_parity_mobilenet_shufflenet_vgg;
mod gpu_parity;
mod maxxvit_parity;
mod mobilenet_parity;
mod pretrained_cfgs;
mod registry;
mod regnet_parity;
mod remap;
mod resnet_parity;
mod shufflenet_parity;
mod t2t_parity;
mod torchvision_parity;
mod transformer_parity;
mod vgg_parity;
mod wrong_architecture;
mod z2_full_parity;

#[test]
fn every_test_file_is_a_module_here() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("tests/main.rs");
    let separate = [
        "bench",
        "drop_path",
        "kernels_autodiff",
        "train_every_family",
    ];
    for entry in std::fs::read_dir(&dir).expect("tests/") {
        let name = entry
            .expect("tests/ entry")
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        if stem == "main" || separate.contains(&stem) {
            continue;
        }
        assert!(
            main.contains(&format!("\nmod {stem};\n")),
            "tests/{name} is not a module of tests/main.rs, so it would never run"
        );
    }
}
