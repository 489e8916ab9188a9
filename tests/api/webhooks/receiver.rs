//! The application's server of the webhook tests: a real HTTP receiver on
//! 127.0.0.1 that records what arrives and answers as told.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

/// What the receiver answers to one request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    Status(u16),
    /// Answers 200 only after this long (past the gateway's timeout).
    Hang(Duration),
}

/// One request that reached the receiver.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Answers to give, in order; then 200 (or `fallback`).
    plan: Mutex<VecDeque<Answer>>,
    fallback: Mutex<Option<u16>>,
    /// Bodies of the events answered 2xx, for an "app server" to act on.
    events: Mutex<Option<mpsc::UnboundedSender<Value>>>,
}

/// An application's server receiving webhooks.
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url: format!("http://{addr}/hook"), state }
    }

    pub fn plan(&self, answers: &[Answer]) {
        self.state.plan.lock().expect("lock").extend(answers.iter().copied());
    }

    /// Answers `status` to everything not planned (`None`: 200).
    pub fn answer_always(&self, status: Option<u16>) {
        *self.state.fallback.lock().expect("lock") = status;
    }

    pub fn events(&self) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.state.events.lock().expect("lock") = Some(tx);
        rx
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Bodies received, one per `webhook-id` (a retry repeats one).
    pub fn distinct(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| seen.insert(header(&r.headers, "webhook-id")))
            .map(|r| r.json())
            .collect()
    }

    /// Waits (bounded) until `done` holds for the distinct bodies received.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let bodies = self.distinct();
            if done(&bodies) {
                return bodies;
            }
            assert!(Instant::now() < deadline, "{what} not received in time; got {bodies:#?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn receive(State(st): State<Arc<ReceiverState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let body = String::from_utf8(body.to_vec()).expect("UTF-8 body");
    st.received.lock().expect("lock").push(Received { headers, body: body.clone(), at: Instant::now() });
    let planned = st.plan.lock().expect("lock").pop_front();
    let status = match planned {
        Some(Answer::Status(s)) => s,
        Some(Answer::Hang(d)) => {
            tokio::time::sleep(d).await;
            200
        }
        None => st.fallback.lock().expect("lock").unwrap_or(200),
    };
    if (200..300).contains(&status) {
        if let Some(tx) = st.events.lock().expect("lock").as_ref() {
            let _ = tx.send(serde_json::from_str(&body).expect("JSON body"));
        }
    }
    StatusCode::from_u16(status).expect("status")
}

pub fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Whether the reference implementation accepts `r` as signed with `secret`.
pub fn verifies(r: &Received, secret: &str) -> bool {
    let hook = standardwebhooks::Webhook::new(secret).expect("whsec_ secret");
    hook.verify(r.body.as_bytes(), &r.headers).is_ok()
}
