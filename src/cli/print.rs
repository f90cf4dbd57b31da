//! What the command line shows while it works: node lines and progress bars on stderr.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{Event, Observer, Status};
use crate::progress::{Progress, ProgressFactory};

/// Prints node lines and draws progress bars on stderr.
pub struct Printer {
    pub bars: MultiProgress,
    quiet: bool,
    verbose: u8,
}

impl Printer {
    pub fn new(quiet: bool, verbose: u8) -> Self {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Printer {
            bars: MultiProgress::with_draw_target(target),
            quiet,
            verbose,
        }
    }

    pub fn line(&self, s: &str) {
        if !self.quiet {
            self.bars.suspend(|| eprintln!("{s}"));
        }
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl ProgressFactory for Printer {
    fn bar(&self, node: &str, what: &str, total: u64) -> Box<dyn Progress> {
        let pb = self.bars.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(node.to_owned());
        pb.set_message(what.to_owned());
        Box::new(Bar(pb))
    }
}

impl Observer for Printer {
    fn event(&self, e: Event) {
        match e {
            Event::Start { .. } => {}
            Event::Corrupt { node, key, reason } => self.line(&format!(
                "warning: node `{node}`: cache entry {} is corrupt ({reason}); recomputing",
                &key[..12]
            )),
            Event::Waiting { node } => self.line(&format!(
                "{:>9}  {node}: another dagrun process is computing it",
                "waiting"
            )),
            Event::Job { node, job, state } => self.line(&format!(
                "{:>9}  {node:<14} slurm job {job} {state}",
                "slurm"
            )),
            Event::Done(r) => {
                let status = match r.status {
                    Status::Computed => "computed",
                    Status::Cached => "cached",
                };
                self.line(&format!(
                    "{status:>9}  {:<14} {:<10} {:>10} rows {:>8.2}s  {}",
                    r.name,
                    r.op,
                    r.rows,
                    r.seconds,
                    &r.key[..12]
                ));
                if r.status == Status::Computed || self.verbose > 0 {
                    for s in &r.summary {
                        self.line(&format!("{:>9}  {:<14} {s}", "", ""));
                    }
                }
            }
        }
    }
}
