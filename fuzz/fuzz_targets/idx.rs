//! IDX (MNIST-family) image and label files, plain or gzip: `kestrel_data::idx::parse_idx_images`
//! and `parse_idx_labels`, which `read_idx_images` / `read_idx_labels` call on a file's bytes.
#![no_main]

use std::path::Path;

use kestrel_data::idx::{idx_dataset, parse_idx_images, parse_idx_labels, digit_class_names};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-idx");
    let images = parse_idx_images(data, path);
    let labels = parse_idx_labels(data, path);
    if let Ok(images) = &images {
        assert_eq!(images.data.len(), images.count * images.height * images.width);
        // pair with as many labels as images: exercises the dataset constructor's checks
        let labels = vec![0u8; images.count];
        let _ = idx_dataset(images.clone(), labels, digit_class_names(), path, path);
    }
    if let Ok(labels) = labels {
        let _ = idx_dataset(
            kestrel_data::idx::IdxImages { count: labels.len(), height: 1, width: 1, data: labels.clone() },
            labels,
            digit_class_names(),
            path,
            path,
        );
    }
});
