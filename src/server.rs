//! Starting and stopping the gateway: store, migrations, workers, HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{admin_key_hash, Authenticator};
use crate::config::Config;
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
    /// The extra root certificates (`ca_file`) could not be read.
    #[error("cannot read the CA file: {0}")]
    CaFile(#[source] std::io::Error),
    /// `trusted_proxies` holds something that is not a CIDR.
    #[error(transparent)]
    TrustedProxies(#[from] crate::client_addr::CidrError),
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
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let (admin_hash, generated) = admin_key_hash(&store, config.admin_key.as_deref()).await?;
        if let Some(key) = generated {
            // Printed once, on the first start only: the store keeps just its hash.
            println!("pushgate: generated admin key (shown once, keep it): {key}");
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        let hub = crate::socket::Hub::new(store.clone(), config.socket.clone()).await?;
        let trusted_proxies = crate::client_addr::parse_list(&config.trusted_proxies)?;
        let config = Arc::new(config);
        let delivery = crate::delivery::Delivery::new(store.clone(), config.clone()).map_err(StartError::CaFile)?;
        let state = AppState {
            hub,
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
        let hub = self.state.hub.clone();
        let result = axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Upgraded sockets are not HTTP connections the server waits
                // for: tell them to go (1001) so clients move to another instance.
                hub.close_all();
                stop.cancel();
            })
            .await
            .map_err(StartError::Serve);
        cancel.cancel();
        self.state.hub.stop().await;
        // Provider calls in flight finish and are written back; claimed work
        // not yet started is given back for another instance.
        self.state.delivery.stop().await;
        self.state.store.close().await;
        result
    }
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
