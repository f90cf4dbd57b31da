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

/// Types whose every bit pattern is a value and that have no padding, so a slice of them
/// can be read as bytes ([`as_bytes`]): to hash it or write it out.
///
/// # Safety
/// Implement only for such types.
pub(crate) unsafe trait Plain: Copy {}
// SAFETY: primitive numbers.
unsafe impl Plain for f32 {}
unsafe impl Plain for u32 {}
unsafe impl Plain for u64 {}

/// The bytes of `v` (native order), without a copy.
pub(crate) fn as_bytes<T: Plain>(v: &[T]) -> &[u8] {
    // SAFETY: `T: Plain` has no padding, so every byte is initialised.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}
