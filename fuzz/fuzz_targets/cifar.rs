//! CIFAR-10 / CIFAR-100 binary batches: `kestrel_data::cifar::parse_cifar_records`, which
//! `read_cifar_files` calls on each file's bytes.
#![no_main]

use std::path::Path;

use kestrel_data::cifar::{parse_cifar_records, CifarKind, CIFAR_PIXELS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
        if let Ok((pixels, labels)) = parse_cifar_records(data, kind, Path::new("fuzz.bin")) {
            assert_eq!(pixels.len(), labels.len() * CIFAR_PIXELS);
            assert!(labels.iter().all(|&l| l < kind.num_classes()));
        }
    }
});
