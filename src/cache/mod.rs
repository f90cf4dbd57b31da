//! The content-addressed cache: keys ([`key`]), the on-disk store ([`store`]), the
//! content hashes of input files with their stat cache ([`files`]), and the file and
//! Parquet helpers they and the ops share ([`io`], a leaf).

pub mod files;
pub mod io;
pub mod key;
pub mod store;

pub use key::KeyParts;
pub use store::{Lookup, Manifest, Store, SWEEP_KEYS};
