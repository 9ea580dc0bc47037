//! The batch loader: determinism across thread counts, epochs, drop_last, samplers, skipping.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use kestrel_data::*;
use rand::SeedableRng;

/// `n` 4×4 gray images; every pixel of image `i` is `i % 256`; label `i % classes`.
fn synthetic(n: usize, classes: usize) -> Arc<dyn Dataset> {
    let images: Vec<u8> = (0..n)
        .flat_map(|i| std::iter::repeat_n((i % 256) as u8, 16))
        .collect();
    let labels = (0..n).map(|i| i % classes).collect();
    let names = (0..classes).map(|c| format!("c{c}")).collect();
    Arc::new(InMemoryDataset::new(images, labels, (4, 4, 1), names, "synthetic").unwrap())
}

/// `x / 255` of any image, declaring no output shape (the loader's per-sample path).
struct AnyShape;

impl SampleTransform for AnyShape {
    fn apply(&self, image: Image, _rng: &mut rand::rngs::StdRng) -> Result<Chw, DataError> {
        transforms::to_tensor(&image)
    }
    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        None
    }
}

fn identity() -> Arc<dyn SampleTransform> {
    Arc::new(AnyShape)
}

/// `x / 255` of a `channels`×`h`×`w` image (its eval transform changes nothing).
fn eval_identity(channels: usize, h: usize, w: usize) -> EvalTransform {
    let mean = vec![0.0; channels];
    let std = vec![1.0; channels];
    EvalTransform::from_model_config(
        (channels, h, w),
        1.0,
        Interpolation::Bilinear,
        &mean,
        &std,
        "center",
    )
    .unwrap()
}

fn random_crop() -> Arc<dyn SampleTransform> {
    Arc::new(BasicTrainTransform {
        eval: eval_identity(1, 4, 4),
        crop_padding: 1,
        hflip: true,
    })
}

fn collect(loader: &Loader, epoch: usize) -> Vec<Batch> {
    loader.iter_epoch(epoch).map(|b| b.unwrap()).collect()
}

fn cfg(batch_size: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        ..Default::default()
    }
}

#[test]
fn sequential_batches_hold_the_transformed_samples_in_nchw() {
    let ds = synthetic(10, 3);
    let loader = Loader::new(ds.clone(), identity(), cfg(4)).unwrap();
    assert_eq!(loader.num_batches(), 3);
    let batches = collect(&loader, 0);
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].shape, [4, 1, 4, 4]);
    assert_eq!(batches[2].shape, [2, 1, 4, 4]);
    assert_eq!(batches[0].indices, vec![0, 1, 2, 3]);
    assert_eq!(batches[0].labels, vec![0, 1, 2, 0]);
    assert_eq!(batches[1].images.len(), 4 * 16);
    assert_eq!(batches[1].images[16], 5.0 / 255.0); // sample 5, first pixel
    assert_eq!(batches[1].images[63], 7.0 / 255.0);
}

#[test]
fn same_batches_for_any_worker_count() {
    let ds = synthetic(53, 5);
    let run = |workers: usize| {
        let c = LoaderConfig {
            batch_size: 8,
            shuffle: true,
            seed: 42,
            num_workers: workers,
            ..Default::default()
        };
        let loader = Loader::new(ds.clone(), random_crop(), c).unwrap();
        (collect(&loader, 0), collect(&loader, 1))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(0)); // rayon's global pool
    assert_eq!(one, run(4));
}

#[test]
fn epochs_shuffle_differently_and_reproducibly() {
    let ds = synthetic(100, 10);
    let c = LoaderConfig {
        batch_size: 10,
        shuffle: true,
        seed: 7,
        ..Default::default()
    };
    let loader = Loader::new(ds.clone(), identity(), c.clone()).unwrap();
    let order = |l: &Loader, e| {
        collect(l, e)
            .into_iter()
            .flat_map(|b| b.indices)
            .collect::<Vec<_>>()
    };
    let e0 = order(&loader, 0);
    let e1 = order(&loader, 1);
    assert_ne!(e0, e1);
    assert_ne!(e0, (0..100).collect::<Vec<_>>());
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "a permutation");
    assert_eq!(e0, order(&loader, 0), "same epoch, same order");
    assert_eq!(e0, loader.epoch_order(0));
    let other_seed = Loader::new(ds, identity(), LoaderConfig { seed: 8, ..c }).unwrap();
    assert_ne!(e0, order(&other_seed, 0));
}

#[test]
fn per_sample_randomness_depends_on_epoch_not_threads() {
    let ds = synthetic(16, 2);
    let c = LoaderConfig {
        batch_size: 16,
        seed: 1,
        num_workers: 2,
        ..Default::default()
    };
    let loader = Loader::new(ds, random_crop(), c).unwrap();
    let a = collect(&loader, 0);
    let b = collect(&loader, 1);
    assert_eq!(a[0].indices, b[0].indices, "sequential order");
    assert_ne!(a[0].images, b[0].images, "augmentation redrawn each epoch");
}

#[test]
fn drop_last_drops_the_short_batch() {
    let ds = synthetic(103, 10);
    let keep = Loader::new(ds.clone(), identity(), cfg(10)).unwrap();
    assert_eq!(keep.num_batches(), 11);
    let b = collect(&keep, 0);
    assert_eq!(b.len(), 11);
    assert_eq!(b[10].shape[0], 3);
    let drop = Loader::new(
        ds,
        identity(),
        LoaderConfig {
            drop_last: true,
            ..cfg(10)
        },
    )
    .unwrap();
    assert_eq!(drop.num_batches(), 10);
    let b = collect(&drop, 0);
    assert_eq!(b.len(), 10);
    assert!(b.iter().all(|b| b.shape[0] == 10));
}

#[test]
fn class_balanced_sampler_evens_out_classes() {
    // 90 samples of class 0, 10 of class 1
    let images = vec![0u8; 100 * 16];
    let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 90)).collect();
    let ds: Arc<dyn Dataset> = Arc::new(
        InMemoryDataset::new(
            images,
            labels,
            (4, 4, 1),
            vec!["a".into(), "b".into()],
            "imb",
        )
        .unwrap(),
    );
    let c = LoaderConfig {
        batch_size: 50,
        sampler: Sampler::ClassBalanced,
        ..Default::default()
    };
    let loader = Loader::new(ds, identity(), c).unwrap();
    let mut minority = 0;
    let mut total = 0;
    for e in 0..20 {
        for b in collect(&loader, e) {
            minority += b.labels.iter().filter(|&&l| l == 1).count();
            total += b.len();
        }
    }
    assert_eq!(total, 2000, "epoch length = dataset length");
    let share = minority as f64 / total as f64;
    assert!((share - 0.5).abs() < 0.05, "minority share {share}");
    assert_eq!(loader.epoch_order(3), loader.epoch_order(3));
    assert_ne!(loader.epoch_order(3), loader.epoch_order(4));
}

/// Fails on every index divisible by 5, as a corrupt file would.
struct Flaky(Arc<dyn Dataset>);

impl Dataset for Flaky {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, index: usize) -> kestrel_data::error::Result<Sample> {
        if index.is_multiple_of(5) {
            Err(DataError::Decode {
                path: PathBuf::from(format!("/data/bad{index}.png")),
                reason: "corrupt".into(),
            })
        } else {
            self.0.get(index)
        }
    }
    fn label(&self, index: usize) -> usize {
        self.0.label(index)
    }
    fn class_names(&self) -> &[String] {
        self.0.class_names()
    }
    fn source(&self, index: usize) -> String {
        format!("/data/bad{index}.png")
    }
}

/// Like `identity`, but it declares its output shape, so the loader takes the path that writes
/// samples straight into the batch buffer.
fn identity_fixed_shape() -> Arc<dyn SampleTransform> {
    Arc::new(eval_identity(1, 4, 4))
}

#[test]
fn skipped_samples_leave_no_gap_in_the_batch() {
    for transform in [identity(), identity_fixed_shape()] {
        let ds: Arc<dyn Dataset> = Arc::new(Flaky(synthetic(23, 2)));
        let c = LoaderConfig {
            batch_size: 5,
            skip_bad_images: true,
            num_workers: 2,
            ..Default::default()
        };
        let loader = Loader::new(ds, transform, c).unwrap();
        for b in collect(&loader, 0) {
            assert_eq!(b.images.len(), b.len() * 16);
            for (k, &i) in b.indices.iter().enumerate() {
                let want = (i % 256) as f32 / 255.0;
                let got = &b.images[k * 16..(k + 1) * 16];
                assert!(
                    got.iter().all(|&v| v == want),
                    "sample {i} at slot {k}: {got:?}"
                );
            }
        }
    }
}

#[test]
fn skip_bad_images_drops_and_counts_failures() {
    let ds: Arc<dyn Dataset> = Arc::new(Flaky(synthetic(23, 2)));
    let c = LoaderConfig {
        batch_size: 5,
        skip_bad_images: true,
        num_workers: 2,
        ..Default::default()
    };
    let loader = Loader::new(ds.clone(), identity(), c).unwrap();
    let batches = collect(&loader, 0);
    assert_eq!(batches.len(), 5);
    assert!(batches.iter().all(|b| b.indices.iter().all(|i| i % 5 != 0)));
    assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 23 - 5);
    assert_eq!(batches[0].shape, [4, 1, 4, 4]);
    assert_eq!(loader.skipped(), 5);
    collect(&loader, 1);
    assert_eq!(loader.skipped(), 10, "counted again in the next epoch");
    assert_eq!(loader.skipped_sources().len(), 5);
    assert!(loader
        .skipped_sources()
        .contains(&"/data/bad20.png".to_string()));
}

#[test]
fn without_skipping_the_error_names_the_file_and_ends_the_epoch() {
    let ds: Arc<dyn Dataset> = Arc::new(Flaky(synthetic(23, 2)));
    let loader = Loader::new(ds, identity(), cfg(4)).unwrap();
    let mut it = loader.iter_epoch(0);
    let first = it.next().unwrap();
    let err = first.unwrap_err().to_string();
    assert!(err.contains("/data/bad0.png"), "{err}");
    assert!(it.next().is_none(), "the epoch stops after the error");
    assert_eq!(loader.skipped(), 0);
}

#[test]
fn a_whole_bad_batch_is_not_yielded() {
    let ds: Arc<dyn Dataset> = Arc::new(Flaky(synthetic(11, 2)));
    let c = LoaderConfig {
        batch_size: 1,
        skip_bad_images: true,
        ..Default::default()
    };
    let loader = Loader::new(ds, identity(), c).unwrap();
    let b = collect(&loader, 0);
    assert_eq!(b.len(), 11 - 3); // indices 0, 5, 10 fail
    assert_eq!(loader.skipped(), 3);
}

#[test]
fn dropping_the_iterator_early_stops_the_producer() {
    let ds = synthetic(1000, 10);
    let c = LoaderConfig {
        batch_size: 2,
        prefetch_batches: 1,
        ..Default::default()
    };
    let loader = Loader::new(ds, identity(), c).unwrap();
    for _ in 0..3 {
        let mut it = loader.iter_epoch(0);
        assert!(it.next().unwrap().is_ok());
        drop(it); // must not hang
    }
    let zero = Loader::new(
        synthetic(9, 3),
        identity(),
        LoaderConfig {
            batch_size: 2,
            prefetch_batches: 0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(collect(&zero, 0).len(), 5);
}

#[test]
fn loader_reads_an_image_folder_and_counts_corrupt_files() {
    let tmp = tempfile::tempdir().unwrap();
    for (class, n) in [("a", 3), ("b", 2)] {
        std::fs::create_dir_all(tmp.path().join(class)).unwrap();
        for i in 0..n {
            ::image::RgbImage::from_pixel(10, 7, ::image::Rgb([i * 40, 0, 0]))
                .save(tmp.path().join(format!("{class}/{i}.png")))
                .unwrap();
        }
    }
    let bad = tmp.path().join("b/zz-corrupt.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let ds: Arc<dyn Dataset> = Arc::new(ImageFolder::open(tmp.path(), false).unwrap());
    let t: Arc<dyn SampleTransform> = Arc::new(
        EvalTransform::from_model_config(
            (3, 8, 8),
            1.0,
            Interpolation::Bilinear,
            &[0.5; 3],
            &[0.5; 3],
            "squash",
        )
        .unwrap(),
    );
    let c = LoaderConfig {
        batch_size: 4,
        skip_bad_images: true,
        ..Default::default()
    };
    let loader = Loader::new(ds.clone(), t.clone(), c).unwrap();
    let batches = collect(&loader, 0);
    assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 5);
    assert_eq!(batches[0].shape, [4, 3, 8, 8]);
    assert_eq!(loader.skipped(), 1);
    assert_eq!(loader.skipped_sources(), vec![bad.display().to_string()]);

    let strict = Loader::new(ds, t, cfg(4)).unwrap();
    let results: Vec<_> = strict.iter_epoch(0).collect();
    let err = results.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

#[test]
fn batch_matches_applying_the_transform_by_hand() {
    let ds = synthetic(12, 3);
    let t = random_crop();
    let c = LoaderConfig {
        batch_size: 12,
        shuffle: true,
        seed: 5,
        num_workers: 3,
        ..Default::default()
    };
    let loader = Loader::new(ds.clone(), t.clone(), c).unwrap();
    let b = &collect(&loader, 2)[0];
    let distinct: HashSet<usize> = b.indices.iter().copied().collect();
    assert_eq!(distinct.len(), 12);
    // every sample's pixels come from its own image (value index/255) or the zero padding
    for (k, &i) in b.indices.iter().enumerate() {
        let v = i as f32 / 255.0;
        let plane = &b.images[k * 16..(k + 1) * 16];
        assert!(plane.iter().all(|&x| x == v || x == 0.0), "sample {i}");
        assert_eq!(b.labels[k], i % 3);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    assert!(t.apply(ds.get(0).unwrap().image, &mut rng).is_ok());
}

/// A transform that promises 1×4×4 samples but returns 1×2×2 for odd indices' images
/// (pixel value odd): a transform bug, not a bad file.
struct BrokenPromise;

impl SampleTransform for BrokenPromise {
    fn apply(&self, image: Image, _rng: &mut rand::rngs::StdRng) -> Result<Chw, DataError> {
        let side = if image.data[0] % 2 == 1 { 2 } else { 4 };
        Ok(Chw {
            channels: 1,
            height: side,
            width: side,
            data: vec![0.0; side * side],
        })
    }
    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        Some((1, 4, 4))
    }
}

#[test]
fn a_sample_that_breaks_the_declared_shape_is_an_error_even_when_skipping() {
    for skip_bad_images in [false, true] {
        let c = LoaderConfig {
            batch_size: 4,
            skip_bad_images,
            ..Default::default()
        };
        let loader = Loader::new(synthetic(8, 2), Arc::new(BrokenPromise), c).unwrap();
        let err = loader
            .iter_epoch(0)
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(err.contains("1x2x2") && err.contains("1x4x4"), "{err}");
        assert!(err.contains("synthetic"), "names the sample: {err}");
        assert_eq!(loader.skipped(), 0);
    }
}
