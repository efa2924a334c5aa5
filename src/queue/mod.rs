//! Redis, the queue in the middle: what travels through it (`item` on the
//! way in, `batch` on the way out), one reconnecting connection type
//! (`link`, over `conn`), the list itself (`list`: push and pop batches),
//! the one lease mechanism (`lease`: register, heartbeat, release,
//! recovery) and the batches taken under it (`reliable`), crawl jobs
//! (`job`: what one is; `job_list`: their list, leased like reliable
//! batches), dead letters (`dead_letter`), the run lock (`lock`), every
//! key name qpipe creates (`keys`: the registry), seen keys as sets or
//! Bloom filters (`dedup`), and the fleet's counts (`stats`).

pub mod acl;
pub mod batch;
pub mod conn;
pub mod dead_letter;
pub mod dedup;
pub mod item;
pub mod job;
pub mod job_list;
pub mod keys;
pub mod lease;
pub mod link;
pub mod list;
pub mod lock;
pub mod probe;
pub mod reliable;
pub mod sentinel;
pub mod stats;

pub use list::Queue;
