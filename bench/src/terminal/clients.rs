//! One client method for every terminal measured: terminal-host's WebSocket, ttyd's
//! WebSocket protocol, and a bare PTY driven from this process. Each opens a shell,
//! sends keystrokes and returns output bytes, so the same measurement code runs on all.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::unix::AsyncFd;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Silence after which a read gives up: far above any figure measured (50 MB takes ~2 s).
const RECV_TIMEOUT: Duration = Duration::from_secs(30);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where a shell comes from.
#[derive(Clone)]
pub enum Source {
    /// terminal-host: `ws://.../ws/shell/{id}` with a bearer token; a proxy address
    /// (the one-origin API port) works the same.
    TerminalHost { base: String, token: String },
    /// ttyd 1.7: `ws://.../ws`, subprotocol `tty`.
    Ttyd { base: String },
    /// bash on a PTY of this process (`setsid -c` gives it the terminal).
    BarePty,
}

/// An open shell, with output read past the last [`Term::until`] match kept for the
/// next read (a prompt often arrives in the same chunk as the marker before it).
pub struct Term {
    conn: Conn,
    pending: Option<Bytes>,
}

impl From<Conn> for Term {
    fn from(conn: Conn) -> Self {
        Term {
            conn,
            pending: None,
        }
    }
}

/// The connection to a shell.
enum Conn {
    Ws {
        ws: Box<Ws>,
        /// ttyd frames carry a one-byte type prefix.
        ttyd: bool,
    },
    Pty {
        fd: AsyncFd<OwnedFd>,
        child: tokio::process::Child,
        buf: Vec<u8>,
    },
}

impl Source {
    /// A short name for the report.
    pub fn name(&self) -> &'static str {
        match self {
            Source::TerminalHost { .. } => "terminal-host",
            Source::Ttyd { .. } => "ttyd",
            Source::BarePty => "bare PTY",
        }
    }

    /// Opens a new shell (a new session for terminal-host).
    pub async fn open(&self, session: u64) -> anyhow::Result<Term> {
        match self {
            Source::TerminalHost { base, token } => {
                let url = format!(
                    "{}/ws/shell/00000000-0000-4000-8000-{session:012x}",
                    base.replacen("http://", "ws://", 1)
                );
                let mut req = url.into_client_request()?;
                req.headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let (ws, _) = tokio_tungstenite::connect_async(req).await?;
                Ok(Conn::Ws {
                    ws: Box::new(ws),
                    ttyd: false,
                }
                .into())
            }
            Source::Ttyd { base } => {
                let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
                let mut req = url.into_client_request()?;
                req.headers_mut()
                    .insert("sec-websocket-protocol", "tty".parse()?);
                let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
                let hello = r#"{"AuthToken":"","columns":80,"rows":24}"#;
                ws.send(Message::Binary(Bytes::from_static(hello.as_bytes())))
                    .await?;
                Ok(Conn::Ws {
                    ws: Box::new(ws),
                    ttyd: true,
                }
                .into())
            }
            Source::BarePty => bare_pty(),
        }
    }
}

fn bare_pty() -> anyhow::Result<Term> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave: OwnedFd = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )?;
    rustix::io::ioctl_fionbio(&master, true)?;
    let home = std::env::temp_dir();
    let child = tokio::process::Command::new("setsid")
        .args(["-c", "/bin/bash", "--norc", "--noprofile", "-i"])
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .env_clear()
        .env("HOME", &home)
        .env("TERM", "xterm-256color")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(&home)
        .kill_on_drop(true)
        .spawn()?;
    // An owned descriptor, registered for as long as the AsyncFd lives.
    #[allow(deprecated)]
    let fd = AsyncFd::new(master)?;
    Ok(Conn::Pty {
        fd,
        child,
        buf: Vec::with_capacity(64 * 1024),
    }
    .into())
}

impl Term {
    /// Sends keystrokes as one message (one write for the PTY).
    pub async fn send(&mut self, keys: &[u8]) -> anyhow::Result<()> {
        match &mut self.conn {
            Conn::Ws { ws, ttyd } => {
                let frame = if *ttyd {
                    let mut f = Vec::with_capacity(keys.len() + 1);
                    f.push(b'0');
                    f.extend_from_slice(keys);
                    f
                } else {
                    keys.to_vec()
                };
                ws.send(Message::Binary(frame.into())).await?;
            }
            Conn::Pty { fd, .. } => {
                let mut rest = keys;
                while !rest.is_empty() {
                    let mut guard = fd.writable().await?;
                    if let Ok(n) = guard.try_io(|f| {
                        rustix::io::write(f.get_ref(), rest).map_err(std::io::Error::from)
                    }) {
                        rest = &rest[n?..];
                    }
                }
            }
        }
        Ok(())
    }

    /// The next output bytes (control messages skipped); `None` at the end; an error
    /// after [`RECV_TIMEOUT`] of silence.
    pub async fn recv(&mut self) -> anyhow::Result<Option<Bytes>> {
        if let Some(rest) = self.pending.take() {
            return Ok(Some(rest));
        }
        // One deadline for the whole call: ttyd's pings (every 5 s) must not extend it.
        let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
        match &mut self.conn {
            Conn::Ws { ws, ttyd } => loop {
                match tokio::time::timeout_at(deadline, ws.next()).await? {
                    Some(Ok(Message::Binary(b))) if *ttyd => {
                        if b.first() == Some(&b'0') {
                            return Ok(Some(b.slice(1..)));
                        }
                    }
                    Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                    Some(Ok(Message::Text(t))) if *ttyd && t.starts_with('0') => {
                        return Ok(Some(Bytes::copy_from_slice(&t.as_bytes()[1..])));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(None),
                }
            },
            Conn::Pty { fd, buf, .. } => loop {
                let mut guard = tokio::time::timeout_at(deadline, fd.readable()).await??;
                buf.clear();
                match guard.try_io(|f| {
                    rustix::io::read(f.get_ref(), rustix::buffer::spare_capacity(buf))
                        .map_err(std::io::Error::from)
                }) {
                    Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                    Ok(Ok(_)) => return Ok(Some(Bytes::copy_from_slice(buf))),
                    Err(_) => continue,
                }
            },
        }
    }

    /// Reads until `needle` appeared; returns the bytes read up to its end (what came
    /// after it is read next).
    pub async fn until(&mut self, needle: &[u8]) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let got = self.recv().await;
            if let Err(e) = &got {
                anyhow::bail!(
                    "{e} after {total} bytes, tail {:?}",
                    String::from_utf8_lossy(&tail)
                );
            }
            let Some(b) = got? else {
                anyhow::bail!(
                    "the shell ended before {:?}",
                    String::from_utf8_lossy(needle)
                );
            };
            total += b.len();
            tail.extend_from_slice(&b);
            if let Some(at) = memchr::memmem::find(&tail, needle) {
                let after = tail.len() - (at + needle.len());
                if after > 0 {
                    self.pending = Some(b.slice(b.len() - after..));
                }
                return Ok(total - after);
            }
            let keep = tail.len().saturating_sub(needle.len());
            tail.drain(..keep);
        }
    }

    /// Reads whatever arrives within `quiet` (drains a prompt, echoes).
    pub async fn drain(&mut self, quiet: Duration) {
        while let Ok(Ok(Some(_))) = tokio::time::timeout(quiet, self.recv()).await {}
    }

    /// Closes the shell.
    pub async fn close(self) {
        match self.conn {
            Conn::Ws { mut ws, .. } => {
                let _ = SinkExt::close(&mut ws).await;
            }
            Conn::Pty { mut child, .. } => {
                let _ = child.kill().await;
            }
        }
    }
}
