//! Connections per provider host under latency: opened as the server's
//! stream limit runs out, capped, kept open and replaced when they close.

mod common;

use std::time::{Duration, Instant};

use common::{apns_credentials, config, fcm_credentials, hex_token, mock_with};
use pushgate_mock_providers::MockHandle;
use pushgate_providers::{ApnsClient, DeliveryOptions, FcmClient, NotificationInfo, Outcome, Push};
use serde_json::json;

const LATENCY: Duration = Duration::from_millis(200);
const STREAMS: u32 = 10;

/// Stand-ins that answer after [`LATENCY`] and allow [`STREAMS`] streams per connection.
async fn far_away() -> MockHandle {
    mock_with(|cfg| {
        cfg.latency = LATENCY;
        cfg.max_streams = STREAMS;
    })
    .await
}

fn apns_capped(mock: &MockHandle, cap: usize) -> ApnsClient {
    let cfg = pushgate_providers::ProviderConfig { max_connections_per_host: cap, ..config(mock) };
    ApnsClient::new(apns_credentials(mock), &cfg).expect("APNs client")
}

fn note() -> NotificationInfo {
    serde_json::from_value(json!({"body": "hi"})).expect("valid info")
}

/// Sends `n` pushes at once with `client`; returns how long they took.
async fn burst(client: &ApnsClient, prefix: &str, n: u32) -> Duration {
    let (note, opts) = (note(), DeliveryOptions::default());
    let tokens: Vec<String> = (0..n).map(|i| hex_token(prefix, i)).collect();
    let started = Instant::now();
    let outcomes = futures_util::future::join_all(tokens.iter().map(|t| client.send(Push::to(t), &note, &opts))).await;
    let took = started.elapsed();
    assert!(outcomes.iter().all(Outcome::is_delivered), "{:?}", outcomes.iter().find(|o| !o.is_delivered()));
    took
}

#[tokio::test]
async fn a_burst_opens_connections_as_streams_run_out_and_takes_one_round_trip() {
    let mock = far_away().await;
    let client = apns_capped(&mock, 16);

    let took = burst(&client, "a1", 100).await;
    // 100 pushes over connections of 10 streams: ten connections, none
    // past the cap, all open at once rather than one after another.
    let opened = mock.connections_opened();
    assert!((10..=16).contains(&opened), "connections opened: {opened}");
    assert_eq!(mock.total_received(), 100);
    // One connection would take ten round trips (2 s).
    assert!(took < LATENCY * 4, "100 pushes took {took:?}");

    // The connections stay open and carry the next burst.
    assert_eq!(mock.open_connections(), opened);
    let took = burst(&client, "a2", 100).await;
    assert_eq!(mock.connections_opened(), opened, "no connection opened for the second burst");
    assert!(took < LATENCY * 4, "the second 100 pushes took {took:?}");
}

#[tokio::test]
async fn no_more_connections_than_the_cap_are_opened() {
    let mock = far_away().await;
    let client = apns_capped(&mock, 3);

    let took = burst(&client, "b1", 100).await;
    assert_eq!(mock.connections_opened(), 3);
    assert_eq!(mock.total_received(), 100);
    // 30 streams in flight at most: 100 pushes need four round trips.
    assert!(took >= LATENCY * 3, "100 pushes over 30 streams took only {took:?}");
}

#[tokio::test]
async fn connections_the_provider_closes_are_replaced() {
    let mock = far_away().await;
    let client = apns_capped(&mock, 16);
    burst(&client, "c1", 50).await;
    let first = mock.connections_opened();
    assert_eq!(first, 5);

    // A GOAWAY on every connection while pushes are in flight: those
    // finish, and the next ones go over new connections.
    let (in_flight, ()) = tokio::join!(burst(&client, "c2", 50), async {
        tokio::time::sleep(LATENCY / 4).await;
        mock.close_connections();
    });
    assert!(in_flight < LATENCY * 4, "pushes in flight during the GOAWAY took {in_flight:?}");
    burst(&client, "c3", 50).await;
    assert_eq!(mock.total_received(), 150);
    assert_eq!(mock.connections_opened(), first + 5);
    assert_eq!(mock.open_connections(), 5);
}

#[tokio::test]
async fn fcm_sends_spread_over_connections_too() {
    let mock = far_away().await;
    let cfg = pushgate_providers::ProviderConfig { max_connections_per_host: 16, ..config(&mock) };
    let client = FcmClient::new(fcm_credentials(&mock), &cfg).expect("FCM client");
    let (note, opts) = (note(), DeliveryOptions::default());
    let tokens: Vec<String> = (0..40).map(|i| format!("fcm-token-{i}")).collect();
    let started = Instant::now();
    let outcomes = futures_util::future::join_all(tokens.iter().map(|t| client.send(Push::to(t), &note, &opts))).await;
    let took = started.elapsed();
    assert!(outcomes.iter().all(Outcome::is_delivered), "{:?}", outcomes.iter().find(|o| !o.is_delivered()));
    // Four for the sends, and the OAuth token request's own.
    assert_eq!((mock.token_requests(), mock.connections_opened()), (1, 4 + 1));
    assert!(took < LATENCY * 4, "40 sends took {took:?}");
}
