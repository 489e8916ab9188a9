//! `pushgate send`: one test push, through a running gateway or, with
//! `--direct`, straight to APNs or FCM with a key file and no database (to
//! check credentials before giving them to a gateway).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pushgate_providers::{
    ApnsClient, ApnsCredentials, ApnsEnvironment, DeliveryOptions, FcmClient, FcmCredentials, NotificationInfo,
    Outcome, ProviderConfig, Push, ServiceAccount,
};
use serde_json::{json, Map, Value};

/// `pushgate send` options.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The gateway's base URL.
    #[arg(long, env = "PUSHGATE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The app's server key (better given as PUSHGATE_KEY: arguments are visible to other users).
    #[arg(long, env = "PUSHGATE_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Send to this device id.
    #[arg(long, group = "target")]
    device: Option<String>,
    /// Send to every active device of this user.
    #[arg(long, group = "target")]
    user: Option<String>,
    /// Send to every active device of this group.
    #[arg(long, group = "target")]
    group: Option<String>,
    /// Send to this raw device token (with --platform, except with --direct).
    #[arg(long, group = "target")]
    token: Option<String>,
    /// The token's platform.
    #[arg(long, value_enum)]
    platform: Option<PlatformArg>,
    /// Alert title.
    #[arg(long)]
    title: Option<String>,
    /// Alert text.
    #[arg(long)]
    body: Option<String>,
    /// A custom key/value for the app, `key=value` (repeatable).
    #[arg(long = "data", value_name = "KEY=VALUE", value_parser = parse_pair)]
    data: Vec<(String, String)>,
    /// Wait for the result of every device and print it.
    #[arg(long)]
    wait: bool,
    /// Send straight to the provider, without a gateway or database.
    #[arg(long, requires = "token")]
    direct: bool,
    /// --direct: the APNs .p8 key file.
    #[arg(long, value_name = "FILE", requires_all = ["direct", "key_id", "team_id", "topic"], conflicts_with = "fcm_service_account")]
    apns_key: Option<PathBuf>,
    /// --direct: the .p8 key's id.
    #[arg(long)]
    key_id: Option<String>,
    /// --direct: the Apple developer team id.
    #[arg(long)]
    team_id: Option<String>,
    /// --direct: the app's bundle id (apns-topic).
    #[arg(long)]
    topic: Option<String>,
    /// --direct: send to Apple's sandbox host (development builds).
    #[arg(long)]
    sandbox: bool,
    /// --direct: the Google service-account JSON file.
    #[arg(long, value_name = "FILE", requires = "direct")]
    fcm_service_account: Option<PathBuf>,
    /// --direct: APNs base URL instead of Apple's host.
    #[arg(long, value_name = "URL")]
    apns_url: Option<String>,
    /// --direct: FCM base URL instead of Google's host.
    #[arg(long, value_name = "URL")]
    fcm_url: Option<String>,
    /// --direct: extra PEM root certificates to trust.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

/// `--platform`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PlatformArg {
    Ios,
    Android,
}

impl PlatformArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Android => "android",
        }
    }
}

/// Why a send did not go through; the message is what the user reads.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The options do not make a send.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// The gateway could not be reached.
    #[error("cannot reach the gateway at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    /// The gateway refused the request.
    #[error("the gateway answered {status}: {code}: {message}")]
    Refused { status: u16, code: String, message: String },
    /// The provider client could not be built (bad key, URL, certificate).
    #[error("{0}")]
    Provider(#[from] pushgate_providers::ProviderError),
    /// Some devices were not delivered to.
    #[error("{0} of the deliveries did not succeed")]
    NotDelivered(usize),
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Runs `pushgate send`; what it prints goes to stdout.
pub async fn run(args: SendArgs) -> Result<(), SendError> {
    if args.direct {
        direct(&args).await
    } else {
        through_gateway(&args).await
    }
}

impl SendArgs {
    /// The notification as the API takes it.
    fn notification(&self) -> Value {
        let mut n = Map::new();
        if let Some(t) = &self.title {
            n.insert("title".into(), json!(t));
        }
        if let Some(b) = &self.body {
            n.insert("body".into(), json!(b));
        }
        if !self.data.is_empty() {
            let data: Map<String, Value> = self.data.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            n.insert("data".into(), Value::Object(data));
        }
        Value::Object(n)
    }

    /// `to` of `POST /v1/notifications`.
    fn target(&self) -> Result<Value, SendError> {
        Ok(match (&self.device, &self.user, &self.group, &self.token, self.platform) {
            (Some(d), ..) => json!({"device_ids": [d]}),
            (_, Some(u), ..) => json!({"user_ids": [u]}),
            (_, _, Some(g), ..) => json!({"group": g}),
            (.., Some(t), Some(p)) => json!({"tokens": [{"platform": p.as_str(), "token": t}]}),
            (.., Some(_), None) => return Err(SendError::Usage("--token needs --platform (ios or android)".into())),
            _ => {
                return Err(SendError::Usage(
                    "say whom to send to: --device, --user, --group or --token with --platform".into(),
                ))
            }
        })
    }
}

async fn through_gateway(args: &SendArgs) -> Result<(), SendError> {
    let key =
        args.key.as_deref().ok_or_else(|| SendError::Usage("--key (or PUSHGATE_KEY): the app's server key".into()))?;
    let body = json!({"to": args.target()?, "notification": args.notification()});
    let base = args.url.trim_end_matches('/');
    let url = if args.wait { format!("{base}/v1/notifications?wait=true") } else { format!("{base}/v1/notifications") };
    let unreachable = |source| SendError::Unreachable { url: args.url.clone(), source };
    let res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(key)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(unreachable)?;
    let status = res.status().as_u16();
    let answer: Value = res.json().await.map_err(unreachable)?;
    if status >= 400 {
        let text = |k: &str| answer["error"][k].as_str().unwrap_or_default().to_string();
        return Err(SendError::Refused { status, code: text("code"), message: text("message") });
    }
    let id = answer["id"].as_str().unwrap_or_default();
    let Some(results) = answer["results"].as_array() else {
        println!(
            "notification {id}: {}, {} device(s) targeted",
            answer["status"].as_str().unwrap_or("queued"),
            answer["targeted"]
        );
        return Ok(());
    };
    println!("notification {id}: {}", answer["status"].as_str().unwrap_or_default());
    let mut failed = 0;
    for r in results {
        let status = r["status"].as_str().unwrap_or_default();
        let device = r["device_id"].as_str().unwrap_or("(unregistered token)");
        match r["reason"].as_str() {
            Some(reason) => println!("  {device}: {status} ({reason})"),
            None => println!("  {device}: {status}"),
        }
        failed += usize::from(status != "delivered");
    }
    if failed > 0 {
        return Err(SendError::NotDelivered(failed));
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<String, SendError> {
    std::fs::read_to_string(path)
        .map_err(|e| SendError::File { path: path.display().to_string(), reason: e.to_string() })
}

async fn direct(args: &SendArgs) -> Result<(), SendError> {
    let token = args.token.as_deref().unwrap_or_default();
    let config = ProviderConfig {
        apns_base_url: args.apns_url.clone(),
        apns_sandbox_base_url: args.apns_url.clone(),
        fcm_base_url: args.fcm_url.clone(),
        extra_root_pem: args.ca_file.as_ref().map(read).transpose()?.map(String::into_bytes),
        request_timeout: Duration::from_secs(30),
        // One push: one connection.
        max_connections_per_host: 1,
    };
    let info: NotificationInfo =
        serde_json::from_value(args.notification()).map_err(|e| SendError::Usage(format!("notification: {e}")))?;
    let opts = DeliveryOptions::default();
    let push = Push::to(token);
    let (provider, outcome) = if let Some(path) = &args.apns_key {
        let creds = ApnsCredentials {
            team_id: args.team_id.clone().unwrap_or_default(),
            key_id: args.key_id.clone().unwrap_or_default(),
            private_key: read(path)?,
            topic: args.topic.clone().unwrap_or_default(),
            environment: if args.sandbox { ApnsEnvironment::Sandbox } else { ApnsEnvironment::Production },
        };
        let client = ApnsClient::new(creds, &config)?;
        let env = client.environment();
        ("APNs", client.send(push.environment(env), &info, &opts).await)
    } else if let Some(path) = &args.fcm_service_account {
        let account: ServiceAccount = serde_json::from_str(&read(path)?)
            .map_err(|e| SendError::File { path: path.display().to_string(), reason: e.to_string() })?;
        let client = FcmClient::new(FcmCredentials { service_account: account }, &config)?;
        ("FCM", client.send(push, &info, &opts).await)
    } else {
        return Err(SendError::Usage(
            "--direct needs --apns-key FILE (with --key-id, --team-id, --topic) or --fcm-service-account FILE".into(),
        ));
    };
    report(provider, &outcome)
}

/// Prints the provider's answer, with what usually causes a refusal.
fn report(provider: &str, outcome: &Outcome) -> Result<(), SendError> {
    if let Outcome::Delivered { provider_message_id, status } = outcome {
        println!("{provider} accepted the push (HTTP {status}, id {})", provider_message_id.as_deref().unwrap_or("-"));
        return Ok(());
    }
    let reason = outcome.reason().unwrap_or_default();
    let status = outcome.status().map_or_else(|| "no answer".to_string(), |s| format!("HTTP {s}"));
    println!("{provider} refused the push ({status}): {reason}");
    if let Some(hint) = hint(reason) {
        println!("hint: {hint}");
    }
    Err(SendError::NotDelivered(1))
}

/// The usual cause of a provider's refusal.
fn hint(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "BadDeviceToken" => "a development build's token sent to production (try --sandbox), or a token of another app",
        "DeviceTokenNotForTopic" | "TopicDisallowed" | "BadTopic" => {
            "--topic is not the bundle id of the app the token belongs to"
        }
        "InvalidProviderToken" => "--key-id and --team-id must be those of the .p8 key, in the team that owns the app",
        "Unregistered" | "UNREGISTERED" => "the app was uninstalled or the token rotated: register the device again",
        "SENDER_ID_MISMATCH" => "the token belongs to another Firebase project than the service account's",
        "THIRD_PARTY_AUTH_ERROR" => "the Firebase project's APNs key or certificate is missing or wrong",
        "PERMISSION_DENIED" => "the service account lacks the Firebase Cloud Messaging role",
        _ => return None,
    })
}
