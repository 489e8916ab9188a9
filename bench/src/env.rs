//! One store's bench environment: a fresh database, a gateway on it, an app.

use std::net::SocketAddr;
use std::path::Path;

use rand::distributions::{Alphanumeric, DistString};

use crate::client::Api;
use crate::gateway::{self, free_port, GatewaySpec, Proc};
use crate::mock::Mock;
use crate::seed::Database;
use crate::webhook::Receiver;
use crate::{BenchResult, StoreKind};

/// A running gateway on a fresh database, with the bench app created.
pub struct Env {
    /// Which store the gateway runs on.
    pub kind: StoreKind,
    /// The API, with the bench app's keys.
    pub api: Api,
    /// The gateway process.
    pub gateway: Proc,
    /// The database, for seeding.
    pub db: Database,
}

impl Env {
    /// Creates the database, starts the gateway and creates the app,
    /// subscribed to `webhook` when given.
    pub async fn start(
        kind: StoreKind,
        exe: &Path,
        dir: &Path,
        postgres: &str,
        mock: &Mock,
        webhook: Option<&Receiver>,
        h2c: bool,
    ) -> BenchResult<Self> {
        let store_dir = dir.join(kind.as_str());
        std::fs::create_dir_all(&store_dir).map_err(|e| crate::BenchError::caused("creating a store directory", e))?;
        let mut db = Database::new(kind, &store_dir, postgres);
        db.create().await?;
        let result = Self::start_gateway(kind, exe, &store_dir, mock, &db, webhook, h2c).await;
        match result {
            Ok((api, gateway)) => Ok(Self { kind, api, gateway, db }),
            Err(e) => {
                let _ = db.drop().await;
                Err(e)
            }
        }
    }

    async fn start_gateway(
        kind: StoreKind,
        exe: &Path,
        dir: &Path,
        mock: &Mock,
        db: &Database,
        webhook: Option<&Receiver>,
        h2c: bool,
    ) -> BenchResult<(Api, Proc)> {
        let admin_key = format!("pgadm_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 32));
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut api = Api::new(listen, &admin_key, h2c)?;
        let spec = GatewaySpec {
            exe,
            dir,
            listen,
            database_url: &db.url,
            admin_key: &admin_key,
            provider_url: &mock.base_url,
            ca_file: &mock.ca_file,
            webhook_to_loopback: webhook.is_some(),
        };
        let gateway = gateway::start(&spec, &api, &format!("gateway-{}.log", kind.as_str())).await?;
        let app = async {
            api.create_app(&mock.apns, &mock.service_account).await?;
            match webhook {
                Some(receiver) => receiver.subscribe(&api).await,
                None => Ok(()),
            }
        };
        if let Err(e) = app.await {
            gateway.stop().await;
            return Err(e);
        }
        Ok((api, gateway))
    }

    /// Stops the gateway, then drops the database.
    pub async fn stop(self) -> BenchResult<()> {
        self.gateway.stop().await;
        self.db.drop().await
    }
}
