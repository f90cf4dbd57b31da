//! The content-addressed cache: keys ([`key`]), the on-disk store ([`store`]) and the
//! content hashes of input files with their stat cache ([`files`]).

pub mod files;
pub mod key;
pub mod store;

pub use key::KeyParts;
pub use store::{Lookup, Manifest, Store};
