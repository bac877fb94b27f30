//! Thread-per-core serving (`[server] acceptors`): several listening sockets on one port, each
//! accepted from and served by a thread of its own running a single-threaded runtime.
//!
//! Why: on the shared work-stealing runtime a woken connection task may run on either worker,
//! and every spawn or wake-up can rouse an idle worker to steal it — futex calls and context
//! switches that the request-path profile put ahead of masking for small reads. Here a
//! connection lives on the thread that accepted it, as in nginx's worker processes, and the
//! kernel spreads new connections over the sockets (`SO_REUSEPORT`). Measured in
//! `docs/benchmarks.md`: +17–30% req/s for 2 KB reads on the embedded default, no gain with a
//! bucket and PostgreSQL — their pooled connections are driven by whichever runtime opened them,
//! so requests on other threads hop across anyway. Hence the default: one acceptor per core on
//! the embedded default, the shared runtime otherwise ([`crate::GatewayConfig::acceptors`]).
//!
//! The cost is nginx's too: a request holding its thread's CPU delays the other connections of
//! that thread. Reads large enough to matter are masked on the blocking pool (`budget`), as on
//! the shared runtime, so the thread keeps accepting and serving.
//!
//! The port is not shared by accident. `SO_REUSEPORT` alone would let a second gateway started
//! on the same port by the same user bind it and silently take a share of the connections, so
//! [`bind`] first binds the address without it, which fails if anything holds the port. What it
//! cannot stop: a process of the same user that sets `SO_REUSEPORT` itself may still join the
//! group (the kernel checks only the user). Such a process is inside the trust boundary anyway
//! — it can read the store credential and the signing keys — but run the gateway as a user of
//! its own.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::AppState;

/// The most acceptor threads a config may ask for.
pub const MAX_ACCEPTORS: usize = 256;

/// Pending connections each socket queues before the kernel refuses more (tokio's default).
const BACKLOG: i32 = 1024;

/// Binds `n` (at least one) listening sockets to `addr`, all on one port: the port `addr` names,
/// or for port 0 one the kernel picks. Fails with `AddrInUse` if anything already holds it.
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    // The exclusivity check: a socket without SO_REUSEPORT cannot join a group of sockets with
    // it, nor can a group form while it is bound. Bound, never listening, then closed: it
    // leaves nothing behind that delays the binds below.
    let probe = socket(addr, false)?;
    let addr = probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP address"))?;
    drop(probe);
    (0..n.max(1))
        .map(|_| {
            let s = socket(addr, true)?;
            s.listen(BACKLOG)?;
            Ok(s.into())
        })
        .collect()
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    // As std's and tokio's listeners do on Unix: restarts are not held up by TIME_WAIT.
    s.set_reuse_address(true)?;
    s.set_reuse_port(reuse_port)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Serves `listeners`, one thread each (`tg-acceptor-N`), until `shutdown` resolves; then every
/// thread drains its in-flight requests and this returns. The audit retention task runs once,
/// on the caller's runtime. An acceptor that stops on its own (its runtime would not start, it
/// failed, it panicked) stops them all and is the error returned: a gateway short of the threads
/// it was configured with exits rather than limps on.
pub async fn serve(
    state: Arc<AppState>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let retention = crate::spawn_retention(&state);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let mut running = 0usize;
    let mut result = Ok(());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (state, mut stopping, report) = (state.clone(), stopping.clone(), report.clone());
        let spawned = std::thread::Builder::new().name(format!("tg-acceptor-{i}")).spawn(move || {
            // Made on the thread: a thread that never started reports nothing.
            let mut outcome = Outcome { acceptor: i, report, result: None };
            outcome.result = Some(run_one(state, listener, async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            }));
        });
        match spawned {
            Ok(_) => running += 1,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(report);
    if result.is_ok() {
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            Some((i, early)) = reports.recv() => {
                running -= 1;
                let why = early.err().unwrap_or_else(|| io::Error::other("stopped before shutdown"));
                tracing::error!(acceptor = i, error = %why, "an acceptor stopped; stopping the gateway");
                result = Err(io::Error::new(why.kind(), format!("acceptor {i}: {why}")));
            }
        }
    }
    let _ = stop.send(true);
    while running > 0 {
        let Some((i, r)) = reports.recv().await else { break };
        running -= 1;
        if let (Err(e), true) = (r, result.is_ok()) {
            result = Err(io::Error::new(e.kind(), format!("acceptor {i}: {e}")));
        }
    }
    if let Some(task) = retention {
        task.abort();
    }
    result
}

/// One acceptor's life: its runtime, its listener, until `shutdown`. The runtime is dropped
/// when serving ends, after the drain.
fn run_one(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        crate::serve_connections(state, listener, shutdown).await
    })
}

/// Reports how an acceptor thread ended, from its `Drop` so that a panic reports too.
struct Outcome {
    acceptor: usize,
    report: tokio::sync::mpsc::UnboundedSender<(usize, io::Result<()>)>,
    result: Option<io::Result<()>>,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        let r = self.result.take().unwrap_or_else(|| Err(io::Error::other("the thread panicked")));
        let _ = self.report.send((self.acceptor, r));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sockets_share_one_port_and_nothing_else_can_join() {
        let ls = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        assert_eq!(ls.len(), 3);
        let port = ls[0].local_addr().unwrap().port();
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == port));
        // A second group on the port, or a plain listener: refused, not let in.
        let addr = ls[0].local_addr().unwrap();
        assert_eq!(bind(addr, 2).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        assert_eq!(std::net::TcpListener::bind(addr).unwrap_err().kind(), io::ErrorKind::AddrInUse);
        drop(ls);
        // The port is free again once they are closed.
        let again = bind(addr, 1).unwrap();
        assert_eq!(again[0].local_addr().unwrap(), addr);
    }

    #[test]
    fn a_port_held_without_reuse_port_is_refused() {
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(bind(plain.local_addr().unwrap(), 2).unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn zero_means_one() {
        assert_eq!(bind("127.0.0.1:0".parse().unwrap(), 0).unwrap().len(), 1);
    }
}
