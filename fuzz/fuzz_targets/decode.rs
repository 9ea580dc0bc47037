//! Image decoding: `kestrel_data::decode_image_bytes`, which `decode_image_file` (and so the
//! ImageFolder reader and `predict`) calls on a file's bytes. The first input byte picks the
//! extension the path carries, which decides the format when the content's magic bytes are not
//! recognised (0: none, the content alone decides).
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

const EXTS: [&str; 8] = ["", "png", "jpg", "webp", "bmp", "gif", "tga", "ico"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let ext = EXTS[sel as usize % EXTS.len()];
    let path = PathBuf::from(if ext.is_empty() { "fuzz".to_string() } else { format!("fuzz.{ext}") });
    if let Ok(img) = kestrel_data::decode_image_bytes(bytes, &path) {
        assert_eq!(img.channels, 3);
        assert_eq!(img.data.len(), img.height * img.width * 3);
    }
});
