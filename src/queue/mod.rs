//! Redis, the queue in the middle: what travels through it (`item` on the
//! way in, `batch` on the way out), one reconnecting connection type
//! (`link`, over `conn`), the list itself (`list`: push and pop batches),
//! the producer's writer stage (`writer`), reliable batches (`reliable`) and their consumers (`consumers`: heartbeats, release, recovery),
//! crawl jobs (`job`: what one is; `jobs`: their list, leased like reliable batches),
//! the run lock (`lock`), the key names commands must agree on (`keys`), and
//! seen keys as sets or Bloom filters (`dedup`).

pub mod batch;
pub mod conn;
pub mod consumers;
pub mod dedup;
pub mod item;
pub mod job;
pub mod jobs;
pub mod keys;
pub mod link;
pub mod list;
pub mod lock;
pub mod reliable;

pub use list::Queue;
