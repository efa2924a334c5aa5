//! Redis Cluster end to end: a local 3-master cluster, produce and consume
//! through it with the queue split into 6 hash-tagged shards.

mod common;

use common::cluster::Cluster;
use common::{jsonl, stats, Args, Site};
use std::collections::HashSet;

/// Items held in the shard lists, per node.
fn items_per_node(c: &Cluster) -> Vec<u64> {
    c.ports
        .iter()
        .map(|p| {
            let mut con = redis::Client::open(format!("redis://127.0.0.1:{p}"))
                .unwrap()
                .get_connection()
                .unwrap();
            (0..6)
                .map(|i| {
                    // A node answers MOVED for keys it does not own; count only its own.
                    redis::cmd("LLEN")
                        .arg(format!("{{DATA-PIPELINE-KEY:{i}}}"))
                        .query::<u64>(&mut con)
                        .unwrap_or(0)
                })
                .sum()
        })
        .collect()
}

#[test]
fn produce_and_consume_through_a_three_node_cluster_with_six_shards() {
    let cluster = Cluster::start(3, 0, &[]);
    let site = Site::start(30);
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        cluster.ports[0], cluster.ports[1]
    );
    for mode in [None, Some("--reliable")] {
        let st = dir.path().join("p.json");
        Args::produce(&url, &site.url)
            .shards(6)
            .stats_json(&st)
            .run_expect(None, 0);
        assert_eq!(stats(&st)["items_pushed"], 300);
        let per_node = items_per_node(&cluster);
        assert_eq!(per_node.iter().sum::<u64>(), 300, "{per_node:?}");
        assert!(
            per_node.iter().filter(|n| **n > 0).count() >= 2,
            "shards did not spread: {per_node:?}"
        );

        let out = dir.path().join("out.jsonl");
        let _ = std::fs::remove_file(&out);
        let run = Args::consume(&url)
            .shards(6)
            .threads(4)
            .drain(0.5)
            .out(&out)
            .args(mode)
            .run_expect(None, 0);
        let lines = jsonl(&out);
        assert_eq!(lines.len(), 300, "{run}");
        let quotes: HashSet<String> = lines.iter().map(|v| v["quote"].to_string()).collect();
        assert_eq!(quotes.len(), 300);
        assert_eq!(items_per_node(&cluster).iter().sum::<u64>(), 0);
        let status = Args::new("status")
            .arg("--json")
            .redis(&url)
            .shards(6)
            .run_expect(None, 0);
        let s: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
        assert_eq!(
            (
                s["queue_length"].as_u64(),
                s["processing_items"].as_u64(),
                s["live_consumers"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{s}"
        );
    }
}
