//! Pure numeric kernels: slices in, typed results out.
//!
//! Nothing here does I/O or knows about Arrow, polars, TOML or the cache; parallel code
//! reduces in a fixed order so results are bit-identical whatever the thread count.

pub mod distance;
pub mod hdbscan;
pub mod kdtree;
pub mod knn;
pub mod mst;
pub mod nndescent;
pub mod pages;
pub mod pca;
pub mod predict;
pub mod rng;
pub mod search;
pub mod similar;
pub mod umap;
