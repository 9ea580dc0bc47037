//! The integration tests of kestrel-cli as one binary: each file of tests/ is a module here, so
//! the workspace links one test executable per crate instead of one per file (CI time).
//! `every_test_file_is_a_module_here` fails when a new file is not listed.

mod bad_input;
mod common;
mod end_to_end;
mod export;
mod finetune;
mod gpu;
mod models;
mod new_user;
mod one_preprocessing_path;
mod prune;
mod quantize;
mod recommend;
mod resume;
mod robustness;
mod serve;
mod tools;
mod train_controls;
mod train_optim;

#[test]
fn every_test_file_is_a_module_here() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("tests/main.rs");
    let separate = [];
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
