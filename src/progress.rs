//! How long-running work reports progress without printing: ops ask for a [`Progress`]
//! handle; the CLI decides whether that is an indicatif bar, nothing at all, or a test log.

/// A counter for one long step of one node.
pub trait Progress: Send + Sync {
    fn inc(&self, n: u64);
    fn finish(&self) {}
}

/// Makes progress handles; implemented by the CLI's observer.
pub trait ProgressFactory: Sync {
    fn bar(&self, node: &str, what: &str, total: u64) -> Box<dyn Progress>;
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn inc(&self, _: u64) {}
}

impl ProgressFactory for Silent {
    fn bar(&self, _: &str, _: &str, _: u64) -> Box<dyn Progress> {
        Box::new(Silent)
    }
}
