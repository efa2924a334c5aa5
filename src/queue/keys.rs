//! Redis key names that several commands must agree on, built in one place:
//! the writer, `status` and `--reset-frontier` all name seen sets here.

/// The item seen set of each shard list, in shard order.
///
/// A lone list on one server keeps the user's name as is. Shards (and a
/// cluster) get one set per shard, `{shard}:seen:{seen}`, under the shard's
/// hash tag so the check-and-push script stays in one slot.
pub fn seen_sets(seen: &str, shard_keys: &[String], cluster: bool) -> Vec<String> {
    if shard_keys.len() == 1 && !cluster {
        return vec![seen.to_string()];
    }
    shard_keys
        .iter()
        .map(|k| format!("{k}:seen:{seen}"))
        .collect()
}

/// The seen-set name a shared frontier's producers deduplicate items by.
pub fn frontier_items(name: &str) -> String {
    format!("{{{name}}}:items")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_set_per_shard_except_a_lone_list_on_one_server() {
        assert_eq!(seen_sets("S", &keys(&["Q"]), false), ["S"]);
        assert_eq!(seen_sets("S", &keys(&["{Q}"]), true), ["{Q}:seen:S"]);
        assert_eq!(
            seen_sets(&frontier_items("n"), &keys(&["{Q:0}", "{Q:1}"]), false),
            ["{Q:0}:seen:{n}:items", "{Q:1}:seen:{n}:items"]
        );
    }
}
