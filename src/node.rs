//! A node's life: what `ieum serve` runs.
//!
//! On sled (the default) a node is simply the [`App`]: build, serve until asked to stop.
//!
//! On PostgreSQL several nodes may share one database for availability (issue 20; see
//! `store::lease` for why one primary and not several writers). A node binds its port
//! once and then alternates:
//!
//! 1. **standby** — answers 503 ([`crate::http::standby`]) and tries to take the primary
//!    lease every quarter of its time to live;
//! 2. **primary** — with the lease, builds the [`App`] (which restores the waiting queue
//!    and the counselors' conversations from the database) on the same socket and serves,
//!    until asked to stop (it then releases the lease so a standby takes over at once) or
//!    until another node took the lease (it closes every socket, so people reconnect
//!    through the load balancer to the new primary, and goes back to 1).
//!
//! The rules and intents are checked before the first standby phase: a broken rule file
//! stops a standby at startup, not at 3 a.m. when it takes over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::app::{App, LeaseSlot, Settings, Stopped};
use crate::http::forward::ForwardKey;
use crate::store::Location;
use crate::store::lease::{Advertise, Standby, node_name};

/// Runs a node until SIGTERM or Ctrl-C. `started` is when the process started (for the
/// startup time in the log).
///
/// # Errors
/// A rule file that does not load, a port that cannot be bound, a store that cannot be
/// opened or flushed.
pub async fn run(settings: Settings, started: Instant) -> anyhow::Result<()> {
    let url = match &settings.store {
        Some(Location::Postgres(url)) if settings.backend.is_none() => url.clone(),
        _ => {
            let app = App::build(settings).await?;
            listening(&app, started);
            return app.run_until_stopped().await;
        }
    };
    // The rules must load before this node may ever take over.
    crate::triage::TriageEngine::load(&settings.rules, &settings.intents)
        .context("loading the triage rules")?;
    crate::content::Content::load(&settings.intents).context("loading the conversation content")?;
    let listener = crate::http::serve::bind(settings.listen)
        .and_then(|l| l.into_std())
        .with_context(|| format!("listening on {}", settings.listen))?;
    let listener = Arc::new(listener);
    let advertise = match settings.advertise.clone() {
        Some(a) => Advertise::Given(a),
        None if settings.listen.ip().is_unspecified() => Advertise::Port(settings.listen.port()),
        None => Advertise::Given(settings.listen.to_string()),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let advertise = match advertise {
        // Port 0 (tests): the port actually bound.
        Advertise::Port(0) => Advertise::Port(port),
        Advertise::Given(a) if a.ends_with(":0") => {
            Advertise::Given(format!("{}:{port}", &a[..a.len() - 2]))
        }
        other => other,
    };
    crate::store::prepare_data_dir(&settings.data_dir)?;
    let forward = ForwardKey::new(&settings.load_master_key()?);
    let mut standby = Some(Standby::new(
        &url,
        node_name(),
        settings.lease_ttl,
        advertise,
    )?);
    // One signal listener for the node's whole life: a SIGTERM between two phases is not
    // lost.
    let (stop_tx, mut stop) = watch::channel(false);
    tokio::spawn(async move {
        crate::app::terminate_signal().await;
        stop_tx.send_replace(true);
    });
    loop {
        tracing::info!(
            node = standby.as_ref().map(Standby::holder).unwrap_or_default(),
            port = listener.local_addr().map(|a| a.port()).unwrap_or(0),
            "standby: waiting for the primary lease"
        );
        let Some(lease) = wait_for_lease(&listener, &mut standby, &forward, &mut stop).await?
        else {
            tracing::info!("stopped (standby)");
            return Ok(());
        };
        tracing::info!(
            fence = lease.fence().fence,
            "took the primary lease; starting"
        );
        let mut s = settings.clone();
        s.lease = Some(LeaseSlot::new(lease));
        s.listener = Some(Arc::clone(&listener));
        let app = App::build(s).await?;
        listening(&app, started);
        let handle = app.shutdown_handle();
        let mut stop_app = stop.clone();
        let forward = tokio::spawn(async move {
            if stop_app.wait_for(|s| *s).await.is_ok() {
                handle.send_replace(true);
            }
        });
        let why = app.run().await;
        forward.abort();
        match why? {
            Stopped::Asked => return Ok(()),
            Stopped::LeaseLost => continue,
        }
    }
}

fn listening(app: &App, started: Instant) {
    tracing::info!(
        port = app.port(),
        ruleset = %app.state().engine.version(),
        startup_ms = started.elapsed().as_millis() as u64,
        "ieum listening"
    );
}

/// Serves as a standby on `listener` (health checks answered, everything else forwarded to
/// the primary: [`crate::http::forward`]) and tries to take the lease until it is taken
/// (`Some`) or the node is asked to stop (`None`).
async fn wait_for_lease(
    listener: &Arc<std::net::TcpListener>,
    standby: &mut Option<Standby>,
    forward: &ForwardKey,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<crate::store::Lease>> {
    let socket = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
    let holder = standby
        .as_ref()
        .map(|s| s.holder().to_owned())
        .unwrap_or_default();
    let (primary_tx, primary) = watch::channel(None);
    let (done_tx, done) = watch::channel(false);
    let server = tokio::spawn(crate::http::forward::standby(
        socket,
        primary,
        forward.clone(),
        holder,
        done,
    ));
    let mut failing_since: Option<Instant> = None;
    let taken = loop {
        if *stop.borrow() {
            break None;
        }
        // The try blocks (a PostgreSQL client): on the blocking pool, the standby moved
        // there and back.
        let Some(mut s) = standby.take() else {
            anyhow::bail!("the standby was lost");
        };
        let (s, tried) = tokio::task::spawn_blocking(move || {
            let r = s.try_take();
            (s, r)
        })
        .await
        .context("trying to take the primary lease")?;
        let poll = s.poll_every();
        *standby = Some(s);
        match tried {
            Ok(Ok(lease)) => break Some(lease),
            Ok(Err(held)) => {
                failing_since = None;
                let addr = held.addr.as_deref().and_then(resolve);
                primary_tx.send_if_modified(|old| {
                    let changed = *old != addr;
                    *old = addr;
                    changed
                });
            }
            Err(e) => {
                primary_tx.send_replace(None);
                if failing_since.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::warn!(code = e.code(), error = %e, "standby cannot reach the database");
                    failing_since = Some(Instant::now());
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    };
    done_tx.send_replace(true);
    let _ = server.await;
    Ok(taken)
}

/// `host:port` to a socket address (a name is looked up; the first address wins).
fn resolve(addr: &str) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().ok()?.next()
}
