//! What the core has yet to deliver to one proxy, and how it is cut into `deliver` batches.
//!
//! Two limits, both learned under overload (10,000 players at 2,000 commands a second):
//! - one batch carries at most [`MAX_BATCH`] events. A batch with the whole backlog once
//!   reached 78 MB, past what capnp lets a peer read (64 MB): the link broke and that output
//!   was lost;
//! - past [`HIGH_WATER`] events the core stops taking that proxy's input until it has caught
//!   up (see `link`). Without that the backlog grew to 772 MB; with it the proxy's input
//!   queues wait, and they are bounded and tell a flooding player so.
//!
//! The queue is a `VecDeque` because batches leave from the front: draining the front of a
//! `Vec` moved the whole backlog for every call, 28 % of an overloaded core's time.

use std::collections::VecDeque;

use tether_protocol::message::{CoreEvent, Delivery};

/// Events in one deliver batch: a few MB at most.
pub const MAX_BATCH: usize = 8192;
/// Events queued before the proxy's input is held back.
pub const HIGH_WATER: usize = 8 * MAX_BATCH;

/// Events for one proxy's sessions, in the order the game produced them.
#[derive(Debug, Default)]
pub struct Outbound {
    queue: VecDeque<CoreEvent>,
}

impl Outbound {
    pub fn push(&mut self, session: u64, delivery: Delivery) {
        self.queue.push_back(CoreEvent { session, delivery });
    }

    /// The next deliver batch, oldest first; empty when nothing is queued.
    pub fn next_batch(&mut self) -> Vec<CoreEvent> {
        let take = self.queue.len().min(MAX_BATCH);
        self.queue.drain(..take).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the proxy should wait before sending more input.
    pub fn is_backed_up(&self) -> bool {
        self.queue.len() > HIGH_WATER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64) -> Delivery {
        Delivery::Ack(seq)
    }

    #[test]
    fn a_backlog_leaves_in_bounded_batches_in_order() {
        let mut outbound = Outbound::default();
        let total = 2 * MAX_BATCH + 100;
        for seq in 0..total as u64 {
            outbound.push(seq % 7, ack(seq));
        }
        let mut sizes = Vec::new();
        let mut seen = Vec::new();
        loop {
            let batch = outbound.next_batch();
            if batch.is_empty() {
                break;
            }
            sizes.push(batch.len());
            seen.extend(batch);
        }
        assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 100]);
        let expected: Vec<_> = (0..total as u64)
            .map(|seq| CoreEvent {
                session: seq % 7,
                delivery: ack(seq),
            })
            .collect();
        assert_eq!(seen, expected, "nothing lost, nothing reordered");
        assert!(outbound.is_empty());
    }

    #[test]
    fn backs_up_only_past_the_high_water_mark() {
        let mut outbound = Outbound::default();
        for seq in 0..HIGH_WATER as u64 {
            outbound.push(1, ack(seq));
        }
        assert!(!outbound.is_backed_up());
        outbound.push(1, ack(0));
        assert!(outbound.is_backed_up());
        outbound.next_batch();
        assert!(!outbound.is_backed_up());
    }
}
