//! A small graceful-shutdown signal handed to every task that must say goodbye first.

use tokio::sync::watch;

/// Fires once for the whole process; cheap to clone into each task.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// The side that triggers the shutdown.
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once the shutdown has been triggered (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone: the process is ending either way.
        let _ = self.receiver.wait_for(|triggered| *triggered).await;
    }
}
