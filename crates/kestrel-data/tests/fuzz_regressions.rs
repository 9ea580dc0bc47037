//! The inputs the fuzzers (`fuzz/`, see docs/reliability.md) found crashing, committed under
//! `tests/fixtures/fuzz/<target>/`: each must now be an error naming the file, never a panic or
//! an abort. CI does not run the fuzzers; it runs these.
//!
//! Every committed input is listed in a table with the error it must give, and every table entry
//! must exist: an empty or missing folder, or an input without an expectation, fails.

use std::path::{Path, PathBuf};

use kestrel_data::{decode_image_file, DataError};

fn fixture_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target)
}

/// The files of `tests/fixtures/fuzz/<target>/`, checked against the expectation table.
fn inputs<'a>(target: &str, expected: &'a [(&'a str, &'a str)]) -> Vec<(PathBuf, &'a str)> {
    let dir = fixture_dir(target);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "{} holds no regression inputs",
        dir.display()
    );
    let mut listed: Vec<String> = expected.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        found,
        listed,
        "inputs in {} vs the expectation table",
        dir.display()
    );
    expected
        .iter()
        .map(|&(f, why)| (dir.join(f), why))
        .collect()
}

/// (file, text the error must contain)
const DECODE: &[(&str, &str)] = &[
    // PNG IHDR declaring 44 x 4294967057 pixels: the decoder's output buffer (189 GB) was
    // allocated before reading any data, an abort no `catch_unwind` can stop.
    (
        "png-ihdr-44x4294967057.png",
        "header declares a 44x4294967057 image",
    ),
];

#[test]
fn decode_regressions_are_decode_errors_naming_the_file() {
    for (path, why) in inputs("decode", DECODE) {
        let err = decode_image_file(&path).expect_err(&path.display().to_string());
        match &err {
            DataError::Decode { path: p, reason } => {
                assert_eq!(p, &path);
                assert!(reason.contains(why), "{}: {reason}", path.display());
            }
            other => panic!("{}: expected a Decode error, got {other:?}", path.display()),
        }
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
