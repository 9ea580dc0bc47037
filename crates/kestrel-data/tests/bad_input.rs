//! Every bad input is an error that names the offending path (and never a panic).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use kestrel_data::*;

fn names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
}

fn png(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ::image::RgbImage::from_pixel(6, 6, ::image::Rgb([9, 9, 9]))
        .save(path)
        .unwrap();
}

fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

#[test]
fn missing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no/such/dir");
    let err = open_dataset(Some(&missing), &SplitOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
    names(&err, &missing);
    names(&ImageFolder::open(&missing, false).unwrap_err(), &missing);
    names(&open_idx_dir(&missing).unwrap_err(), &missing);
    names(&open_cifar_dir(&missing).unwrap_err(), &missing);

    // a missing val_dir
    png(&tmp.path().join("data/a/0.png"));
    let val = tmp.path().join("no-val");
    let opts = SplitOptions {
        val_dir: Some(val.clone()),
        ..Default::default()
    };
    names(
        &open_dataset(Some(&tmp.path().join("data")), &opts).unwrap_err(),
        &val,
    );
}

#[test]
fn directory_matching_no_format_lists_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"hello").unwrap();
    let err = open_dataset(Some(tmp.path()), &SplitOptions::default()).unwrap_err();
    names(&err, tmp.path());
    let msg = err.to_string();
    for needle in ["IDX", "CIFAR-10", "CIFAR-100", "ImageFolder"] {
        assert!(msg.contains(needle), "{msg}");
    }
    // a file instead of a directory
    let file = tmp.path().join("notes.txt");
    names(
        &open_dataset(Some(&file), &SplitOptions::default()).unwrap_err(),
        &file,
    );
}

#[test]
fn empty_class_folder() {
    let tmp = tempfile::tempdir().unwrap();
    png(&tmp.path().join("cat/0.png"));
    let empty = tmp.path().join("dog");
    std::fs::create_dir_all(&empty).unwrap();
    for skip in [false, true] {
        let err = ImageFolder::open(tmp.path(), skip).unwrap_err();
        names(&err, &empty);
        assert!(err.to_string().contains("no image files"), "{err}");
    }
    let err = open_dataset(Some(tmp.path()), &SplitOptions::default()).unwrap_err();
    names(&err, &empty);
}

#[test]
fn non_image_file_in_a_class_folder() {
    let tmp = tempfile::tempdir().unwrap();
    png(&tmp.path().join("cat/0.png"));
    png(&tmp.path().join("cat/1.PNG"));
    png(&tmp.path().join("dog/0.png"));
    let bad = tmp.path().join("dog/labels.csv");
    std::fs::write(&bad, b"a,b").unwrap();
    let err = ImageFolder::open(tmp.path(), false).unwrap_err();
    names(&err, &bad);
    assert!(err.to_string().contains("not an image file"), "{err}");
    names(
        &open_dataset(Some(tmp.path()), &SplitOptions::default()).unwrap_err(),
        &bad,
    );

    // skip_bad_images: skipped and counted at scan time
    let f = ImageFolder::open(tmp.path(), true).unwrap();
    assert_eq!((f.len(), f.skipped()), (3, 1));
    assert_eq!(f.skipped_files(), std::slice::from_ref(&bad));
    let opts = SplitOptions {
        skip_bad_images: true,
        val_fraction: 0.3,
        ..Default::default()
    };
    let s = open_dataset(Some(tmp.path()), &opts).unwrap();
    assert_eq!(s.skipped_at_scan, 1);
    assert!(
        s.description.contains("1 non-image files skipped"),
        "{}",
        s.description
    );
}

#[test]
fn corrupt_and_truncated_images() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.jpg");
    std::fs::write(&garbage, b"definitely not an image at all").unwrap();
    let empty = tmp.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();

    // a real JPEG and PNG cut in half
    let mut jpeg = Vec::new();
    ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(
            &vec![128u8; 64 * 64 * 3],
            64,
            64,
            ::image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let cut_jpeg = tmp.path().join("cut.jpg");
    std::fs::write(&cut_jpeg, &jpeg[..jpeg.len() / 3]).unwrap();
    let full_png = tmp.path().join("full.png");
    ::image::RgbImage::from_fn(64, 64, |x, y| ::image::Rgb([x as u8, y as u8, 7]))
        .save(&full_png)
        .unwrap();
    let bytes = std::fs::read(&full_png).unwrap();
    let cut_png = tmp.path().join("cut.png");
    std::fs::write(&cut_png, &bytes[..bytes.len() / 2]).unwrap();

    for p in [&garbage, &empty, &cut_png] {
        let err = decode_image_file(p).unwrap_err();
        assert!(matches!(err, DataError::Decode { .. }), "{err:?}");
        names(&err, p);
    }
    // zune-jpeg may recover a truncated JPEG (grey fill, like libjpeg's warning); if it fails it
    // must be a Decode error naming the file, never a panic.
    match decode_image_file(&cut_jpeg) {
        Ok(img) => assert_eq!((img.height, img.width), (64, 64)),
        Err(err) => names(&err, &cut_jpeg),
    }
    // a missing file
    let missing = tmp.path().join("missing.png");
    names(&decode_image_file(&missing).unwrap_err(), &missing);
    // bytes in memory are named by the path given
    let err = decode_image_bytes(b"\xff\xd8\xff\xe0 broken", "mem/photo.jpg").unwrap_err();
    assert!(err.to_string().contains("mem/photo.jpg"), "{err}");
}

#[test]
fn corrupt_image_in_a_folder_fails_on_get_and_is_skipped_by_the_loader() {
    let tmp = tempfile::tempdir().unwrap();
    png(&tmp.path().join("a/0.png"));
    png(&tmp.path().join("a/1.png"));
    png(&tmp.path().join("b/0.png"));
    let bad = tmp.path().join("b/1.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR truncated").unwrap();
    let ds = ImageFolder::open(tmp.path(), false).unwrap();
    let err = ds.get(3).unwrap_err();
    names(&err, &bad);

    let t: Arc<dyn SampleTransform> = Arc::new(
        EvalTransform::from_model_config(
            (3, 6, 6),
            1.0,
            Interpolation::Bilinear,
            &[0.0; 3],
            &[1.0; 3],
            "squash",
        )
        .unwrap(),
    );
    let cfg = LoaderConfig {
        batch_size: 3,
        skip_bad_images: true,
        ..Default::default()
    };
    let loader = Loader::new(Arc::new(ds), t, cfg).unwrap();
    let n: usize = loader.iter_epoch(0).map(|b| b.unwrap().len()).sum();
    assert_eq!((n, loader.skipped()), (3, 1));
}

#[test]
fn wrong_idx_magic_number() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("train-images-idx3-ubyte");
    let labels = tmp.path().join("train-labels-idx1-ubyte");
    // labels and images swapped
    let mut ib = idx_header(0x0801, &[2]);
    ib.extend_from_slice(&[1, 2]);
    std::fs::write(&images, &ib).unwrap();
    let err = read_idx_images(&images).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    names(&err, &images);
    assert!(err.to_string().contains("magic"), "{err}");

    let mut lb = idx_header(0x0803, &[1, 1, 1]);
    lb.push(0);
    std::fs::write(&labels, gz(&lb)).unwrap();
    let err = read_idx_labels(&labels).unwrap_err();
    names(&err, &labels);
    assert!(err.to_string().contains("magic"), "{err}");

    // through open_dataset too
    let err = open_dataset(Some(tmp.path()), &SplitOptions::default()).unwrap_err();
    names(&err, &images);
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn truncated_idx_files_and_count_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("train-images-idx3-ubyte.gz");
    let labels = tmp.path().join("train-labels-idx1-ubyte.gz");
    let mut ib = idx_header(0x0803, &[3, 2, 2]);
    ib.extend_from_slice(&[0; 10]); // 12 needed
    std::fs::write(&images, gz(&ib)).unwrap();
    let err = read_idx_images(&images).unwrap_err();
    names(&err, &images);
    assert!(err.to_string().contains("truncated"), "{err}");

    // a cut gzip stream
    let mut full = idx_header(0x0803, &[3, 2, 2]);
    full.extend_from_slice(&[5; 12]);
    let z = gz(&full);
    std::fs::write(&images, &z[..z.len() - 6]).unwrap();
    names(&read_idx_images(&images).unwrap_err(), &images);

    // a header cut short
    std::fs::write(&images, idx_header(0x0803, &[3])).unwrap();
    names(&read_idx_images(&images).unwrap_err(), &images);

    // 3 images, 2 labels
    std::fs::write(&images, gz(&full)).unwrap();
    let mut lb = idx_header(0x0801, &[2]);
    lb.extend_from_slice(&[1, 2]);
    std::fs::write(&labels, gz(&lb)).unwrap();
    let err = open_idx_dir(tmp.path()).unwrap_err();
    names(&err, &labels);
    names(&err, &images);
    assert!(err.to_string().contains("count mismatch"), "{err}");

    // a label out of range for 10 classes
    let mut lb = idx_header(0x0801, &[3]);
    lb.extend_from_slice(&[1, 2, 12]);
    std::fs::write(&labels, gz(&lb)).unwrap();
    names(&open_idx_dir(tmp.path()).unwrap_err(), &labels);

    // a training image file without its label file
    std::fs::remove_file(&labels).unwrap();
    names(
        &open_dataset(Some(tmp.path()), &SplitOptions::default()).unwrap_err(),
        tmp.path(),
    );
}

#[test]
fn truncated_cifar_files() {
    let tmp = tempfile::tempdir().unwrap();
    let b1 = tmp.path().join("data_batch_1.bin");
    std::fs::write(&b1, vec![0u8; 3073 * 2 + 100]).unwrap();
    let err = open_cifar_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    names(&err, &b1);
    assert!(
        err.to_string()
            .contains("truncated: 6246 bytes is not a multiple of 3073"),
        "{err}"
    );
    names(
        &open_dataset(Some(tmp.path()), &SplitOptions::default()).unwrap_err(),
        &b1,
    );

    // a bad label byte
    let mut rec = vec![0u8; 3073];
    rec[0] = 10;
    std::fs::write(&b1, &rec).unwrap();
    names(&open_cifar_dir(tmp.path()).unwrap_err(), &b1);

    // CIFAR-100 records are 3074 bytes
    let c100 = tmp.path().join("c100");
    std::fs::create_dir_all(&c100).unwrap();
    let train = c100.join("train.bin");
    std::fs::write(&train, vec![0u8; 3073]).unwrap();
    let err = open_cifar_dir(&c100).unwrap_err();
    names(&err, &train);
    assert!(err.to_string().contains("not a multiple of 3074"), "{err}");

    // a wrong number of class names
    std::fs::write(&train, vec![0u8; 3074]).unwrap();
    let meta = c100.join("fine_label_names.txt");
    std::fs::write(&meta, "a\nb\n").unwrap();
    names(&open_cifar_dir(&c100).unwrap_err(), &meta);
}

#[test]
fn bad_parameters_are_rejected() {
    let bad = SplitOptions {
        val_fraction: 1.5,
        ..Default::default()
    };
    assert!(matches!(
        open_dataset(None, &bad),
        Err(DataError::Invalid(_))
    ));
    let ds: Arc<dyn Dataset> = Arc::new(embedded_mnist().unwrap());
    let t: Arc<dyn SampleTransform> = Arc::new(
        EvalTransform::from_model_config(
            (1, 32, 32),
            0.875,
            Interpolation::Bilinear,
            &[0.1307],
            &[0.3081],
            "pad",
        )
        .unwrap(),
    );
    let cfg = LoaderConfig {
        batch_size: 0,
        ..Default::default()
    };
    assert!(Loader::new(ds, t, cfg).is_err());
}
