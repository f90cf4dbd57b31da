//! dagrun: declarative, content-addressed pipelines for finding rare galaxy classes in the
//! representations of galaxy foundation models.
//!
//! Read top-down, the modules follow the data: [`spec`] turns a pipeline file into a
//! validated [`spec::Pipeline`]; [`dag`] orders its nodes; [`exec`] runs each node against
//! the [`cache`], calling [`ops`], whose numeric work lives in [`numeric`]. Only [`cli`]
//! prints; [`sweep`] runs a pipeline over a parameter grid and [`render`] draws what
//! reports show. See ARCHITECTURE.md for the invariants.

pub mod cache;
pub mod cli;
pub mod dag;
pub mod error;
pub mod exec;
pub mod labels;
pub mod numeric;
pub mod onnx;
pub mod ops;
pub mod params;
pub mod progress;
pub mod render;
pub mod serve;
pub mod slurm;
pub mod spec;
pub mod sweep;
