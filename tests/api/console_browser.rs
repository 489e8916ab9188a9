//! The ops console in a real browser (headless Chromium): sign in with a
//! server key, the overview's counts are the API's, a notification's failed
//! deliveries, a device lookup, a webhook and its attempts; a wrong key is
//! refused. Screenshots are kept in the artefact directory.

use std::time::Duration;

use pushgate_mock_providers::Behavior;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::{Browser, Page};
use crate::helpers::Db;
use crate::pipeline::{self, ios_token, register, wait_final};
use crate::webhooks::receiver::Receiver;
use crate::webhooks::{self, attempts_listed, subscribe};

const WAIT: Duration = Duration::from_secs(15);

/// Waits until the page shows the element `id`, and answers its text.
async fn text_of(page: &Page<'_>, id: &str) -> String {
    let js = format!("(() => {{ const e = document.getElementById({id:?}); return e && e.textContent; }})()");
    page.wait_for(&js, WAIT).await.as_str().unwrap_or_default().to_string()
}

/// Clicks the first element matching `selector`.
async fn click(page: &Page<'_>, selector: &str) {
    page.wait_for(&format!("!!document.querySelector({selector:?})"), WAIT).await;
    page.eval(&format!("document.querySelector({selector:?}).click()")).await;
}

/// Types `text` into the field `id` (emptied first) and presses Enter, as a keyboard user would.
async fn fill_and_enter(page: &Page<'_>, id: &str, text: &str) {
    page.eval(&format!("(() => {{ const e = document.getElementById({id:?}); e.value = ''; e.focus(); }})()")).await;
    page.type_text(text).await;
    page.press("Enter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_what_the_api_says() {
    let Some(browser) = Browser::launch().await else { return };
    let (app, mock, keys) = pipeline::start(Db::Sqlite, webhooks::quick).await;
    for i in 0..3 {
        register(&app, &keys, "ios", &ios_token("ab", i), Some("u-7"), &["news"]).await;
    }
    let ok = register(&app, &keys, "android", "fcm-console-ok", Some("u-7"), &["news"]).await;
    for t in ["fcm-console-dead-1", "fcm-console-dead-2"] {
        register(&app, &keys, "android", t, None, &["news"]).await;
        mock.handle.set_behavior(t, Behavior::Dead);
    }
    let (status, sent) = app
        .post("/v1/groups/news/notifications", &keys.server_key, json!({"notification": {"title": "Console check"}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id").to_string();
    let done = wait_final(&app, &keys, &id).await;
    assert_eq!(done["counts"]["failed"], 2, "{done}");

    let page = browser.open(&app.url("/console")).await;
    // A wrong key is refused, and nothing of the app is shown.
    fill_and_enter(&page, "key", "pgs_not_a_key").await;
    page.wait_for("document.getElementById('sign-in-error').textContent.includes('not known')", WAIT).await;
    assert_eq!(page.eval("document.getElementById('page').hidden").await, json!(true));
    page.screenshot("console-wrong-key.png").await;
    // The client key is not enough either.
    fill_and_enter(&page, "key", &keys.client_key).await;
    page.wait_for("document.getElementById('sign-in-error').textContent.includes('may not open')", WAIT).await;

    fill_and_enter(&page, "key", &keys.server_key).await;
    let delivered = text_of(&page, "total-delivered").await;
    let (_, stats) = app.get("/v1/stats", &keys.server_key).await;
    let total =
        |k: &str| stats["buckets"].as_array().expect("buckets").iter().map(|b| b[k].as_i64().unwrap_or(0)).sum::<i64>();
    assert_eq!(delivered, total("delivered").to_string());
    assert_eq!(text_of(&page, "total-failed").await, total("failed").to_string());
    let reasons = text_of(&page, "reasons").await;
    assert!(reasons.contains("UNREGISTERED") && reasons.contains('2'), "failure reasons: {reasons}");
    let devices = text_of(&page, "devices").await;
    assert!(devices.contains("android") && devices.contains("ios"), "devices: {devices}");
    let chart_bars = page.eval("document.querySelectorAll('#chart rect').length").await;
    assert!(chart_bars.as_u64().unwrap_or(0) >= 2, "delivered and failed bars: {chart_bars}");
    page.screenshot("console-overview.png").await;

    // Notifications, then the failed deliveries of one.
    click(&page, "nav a[href='#/notifications']").await;
    text_of(&page, "notifications").await;
    click(&page, &format!("#notifications a[href='#/notifications/{id}']")).await;
    let cells = page
        .wait_for(
            "(() => { const r = document.querySelector('#counts tbody tr'); \
             return r && [...r.children].map(c => c.textContent); })()",
            WAIT,
        )
        .await;
    let c = &done["counts"];
    let expected: Vec<String> = ["targeted", "pending", "delivered", "failed", "expired", "cancelled"]
        .iter()
        .map(|k| c[k].to_string())
        .collect();
    assert_eq!(cells, json!(expected), "the notification's counts as the API has them");
    page.eval("document.getElementById('f-status').value = 'failed'").await;
    click(&page, "#filters button").await;
    page.wait_for(
        "location.hash.includes('status=failed') && document.getElementById('page').dataset.route === location.hash",
        WAIT,
    )
    .await;
    let rows: Value = page
        .wait_for(
            "(() => { const r = [...document.querySelectorAll('#deliveries tbody tr')].map(t => t.children[2].textContent); \
             return r.length ? r : null; })()",
            WAIT,
        )
        .await;
    assert_eq!(rows, json!(["failed", "failed"]));
    page.screenshot("console-failed-deliveries.png").await;

    // A device by id: its data and its delivery history.
    click(&page, "nav a[href='#/devices']").await;
    text_of(&page, "lookup").await;
    fill_and_enter(&page, "q", &ok).await;
    let shown = text_of(&page, "device").await;
    let page_text = page.eval("document.getElementById('page').textContent").await;
    assert!(!page_text.as_str().unwrap_or_default().contains("null"), "nothing shows as null: {page_text}");
    assert!(shown.contains("fcm-console-ok") && shown.contains("u-7"), "device: {shown}");
    let history = text_of(&page, "deliveries").await;
    assert!(history.contains(&id) && history.contains("delivered"), "history: {history}");
    page.screenshot("console-device.png").await;

    // By user: the user's four devices.
    page.eval("location.hash = '#/devices?by=user&q=u-7'").await;
    page.wait_for("document.querySelectorAll('#found tbody tr').length === 4", WAIT).await;
    // By token: the one device that has it.
    page.eval("location.hash = '#/devices?by=token&platform=android&q=fcm-console-ok'").await;
    let found = page
        .wait_for(
            "(() => { const r = document.querySelectorAll('#found tbody tr'); \
             return r.length === 1 && r[0].textContent; })()",
            WAIT,
        )
        .await;
    assert!(found.as_str().is_some_and(|f| f.contains(&ok)), "{found}");

    // A webhook to a receiver, its test event, and the attempt as the API lists it.
    let receiver = Receiver::start().await;
    let (hook_id, secret) = subscribe(&app, &keys, &receiver.url, &["delivery.failed"]).await;
    let (status, test) = app.post(&format!("/v1/webhooks/{hook_id}/test"), &keys.server_key, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{test}");
    let attempt = attempts_listed(&app, &keys, &hook_id, 1).await.remove(0);
    click(&page, "nav a[href='#/webhooks']").await;
    let listed = text_of(&page, "webhooks").await;
    assert!(
        listed.contains(&receiver.url) && listed.contains("delivery.failed") && listed.contains("enabled"),
        "webhooks: {listed}"
    );
    click(&page, &format!("#webhooks a[href='#/webhooks/{hook_id}']")).await;
    let cells = page
        .wait_for(
            "(() => { const r = document.querySelector('#attempts tbody tr'); \
             return r && [...r.children].slice(0, 7).map(c => c.textContent.replace(/,/g, '')); })()",
            WAIT,
        )
        .await;
    let expected =
        json!([attempt["msg_id"], "webhook.test", "1", "succeeded", "200", attempt["latency_ms"].to_string(), ""]);
    assert_eq!(cells, expected, "the attempt as the API lists it: {attempt}");
    let page_text = page.eval("document.getElementById('page').textContent").await;
    assert!(!page_text.as_str().unwrap_or_default().contains(&secret), "the secret is never shown");
    page.screenshot("console-webhook.png").await;
    // The status filter: no failed attempt.
    page.eval("document.getElementById('f-status').value = 'failed'").await;
    click(&page, "#filters button").await;
    page.wait_for(
        "location.hash.includes('status=failed') && document.getElementById('page').dataset.route === location.hash",
        WAIT,
    )
    .await;
    assert_eq!(text_of(&page, "attempts").await, "No attempt.");

    // The admin key: choose the app, then the same overview.
    click(&page, "#sign-out").await;
    fill_and_enter(&page, "key", &app.admin_key).await;
    click(&page, "#page table button").await;
    assert_eq!(text_of(&page, "total-delivered").await, total("delivered").to_string());
    assert!(text_of(&page, "who").await.contains(&keys.id), "the app read is named");
    // The admin reads the chosen app's webhooks too (never a secret).
    page.eval("location.hash = '#/webhooks'").await;
    let url = serde_json::to_string(&receiver.url).expect("url as JSON");
    page.wait_for(&format!("document.getElementById('page').textContent.includes({url})"), WAIT).await;
    assert!(!text_of(&page, "webhooks").await.contains("whsec_"), "no secret shown");
}
