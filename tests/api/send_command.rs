//! `pushgate send` against the stand-ins: through a running gateway, and
//! `--direct` with the key files a developer downloads from Apple and Google.

use std::process::Output;

use pushgate_mock_providers::Behavior;
use tokio::process::Command;

use crate::helpers::Db;
use crate::pipeline::{self, ios_token, register};

/// Runs `pushgate send` with `args` and extra environment.
async fn send(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushgate"));
    cmd.arg("send").args(args).env_remove("PUSHGATE_KEY").env_remove("PUSHGATE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("pushgate send runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_goes_through_a_gateway_and_prints_each_result() {
    let (app, mock, keys) = pipeline::start(Db::Sqlite, |_| {}).await;
    let url = app.url("");
    let phone = register(&app, &keys, "ios", &ios_token("5e", 1), Some("dev-1"), &[]).await;
    register(&app, &keys, "android", "fcm-send-dead", Some("dev-1"), &[]).await;
    mock.handle.set_behavior("fcm-send-dead", Behavior::Dead);
    let key = [("PUSHGATE_KEY", keys.server_key.as_str())];

    let out = send(
        &[
            "--url",
            &url,
            "--device",
            &phone,
            "--title",
            "Hello",
            "--body",
            "from the CLI",
            "--data",
            "order=42",
            "--wait",
        ],
        &key,
    )
    .await;
    assert!(out.status.success(), "stdout {} stderr {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("{phone}: delivered")), "{}", text(&out.stdout));
    let got = mock.handle.received(&ios_token("5e", 1));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload["aps"]["alert"]["title"], "Hello");
    assert_eq!(got[0].payload["order"], "42", "data as custom keys: {}", got[0].payload);

    // A user with a dead token: each device's result, and a failing exit.
    let out = send(&["--url", &url, "--user", "dev-1", "--title", "Hi", "--wait"], &key).await;
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("delivered") && stdout.contains("failed (UNREGISTERED)"), "{stdout}");
    assert!(text(&out.stderr).contains("1 of the deliveries did not succeed"), "{}", text(&out.stderr));

    // Without --wait: queued, with the notification id.
    let out = send(&["--url", &url, "--token", "fcm-raw-token", "--platform", "android", "--body", "raw"], &key).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("queued, 1 device(s) targeted"), "{}", text(&out.stdout));

    // Clear errors: a wrong key, no target, a gateway that is not there.
    let out = send(&["--url", &url, "--device", &phone], &[("PUSHGATE_KEY", "pgs_wrong")]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401: unauthorized"), "{}", text(&out.stderr));
    let out = send(&["--url", &url, "--device", "no-such-device", "--title", "x"], &key).await;
    assert!(text(&out.stderr).contains("404: not_found"), "{}", text(&out.stderr));
    let out = send(&["--url", &url], &key).await;
    assert!(text(&out.stderr).contains("say whom to send to"), "{}", text(&out.stderr));
    let out = send(&["--url", "http://127.0.0.1:9", "--device", &phone], &key).await;
    assert!(text(&out.stderr).contains("cannot reach the gateway at http://127.0.0.1:9"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_direct_checks_credentials_without_a_gateway() {
    let mock = pipeline::Mock::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    mock.handle.write_files(dir.path()).expect("key files");
    let file = |name: &str| dir.path().join(name).display().to_string();
    let base = mock.handle.base_url();
    let apns = mock.handle.apns_credentials_json();
    let field = |k: &str| apns[k].as_str().expect("apns field").to_string();
    let (key_id, team_id, topic) = (field("key_id"), field("team_id"), field("topic"));
    let apns_args = |token: &str| {
        vec![
            "--direct".to_string(),
            "--apns-key".into(),
            file("apns_key.p8"),
            "--key-id".into(),
            key_id.clone(),
            "--team-id".into(),
            team_id.clone(),
            "--topic".into(),
            topic.clone(),
            "--apns-url".into(),
            base.clone(),
            "--ca-file".into(),
            file("ca.pem"),
            "--token".into(),
            token.to_string(),
            "--title".into(),
            "Direct".into(),
        ]
    };
    let run = |args: Vec<String>| async move { send(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await };

    let token = ios_token("d1", 1);
    let out = run(apns_args(&token)).await;
    assert!(out.status.success(), "stdout {} stderr {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("APNs accepted the push (HTTP 200"), "{}", text(&out.stdout));
    assert_eq!(mock.handle.received(&token)[0].payload["aps"]["alert"]["title"], "Direct");

    let bad = ios_token("d1", 2);
    mock.handle.set_behavior(&bad, Behavior::BadToken);
    let out = run(apns_args(&bad)).await;
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("APNs refused the push (HTTP 400): BadDeviceToken") && stdout.contains("hint: "),
        "{stdout}"
    );

    let fcm = |token: &str| {
        vec![
            "--direct".to_string(),
            "--fcm-service-account".into(),
            file("service_account.json"),
            "--fcm-url".into(),
            base.clone(),
            "--ca-file".into(),
            file("ca.pem"),
            "--token".into(),
            token.to_string(),
            "--body".into(),
            "Hi".into(),
        ]
    };
    let out = run(fcm("fcm-direct-1")).await;
    assert!(out.status.success(), "stdout {} stderr {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("FCM accepted the push (HTTP 200"), "{}", text(&out.stdout));
    assert_eq!(mock.handle.received("fcm-direct-1").len(), 1);

    // A key file that is not there is named.
    let mut missing = apns_args(&token);
    missing[2] = file("nope.p8");
    let out = run(missing).await;
    assert!(text(&out.stderr).contains("nope.p8"), "{}", text(&out.stderr));
}
