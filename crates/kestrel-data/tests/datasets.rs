//! Dataset readers, decoding, splits and preprocessing, on files written here in the exact formats.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ::image::{ImageBuffer, ImageEncoder, Luma, LumaA, Rgb, RgbImage, Rgba};
use kestrel_data::cifar::{CifarKind, CIFAR10_CLASSES};
use kestrel_data::decode::{apply_orientation, Orientation};
use kestrel_data::idx::{EMBEDDED_MNIST_LICENSE, FASHION_MNIST_CLASSES};
use kestrel_data::memory::class_counts;
use kestrel_data::splits::stratified_split;
use kestrel_data::transforms::to_channels;
use kestrel_data::*;
use rand::SeedableRng;

// ---------------------------------------------------------------- helpers

fn idx_images_bytes(n: usize, h: usize, w: usize, pixel: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x0803u32.to_be_bytes());
    for v in [n, h, w] {
        b.extend_from_slice(&(v as u32).to_be_bytes());
    }
    for i in 0..n {
        for p in 0..h * w {
            b.push(pixel(i, p));
        }
    }
    b
}

fn idx_labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x0801u32.to_be_bytes());
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn px(i: usize, p: usize) -> u8 {
    (i * 31 + p * 7) as u8
}

/// Writes an MNIST-style directory with `n_train` / `n_test` 6×5 images.
fn write_idx_dir(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = if gzip { ".gz" } else { "" };
    let enc = |b: Vec<u8>| if gzip { gz(&b) } else { b };
    let train_labels: Vec<u8> = (0..n_train).map(|i| (i % 10) as u8).collect();
    let test_labels: Vec<u8> = (0..n_test).map(|i| ((i + 3) % 10) as u8).collect();
    std::fs::write(
        dir.join(format!("train-images-idx3-ubyte{ext}")),
        enc(idx_images_bytes(n_train, 6, 5, px)),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("train-labels-idx1-ubyte{ext}")),
        enc(idx_labels_bytes(&train_labels)),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("t10k-images-idx3-ubyte{ext}")),
        enc(idx_images_bytes(n_test, 6, 5, |i, p| px(i + 1000, p))),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("t10k-labels-idx1-ubyte{ext}")),
        enc(idx_labels_bytes(&test_labels)),
    )
    .unwrap();
}

/// A CIFAR record: label byte(s) then R, G, B planes. Pixel (y, x) of plane c is
/// `seed + c * 50 + y + 2 * x`.
fn cifar_record(labels: &[u8], seed: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    for c in 0..3u8 {
        for y in 0..32u8 {
            for x in 0..32u8 {
                r.push(
                    seed.wrapping_add(c * 50)
                        .wrapping_add(y)
                        .wrapping_add(2 * x),
                );
            }
        }
    }
    r
}

fn sources(ds: &dyn Dataset) -> Vec<String> {
    (0..ds.len()).map(|i| ds.source(i)).collect()
}

fn save_rgb(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    RgbImage::from_fn(w, h, |x, y| Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

// ---------------------------------------------------------------- IDX

#[test]
fn idx_round_trip_plain_gzip_and_gzip_without_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let images = idx_images_bytes(7, 6, 5, px);
    let labels: Vec<u8> = vec![0, 1, 2, 3, 4, 5, 9];
    let cases = [
        (
            "plain-images",
            images.clone(),
            "plain-labels",
            idx_labels_bytes(&labels),
        ),
        (
            "gz-images.gz",
            gz(&images),
            "gz-labels.gz",
            gz(&idx_labels_bytes(&labels)),
        ),
        // gzip detected by its 1f 8b magic, not the name
        (
            "disguised-images",
            gz(&images),
            "disguised-labels",
            gz(&idx_labels_bytes(&labels)),
        ),
    ];
    for (iname, ibytes, lname, lbytes) in cases {
        let ip = tmp.path().join(iname);
        let lp = tmp.path().join(lname);
        std::fs::write(&ip, ibytes).unwrap();
        std::fs::write(&lp, lbytes).unwrap();
        let imgs = read_idx_images(&ip).unwrap();
        assert_eq!((imgs.count, imgs.height, imgs.width), (7, 6, 5), "{iname}");
        assert_eq!(imgs.data, images[16..], "{iname}");
        assert_eq!(read_idx_labels(&lp).unwrap(), labels, "{lname}");
    }
}

#[test]
fn idx_directory_mnist_names_fashion_names_and_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("mnist");
    write_idx_dir(&plain, 30, 12, false);
    let d = open_idx_dir(&plain).unwrap();
    assert!(!d.files.fashion);
    assert_eq!(d.train.len(), 30);
    assert_eq!(d.test.as_ref().unwrap().len(), 12);
    assert_eq!(
        d.train.class_names,
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let s = d.train.get(4).unwrap();
    assert_eq!(
        (s.image.height, s.image.width, s.image.channels, s.label),
        (6, 5, 1, 4)
    );
    assert_eq!(s.image.data, (0..30).map(|p| px(4, p)).collect::<Vec<_>>());
    let t = d.test.as_ref().unwrap().get(2).unwrap();
    assert_eq!(t.label, 5);
    assert_eq!(t.image.data[0], px(1002, 0));
    assert!(
        d.train.source(4).ends_with("train-images-idx3-ubyte#4"),
        "{}",
        d.train.source(4)
    );

    // gzip, torchvision's FashionMNIST/raw layout: fashion detected from the parent's name
    let fashion = tmp.path().join("FashionMNIST");
    write_idx_dir(&fashion.join("raw"), 20, 10, true);
    let d = open_idx_dir(&fashion).unwrap();
    assert!(d.files.fashion);
    assert_eq!(d.train.class_names[0], "T-shirt/top");
    assert_eq!(d.train.class_names[9], "Ankle boot");
    assert_eq!(d.train.len(), 20);

    // the Kaggle spelling train-images.idx3-ubyte, without t10k files
    let kaggle = tmp.path().join("kaggle");
    std::fs::create_dir_all(&kaggle).unwrap();
    std::fs::write(
        kaggle.join("train-images.idx3-ubyte"),
        idx_images_bytes(10, 6, 5, px),
    )
    .unwrap();
    std::fs::write(
        kaggle.join("train-labels.idx1-ubyte"),
        idx_labels_bytes(&[1; 10]),
    )
    .unwrap();
    let d = open_idx_dir(&kaggle).unwrap();
    assert!(d.test.is_none());
    let splits = open_dataset(Some(&kaggle), &SplitOptions::default()).unwrap();
    assert_eq!(splits.train.len() + splits.val.len(), 10);
    assert!(
        splits.description.contains("doubles as test"),
        "{}",
        splits.description
    );
}

#[test]
fn idx_directory_splits_train_val_and_keeps_t10k_as_test() {
    let tmp = tempfile::tempdir().unwrap();
    write_idx_dir(tmp.path(), 200, 50, true);
    let opts = SplitOptions {
        val_fraction: 0.2,
        ..Default::default()
    };
    let s = open_dataset(Some(tmp.path()), &opts).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (160, 40, 50));
    // stratified: 20 of each class -> 4 of each class in val
    assert_eq!(class_counts(s.val.as_ref()), vec![4; 10]);
    let tr: HashSet<_> = sources(s.train.as_ref()).into_iter().collect();
    let va: HashSet<_> = sources(s.val.as_ref()).into_iter().collect();
    assert_eq!(tr.len(), 160);
    assert!(tr.is_disjoint(&va));
    assert!(sources(s.test.as_ref())[0].contains("t10k-images-idx3-ubyte.gz#0"));
    assert!(s.description.contains("MNIST"), "{}", s.description);
    // deterministic, and a different split seed moves samples
    let again = open_dataset(Some(tmp.path()), &opts).unwrap();
    assert_eq!(sources(again.val.as_ref()), sources(s.val.as_ref()));
    let other = open_dataset(Some(tmp.path()), &SplitOptions { seed: 1, ..opts }).unwrap();
    assert_ne!(sources(other.val.as_ref()), sources(s.val.as_ref()));
}

// ---------------------------------------------------------------- embedded MNIST

#[test]
fn embedded_mnist_has_10000_digits_with_known_class_counts() {
    let ds = embedded_mnist().unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!((ds.height, ds.width, ds.channels), (28, 28, 1));
    assert_eq!(
        ds.class_counts(),
        vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    assert!(
        ds.origin.contains("mnist 1.1.0") && ds.origin.contains("MIT"),
        "{}",
        ds.origin
    );
    assert!(EMBEDDED_MNIST_LICENSE.contains("MIT License"));
    // real digits: mostly black background, some bright ink
    let img = ds.get(0).unwrap().image;
    let ink = img.data.iter().filter(|&&v| v > 128).count();
    assert!(ink > 30 && ink < 400, "ink pixels {ink}");
    assert_eq!(img.data[0], 0);
}

#[test]
fn embedded_split_is_stratified_8000_1000_1000_without_overlap() {
    let s = open_dataset(None, &SplitOptions::default()).unwrap();
    assert_eq!(
        (s.train.len(), s.val.len(), s.test.len()),
        (8000, 1000, 1000)
    );
    let val_counts = vec![100, 113, 99, 103, 98, 86, 102, 107, 94, 98];
    assert_eq!(class_counts(s.val.as_ref()), val_counts);
    assert_eq!(class_counts(s.test.as_ref()), val_counts);
    assert_eq!(
        class_counts(s.train.as_ref()),
        vec![801, 901, 793, 826, 784, 691, 810, 856, 756, 782]
    );
    let tr: HashSet<_> = sources(s.train.as_ref()).into_iter().collect();
    let va: HashSet<_> = sources(s.val.as_ref()).into_iter().collect();
    let te: HashSet<_> = sources(s.test.as_ref()).into_iter().collect();
    assert_eq!(tr.len() + va.len() + te.len(), 10_000);
    assert!(tr.is_disjoint(&va) && tr.is_disjoint(&te) && va.is_disjoint(&te));
    assert_eq!(s.class_names.len(), 10);
    assert!(s.description.contains("train 8000"), "{}", s.description);
    // the split depends on the split seed only
    let again = open_dataset(None, &SplitOptions::default()).unwrap();
    assert_eq!(sources(again.test.as_ref()), sources(s.test.as_ref()));
}

#[test]
fn stratified_split_is_exact_and_handles_tiny_classes() {
    let labels: Vec<usize> = (0..23).map(|i| if i < 20 { 0 } else { 1 }).collect();
    let parts = stratified_split(&labels, &[0.25], 3).unwrap();
    assert_eq!(parts[0].len(), 6); // round(23 * 0.25)
    assert_eq!(parts[0].len() + parts[1].len(), 23);
    assert!(stratified_split(&labels, &[0.6, 0.5], 0).is_err());
}

/// Real data from Debian's `dataset-fashion-mnist`. Outside CI a missing package skips the
/// test; under `CI=true` it fails, because `.ci/run` installs the package.
#[test]
fn fashion_mnist_from_the_debian_package() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists() {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "CI=true but {} is missing: .ci/run installs dataset-fashion-mnist",
            dir.display()
        );
        eprintln!("skipped: {} not installed (CI would fail)", dir.display());
        return;
    }
    let s = open_dataset(Some(dir), &SplitOptions::default()).unwrap();
    assert_eq!(
        (s.train.len(), s.val.len(), s.test.len()),
        (54_000, 6_000, 10_000)
    );
    let names: Vec<String> = FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(s.class_names, names);
    assert_eq!(class_counts(s.test.as_ref()), vec![1000; 10]);
    assert_eq!(class_counts(s.val.as_ref()), vec![600; 10]);
}

// ---------------------------------------------------------------- CIFAR

#[test]
fn cifar10_binary_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let b1: Vec<u8> = [
        cifar_record(&[3], 0),
        cifar_record(&[7], 10),
        cifar_record(&[0], 20),
    ]
    .concat();
    let b2: Vec<u8> = [cifar_record(&[9], 30), cifar_record(&[1], 40)].concat();
    std::fs::write(dir.join("data_batch_1.bin"), &b1).unwrap();
    std::fs::write(dir.join("data_batch_2.bin"), &b2).unwrap();
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[5], 60)).unwrap();
    std::fs::write(
        dir.join("batches.meta.txt"),
        CIFAR10_CLASSES.join("\n") + "\n\n",
    )
    .unwrap();

    // found through the parent directory
    let c = open_cifar_dir(tmp.path()).unwrap();
    assert_eq!(c.files.kind, CifarKind::Cifar10);
    assert_eq!(c.train.len(), 5);
    assert_eq!(c.train.labels, vec![3, 7, 0, 9, 1]);
    assert_eq!(c.train.class_names[3], "cat");
    let s = c.train.get(1).unwrap();
    assert_eq!(
        (s.image.height, s.image.width, s.image.channels),
        (32, 32, 3)
    );
    // HWC: pixel (y=2, x=5) channel c = 10 + 50c + 2 + 10
    for ch in 0..3 {
        assert_eq!(s.image.pixel(2, 5, ch), (10 + 50 * ch + 2 + 10) as u8);
    }
    assert!(
        c.train.source(3).ends_with("data_batch_2.bin#0"),
        "{}",
        c.train.source(3)
    );
    assert_eq!(c.test.as_ref().unwrap().labels, vec![5]);

    let s = open_dataset(
        Some(tmp.path()),
        &SplitOptions {
            val_fraction: 0.2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (4, 1, 1));
    assert!(s.description.contains("CIFAR-10"), "{}", s.description);
}

#[test]
fn cifar100_binary_uses_fine_labels_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let train: Vec<u8> = [cifar_record(&[4, 42], 0), cifar_record(&[19, 99], 1)].concat();
    std::fs::write(tmp.path().join("train.bin"), &train).unwrap();
    std::fs::write(tmp.path().join("test.bin"), cifar_record(&[0, 7], 2)).unwrap();
    let c = open_cifar_dir(tmp.path()).unwrap();
    assert_eq!(c.files.kind, CifarKind::Cifar100);
    assert_eq!(c.train.labels, vec![42, 99]);
    assert_eq!(c.train.class_names.len(), 100);
    assert_eq!(c.train.class_names[42], "42");
    assert_eq!(c.train.get(1).unwrap().image.pixel(0, 1, 2), 1 + 100 + 2);

    let names: Vec<String> = (0..100).map(|i| format!("class_{i}")).collect();
    std::fs::write(tmp.path().join("fine_label_names.txt"), names.join("\n")).unwrap();
    let c = open_cifar_dir(tmp.path()).unwrap();
    assert_eq!(c.train.class_names[99], "class_99");
}

// ---------------------------------------------------------------- decoding

#[test]
fn decode_png_16bit_rgb_scales_by_257_with_rounding() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("deep.png");
    let vals = [0u16, 128, 129, 257 * 100, 32896, 65535];
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(6, 1, |x, _| {
        Rgb([vals[x as usize], 65535 - vals[x as usize], 1000])
    });
    img.save(&p).unwrap();
    let d = decode_image_file(&p).unwrap();
    assert_eq!((d.height, d.width, d.channels), (1, 6, 3));
    let r: Vec<u8> = (0..6).map(|x| d.pixel(0, x, 0)).collect();
    // round(v / 257): 128 -> 0, 129 -> 1, 25700 -> 100, 32896 -> 128, 65535 -> 255
    assert_eq!(r, vec![0, 0, 1, 100, 128, 255]);
    assert_eq!(d.pixel(0, 0, 1), 255);
    assert_eq!(d.pixel(0, 0, 2), 4); // 1000 / 257 = 3.89
}

#[test]
fn decode_grayscale_png_8_and_16_bit_expands_to_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let p8 = tmp.path().join("g8.png");
    ImageBuffer::<Luma<u8>, Vec<u8>>::from_fn(3, 2, |x, y| Luma([(x * 40 + y * 100) as u8]))
        .save(&p8)
        .unwrap();
    let d = decode_image_file(&p8).unwrap();
    assert_eq!((d.height, d.width, d.channels), (2, 3, 3));
    assert_eq!(&d.data[(3 + 2) * 3..(3 + 2) * 3 + 3], &[180, 180, 180]);

    let p16 = tmp.path().join("g16.png");
    ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(2, 1, |x, _| {
        Luma([if x == 0 { 300 } else { 51400 }])
    })
    .save(&p16)
    .unwrap();
    let d = decode_image_file(&p16).unwrap();
    // scaled (not clipped like PIL's I;16 -> RGB): 300 -> 1, 51400 -> 200
    assert_eq!(d.data, vec![1, 1, 1, 200, 200, 200]);

    let pla = tmp.path().join("la.png");
    ImageBuffer::<LumaA<u8>, Vec<u8>>::from_pixel(1, 1, LumaA([77, 0]))
        .save(&pla)
        .unwrap();
    assert_eq!(decode_image_file(&pla).unwrap().data, vec![77, 77, 77]);
}

#[test]
fn decode_rgba_png_drops_alpha_without_compositing() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("rgba.png");
    ImageBuffer::<Rgba<u8>, Vec<u8>>::from_fn(2, 1, |x, _| {
        if x == 0 {
            Rgba([10, 20, 30, 0])
        } else {
            Rgba([200, 100, 50, 128])
        }
    })
    .save(&p)
    .unwrap();
    let d = decode_image_file(&p).unwrap();
    assert_eq!(d.channels, 3);
    assert_eq!(d.data, vec![10, 20, 30, 200, 100, 50]);
}

/// A big-endian TIFF structure holding one IFD entry: Orientation (0x0112) = `value`.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut e = b"MM\0\x2a".to_vec();
    e.extend_from_slice(&8u32.to_be_bytes());
    e.extend_from_slice(&1u16.to_be_bytes());
    e.extend_from_slice(&0x0112u16.to_be_bytes());
    e.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    e.extend_from_slice(&1u32.to_be_bytes());
    e.extend_from_slice(&value.to_be_bytes());
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&0u32.to_be_bytes());
    e
}

#[test]
fn decode_jpeg_honours_exif_orientation() {
    // 32 wide × 16 high: left half red, right half blue.
    let img = RgbImage::from_fn(32, 16, |x, _| {
        if x < 16 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut bytes = Vec::new();
    let mut enc = ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    enc.set_exif_metadata(exif_orientation(6)).unwrap(); // 6 = rotate 90° clockwise
    enc.write_image(img.as_raw(), 32, 16, ::image::ExtendedColorType::Rgb8)
        .unwrap();
    let d = decode_image_bytes(&bytes, "rotated.jpg").unwrap();
    // rotated: 16 wide × 32 high, the red half now on top
    assert_eq!((d.height, d.width), (32, 16));
    assert!(
        d.pixel(4, 8, 0) > 200 && d.pixel(4, 8, 2) < 60,
        "top should be red"
    );
    assert!(
        d.pixel(28, 8, 2) > 200 && d.pixel(28, 8, 0) < 60,
        "bottom should be blue"
    );

    // without the tag the same picture is landscape
    let mut plain = Vec::new();
    ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 95)
        .write_image(img.as_raw(), 32, 16, ::image::ExtendedColorType::Rgb8)
        .unwrap();
    let d = decode_image_bytes(&plain, "plain.jpg").unwrap();
    assert_eq!((d.height, d.width), (16, 32));
}

#[test]
fn apply_orientation_on_known_values() {
    // 2 × 3 image, pixel value = 10 * y + x
    let img = Image::new(2, 3, 1, vec![0, 1, 2, 10, 11, 12]);
    let r90 = apply_orientation(img.clone(), Orientation::Rotate90);
    assert_eq!((r90.height, r90.width), (3, 2));
    assert_eq!(r90.data, vec![10, 0, 11, 1, 12, 2]);
    let r180 = apply_orientation(img.clone(), Orientation::Rotate180);
    assert_eq!(r180.data, vec![12, 11, 10, 2, 1, 0]);
    let fh = apply_orientation(img.clone(), Orientation::FlipHorizontal);
    assert_eq!(fh.data, vec![2, 1, 0, 12, 11, 10]);
    assert_eq!(
        apply_orientation(img.clone(), Orientation::NoTransforms),
        img
    );
    assert_eq!(Orientation::from_exif(6), Some(Orientation::Rotate90));
}

#[test]
fn decode_webp_bmp_gif_first_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let f = |x: u32, y: u32| [(x * 20) as u8, (y * 30) as u8, 77];
    for ext in ["bmp", "webp"] {
        let p = tmp.path().join(format!("a.{ext}"));
        save_rgb(&p, 5, 4, f);
        let d = decode_image_file(&p).unwrap();
        assert_eq!((d.height, d.width), (4, 5), "{ext}");
        assert_eq!(&d.data[..3], &[0, 0, 77], "{ext} is lossless");
        assert_eq!(d.pixel(3, 4, 0), 80, "{ext}");
    }
    // an animated GIF: the first frame is red, the second green
    let p = tmp.path().join("anim.gif");
    {
        let file = std::fs::File::create(&p).unwrap();
        let mut enc = ::image::codecs::gif::GifEncoder::new(file);
        let red = ::image::RgbaImage::from_pixel(4, 4, Rgba([255, 0, 0, 255]));
        let green = ::image::RgbaImage::from_pixel(4, 4, Rgba([0, 255, 0, 255]));
        enc.encode_frames(vec![::image::Frame::new(red), ::image::Frame::new(green)])
            .unwrap();
    }
    let d = decode_image_file(&p).unwrap();
    assert_eq!((d.height, d.width, d.channels), (4, 4, 3));
    assert_eq!(&d.data[..3], &[255, 0, 0]);
}

#[test]
fn decode_detects_format_from_content_not_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("real.png");
    save_rgb(&png, 2, 2, |_, _| [1, 2, 3]);
    let mislabelled = tmp.path().join("actually-png.jpg");
    std::fs::copy(&png, &mislabelled).unwrap();
    assert_eq!(
        decode_image_file(&mislabelled).unwrap().data,
        [1, 2, 3].repeat(4)
    );
}

// ---------------------------------------------------------------- ImageFolder

fn make_folder(root: &Path) {
    for (class, n) in [("dog", 3), ("cat", 2), ("bird", 2)] {
        let d = root.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let v = (i * 50) as u8;
            let ext = ["png", "JPG", "jpeg"][i % 3];
            save_rgb(&d.join(format!("img{i}.{ext}")), 8, 6, |_, _| [v, v, v]);
        }
    }
}

#[test]
fn image_folder_sorted_classes_and_files_lazy_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    make_folder(tmp.path());
    std::fs::write(tmp.path().join("cat/.DS_Store"), b"junk").unwrap();
    std::fs::create_dir_all(tmp.path().join(".ipynb_checkpoints")).unwrap();
    std::fs::write(
        tmp.path().join("README.txt"),
        b"files in the root are ignored",
    )
    .unwrap();
    let f = ImageFolder::open(tmp.path(), false).unwrap();
    assert_eq!(f.class_names(), &["bird", "cat", "dog"]);
    assert_eq!(f.len(), 7);
    assert_eq!(f.skipped(), 0);
    let labels: Vec<usize> = (0..7).map(|i| f.label(i)).collect();
    assert_eq!(labels, vec![0, 0, 1, 1, 2, 2, 2]);
    assert!(f.source(4).ends_with("dog/img0.png"));
    assert!(f.source(5).ends_with("dog/img1.JPG"));
    let s = f.get(6).unwrap();
    assert_eq!(
        (s.image.height, s.image.width, s.image.channels, s.label),
        (6, 8, 3, 2)
    );
    assert!(
        (s.image.data[0] as i32 - 100).abs() <= 3,
        "jpeg ≈ 100, got {}",
        s.image.data[0]
    );
}

#[test]
fn image_folder_layouts_train_val_test_val_dir_and_split() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let opts = SplitOptions::default();

    // root/train + root/val: val doubles as test
    make_folder(&root.join("a/train"));
    make_folder(&root.join("a/val"));
    let s = open_dataset(Some(&root.join("a")), &opts).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (7, 7, 7));
    assert!(
        s.description.contains("doubles as test"),
        "{}",
        s.description
    );
    assert_eq!(s.class_names, vec!["bird", "cat", "dog"]);

    // root/train + root/test: test doubles as val; a val folder missing a class is fine
    make_folder(&root.join("b/train"));
    make_folder(&root.join("b/test"));
    std::fs::remove_dir_all(root.join("b/test/cat")).unwrap();
    let s = open_dataset(Some(&root.join("b")), &opts).unwrap();
    assert_eq!((s.val.len(), s.test.len()), (5, 5));
    assert_eq!(s.test.label(2), 2, "dog keeps the training label 2");
    assert!(
        s.description.contains("doubles as validation"),
        "{}",
        s.description
    );

    // root/train + root/val + root/test
    make_folder(&root.join("c/train"));
    make_folder(&root.join("c/val"));
    make_folder(&root.join("c/test"));
    std::fs::remove_file(root.join("c/test/dog/img2.jpeg")).unwrap();
    let s = open_dataset(Some(&root.join("c")), &opts).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (7, 7, 6));

    // plain root + val_dir
    make_folder(&root.join("d"));
    make_folder(&root.join("dval"));
    let with_val = SplitOptions {
        val_dir: Some(root.join("dval")),
        ..Default::default()
    };
    let s = open_dataset(Some(&root.join("d")), &with_val).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (7, 7, 7));

    // plain root, split by val_fraction; val doubles as test
    let tenth = SplitOptions {
        val_fraction: 0.3,
        ..Default::default()
    };
    let s = open_dataset(Some(&root.join("d")), &tenth).unwrap();
    assert_eq!(s.train.len() + s.val.len(), 7);
    assert_eq!(s.val.len(), 2); // round(7 * 0.3)
    assert_eq!(sources(s.val.as_ref()), sources(s.test.as_ref()));
    assert!(
        s.description.contains("doubles as test"),
        "{}",
        s.description
    );
}

// ---------------------------------------------------------------- preprocessing

/// LeNet-5's eval transform: kestrel-models' lenet5 data config (1×32×32, crop_pct 0.875,
/// crop_mode "pad", MNIST mean/std).
fn lenet_mnist() -> EvalTransform {
    EvalTransform::from_model_config(
        (1, 32, 32),
        0.875,
        Interpolation::Bilinear,
        &[0.1307],
        &[0.3081],
        "pad",
    )
    .unwrap()
}

#[test]
fn pad_crop_mode_pads_28_to_32_and_normalises() {
    let p = lenet_mnist();
    assert_eq!(p.output_shape(), Some((1, 32, 32)));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let img = Image::new(28, 28, 1, vec![255; 28 * 28]);
    let chw = p.apply(img, &mut rng).unwrap();
    assert_eq!((chw.channels, chw.height, chw.width), (1, 32, 32));
    let pad_value = (0.0 - 0.1307) / 0.3081;
    let ink = (1.0 - 0.1307) / 0.3081;
    assert!((chw.data[0] - pad_value).abs() < 1e-6);
    assert!((chw.data[2 * 32 + 2] - ink).abs() < 1e-6);
    assert!((chw.data[2 * 32 + 1] - pad_value).abs() < 1e-6);

    // a smaller image is resized to 28×28 too, then padded
    let small = p
        .apply_image(Image::new(16, 16, 1, vec![200; 256]))
        .unwrap();
    assert_eq!((small.height, small.width), (32, 32));
    assert_eq!(small.data[32 + 1], 0);
    assert_eq!(small.data[2 * 32 + 2], 200);
    assert_eq!(small.data[29 * 32 + 29], 200);
    assert_eq!(small.data[30 * 32 + 30], 0);

    // larger and RGB inputs become 28×28 gray first, then are padded
    let rgb = Image::new(56, 40, 3, vec![100; 56 * 40 * 3]);
    let img = p.apply_image(rgb.clone()).unwrap();
    assert_eq!(img.data[32 + 1], 0, "padding");
    assert_eq!(img.data[2 * 32 + 2], 100, "the resized image");
    let chw = p.apply(rgb, &mut rng).unwrap();
    assert_eq!((chw.channels, chw.height, chw.width), (1, 32, 32));
    assert!((chw.data[16 * 32 + 16] - (100.0 / 255.0 - 0.1307) / 0.3081).abs() < 1e-5);
}

#[test]
fn to_channels_uses_pil_luma() {
    let img = Image::new(1, 4, 3, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30]);
    // PIL: convert('L') of (255,0,0) = 76, (0,255,0) = 150, (0,0,255) = 29, (10,200,30) = 124
    assert_eq!(to_channels(img, 1).unwrap().data, vec![76, 150, 29, 124]);
    let gray = Image::new(1, 2, 1, vec![7, 9]);
    assert_eq!(to_channels(gray, 3).unwrap().data, vec![7, 7, 7, 9, 9, 9]);
    assert!(to_channels(Image::zeros(2, 2, 3), 2).is_err());
}

#[test]
fn basic_train_transform_keeps_shape_and_is_seeded() {
    let t = BasicTrainTransform {
        eval: EvalTransform::from_model_config(
            (1, 5, 5),
            1.0,
            Interpolation::Bilinear,
            &[0.0],
            &[1.0],
            "center",
        )
        .unwrap(),
        crop_padding: 2,
        hflip: true,
    };
    let img = Image::new(5, 5, 1, (0..25).map(|v| v as u8 * 10).collect());
    let run = |seed| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        t.apply(img.clone(), &mut rng).unwrap()
    };
    assert_eq!(run(7), run(7));
    let outs: HashSet<Vec<u32>> = (0..40)
        .map(|s| run(s).data.iter().map(|v| v.to_bits()).collect())
        .collect();
    assert!(outs.len() > 10, "crops vary with the seed");
    let o = run(3);
    assert_eq!((o.channels, o.height, o.width), (1, 5, 5));
    // every output value is a pixel of the image or the zero padding
    let allowed: HashSet<u32> = img
        .data
        .iter()
        .map(|&v| (v as f32 / 255.0).to_bits())
        .chain([0f32.to_bits()])
        .collect();
    assert!(o.data.iter().all(|v| allowed.contains(&v.to_bits())));
}

#[test]
fn subset_and_in_memory_views() {
    let ds = Arc::new(
        InMemoryDataset::new(
            (0..12).collect(),
            vec![0, 1, 1],
            (2, 2, 1),
            vec!["a".into(), "b".into()],
            "mem",
        )
        .unwrap(),
    );
    assert_eq!(ds.source(2), "mem#2");
    let sub = Subset::new(ds.clone(), vec![2, 0]).unwrap();
    assert_eq!(sub.len(), 2);
    assert_eq!(sub.get(0).unwrap().image.data, vec![8, 9, 10, 11]);
    assert_eq!(sub.label(1), 0);
    assert_eq!(sub.source(0), "mem#2");
    assert!(Subset::new(ds.clone(), vec![3]).is_err());
    assert!(ds.get(3).is_err());
    assert!(InMemoryDataset::new(vec![0; 4], vec![2], (2, 2, 1), vec!["a".into()], "x").is_err());
}
