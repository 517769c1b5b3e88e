//! How the proxy tells every task to stop: say goodbye to the player, or hand the connection
//! to the proxy that replaces this one. A small signal handed to every task.

use tokio::sync::{mpsc, watch};

use crate::state::CarriedSession;

/// Why the tasks stop.
#[derive(Clone, Debug)]
pub enum Stop {
    /// The game is shutting down: tell the player and close the connection.
    Goodbye,
    /// Another proxy takes over: send the connection and the session's state here and end
    /// without a word to the player or the core.
    HandOver(mpsc::UnboundedSender<CarriedSession>),
}

/// Fires once for the whole process; cheap to clone into each task.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<Option<Stop>>,
}

/// The side that triggers the shutdown.
pub struct ShutdownTrigger {
    sender: watch::Sender<Option<Stop>>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(None);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    pub fn trigger(&self, stop: Stop) {
        self.sender.send_replace(Some(stop));
    }
}

impl Shutdown {
    /// Resolves once the shutdown has been triggered (at once if it already was).
    pub async fn wait(&mut self) -> Stop {
        match self.receiver.wait_for(Option::is_some).await {
            Ok(stop) => stop.clone().unwrap_or(Stop::Goodbye),
            // The trigger is gone: the process is ending either way.
            Err(_) => Stop::Goodbye,
        }
    }
}
