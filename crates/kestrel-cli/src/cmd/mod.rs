pub mod common;
pub mod eval;
pub mod models;
pub mod predict;
pub mod train;
