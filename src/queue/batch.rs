//! What a pop hands to the sink: a batch of items, oldest first, and (in
//! reliable mode) how to acknowledge it once it is durable.

/// How a reliable batch is acknowledged once durable.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The consumer's batch set.
    pub set: String,
    /// The batch's own processing list.
    pub list: String,
}

/// Popped items on their way to the sink.
#[derive(Debug)]
pub struct Batch {
    /// The items, oldest first.
    pub items: Vec<Vec<u8>>,
    /// The list they were popped from.
    pub key: String,
    /// In reliable mode, what to acknowledge once they are durable.
    pub ack: Option<Ack>,
}

impl Batch {
    /// Nothing popped from `key`.
    pub fn empty(key: &str) -> Batch {
        Batch {
            items: Vec::new(),
            key: key.to_string(),
            ack: None,
        }
    }

    /// The bytes the items hold.
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.len() as u64).sum()
    }
}

/// What one take got: a batch (maybe empty: nothing arrived), or a fault
/// being waited out until the given time.
#[derive(Debug)]
pub enum Taken {
    /// Items (or none, after the block time).
    Batch(Batch),
    /// Redis is unavailable; try this source again at this time.
    RetryAt(std::time::Instant),
}
