//! The browser client and its demo (issue 15): the files served, and the
//! chat room in real headless Chromium, two tabs talking through the socket.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{Db, TestApp};

#[tokio::test]
async fn the_sdk_service_worker_and_demo_are_served() {
    let app = TestApp::spawn(Db::Sqlite).await;
    for (path, content_type, marker) in [
        ("/sdk/pushgate.js", "text/javascript", "class Pushgate"),
        ("/sdk/pushgate-sw.js", "text/javascript", "showNotification"),
        ("/demo", "text/html", "/sdk/pushgate.js"),
    ] {
        let res = app.http.get(app.url(path)).send().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(header("content-type").starts_with(content_type), "{path}: {}", header("content-type"));
        if path.ends_with("-sw.js") {
            assert_eq!(header("service-worker-allowed"), "/", "the worker may control a whole site");
        }
        let text = res.text().await.expect("body");
        assert!(text.contains(marker), "{path} holds {marker}");
        assert!(!text.contains("https://cdn") && !text.contains("<script src=\"http"), "{path}: no CDN");
    }
}

/// Whether the page's message list shows `text`.
fn shows(text: &str) -> String {
    format!("[...document.querySelectorAll('#messages li')].some(li => li.textContent.includes({text:?}))")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_chat_and_both_see_a_server_broadcast() {
    let Some(browser) = Browser::launch().await else { return };
    let app = TestApp::spawn(Db::Sqlite).await;
    // Relays client messages to everyone (`socket.client_relay: all`).
    let keys = app.create_app().await;
    let url = app.url(&format!("/demo?key={}", keys.client_key));
    let wait = Duration::from_secs(15);
    let alice = browser.open(&url).await;
    let bob = browser.open(&url).await;
    for page in [&alice, &bob] {
        page.wait_for("document.getElementById('status').textContent.startsWith('connected as ')", wait).await;
    }

    alice.eval("document.getElementById('name').value = 'alice'; document.getElementById('text').focus()").await;
    alice.type_text("hello from alice").await;
    alice.press("Enter").await;
    for page in [&alice, &bob] {
        page.wait_for(&shows("hello from alice"), wait).await;
    }
    let line = bob.eval("document.querySelector('#messages li').textContent").await;
    assert_eq!(line, "alicehello from alice", "the sender's name, then the message");

    let body = json!({"notification": {"body": "the server says hi"}});
    let (status, sent) = app.post("/v1/socket/broadcast", &keys.server_key, body).await;
    assert_eq!((status, sent["delivered"].as_u64()), (StatusCode::OK, Some(2)), "{sent}");
    for page in [&alice, &bob] {
        page.wait_for(&shows("the server says hi"), wait).await;
    }
    let shot = bob.screenshot("demo.png").await;
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 1000, "{}", shot.display());
}
