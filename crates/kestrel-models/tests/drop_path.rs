//! `layers::drop_path`, the one stochastic-depth implementation every family uses (ConvNeXt,
//! MobileNet, EfficientNet, RegNet): active on autodiff devices only, whole samples at a time.
//! That each family still learns with it switched on is checked in train_every_family.rs.

use kestrel_models::burn::prelude::*;
use kestrel_models::layers::drop_path;

#[test]
fn drop_path_drops_whole_samples_while_training_only() {
    let plain = Device::flex();
    let x = Tensor::<4>::ones([256, 2, 3, 3], &plain);
    let y: Vec<f32> = drop_path(x.clone(), 0.5)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(y.iter().all(|&v| v == 1.0), "identity off autodiff");

    let train = Device::flex().autodiff();
    let x = Tensor::<4>::ones([256, 2, 3, 3], &train);
    let y: Vec<f32> = drop_path(x, 0.5).into_data().try_to_vec::<f32>().unwrap();
    // Each sample is all 0 or all 2 (= 1 / keep).
    let mut dropped = 0;
    for sample in y.chunks(18) {
        assert!(sample.iter().all(|&v| v == sample[0]));
        assert!(sample[0] == 0.0 || sample[0] == 2.0, "{}", sample[0]);
        dropped += (sample[0] == 0.0) as usize;
    }
    assert!((64..192).contains(&dropped), "dropped {dropped} of 256");
}
