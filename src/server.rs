//! Starting and stopping the gateway: store, migrations, workers, HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{admin_key_hash, Authenticator};
use crate::config::Config;
use crate::connections::EdgeLimits;
use crate::domain::cursor::CursorKey;
use crate::rate_limit::RateLimiter;
use crate::registrar::Registrar;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Errors that stop the gateway from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The configured admin key is refused.
    #[error("{0}")]
    AdminKey(String),
    /// The extra root certificates (`ca_file`) could not be read.
    #[error("cannot read the CA file: {0}")]
    CaFile(#[source] std::io::Error),
    /// `trusted_proxies` holds something that is not a CIDR.
    #[error(transparent)]
    TrustedProxies(#[from] crate::client_addr::CidrError),
    /// The webhook client could not be built.
    #[error("cannot build the webhook client: {0}")]
    Webhooks(#[from] reqwest::Error),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// A gateway bound to its address, ready to serve.
pub struct Gateway {
    /// Handler state (also used by tests).
    pub state: AppState,
    listener: TcpListener,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

impl Gateway {
    /// Opens the store, applies migrations, resolves the admin key and binds.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        if let Some(key) = config.admin_key.as_deref() {
            crate::auth::check_admin_key(key).map_err(StartError::AdminKey)?;
        }
        let acquire_timeout = Duration::from_millis(config.db_acquire_timeout_ms);
        let store = Store::open(&config.database_url, acquire_timeout).await?.owned_by(&config.instance_name());
        store.migrate().await?;
        // Leases this instance held when it last stopped without releasing
        // them (a crash): nobody else holds them, so they are due now.
        let taken_back = store.take_back_leases(crate::domain::time::now_ms()).await?;
        if taken_back > 0 {
            tracing::info!(
                taken_back,
                instance = store.owner(),
                "took back this instance's leases from before a restart"
            );
        }
        let (admin_hash, generated) = admin_key_hash(&store, config.admin_key.as_deref()).await?;
        if let Some(key) = generated {
            // Printed once, on the first start only: the store keeps just its hash.
            println!("pushgate: generated admin key (shown once, keep it): {key}");
        }
        let listener = crate::connections::bind(config.listen, config.listen_backlog)
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        let cursors = Arc::new(cursor_key(&store).await?);
        let hub = crate::socket::Hub::new(store.clone(), config.socket.clone()).await?;
        let trusted_proxies = crate::client_addr::parse_list(&config.trusted_proxies)?;
        let config = Arc::new(config);
        let delivery = crate::delivery::Delivery::new(store.clone(), config.clone()).map_err(StartError::CaFile)?;
        let webhooks =
            crate::webhooks::Webhooks::new(store.clone(), &config.webhook, config.retention_days, config.workers)?;
        let state = AppState {
            hub,
            webhooks,
            delivery,
            auth: Authenticator::new(store.clone(), admin_hash),
            registrar: Registrar::new(store.clone(), config.registration_batch),
            identities: crate::identity::Identities::new(store.clone()),
            store,
            registration_limit: RateLimiter::new(config.registration_rate),
            client_app_limit: RateLimiter::new(config.client_app_rate),
            send_limit: RateLimiter::new(config.send_rate),
            trusted_proxies: Arc::new(trusted_proxies),
            sockets_per_address: crate::rate_limit::Counter::new(config.socket.max_per_address),
            config,
            metrics: crate::metrics::install(),
            cursors,
        };
        Ok(Self { state, listener, addr })
    }

    /// Serves until `shutdown` completes, then stops background work.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartError> {
        let cancel = CancellationToken::new();
        let app = crate::api::router(self.state.clone());
        let stop = cancel.clone();
        self.state.hub.start(cancel.clone());
        self.state.delivery.start(cancel.clone());
        self.state.webhooks.start(cancel.clone());
        let hub = self.state.hub.clone();
        let config = &self.state.config;
        let limits = EdgeLimits {
            max_connections: config.max_connections,
            backlog: config.listen_backlog,
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        };
        let serving = crate::connections::serve(self.listener, app, limits, cancel.clone());
        tokio::spawn(async move {
            shutdown.await;
            // Upgraded sockets are not HTTP connections the server waits
            // for: tell them to go (1001) so clients move to another instance.
            hub.close_all();
            stop.cancel();
        });
        serving.await;
        cancel.cancel();
        self.state.hub.stop().await;
        // Provider calls in flight finish and are written back; claimed work
        // not yet started is given back for another instance.
        self.state.delivery.stop().await;
        self.state.webhooks.stop().await;
        self.state.store.close().await;
        Ok(())
    }
}

/// The database's cursor key: created by the first instance, read by the
/// others, so every instance accepts the cursors of every other.
async fn cursor_key(store: &Store) -> Result<CursorKey, StoreError> {
    const NAME: &str = "cursor_key";
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    // Taken only when no instance stored one first.
    store.init_setting(NAME, &hex::encode(secret)).await?;
    let stored = store.setting(NAME).await?.unwrap_or_default();
    // Hashed, so whatever the setting holds is a full-length key.
    Ok(CursorKey::new(sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(stored)).into()))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
