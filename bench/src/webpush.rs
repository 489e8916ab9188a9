//! Web Push fan-out (BENCHMARKS.md): N browsers in one group, every one an
//! endpoint `{endpoint}~i` of one subscription of the stand-in (which
//! checks the VAPID token and decrypts every push), one group send. And
//! what encrypting one push costs, timed with the gateway's own function.

use std::time::Instant;

use pushgate_providers::webpush::encrypt::{encrypt, Subscription};
use pushgate_providers::webpush::payload;
use pushgate_providers::NotificationInfo;
use serde_json::json;

use crate::env::Env;
use crate::fanout::{measure, Measured, Send};
use crate::mock::Mock;
use crate::report::{self, Line};
use crate::{BenchError, BenchResult, Context};

const BENCH: &str = "webpush";
const ENCRYPT_BENCH: &str = "webpush_encrypt";
/// The VAPID contact of the bench app.
const SUBJECT: &str = "mailto:bench@example.com";
/// Payloads encrypted to time one encryption.
const ENCRYPTIONS: u32 = 10_000;

/// Gives the app a VAPID key, seeds `n` browsers and measures their fan-out.
pub async fn run(env: &mut Env, mock: &Mock, n: u64) {
    if let Err(e) = one(env, mock, n).await {
        report::failed(BENCH, Some(env.kind), format!("{n} devices: {e}"));
    }
}

async fn one(env: &mut Env, mock: &Mock, n: u64) -> BenchResult<()> {
    let kind = Some(env.kind);
    env.api.enable_web_push(SUBJECT).await?;
    let subscription = mock.web_push_subscription().await?;
    let group = format!("bench-webpush-{n}");
    crate::progress::note(kind, &format!("web push fan-out of {n}: seeding the browsers"));
    let seed_start = Instant::now();
    let keys = (subscription.keys.p256dh.as_str(), subscription.keys.auth.as_str());
    env.db.seed_web(&env.api.app_id, &group, n, &subscription.endpoint, keys).await?;
    let seed_s = seed_start.elapsed().as_secs_f64();
    let before = mock.web_push_delivered().await?;
    let body = json!({"notification": {"title": "Bench", "body": "web push"}});
    let send = Send { bench: BENCH, path: &format!("/v1/groups/{group}/notifications"), body: &body, devices: n };
    let since_ms = crate::disk::now_ms();
    // The stand-ins' ceiling is measured on their APNs endpoint: not a Web Push figure.
    match measure(env, &send, None, mock.pid()).await? {
        Measured::Done { line, .. } => {
            let decrypted = mock.web_push_delivered().await?.saturating_sub(before);
            let line = line.set("stand_in_decrypted", decrypted).num("seed_s", seed_s, 2);
            crate::disk::add(&env.db, since_ms, line).await.emit();
        }
        Measured::Missing(why) => report::skipped(BENCH, kind, why),
    }
    Ok(())
}

/// Encrypts [`ENCRYPTIONS`] pushes (one ECDH P-256 agreement, two HKDFs and
/// AES-128-GCM each) for a stand-in subscription, on one thread of this
/// process, and prints the CPU per push.
pub async fn encryption_cost(mock: &Mock) {
    match time_encryption(mock).await {
        Ok(line) => line.emit(),
        Err(e) => report::failed(ENCRYPT_BENCH, None, e),
    }
}

async fn time_encryption(mock: &Mock) -> BenchResult<Line> {
    let sub = mock.web_push_subscription().await?;
    let to = Subscription::from_keys(&sub.endpoint, &sub.keys.p256dh, &sub.keys.auth)
        .map_err(|(field, why)| BenchError::msg(format!("the stand-in's subscription: {field}: {why}")))?;
    // The payload the gateway builds for the scenario's notification.
    let info = NotificationInfo {
        id: Some(crate::seed::device_id(1)),
        title: Some("Bench".into()),
        body: Some("web push".into()),
        ..NotificationInfo::default()
    };
    let plain = payload(&info).context("building a Web Push payload")?;
    let size = plain.len();
    let (cpu_s, wall_s) = tokio::task::spawn_blocking(move || -> BenchResult<(f64, f64)> {
        let (cpu_start, wall_start) = (thread_cpu_seconds()?, Instant::now());
        for _ in 0..ENCRYPTIONS {
            encrypt(&plain, &to).context("encrypting a Web Push payload")?;
        }
        Ok((thread_cpu_seconds()? - cpu_start, wall_start.elapsed().as_secs_f64()))
    })
    .await
    .context("the encryption timing thread")??;
    Ok(Line::new(ENCRYPT_BENCH, None)
        .set("pushes", ENCRYPTIONS)
        .set("payload_bytes", size)
        .num("cpu_us_per_push", cpu_s * 1e6 / f64::from(ENCRYPTIONS), 1)
        .num("wall_s", wall_s, 3))
}

/// CPU seconds of the calling thread: unlike wall time, not inflated by
/// whatever else the shared machine runs.
fn thread_cpu_seconds() -> BenchResult<f64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime with a valid clock id and a pointer to a live timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Err(BenchError::msg("cannot read this thread's CPU time"));
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}
