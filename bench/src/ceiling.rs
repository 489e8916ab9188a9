//! The stand-ins' own ceiling: `h2load` (nghttp2-client) against the APNs
//! endpoint with a valid provider token. Fan-out figures are shown as a
//! fraction of it.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::gateway::Meter;
use crate::mock::Mock;
use crate::report::{self, Line};
use crate::{BenchError, BenchResult, Context};

const BENCH: &str = "ceiling";
/// Distinct device tokens h2load cycles through.
const TOKENS: u64 = 64;

/// Runs h2load for `requests` pushes; returns requests/s when it ran and succeeded.
pub async fn run(mock: &Mock, dir: &Path, requests: u64) -> Option<f64> {
    match measure(mock, dir, requests).await {
        Ok(rate) => rate,
        Err(e) => {
            report::failed(BENCH, None, e);
            None
        }
    }
}

async fn measure(mock: &Mock, dir: &Path, requests: u64) -> BenchResult<Option<f64>> {
    let jwt = provider_token(&mock.apns)?;
    let topic = mock.apns.get("topic").and_then(Value::as_str).unwrap_or_default();
    let payload = dir.join("h2load-payload.json");
    std::fs::write(&payload, json!({"aps": {"alert": {"title": "Bench", "body": "ceiling"}}}).to_string())
        .context("writing the h2load payload")?;
    let uris = dir.join("h2load-uris.txt");
    let list: String = (0..TOKENS).map(|i| format!("{}/3/device/e{i:063x}\n", mock.base_url)).collect();
    std::fs::write(&uris, list).context("writing the h2load URI list")?;

    let meter = mock.pid().map(Meter::start).transpose()?;
    let mut cmd = Command::new("h2load");
    cmd.arg(format!("--requests={requests}"))
        .args(["--clients=4", "--max-concurrent-streams=100", "--threads=1"])
        .arg(format!("--header=authorization: bearer {jwt}"))
        .arg(format!("--header=apns-topic: {topic}"))
        .arg("--header=apns-push-type: alert")
        .arg(format!("--data={}", payload.display()))
        .arg(format!("--input-file={}", uris.display()))
        .kill_on_drop(true);
    let output = match output_within(cmd, Duration::from_secs(120)).await {
        Ok(out) => out,
        Err(Missing) => {
            report::skipped(BENCH, None, "h2load is not installed (Debian package nghttp2-client)");
            return Ok(None);
        }
    }
    .context("running h2load")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let usage = meter.as_ref().map(Meter::finish).transpose()?;
    let rate = parse_rate(&text);
    let succeeded = parse_count(&text, "requests:", "succeeded");
    let ok_2xx = parse_count(&text, "status codes:", "2xx");
    let mut line = Line::new(BENCH, None)
        .set("target", "stand-in APNs")
        .set("stand_ins", mock.mode())
        .set("requests", requests)
        .set("succeeded", succeeded)
        .set("status_2xx", ok_2xx)
        .num("requests_per_s", rate.unwrap_or(f64::NAN), 0);
    if let Some(usage) = usage {
        line = line.num("stand_ins_peak_rss_mb", usage.peak_rss_mb, 1).num("stand_ins_cpu_s", usage.cpu_s, 2);
    }
    if rate.is_none() || ok_2xx != Some(requests) {
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        line = line.set("h2load_output", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
    }
    line.emit();
    // Only a run where pushes were accepted is a ceiling worth comparing against.
    Ok(rate.filter(|_| ok_2xx.unwrap_or(0) > 0))
}

/// The stand-ins' APNs provider token: ES256, `kid` header, `iss` + `iat` claims.
fn provider_token(apns: &Value) -> BenchResult<String> {
    let field =
        |k: &str| apns.get(k).and_then(Value::as_str).ok_or_else(|| BenchError::msg(format!("apns.json has no {k}")));
    let key = EncodingKey::from_ec_pem(field("private_key")?.as_bytes()).context("reading the APNs key")?;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(field("key_id")?.to_owned());
    let claims = json!({"iss": field("team_id")?, "iat": chrono::Utc::now().timestamp()});
    jsonwebtoken::encode(&header, &claims, &key).context("signing the APNs provider token")
}

/// `finished in 1.02s, 98039.22 req/s, 4.21MB/s` → 98039.22.
fn parse_rate(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("finished in"))?;
    line.split(',').find_map(|part| part.trim().strip_suffix(" req/s")?.trim().parse().ok())
}

/// In the line starting with `prefix`, the number before `label`
/// (`requests: 10 total, … 9 succeeded` → 9).
fn parse_count(text: &str, prefix: &str, label: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(prefix))?;
    let rest = line.trim_start().strip_prefix(prefix)?;
    rest.split(',').find_map(|part| part.trim().strip_suffix(label)?.trim().parse().ok())
}

/// h2load could not be started because it is not installed.
struct Missing;

/// Runs `cmd` to completion, killing it after `limit`.
async fn output_within(mut cmd: Command, limit: Duration) -> Result<BenchResult<std::process::Output>, Missing> {
    let child = match cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Missing),
        Err(e) => return Ok(Err(BenchError::caused("starting h2load", e))),
    };
    // On timeout the child is dropped, and kill_on_drop ends it.
    Ok(match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.context("waiting for h2load"),
        Err(_) => Err(BenchError::msg(format!("h2load ran longer than {} s", limit.as_secs()))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "finished in 1.02s, 98039.22 req/s, 4.21MB/s\n\
        requests: 100000 total, 100000 started, 100000 done, 99990 succeeded, 10 failed, 0 errored, 0 timeout\n\
        status codes: 99990 2xx, 0 3xx, 10 4xx, 0 5xx\n";

    #[test]
    fn h2load_output_is_read() {
        assert_eq!(parse_rate(OUTPUT), Some(98039.22));
        assert_eq!(parse_count(OUTPUT, "requests:", "succeeded"), Some(99990));
        assert_eq!(parse_count(OUTPUT, "status codes:", "2xx"), Some(99990));
    }
}
