// Shared by the two weight targets: `kestrel_models::weights::load_weights`, the entry point a
// user's `--weights FILE` reaches, on a file written from the input (in /dev/shm when it exists).
// The model is LeNet5 with 1 input channel and 2 classes, built once: its `fc2` (and `fc1.bias`)
// are small enough for the seeds to load for real, so the fuzzer reaches the apply step too.

use std::cell::RefCell;
use std::path::PathBuf;

use kestrel_models::burn::prelude::Device;
use kestrel_models::weights::{load_weights, LoadOptions};
use kestrel_models::{find, BuildOptions, Model};

thread_local! {
    static MODEL: RefCell<Model> = RefCell::new(
        find("lenet5")
            .unwrap()
            .build(&BuildOptions { num_classes: 2, in_chans: 1 }, &Device::flex()),
    );
    static DIR: PathBuf = {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("kestrel-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
}

pub fn run(data: &[u8], file_name: &str) {
    let path = DIR.with(|d| d.join(file_name));
    std::fs::write(&path, data).unwrap();
    MODEL.with(|m| {
        let mut model = m.borrow_mut();
        if let Err(e) = load_weights(&mut model, &path, &LoadOptions::default()) {
            // every error names the file
            let msg = e.to_string();
            assert!(msg.contains(file_name), "error does not name the file: {msg}");
        }
    });
}
