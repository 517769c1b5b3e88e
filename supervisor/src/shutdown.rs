//! A one-shot "stop now" flag that any number of tasks can wait on.
//!
//! Dropping the [`Trigger`] counts as firing it, so a task can never be left waiting for a
//! stop that will not come because its owner is gone.

use tokio::sync::watch;

pub fn channel() -> (Trigger, Signal) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Signal(rx))
}

#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

#[derive(Debug, Clone)]
pub struct Signal(watch::Receiver<bool>);

impl Signal {
    pub async fn fired(&mut self) {
        // An error means the trigger was dropped, which is a stop too.
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    #[cfg(test)]
    fn is_fired(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_the_fire() {
        let (trigger, signal) = channel();
        let mut a = signal.clone();
        let mut b = signal.clone();
        assert!(!signal.is_fired());
        trigger.fire();
        a.fired().await;
        b.fired().await;
        assert!(signal.is_fired());
    }

    #[tokio::test]
    async fn dropping_the_trigger_counts_as_firing() {
        let (trigger, mut signal) = channel();
        drop(trigger);
        signal.fired().await;
        assert!(signal.is_fired());
    }
}
