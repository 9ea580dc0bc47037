//! Augmentation: the AutoAugment / RandAugment / TrivialAugment policies and their policy-string
//! parsers (`policies`), batch-level Mixup/CutMix (`mixup`), and the recipes that select
//! transforms by name (`recipe`).

pub mod mixup;
pub mod policies;
pub mod recipe;

pub use policies::*;
