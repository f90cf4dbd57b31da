//! `dagrun serve`: the explorer. One process runs (or finds cached) the nodes a page needs —
//! a classes node, the catalogue, a 2-D layout and the representation's vectors — keeps
//! them in memory (the vectors by memory map) and serves a single-page app on localhost:
//! the layout coloured by class, galleries, similar galaxies, re-ranking against
//! counter-examples, and labels written to an append-only log (see [`crate::labels`]).
//!
//! [`state`] builds everything a request reads before the socket is bound ([`state::App`]);
//! [`api`] is the HTTP face: thin handlers (parse, call the state, JSON), the token and
//! Origin guard, and the embedded assets. Nothing here prints: the CLI is told the URL.

pub mod api;
pub mod state;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::error::{Error, Result};

/// What `dagrun serve` was asked for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// A report node (classes, catalogue, layout are its inputs) or a select node.
    pub node: Option<String>,
    /// The 2-D layout (needed with a select node whose pipeline has several).
    pub layout: Option<String>,
    /// The node whose representation `similar` searches [default: the catalogue].
    pub features: Option<String>,
    /// The label log [default: `PIPELINE.labels.jsonl` beside the pipeline file].
    pub labels: Option<std::path::PathBuf>,
    pub host: String,
    pub port: u16,
    /// A token every request must carry; [`token_for`] makes one where the host needs it.
    pub token: Option<String>,
}

/// The token a server on `host` uses: the one given, else a fresh random one unless the
/// host is a loopback address (as Jupyter does).
pub fn token_for(host: IpAddr, given: Option<String>) -> Result<Option<String>> {
    if given.is_some() || host.is_loopback() {
        return Ok(given);
    }
    let mut bytes = [0u8; 24];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("cannot read random bytes from", "/dev/urandom", e))?;
    Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

/// Parse `--host`.
pub fn host(s: &str) -> Result<IpAddr> {
    match s {
        "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        _ => s.parse().map_err(|_| {
            Error::Usage(format!(
                "`--host {s}`: give an IP address such as 127.0.0.1 (the default) or 0.0.0.0"
            ))
        }),
    }
}

/// Bind, tell `ready` the URL to open, and serve until Ctrl-C or SIGTERM.
pub fn run(app: state::App, addr: SocketAddr, ready: impl FnOnce(&str)) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dagrun-serve")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the server's runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Usage(format!("cannot listen on {addr}: {e}")))?;
        let app = Arc::new(app.bound_to(bound));
        ready(&app.url());
        let router = api::router(app);
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| Error::Usage(format!("the server stopped: {e}")))
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_goes_without_a_token() {
        assert_eq!(token_for(host("127.0.0.1").unwrap(), None).unwrap(), None);
        assert_eq!(token_for(host("::1").unwrap(), None).unwrap(), None);
        let t = token_for(host("0.0.0.0").unwrap(), None)
            .unwrap()
            .expect("a token beyond loopback");
        assert_eq!(t.len(), 48);
        assert_ne!(
            token_for(host("0.0.0.0").unwrap(), None).unwrap().unwrap(),
            t,
            "random each time"
        );
        assert_eq!(
            token_for(host("0.0.0.0").unwrap(), Some("x".into()))
                .unwrap()
                .as_deref(),
            Some("x")
        );
        assert!(host("nope").is_err());
    }
}
