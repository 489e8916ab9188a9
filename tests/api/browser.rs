//! A real browser for the tests: headless Chromium driven over the Chrome
//! DevTools Protocol, through the WebSocket client the tests already have.
//!
//! Why not a crate (`chromiumoxide`, `fantoccini`): they bring a second HTTP
//! and WebSocket stack to compile on every CI run, and the tests need five
//! commands (open a page, evaluate, type, screenshot, close).
//!
//! `Browser::launch()` answers `None` with a message when Chromium is not
//! installed, so a local run skips browser tests; under `CI=true` it panics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A headless Chromium process and the DevTools connection to it.
pub struct Browser {
    child: tokio::process::Child,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    _profile: tempfile::TempDir,
}

/// One tab, attached with its own DevTools session.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

/// Where screenshots and other artefacts of browser tests are kept.
pub fn artefact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artefacts");
    std::fs::create_dir_all(&dir).expect("artefact dir");
    dir
}

fn chromium_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PUSHGATE_TEST_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts headless Chromium, or `None` (with a message) when it is not
    /// installed and this is not CI.
    pub async fn launch() -> Option<Browser> {
        let Some(bin) = chromium_binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and Chromium is not installed (apt-get install chromium)");
            }
            eprintln!("skipping browser test: Chromium is not installed (apt-get install chromium)");
            return None;
        };
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = tokio::process::Command::new(&bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        // Chromium prints its DevTools address on stderr.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let ws_url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    return url.trim().to_string();
                }
            }
            panic!("Chromium exited before it listened for DevTools");
        })
        .await
        .expect("Chromium's DevTools address within 30 s");
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.expect("DevTools WebSocket");
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let reader = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                // Events carry no id; only answers are waited for.
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    if let Some(tx) = reader.lock().expect("pending").remove(&id) {
                        let _ = tx.send(v);
                    }
                }
            }
        });
        Some(Browser { child, out, pending, next_id: Arc::new(AtomicU64::new(1)), _profile: profile })
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id, tx);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.out.send(Message::Text(msg.to_string().into())).expect("DevTools connection open");
        let answer = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("DevTools {method}: no answer in 30 s"))
            .expect("DevTools answer");
        if let Some(err) = answer.get("error") {
            panic!("DevTools {method}: {err}");
        }
        answer["result"].clone()
    }

    /// Opens a new tab at `url` and waits for its document to load.
    pub async fn open(&self, url: &str) -> Page<'_> {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"})).await;
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call(None, "Target.attachToTarget", json!({"targetId": target_id, "flatten": true})).await;
        let session = attached["sessionId"].as_str().expect("sessionId").to_string();
        let page = Page { browser: self, session };
        page.goto(url).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Page<'_> {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Navigates and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", Duration::from_secs(15))
            .await;
    }

    /// Evaluates `js` in the page (promises awaited) and answers its value;
    /// a thrown exception fails the test with its message.
    pub async fn eval(&self, js: &str) -> Value {
        let r =
            self.call("Runtime.evaluate", json!({"expression": js, "awaitPromise": true, "returnByValue": true})).await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("page script threw: {js}\n{ex}");
        }
        r["result"].get("value").cloned().unwrap_or(Value::Null)
    }

    /// Polls `js` until it is truthy and answers its value; fails the test
    /// with the last value after `timeout`.
    pub async fn wait_for(&self, js: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = self
                .call("Runtime.evaluate", json!({"expression": js, "awaitPromise": true, "returnByValue": true}))
                .await;
            let v = r["result"].get("value").cloned().unwrap_or(Value::Null);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy && r.get("exceptionDetails").is_none() {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("waited {timeout:?} for `{js}`; last value {v}, exception {:?}", r.get("exceptionDetails"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the focused element as keyboard input would.
    pub async fn type_text(&self, text: &str) {
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Presses one key (e.g. "Enter", "Tab") on the focused element.
    pub async fn press(&self, key: &str) {
        let code = match key {
            "Enter" => 13,
            "Tab" => 9,
            "Escape" => 27,
            _ => 0,
        };
        let text = if key == "Enter" { "\r" } else { "" };
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code});
            if kind == "keyDown" && !text.is_empty() {
                params["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", params).await;
        }
    }

    /// Saves a PNG of the page as `name` in the artefact directory and
    /// answers its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        let path = artefact_dir().join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

/// The harness itself: a page loads, takes typed input and a key press, and
/// is photographed.
#[tokio::test]
async fn browser_harness_types_presses_and_photographs() {
    let Some(browser) = Browser::launch().await else { return };
    let page = browser
        .open("data:text/html,<form onsubmit='event.preventDefault();document.title=i.value'><input id=i></form>")
        .await;
    page.eval("document.getElementById('i').focus()").await;
    page.type_text("hello").await;
    page.press("Enter").await;
    let title = page.wait_for("document.title", Duration::from_secs(5)).await;
    assert_eq!(title, "hello");
    let shot = page.screenshot("harness.png").await;
    assert!(std::fs::metadata(shot).expect("screenshot written").len() > 100);
}
