//! Call-log search over the file sink's JSON lines (the live file and its rotated siblings),
//! newest first: filters on time, tenant, service, app, status and request id, bounded by the
//! bytes it reads. Runs on the blocking pool.
//!
//! A rotated file is named with the time it was rotated, so files that ended before the range
//! are not opened; a cheap byte search for the request id (when given) skips lines before they
//! are parsed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

/// Most bytes one search reads before it answers with what it found (`truncated`).
pub const MAX_SCAN: u64 = 256 << 20;

#[derive(Debug, Default, Clone)]
pub struct Query {
    /// Unix microseconds, `[from, to)`.
    pub from_us: i64,
    pub to_us: i64,
    /// Only records of these tenants' services (`None`: all)...
    pub tenants: Option<Vec<String>>,
    /// ...or of these apps (the tenants' own apps calling another tenant's service; such a
    /// record is shown without the service's upstream target).
    pub apps: std::collections::HashSet<String>,
    pub service: Option<String>,
    pub app: Option<String>,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Found {
    /// Newest first.
    pub items: Vec<Value>,
    pub scanned_bytes: u64,
    /// The scan stopped at [`MAX_SCAN`] before it covered the whole range.
    pub truncated: bool,
}

fn micros_of(v: &Value) -> Option<i64> {
    let t = humantime::parse_rfc3339(v.get("time")?.as_str()?).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_micros() as i64)
}

/// The rotation time in a rotated file's name (`calls.20261201T134501.123Z.jsonl`), unix µs.
fn rotated_at(p: &Path) -> Option<i64> {
    let name = p.file_name()?.to_str()?;
    let stamp = name.split('.').find(|s| s.len() >= 15 && s.contains('T'))?;
    let ms = name.split('.').skip_while(|s| *s != stamp).nth(1)?;
    let ms = ms.split('-').next()?.trim_end_matches('Z');
    let t = format!(
        "{}-{}-{}T{}:{}:{}.{ms}Z",
        stamp.get(0..4)?,
        stamp.get(4..6)?,
        stamp.get(6..8)?,
        stamp.get(9..11)?,
        stamp.get(11..13)?,
        stamp.get(13..15)?
    );
    let t = humantime::parse_rfc3339(&t).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_micros() as i64)
}

/// Whether the search keeps `v`, and whether it is the caller's only as the app's tenant.
fn keep(q: &Query, v: &Value) -> Option<bool> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let mut as_app = false;
    if let Some(ts) = &q.tenants {
        if !ts.iter().any(|t| t == s("tenant")) {
            if !q.apps.contains(s("app")) {
                return None;
            }
            as_app = true;
        }
    }
    keep_fields(q, v).then_some(as_app)
}

fn keep_fields(q: &Query, v: &Value) -> bool {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    if q.service.as_deref().is_some_and(|x| x != s("service")) {
        return false;
    }
    if q.app.as_deref().is_some_and(|x| x != s("app")) {
        return false;
    }
    if q.request_id
        .as_deref()
        .is_some_and(|x| x != s("request_id"))
    {
        return false;
    }
    if q.status
        .is_some_and(|x| v.get("status").and_then(Value::as_u64) != Some(u64::from(x)))
    {
        return false;
    }
    micros_of(v).is_some_and(|t| t >= q.from_us && t < q.to_us)
}

/// Searches the call log whose live file is `live`.
pub fn search(live: &Path, q: &Query) -> Found {
    let mut files = crate::observe::calllog::rotated(live);
    files.push(live.to_path_buf());
    let mut found = Found::default();
    let needle = q.request_id.as_deref().map(str::as_bytes);
    // Newest first; within a file lines are oldest first, so keep the newest `limit` of it.
    for f in files.iter().rev() {
        if f != live && rotated_at(f).is_some_and(|t| t < q.from_us) {
            break;
        }
        let Ok(file) = std::fs::File::open(f) else {
            continue;
        };
        let mut newest: VecDeque<Value> = VecDeque::new();
        let mut r = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => found.scanned_bytes += n as u64,
            }
            if needle.is_some_and(|n| !line.windows(n.len()).any(|w| w == n)) {
                continue;
            }
            let Ok(mut v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(as_app) = keep(q, &v) {
                if as_app {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("target");
                    }
                }
                newest.push_back(v);
                if newest.len() > q.limit {
                    newest.pop_front();
                }
            }
            if found.scanned_bytes >= MAX_SCAN {
                found.truncated = true;
                break;
            }
        }
        let room = q.limit.saturating_sub(found.items.len());
        found.items.extend(newest.into_iter().rev().take(room));
        if found.items.len() >= q.limit || found.truncated {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_stamps_parse() {
        let t = rotated_at(Path::new("/x/calls.20261201T134501.123Z.jsonl")).unwrap();
        let want = humantime::parse_rfc3339("2026-12-01T13:45:01.123Z")
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        assert_eq!(t, want);
        assert_eq!(
            rotated_at(Path::new("calls.20261201T134501.123Z-2.jsonl")),
            Some(want)
        );
        assert_eq!(rotated_at(Path::new("calls.jsonl")), None);
    }
}
