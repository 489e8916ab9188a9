//! Tag segment beside a group (BENCHMARKS.md): a registry of N devices in
//! which every 10th carries the tag `segment: in` and is a member of one
//! group. The same devices are then sent to twice on the same gateway, in
//! the same minutes: by the group, and by a tag filter over the registry.

use std::time::Instant;

use serde_json::json;

use crate::env::Env;
use crate::fanout::{measure, Measured, Send};
use crate::report;
use crate::BenchResult;

const BENCH: &str = "segment";
/// One device in this many is in the segment.
const EVERY: u64 = 10;

/// Seeds a registry of `registry` devices and measures both fan-outs.
pub async fn run(env: &mut Env, registry: u64, ceiling: Option<f64>, stand_ins: Option<u32>) {
    if let Err(e) = one(env, registry, ceiling, stand_ins).await {
        report::failed(BENCH, Some(env.kind), format!("{registry} devices: {e}"));
    }
}

async fn one(env: &mut Env, registry: u64, ceiling: Option<f64>, stand_ins: Option<u32>) -> BenchResult<()> {
    let group = format!("bench-segment-{registry}");
    let seed_start = Instant::now();
    let segment = env.db.seed_segment(&env.api.app_id, &group, registry, EVERY).await?;
    let seed_s = seed_start.elapsed().as_secs_f64();
    let notification = json!({"title": "Bench", "body": "segment"});
    let by_group = json!({"notification": notification});
    let by_tag = json!({"to": {"filters": {"field": "tag", "key": "segment", "relation": "=", "value": "in"}},
        "notification": notification});
    let group_path = format!("/v1/groups/{group}/notifications");
    for (target, path, body) in [("group", group_path.as_str(), &by_group), ("tag", "/v1/notifications", &by_tag)] {
        let send = Send { bench: BENCH, path, body, devices: segment };
        let since_ms = crate::disk::now_ms();
        match measure(env, &send, ceiling, stand_ins).await? {
            Measured::Done { line, .. } => {
                let line = line.set("target", target).set("registry", registry).num("seed_s", seed_s, 2);
                crate::disk::add(&env.db, since_ms, line).await.emit();
            }
            Measured::Missing(why) => {
                report::skipped(BENCH, Some(env.kind), why);
                return Ok(());
            }
        }
    }
    Ok(())
}
