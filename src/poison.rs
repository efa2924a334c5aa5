//! Poison items: a popped item that is not JSON goes to `K:dead` as
//! `{"reason","consumer","at","item"}` and is never silently dropped; valid
//! JSON spread over several lines is re-encoded onto one line.

use crate::item;
use crate::log;
use crate::queue::Queue;
use crate::reliable::Lease;
use redis::{ConnectionLike, RedisResult};

/// Moves items that are not JSON to `<key>:dead`; compacts multi-line JSON.
pub fn screen(
    q: &mut Queue,
    lease: Option<&Lease>,
    mut items: Vec<Vec<u8>>,
    dead: &mut u64,
    reformatted: &mut u64,
) -> Vec<Vec<u8>> {
    let mut keep = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        match item::check_line(&item) {
            Ok(None) => keep.push(item),
            Ok(Some(compact)) => {
                // Acks count items, so the processing list may keep the original bytes.
                *reformatted += 1;
                keep.push(compact);
            }
            Err(reason) => {
                *dead += 1;
                let key = q.key.clone();
                let consumer = lease.map_or_else(
                    || format!("pid {}", std::process::id()),
                    |l| l.consumer.clone(),
                );
                let processing = lease.map(|l| l.processing.as_str());
                if let Err(e) = bury(q.con(), &key, processing, &consumer, &item, &reason) {
                    log::error(&format!("could not move a poison item to {key}:dead ({e}); writing it to the sink instead"));
                    keep.push(item);
                    continue;
                }
                log::warn(&format!("poison item moved to {key}:dead: {reason}"));
            }
        }
    }
    keep
}

/// Records a poison item in `K:dead` and drops it from the processing list.
pub fn bury(
    con: &mut dyn ConnectionLike,
    key: &str,
    processing: Option<&str>,
    consumer: &str,
    item: &[u8],
    reason: &str,
) -> RedisResult<()> {
    let entry = serde_json::json!({
        "reason": reason,
        "consumer": consumer,
        "at": crate::log::now_rfc3339(),
        "item": String::from_utf8_lossy(item),
    })
    .to_string();
    // Dead letter first: a crash in between leaves the item in both places,
    // never in neither.
    redis::cmd("LPUSH")
        .arg(format!("{key}:dead"))
        .arg(entry)
        .query::<()>(con)?;
    if let Some(p) = processing {
        redis::cmd("LREM")
            .arg(p)
            .arg(1)
            .arg(item)
            .query::<()>(con)?;
    }
    Ok(())
}
