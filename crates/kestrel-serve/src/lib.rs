//! kestrel-serve: serving a model over HTTP (`kestrel serve`) and choosing one by measuring the
//! candidates on this machine (`kestrel recommend`).
//!
//! - [`server`]: the axum/tokio server with dynamic batching, limits and graceful shutdown.
//! - [`metrics`]: its Prometheus metrics.
//! - [`page`]: the web page at `/`.
//! - [`recommend`]: measuring candidates, joining published top-1, the Pareto front and pick.

pub mod metrics;
pub mod page;
pub mod recommend;
pub mod server;

pub use server::{ServeError, ServeOptions, Server};
