//! `synthetic`: the built-in, deterministic, GZ-DESI-like sample.
//!
//! Each row is a galaxy with an `id`, a position, Galaxy Zoo DESI vote fractions (named as
//! in the GZ DESI catalogue) and a `feat_0..feat_{dim-1}` representation standing in for a
//! Zoobot bottleneck. Galaxies are drawn from a 10-dimensional latent space mapped into
//! `dim` dimensions through a fixed random linear map plus a smooth non-linear warp and
//! noise:
//! - featured galaxies form one broad, smooth, anisotropic bulk;
//! - smooth and edge-on galaxies form broad populations beside it (the paper's cut removes
//!   them by their vote fractions);
//! - rare classes (`rare_classes`, fractions of the featured galaxies; about 2% in all by
//!   default) are small dense blobs at the bulk's periphery: what HDBSCAN's leaf clusters
//!   should find;
//! - artifacts (`artifact_fraction` of all rows, `artifact_fraction` vote >= 0.3) come in
//!   `artifact_types` tight, well separated kinds, for the paper's Sec. 4 experiment.
//!
//! `planted_class` records the truth (`bulk:featured`, `rare:ring`, `artifact:ghost`, ...).
//! Like GZ DESI, a question that was likely not asked has a NaN fraction (the edge-on and
//! spiral questions for many smooth galaxies and for some featured ones).
//!
//! Same parameters give bit-identical output at any thread count: class assignment is a
//! seeded shuffle and every row draws from its own random stream.

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use super::{Output, RunCtx};
use crate::error::Result;
use crate::numeric::rng::Rng;
use crate::params::Params;

pub const VERSION: u32 = 1;

const LATENT: usize = 10;
const BLOCK: usize = 2048;

const RARE_NAMES: &[&str] = &[
    "one-armed-spiral",
    "clumpy-barred",
    "shredded",
    "ring",
    "tidal-debris",
    "lens-arc",
    "polar-ring",
    "dust-lane",
    "double-nucleus",
    "blue-nugget",
];
const ARTIFACT_NAMES: &[&str] = &[
    "satellite-trail",
    "bright-star",
    "ghost",
    "bad-columns",
    "cosmic-ray",
    "saturated-core",
];

/// Vote-fraction columns, in output order.
pub const FRACTIONS: &[&str] = &[
    "smooth-or-featured_smooth_fraction",
    "smooth-or-featured_featured-or-disk_fraction",
    "smooth-or-featured_artifact_fraction",
    "disk-edge-on_yes_fraction",
    "disk-edge-on_no_fraction",
    "has-spiral-arms_yes_fraction",
    "has-spiral-arms_no_fraction",
    "bar_strong_fraction",
    "bar_weak_fraction",
    "bar_no_fraction",
];
const NSCALAR: usize = 2 + 10; // ra, dec, fractions

#[derive(Clone, Debug, Serialize)]
pub struct Synthetic {
    pub n: u64,
    pub dim: u32,
    pub seed: u64,
    pub smooth_fraction: f64,
    pub edge_on_fraction: f64,
    pub artifact_fraction: f64,
    pub rare_classes: Vec<f64>,
    pub artifact_types: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Featured,
    Smooth,
    EdgeOn,
    Rare(usize),
    Artifact(usize),
}

struct Class {
    name: String,
    kind: Kind,
    count: u64,
    centre: [f64; LATENT],
    sd: [f64; LATENT],
}

/// The fixed random geometry of one seed: class centres and the latent → feature map.
struct Geometry {
    classes: Vec<Class>,
    /// dim × LATENT linear map, row-major.
    a: Vec<f64>,
    /// dim × LATENT warp frequencies, row-major.
    b: Vec<f64>,
    noise: f64,
}

fn unit(r: &mut Rng) -> [f64; LATENT] {
    let mut v = [0.0; LATENT];
    v.iter_mut().for_each(|x| *x = r.normal());
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn scaled(u: [f64; LATENT], r: f64) -> [f64; LATENT] {
    u.map(|x| x * r)
}

impl Synthetic {
    pub fn parse(p: &mut Params) -> Result<Self> {
        let n = p.int_in("n", Some(100_000), 10, 100_000_000)? as u64;
        let dim = p.int_in("dim", Some(128), 2, 8192)? as u32;
        let seed = p.int_in("seed", Some(0), 0, i64::MAX)? as u64;
        let smooth_fraction = p.float_in("smooth_fraction", 0.35, 0.0, 0.95)?;
        let edge_on_fraction = p.float_in("edge_on_fraction", 0.10, 0.0, 0.95)?;
        let artifact_fraction = p.float_in("artifact_fraction", 0.05, 0.0, 0.95)?;
        if smooth_fraction + edge_on_fraction + artifact_fraction > 0.95 {
            return Err(p.error("smooth_fraction", "smooth_fraction + edge_on_fraction + artifact_fraction must leave at least 5% featured galaxies"));
        }
        let rare_classes = p
            .floats("rare_classes")?
            .unwrap_or_else(|| vec![0.005, 0.004, 0.0035, 0.003, 0.0025, 0.002]);
        if rare_classes.iter().any(|&f| !(0.0..=0.5).contains(&f))
            || rare_classes.iter().sum::<f64>() > 0.5
        {
            return Err(p.error(
                "rare_classes",
                "each fraction must be in [0, 0.5] and they must sum to at most 0.5",
            ));
        }
        let artifact_types = p.int_in("artifact_types", Some(4), 1, 64)? as u32;
        Ok(Synthetic {
            n,
            dim,
            seed,
            smooth_fraction,
            edge_on_fraction,
            artifact_fraction,
            rare_classes,
            artifact_types,
        })
    }

    pub fn schema(&self, id: &str) -> Schema {
        let mut s = Schema::default();
        s.insert(id.into(), DataType::Int64);
        s.insert("ra".into(), DataType::Float64);
        s.insert("dec".into(), DataType::Float64);
        for f in FRACTIONS {
            s.insert((*f).into(), DataType::Float64);
        }
        s.insert("planted_class".into(), DataType::String);
        for j in 0..self.dim {
            s.insert(format!("feat_{j}").into(), DataType::Float32);
        }
        s
    }

    fn geometry(&self) -> Geometry {
        let n = self.n as f64;
        let count = |f: f64| (n * f).round() as u64;
        let (n_smooth, n_edge, n_art) = (
            count(self.smooth_fraction),
            count(self.edge_on_fraction),
            count(self.artifact_fraction),
        );
        let n_feat = self.n - n_smooth - n_edge - n_art;
        let mut g = Rng::new(self.seed, crate::numeric::rng::stream::SAMPLE_MAPS);
        let bulk_sd: [f64; LATENT] = [1.6, 1.35, 1.15, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let mut classes = Vec::new();
        let mut rare_total = 0;
        for (i, f) in self.rare_classes.iter().enumerate() {
            let c = (n_feat as f64 * f).round() as u64;
            rare_total += c;
            let name = RARE_NAMES
                .get(i)
                .map_or_else(|| format!("rare:rare-{i}"), |s| format!("rare:{s}"));
            let centre = scaled(unit(&mut g), 2.4 + 0.5 * g.uniform());
            classes.push(Class {
                name,
                kind: Kind::Rare(i),
                count: c,
                centre,
                sd: [0.12; LATENT],
            });
        }
        classes.insert(
            0,
            Class {
                name: "bulk:featured".into(),
                kind: Kind::Featured,
                count: n_feat - rare_total,
                centre: [0.0; LATENT],
                sd: bulk_sd,
            },
        );
        classes.push(Class {
            name: "bulk:smooth".into(),
            kind: Kind::Smooth,
            count: n_smooth,
            centre: scaled(unit(&mut g), 2.5),
            sd: bulk_sd.map(|s| 0.6 * s),
        });
        classes.push(Class {
            name: "bulk:edge-on".into(),
            kind: Kind::EdgeOn,
            count: n_edge,
            centre: scaled(unit(&mut g), 2.5),
            sd: bulk_sd.map(|s| 0.5 * s),
        });
        let types = self.artifact_types as u64;
        for j in 0..types {
            let c = n_art / types + u64::from(j < n_art % types);
            let name = ARTIFACT_NAMES.get(j as usize).map_or_else(
                || format!("artifact:artifact-{j}"),
                |s| format!("artifact:{s}"),
            );
            let centre = scaled(unit(&mut g), 5.0 + g.uniform());
            classes.push(Class {
                name,
                kind: Kind::Artifact(j as usize),
                count: c,
                centre,
                sd: [0.18; LATENT],
            });
        }
        let d = self.dim as usize;
        let scale = 1.0 / (LATENT as f64).sqrt();
        let a = (0..d * LATENT).map(|_| g.normal() * scale).collect();
        let b = (0..d * LATENT).map(|_| g.normal() * 0.6 * scale).collect();
        Geometry {
            classes,
            a,
            b,
            noise: 0.08,
        }
    }

    pub fn run(&self, ctx: &RunCtx) -> Result<Output> {
        let geo = self.geometry();
        let n = self.n as usize;
        let d = self.dim as usize;
        // Exact class sizes, shuffled over rows by a seeded permutation.
        let mut labels: Vec<u16> = Vec::with_capacity(n);
        for (ci, c) in geo.classes.iter().enumerate() {
            labels.extend(std::iter::repeat_n(ci as u16, c.count as usize));
        }
        Rng::new(self.seed, crate::numeric::rng::stream::SAMPLE_SHUFFLE).shuffle(&mut labels);

        let bar = ctx.progress.bar(ctx.node, "generating", n as u64);
        let mut feats = vec![0f32; n * d];
        let mut scalars = vec![0f64; n * NSCALAR];
        feats
            .par_chunks_mut(BLOCK * d)
            .zip(scalars.par_chunks_mut(BLOCK * NSCALAR))
            .enumerate()
            .for_each(|(b, (fb, sb))| {
                let rows = fb.len() / d;
                for r in 0..rows {
                    let i = b * BLOCK + r;
                    let class = &geo.classes[labels[i] as usize];
                    let mut rng = Rng::new(
                        self.seed,
                        crate::numeric::rng::stream::SAMPLE_ROWS + i as u64,
                    );
                    row(
                        &geo,
                        class,
                        &mut rng,
                        &mut fb[r * d..(r + 1) * d],
                        &mut sb[r * NSCALAR..(r + 1) * NSCALAR],
                    );
                }
                bar.inc(rows as u64);
            });
        bar.finish();

        let id = ctx.id;
        let mut cols: Vec<Column> = Vec::with_capacity(4 + FRACTIONS.len() + d);
        cols.push(Column::new(id.into(), (0..n as i64).collect::<Vec<i64>>()));
        let scalar_names = ["ra", "dec"].into_iter().chain(FRACTIONS.iter().copied());
        for (k, name) in scalar_names.enumerate() {
            let v: Vec<f64> = (0..n).map(|i| scalars[i * NSCALAR + k]).collect();
            cols.push(Column::new(name.into(), v));
        }
        let names: Vec<&str> = labels
            .iter()
            .map(|&l| geo.classes[l as usize].name.as_str())
            .collect();
        cols.push(Column::new("planted_class".into(), names));
        let feat_cols: Vec<Column> = (0..d)
            .into_par_iter()
            .map(|j| {
                Column::new(
                    format!("feat_{j}").into(),
                    (0..n).map(|i| feats[i * d + j]).collect::<Vec<f32>>(),
                )
            })
            .collect();
        cols.extend(feat_cols);
        let df = DataFrame::new(n, cols).map_err(super::pl(ctx.node))?;
        let mut summary = vec![format!(
            "{n} galaxies, {d}-d representation, seed {}",
            self.seed
        )];
        let sizes: Vec<String> = geo
            .classes
            .iter()
            .filter(|c| !matches!(c.kind, Kind::Featured))
            .map(|c| format!("{} {}", c.name, c.count))
            .collect();
        summary.push(format!("planted: {}", sizes.join(", ")));
        Ok(Output::new(df, summary))
    }
}

/// Fill one galaxy: its feature vector and its scalar columns (ra, dec, fractions).
fn row(geo: &Geometry, class: &Class, rng: &mut Rng, feat: &mut [f32], sc: &mut [f64]) {
    let mut z = [0f64; LATENT];
    for (k, zk) in z.iter_mut().enumerate() {
        *zk = class.centre[k] + class.sd[k] * rng.normal();
    }
    for (j, f) in feat.iter_mut().enumerate() {
        let a = &geo.a[j * LATENT..(j + 1) * LATENT];
        let b = &geo.b[j * LATENT..(j + 1) * LATENT];
        let lin: f64 = a.iter().zip(&z).map(|(x, y)| x * y).sum();
        let arg: f64 = b.iter().zip(&z).map(|(x, y)| x * y).sum();
        *f = (lin + 0.5 * arg.sin() + geo.noise * rng.normal()) as f32;
    }
    sc[0] = rng.range(0.0, 360.0);
    sc[1] = (rng.range(-1.0, 1.0)).asin().to_degrees();
    let nan = f64::NAN;
    let (smooth, artifact, edge_yes, asked) = match class.kind {
        Kind::Featured | Kind::Rare(_) => {
            let s = rng.range(0.02, 0.48);
            let a = rng.range(0.0, 0.12) * (1.0 - s);
            // A few featured galaxies were never asked the edge-on question.
            let asked = rng.uniform() > 0.015;
            (s, a, rng.range(0.0, 0.28), asked)
        }
        Kind::Smooth => {
            let s = rng.range(0.5, 0.98);
            (
                s,
                rng.range(0.0, 0.1) * (1.0 - s),
                rng.range(0.0, 0.5),
                rng.uniform() > 0.6,
            )
        }
        Kind::EdgeOn => {
            let s = rng.range(0.05, 0.48);
            (
                s,
                rng.range(0.0, 0.1) * (1.0 - s),
                rng.range(0.3, 0.98),
                true,
            )
        }
        Kind::Artifact(_) => {
            let a = rng.range(0.3, 0.9);
            (
                rng.range(0.0, 1.0 - a),
                a,
                rng.range(0.0, 1.0),
                rng.uniform() > 0.5,
            )
        }
    };
    sc[2] = smooth;
    sc[3] = 1.0 - smooth - artifact;
    sc[4] = artifact;
    let spiral_yes = match class.kind {
        Kind::Rare(0) => rng.range(0.8, 1.0),
        _ => rng.range(0.05, 0.95),
    };
    let bar_strong = match class.kind {
        Kind::Rare(1) => rng.range(0.5, 0.9),
        _ => rng.range(0.0, 0.3),
    };
    let bar_weak = rng.range(0.0, 1.0 - bar_strong);
    if asked {
        sc[5] = edge_yes;
        sc[6] = 1.0 - edge_yes;
        sc[7] = spiral_yes;
        sc[8] = 1.0 - spiral_yes;
        sc[9] = bar_strong;
        sc[10] = bar_weak;
        sc[11] = 1.0 - bar_strong - bar_weak;
    } else {
        sc[5..12].iter_mut().for_each(|v| *v = nan);
    }
}

impl super::Kind for Synthetic {
    super::kind_basics!("synthetic", Exactly(0));

    fn output_schema(
        &self,
        _inputs: &[SchemaRef],
        id: &str,
    ) -> Result<super::SchemaResult<Schema>> {
        // The sample makes its own id column: it cannot also be one of the others.
        if self.schema("\u{0}id").contains(id) {
            return Ok(Err(super::SchemaError::new(
                "op",
                format!("the pipeline's id column `{id}` is one of the built-in sample's own columns: give `[pipeline] id` another name (e.g. `id`)"),
            )));
        }
        Ok(Ok(self.schema(id)))
    }

    fn compute(&self, _inputs: &[std::sync::Arc<DataFrame>], ctx: &RunCtx) -> Result<Output> {
        self.run(ctx)
    }
}

impl super::Parse for Synthetic {
    const NAMES: &'static [&'static str] = &["synthetic"];

    fn parse(
        _name: &str,
        p: &mut crate::params::Params,
        _base_dir: &std::path::Path,
    ) -> Result<Self> {
        Self::parse(p)
    }
}
