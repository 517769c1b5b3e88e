//! The floors for round-trip benchmarks: servers that do no work, so that what tether adds on
//! top of them shows.
//!
//! - **The floor**: a loopback TCP server that writes every byte it reads straight back.
//!   `tether-bots` pointed at it logs in and plays as against a MUD (each bot's `say <token>`
//!   comes back carrying its token), so the round trip it measures is the bots, the kernel's
//!   loopback and one task wake-up each way, with no game and no protocol behind it. tether's
//!   round trip is reported as a ratio of this one.
//! - **The two-process floor**: the same bytes taking tether's path with nothing done on it.
//!   A relay process accepts the TCP connections and passes each one's bytes over a Unix
//!   socket to an echo process, and back. Both run on one thread each, the cheapest way to
//!   wait on sockets (tether's proxy uses more), so the gap between the two floors is the least
//!   that splitting a server into two processes costs on this machine.
//!
//! ```sh
//! tether-echo 127.0.0.1:4900                          # the floor
//! tether-echo --unix /tmp/echo.sock                   # the two-process floor's far end...
//! tether-echo 127.0.0.1:4901 --relay /tmp/echo.sock   # ...and its front
//! ```
//! Each prints "listening on ..." when ready.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

#[path = "../limits.rs"]
mod limits;

enum Mode {
    Echo(SocketAddr),
    Relay(SocketAddr, PathBuf),
    UnixEcho(PathBuf),
}

const USAGE: &str = "usage: tether-echo HOST:PORT [--relay SOCKET] | tether-echo --unix SOCKET";

fn parse(args: &[String]) -> anyhow::Result<Mode> {
    let addr = |text: &str| -> anyhow::Result<SocketAddr> {
        text.parse()
            .with_context(|| format!("{text} is not HOST:PORT; {USAGE}"))
    };
    match args {
        [] => Ok(Mode::Echo(addr("127.0.0.1:4900")?)),
        [flag, socket] if flag == "--unix" => Ok(Mode::UnixEcho(socket.into())),
        [listen] => Ok(Mode::Echo(addr(listen)?)),
        [listen, flag, socket] if flag == "--relay" => {
            Ok(Mode::Relay(addr(listen)?, socket.into()))
        }
        _ => bail!("{USAGE}"),
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = parse(&args)?;
    limits::raise_nofile()?;
    // The floor keeps the multi-threaded runtime it was first measured with; the two halves
    // of the two-process floor take the cheapest (see the module doc).
    let runtime = match mode {
        Mode::Echo(_) => tokio::runtime::Builder::new_multi_thread(),
        Mode::Relay(..) | Mode::UnixEcho(_) => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()
    .context("starting the runtime")?;
    runtime.block_on(async move {
        match mode {
            Mode::Echo(addr) => serve_tcp(addr, echo).await,
            Mode::Relay(addr, socket) => {
                serve_tcp(addr, move |stream| relay(stream, socket.clone())).await
            }
            Mode::UnixEcho(socket) => serve_unix(socket).await,
        }
    })
}

async fn serve_tcp<F, T>(addr: SocketAddr, serve: F) -> anyhow::Result<()>
where
    F: Fn(TcpStream) -> T,
    T: Future<Output = ()> + Send + 'static,
{
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
        // Nagle would hold back small echoes waiting for an ACK; a MUD server disables it too.
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream));
    }
}

async fn serve_unix(socket: PathBuf) -> anyhow::Result<()> {
    // A socket file left by an earlier run would make bind fail.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    println!("listening on {}", socket.display());
    loop {
        let (stream, _) = listener.accept().await.context("accept")?;
        tokio::spawn(echo(stream));
    }
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
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

/// One Unix connection per player (tether multiplexes them on one link, which only adds
/// work): this floor is the hop itself.
async fn relay(player: TcpStream, socket: PathBuf) {
    let Ok(far) = UnixStream::connect(&socket).await else {
        eprintln!("tether-echo: cannot reach {}", socket.display());
        return;
    };
    let (mut from_player, mut to_player) = player.into_split();
    let (mut from_far, mut to_far) = far.into_split();
    let back = tokio::spawn(async move { tokio::io::copy(&mut from_far, &mut to_player).await });
    let _ = tokio::io::copy(&mut from_player, &mut to_far).await;
    let _ = to_far.shutdown().await;
    let _ = back.await;
}
