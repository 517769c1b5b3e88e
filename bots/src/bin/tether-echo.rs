//! The physical floor for round-trip benchmarks: a loopback TCP server that writes every
//! byte it reads straight back.
//!
//! `tether-bots` pointed at it logs in and plays as against a MUD (each bot's `say <token>`
//! comes back carrying its token), so the round trip it measures is the bots, the kernel's
//! loopback and one task wake-up each way, with no game and no protocol behind it. tether's
//! round trip is reported as a ratio of this one.
//!
//! ```sh
//! tether-echo 127.0.0.1:4900     # prints "listening on 127.0.0.1:4900" when ready
//! ```

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "../limits.rs"]
mod limits;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4900".to_owned())
        .parse()
        .context("usage: tether-echo HOST:PORT")?;
    limits::raise_nofile()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before accept: keep serving the
            // others rather than ending the floor measurement.
            Err(error) => {
                eprintln!("tether-echo: accept: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(echo(stream));
    }
}

async fn echo(mut stream: TcpStream) {
    // Nagle would hold back small echoes waiting for an ACK; a MUD server disables it too.
    let _ = stream.set_nodelay(true);
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
