//! dagrun's one integration-test binary: it drives the built `dagrun` executable through a
//! small builder ([`Test`]) and checks what users rely on — incrementality, kill safety,
//! corruption recovery, concurrent processes, and clear errors for bad input.

mod assign;
mod browser;
mod cache;
mod embed;
mod errors;
mod hdbscan;
mod http;
mod incremental;
mod onnx_model;
mod ops;
mod report;
mod serve;
mod similar;
mod slurm;
mod support;
mod sweep;
mod tidy;
mod umap;
